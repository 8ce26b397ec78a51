//! The catalog as operators write it: golden files, validation messages, decisions.

use catalog::{compile, load, token_digest, Snapshot};

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

fn fake_secrets(reference: &str) -> Result<String, String> {
    Ok(format!("secret-for-{reference}"))
}

fn compile_ok(list: &[(&str, &str)]) -> Snapshot {
    let c = load(&files(list)).unwrap_or_else(|e| panic!("{e}"));
    compile(&c, 1, &fake_secrets).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(list: &[(&str, &str)]) -> String {
    load(&files(list))
        .expect_err("config must be refused")
        .to_string()
}

#[test]
fn every_example_config_file_loads_and_compiles() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut list = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            list.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(list.len() >= 4, "example config/ is missing files");
    let c = load(&list).unwrap_or_else(|e| panic!("{e}"));
    let resolve = |r: &str| -> Result<String, String> {
        let path = r
            .strip_prefix("file:")
            .ok_or("only file: refs in examples")?;
        std::fs::read_to_string(dir.join(path)).map_err(|e| e.to_string())
    };
    let snap = compile(&c, 1, &resolve).unwrap_or_else(|e| panic!("{e}"));
    // The demo PATs documented in README.md authenticate.
    let alice = snap
        .authenticate(&token_digest("tg_demo_alice_0123456789abcdef"))
        .expect("alice's demo token");
    let demo = snap.upstream("demo").expect("demo is approved");
    assert!(snap.can_call(alice.class, demo.id, "search_issues"));
    assert!(!snap.can_call(alice.class, demo.id, "delete_issue"));
    assert!(
        snap.upstream("jira").is_none(),
        "pending servers are not routed"
    );
}

const TEAMS: &str = "teams: [{name: eng}, {name: ops}]\n";
const SERVERS: &str = r#"
servers:
  - name: gh
    owner: eng
    status: approved
    endpoint: http://127.0.0.1:1/mcp
    auth: {type: bearer, secret: env:GH}
    tools: [{name: search_issues}, {name: delete_issue}]
  - name: blocked
    owner: eng
    status: blocked
    endpoint: http://127.0.0.1:2/mcp
"#;

#[test]
fn schema_errors_name_file_and_field_path() {
    let bad = "servers:\n  - name: x\n    owner: eng\n    status: approved\n    endpoint: http://h/\n    auth: {type: bearer, secrett: env:X}\n";
    let msg = errors(&[("teams.yaml", TEAMS), ("servers.yaml", bad)]);
    assert!(msg.starts_with("servers.yaml: servers[0].auth"), "{msg}");
    assert!(msg.contains("secrett"), "{msg}");
}

#[test]
fn reference_errors_name_file_and_field_path() {
    let bad_servers = r#"
servers:
  - name: ok
    owner: eng
    status: approved
    endpoint: http://127.0.0.1:1/mcp
  - name: x
    owner: nobody
    status: approved
    endpoint: ftp://x/
    auth: {type: bearer, secret: hunter2}
  - name: plain
    owner: eng
    status: approved
    endpoint: http://127.0.0.1:3/mcp
    tls_ca: file:ca.pem
"#;
    let bad_principals = r#"
principals:
  - name: al
    kind: user
    teams: [eng, ghosts]
    tokens: [{name: t, sha256: tg_live_token_in_clear}]
"#;
    let bad_policies = r#"
policies:
  - name: p
    subjects: {teams: [eng], principals: [zed]}
    allow: [{server: nope}]
"#;
    let msg = errors(&[
        ("t.yaml", TEAMS),
        ("s.yaml", bad_servers),
        ("p.yaml", bad_principals),
        ("pol.yaml", bad_policies),
    ]);
    for want in [
        "s.yaml: servers[1].owner: unknown team \"nobody\"",
        "s.yaml: servers[1].endpoint:",
        "s.yaml: servers[1].auth.secret: must be a secret reference",
        "s.yaml: servers[2].tls_ca: only applies to https endpoints",
        "p.yaml: principals[0].teams[1]: unknown team \"ghosts\"",
        "p.yaml: principals[0].tokens[0].sha256: must be the 64-character hex",
        "pol.yaml: policies[0].subjects.principals[0]: unknown principal \"zed\"",
        "pol.yaml: policies[0].allow[0].server: unknown server \"nope\"",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
    assert!(
        !msg.contains("hunter2"),
        "a secret-looking value is echoed: {msg}"
    );
}

#[test]
fn duplicate_names_across_files_are_refused() {
    let msg = errors(&[("a.yaml", TEAMS), ("b.yaml", "teams: [{name: eng}]")]);
    assert!(
        msg.contains(
            "b.yaml: teams[0].name: duplicate name \"eng\" (first defined in a.yaml at teams[0])"
        ),
        "{msg}"
    );
}

fn principal(name: &str, teams: &str, token: &str) -> String {
    format!(
        "  - name: {name}\n    kind: user\n    teams: {teams}\n    tokens: [{{name: t, sha256: {}}}]\n",
        hex(&token_digest(token))
    )
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn deny_wins_default_denies_and_classes_are_shared() {
    let principals = format!(
        "principals:\n{}{}{}{}",
        principal("a", "[eng]", "tok-a"),
        principal("b", "[eng]", "tok-b"),
        principal("c", "[ops]", "tok-c"),
        principal("d", "[]", "tok-d"),
    );
    let policies = r#"
policies:
  - name: eng
    subjects: {teams: [eng]}
    allow: [{server: gh}]
    deny: [{server: gh, tools: ["delete_*"]}]
  - name: ops
    subjects: {teams: [ops]}
    allow: [{server: "*", tools: ["search_*"]}]
"#;
    let s = compile_ok(&[
        ("t", TEAMS),
        ("s", SERVERS),
        ("p", &principals),
        ("pol", policies),
    ]);
    let a = s.authenticate(&token_digest("tok-a")).unwrap();
    let b = s.authenticate(&token_digest("tok-b")).unwrap();
    let c = s.authenticate(&token_digest("tok-c")).unwrap();
    let d = s.authenticate(&token_digest("tok-d")).unwrap();
    assert_eq!(a.class, b.class, "same grants share a class");
    assert_eq!(s.class_count(), 3);
    let gh = s.upstream("gh").unwrap().id;
    assert!(s.can_call(a.class, gh, "search_issues"));
    assert!(s.can_call(a.class, gh, "undeclared_tool"));
    assert!(!s.can_call(a.class, gh, "delete_issue"), "deny wins");
    assert!(
        !s.can_call(a.class, gh, "delete_anything"),
        "deny pattern covers unknown tools"
    );
    assert!(s.can_call(c.class, gh, "search_issues"));
    assert!(!s.can_call(c.class, gh, "create_issue"));
    assert!(!s.can_access(d.class, gh), "default deny");
    assert!(!s.can_call(d.class, gh, "search_issues"));
    assert!(
        s.upstream("blocked").is_none(),
        "blocked servers never route"
    );
    assert!(s.authenticate(&token_digest("tok-x")).is_none());
}

#[test]
fn revoked_tokens_and_disabled_principals_do_not_authenticate() {
    let principals = format!(
        "principals:\n  - name: a\n    kind: agent\n    tokens: [{{name: old, sha256: {}, revoked: true}}, {{name: new, sha256: {}}}]\n  - name: b\n    kind: user\n    disabled: true\n    tokens: [{{name: t, sha256: {}}}]\n",
        hex(&token_digest("old")),
        hex(&token_digest("new")),
        hex(&token_digest("b-tok")),
    );
    let s = compile_ok(&[("t", TEAMS), ("s", SERVERS), ("p", &principals)]);
    assert!(s.authenticate(&token_digest("old")).is_none());
    assert!(s.authenticate(&token_digest("b-tok")).is_none());
    let new = s.authenticate(&token_digest("new")).unwrap();
    assert_eq!(&*s.principal(&new).token_names[new.token as usize], "new");
}

#[test]
fn credentials_are_ready_sensitive_header_values() {
    let s = compile_ok(&[("t", TEAMS), ("s", SERVERS)]);
    let gh = s.upstream("gh").unwrap();
    let (name, value) = gh.credential.as_ref().unwrap();
    assert_eq!(name, "authorization");
    assert_eq!(value, "Bearer secret-for-env:GH");
    assert!(value.is_sensitive());
    assert_eq!(gh.host_header, "127.0.0.1:1");
}

#[test]
fn audit_redaction_fragments_are_the_gateways_and_the_servers_keys_lower_cased() {
    let gateway = "gateway: {audit: {redact_keys: [Password, '']}}\n";
    let servers = SERVERS.replace(
        "    tools: [{name: search_issues}",
        "    audit: {redact_keys: [SSN]}\n    tools: [{name: search_issues}",
    );
    let s = compile_ok(&[("g", gateway), ("t", TEAMS), ("s", &servers)]);
    let gh = s.upstream("gh").unwrap();
    assert_eq!(gh.redact_fragments, ["password", "ssn"]);
}

#[test]
fn unreadable_secret_is_an_error_naming_the_field() {
    let c = load(&files(&[("t", TEAMS), ("servers.yaml", SERVERS)])).unwrap();
    let err = compile(&c, 1, &|_: &str| Err("not set".to_string())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "servers.yaml: servers[0].auth.secret: cannot read env:GH: not set"
    );
}

#[test]
fn policies_can_select_tools_by_annotation() {
    let servers = r#"
servers:
  - name: fs
    owner: eng
    status: approved
    endpoint: http://127.0.0.1:1/mcp
    tools:
      - {name: read_file, annotations: {readOnlyHint: true, destructiveHint: false}}
      - {name: write_file, annotations: {readOnlyHint: false, destructiveHint: false}}
      - {name: delete_file, annotations: {destructiveHint: true}}
"#;
    let principals = format!(
        "principals:\n{}{}",
        principal("reader", "[eng]", "tok-r"),
        principal("writer", "[ops]", "tok-w"),
    );
    let policies = r#"
policies:
  - name: read-only
    subjects: {teams: [eng]}
    allow: [{server: fs, annotations: {readOnlyHint: true}}]
  - name: no-destruction
    subjects: {teams: [ops]}
    allow: [{server: fs}]
    deny: [{server: fs, annotations: {destructiveHint: true}}]
"#;
    let s = compile_ok(&[
        ("t", TEAMS),
        ("s", servers),
        ("p", &principals),
        ("pol", policies),
    ]);
    let fs = s.upstream("fs").unwrap().id;
    let r = s.authenticate(&token_digest("tok-r")).unwrap();
    let w = s.authenticate(&token_digest("tok-w")).unwrap();
    assert!(s.can_call(r.class, fs, "read_file"));
    assert!(!s.can_call(r.class, fs, "write_file"));
    assert!(
        !s.can_call(r.class, fs, "unknown_tool"),
        "unknown tools are not read-only"
    );
    assert!(s.can_call(w.class, fs, "write_file"));
    assert!(!s.can_call(w.class, fs, "delete_file"));
    assert!(
        !s.can_call(w.class, fs, "unknown_tool"),
        "unknown tools may be destructive"
    );
    let bad = "policies:\n  - name: p\n    subjects: {teams: [eng]}\n    allow: [{server: fs, annotations: {readonly: true}}]\n";
    let msg = errors(&[("t", TEAMS), ("s", servers), ("pol.yaml", bad)]);
    assert!(
        msg.contains("pol.yaml: policies[0].allow[0].annotations.readonly: unknown annotation"),
        "{msg}"
    );
}
