//! The `otpd` binary: parse the command line and run it; errors end here, as text on
//! standard error and exit status 2 (1 is reserved for a refused `otpd totp verify`).

use clap::Parser;
use std::process::ExitCode;

/// glibc's allocator spent ~13 % of the server's CPU on the verification path (profiled in
/// issue 6: arena locks and consolidation across the runtime's threads); mimalloc's
/// thread-local free lists avoid both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = otpd::cli::Cli::parse();
    match otpd::cli::run(cli).await {
        Ok(code) => code,
        // The reader of our output went away: end quietly, with the status of a process
        // that SIGPIPE ended (128 + 13), as other Unix tools do; what the output would have
        // revealed was undone (see cli::OUTPUT).
        Err(e) if otpd::cli::is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("otpd: {e:#}");
            ExitCode::from(2)
        }
    }
}
