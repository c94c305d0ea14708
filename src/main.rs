//! Thin: parse the command line, call the library, map the outcome to an exit code.

use autoheal::cli::{Cli, Command};
use autoheal::config::Config;
use autoheal::engine::tick::{self, TickOptions, TickOutcome};
use autoheal::observe::{Ctx, Restarts, Scope, observe};
use autoheal::report::{self, log::Log};
use autoheal::{Exit, LoadError, engine, state};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config_path();
    let exit = match &cli.command {
        Command::Check => check(&path),
        Command::Order => with_config(&path, |cfg| {
            print!("{}", report::order::render(cfg));
            Exit::Ok
        }),
        Command::Run {
            state_dir,
            dry_run,
            metrics,
        } => with_config(&path, |cfg| run(cfg, state_dir, *dry_run, metrics)),
        Command::Status { state_dir, json } => {
            with_config(&path, |cfg| status(cfg, state_dir, *json))
        }
        Command::Reset { service, state_dir } => {
            with_config(&path, |cfg| reset(cfg, state_dir, service))
        }
    };
    ExitCode::from(exit as u8)
}

/// Loads the config, or prints every error and exits 2: nothing is started on a bad file.
fn with_config(path: &Path, f: impl FnOnce(&Arc<Config>) -> Exit) -> Exit {
    match load(path) {
        // Shared, not copied, with the threads that run Lua chunks.
        Ok(cfg) => f(&Arc::new(cfg)),
        Err(exit) => exit,
    }
}

fn load(path: &Path) -> Result<Config, Exit> {
    autoheal::load_config(path).map_err(|e| {
        match e {
            LoadError::Invalid(diags) => eprintln!("{diags}"),
            LoadError::Refused(why) => eprintln!("autoheal: {why}"),
        }
        Exit::Usage
    })
}

fn state_dir(cfg: &Config, flag: &Option<PathBuf>) -> PathBuf {
    flag.clone()
        .unwrap_or_else(|| cfg.settings.state_dir.clone())
}

fn run(cfg: &Arc<Config>, dir: &Option<PathBuf>, dry_run: bool, metrics: &Option<PathBuf>) -> Exit {
    let dir = state_dir(cfg, dir);
    let mut log = if dry_run {
        Log::stdout()
    } else {
        if let Err(e) = state::create_dir(&dir) {
            eprintln!("autoheal: {e}");
            return Exit::Usage;
        }
        Log::to_file(&dir.join("autoheal.log"))
    };
    let opts = TickOptions {
        state_dir: dir,
        dry_run,
        // A dry run writes nothing, the metrics file included.
        metrics_file: if dry_run {
            None
        } else {
            metrics
                .clone()
                .or_else(|| cfg.settings.metrics_file.clone())
        },
    };
    match tick::run(cfg, &opts, &mut log) {
        Ok(TickOutcome::LockedOut { .. }) => Exit::Ok,
        Ok(TickOutcome::Done { plan, .. }) if plan.all_well() => Exit::Ok,
        Ok(TickOutcome::Done { .. }) => Exit::Down,
        Err(e) => {
            eprintln!("autoheal: {e}");
            Exit::Usage
        }
    }
}

fn status(cfg: &Arc<Config>, dir: &Option<PathBuf>, json: bool) -> Exit {
    let dir = state_dir(cfg, dir);
    // Read-only: a missing or bad state file just means no history; so does a state dir that
    // `run` would refuse (its content could be anyone's).
    let (st, warning) = match state::judge_own_dir(&dir) {
        Ok(()) => state::peek(&dir),
        Err(e) => (Default::default(), Some(format!("{e}; showing no history"))),
    };
    if let Some(w) = warning {
        eprintln!("autoheal: {w}");
    }
    let ctx = Ctx {
        state: &st,
        restarts: Restarts::Never,
    };
    let obs = observe(cfg, Scope::All, &ctx);
    for (label, msg) in &obs.notes {
        eprintln!("{}: {}", report::one_line(label), report::one_line(msg));
    }
    let now = tick::unix_now();
    let p = engine::plan(cfg, &obs, &st, now);
    let r = report::status(cfg, &obs, &p, &st, now);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("status serializes")
        );
    } else {
        print!("{}", report::table(&r, now));
    }
    if r.all_alive { Exit::Ok } else { Exit::Down }
}

fn reset(cfg: &Config, dir: &Option<PathBuf>, service: &str) -> Exit {
    if cfg.service(service).is_none() {
        let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "autoheal: no service `{service}` in {} (services: {})",
            cfg.path.display(),
            names.join(", ")
        );
        return Exit::Usage;
    }
    let dir = state_dir(cfg, dir);
    let _lock = match state::try_lock(&dir) {
        Ok(state::LockOutcome::Acquired(l)) => l,
        Ok(state::LockOutcome::Held { by }) => {
            eprintln!(
                "autoheal: a tick is running{}; run reset again once it ends",
                by.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            return Exit::Down;
        }
        Err(e) => {
            eprintln!("autoheal: {e}");
            return Exit::Usage;
        }
    };
    let (mut st, _) = match state::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("autoheal: {e}");
            return Exit::Usage;
        }
    };
    let before = st.services.remove(service).unwrap_or_default();
    if let Err(e) = state::save(&dir, &st) {
        eprintln!("autoheal: {e}");
        return Exit::Usage;
    }
    let mut log = Log::to_file(&dir.join("autoheal.log"));
    log.event(
        service,
        &format!(
            "reset by an operator (it had {} failed restarts{})",
            before.failures,
            if before.gave_up { ", given up" } else { "" }
        ),
    );
    Exit::Ok
}

fn check(path: &Path) -> Exit {
    let cfg = match load(path) {
        Ok(cfg) => cfg,
        Err(exit) => return exit,
    };
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
