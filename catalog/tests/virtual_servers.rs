//! Virtual servers: validation of what they expose, and the compiled
//! decisions and tool lists.

use catalog::{compile, load, Snapshot};

const BASE: &str = r#"
teams: [{name: finance}, {name: eng}]
servers:
  - name: jira
    owner: eng
    status: approved
    endpoint: "http://127.0.0.1:9/mcp"
    tools:
      - {name: search_issues, description: Find issues, annotations: {readOnlyHint: true}}
      - {name: get_issue, annotations: {readOnlyHint: true}}
      - {name: delete_issue}
  - name: wiki
    owner: eng
    status: approved
    endpoint: "http://127.0.0.1:9/mcp"
    tools:
      - {name: get_page, input_schema: {type: object, properties: {id: {type: string}}}}
      - {name: search_issues}
  - name: draft
    owner: eng
    status: pending
    endpoint: "http://127.0.0.1:9/mcp"
    tools: [{name: draft_tool}]
principals:
  - {name: fiona, kind: user, teams: [finance], tokens: [{name: laptop, sha256: "8e2cbd0c5b3d09d3f1c6a8bb8c1f3e8f7f2d0e0b5f2b6f0d3c9a1e2b4c5d6e7f"}]}
  - {name: eve, kind: user, teams: [eng], tokens: [{name: laptop, sha256: "1e2cbd0c5b3d09d3f1c6a8bb8c1f3e8f7f2d0e0b5f2b6f0d3c9a1e2b4c5d6e7f"}]}
"#;

fn files(extra: &str) -> Vec<(String, String)> {
    vec![
        ("base.yaml".to_string(), BASE.to_string()),
        ("virtual.yaml".to_string(), extra.to_string()),
    ]
}

fn errors_of(extra: &str) -> String {
    match load(&files(extra)) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e.to_string(),
    }
}

fn snapshot(extra: &str) -> Snapshot {
    let c = load(&files(extra)).unwrap_or_else(|e| panic!("{e}"));
    compile(&c, 1, &|_: &str| Err("no secrets here".to_string())).unwrap_or_else(|e| panic!("{e}"))
}

fn class_of(s: &Snapshot, principal: &str) -> catalog::ClassId {
    // The test tokens' digests are fixed in BASE; find the principal's.
    let digest = match principal {
        "fiona" => "8e2cbd0c5b3d09d3f1c6a8bb8c1f3e8f7f2d0e0b5f2b6f0d3c9a1e2b4c5d6e7f",
        _ => "1e2cbd0c5b3d09d3f1c6a8bb8c1f3e8f7f2d0e0b5f2b6f0d3c9a1e2b4c5d6e7f",
    };
    let mut d = [0u8; 32];
    hex::decode_to_slice(digest, &mut d).unwrap();
    s.authenticate(&d).expect("token known").class
}

fn names(list: &[u8]) -> Vec<String> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(list).unwrap();
    v.iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

const FINANCE: &str = r#"
virtual_servers:
  - name: finance-readonly
    description: Read-only tools for finance.
    tools:
      - {server: jira, annotations: {readOnlyHint: true}, rename: {search_issues: find_tickets}}
      - {server: wiki, tools: [get_page]}
      - {server: draft, tools: [draft_tool]}
    access: {teams: [finance]}
"#;

#[test]
fn exposes_the_chosen_tools_to_the_access_list_only() {
    let s = snapshot(FINANCE);
    let v = s.virtual_server("finance-readonly").expect("compiled");
    let fiona = class_of(&s, "fiona");
    let eve = class_of(&s, "eve");
    assert!(s.can_access_virtual(fiona, v.id));
    assert!(
        !s.can_access_virtual(eve, v.id),
        "eng is not on the access list"
    );
    // Renamed, filtered by annotation; the pending server's tool is not routable.
    assert_eq!(
        names(&s.virtual_tool_list(fiona, v.id)),
        ["find_tickets", "get_issue", "get_page"]
    );
    let t = s
        .virtual_tool(fiona, v.id, "find_tickets")
        .expect("callable");
    assert_eq!(&*t.original, "search_issues");
    assert_eq!(&*s.upstream_by_id(t.server).name, "jira");
    assert!(s.virtual_tool(fiona, v.id, "delete_issue").is_none());
    assert!(
        s.virtual_tool(fiona, v.id, "search_issues").is_none(),
        "only under its new name"
    );
    assert!(s.virtual_tool(fiona, v.id, "draft_tool").is_none());
    // The declared schema and description are served.
    let list: serde_json::Value =
        serde_json::from_slice(&s.virtual_tool_list(fiona, v.id)).unwrap();
    assert_eq!(list[0]["description"], "Find issues");
    assert_eq!(list[2]["inputSchema"]["properties"]["id"]["type"], "string");
    // Fiona has no access to jira itself.
    let jira = s.upstream("jira").unwrap();
    assert!(!s.can_access(fiona, jira.id));
}

#[test]
fn policies_can_deny_exposed_tools() {
    let s = snapshot(&format!(
        "{FINANCE}\npolicies:\n  - name: no-wiki\n    subjects: {{teams: [finance]}}\n    deny: [{{server: finance-readonly, tools: [get_page]}}]\n"
    ));
    let v = s.virtual_server("finance-readonly").unwrap();
    let fiona = class_of(&s, "fiona");
    assert_eq!(
        names(&s.virtual_tool_list(fiona, v.id)),
        ["find_tickets", "get_issue"]
    );
    assert!(s.virtual_tool(fiona, v.id, "get_page").is_none());
}

#[test]
fn name_clashes_are_refused_unless_prefixed() {
    let clash = r#"
virtual_servers:
  - name: all
    tools: [{server: jira, tools: [search_issues]}, {server: wiki, tools: [search_issues]}]
"#;
    let e = errors_of(clash);
    assert!(
        e.contains("virtual.yaml") && e.contains("virtual_servers[0].tools[1]"),
        "{e}"
    );
    assert!(e.contains("\"search_issues\" is exposed twice"), "{e}");

    let prefixed = clash.replace("- name: all", "- name: all\n    naming: prefixed");
    let s = snapshot(&format!("{prefixed}    access: {{teams: [eng]}}\n"));
    let v = s.virtual_server("all").unwrap();
    assert_eq!(
        names(&s.virtual_tool_list(class_of(&s, "eve"), v.id)),
        ["jira_search_issues", "wiki_search_issues"]
    );
}

#[test]
fn unknown_servers_tools_and_names_are_refused() {
    let e = errors_of(
        "virtual_servers:\n  - {name: v, tools: [{server: jira, tools: [no_such_tool]}]}\n",
    );
    assert!(e.contains("virtual_servers[0].tools[0].tools[0]"), "{e}");
    assert!(e.contains("has no tool \"no_such_tool\""), "{e}");

    let e = errors_of("virtual_servers:\n  - {name: v, tools: [{server: nope}]}\n");
    assert!(e.contains("unknown server \"nope\""), "{e}");

    let e = errors_of("virtual_servers:\n  - {name: jira, tools: [{server: wiki}]}\n");
    assert!(e.contains("duplicate name \"jira\""), "{e}");

    let e = errors_of(
        "virtual_servers:\n  - {name: v, tools: [{server: wiki, tools: [get_page], rename: {search_issues: s}}], access: {teams: [nobody]}}\n",
    );
    assert!(e.contains("renames \"search_issues\""), "{e}");
    assert!(e.contains("unknown team \"nobody\""), "{e}");
}

#[test]
fn the_tool_list_follows_the_class() {
    let s = snapshot(
        "virtual_servers:\n  - {name: v, tools: [{server: wiki}], access: {principals: [eve]}}\n",
    );
    let v = s.virtual_server("v").unwrap();
    let eve = class_of(&s, "eve");
    let first = s.virtual_tool_list(eve, v.id);
    // Built once, then the same bytes.
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &s.virtual_tool_list(eve, v.id)
    ));
    assert_eq!(names(&first), ["get_page", "search_issues"]);
}
