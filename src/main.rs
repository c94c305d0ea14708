//! Thin: parse the command line, call the library, map the outcome to an exit code.

use autoheal::cli::{Cli, Command};
use autoheal::config::Config;
use autoheal::event::Event;
use autoheal::install::{self, Kind, Written};
use autoheal::levers::{self, Target};
use autoheal::observe::{Ctx, Restarts, Scope, observe};
use autoheal::report::{self, log::Log};
use autoheal::tick::{self, TickOptions, TickOutcome};
use autoheal::{Exit, LoadError, engine, generate, state};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `println!` that never panics: a closed or full stdout (`| head -1`, `>/dev/full`) is not a
/// reason to stop a tick half-way or to crash; what is lost is only what that reader dropped.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` of a whole text, as [`out!`].
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics (a closed stderr), as [`out!`].
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// `eprint!` of a whole text, as [`err!`].
macro_rules! err_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config_path();
    let exit = match &cli.command {
        Command::Check => check(&path),
        Command::Order => with_config(&path, |cfg| {
            out_raw!("{}", report::order::render(cfg));
            Exit::Ok
        }),
        Command::Graph { status, state_dir } => {
            with_config(&path, |cfg| graph(cfg, state_dir, *status))
        }
        Command::Fleet { files, dot } => fleet(files, *dot),
        Command::Run {
            state_dir,
            dry_run,
            strict,
            metrics,
        } => run_command(&path, state_dir, *dry_run, *strict, metrics),
        Command::Status { state_dir, json } => {
            with_config(&path, |cfg| status(cfg, state_dir, *json))
        }
        Command::Reset {
            service,
            all,
            state_dir,
        } => with_config_or_kept(&path, state_dir, |cfg| {
            let target = Target::of(service.as_deref(), *all);
            lever(cfg, state_dir, |dir| levers::reset(cfg, dir, target))
        }),
        Command::Pause {
            service,
            all,
            length,
            reason,
            state_dir,
        } => with_config_or_kept(&path, state_dir, |cfg| {
            let length = length.unwrap_or(autoheal::defaults::PAUSE_FOR);
            let now = autoheal::time::now();
            let pause = match levers::new_pause(levers::operator(), reason.clone(), length, now) {
                Ok(p) => p,
                Err(e) => {
                    err!("autoheal: {e}");
                    return e.exit();
                }
            };
            let target = Target::of(service.as_deref(), *all);
            lever(cfg, state_dir, |dir| {
                levers::pause(cfg, dir, target, &pause)
            })
        }),
        Command::Resume {
            service,
            all,
            state_dir,
        } => with_config_or_kept(&path, state_dir, |cfg| {
            let target = Target::of(service.as_deref(), *all);
            let by = levers::operator();
            lever(cfg, state_dir, |dir| levers::resume(cfg, dir, target, &by))
        }),
        Command::Cron { install, dir } => install_files(Kind::Cron, *install, dir),
        Command::Systemd { install, dir } => install_files(Kind::Systemd, *install, dir),
        Command::Completions { shell } => {
            let mut text = Vec::new();
            generate::completions(*shell, &mut text);
            out_raw!("{}", String::from_utf8_lossy(&text));
            Exit::Ok
        }
        Command::Man { dir } => man_pages(dir),
    };
    ExitCode::from(exit as u8)
}

/// `autoheal fleet FILE...`: every file loaded as `check` loads it; one that does not load is
/// an error (exit 2) that names it; a cycle across the files is one too (with `--dot`, the
/// fleet is still drawn, the cycle in red).
fn fleet(args: &[PathBuf], dot: bool) -> Exit {
    let files = match autoheal::fleet::files(args) {
        Ok(f) => f,
        Err(why) => {
            err!("autoheal: fleet: {why}");
            return Exit::Usage;
        }
    };
    let mut configs = Vec::with_capacity(files.len());
    let mut bad = Vec::new();
    for f in &files {
        match load(f) {
            Ok(cfg) => configs.push(cfg),
            Err(_) => bad.push(f.display().to_string()),
        }
    }
    if !bad.is_empty() {
        err!(
            "autoheal: fleet: {} of {} files do{} not load: {}; nothing was probed or started \
             (fix each, `autoheal check -c FILE`)",
            bad.len(),
            files.len(),
            if bad.len() == 1 { "es" } else { "" },
            bad.join(", ")
        );
        return Exit::Usage;
    }
    let fleet = autoheal::fleet::Fleet::new(&configs);
    if dot {
        out_raw!("{}", report::fleet::dot(&fleet));
    }
    if !fleet.cycles().is_empty() {
        err!("{}", report::fleet::cycles(&fleet));
        return Exit::Usage;
    }
    if !dot {
        out_raw!("{}", report::fleet::render(&fleet));
    }
    Exit::Ok
}

/// Loads the config, or prints every error and exits 2: nothing is started on a bad file.
fn with_config(path: &Path, f: impl FnOnce(&Arc<Config>) -> Exit) -> Exit {
    match load(path) {
        // Shared, not copied, with the threads that run Lua chunks.
        Ok(cfg) => f(&Arc::new(cfg)),
        Err(exit) => exit,
    }
}

/// As [`with_config`], for the levers (`pause`, `resume`, `reset`): a file that does not load
/// (its errors printed) is acted on through the last version of it that loaded, the one `run`
/// heals with meanwhile, so that an operator can still hold a service back while fixing a typo.
fn with_config_or_kept(
    path: &Path,
    flag: &Option<PathBuf>,
    f: impl FnOnce(&Arc<Config>) -> Exit,
) -> Exit {
    let exit = match load(path) {
        Ok(cfg) => return f(&Arc::new(cfg)),
        Err(exit) => exit,
    };
    // A file root may not trust names no state dir of its own.
    if let Err(LoadError::Refused(_)) = autoheal::load_config(path) {
        return exit;
    }
    let dir = flag
        .clone()
        .or_else(|| autoheal::config::state_dir_hint(path))
        .unwrap_or_else(|| PathBuf::from(autoheal::defaults::STATE_DIR));
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let kept = match state::kept_config(&dir, &absolute) {
        Ok(Some(Ok((source, _)))) => autoheal::load_kept_config(&source, path),
        _ => return exit,
    };
    match kept {
        Ok(cfg) => {
            err!(
                "autoheal: acting on the last version of {} that loaded (kept in {}), the one \
                 `run` heals with until the file is fixed",
                path.display(),
                dir.join(state::KEPT_CONFIG).display()
            );
            f(&Arc::new(cfg))
        }
        Err(_) => exit,
    }
}

fn load(path: &Path) -> Result<Config, Exit> {
    autoheal::load_config(path).map_err(|e| {
        match e {
            LoadError::Invalid(diags) => err!("{diags}"),
            LoadError::Refused(why) => err!("autoheal: {why}"),
        }
        Exit::Usage
    })
}

fn state_dir(cfg: &Config, flag: &Option<PathBuf>) -> PathBuf {
    flag.clone()
        .unwrap_or_else(|| cfg.settings.state_dir.clone())
}

/// `autoheal run`: one tick with the config at `path`. A config that does not load is never
/// silent and never stops the healing: it is said in the log, and the tick heals with the last
/// version of the file that loaded (kept in the state dir by every tick that loads a good
/// one), unless `--strict` or that version's `settings.strict`; the exit code is 2 either way.
fn run_command(
    path: &Path,
    flag: &Option<PathBuf>,
    dry_run: bool,
    strict: bool,
    metrics: &Option<PathBuf>,
) -> Exit {
    let cfg = match load(path) {
        Ok(cfg) => Arc::new(cfg),
        // A dry run touches nothing, and says what `load` printed.
        Err(exit) if dry_run => return exit,
        Err(_) => return heal_with_kept(path, flag, strict, metrics),
    };
    let dir = state_dir(&cfg, flag);
    if dry_run {
        // A dry run writes nothing, the metrics file included.
        return tick_with(&cfg, dir, true, &mut Log::stdout(), None, true);
    }
    let metrics = metrics
        .clone()
        .or_else(|| cfg.settings.metrics_file.clone());
    if let Err(e) = state::create_dir(&dir) {
        err!("autoheal: {e}");
        return Exit::Usage;
    }
    let mut log = Log::to_file(&dir.join("autoheal.log"));
    // Kept before the tick acts: the version that heals is the version a broken edit falls
    // back to.
    if let Err(e) = state::keep_config(&dir, &cfg.source, &cfg.absolute_path()) {
        let message = format!("cannot keep a copy of the config: {e}");
        log.emit(Event::Trouble { message }, None);
    }
    let exit = tick_with(&cfg, dir, false, &mut log, metrics, true);
    // The process ends now: freeing every compiled pattern and service of a large file one by
    // one would cost the tick a few per cent of its time for nothing.
    std::mem::forget(cfg);
    exit
}

/// The tick of a `run` whose config does not load (its errors are on stderr already): said in
/// the log of the state dir (`--state-dir`, else the broken file's own `settings.state_dir`
/// when its YAML says it, else the default; a file root may not trust names none), then healed
/// with the kept version of the file, if there is one and nothing forbids it. Exit 2.
fn heal_with_kept(
    path: &Path,
    flag: &Option<PathBuf>,
    strict: bool,
    metrics: &Option<PathBuf>,
) -> Exit {
    let (summary, errors, trusted) = match autoheal::load_config(path) {
        Err(LoadError::Invalid(diags)) => {
            let errors: Vec<String> = diags
                .0
                .iter()
                .filter(|d| d.severity == autoheal::config::Severity::Error)
                .map(|d| d.headline())
                .collect();
            let more = errors.len().saturating_sub(3);
            let mut text = format!(
                "{} error{}: {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors[..errors.len().min(3)].join("; ")
            );
            if more > 0 {
                text.push_str(&format!(
                    "; and {more} more (autoheal check -c {})",
                    path.display()
                ));
            }
            (text, errors.len(), true)
        }
        Err(LoadError::Refused(why)) => (why.to_string(), 1, false),
        Ok(_) => ("it changed while it was read".into(), 1, true),
    };
    let dir = flag
        .clone()
        .or_else(|| {
            trusted
                .then(|| autoheal::config::state_dir_hint(path))
                .flatten()
        })
        .unwrap_or_else(|| PathBuf::from(autoheal::defaults::STATE_DIR));
    if let Err(e) = state::create_dir(&dir) {
        err!("autoheal: {e}");
        return Exit::Usage;
    }
    let mut log = Log::to_file(&dir.join("autoheal.log"));
    let shown = path.display();
    log.emit(
        Event::ConfigInvalid {
            path: path.to_path_buf(),
            errors,
            summary,
        },
        None,
    );
    // The metrics say it too: `--metrics`, else the kept version's `metrics_file`.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let kept = state::kept_config(&dir, &absolute);
    let kept_cfg = match &kept {
        Ok(Some(Ok((source, _)))) => Some(autoheal::load_kept_config(source, path).map(Arc::new)),
        _ => None,
    };
    let metrics_file = metrics.clone().or_else(|| match &kept_cfg {
        Some(Ok(cfg)) => cfg.settings.metrics_file.clone(),
        _ => None,
    });
    let hooks = kept_cfg
        .as_ref()
        .map(|c| c.as_ref().map(Arc::clone).map_err(|_| ()));
    let nothing = |log: &mut Log, why: &str| {
        let (path, why) = (path.to_path_buf(), why.to_string());
        log.emit(Event::NothingHealed { path, why }, None);
        // The alert hooks of the last good version, if it loads, say it too.
        if let Some(Ok(cfg)) = &hooks
            && let Err(e) = tick::alert_only(cfg, &dir, log)
        {
            let message = e.to_string();
            log.emit(Event::Trouble { message }, None);
        }
        if let Some(file) = &metrics_file {
            let tick = autoheal::report::metrics::TickLevel {
                at: autoheal::time::now(),
                locked_out: false,
                config_valid: false,
            };
            if let Err(e) = autoheal::report::metrics::write_tick_level(file, &dir, &tick) {
                let message = e.to_string();
                log.emit(Event::Trouble { message }, None);
            }
        }
        Exit::Usage
    };
    if strict {
        return nothing(&mut log, "--strict");
    }
    let (since, kept_cfg) = match (kept, kept_cfg) {
        (Ok(Some(Ok((_, since)))), Some(cfg)) => (since, cfg),
        (Ok(Some(Err(other))), _) => {
            return nothing(
                &mut log,
                &format!(
                    "the version kept in {} is of another file ({other})",
                    dir.display()
                ),
            );
        }
        (Ok(_), _) => {
            return nothing(
                &mut log,
                &format!(
                    "no version of it has loaded here before ({} has none)",
                    dir.join(state::KEPT_CONFIG).display()
                ),
            );
        }
        (Err(e), _) => return nothing(&mut log, &e.to_string()),
    };
    let cfg = match kept_cfg {
        Ok(cfg) if cfg.settings.strict => {
            return nothing(&mut log, "its last good version says `strict: true`");
        }
        Ok(cfg) => cfg,
        Err(e) => {
            let why = e.to_string();
            let first = why.lines().next().unwrap_or_default();
            return nothing(
                &mut log,
                &format!("its last good version does not load any more either ({first})"),
            );
        }
    };
    log.emit(
        Event::ConfigKept {
            path: path.to_path_buf(),
            since,
            kept: dir.join(state::KEPT_CONFIG),
        },
        None,
    );
    err!(
        "autoheal: but this tick heals with the last version of {shown} that loaded (see {})",
        dir.join("autoheal.log").display()
    );
    tick_with(&cfg, dir, false, &mut log, metrics_file, false);
    Exit::Usage
}

/// One tick of `cfg` with its state in `dir`; the exit code of its outcome.
fn tick_with(
    cfg: &Arc<Config>,
    dir: PathBuf,
    dry_run: bool,
    log: &mut Log,
    metrics_file: Option<PathBuf>,
    config_valid: bool,
) -> Exit {
    let opts = TickOptions {
        state_dir: dir,
        dry_run,
        metrics_file,
        config_valid,
    };
    match tick::run(cfg, &opts, log) {
        Ok(TickOutcome::LockedOut { .. }) => Exit::Ok,
        Ok(TickOutcome::Done { plan, .. }) if plan.all_well() => Exit::Ok,
        Ok(TickOutcome::Done { .. }) => Exit::Down,
        Err(e) => {
            err!("autoheal: {e}");
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
        err!("autoheal: {w}");
    }
    let ctx = Ctx {
        state: &st,
        restarts: Restarts::Never,
    };
    let obs = observe(cfg, Scope::All, &ctx);
    for (label, msg) in &obs.notes {
        err!("{}: {}", report::one_line(label), report::one_line(msg));
    }
    let now = autoheal::time::now();
    let p = engine::plan(cfg, &obs, &st, now);
    let r = report::status(cfg, &obs, &p, &st, now);
    if json {
        match serde_json::to_string_pretty(&r) {
            Ok(text) => out!("{text}"),
            Err(e) => {
                err!("autoheal: cannot write the status as JSON: {e}");
                return Exit::Usage;
            }
        }
    } else {
        out_raw!("{}", report::table(&r, now));
    }
    if r.all_alive { Exit::Ok } else { Exit::Down }
}

/// `autoheal graph`: the DOT text; with `--status`, coloured from one observation, the one
/// `status` makes (every dep probed, nothing started). Exit 0 once it is written.
fn graph(cfg: &Arc<Config>, dir: &Option<PathBuf>, with_status: bool) -> Exit {
    if !with_status {
        out_raw!("{}", report::graph::render(cfg, None));
        return Exit::Ok;
    }
    let dir = state_dir(cfg, dir);
    // Read-only, as `status`: a state dir it cannot trust means no history.
    let (st, warning) = match state::judge_own_dir(&dir) {
        Ok(()) => state::peek(&dir),
        Err(e) => (Default::default(), Some(format!("{e}; showing no history"))),
    };
    if let Some(w) = warning {
        err!("autoheal: {w}");
    }
    let ctx = Ctx {
        state: &st,
        restarts: Restarts::Never,
    };
    let obs = observe(cfg, Scope::All, &ctx);
    for (label, msg) in &obs.notes {
        err!("{}: {}", report::one_line(label), report::one_line(msg));
    }
    let now = autoheal::time::now();
    let p = engine::plan(cfg, &obs, &st, now);
    let r = report::status(cfg, &obs, &p, &st, now);
    out_raw!("{}", report::graph::render(cfg, Some(&r)));
    Exit::Ok
}

/// `reset`, `pause`, `resume`: the lever `act` on the state dir, under the tick lock; what it
/// did goes to the log (and stdout), what it refused to stderr with its exit code.
fn lever(
    cfg: &Config,
    dir: &Option<PathBuf>,
    act: impl FnOnce(&Path) -> Result<levers::Done, levers::LeverError>,
) -> Exit {
    let dir = state_dir(cfg, dir);
    let done = match act(&dir) {
        Ok(done) => done,
        Err(e) => {
            err!("autoheal: {e}");
            return e.exit();
        }
    };
    for name in &done.untouched {
        err!("autoheal: {name} is not paused; nothing to resume");
    }
    if !done.events.is_empty() {
        let mut log = Log::to_file(&dir.join("autoheal.log"));
        for event in done.events {
            log.emit(event, None);
        }
    }
    Exit::Ok
}

fn check(path: &Path) -> Exit {
    let cfg = match load(path) {
        Ok(cfg) => cfg,
        Err(exit) => return exit,
    };
    for w in &cfg.warnings {
        err_raw!("{w}");
    }
    let warn = match cfg.warnings.len() {
        0 => String::new(),
        1 => " (1 warning)".into(),
        n => format!(" ({n} warnings)"),
    };
    out!(
        "{}: {} services, {} deps, ok{warn}",
        path.display(),
        cfg.services.len(),
        cfg.dep_count()
    );
    Exit::Ok
}

/// `autoheal cron` / `autoheal systemd`: print the files for this binary, or with `--install`
/// write them (into `dir`, else the system's directory), never over a file they did not write.
fn install_files(kind: Kind, write: bool, dir: &Option<PathBuf>) -> Exit {
    let files = install::current_exe().and_then(|exe| {
        if write {
            let dir = dir.as_deref().unwrap_or(kind.default_dir());
            install::install(kind, dir, &exe).map(|w| (w, Vec::new()))
        } else {
            install::render(kind, &exe).map(|f| (Vec::new(), f))
        }
    });
    let (written, shown) = match files {
        Ok(files) => files,
        Err(e) => {
            err!("autoheal: {e}");
            return Exit::Usage;
        }
    };
    for (i, (name, text)) in shown.iter().enumerate() {
        if shown.len() > 1 {
            out!("{}# --- {name}", if i > 0 { "\n" } else { "" });
        }
        out_raw!("{text}");
    }
    for w in &written {
        match w {
            Written::Wrote(p) => out!("wrote {}", p.display()),
            Written::Unchanged(p) => out!("{} is up to date", p.display()),
        }
    }
    if write {
        match kind {
            Kind::Cron => out!(
                "cron runs a tick every minute and at boot; its events go to \
                 /var/lib/autoheal/autoheal.log (run `autoheal check` first)"
            ),
            Kind::Systemd => out!(
                "to start the timer: systemctl daemon-reload && systemctl enable --now \
                 autoheal.timer (and comment out any cron lines that run autoheal)"
            ),
        }
    }
    Exit::Ok
}

/// `autoheal man DIR` (hidden): the man pages, for the package.
fn man_pages(dir: &Path) -> Exit {
    match generate::man_pages(dir) {
        Ok(paths) => {
            for p in paths {
                out!("wrote {}", p.display());
            }
            Exit::Ok
        }
        Err(e) => {
            err!(
                "autoheal: cannot write the man pages into {}: {e}",
                dir.display()
            );
            Exit::Usage
        }
    }
}
