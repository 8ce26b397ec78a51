//! `toolgate connect SERVER` against a real control plane: the user's
//! gateway token starts a connection and the command prints the
//! authorization URL (PKCE S256, the plane's callback as redirect URI);
//! `--disconnect` forgets it; without a token it says what is missing.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve;
use toolgate_control_plane::store::SqliteStore;

const ADMIN: &str = "admin-token-for-connect";
const PROXY: &str = "proxy-token-for-connect";
const ALICE: &str = "tg_alice_connect_0123456789";

fn toolgate(cp: std::net::SocketAddr, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_toolgate"));
    cmd.args(args)
        .env("TOOLGATE_URL", format!("http://{cp}"))
        .env_remove("TOOLGATE_TOKEN")
        .env("RUST_LOG", "error");
    if let Some(token) = token {
        cmd.env("TOOLGATE_TOKEN", token);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_prints_the_authorization_url() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let files = [
        ("teams.yaml", "teams: [{name: eng}]\n".to_string()),
        ("servers.yaml", "servers:\n  - {name: tracker, owner: eng, status: approved, endpoint: 'http://127.0.0.1:9/mcp', auth: {type: oauth-authorization-code, authorization_url: 'https://as.example/authorize', token_url: 'https://as.example/token', client_id: toolgate, scope: tickets}}\n".to_string()),
        ("principals.yaml", format!("principals:\n  - {{name: alice, kind: user, teams: [eng], tokens: [{{name: laptop, sha256: {}}}]}}\n", hex::encode(catalog::token_digest(ALICE)))),
        ("policies.yaml", "policies:\n  - {name: eng, subjects: {teams: [eng]}, allow: [{server: tracker}]}\n".to_string()),
    ];
    for (name, text) in files {
        std::fs::write(config.join(name), text).unwrap();
    }
    let keyring = Keyring::new(MasterKey::parse(&"c4".repeat(32)).unwrap(), vec![]);
    let (store, _) = SqliteStore::open(&root.path().join("toolgate.db"))
        .unwrap()
        .with_keyring(keyring)
        .unwrap();
    let registry = Registry::open(&config, Box::new(store)).unwrap();
    let audit = Arc::new(AuditStore::open(&root.path().join("audit.db"), 90).unwrap());
    let keys = ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp = serve::start(listener, registry, audit, keys, Duration::from_secs(5)).unwrap();
    let addr = cp.addr;

    let out = toolgate(addr, Some(ALICE), &["connect", "tracker"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout
        .split_whitespace()
        .find(|w| w.starts_with("https://as.example/authorize?"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let url = reqwest::Url::parse(url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "toolgate");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["state"].len(), 43);
    assert_eq!(q["scope"], "tickets");
    assert_eq!(
        q["redirect_uri"],
        format!("http://{addr}/v1/connect/callback")
    );
    assert!(!stdout.contains(ALICE), "the gateway token is not printed");

    let out = toolgate(addr, Some(ALICE), &["connect", "tracker", "--disconnect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("disconnected"));

    let out = toolgate(addr, None, &["connect", "tracker"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOOLGATE_TOKEN"));
    let out = toolgate(addr, Some("tg_not_a_token"), &["connect", "tracker"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = toolgate(addr, Some(ALICE), &["connect", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    cp.stop().await;
}
