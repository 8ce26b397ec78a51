//! Snapshot compile time and size at enterprise scale: 1,000 servers × 50
//! tools, 500 teams, 50,000 users (one token each), one policy per team.
//!
//!   cargo run --release -p toolgate-benches --bin snapshot-scale

use std::fmt::Write;
use std::time::Instant;

fn main() {
    let (servers, tools, teams, users) = (1_000, 50, 500, 50_000);
    let mut yaml = String::from("teams:\n");
    for t in 0..teams {
        writeln!(yaml, "  - {{name: team-{t}}}").unwrap();
    }
    yaml.push_str("servers:\n");
    for s in 0..servers {
        writeln!(yaml, "  - name: srv-{s}\n    owner: team-{}\n    status: approved\n    endpoint: http://10.0.{}.{}:8080/mcp\n    auth: {{type: bearer, secret: 'store:srv-{s}'}}\n    tools:", s % teams, s / 250, s % 250).unwrap();
        for k in 0..tools {
            writeln!(
                yaml,
                "      - {{name: tool_{k}, annotations: {{readOnlyHint: {}}}}}",
                k % 2 == 0
            )
            .unwrap();
        }
    }
    yaml.push_str("principals:\n");
    for u in 0..users {
        let digest = hex_digest(&format!("tg_user_{u}"));
        writeln!(yaml, "  - {{name: user-{u}, kind: user, teams: [team-{}], tokens: [{{name: t, sha256: {digest}}}]}}", u % teams).unwrap();
    }
    yaml.push_str("policies:\n");
    for t in 0..teams {
        writeln!(yaml, "  - {{name: p-{t}, subjects: {{teams: [team-{t}]}}, allow: [{{server: 'srv-{}*', tools: ['tool_*']}}, {{server: '*', annotations: {{readOnlyHint: true}}}}], deny: [{{server: '*', tools: ['tool_4?']}}]}}", t % 10).unwrap();
    }
    let files = vec![("catalog.yaml".to_string(), yaml)];

    let t = Instant::now();
    let catalog = catalog::load(&files).expect("valid");
    let load = t.elapsed();
    let resolve = |r: &str| -> Result<String, String> { Ok(format!("secret-{r}")) };
    let t = Instant::now();
    let snapshot = catalog::compile(&catalog, 1, &resolve).expect("compiles");
    let compile = t.elapsed();

    // The document proxies receive: sources + secrets, as JSON.
    let docs: Vec<(String, catalog::model::ConfigFile)> = files
        .iter()
        .map(|(n, t)| (n.clone(), catalog::parse_file(n, t).expect("parses")))
        .collect();
    let secrets = (0..servers)
        .map(|s| (format!("store:srv-{s}"), format!("secret-store:srv-{s}")))
        .collect();
    let doc = catalog::SnapshotDocument {
        version: 1,
        sources: docs,
        secrets,
        ..Default::default()
    };
    let t = Instant::now();
    let json = serde_json::to_vec(&doc).expect("serializes");
    let serialize = t.elapsed();
    let t = Instant::now();
    let parsed: catalog::SnapshotDocument = serde_json::from_slice(&json).expect("parses");
    let proxy_compile = parsed.compile().expect("compiles");
    let proxy_side = t.elapsed();

    println!("{servers} servers x {tools} tools, {teams} teams, {users} users");
    println!(
        "  YAML load + validate:        {:>8.1} ms",
        load.as_secs_f64() * 1e3
    );
    println!(
        "  compile -> Snapshot:          {:>8.1} ms  ({} policy classes)",
        compile.as_secs_f64() * 1e3,
        snapshot.class_count()
    );
    println!(
        "  document JSON:                {:>8.1} MiB, serialized in {:.1} ms",
        json.len() as f64 / 1048576.0,
        serialize.as_secs_f64() * 1e3
    );
    println!(
        "  proxy: parse + compile doc:   {:>8.1} ms  ({} routable servers)",
        proxy_side.as_secs_f64() * 1e3,
        proxy_compile.upstream_count()
    );
}

fn hex_digest(token: &str) -> String {
    catalog::token_digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
