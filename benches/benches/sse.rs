//! SSE framing (`toolgate_proxy::sse::SseRewriter::push`): a ~1 MiB stream
//! of ~6,150 small events (125–407 B) pushed in chunks of 64 B, 1 KiB and 16 KiB,
//! with a rewrite that leaves every event alone (the framing cost alone),
//! one that rewrites every event, and the gateway's own filter as a GET
//! stream runs it. Plus one 1 MiB event (a large `tools/list` result on a
//! single `data:` line) arriving in chunks.
//!
//! The gateway runs `SseRewriter` on SSE responses to `tools/list` and on GET
//! streams; other SSE responses are passed through without it.

use divan::counter::BytesCount;
use divan::Bencher;
use toolgate_benches::{small_event_stream, sse_event, sse_rewrite};
use toolgate_proxy::filter::{filter_message, ListIds};
use toolgate_proxy::sse::SseRewriter;

const MIB: usize = 1024 * 1024;
const CHUNKS: [usize; 3] = [64, 1024, 16 * 1024];

fn main() {
    divan::main();
}

/// Pushes `stream` in `chunk`-byte pieces; returns the bytes sent on.
fn run(stream: &[u8], chunk: usize, rewrite: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>) -> usize {
    let mut rewriter = SseRewriter::default();
    let mut sent = 0;
    for piece in stream.chunks(chunk) {
        sent += rewriter
            .push(piece, rewrite)
            .expect("events under the cap")
            .len();
    }
    sent + rewriter.finish().len()
}

#[divan::bench(args = CHUNKS)]
fn small_events_pass_through(bencher: Bencher, chunk: usize) {
    let stream = small_event_stream(MIB);
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench(|| run(divan::black_box(&stream), chunk, &mut |_| None));
}

#[divan::bench(args = CHUNKS)]
fn small_events_rewrite_all(bencher: Bencher, chunk: usize) {
    let stream = small_event_stream(MIB);
    bencher.counter(BytesCount::new(stream.len())).bench(|| {
        run(divan::black_box(&stream), chunk, &mut |data| {
            Some(data.to_vec())
        })
    });
}

/// What a GET stream pays: the gateway filters any tool list replayed on it
/// (`ListIds::Any`), so every event goes through `filter_message`, which
/// finds no `"tools"` key in these events and leaves them alone.
#[divan::bench(args = CHUNKS)]
fn small_events_get_stream_filter(bencher: Bencher, chunk: usize) {
    let stream = small_event_stream(MIB);
    let allowed = |_: &str| true;
    bencher.counter(BytesCount::new(stream.len())).bench(|| {
        run(divan::black_box(&stream), chunk, &mut |data| {
            sse_rewrite(filter_message(data, &ListIds::Any, &allowed))
        })
    });
}

/// One event of 1 MiB on one `data:` line, pass-through: while its end has
/// not arrived, a push that rescans the unfinished line makes the cost grow
/// with event size / chunk size.
#[divan::bench(args = [1024, 16 * 1024, 64 * 1024], sample_count = 10)]
fn one_large_event_pass_through(bencher: Bencher, chunk: usize) {
    let data = vec![b'x'; MIB - 32];
    let stream = sse_event(1, &data);
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench(|| run(divan::black_box(&stream), chunk, &mut |_| None));
}
