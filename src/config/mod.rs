//! The configuration model: what `conf.yaml` means, fully typed.
//!
//! `load` (in `load.rs`) is the only way to build a [`Config`]; once it returns `Ok`, nothing
//! downstream validates again: every regex compiles, every port is in range, every local dep
//! names a service of the file, the local graph has no cycle. Errors are collected whole, each
//! with its position (`diag.rs`), from a marked YAML tree (`yaml.rs`). The graph of services
//! (`graph.rs`: who waits on whom, by name or at a `health:` address) is built once, here.

mod cut;
mod diag;
pub mod graph;
mod load;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use graph::{Addr, By, Graph};
pub use load::{
    Rejected, load, load_partial, load_partial_str, load_str, resolve_path, state_dir_hint,
};

use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

/// A loaded, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, as the operator named it (used in messages).
    pub path: PathBuf,
    /// Its text: what `run` keeps in the state dir, to heal with should a later edit of the
    /// file not load.
    pub source: String,
    pub settings: Settings,
    /// Services in file order.
    pub services: Vec<Service>,
    /// Problems that do not stop autoheal (e.g. a `user` missing on this host).
    pub warnings: Vec<Diagnostic>,
    /// Who waits on whom among `services`; without cycles (`load` rejects them).
    pub graph: Graph,
}

impl Config {
    pub fn service(&self, name: &str) -> Option<&Service> {
        match self.graph.index(name).and_then(|i| self.services.get(i)) {
            Some(s) if s.name == name => Some(s),
            // A list changed after loading: look it up the slow way.
            _ => self.services.iter().find(|s| s.name == name),
        }
    }

    /// The local service `dep` of `svc` waits on, and how it names it: by name, or by probing
    /// that service's `health:` address (see [`Addr`]).
    pub fn local_dep(&self, svc: &Service, dep: &Dep) -> Option<(&Service, By)> {
        let from = self.graph.index(&svc.name)?;
        // A dep's name is unique among its service's deps (`load` checks it).
        let at = svc.deps.iter().position(|d| d.name() == dep.name())?;
        let edge = self.graph.edge(from, at)?;
        Some((self.services.get(edge.to)?, edge.by))
    }

    /// The file's absolute path, for `AUTOHEAL_CONFIG`: scripts run in its directory, where a
    /// relative path as the operator typed it would name another file.
    pub fn absolute_path(&self) -> PathBuf {
        std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone())
    }

    /// Number of deps over all services.
    pub fn dep_count(&self) -> usize {
        self.services.iter().map(|s| s.deps.len()).sum()
    }
}

/// The `settings:` block; every key has a default (see `crate::defaults`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Absolute, or relative to the config file's directory.
    pub state_dir: PathBuf,
    /// How long one tick may keep waiting for dependencies; zero means one pass.
    pub converge: Duration,
    /// Extra directory searched by Lua's `require`, resolved against the config file's directory.
    pub lua_path: Option<PathBuf>,
    /// The Prometheus textfile rewritten after every tick (`report::metrics`); resolved
    /// against the config file's directory. `--metrics` overrides it.
    pub metrics_file: Option<PathBuf>,
    pub probe_timeout: Duration,
    pub script_timeout: Duration,
    pub grace: Duration,
    pub lua_timeout: Duration,
    /// First backoff after a failed restart; doubles with every further failure.
    pub backoff: Duration,
    /// Cap of the backoff.
    pub backoff_max: Duration,
    /// After this many consecutive failed restarts autoheal stops trying (0 = never gives up).
    pub give_up_after: u32,
    /// A service alive this long has its failure counters reset.
    pub healthy_after: Duration,
    /// Consecutive failed health observations before an alive service is restarted.
    pub unhealthy_after: u32,
    /// When a later version of the file does not load, heal nothing rather than heal with this
    /// one (`run --strict` for one run).
    pub strict: bool,
}

impl Default for Settings {
    fn default() -> Self {
        use crate::defaults as d;
        Settings {
            state_dir: PathBuf::from(d::STATE_DIR),
            converge: d::CONVERGE,
            lua_path: None,
            metrics_file: None,
            probe_timeout: d::PROBE_TIMEOUT,
            script_timeout: d::SCRIPT_TIMEOUT,
            grace: d::GRACE,
            lua_timeout: d::LUA_TIMEOUT,
            backoff: d::BACKOFF,
            backoff_max: d::BACKOFF_MAX,
            give_up_after: d::GIVE_UP_AFTER,
            healthy_after: d::HEALTHY_AFTER,
            unhealthy_after: d::UNHEALTHY_AFTER,
            strict: false,
        }
    }
}

/// One service of the file.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Where its key stands in the file.
    pub line: usize,
    pub liveness: Liveness,
    /// Inline Lua health check of the service itself.
    pub check: Option<LuaChunk>,
    pub deps: Vec<Dep>,
    /// Run with `/bin/sh -c`.
    pub script: String,
    pub user: Option<String>,
    /// Added to the small clean environment its `script`, `stop` and Lua `exec` get (`env:`).
    pub env: Vec<(String, String)>,
    /// The account its process runs under (`process_user:`), for daemons that drop privileges
    /// to another account than the one their script runs as. See [`Service::account`].
    pub process_user: Option<String>,
    pub timeout: Duration,
    pub grace: Duration,
    /// A probe of the service itself (`health:`); with `check:`, both must pass.
    pub health: Option<Probe>,
    /// How to stop it before a health restart (else SIGTERM, then SIGKILL, to its pid).
    pub stop: Option<String>,
    /// Failed health observations in a row before it is restarted.
    pub unhealthy_after: u32,
    /// Restart it when one of its local deps was (re)started after it.
    pub restart_on_dep_restart: bool,
    /// Time limit of its `check:` chunk (`check_timeout:`, default `settings.lua_timeout`).
    pub check_timeout: Duration,
}

impl Service {
    /// The account whose processes (besides root's) make it alive and may be signalled for it:
    /// `process_user`, else `user`; `None` means the account autoheal runs as (root).
    pub fn account(&self) -> Option<&str> {
        self.process_user.as_deref().or(self.user.as_deref())
    }
}

/// A tcp or http probe of a service's own health.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Tcp {
        host: String,
        port: u16,
        timeout: Duration,
    },
    Http {
        url: String,
        timeout: Duration,
    },
}

/// How autoheal tells a service is alive. With both, both must hold.
#[derive(Debug, Clone)]
pub enum Liveness {
    Pname(Pname),
    PidFile(PathBuf),
    Both { pname: Pname, pid_file: PathBuf },
}

impl Liveness {
    pub fn pname(&self) -> Option<&Pname> {
        match self {
            Liveness::Pname(p) | Liveness::Both { pname: p, .. } => Some(p),
            Liveness::PidFile(_) => None,
        }
    }
    pub fn pid_file(&self) -> Option<&PathBuf> {
        match self {
            Liveness::PidFile(p) | Liveness::Both { pid_file: p, .. } => Some(p),
            Liveness::Pname(_) => None,
        }
    }
}

/// A `pname` regex, with its source for messages.
#[derive(Debug, Clone)]
pub struct Pname {
    pub source: String,
    pub regex: Regex,
}

/// A direct dependency. The kind is decided by its keys: `host`+`port`, `url`, `lua`, or a
/// `name` alone that names a service of this file.
#[derive(Debug, Clone)]
pub enum Dep {
    Tcp {
        name: String,
        host: String,
        port: u16,
        timeout: Duration,
    },
    Http {
        name: String,
        url: String,
        timeout: Duration,
    },
    /// Ready iff that local service is alive and its `check:` passes.
    Service { name: String },
    Lua {
        name: String,
        chunk: LuaChunk,
        timeout: Duration,
    },
}

impl Dep {
    pub fn name(&self) -> &str {
        match self {
            Dep::Tcp { name, .. }
            | Dep::Http { name, .. }
            | Dep::Service { name }
            | Dep::Lua { name, .. } => name,
        }
    }
}

/// Lua source from conf.yaml, with where it came from so errors name the file's line.
#[derive(Debug, Clone, PartialEq)]
pub struct LuaChunk {
    pub source: String,
    /// File line of the chunk's first line.
    pub line: usize,
    /// `web.check` or `web.dep[queue].lua`: how messages name it.
    pub label: String,
    /// The service it belongs to (its `user:` runs the chunk's `exec`).
    pub service: String,
}
