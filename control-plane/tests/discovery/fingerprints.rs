//! Fingerprints: stable across discoveries and transports, blind to key order and whitespace, not to values.

use super::*;

#[tokio::test]
async fn fingerprints_are_stable_across_discoveries_and_transports() {
    let sse = demo_server(false, true).await;
    let json = demo_server(true, false).await;
    let first = discover_demo(&sse).await;
    let second = discover_demo(&sse).await;
    let third = discover_demo(&json).await;
    for tool in &first {
        let fp = tool.fingerprint();
        assert_eq!(fp.len(), 64);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            find(&second, tool.name()).fingerprint(),
            fp,
            "{}",
            tool.name()
        );
        assert_eq!(
            find(&third, tool.name()).fingerprint(),
            fp,
            "{}",
            tool.name()
        );
    }
    let mut all: Vec<String> = first.iter().map(|t| t.fingerprint()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), first.len(), "distinct tools share a fingerprint");
}

/// `value` with the keys of every object in reverse order.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter().rev() {
                out.insert(k.clone(), reversed(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

/// A named change to a raw tool object.
type Edit = (&'static str, fn(&mut Value));

#[tokio::test]
async fn fingerprints_ignore_key_order_and_whitespace_but_not_values() {
    let server = demo_server(false, true).await;
    let tools = discover_demo(&server).await;
    let search = find(&tools, "search_issues");
    let original = search.fingerprint();

    // Same tool, keys reversed at every depth, pretty-printed, parsed again.
    let text = serde_json::to_string_pretty(&reversed(search.raw())).unwrap();
    assert_ne!(text, serde_json::to_string_pretty(search.raw()).unwrap());
    let reparsed: Value = serde_json::from_str(&text).unwrap();
    let reordered = ToolDefinition::from_raw(reparsed).unwrap();
    assert_eq!(reordered.fingerprint(), original);

    // Any reviewed value changes it; every change gives its own fingerprint.
    let edits: Vec<Edit> = vec![
        ("description", |t| {
            t["description"] = json!("Search issues by title.")
        }),
        ("schema", |t| {
            t["inputSchema"]["properties"]["query"]["description"] = json!("Text to find")
        }),
        ("schema type", |t| {
            t["inputSchema"]["properties"]["query"]["type"] = json!("number")
        }),
        ("annotation", |t| {
            t["annotations"]["readOnlyHint"] = json!(false)
        }),
        ("new annotation", |t| {
            t["annotations"]["destructiveHint"] = json!(true)
        }),
        ("title", |t| t["title"] = json!("Search")),
        ("output schema", |t| {
            t["outputSchema"] = json!({"type": "object"})
        }),
        ("name", |t| t["name"] = json!("search_issues2")),
    ];
    let mut seen = vec![original.clone()];
    for (what, edit) in edits {
        let mut raw = search.raw().clone();
        edit(&mut raw);
        let fp = ToolDefinition::from_raw(raw).unwrap().fingerprint();
        assert!(!seen.contains(&fp), "{what} did not change the fingerprint");
        seen.push(fp);
    }

    // Fields outside the review (here `_meta`), and null for absent, do not.
    let mut raw = search.raw().clone();
    raw["_meta"] = json!({"trace": "x"});
    raw["title"] = Value::Null;
    assert_eq!(
        ToolDefinition::from_raw(raw).unwrap().fingerprint(),
        original
    );
}

#[test]
fn tool_definitions_round_trip_as_their_raw_object() {
    let raw = json!({
        "name": "t",
        "description": "d",
        "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": true},
        "icons": [{"src": "https://example.com/i.png"}]
    });
    let tool: ToolDefinition = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(serde_json::to_value(&tool).unwrap(), raw);

    for bad in [
        json!("t"),
        json!({"inputSchema": {}}),
        json!({"name": "", "inputSchema": {}}),
        json!({"name": "t"}),
        json!({"name": "t", "inputSchema": []}),
        json!({"name": "t", "inputSchema": {}, "description": 3}),
        json!({"name": "t", "inputSchema": {}, "annotations": "x"}),
    ] {
        let error = ToolDefinition::from_raw(bad.clone()).unwrap_err();
        assert!(
            matches!(error, DiscoveryError::InvalidTool { .. }),
            "{bad}: {error:?}"
        );
        assert!(serde_json::from_value::<ToolDefinition>(bad).is_err());
    }
}
