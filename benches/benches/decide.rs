//! The `tools/call` decision per request, on snapshots of 1k / 100k
//! principals × 100 / 10k declared tools (built once, outside the timings).
//!
//! - `request_path_*`: `token_digest` → `authenticate` → `upstream` →
//!   `can_call`, what `admit` does per request, for a declared tool (table
//!   look-up) and an undeclared one (allow / deny pattern fallback). Tokens
//!   rotate over 1,024 principals spread across the population;
//!   `token_digest_only` is the hashing share of that path.
//! - `decide_*`: `toolgate_proxy::decide::decide` on a parsed body.

use std::sync::{Arc, Mutex, OnceLock};

use catalog::token_digest;
use divan::Bencher;
use toolgate_benches::{known_allowed_tool, tools_call_body, Fleet, SERVER, UNKNOWN_ALLOWED_TOOL};
use toolgate_proxy::decide::decide;
use toolgate_proxy::filter::ListIds;
use toolgate_proxy::jsonrpc::parse;

/// (principals, declared tools)
const FLEETS: [(usize, usize); 4] = [
    (1_000, 100),
    (1_000, 10_000),
    (100_000, 100),
    (100_000, 10_000),
];

fn main() {
    divan::main();
}

/// Snapshots are slow to build at 100k principals: build each size once.
fn fleet(principals: usize, tools: usize) -> Arc<Fleet> {
    type Cache = Mutex<Vec<((usize, usize), Arc<Fleet>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    if let Some((_, f)) = cache.iter().find(|(k, _)| *k == (principals, tools)) {
        return f.clone();
    }
    let f = Arc::new(Fleet::new(principals, tools));
    cache.push(((principals, tools), f.clone()));
    f
}

fn request_path(bencher: Bencher, (principals, tools): (usize, usize), tool: &str) {
    let f = fleet(principals, tools);
    let snap = &f.snapshot;
    let mut next = 0;
    bencher
        .with_inputs(|| {
            next = (next + 1) % f.tokens.len();
            f.tokens[next].as_str()
        })
        .bench_local_values(|token| {
            let caller = snap
                .authenticate(&token_digest(token))
                .expect("known token");
            let upstream = snap.upstream(divan::black_box(SERVER)).expect("approved");
            let ok = snap.can_call(caller.class, upstream.id, divan::black_box(tool));
            assert!(ok);
            ok
        });
}

// Fixed sample sizes: on a busy machine divan's auto-tuning sometimes settles
// on 1 iteration per sample here, which times cold caches more than the path.
#[divan::bench(args = FLEETS, sample_size = 1000)]
fn request_path_known_tool(bencher: Bencher, fleet: (usize, usize)) {
    request_path(bencher, fleet, &known_allowed_tool(fleet.1));
}

#[divan::bench(args = FLEETS, sample_size = 1000)]
fn request_path_unknown_tool(bencher: Bencher, fleet: (usize, usize)) {
    request_path(bencher, fleet, UNKNOWN_ALLOWED_TOOL);
}

/// The SHA-256 of one token alone: the fixed share of `request_path_*`.
#[divan::bench]
fn token_digest_only() -> [u8; 32] {
    token_digest(divan::black_box("tg_bench_004242_0123456789abcdef"))
}

fn decide_body(bencher: Bencher, (principals, tools): (usize, usize), tool: &str) {
    let f = fleet(principals, tools);
    let body = parse(&tools_call_body(256, tool, false)).expect("valid body");
    bencher.bench(|| {
        let ids = decide(divan::black_box(&body), &f.snapshot, f.class, f.server);
        assert!(matches!(ids, Ok(ListIds::None)));
        ids
    });
}

#[divan::bench(args = FLEETS, sample_size = 1000)]
fn decide_known_tool(bencher: Bencher, fleet: (usize, usize)) {
    decide_body(bencher, fleet, &known_allowed_tool(fleet.1));
}

#[divan::bench(args = FLEETS, sample_size = 1000)]
fn decide_unknown_tool(bencher: Bencher, fleet: (usize, usize)) {
    decide_body(bencher, fleet, UNKNOWN_ALLOWED_TOOL);
}
