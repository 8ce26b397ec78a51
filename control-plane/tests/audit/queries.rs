//! Queries, exports, retention and persistence of the audit trail.

use super::*;

/// 60 varied records, one a minute back from `now`, ingested over HTTP.
async fn seeded(cp: &Cp, now: i64) -> Vec<AuditRecord> {
    let records: Vec<AuditRecord> = (0..60)
        .map(|n| record(n, now - n as i64 * 60_000))
        .collect();
    assert_eq!(ingest(cp, Some(PROXY), jsonl(&records)).await.0, 200);
    records
}

/// Which records a query should return.
type Keep = Box<dyn Fn(&AuditRecord) -> bool>;

fn expected(records: &[AuditRecord], keep: impl Fn(&AuditRecord) -> bool) -> Vec<String> {
    let mut kept: Vec<&AuditRecord> = records.iter().filter(|r| keep(r)).collect();
    kept.sort_by(|a, b| (b.ts_ms, &b.id).cmp(&(a.ts_ms, &a.id)));
    kept.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_selects_matching_records() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let records = seeded(&cp, now_ms()).await;
    let some = |v: &Option<String>, want: &str| v.as_deref() == Some(want);
    let trace7 = records[7].trace_id.clone().unwrap();
    let cases: Vec<(&str, &str, Keep)> = vec![
        (
            "principal",
            "bob",
            Box::new(move |r| some(&r.principal, "bob")),
        ),
        (
            "agent",
            "nightly",
            Box::new(move |r| some(&r.agent, "nightly")),
        ),
        (
            "server",
            "prod-data",
            Box::new(move |r| some(&r.server, "prod-data")),
        ),
        (
            "tool",
            "delete_table",
            Box::new(move |r| some(&r.tool, "delete_table")),
        ),
        (
            "method",
            "tools/list",
            Box::new(move |r| some(&r.method, "tools/list")),
        ),
        (
            "decision",
            "deny",
            Box::new(|r| r.decision == Decision::Deny),
        ),
        (
            "decision",
            "allow",
            Box::new(|r| r.decision == Decision::Allow),
        ),
        (
            "outcome",
            "tool_error",
            Box::new(|r| r.outcome == Outcome::ToolError),
        ),
        (
            "session_id",
            "session-3",
            Box::new(move |r| some(&r.session_id, "session-3")),
        ),
        (
            "trace_id",
            &trace7,
            Box::new(|r| r.id == format!("{:032x}", 7)),
        ),
        ("gateway", "gw-1", Box::new(|r| r.gateway == "gw-1")),
    ];
    for (param, value, keep) in cases {
        let want = expected(&records, keep);
        assert!(!want.is_empty(), "{param}={value} selects something");
        let got = ids(&get(&cp, &format!("{param}={}&limit=1000", enc(value))).await);
        assert_eq!(got, want, "{param}={value}");
    }
    // Filters combine (AND).
    let got = ids(&get(&cp, "server=prod-data&decision=deny&principal=alice").await);
    let want = expected(&records, |r| {
        some(&r.server, "prod-data") && r.decision == Decision::Deny && some(&r.principal, "alice")
    });
    assert_eq!(got, want);
    assert_eq!(ids(&get(&cp, "server=nowhere").await), Vec::<String>::new());
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_until_take_durations_and_timestamps() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let ages = [40 * DAY, 10 * DAY, 2 * HOUR, 10 * 60_000, 30_000];
    let records: Vec<AuditRecord> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| record(i, now - age))
        .collect();
    assert_eq!(ingest(&cp, Some(PROXY), jsonl(&records)).await.0, 200);
    let count = |v: Value| v["records"].as_array().unwrap().len();
    assert_eq!(count(get(&cp, "since=30d").await), 4);
    assert_eq!(count(get(&cp, "since=3h").await), 3);
    assert_eq!(count(get(&cp, "since=15m").await), 2);
    assert_eq!(count(get(&cp, "since=90s").await), 1);
    assert_eq!(count(get(&cp, "until=1d").await), 2);
    assert_eq!(count(get(&cp, "since=30d&until=1h").await), 2);

    // Absolute: `since` is inclusive, `until` exclusive; offsets are honoured.
    let at = records[2].ts_ms;
    let q = |since: i64, until: i64| {
        format!(
            "since={}&until={}",
            enc(&format_rfc3339(since)),
            enc(&format_rfc3339(until))
        )
    };
    assert_eq!(
        ids(&get(&cp, &q(at, at + 1)).await),
        vec![records[2].id.clone()]
    );
    assert_eq!(count(get(&cp, &q(at + 1, now + 1)).await), 2);
    assert_eq!(count(get(&cp, &q(at - 1, at)).await), 0);
    let plus_two = format_rfc3339(at + 2 * HOUR).replace('Z', "+02:00");
    let got = get(&cp, &format!("since={}&until=1h", enc(&plus_two))).await;
    assert_eq!(ids(&got), vec![records[2].id.clone()]);
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_visit_every_record_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    // 250 records on 50 distinct instants: ties on time are ordered by id.
    let records: Vec<AuditRecord> = (0..250)
        .map(|n| record(n, now - (n / 5) as i64 * 1000))
        .collect();
    for chunk in records.chunks(100) {
        assert_eq!(ingest(&cp, Some(PROXY), jsonl(chunk)).await.0, 200);
    }
    for (filter, keep) in [
        ("", Box::new(|_: &AuditRecord| true) as Keep),
        (
            "&server=github",
            Box::new(|r: &AuditRecord| r.server.as_deref() == Some("github")),
        ),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let after = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let page = get(&cp, &format!("limit=7{filter}{after}")).await;
            let got = ids(&page);
            assert!(got.len() <= 7);
            seen.extend(got);
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let want = expected(&records, keep);
        assert_eq!(
            seen, want,
            "filter {filter:?}: every record once, newest first"
        );
        assert_eq!(pages, want.len().div_ceil(7));
    }
    assert_eq!(ids(&get(&cp, "").await).len(), 100, "default limit");
    assert_eq!(ids(&get(&cp, "limit=10000").await).len(), 250);
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_counts_records_denials_and_errors() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let mut records = seeded(&cp, now).await;
    // Old records fall outside `since`; one record without an agent.
    let old: Vec<AuditRecord> = (100..110).map(|n| record(n, now - 40 * DAY)).collect();
    let mut anonymous = record(200, now);
    anonymous.agent = None;
    anonymous.server = Some("prod-data".into());
    let extra: Vec<AuditRecord> = old.iter().cloned().chain([anonymous.clone()]).collect();
    assert_eq!(ingest(&cp, Some(PROXY), jsonl(&extra)).await.0, 200);
    records.push(anonymous);

    // The issue's example: `--server prod-data --since 30d --group-by agent`.
    let got = get(&cp, "server=prod-data&since=30d&group_by=agent").await;
    assert_eq!(got["group_by"], "agent");
    assert_eq!(got["truncated"], false);
    let in_scope: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.server.as_deref() == Some("prod-data"))
        .collect();
    let mut want: Vec<Value> = Vec::new();
    for agent in [Some("claude"), Some("cursor"), Some("nightly"), None] {
        let of: Vec<&&AuditRecord> = in_scope
            .iter()
            .filter(|r| r.agent.as_deref() == agent)
            .collect();
        if of.is_empty() {
            continue;
        }
        let denied = of.iter().filter(|r| r.decision == Decision::Deny).count();
        let errors = of
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    Outcome::Error | Outcome::ToolError | Outcome::UpstreamError
                )
            })
            .count();
        want.push(json!({"key": agent, "count": of.len(), "denied": denied, "errors": errors}));
    }
    let groups = got["groups"].as_array().unwrap();
    let as_set = |v: &[Value]| v.iter().map(Value::to_string).collect::<BTreeSet<_>>();
    assert_eq!(as_set(groups), as_set(&want), "{got}");
    let counts: Vec<u64> = groups
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "count desc: {counts:?}"
    );
    assert!(groups.iter().any(|g| g["denied"].as_u64() > Some(0)));
    assert!(groups.iter().any(|g| g["errors"].as_u64() > Some(0)));

    let got = get(&cp, "group_by=decision&since=30d").await;
    let total: u64 = got["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 61);
    let got = get(&cp, "group_by=tool&limit=1").await;
    assert_eq!(
        (got["groups"].as_array().unwrap().len(), &got["truncated"]),
        (1, &json!(true))
    );
    let (status, ctype, _, csv) = get_raw(&cp, Some(ADMIN), "group_by=outcome&format=csv").await;
    assert_eq!((status, ctype.as_str()), (200, "text/csv; charset=utf-8"));
    assert!(csv.starts_with("outcome,count,denied,errors\r\n"), "{csv}");
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_jsonl_exports() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let mut tricky = record(5, now);
    tricky.reason = Some("he said \"no\", twice".into());
    tricky.arguments = Some(json!({"path": "/etc/passwd", "note": "a,b"}));
    let records = vec![record(1, now - 1000), tricky.clone()];
    assert_eq!(ingest(&cp, Some(PROXY), jsonl(&records)).await.0, 200);

    let (status, ctype, next, csv) = get_raw(&cp, Some(ADMIN), "format=csv").await;
    assert_eq!(
        (status, ctype.as_str(), next),
        (200, "text/csv; charset=utf-8", None)
    );
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "header, two rows, final line break: {csv}");
    assert!(
        lines[0].starts_with("ts,ts_ms,id,gateway,principal,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(",arguments,") && lines[0].ends_with(",response_excerpt"));
    let row = lines[1];
    assert!(
        row.starts_with(&format!(
            "{},{now},{},gw-1,",
            format_rfc3339(now),
            tricky.id
        )),
        "{row}"
    );
    assert!(row.contains(r#","he said ""no"", twice","#), "{row}");
    assert!(
        row.contains(r#","{""path"":""/etc/passwd"",""note"":""a,b""}","#),
        "{row}"
    );
    assert!(row.contains(",claude-code,1.0.3,"), "{row}");

    let (status, ctype, _, body) = get_raw(&cp, Some(ADMIN), "format=jsonl").await;
    assert_eq!((status, ctype.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["reason"], "he said \"no\", twice");
    assert_eq!(lines[0]["ts"], format_rfc3339(now));

    // With a limit, an export is one page and says where the next starts.
    let (_, _, next, body) = get_raw(&cp, Some(ADMIN), "format=jsonl&limit=1").await;
    assert_eq!(body.lines().count(), 1);
    let (_, _, last, body) = get_raw(
        &cp,
        Some(ADMIN),
        &format!("format=jsonl&limit=1&cursor={}", next.unwrap()),
    )
    .await;
    assert_eq!((body.lines().count(), last), (1, None));
    assert!(body.contains(&records[0].id));
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_exports_stream_every_record() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let records: Vec<AuditRecord> = (0..2500).map(|n| record(n, now - n as i64)).collect();
    assert_eq!(ingest(&cp, Some(PROXY), jsonl(&records)).await.0, 200);
    let (_, _, _, body) = get_raw(&cp, Some(ADMIN), "format=jsonl").await;
    let got: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, expected(&records, |_| true));
    let (_, _, _, csv) = get_raw(&cp, Some(ADMIN), "format=csv&decision=deny").await;
    assert_eq!(
        csv.matches("\r\n").count(),
        1 + 500,
        "one header, then the 500 denials"
    );
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_say_which_and_what_is_accepted() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    for (query, field, hint) in [
        ("since=yesterday", "since", "30d"),
        ("limit=20000", "limit", "1 to 10000"),
        ("decision=block", "decision", "allow, deny"),
        ("group_by=trace_id", "group_by", "agent"),
        ("format=xml", "format", "jsonl"),
        ("cursor=abc", "cursor", "next_cursor"),
        ("sever=prod", "sever", "server"),
    ] {
        let (status, _, _, body) = get_raw(&cp, Some(ADMIN), query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"]["field"], field, "{query}: {body}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(hint),
            "{query}: {body}"
        );
    }
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_records_only() {
    let root = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records = [
        record(1, now - 31 * DAY),
        record(2, now - 30 * DAY - HOUR),
        record(3, now - 29 * DAY),
        record(4, now),
    ];
    {
        let store = AuditStore::open(&root.path().join("audit.db"), 30).unwrap();
        assert_eq!(store.insert(&records).unwrap(), 4);
        assert_eq!(
            store.apply_retention(now - 2 * DAY).unwrap(),
            0,
            "two days ago, none had expired"
        );
        let kept = AuditStore::open(&root.path().join("keep.db"), 0).unwrap();
        kept.insert(&records).unwrap();
        assert_eq!(
            kept.apply_retention(now).unwrap(),
            0,
            "0 days keeps everything"
        );
    }
    // The control plane applies retention when it starts: the records over
    // 30 days old go, the 29-day-old one stays.
    let cp = start_in(root.path(), 30).await;
    let want = vec![records[3].id.clone(), records[2].id.clone()];
    for _ in 0..100 {
        if ids(&get(&cp, "").await) == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ids(&get(&cp, "").await), want);
    // And keeps accepting records of any age until the next run.
    assert_eq!(
        ingest(&cp, Some(PROXY), jsonl(&records[..1])).await.1["inserted"],
        1
    );
    assert_eq!(cp.audit.apply_retention(now_ms()).unwrap(), 1);
    assert_eq!(ids(&get(&cp, "").await), want);
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_restart_in_an_owner_only_file() {
    let root = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records: Vec<AuditRecord> = (0..20).map(|n| record(n, now - n as i64)).collect();
    let cp = start_in(root.path(), 90).await;
    assert_eq!(ingest(&cp, Some(PROXY), jsonl(&records)).await.0, 200);
    let before = get(&cp, "limit=100").await;
    cp.handle.stop().await;
    drop(cp.audit);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.path().join("audit.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let cp = start_in(root.path(), 90).await;
    assert_eq!(get(&cp, "limit=100").await, before);
    assert_eq!(
        ingest(&cp, Some(PROXY), jsonl(&records)).await.1["inserted"],
        0
    );
    cp.handle.stop().await;
}
