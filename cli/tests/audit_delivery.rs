//! Audit delivery across crashes, with the real `toolgate` processes:
//! the control plane killed (SIGKILL) during a burst of calls, and the proxy
//! killed with records in its spool. Every record arrives exactly once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use toolgate_proxy::demo::{self, DemoOptions};

const ADMIN: &str = "tg_admin_test_token_0123456789";
const PROXY: &str = "tg_proxy_test_token_0123456789";
const ALICE: &str = "tg_alice_test_token_0123456789";

/// A `toolgate` child process whose log lines are collected; killed on drop.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(args)
            .env("TOOLGATE_ADMIN_TOKEN", ADMIN)
            .env("TOOLGATE_PROXY_TOKEN", PROXY)
            .env("TOOLGATE_MASTER_KEY", "ab".repeat(32))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("toolgate starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        Proc { child, log }
    }

    /// The first log line containing `needle` (waits up to 60 s).
    async fn line_with(&self, needle: &str) -> String {
        for _ in 0..600 {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no log line with {needle:?}: {:#?}",
            self.log.lock().unwrap()
        );
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `127.0.0.1:PORT` after `marker` in a log line.
fn addr_after(line: &str, marker: &str) -> String {
    let rest = &line[line.find(marker).expect("marker") + marker.len()..];
    rest.chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect()
}

async fn start_control_plane(config: &Path, db: &Path, listen: &str) -> (Proc, String) {
    let cp = Proc::spawn(&[
        "control-plane",
        "--config",
        config.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--listen",
        listen,
    ]);
    let line = cp.line_with("control plane API").await;
    let addr = addr_after(&line, "addr=");
    (cp, addr)
}

async fn start_proxy(cp: &str, dir: &Path) -> (Proc, String) {
    let proxy = Proc::spawn(&[
        "proxy",
        "--control-plane",
        &format!("http://{cp}"),
        "--cache",
        dir.join("snapshot.json").to_str().unwrap(),
        "--audit-spool",
        dir.join("spool").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
    ]);
    let line = proxy.line_with("agents connect to http://").await;
    let addr = addr_after(&line, "agents connect to http://");
    (proxy, addr)
}

async fn call(gateway: &str, id: usize) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "search_issues", "arguments": {"query": format!("q{id}")}}});
    let resp = reqwest::Client::new()
        .post(format!("http://{gateway}/mcp/demo"))
        .bearer_auth(ALICE)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(
        resp.status(),
        200,
        "call {id}: {}",
        resp.text().await.unwrap()
    );
}

/// Request ids of every stored record, with how often each is stored.
async fn stored_ids(cp: &str) -> Option<BTreeMap<u64, usize>> {
    let resp = reqwest::Client::new()
        .get(format!("http://{cp}/v1/audit?server=demo&limit=10000"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .ok()?;
    let page: Value = resp.json().await.ok()?;
    let mut ids = BTreeMap::new();
    for r in page["records"].as_array()? {
        *ids.entry(r["request_id"].as_u64()?).or_insert(0) += 1;
    }
    Some(ids)
}

async fn wait_until_stored(cp: &str, expected: usize) -> BTreeMap<u64, usize> {
    let mut last = None;
    for _ in 0..600 {
        if let Some(ids) = stored_ids(cp).await {
            if ids.values().sum::<usize>() >= expected {
                return ids;
            }
            last = Some(ids.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {expected} records, the control plane has {last:?}");
}

fn spooled_records(spool: &Path) -> u64 {
    std::fs::read_dir(spool)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| {
                    n.strip_suffix(".jsonl")?
                        .split_once('-')?
                        .1
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        })
        .unwrap_or(0)
}

fn write_config(dir: &Path, upstream: std::net::SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let digest = hex::encode(catalog::token_digest(ALICE));
    let files = [
        ("teams.yaml", "teams: [{name: eng}]\n".to_string()),
        (
            "servers.yaml",
            format!("servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://{upstream}/mcp\n    tools: [{{name: search_issues}}]\n"),
        ),
        (
            "principals.yaml",
            format!("principals:\n  - name: alice\n    kind: user\n    teams: [eng]\n    tokens: [{{name: laptop, sha256: {digest}}}]\n"),
        ),
        (
            "policies.yaml",
            "policies:\n  - name: eng\n    subjects: {teams: [eng]}\n    allow: [{server: demo}]\n".to_string(),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_audit_record_is_lost_or_doubled_when_either_plane_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let options = DemoOptions {
        token: None,
        json_response: true,
        sessions: false,
    };
    tokio::spawn(demo::serve(listener, options, cancel.clone()));
    let config = tmp.path().join("config");
    write_config(&config, upstream);
    let db = tmp.path().join("cp").join("toolgate.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();

    let (mut cp, cp_addr) = start_control_plane(&config, &db, "127.0.0.1:0").await;
    let (mut proxy, gateway) = start_proxy(&cp_addr, tmp.path()).await;

    // 1. A burst of 300 calls from 10 agents; the control plane is killed
    //    after about 100 and restarted once the burst is over.
    let done = Arc::new(AtomicUsize::new(0));
    let mut agents = Vec::new();
    for agent in 0..10 {
        let (gateway, done) = (gateway.clone(), done.clone());
        agents.push(tokio::spawn(async move {
            for i in 0..30 {
                call(&gateway, agent * 30 + i).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while done.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cp.kill9();
    for a in agents {
        a.await.unwrap();
    }
    // Each request's log line sits in its span, which names its trace id.
    let line = proxy.line_with("request{trace_id=").await;
    assert!(
        line.contains(": request ") && line.contains("status=200"),
        "{line}"
    );
    let (cp2, _) = start_control_plane(&config, &db, &cp_addr).await;
    cp = cp2;
    let ids = wait_until_stored(&cp_addr, 300).await;
    assert_eq!(ids.len(), 300, "every call has a record");
    assert!(
        ids.values().all(|&n| n == 1),
        "no record stored twice: {ids:?}"
    );
    assert_eq!(
        ids.keys().copied().collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );

    // 2. The control plane is down; 50 calls' records wait in the proxy's
    //    spool; the proxy is killed; both come back; the records arrive.
    cp.kill9();
    for id in 1000..1050 {
        call(&gateway, id).await;
    }
    let spool = tmp.path().join("spool");
    for _ in 0..100 {
        if spooled_records(&spool) >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(spooled_records(&spool), 50, "records wait on disk");
    proxy.kill9();
    let (_cp, _) = start_control_plane(&config, &db, &cp_addr).await;
    let (_proxy, _) = start_proxy(&cp_addr, tmp.path()).await;
    let ids = wait_until_stored(&cp_addr, 350).await;
    assert_eq!(ids.len(), 350);
    assert!(ids.values().all(|&n| n == 1), "no record stored twice");
    assert!((1000..1050).all(|id| ids.contains_key(&id)));
    cancel.cancel();
}
