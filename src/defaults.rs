//! Every bound autoheal keeps, named once with its default. Config keys override some of them
//! (see README "Config reference"); the rest are fixed limits that keep a tick bounded.

use std::time::Duration;

/// Default time limit of one tcp or http probe (`timeout:` on a dep, `settings.probe_timeout`).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time limit of a service's `script` (`timeout:` on a service, `settings.script_timeout`).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a fresh restart gets to come alive (`grace:`, `settings.grace`).
pub const GRACE: Duration = Duration::from_secs(30);
/// The shortest `grace` a config may give: less would let two starts follow each other before
/// the first could come alive.
pub const MIN_GRACE: Duration = Duration::from_millis(100);
/// The longest time limit of a tcp or http probe a config may give (`probe_timeout`, a dep's
/// or `health`'s `timeout`). A tick waits for its probes before it decides, so a longer one
/// holds the whole tick, and every service of the host, on one host that does not answer; one
/// that has not answered in 10 minutes is not going to.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest time limit of a `script` a config may give (`script_timeout`, a service's
/// `timeout`): a start that replays a database's log or checks a big file system can take
/// hours; one that has not returned in a day is hung.
pub const MAX_SCRIPT_TIMEOUT: Duration = Duration::from_secs(86_400);
/// The longest time limit of a Lua chunk a config may give (`lua_timeout`, `check_timeout`, a
/// lua dep's `timeout`): a chunk runs inside a tick's look, as a probe does (same reason).
pub const MAX_LUA_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest `grace` a config may give: a service that has not come alive a day after its
/// start is not starting, and a longer grace only puts off the next try.
pub const MAX_GRACE: Duration = Duration::from_secs(86_400);
/// The longest `converge` a config may give: cron starts a tick every minute and each one finds
/// the lock held while a tick runs, so an hour already covers the slowest chain that still
/// makes progress; past it the next tick carries on.
pub const MAX_CONVERGE: Duration = Duration::from_secs(3600);
/// The longest `backoff` and `backoff_max` a config may give: a month between two tries is
/// already "stop trying" (say so with `give_up_after`); longer only risks overflowing times.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30 * 86_400);
/// The longest `healthy_after` a config may give: a month alive is healthy by any measure.
pub const MAX_HEALTHY_AFTER: Duration = Duration::from_secs(30 * 86_400);
/// Default budget of one tick's converge loop (`settings.converge`).
pub const CONVERGE: Duration = Duration::from_secs(50);
/// Default time limit of one Lua chunk (`settings.lua_timeout`).
pub const LUA_TIMEOUT: Duration = Duration::from_secs(5);
/// Memory limit of one Lua state.
pub const LUA_MEMORY: usize = 64 * 1024 * 1024;
/// At most this many redirects are followed by an http probe.
pub const HTTP_MAX_REDIRECTS: u32 = 5;
/// At most this many bytes of an http body are read.
pub const HTTP_MAX_BODY: u64 = 64 * 1024;
/// At most this many probes run at once, each on a thread of its own (of [`PROBE_STACK`]
/// bytes of stack) with one socket: one observation of up to this many distinct targets costs
/// one probe timeout, however many of them are black holes. Fewer when the open-file limit
/// leaves less room (see `probe::probe_all`).
pub const PROBE_WORKERS: usize = 1024;
/// The stack of a probe's thread: an http probe (TLS included) needs far less than the 2 MiB a
/// thread gets by default, and a thousand of them should not reserve 2 GiB.
pub const PROBE_STACK: usize = 256 * 1024;
/// The longest reason a held service is given, in bytes, about: past it the links in the middle
/// of its chain of deps are left out (`a (dead) ← … ← z 10.0.0.7:80 (connection refused)`), so
/// that a long chain (or a wide one) of services gives short reasons, not N² bytes of them.
pub const MAX_REASON: usize = 1024;
/// The longest service name, in bytes: a service's script log is `logs/<name>.log` in the state
/// dir, and a file name is at most 255 bytes (NAME_MAX on Linux file systems), `.log` included.
pub const MAX_SERVICE_NAME: usize = 255 - ".log".len();
/// Default state directory (`settings.state_dir`, `--state-dir`).
pub const STATE_DIR: &str = "/var/lib/autoheal";
/// Default config path when neither `-c` nor `$AUTOHEAL_CONFIG` is given.
pub const CONFIG_PATH: &str = "/etc/autoheal/conf.yaml";
/// First backoff after a failed restart (`settings.backoff`); doubles with each further failure.
pub const BACKOFF: Duration = Duration::from_secs(60);
/// Backoff cap (`settings.backoff_max`).
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Consecutive failed restarts before autoheal gives up on a service (`settings.give_up_after`).
pub const GIVE_UP_AFTER: u32 = 10;
/// A service alive this long has its failure counters reset (`settings.healthy_after`).
pub const HEALTHY_AFTER: Duration = Duration::from_secs(300);
/// Failed health observations in a row before an alive service is restarted
/// (`settings.unhealthy_after`, `unhealthy_after:`). Counted at most once per [`HEALTH_SPACING`].
pub const UNHEALTHY_AFTER: u32 = 3;
/// Two failed health observations count as two only this far apart, so the converge loop's
/// quick re-observations do not restart a service that is slow for a second.
pub const HEALTH_SPACING: Duration = Duration::from_secs(5);
/// After SIGTERM (no `stop:`), time for a process to exit before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// After SIGKILL, at most this long is waited for the process to be gone before its service is
/// started again: a new instance started while the old one still holds its lock file, port or
/// shared memory (a stopped postgres) fails, and its grace is lost.
pub const KILL_WAIT: Duration = Duration::from_secs(5);
/// At most this much YAML is copied by anchors and aliases (`*name`) in one config file, in nodes
/// (a long text counts one per 64 bytes): a nested-alias "billion laughs" file is rejected
/// instead of exhausting memory.
pub const YAML_ALIAS_BUDGET: usize = 100_000;
/// Default time a service stays down before its alert fires (`settings.notify_after`), so that
/// a restart that heals it within a tick or two alerts no one.
pub const NOTIFY_AFTER: Duration = Duration::from_secs(300);
/// The longest `notify_after` a config may give: an alert a day late is no alert.
pub const MAX_NOTIFY_AFTER: Duration = Duration::from_secs(86_400);
/// Default time limit of one alert hook (`settings.hook_timeout`): the `notify` command or the
/// `on_event` chunk.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest `hook_timeout` a config may give: less and a hook that posts to a webhook could
/// not even connect.
pub const MIN_HOOK_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest `hook_timeout` a config may give: hooks run inside a tick, which waits for them.
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The longest wait between two looks at a remote dep while a tick waits on it
/// (`settings.recheck_max`). It bounds how late a host notices a remote dep that came up (the
/// power-cut drill showed 5 s costing up to 2.5 s per level) against the probes a waiting host
/// sends each target: one per `recheck_max` at most. See bench/fleet_model.rs.
pub const RECHECK_MAX: Duration = Duration::from_secs(2);
/// The shortest `recheck_max`: the first wait of the schedule.
pub const MIN_RECHECK_MAX: Duration = Duration::from_millis(250);
/// The longest `recheck_max`: a host that looks less often than this notices its deps too late
/// for a tick (`converge` is at most a few minutes) to be worth waiting in.
pub const MAX_RECHECK_MAX: Duration = Duration::from_secs(300);
/// The wait between two looks while a tick waits only on this host (local services, loopback
/// probes): a process-table read and a loopback probe are cheap, and each level of a local
/// chain is noticed this soon after it is ready. Never less than one observation takes.
pub const LOCAL_RECHECK: Duration = Duration::from_millis(50);
/// How long `autoheal pause` holds a service when `--for` is not given: a maintenance window
/// that is forgotten ends by itself.
pub const PAUSE_FOR: Duration = Duration::from_secs(3600);
/// The longest `--for` of a pause: a longer window is a pause until resumed (`--for 0`), which
/// every tick reports.
pub const MAX_PAUSE: Duration = Duration::from_secs(30 * 86_400);
/// The longest `--reason` of a pause, in bytes: it is repeated in every line about the service.
pub const MAX_PAUSE_REASON: usize = 200;
