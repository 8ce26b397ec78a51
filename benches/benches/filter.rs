//! `tools/list` filtering (`toolgate_proxy::filter::filter_message`) of a
//! result listing 10 / 500 / 5,000 tools, half of them allowed, decided by
//! `Snapshot::can_call` as the gateway does: as a JSON body, and as one SSE
//! event through `SseRewriter` (as `gateway.rs` wires them).

use divan::counter::BytesCount;
use divan::Bencher;
use serde_json::json;
use toolgate_benches::{sse_event, sse_rewrite, tools_list_response, Fleet};
use toolgate_proxy::filter::{filter_message, Filtered, ListIds};
use toolgate_proxy::sse::SseRewriter;

const TOOLS: [usize; 3] = [10, 500, 5_000];

fn main() {
    divan::main();
}

#[divan::bench(args = TOOLS)]
fn json(bencher: Bencher, tools: usize) {
    let fleet = Fleet::new(100, tools);
    let allowed = |t: &str| fleet.allowed(t);
    let ids = ListIds::Ids(vec![json!(1)]);
    let body = tools_list_response(tools);
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        match filter_message(divan::black_box(&body), &ids, &allowed) {
            Filtered::Rewritten(out) => out,
            other => panic!("half the tools must be removed: {other:?}"),
        }
    });
}

#[divan::bench(args = TOOLS)]
fn sse(bencher: Bencher, tools: usize) {
    let fleet = Fleet::new(100, tools);
    let allowed = |t: &str| fleet.allowed(t);
    let ids = ListIds::Ids(vec![json!(1)]);
    let event = sse_event(1, &tools_list_response(tools));
    bencher.counter(BytesCount::new(event.len())).bench(|| {
        let mut rewriter = SseRewriter::default();
        let out = rewriter
            .push(divan::black_box(&event), &mut |data| {
                sse_rewrite(filter_message(data, &ids, &allowed))
            })
            .expect("event under the cap");
        assert!(out.len() < event.len());
        out
    });
}

/// Baseline: parse the same body into a `serde_json::Value` and serialize it
/// back, without filtering (the floor for a rewrite through `Value`).
#[divan::bench(args = TOOLS)]
fn baseline_value_round_trip(bencher: Bencher, tools: usize) {
    let body = tools_list_response(tools);
    bencher.counter(BytesCount::new(body.len())).bench(|| {
        let v: serde_json::Value = serde_json::from_slice(divan::black_box(&body)).unwrap();
        serde_json::to_vec(&v).unwrap()
    });
}
