//! Fixtures for the stdio bridge tests: a gateway routing one extra server,
//! the demo server over stdio, and counting this process's children.

use std::time::Duration;

use crate::common::*;

pub const DEMO_BIN: &str = env!("CARGO_BIN_EXE_toolgate-stdio-demo");

/// A gateway routing `demo` (never called) and the given extra servers,
/// `eng` allowed everything on `name` but `delete_*`, `support` only `search_*`.
pub async fn gateway_with(name: &str, server_yaml: &str) -> Gateway {
    let gw = Gateway::start("127.0.0.1:9".parse().unwrap()).await;
    write(gw.dir.path(), "stdio-key", "k3y-from-file\n");
    gw.edit(
        "servers.yaml",
        &format!("servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://127.0.0.1:9/mcp\n{server_yaml}"),
    )
    .await;
    gw.edit(
        "policies.yaml",
        &format!("{POLICIES}  - name: eng-{name}\n    subjects: {{teams: [eng]}}\n    allow: [{{server: {name}}}]\n    deny: [{{server: {name}, tools: [\"delete_*\"]}}]\n  - name: support-{name}\n    subjects: {{teams: [support]}}\n    allow: [{{server: {name}, tools: [\"search_*\"]}}]\n"),
    )
    .await;
    gw
}

/// The demo over stdio as server `name`; `mark` tags its processes.
pub fn demo_yaml(name: &str, mark: &str, stdio: &str) -> String {
    format!("  - name: {name}\n    owner: eng\n    status: approved\n    transport: stdio\n    command: {DEMO_BIN}\n    env: {{TG_MARK: {mark}}}\n    stdio: {stdio}\n    tools: [{{name: search_issues}}, {{name: create_issue}}, {{name: delete_issue}}, {{name: long_report}}]\n")
}

/// Live child processes of this test process tagged `TG_MARK=mark`.
pub fn marked_children(mark: &str) -> usize {
    let me = std::process::id().to_string();
    let needle = format!("TG_MARK={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(me.as_str())
        })
        .filter(|e| {
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
        })
        .count()
}

/// Zombie children of this test process (exited, never reaped).
pub fn zombie_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let mut f = after.split_whitespace();
            f.next() == Some("Z") && f.next() == Some(me.as_str())
        })
        .count()
}

/// Waits up to 10 s for `cond`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

pub async fn delete(url: &str, token: &str, sid: &str) -> u16 {
    session_request(reqwest::Method::DELETE, url, token, sid)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
