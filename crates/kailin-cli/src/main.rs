//! `kailin`: command-line access to the kailin crates (see the `kailin_cli` library).

fn main() -> std::process::ExitCode {
    kailin_cli::main()
}
