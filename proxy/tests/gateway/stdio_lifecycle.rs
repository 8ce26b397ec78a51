//! The lifecycle of stdio server processes run by the gateway: sessions
//! ended, idle or over the pool's bound; shared processes stopped when
//! unused; config changes and removals.

use serde_json::json;

use crate::common::*;
use crate::stdio_fixture::*;

#[tokio::test]
async fn ended_session_is_gone_and_its_process_stopped() {
    let mark = "ended";
    let gw = gateway_with("tracker", &demo_yaml("tracker", mark, "{}")).await;
    let url = gw.url("tracker");
    let sid = open_session(&url, ALICE).await;
    assert_eq!(marked_children(mark), 1);
    assert_eq!(delete(&url, ALICE, &sid).await, 200);
    eventually("the process stops", || marked_children(mark) == 0).await;
    let r = post(
        &url,
        Some(ALICE),
        call(7, "search_issues", json!({"query": "a"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["id"], 7, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn idle_sessions_are_reaped() {
    let mark = "idle";
    let gw = gateway_with(
        "tracker",
        &demo_yaml("tracker", mark, "{idle_timeout_secs: 1}"),
    )
    .await;
    let url = gw.url("tracker");
    let sid = open_session(&url, ALICE).await;
    assert_eq!(marked_children(mark), 1);
    eventually("the idle session's process stops", || {
        marked_children(mark) == 0
    })
    .await;
    let r = post(
        &url,
        Some(ALICE),
        call(3, "search_issues", json!({"query": "a"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn the_process_pool_is_bounded() {
    let mark = "bounded";
    let gw = gateway_with("tracker", &demo_yaml("tracker", mark, "{max_processes: 2}")).await;
    let url = gw.url("tracker");
    let _a = open_session(&url, ALICE).await;
    let _b = open_session(&url, ALICE).await;
    let r = post(&url, Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["id"], 0);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_processes"),
        "{}",
        r.body
    );
    assert_eq!(marked_children(mark), 2);
    assert_eq!(delete(&url, ALICE, &_a).await, 200);
    eventually("a slot frees up", || marked_children(mark) == 1).await;
    open_session(&url, ALICE).await;
    gw.stop().await;
}

#[tokio::test]
async fn an_unused_shared_process_is_stopped_and_restarted_on_demand() {
    let mark = "shared-idle";
    let gw = gateway_with(
        "tracker",
        &demo_yaml("tracker", mark, "{mode: shared, idle_timeout_secs: 1}"),
    )
    .await;
    let url = gw.url("tracker");
    let sid = open_session(&url, ALICE).await;
    assert_eq!(delete(&url, ALICE, &sid).await, 200);
    assert_eq!(marked_children(mark), 1);
    eventually("the unused shared process stops", || {
        marked_children(mark) == 0
    })
    .await;
    let sid = open_session(&url, ALICE).await;
    let r = post(
        &url,
        Some(ALICE),
        call(2, "search_issues", json!({"query": "a"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(marked_children(mark), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_config_change_restarts_the_server_and_removal_stops_it() {
    let gw = gateway_with("tracker", &demo_yaml("tracker", "before-change", "{}")).await;
    let url = gw.url("tracker");
    open_session(&url, ALICE).await;
    assert_eq!(marked_children("before-change"), 1);
    let servers = |extra: &str| {
        format!("servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://127.0.0.1:9/mcp\n{extra}")
    };
    gw.edit(
        "servers.yaml",
        &servers(&demo_yaml("tracker", "after-change", "{}")),
    )
    .await;
    eventually("the old process stops", || {
        marked_children("before-change") == 0
    })
    .await;
    open_session(&url, ALICE).await;
    assert_eq!(
        marked_children("after-change"),
        1,
        "new sessions run the new spec"
    );
    gw.edit("policies.yaml", POLICIES).await;
    gw.edit("servers.yaml", &servers("")).await;
    eventually("a removed server's process stops", || {
        marked_children("after-change") == 0
    })
    .await;
    gw.stop().await;
}
