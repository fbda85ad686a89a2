//! `zen-lead-exec`: parse args, start logging, run. The logic is in `zen_lead::exec`.

use std::process::ExitCode;

use zen_lead::exec::{self, config};

fn main() -> ExitCode {
    let config = match config::parse(std::env::args_os()) {
        Ok(config::Parsed::Run(config)) => config,
        Ok(config::Parsed::Info(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("zen-lead-exec: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    let log = exec::log::init(config.log_format);
    let result = exec::run(*config);
    // Flush what is queued before the last line, so that it comes last.
    drop(log);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("zen-lead-exec: {}", exec::one_line(&error));
            ExitCode::from(error.exit_code())
        }
    }
}
