//! The connect flow, per-user injection, refresh, and a refused refresh.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::fixture::*;
use crate::peers::CLIENT_SECRET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_connect_their_own_accounts_and_each_call_carries_the_callers_token() {
    let plane = Plane::start().await;
    let (auth, seen, cp_addr) = (&plane.auth, &plane.seen, plane.cp);
    let (url, connect_url) = (plane.url.clone(), plane.connect_url.clone());
    let data = plane.data();

    // Not connected: a JSON-RPC error with the request id naming where to
    // connect, and nothing reaches the upstream.
    let (status, body) = call(&url, ALICE).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&connect_url),
        "{body}"
    );
    assert_eq!(body["error"]["data"]["connect_url"], connect_url.as_str());
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );

    // Starting requires the user's own gateway token.
    let (status, _) = open(&connect_url).await;
    assert_eq!(status, 401);

    // A forged or replayed state is refused; a code bound to another
    // attempt's PKCE challenge is refused by the authorization server.
    let (status, _) = open(&format!(
        "http://{cp_addr}/v1/connect/callback?code=x&state=forged"
    ))
    .await;
    assert_eq!(status, 400);
    let first = start(cp_addr, ALICE).await;
    let second = start(cp_addr, ALICE).await;
    let state_of = |u: &str| {
        reqwest::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .to_string()
    };
    let code_of = |u: &str| {
        reqwest::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .to_string()
    };
    let back = sign_in(&second, "alice").await;
    let crossed = format!(
        "http://{cp_addr}/v1/connect/callback?code={}&state={}",
        code_of(&back),
        state_of(&first)
    );
    let (status, page) = open(&crossed).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    let (status, _) = open(&crossed).await;
    assert_eq!(status, 400, "a state is single-use");
    let (status, _) = open(&back).await;
    assert_eq!(status, 502, "an authorization code is single-use too");

    connect(cp_addr, ALICE, "alice").await;

    // Bob connects too; each call carries its caller's own token.
    connect(cp_addr, BOB, "bob").await;
    eventually("alice's and bob's calls go through", || async {
        call(&url, ALICE).await.0 == 200 && call(&url, BOB).await.0 == 200
    })
    .await;
    seen.lock().unwrap().clear();
    assert_eq!(call(&url, ALICE).await.0, 200);
    assert_eq!(call(&url, BOB).await.0, 200);
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["alice".to_string(), "bob".to_string()]
    );
    let (status, body) = call(&url, CAROL).await;
    assert_eq!(
        status, 403,
        "carol never connected: no fallback to another's token"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "{body}");

    // Tokens live 3 s: they are refreshed (rotating refresh tokens) and calls keep working.
    let before = auth.refreshes.load(Ordering::SeqCst);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            call(&url, ALICE).await.0,
            200,
            "alice's refreshed token is injected"
        );
        assert_eq!(
            call(&url, BOB).await.0,
            200,
            "bob's refreshed token is injected"
        );
    }
    assert!(
        auth.refreshes.load(Ordering::SeqCst) >= before + 2,
        "tokens were refreshed"
    );
    assert!(seen.lock().unwrap().iter().all(|u| u != "(none)"));

    // Refresh tokens are sealed at rest; views show no token.
    let issued = auth.issued_refresh.lock().unwrap().clone();
    for (file, bytes) in files_text(&data) {
        for rt in &issued {
            assert!(
                !contains(&bytes, rt),
                "{file} holds refresh token {rt} in plain text"
            );
        }
    }
    let view = admin(reqwest::Method::GET, cp_addr, "/v1/servers/tracker").await;
    assert_eq!(view["auth"], "oauth-authorization-code");
    assert_eq!(view["delegated"]["connected_users"], 2, "{view}");
    let connections = admin(
        reqwest::Method::GET,
        cp_addr,
        "/v1/servers/tracker/connections",
    )
    .await;
    assert_eq!(connections.as_array().unwrap().len(), 2, "{connections}");
    for text in [view.to_string(), connections.to_string()] {
        assert!(
            !text.contains("at-") && !text.contains("rt-") && !text.contains(CLIENT_SECRET),
            "{text}"
        );
    }

    // The authorization server refuses to refresh: visible (status, metric),
    // and once the token expires the user is told to reconnect.
    *auth.refuse_refresh.lock().unwrap() = Some("alice".into());
    eventually("alice must reconnect", || async {
        let c = admin(
            reqwest::Method::GET,
            cp_addr,
            "/v1/servers/tracker/connections",
        )
        .await;
        c.as_array()
            .unwrap()
            .iter()
            .any(|c| c["principal"] == "alice" && c["needs_reconnect"] == true)
    })
    .await;
    let c = admin(
        reqwest::Method::GET,
        cp_addr,
        "/v1/servers/tracker/connections",
    )
    .await;
    let alice = c
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["principal"] == "alice")
        .unwrap()
        .clone();
    assert!(
        alice["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{alice}"
    );
    let metrics = reqwest::get(format!("http://{cp_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("toolgate_cp_credential_refresh_failures_total{server=\"tracker\"}")),
        "{metrics}"
    );
    assert!(!metrics.contains("at-") && !metrics.contains("rt-"));
    eventually("alice is refused with the connect URL", || async {
        let (status, body) = call(&url, ALICE).await;
        status == 403 && body["error"]["data"]["connect_url"] == connect_url.as_str()
    })
    .await;
    *auth.refuse_refresh.lock().unwrap() = None;
    connect(cp_addr, ALICE, "alice").await;
    eventually("alice's reconnected account works", || async {
        call(&url, ALICE).await.0 == 200
    })
    .await;

    plane.stop().await;
}
