//! The `toolgate` binary: see `toolgate --help`.

mod cli;

fn main() -> anyhow::Result<()> {
    cli::run()
}
