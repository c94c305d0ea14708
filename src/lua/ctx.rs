//! What the files of the Lua host share, below all of them: what a chunk may ask of the tick
//! ([`World`]), why a run failed ([`Failure`]), and the context of one state's runs ([`Ctx`]:
//! the deadline every blocking primitive is bounded by, the account `exec` runs as, where paths
//! resolve).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::modules::lua_dirs;
use crate::config::{Config, LuaChunk};

/// The module name under which the primitives are found.
pub(crate) const PRIMITIVES: &str = "autoheal";
/// The global that holds the event in a run of `settings.on_event`.
pub(crate) const HOOK_GLOBAL: &str = "event";

/// What a chunk may ask of the tick. The engine implements it (`Sync`: chunks run on several
/// threads).
pub trait World: Sync {
    /// Liveness (and health, for a service of this file with `check:`) of a service of this
    /// file. `Err` = unknown service name.
    fn alive(&self, service: &str) -> Result<bool, String>;
    /// When the process of a service of this file started (unix seconds), `None` when it is
    /// dead or its start time is unknown. `Err` = unknown service name.
    fn started(&self, service: &str) -> Result<Option<f64>, String>;
    /// Ask for a restart through the engine's gate (deps ready, grace, backoff, lock, dry-run),
    /// answering by `deadline` (the asking chunk's own): `Ok(())` = accepted; `Err(reason)`
    /// otherwise.
    fn restart(&self, service: &str, deadline: Instant) -> Result<(), String>;
    /// Log one line on behalf of a chunk.
    fn log(&self, label: &str, msg: &str);
}

/// Why a chunk did not return a truthy value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It returned false or nil (`false, "why"`: the why): the answer of a check that worked.
    Falsy(String),
    /// It did not answer: a runtime error, its time or memory limit, stuck in a library
    /// function. A health check that errs says nothing about the service: it is reported, and
    /// never counted toward a health restart.
    Error(String),
}

impl Failure {
    pub fn reason(self) -> String {
        match self {
            Failure::Falsy(r) | Failure::Error(r) => r,
        }
    }

    /// As the failure of a lua dep.
    pub fn probe_error(self) -> crate::probe::ProbeError {
        use crate::probe::{How, ProbeError};
        match self {
            Failure::Falsy(r) => ProbeError::new(How::LuaFalse, r),
            Failure::Error(r) => ProbeError::new(How::LuaError, r),
        }
    }
}

/// What the primitives of a state share: the deadline of the run under way, where modules
/// live, where relative paths resolve.
pub(crate) struct Ctx {
    /// The deadline and time limit of the run under way (set by [`Ctx::start`]).
    run: Mutex<(Instant, Duration)>,
    /// Set once the deadline has been hit, so a timeout caught by `pcall` is still reported as
    /// a timeout. Cleared by [`Ctx::start`].
    pub timed_out: AtomicBool,
    pub dirs: Vec<PathBuf>,
    /// The config file's directory: relative paths in chunks resolve against it.
    pub base: PathBuf,
    /// Who the run under way runs commands as (`exec`), set by [`Ctx::start`].
    run_as: Mutex<RunAs>,
}

/// The account and environment of the commands a chunk runs with `exec`: those of the
/// service it belongs to (its `user:`, its `env:`), so that a `user:` service's check never
/// runs a command as root.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    /// `Err` when the service's `user:` cannot be resolved: `exec` then refuses, it never
    /// falls back to root.
    pub user: Result<Option<crate::exec::UserIds>, String>,
    pub env: Vec<(String, String)>,
}

impl RunAs {
    /// The account and environment of `chunk`'s service.
    pub(crate) fn of(config: &Config, chunk: &LuaChunk) -> RunAs {
        let svc = config.service(&chunk.service);
        let user = match svc.and_then(|s| s.user.as_deref()) {
            Some(name) => crate::exec::resolve_user(name).map(Some),
            None => Ok(None),
        };
        let mut env = svc.map(|s| s.env.clone()).unwrap_or_default();
        env.push((
            "AUTOHEAL_CONFIG".into(),
            config.absolute_path().display().to_string(),
        ));
        if svc.is_some() {
            env.push(("AUTOHEAL_SERVICE".into(), chunk.service.clone()));
        }
        RunAs { user, env }
    }
}

impl Ctx {
    pub(crate) fn new(config: &Config, timeout: Duration) -> Ctx {
        Ctx {
            run: Mutex::new((crate::fmt::deadline(timeout), timeout)),
            timed_out: AtomicBool::new(false),
            dirs: lua_dirs(config),
            base: config
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            run_as: Mutex::new(RunAs {
                user: Ok(None),
                env: Vec::new(),
            }),
        }
    }

    /// A new run starts now, with `timeout`, its commands run as `run_as`.
    pub(crate) fn start(&self, timeout: Duration, run_as: RunAs) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) =
            (crate::fmt::deadline(timeout), timeout);
        *self.run_as.lock().unwrap_or_else(|e| e.into_inner()) = run_as;
        self.timed_out.store(false, Ordering::Relaxed);
    }

    /// Who the run under way runs its commands as.
    pub(crate) fn run_as(&self) -> RunAs {
        self.run_as
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn timeout(&self) -> Duration {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    pub(crate) fn timeout_error(&self) -> mlua::Error {
        self.timed_out.store(true, Ordering::Relaxed);
        mlua::Error::runtime(self.timeout_message())
    }

    pub(crate) fn timeout_message(&self) -> String {
        format!("timed out after {}", show(self.timeout()))
    }

    /// Fails with the chunk's timeout once the deadline has passed: for a primitive that could
    /// be called from a loop in C (as a metamethod or a sort comparator), where the hook never
    /// runs.
    pub(crate) fn check_deadline(&self) -> mlua::Result<()> {
        if Instant::now() >= self.deadline() {
            return Err(self.timeout_error());
        }
        Ok(())
    }

    /// The time a blocking primitive may take: `want`, cut to what the chunk has left. Errors
    /// with the chunk's timeout when nothing is left.
    pub(crate) fn budget(&self, want: Duration) -> mlua::Result<Duration> {
        let left = left(self.deadline());
        if left.is_zero() {
            return Err(self.timeout_error());
        }
        Ok(want.min(left))
    }

    /// A path from a chunk, resolved against the config file's directory.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        crate::config::resolve_path(&self.base, p)
    }
}

/// How a duration reads in messages: "5s", "300ms", "1.5s".
pub(crate) use crate::fmt::duration as show;

/// The time left before `deadline`.
pub(crate) fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
