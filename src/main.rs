//! The `fraudstream` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    match fraudstream::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
