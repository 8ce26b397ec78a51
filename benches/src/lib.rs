//! Deterministic inputs shared by the benchmarks in `benches/benches/`.
//!
//! Nothing here is random: every generator is a pure function of its size
//! arguments, so two runs (or two machines) measure the same bytes.

use std::fmt::Write as _;

pub mod mcp;

use catalog::{compile, load, token_digest, Catalog, ClassId, ServerId, Snapshot};
use toolgate_proxy::filter::{unreadable_error, Filtered};

/// The one upstream server every generated catalog registers.
pub const SERVER: &str = "srv";

/// Teams the generated principals are spread over.
pub const TEAMS: usize = 50;

/// Tool verbs, in rotation: policies allow `search_*` and `get_*` (half of
/// the declared tools) and never `create_*` / `delete_*`.
const VERBS: [&str; 4] = ["search", "get", "create", "delete"];

/// Name of declared tool `i`: `search_item_00000`, `get_item_00001`, ...
/// Even indices are allowed for every principal, odd ones are not.
pub fn tool_name(i: usize) -> String {
    format!("{}_item_{i:05}", VERBS[i % VERBS.len()])
}

/// A declared tool every principal may call (decided from the precomputed table).
pub fn known_allowed_tool(tools: usize) -> String {
    tool_name((tools / 2) / VERBS.len() * VERBS.len())
}

/// A tool the catalog does not declare but the allow pattern `search_*`
/// grants: decided by pattern fallback (every allow pattern tried in order,
/// then every deny pattern).
pub const UNKNOWN_ALLOWED_TOOL: &str = "search_unlisted_tool";

/// The gateway token (PAT) of principal `i`.
pub fn token(i: usize) -> String {
    format!("tg_bench_{i:06}_0123456789abcdef")
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn team(t: usize) -> String {
    format!("team-{t:02}")
}

/// Config files (`(name, YAML)` pairs, as the loader takes them) for
/// `principals` principals spread over [`TEAMS`] teams, one policy per team
/// (four allow patterns, one deny pattern) and one approved server declaring
/// `tools` tools.
pub fn config_files(principals: usize, tools: usize) -> Vec<(String, String)> {
    let mut teams = String::from("teams:\n");
    for t in 0..TEAMS {
        let _ = writeln!(teams, "  - {{name: {}}}", team(t));
    }

    let mut servers = format!(
        "servers:\n  - name: {SERVER}\n    owner: {}\n    status: approved\n    \
         endpoint: http://127.0.0.1:9/mcp\n    auth: {{type: bearer, secret: env:SRV_TOKEN}}\n    tools:\n",
        team(0)
    );
    for i in 0..tools {
        let _ = writeln!(servers, "      - {{name: {}}}", tool_name(i));
    }

    let mut people = String::with_capacity(principals * 160 + 16);
    people.push_str("principals:\n");
    for i in 0..principals {
        let kind = if i % 5 == 0 { "agent" } else { "user" };
        let _ = writeln!(
            people,
            "  - {{name: p-{i:06}, kind: {kind}, teams: [{}], tokens: [{{name: t, sha256: {}}}]}}",
            team(i % TEAMS),
            hex(&token_digest(&token(i)))
        );
    }

    let mut policies = String::from("policies:\n");
    for t in 0..TEAMS {
        let name = team(t);
        let _ = write!(
            policies,
            "  - name: {name}-tools\n    subjects: {{teams: [{name}]}}\n    \
             allow:\n      - {{server: {SERVER}, tools: [\"get_*\", \"list_*\", \"search_*\", \"{name}_*\"]}}\n    \
             deny:\n      - {{server: {SERVER}, tools: [\"*_admin\"]}}\n"
        );
    }

    [
        ("teams.yaml", teams),
        ("servers.yaml", servers),
        ("principals.yaml", people),
        ("policies.yaml", policies),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

/// Resolves every secret reference to a fixed value (no I/O).
pub fn secrets(reference: &str) -> Result<String, String> {
    Ok(format!("secret-for-{reference}"))
}

/// Loads [`config_files`]; panics on a config error (a bug in the generator).
pub fn catalog(principals: usize, tools: usize) -> Catalog {
    load(&config_files(principals, tools)).unwrap_or_else(|e| panic!("{e}"))
}

/// A compiled snapshot of [`config_files`].
pub fn snapshot(principals: usize, tools: usize) -> Snapshot {
    compile(&catalog(principals, tools), 1, &secrets).unwrap_or_else(|e| panic!("{e}"))
}

/// A snapshot plus what a request needs to hit it.
pub struct Fleet {
    /// The compiled catalog.
    pub snapshot: Snapshot,
    /// Tokens of up to 1,024 principals spread over the whole population.
    pub tokens: Vec<String>,
    /// The policy class of principal 0.
    pub class: ClassId,
    /// The id of [`SERVER`].
    pub server: ServerId,
}

impl Fleet {
    /// Builds the snapshot for `principals` × `tools` (slow for 100k principals).
    pub fn new(principals: usize, tools: usize) -> Fleet {
        let snapshot = snapshot(principals, tools);
        // 7919 is prime, so the stride visits distinct principals.
        let tokens = (0..principals.min(1024))
            .map(|j| token(j * 7919 % principals))
            .collect();
        let class = snapshot
            .authenticate(&token_digest(&token(0)))
            .expect("principal 0 authenticates")
            .class;
        let server = snapshot.upstream(SERVER).expect("server is approved").id;
        Fleet {
            snapshot,
            tokens,
            class,
            server,
        }
    }

    /// Is `tool` allowed for principal 0's class (the `tools/list` filter predicate)?
    pub fn allowed(&self, tool: &str) -> bool {
        self.snapshot.can_call(self.class, self.server, tool)
    }
}

/// A `tools/call` request body of exactly `size` bytes (at least ~100).
///
/// With `structured`, the arguments hold an array of small objects (many
/// JSON tokens); otherwise one long string (few tokens, many bytes).
pub fn tools_call_body(size: usize, tool: &str, structured: bool) -> Vec<u8> {
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"#
    );
    let tail = r#"}}}"#;
    let mut items = String::new();
    if structured {
        items.push_str(r#""items":["#);
        let mut n = 0;
        loop {
            let item = format!(r#"{{"k":{n},"v":"value {n}","ok":true}},"#);
            // Leave room for the closing `],` and `"q":""`.
            if head.len() + items.len() + item.len() + 2 + 6 + tail.len() > size {
                break;
            }
            items.push_str(&item);
            n += 1;
        }
        if n == 0 {
            // Too small for even one item: string arguments only.
            items.clear();
        } else {
            items.pop();
            items.push_str("],");
        }
    }
    let fixed = head.len() + items.len() + r#""q":"""#.len() + tail.len();
    assert!(size >= fixed, "body of {size} bytes is too small");
    let filler: String = (0..size - fixed)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let body = format!(r#"{head}{items}"q":"{filler}"{tail}"#);
    assert_eq!(body.len(), size);
    body.into_bytes()
}

/// A `tools/list` response (id 1) listing declared tools `0..n` with a
/// realistic description and input schema each (~330 bytes per tool).
pub fn tools_list_response(n: usize) -> Vec<u8> {
    let mut s = String::with_capacity(n * 340 + 64);
    s.push_str(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let name = tool_name(i);
        let _ = write!(
            s,
            r#"{{"name":"{name}","title":"Tool {i}","description":"Does {name} on the tracker; returns matching records as JSON.","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string","description":"What to look for"}},"limit":{{"type":"integer","minimum":1,"maximum":100}}}},"required":["query"]}},"annotations":{{"readOnlyHint":{}}}}}"#,
            i % 2 == 0
        );
    }
    s.push_str(r#"],"nextCursor":"page-2"}}"#);
    s.into_bytes()
}

/// What the gateway sends for a filtered event, as `gateway.rs` maps it:
/// the `SseRewriter` rewrite result.
pub fn sse_rewrite(filtered: Filtered) -> Option<Vec<u8>> {
    match filtered {
        Filtered::Unchanged => None,
        Filtered::Rewritten(out) => Some(out),
        Filtered::Unreadable => Some(unreadable_error()),
    }
}

/// One SSE event carrying `data` on a single `data:` line.
pub fn sse_event(id: usize, data: &[u8]) -> Vec<u8> {
    let mut e = format!("event: message\nid: {id}\ndata: ").into_bytes();
    e.extend_from_slice(data);
    e.extend_from_slice(b"\n\n");
    e
}

/// An SSE stream of about `total` bytes (whole events only) of small
/// progress notifications and results, 125 to 407 bytes each
/// (6,151 events for 1 MiB).
pub fn small_event_stream(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    let mut i = 0;
    loop {
        let data = if i % 4 == 3 {
            let text = "x".repeat(50 + i % 250);
            format!(
                r#"{{"jsonrpc":"2.0","id":{i},"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
            )
        } else {
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"t{i}","progress":{i}}}}}"#
            )
        };
        let event = sse_event(i, data.as_bytes());
        if out.len() + event.len() > total {
            return out;
        }
        out.extend_from_slice(&event);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_exact_size_and_parse() {
        for size in [100, 1024, 64 * 1024] {
            for structured in [false, true] {
                let b = tools_call_body(size, "search", structured);
                assert_eq!(b.len(), size);
                let body = toolgate_proxy::jsonrpc::parse(&b).unwrap();
                assert_eq!(body.messages()[0].tool(), Some("search"));
            }
        }
    }

    #[test]
    fn half_the_tools_are_allowed() {
        let f = Fleet::new(100, 40);
        let allowed = (0..40).filter(|&i| f.allowed(&tool_name(i))).count();
        assert_eq!(allowed, 20);
        assert!(f.allowed(&known_allowed_tool(40)));
        assert!(f.allowed(UNKNOWN_ALLOWED_TOOL));
        assert!(!f.allowed("search_x_admin"));
        assert_eq!(f.snapshot.class_count(), TEAMS);
        for t in &f.tokens {
            assert!(f.snapshot.authenticate(&token_digest(t)).is_some());
        }
    }

    #[test]
    fn streams_are_whole_events() {
        let s = small_event_stream(1 << 20);
        assert!(s.len() > (1 << 20) - 600 && s.len() <= 1 << 20);
        assert!(s.ends_with(b"\n\n"));
    }
}
