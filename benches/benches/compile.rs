//! Snapshot build on config change, for 1k and 100k principals (50 teams,
//! 50 policies, one server with 100 tools): `catalog::compile` of a loaded
//! catalog, and `catalog::load` (YAML parse, merge, validate) that precedes it.

use divan::counter::BytesCount;
use divan::Bencher;
use toolgate_benches::{catalog, config_files, secrets};

const PRINCIPALS: [usize; 2] = [1_000, 100_000];
const TOOLS: usize = 100;

fn main() {
    divan::main();
}

#[divan::bench(args = PRINCIPALS, sample_count = 20)]
fn compile(bencher: Bencher, principals: usize) {
    let catalog = catalog(principals, TOOLS);
    bencher.bench(|| catalog::compile(divan::black_box(&catalog), 1, &secrets).expect("valid"));
}

#[divan::bench(args = PRINCIPALS, sample_count = 10)]
fn load(bencher: Bencher, principals: usize) {
    let files = config_files(principals, TOOLS);
    let bytes = files.iter().map(|(_, t)| t.len()).sum::<usize>();
    bencher
        .counter(BytesCount::new(bytes))
        .bench(|| catalog::load(divan::black_box(&files)).expect("valid"));
}
