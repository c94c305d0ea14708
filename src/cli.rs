//! The command line (clap definitions only; `main.rs` dispatches).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// autoheal restarts the dead services of this host, each only once its direct dependencies
/// (tcp, http, a service of the same file, or a Lua check) are ready. Run it from cron on every
/// host: order emerges by itself, with no coordinator.
///
/// Exit codes: 0 every service alive (or the config is valid, for `check`); 1 some service still
/// down; 2 bad config or usage.
#[derive(Debug, Parser)]
#[command(name = "autoheal", version, max_term_width = 100)]
pub struct Cli {
    /// The config file [default: $AUTOHEAL_CONFIG, else /etc/autoheal/conf.yaml]
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        value_name = "FILE",
        env = "AUTOHEAL_CONFIG",
        hide_env = true
    )]
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
    },
    /// Validate the config and compile every Lua chunk; touches nothing.
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
    /// Forget a service's failures and backoff, so the next tick may start it again.
    Reset {
        /// The service to reset.
        service: String,
        /// Where the state file lives [default: settings.state_dir]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

impl Cli {
    /// The config path: `-c`, else `$AUTOHEAL_CONFIG` (both handled by clap), else the default.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::defaults::CONFIG_PATH))
    }
}
