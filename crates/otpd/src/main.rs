//! The `otpd` binary: parse the command line and run it; errors end here, as text on
//! standard error and exit status 2 (1 is reserved for a refused `otpd totp verify`).

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = otpd::cli::Cli::parse();
    match otpd::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otpd: {e:#}");
            ExitCode::from(2)
        }
    }
}
