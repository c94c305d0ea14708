//! The command line (clap definitions only; `main.rs` dispatches).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// autoheal restarts the dead services of this host, each only once its direct dependencies
/// (tcp, http, a service of the same file, or a Lua check) are ready. Run it from cron on every
/// host: order emerges by itself, with no coordinator.
///
/// Exit codes: 0 every service alive (or the config is valid, for `check`); 1 some service still
/// down; 2 bad config or usage, a file root may not trust (config, Lua, state dir), or a state
/// that cannot be saved.
#[derive(Debug, Parser)]
#[command(name = "autoheal", version, max_term_width = 100)]
pub struct Cli {
    /// The config file [default: $AUTOHEAL_CONFIG, else /etc/autoheal/conf.yaml]
    // Not clap's `env`: it takes a set but empty AUTOHEAL_CONFIG for an empty -c and fails;
    // an empty one is unset here (see `config_path`).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One tick: restart every dead service whose dependencies are ready, wait for chains to
    /// come up (settings.converge), then exit. This is what cron runs.
    Run {
        /// Where the state file, the lock and the script logs live [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Print each decision and its reason; start nothing, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// When the config does not load, heal nothing (by default the tick heals with the
        /// last version of it that loaded, kept in the state dir, and says so).
        #[arg(long)]
        strict: bool,
        /// Rewrite this Prometheus textfile after the tick [default: settings.metrics_file]
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
    },
    /// Validate the config, compile every Lua chunk, resolve its modules and (as root) check
    /// that root may trust the files; touches nothing.
    Check,
    /// Probe everything, restart nothing, and report each service and why it is down.
    Status {
        /// Where the state file lives [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Machine-readable output (schema in README.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the recovery order: the level of each service in the local dependency graph and
    /// the remote deps it waits on. Probes nothing, starts nothing: the drill on paper.
    Order,
    /// Print the dependency graph as Graphviz DOT (`autoheal graph | dot -Tsvg > graph.svg`):
    /// services, remote targets and lua deps as nodes, what each waits on as edges.
    Graph {
        /// Probe everything, restart nothing, and colour each node by its state (as `status`).
        #[arg(long)]
        status: bool,
        /// Where the state file lives, for --status [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Read every host's own file together and print the fleet: which host each file is, the
    /// recovery order across hosts, the external deps and the critical path after a power
    /// cut; a dependency cycle across hosts is an error (exit 2). Probes nothing, starts
    /// nothing. `-c` is not read.
    Fleet {
        /// The hosts' config files; a directory stands for every *.yaml in it.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print the whole fleet as Graphviz DOT instead, one cluster per host.
        #[arg(long)]
        dot: bool,
    },
    /// Forget a service's failures and backoff, so the next tick may start it again (a pause
    /// stays: `resume` ends it).
    Reset {
        /// The service to reset.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Every service of the file.
        #[arg(long)]
        all: bool,
        /// Where the state file lives [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Pause a service for maintenance: observed, but never started, restarted or stopped
    /// until `resume` or the end of `--for`; its dependents wait on it. Survives reboots.
    Pause {
        /// The service to pause.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Every service of the file: a host-wide maintenance window.
        #[arg(long)]
        all: bool,
        /// How long (`90m`, `2h`, `1 day`); 0 = until `autoheal resume`, which every tick then
        /// reports [default: 1h]
        #[arg(long = "for", value_name = "DURATION", value_parser = duration)]
        length: Option<std::time::Duration>,
        /// Why, for the log and `status` (who paused it is taken from $SUDO_USER, $USER)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Where the state file lives [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// End a service's pause: autoheal heals it again as usual from the next tick.
    Resume {
        /// The service to resume.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Every paused service of the file.
        #[arg(long)]
        all: bool,
        /// Where the state file lives [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print the cron.d file that runs a tick every minute and at boot, as root, with this
    /// binary's path; with --install, write it to /etc/cron.d/autoheal. For a system without
    /// the package (which ships its own).
    Cron {
        /// Write the file (atomically, mode 0644); a file that this command did not write is
        /// never replaced.
        #[arg(long)]
        install: bool,
        /// The directory to write it in [default: /etc/cron.d]
        #[arg(long, value_name = "DIR", requires = "install")]
        dir: Option<PathBuf>,
    },
    /// Print the systemd service and timer (a tick every minute and at boot: the alternative to
    /// cron) with this binary's path; with --install, write them to /etc/systemd/system. Enables
    /// nothing: then run `systemctl daemon-reload && systemctl enable --now autoheal.timer`.
    Systemd {
        /// Write the files (atomically, mode 0644); files that this command did not write are
        /// never replaced.
        #[arg(long)]
        install: bool,
        /// The directory to write them in [default: /etc/systemd/system]
        #[arg(long, value_name = "DIR", requires = "install")]
        dir: Option<PathBuf>,
    },
    /// Print the completion script of a shell (the package installs bash's, zsh's and fish's).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (autoheal.1 and one per command) into DIR: for packaging.
    #[command(hide = true)]
    Man {
        /// Where to write them (made if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// A duration as the config writes them (`500ms`, `2m`, `1h 30m`, a bare number of seconds).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

impl Cli {
    /// The config path: `-c`, else `$AUTOHEAL_CONFIG` if set and not empty, else the default.
    pub fn config_path(&self) -> PathBuf {
        config_path(
            self.config.as_deref(),
            std::env::var_os("AUTOHEAL_CONFIG").as_deref(),
        )
    }
}

/// `-c`, else a non-empty `$AUTOHEAL_CONFIG`, else [`crate::defaults::CONFIG_PATH`].
fn config_path(flag: Option<&std::path::Path>, env: Option<&std::ffi::OsStr>) -> PathBuf {
    match (flag, env) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(e)) if !e.is_empty() => PathBuf::from(e),
        _ => PathBuf::from(crate::defaults::CONFIG_PATH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::path::Path;

    #[test]
    fn config_path_flag_then_env_then_default() {
        let flag = Some(Path::new("a.yaml"));
        assert_eq!(
            config_path(flag, Some(OsStr::new("b.yaml"))),
            Path::new("a.yaml")
        );
        assert_eq!(
            config_path(None, Some(OsStr::new("b.yaml"))),
            Path::new("b.yaml")
        );
        assert_eq!(
            config_path(None, Some(OsStr::new(""))),
            Path::new(crate::defaults::CONFIG_PATH)
        );
        assert_eq!(
            config_path(None, None),
            Path::new(crate::defaults::CONFIG_PATH)
        );
    }
}
