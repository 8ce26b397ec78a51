//! Sign-in with an OpenID provider: a real one on loopback (npm
//! `oauth2-mock-server`, started by `oidc_idp.mjs`) signs RS256 / ES256
//! tokens; the gateway fetches its JWKS when compiling `config/`, verifies
//! tokens locally, and grants by the IdP groups mapped to teams.
//!
//! Needs node and the package (scripts/install-test-peers.sh). Without them
//! the tests are skipped with a message, except under CI, where they fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::*;

const AUDIENCE: &str = "https://toolgate.test";
const INSTALL_HINT: &str =
    "run scripts/install-test-peers.sh (or set TOOLGATE_NODE / TOOLGATE_NODE_PATH)";

/// The node binary and the `node_modules` holding oauth2-mock-server, or
/// `None` (test skipped) when they are missing outside CI.
fn node_peer() -> Option<(PathBuf, PathBuf)> {
    let node = std::env::var_os("TOOLGATE_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    let given = std::env::var_os("TOOLGATE_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("toolgate-peers/node"));
    let modules = [given.join("node_modules"), given.clone()]
        .into_iter()
        .find(|d| d.join("oauth2-mock-server/package.json").is_file());
    let runs = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (runs, modules) {
        (true, Some(modules)) => Some((node, modules)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("node or oauth2-mock-server is missing: {INSTALL_HINT}")
        }
        _ => {
            eprintln!(
                "skipping the OIDC test: node or oauth2-mock-server is missing ({INSTALL_HINT})"
            );
            None
        }
    }
}

/// A running OpenID provider that mints tokens on request.
struct Idp {
    issuer: String,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl Idp {
    async fn start() -> Option<Idp> {
        let (node, modules) = node_peer()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/oidc_idp.mjs");
        let mut child = Command::new(node)
            .arg(script)
            .env("TOOLGATE_NODE_PATH", modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), stdout.next_line())
            .await
            .expect("the IdP starts within 20 s")
            .unwrap()
            .expect("the IdP prints its issuer");
        let issuer = serde_json::from_str::<Value>(&first).unwrap()["issuer"]
            .as_str()
            .unwrap()
            .to_string();
        Some(Idp {
            issuer,
            stdin,
            stdout,
            _child: child,
        })
    }

    /// A token signed with key `kid`, with `claims` over the defaults.
    async fn mint(&mut self, kid: &str, claims: Value, unset: &[&str], expires_in: i64) -> String {
        let req = json!({"kid": kid, "claims": claims, "unset": unset, "expires_in": expires_in});
        self.stdin
            .write_all(format!("{req}\n").as_bytes())
            .await
            .unwrap();
        let line = self.stdout.next_line().await.unwrap().expect("an answer");
        let answer: Value = serde_json::from_str(&line).unwrap();
        answer["token"]
            .as_str()
            .unwrap_or_else(|| panic!("the IdP refused: {answer}"))
            .to_string()
    }

    /// An RS256 token for `email` in `groups`, for the gateway's audience.
    async fn user(&mut self, email: &str, groups: &[&str]) -> String {
        let claims = json!({"sub": "id-1", "email": email, "groups": groups, "aud": AUDIENCE, "azp": "laptop-agent"});
        self.mint("rs256", claims, &[], 600).await
    }
}

fn idp_yaml(issuer: &str) -> String {
    format!(
        "identity_providers:\n  - name: corp\n    issuer: {issuer}\n    audience: {AUDIENCE}\n    principal_claim: email\n    groups_to_teams: {{engineers: eng, helpdesk: support}}\n"
    )
}

/// A gateway whose config signs in with `idp`.
async fn gateway_with(idp: &Idp) -> (Upstream, Gateway) {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    gw.edit("idp.yaml", &idp_yaml(&idp.issuer)).await;
    (upstream, gw)
}

/// Calls `tool` in a fresh session: `Ok(())` when it ran, `Err(message)` when refused.
async fn call_tool(url: &str, token: &str, tool: &str) -> Result<(), String> {
    let sid = open_session(url, token).await;
    let args = if tool == "create_issue" {
        json!({"title": "From SSO"})
    } else if tool == "delete_issue" {
        json!({"id": 0})
    } else {
        json!({"query": "Login"})
    };
    let r = post(url, Some(token), call(7, tool, args), &in_session(&sid)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reply = r.messages().pop().unwrap();
    match reply.get("error") {
        Some(e) => Err(e["message"].as_str().unwrap_or("").to_string()),
        None => Ok(()),
    }
}

fn challenge(r: &Reply) -> String {
    r.headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn idp_groups_grant_their_teams_and_moving_groups_changes_access() {
    let Some(mut idp) = Idp::start().await else {
        return;
    };
    let (_upstream, gw) = gateway_with(&idp).await;
    let url = gw.url("demo");

    // engineers → eng: everything on demo but delete_*.
    let eng = idp
        .user("dana@example.com", &["engineers", "unmapped"])
        .await;
    assert_eq!(call_tool(&url, &eng, "create_issue").await, Ok(()));
    assert_eq!(
        call_tool(&url, &eng, "delete_issue").await,
        Err("tool not available: delete_issue".to_string())
    );

    // The same person moved to helpdesk in the IdP: a new token, no config change.
    let version = gw.store.load().version;
    let support = idp.user("dana@example.com", &["helpdesk"]).await;
    assert_eq!(call_tool(&url, &support, "search_issues").await, Ok(()));
    assert_eq!(
        call_tool(&url, &support, "create_issue").await,
        Err("tool not available: create_issue".to_string())
    );
    assert_eq!(gw.store.load().version, version, "no config change");

    // ES256 works too; no mapped group: the server does not exist for them.
    let es = idp
        .mint(
            "es256",
            json!({"email": "eve@example.com", "groups": ["helpdesk"], "aud": [AUDIENCE, "other"]}),
            &[],
            600,
        )
        .await;
    assert_eq!(call_tool(&url, &es, "search_issues").await, Ok(()));
    let nobody = idp.user("finn@example.com", &["marketing"]).await;
    let r = post(&url, Some(&nobody), INIT, &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // PATs keep working beside JWTs.
    assert_eq!(call_tool(&url, ALICE, "create_issue").await, Ok(()));
    assert_eq!(
        call_tool(&url, BOB, "create_issue").await,
        Err("tool not available: create_issue".to_string())
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_declared_idp_principal_gets_its_policies_and_can_be_disabled() {
    let Some(mut idp) = Idp::start().await else {
        return;
    };
    let (_upstream, gw) = gateway_with(&idp).await;
    let url = gw.url("demo");
    let grace = "principals:\n  - {name: grace@example.com, kind: user, identity_provider: corp, disabled: DISABLED}\n";
    let policy = "policies:\n  - name: grace-deletes\n    subjects: {principals: [grace@example.com]}\n    allow: [{server: demo, tools: [delete_issue]}]\n";
    gw.edit(
        "grace.yaml",
        &format!("{}{policy}", grace.replace("DISABLED", "false")),
    )
    .await;
    let token = idp.user("grace@example.com", &["helpdesk"]).await;
    // helpdesk (search) plus the policy naming her (delete).
    assert_eq!(call_tool(&url, &token, "search_issues").await, Ok(()));
    assert_eq!(call_tool(&url, &token, "delete_issue").await, Ok(()));
    assert!(call_tool(&url, &token, "create_issue").await.is_err());

    gw.edit(
        "grace.yaml",
        &format!("{}{policy}", grace.replace("DISABLED", "true")),
    )
    .await;
    let r = post(&url, Some(&token), INIT, &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn tokens_that_do_not_verify_get_401_pointing_at_the_metadata() {
    let Some(mut idp) = Idp::start().await else {
        return;
    };
    let Some(mut other) = Idp::start().await else {
        return;
    };
    let (_upstream, gw) = gateway_with(&idp).await;
    let url = gw.url("demo");
    let metadata = format!(
        "resource_metadata=\"http://{}/.well-known/oauth-protected-resource/mcp/demo\"",
        gw.addr
    );
    let good = json!({"email": "dana@example.com", "groups": ["engineers"], "aud": AUDIENCE});
    let with = |extra: Value| {
        let mut c = good.clone();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };

    // Control: the good token is accepted.
    let ok = idp.mint("rs256", good.clone(), &[], 600).await;
    assert_eq!(post(&url, Some(&ok), INIT, &[]).await.status, 200);

    // A public key used as an HMAC secret (the classic algorithm confusion).
    let jwks = reqwest::get(format!("{}/jwks", idp.issuer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let claims = with(json!({"iss": idp.issuer, "exp": now() + 600}));
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT","kid":"rs256"}"#),
        b64(claims.to_string().as_bytes())
    );
    let hs256 = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(jwks.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
    };

    let cases = [
        (
            "signed by another IdP's key",
            other
                .mint("rs256", with(json!({"iss": idp.issuer})), &[], 600)
                .await,
        ),
        (
            "wrong audience",
            idp.mint(
                "rs256",
                with(json!({"aud": "https://other.example"})),
                &[],
                600,
            )
            .await,
        ),
        (
            "no audience",
            idp.mint("rs256", good.clone(), &["aud"], 600).await,
        ),
        (
            "wrong issuer",
            idp.mint(
                "es256",
                with(json!({"iss": "http://localhost:1/elsewhere"})),
                &[],
                600,
            )
            .await,
        ),
        ("expired", idp.mint("rs256", good.clone(), &[], -3600).await),
        (
            "not yet valid",
            idp.mint("rs256", with(json!({"nbf": now() + 3600})), &[], 7200)
                .await,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims.to_string().as_bytes())
            ),
        ),
        ("HS256 with the public key", hs256),
        ("unknown kid", {
            let t = idp.mint("rs256", good.clone(), &[], 600).await;
            let (_, rest) = t.split_once('.').unwrap();
            format!(
                "{}.{rest}",
                b64(br#"{"alg":"RS256","typ":"JWT","kid":"rotated"}"#)
            )
        }),
    ];
    for (what, token) in cases {
        let r = post(&url, Some(&token), INIT, &[]).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        let c = challenge(&r);
        assert!(c.contains(r#"error="invalid_token""#), "{what}: {c}");
        assert!(c.contains(&metadata), "{what}: {c}");
    }

    // No token at all: a challenge without an error, pointing at the metadata.
    let r = post(&url, None, INIT, &[]).await;
    assert_eq!(r.status, 401);
    let c = challenge(&r);
    assert!(
        c.starts_with(r#"Bearer realm="toolgate""#) && c.contains(&metadata),
        "{c}"
    );
    assert!(!c.contains("error="), "{c}");
    gw.stop().await;
}

#[tokio::test]
async fn the_protected_resource_metadata_names_the_issuers() {
    let Some(idp) = Idp::start().await else {
        return;
    };
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let well_known = |path: &str| {
        format!(
            "http://{}/.well-known/oauth-protected-resource{path}",
            gw.addr
        )
    };
    let get = |url: String| async move {
        let r = reqwest::get(url).await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };

    // Without identity providers there is nothing to discover.
    assert_eq!(get(well_known("")).await.0, 404);
    let r = post(&gw.url("demo"), None, INIT, &[]).await;
    assert!(!challenge(&r).contains("resource_metadata"));

    gw.edit("idp.yaml", &idp_yaml(&idp.issuer)).await;
    let (status, doc) = get(well_known("")).await;
    assert_eq!(status, 200);
    assert_eq!(
        doc,
        json!({
            "resource": format!("http://{}", gw.addr),
            "authorization_servers": [idp.issuer],
            "bearer_methods_supported": ["header"],
        })
    );
    let (status, doc) = get(well_known("/mcp/demo")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["resource"], format!("http://{}/mcp/demo", gw.addr));
    // Any well-formed server name: the document reveals no catalog.
    assert_eq!(get(well_known("/mcp/unknown")).await.0, 200);
    assert_eq!(get(well_known("/elsewhere")).await.0, 404);

    // The external URL and scopes, when configured.
    gw.edit(
        "gateway.yaml",
        &format!("gateway:\n  max_body_bytes: {BODY_CAP}\n  public_url: https://mcp.example.com/\n  scopes_supported: [mcp.tools]\n"),
    )
    .await;
    let (_, doc) = get(well_known("/mcp/demo")).await;
    assert_eq!(doc["resource"], "https://mcp.example.com/mcp/demo");
    assert_eq!(doc["scopes_supported"], json!(["mcp.tools"]));
    let r = post(&gw.url("demo"), None, INIT, &[]).await;
    assert!(
        challenge(&r).contains(r#"resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp/demo""#),
        "{}",
        challenge(&r)
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_team_in_the_mapping_is_refused_with_file_and_field() {
    let files = [(
        "idp.yaml".to_string(),
        "teams: [{name: eng}]\nidentity_providers:\n  - {name: corp, issuer: \"https://idp.example.com\", audience: x, groups_to_teams: {devs: eng, ops: operations}}\n".to_string(),
    )];
    let err = catalog::load(&files).unwrap_err().to_string();
    assert_eq!(
        err,
        r#"idp.yaml: identity_providers[0].groups_to_teams.ops: unknown team "operations""#
    );
}

#[tokio::test]
async fn an_open_stream_ends_when_its_jwt_expires() {
    stream_ends_when_its_jwt_expires(None).await;
}

#[tokio::test]
async fn an_open_virtual_server_stream_ends_when_its_jwt_expires() {
    let desk = "virtual_servers:\n  - {name: desk, tools: [{server: demo, tools: [search_issues]}], access: {teams: [eng]}}\n";
    stream_ends_when_its_jwt_expires(Some(desk)).await;
}

/// A `GET` stream opened with a JWT about to expire, to `demo` or to the
/// virtual server `desk` that `virtual_yaml` defines.
async fn stream_ends_when_its_jwt_expires(virtual_yaml: Option<&str>) {
    let Some(mut idp) = Idp::start().await else {
        return;
    };
    let (_upstream, gw) = gateway_with(&idp).await;
    let url = match virtual_yaml {
        Some(yaml) => {
            gw.edit("virtual.yaml", yaml).await;
            gw.url("desk")
        }
        None => gw.url("demo"),
    };
    // Expired 50 s ago: still inside the 60 s leeway for about 10 s.
    let claims = json!({"sub": "id-1", "email": "dana@example.com", "groups": ["engineers"], "aud": AUDIENCE, "azp": "laptop-agent"});
    let token = idp.mint("rs256", claims, &[], -50).await;
    let sid = open_session(&url, &token).await;
    let mut stream = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // No snapshot changes meanwhile: the periodic sweep ends it.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its token");
    let after = post(&url, Some(&token), INIT, &[]).await;
    assert_eq!(after.status, 401, "the token itself is refused by now");
    gw.stop().await;
}
