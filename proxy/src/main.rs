//! The `toolgate` binary: see `toolgate --help`.

fn main() -> anyhow::Result<()> {
    toolgate_proxy::cli::run()
}
