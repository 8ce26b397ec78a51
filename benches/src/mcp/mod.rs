//! MCP-session load testing: a mock MCP upstream ([`mock`]), simulated agents
//! ([`agent`]) over keep-alive connections ([`conn`]), and their report
//! ([`report`]). The binaries `mock-mcp`, `mcp-load` and `idle-streams` are
//! thin command lines over these.

pub mod agent;
pub mod conn;
pub mod mock;
pub mod report;
pub mod wire;

use std::sync::Arc;

use agent::Plan;
use report::Report;

/// Runs `agents` agents under `plan` and merges what they measured.
pub async fn run(plan: Plan, agents: usize) -> Report {
    let plan = Arc::new(plan);
    let window = (plan.end - plan.measure_from).as_secs_f64();
    let tasks: Vec<_> = (0..agents)
        .map(|i| tokio::spawn(agent::run(plan.clone(), i)))
        .collect();
    let mut recorders = Vec::with_capacity(agents);
    for t in tasks {
        if let Ok(r) = t.await {
            recorders.push(r);
        }
    }
    Report::merge(&recorders, window)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::agent::{Mix, Plan};
    use super::conn::{Conn, Target};
    use super::mock::{serve, MockOptions};
    use super::*;
    use http_body_util::BodyExt;

    async fn mock() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let options = MockOptions {
            token: Some("up".into()),
            ..MockOptions::default()
        };
        tokio::spawn(serve(listener, options));
        url
    }

    fn plan(target: Arc<Target>, token: &str, interval: Option<Duration>) -> Plan {
        let start = Instant::now();
        Plan {
            target,
            token: token.into(),
            mix: Mix::parse("list=1,call=2,large=1,sse=1").unwrap(),
            large_arguments: wire::large_arguments(20_000, 70_000),
            session_length: 7,
            timeout: Duration::from_secs(5),
            start,
            measure_from: start,
            end: start + Duration::from_millis(400),
            interval,
            stagger: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn agents_run_sessions_against_the_mock_without_errors() {
        let target = Target::resolve(&mock().await).await.unwrap();
        for interval in [None, Some(Duration::from_millis(5))] {
            let report = run(plan(target.clone(), "up", interval), 4).await;
            let j = report.json();
            assert_eq!(report.errors(), 0, "{}", report.table());
            for kind in ["initialize", "list", "call", "large", "sse"] {
                assert!(j["kinds"][kind]["requests"].as_u64().unwrap() > 0, "{kind}");
            }
        }
    }

    #[tokio::test]
    async fn a_wrong_token_is_counted_as_errors() {
        let target = Target::resolve(&mock().await).await.unwrap();
        let report = run(plan(target, "wrong", None), 1).await;
        assert!(report.errors() > 0);
        assert_eq!(
            report.json()["all"]["errors_by_cause"]["status"],
            report.errors()
        );
    }

    #[tokio::test]
    async fn the_get_stream_stays_open() {
        let target = Target::resolve(&mock().await).await.unwrap();
        let mut conn = Conn::new(target, "up").unwrap();
        let init = conn.post(None, wire::initialize(1).into()).await.unwrap();
        let session = init.session.unwrap();
        let resp = conn.open_stream(Some(&session)).await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b": stream open\n\n");
        let more = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
        assert!(more.is_err(), "the stream stays idle and open");
        assert!(!conn.is_closed());
    }
}
