//! Thin entry point: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = rollcall::cli::Cli::parse();
    match rollcall::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rollcall: {}", rollcall::cli::one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
