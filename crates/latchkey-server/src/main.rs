//! The `latchkey` binary: everything happens in [`latchkey_server::cli`].

fn main() -> std::process::ExitCode {
    latchkey_server::cli::main()
}
