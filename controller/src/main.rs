//! `zen-lead-controller`: parses flags, starts logging, runs the controller until SIGTERM/SIGINT.

use clap::Parser;
use zen_lead_controller::config::{Cli, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _log = zen_lead::exec::log::init(cli.log_format);
    let config = match Config::from_cli(
        cli,
        zen_lead::identity::process_env,
        zen_lead::identity::system_hostname,
    ) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("zen-lead-controller: {}", zen_lead::exec::one_line(&error));
            return std::process::ExitCode::from(78);
        }
    };
    match zen_lead_controller::run(config, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zen-lead-controller: {}", zen_lead::exec::one_line(&error));
            std::process::ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the default action (exit) applies.
        _ => std::future::pending().await,
    }
}
