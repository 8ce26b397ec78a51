//! Offboarding in one action: `toolgate principal disable NAME` against a
//! real control plane, and a proxy following it refuses every token of that
//! principal with the next snapshot (the time it takes is printed).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve;
use toolgate_control_plane::store::SqliteStore;
use toolgate_proxy::remote::ControlPlane;

const ADMIN: &str = "admin-token-for-offboarding";
const PROXY: &str = "proxy-token-for-offboarding";
const ALICE_LAPTOP: &str = "tg_alice_laptop_0123456789";
const ALICE_CI: &str = "tg_alice_ci_0123456789abcd";

fn write_config(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let d = |t: &str| hex::encode(catalog::token_digest(t));
    let files = [
        ("teams.yaml", "teams: [{name: eng}]\n".to_string()),
        // Nothing listens upstream: an admitted call gets 502, a refused one 401.
        ("servers.yaml", "servers:\n  - {name: demo, owner: eng, status: approved, endpoint: 'http://127.0.0.1:9/mcp'}\n".to_string()),
        ("principals.yaml", format!("principals:\n  - {{name: alice, kind: user, teams: [eng], tokens: [{{name: laptop, sha256: {}}}, {{name: ci, sha256: {}}}]}}\n", d(ALICE_LAPTOP), d(ALICE_CI))),
        ("policies.yaml", "policies:\n  - {name: eng, subjects: {teams: [eng]}, allow: [{server: demo}]}\n".to_string()),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

async fn status(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn toolgate(cp: std::net::SocketAddr, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .env("TOOLGATE_URL", format!("http://{cp}"))
        .env("TOOLGATE_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn until_status(url: &str, token: &str, want: u16) -> Duration {
    let start = Instant::now();
    while status(url, token).await != want {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "status {want} never came"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_principal_refuses_all_its_tokens_on_the_proxy() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    write_config(&config);
    let store = SqliteStore::open(&root.path().join("toolgate.db")).unwrap();
    let registry = Registry::open(&config, Box::new(store)).unwrap();
    let audit = Arc::new(AuditStore::open(&root.path().join("audit.db"), 90).unwrap());
    let keys = ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = serve::start(listener, registry, audit, keys, Duration::from_secs(5)).unwrap();
    let remote = ControlPlane {
        url: format!("http://{}", cp.addr),
        token: PROXY.into(),
        cache: root.path().join("snapshot.json"),
    };
    let snapshots = Arc::new(ArcSwap::from_pointee(remote.bootstrap().await.unwrap()));
    let follower = tokio::spawn(remote.follow(snapshots.clone()));
    let proxy =
        toolgate_proxy::server::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), snapshots)
            .unwrap();
    let url = format!("http://{}/mcp/demo", proxy.addr);
    assert_eq!(
        status(&url, ALICE_LAPTOP).await,
        502,
        "admitted (nothing upstream)"
    );

    let cp_addr = cp.addr;
    let cli =
        tokio::task::spawn_blocking(move || toolgate(cp_addr, &["principal", "disable", "alice"]));
    let took = until_status(&url, ALICE_LAPTOP, 401).await;
    cli.await.unwrap();
    assert_eq!(status(&url, ALICE_CI).await, 401, "every token of hers");
    println!("offboarding reached the proxy in {took:?} (CLI start included)");

    let cp_addr = cp.addr;
    tokio::task::spawn_blocking(move || toolgate(cp_addr, &["principal", "enable", "alice"]))
        .await
        .unwrap();
    until_status(&url, ALICE_CI, 502).await;
    follower.abort();
    proxy.stop().await;
    cp.stop().await;
}
