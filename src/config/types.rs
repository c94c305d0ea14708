//! The parts of a configuration: its settings and its services, with their liveness, deps,
//! probes and Lua chunks. Plain data, below everything else of `config` (the graph, the
//! loader and [`Config`](super::Config) are built from them).

use regex::Regex;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

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
    /// The alert command (`notify:`), run with `/bin/sh -c` as root's own account, the event in
    /// its environment and as JSON on its stdin (`exec::run_hook`).
    pub notify: Option<String>,
    /// How long a service stays down before its alert fires (`notify_after:`).
    pub notify_after: Duration,
    /// Time limit of one alert hook, `notify` or `on_event` (`hook_timeout:`).
    pub hook_timeout: Duration,
    /// The longest wait between two looks at a remote dep (`recheck_max:`).
    pub recheck_max: Duration,
    /// The alert chunk (`on_event:`), run with the event as the global `event`; it may post and
    /// probe, never `restart()` (`lua::run_event_hook`).
    pub on_event: Option<LuaChunk>,
    /// The addresses (names or IP literals, no port) this host's services listen on
    /// (`host:`), as written; empty when not given. Only `autoheal fleet` reads it.
    pub host: Vec<String>,
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
            notify: None,
            notify_after: d::NOTIFY_AFTER,
            hook_timeout: d::HOOK_TIMEOUT,
            recheck_max: d::RECHECK_MAX,
            on_event: None,
            host: Vec::new(),
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
    /// The file line of each of `deps`, in their order (where its list item starts).
    pub dep_lines: Vec<usize>,
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
    /// Where other hosts reach it (`listen:`); only `autoheal fleet` reads it.
    pub listen: Vec<Listen>,
    /// The time from its start to ready (`warmup:`), for the fleet's critical path; `None`:
    /// its `grace`. See [`Service::warmup`].
    pub warmup: Option<Duration>,
}

impl Service {
    /// Its `warmup:`, else its `grace`: how long it takes from its start to ready.
    pub fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(self.grace)
    }

    /// The file line of its dep number `dep` (its own line when not known).
    pub fn dep_line(&self, dep: usize) -> usize {
        self.dep_lines.get(dep).copied().unwrap_or(self.line)
    }

    /// The account whose processes (besides root's) make it alive and may be signalled for it:
    /// `process_user`, else `user`; `None` means the account autoheal runs as (root).
    pub fn account(&self) -> Option<&str> {
        self.process_user.as_deref().or(self.user.as_deref())
    }
}

/// One `listen:` entry: where a service can be reached from other hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The address as written; `None` for every address of its host (`8080`, `:8080`,
    /// `*:8080`, `0.0.0.0:8080`, `[::]:8080`).
    pub host: Option<String>,
    pub port: u16,
    /// Its line in the file.
    pub line: usize,
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
    /// Puts `pname` in place of the pattern (the same source, compiled: `load`).
    pub(crate) fn set_pname(&mut self, pname: Pname) {
        if let Liveness::Pname(p) | Liveness::Both { pname: p, .. } = self {
            *p = pname;
        }
    }

    pub fn pid_file(&self) -> Option<&PathBuf> {
        match self {
            Liveness::PidFile(p) | Liveness::Both { pid_file: p, .. } => Some(p),
            Liveness::Pname(_) => None,
        }
    }
}

/// A `pname` regex, known by its source. It is compiled with every other pattern of the file
/// when the file loads ([`Config::pnames`](super::Config::pnames)), and alone only when a
/// question needs it alone ([`crate::pattern`]); one with capture groups is compiled alone when
/// the file loads as well.
#[derive(Debug, Clone)]
pub struct Pname {
    pub source: String,
    alone: OnceLock<Option<Regex>>,
}

impl Pname {
    /// A pattern whose syntax is checked ([`crate::pattern::parse`]) and that has no groups;
    /// `load` proves it compiles by compiling the file's patterns together, and refuses one
    /// that does not.
    pub(crate) fn checked(source: String) -> Pname {
        Pname {
            source,
            alone: OnceLock::new(),
        }
    }

    /// A pattern compiled alone now (`load`).
    pub(crate) fn compiled(regex: Regex) -> Pname {
        Pname {
            source: regex.as_str().to_string(),
            alone: OnceLock::from(Some(regex)),
        }
    }
}

impl crate::pattern::Pattern for Pname {
    fn text(&self) -> &str {
        &self.source
    }

    fn regex(&self) -> Option<&Regex> {
        self.alone
            .get_or_init(|| Regex::new(&self.source).ok())
            .as_ref()
    }
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
    /// The service it belongs to (its `user:` runs the chunk's `exec`); `settings` for
    /// `settings.on_event`, which belongs to none (its `exec` runs as root, as `notify` does).
    pub service: String,
}
