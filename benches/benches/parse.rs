//! JSON-RPC request parsing (`toolgate_proxy::jsonrpc::parse`): a `tools/call`
//! body padded to 100 B … 1 MiB, as one long string argument or as many
//! small objects.

use divan::counter::BytesCount;
use divan::Bencher;
use toolgate_benches::tools_call_body;
use toolgate_proxy::jsonrpc::parse;

const SIZES: [usize; 4] = [100, 1024, 64 * 1024, 1024 * 1024];

fn main() {
    divan::main();
}

fn run(bencher: Bencher, size: usize, structured: bool) {
    let body = tools_call_body(size, "search", structured);
    bencher
        .counter(BytesCount::new(body.len()))
        .bench(|| parse(divan::black_box(&body)).expect("valid body"));
}

/// Arguments: one string of `size` bytes.
#[divan::bench(args = SIZES)]
fn string_arguments(bencher: Bencher, size: usize) {
    run(bencher, size, false);
}

/// Arguments: an array of `{"k":n,"v":"value n","ok":true}` objects.
#[divan::bench(args = SIZES)]
fn structured_arguments(bencher: Bencher, size: usize) {
    run(bencher, size, true);
}
