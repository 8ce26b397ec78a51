//! Delegated (per-user) OAuth in the catalog: validation names the field; a
//! compiled upstream injects only the tokens the control plane shipped, by
//! principal, never a disabled principal's; without any, nobody gets one.

use catalog::delegated::DelegatedTokens;
use catalog::{parse_file, SnapshotDocument};

const BASE: &str = "teams: [{name: eng}]
principals:
  - {name: alice, kind: user, teams: [eng]}
  - {name: bob, kind: user, teams: [eng], disabled: true}
policies:
  - {name: eng, subjects: {teams: [eng]}, allow: [{server: tracker}]}
";

fn server(auth: &str) -> String {
    format!("servers:\n  - {{name: tracker, owner: eng, status: approved, endpoint: 'http://127.0.0.1:9/mcp', auth: {auth}}}\n")
}

fn document(auth: &str) -> SnapshotDocument {
    let sources = [
        ("base.yaml", BASE.to_string()),
        ("servers.yaml", server(auth)),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_string(), parse_file(name, &text).unwrap()))
    .collect();
    SnapshotDocument {
        version: 1,
        sources,
        ..Default::default()
    }
}

const AUTH: &str = "{type: oauth-authorization-code, authorization_url: 'https://as.example/authorize', token_url: 'https://as.example/token', client_id: toolgate}";

#[test]
fn only_shipped_tokens_of_enabled_principals_are_injected() {
    let mut doc = document(AUTH);
    let snapshot = doc.compile().unwrap();
    let delegated = snapshot
        .upstream("tracker")
        .unwrap()
        .delegated
        .clone()
        .unwrap();
    assert_eq!(
        delegated.connected(),
        0,
        "nobody until the control plane ships tokens"
    );
    assert!(delegated.token_for("alice").is_none());

    doc.delegated.insert(
        "tracker".into(),
        DelegatedTokens {
            connect_url: "https://cp.example/v1/connect/tracker".into(),
            tokens: [("alice", "at-alice"), ("bob", "at-bob")]
                .into_iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        },
    );
    let snapshot = doc.compile().unwrap();
    let up = snapshot.upstream("tracker").unwrap();
    assert!(up.credential.is_none(), "no shared credential");
    let delegated = up.delegated.clone().unwrap();
    let alice = delegated.token_for("alice").unwrap();
    assert_eq!(alice.to_str().unwrap(), "Bearer at-alice");
    assert!(alice.is_sensitive());
    assert!(delegated.token_for("bob").is_none(), "bob is disabled");
    assert_eq!(
        &*delegated.connect_url,
        "https://cp.example/v1/connect/tracker"
    );
    assert!(
        !format!("{delegated:?}").contains("at-alice"),
        "debug output hides tokens"
    );
}

#[test]
fn other_servers_have_no_delegated_auth() {
    let snapshot = document("{type: none}").compile().unwrap();
    assert!(snapshot.upstream("tracker").unwrap().delegated.is_none());
}

#[test]
fn invalid_settings_name_the_field() {
    let auth = "{type: oauth-authorization-code, authorization_url: 'ftp://x', token_url: 'https://as.example/token', client_id: '', client_secret: 'plain-text'}";
    let err = document(auth).compile().unwrap_err().to_string();
    assert!(err.contains("auth.authorization_url"), "{err}");
    assert!(err.contains("auth.client_id"), "{err}");
    assert!(err.contains("auth.client_secret"), "{err}");
    assert!(!err.contains("plain-text"), "{err}");
}
