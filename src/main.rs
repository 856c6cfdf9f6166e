//! The `aerie` command. Everything it does lives in the library, [`aerie::cli`] first.

fn main() -> std::process::ExitCode {
    aerie::cli::main()
}
