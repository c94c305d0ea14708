//! Thin: parse the command line, call the library, map the outcome to an exit code.

use autoheal::cli::{Cli, Command};
use autoheal::{Exit, config};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config_path();
    let exit = match &cli.command {
        Command::Check => check(&path),
        Command::Run { .. } | Command::Status { .. } | Command::Reset { .. } => {
            eprintln!("autoheal: this command is not implemented yet");
            Exit::Usage
        }
    };
    ExitCode::from(exit as u8)
}

fn check(path: &std::path::Path) -> Exit {
    match config::load(path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprint!("{w}");
            }
            let warn = match cfg.warnings.len() {
                0 => String::new(),
                1 => " (1 warning)".into(),
                n => format!(" ({n} warnings)"),
            };
            println!(
                "{}: {} services, {} deps, ok{warn}",
                path.display(),
                cfg.services.len(),
                cfg.dep_count()
            );
            Exit::Ok
        }
        Err(diags) => {
            eprintln!("{diags}");
            Exit::Usage
        }
    }
}
