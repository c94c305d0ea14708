//! The Prometheus textfile (`settings.metrics_file`, `--metrics`): a sink of the tick, built
//! from the same [`StatusReport`] that `status` prints, written after every tick for
//! node_exporter's textfile collector (README "Metrics" lists every series).
//!
//! The format is the Prometheus text exposition format (0.0.4), encoded by the Prometheus
//! project's own Rust client, `prometheus-client` (its `encoding::prometheus_text::encode`:
//! `# HELP` and `# TYPE` on each family, label values escaped, `_total` added to counters,
//! no unit suffix forced when none is registered). Its OpenMetrics encoder (`text::encode`)
//! is not used: node_exporter's textfile collector parses the Prometheus text format, which
//! has no `info` type, and `# EOF`/`# UNIT` would be mere comments there.
//!
//! Who writes the file, and when:
//! - a tick that holds the tick lock writes every series, under the lock;
//! - a tick that found the lock held ([`write_tick_level`]) knows only the tick-level series
//!   (last tick time, locked out, config valid, build info). It rewrites the same file: the
//!   per-service series of the last full tick, and its tick duration, are kept from the file
//!   as it is, the tick-level series replaced. So an alert on a service that has been down
//!   for 5 minutes keeps its series through ticks that were locked out.
//! - either writes only while holding the metrics lock (`<state_dir>/metrics.lock`, held for
//!   the write alone), so a locked-out tick can never replace the file between the full
//!   tick's read and rename, nor remove its temp file.
//!
//! The write is atomic: `.<name>.tmp` in the same directory, made exclusively and without
//! following a symlink (a leftover is removed first: unlink never follows one), mode 0644
//! (node_exporter runs as its own user and must read it), fsync, then rename over the final
//! name. The rename replaces whatever stands at the final name, a symlink included, and never
//! writes through it. Writing the file never fails the tick: the caller logs the error.
//!
//! Must not: probe, read the clock or decide anything; it formats what the tick saw.

use super::{STATE_WORDS, StatusReport};
use crate::fmt::io_reason;
use crate::state::{self, LockOutcome, StateError};
use crate::time::Unix;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::encoding::{EncodeGaugeValue, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// How long a writer waits for another one to finish writing the file.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// At most this much of an existing file is read back by a locked-out tick (500 services
/// make some 0.6 MiB).
pub const READ_MAX: u64 = 16 * 1024 * 1024;

/// The series of the tick itself.
#[derive(Debug, Clone, Copy)]
pub struct TickLevel {
    /// When the tick ended, unix seconds.
    pub at: Unix,
    /// It found the tick lock held and did nothing.
    pub locked_out: bool,
    /// The config loaded. A tick that heals with the last good file says `false`.
    pub config_valid: bool,
}

/// The families a locked-out tick (or a bad config) writes anew ([`render_tick_level`]); every
/// [`KEPT`] family of the file is kept. (The tests hold the two lists to what is written.)
#[cfg(test)]
const TICK_LEVEL: [&str; 4] = [
    "autoheal_last_tick_timestamp_seconds",
    "autoheal_tick_locked_out",
    "autoheal_config_valid",
    "autoheal_build_info",
];

/// The families a full tick writes besides [`TICK_LEVEL`]: those a locked-out tick keeps.
const KEPT: [&str; 11] = [
    "autoheal_service_up",
    "autoheal_service_healthy",
    "autoheal_service_state",
    "autoheal_service_starts_total",
    "autoheal_service_consecutive_failures",
    "autoheal_service_backoff_until_timestamp_seconds",
    "autoheal_service_gave_up",
    "autoheal_service_paused_since_timestamp_seconds",
    "autoheal_service_paused_until_timestamp_seconds",
    "autoheal_dep_ready",
    "autoheal_tick_duration_seconds",
];

/// Why the metrics file was not written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "cannot write metrics file {}: {} (check that its directory exists and root may write in it, or fix settings.metrics_file / --metrics)",
        path.display(), io_reason(err)
    )]
    Write { path: PathBuf, err: io::Error },
    #[error(
        "metrics file {} not written: another autoheal{} was writing it for more than {}",
        path.display(), by.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        crate::fmt::duration(LOCK_WAIT)
    )]
    Busy { path: PathBuf, by: Option<u32> },
    #[error("metrics file {} not written: {err}", path.display())]
    Lock { path: PathBuf, err: Box<StateError> },
    #[error(
        "metrics file {} not written: where it sits is not root's alone: {why} (a symlink or directory another account controls on its path could make root write anywhere)",
        path.display()
    )]
    Untrusted {
        path: PathBuf,
        why: Box<crate::trust::Untrusted>,
    },
}

type Labels = Vec<(String, String)>;
type F64Gauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// One family's series, in the order of the report, encoded as they are: a family is written
/// once, from one report, so it needs none of `Family`'s label hashing and locking, which cost
/// a 500-service tick some 5 ms of its 8,000 series (README, "Benchmarks"). Gauges; counters
/// are [`Counts`].
#[derive(Debug)]
struct Series<V>(Vec<(Labels, V)>);

impl<V: EncodeGaugeValue + std::fmt::Debug> EncodeMetric for Series<V> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, v) in &self.0 {
            encoder.encode_family(labels)?.encode_gauge(v)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    /// A family with no series (no dep probed) is left out, `# HELP` and `# TYPE` with it.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A family of counters, as [`Series`] are of gauges.
#[derive(Debug)]
struct Counts(Vec<(Labels, u64)>);

impl EncodeMetric for Counts {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, v) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every series of a tick that ran: per service, per dep, per tick.
pub fn render(r: &StatusReport, tick: &TickLevel, duration: Duration) -> String {
    let gauge = || Series::<i64>(Vec::new());
    let time = || Series::<f64>(Vec::new());
    let (mut up, mut healthy, mut state) = (gauge(), gauge(), gauge());
    let mut starts = Counts(Vec::new());
    let (mut failures, mut gave_up, mut dep_ready) = (gauge(), gauge(), gauge());
    let (mut backoff, mut paused_since, mut paused_until) = (time(), time(), time());
    for s in &r.services {
        let svc = || labels(&[("service", &s.name)]);
        up.0.push((svc(), flag(s.alive)));
        healthy
            .0
            .push((svc(), flag(s.alive && s.healthy.unwrap_or(true))));
        // A word no list here knows yet still gets its series.
        let other = Some(s.state).filter(|w| !STATE_WORDS.contains(w));
        for word in STATE_WORDS.into_iter().chain(other) {
            let l = labels(&[("service", &s.name), ("state", word)]);
            state.0.push((l, flag(s.state == word)));
        }
        starts.0.push((svc(), s.starts));
        failures.0.push((svc(), i64::from(s.failures)));
        backoff.0.push((svc(), s.backoff_until_unix.unwrap_or(0.0)));
        gave_up.0.push((svc(), flag(s.gave_up)));
        let pause = s.paused.as_ref();
        paused_since
            .0
            .push((svc(), pause.map_or(0.0, |p| p.since_unix)));
        paused_until
            .0
            .push((svc(), pause.and_then(|p| p.until_unix).unwrap_or(0.0)));
        for d in s.deps.iter().filter(|d| d.probed) {
            let l = labels(&[("service", &s.name), ("dep", &d.name), ("kind", d.kind)]);
            dep_ready.0.push((l, flag(d.ready)));
        }
    }
    let mut reg = Registry::default();
    reg.register(
        "autoheal_service_up",
        "1 if the service was alive (its pname or pid_file holds) at the end of the tick",
        up,
    );
    reg.register(
        "autoheal_service_healthy",
        "1 if the service was alive and its health: and check:, if any, passed",
        healthy,
    );
    reg.register(
        "autoheal_service_state",
        "The service's state word as in autoheal status: 1 for the current one, 0 for the others",
        state,
    );
    reg.register(
        "autoheal_service_starts",
        "Starts and restarts autoheal ran for the service",
        starts,
    );
    reg.register(
        "autoheal_service_consecutive_failures",
        "Consecutive restarts that did not bring the service up for good",
        failures,
    );
    reg.register(
        "autoheal_service_backoff_until_timestamp_seconds",
        "No restart of the service before this unix time; 0 when not backed off",
        backoff,
    );
    reg.register(
        "autoheal_service_gave_up",
        "1 if autoheal gave up restarting the service (autoheal reset SERVICE)",
        gave_up,
    );
    reg.register(
        "autoheal_service_paused_since_timestamp_seconds",
        "Unix time an operator paused the service (autoheal pause); 0 when not paused",
        paused_since,
    );
    reg.register(
        "autoheal_service_paused_until_timestamp_seconds",
        "Unix time the service's pause ends by itself; 0 when not paused or paused until resumed",
        paused_until,
    );
    reg.register(
        "autoheal_dep_ready",
        "1 if the dep was ready; tcp, http and lua deps only when this tick probed them (the deps \
         of services it may start or restart), local service deps always",
        dep_ready,
    );
    let took = F64Gauge::default();
    took.set(duration.as_secs_f64());
    reg.register(
        "autoheal_tick_duration_seconds",
        "How long the last tick that held the lock took",
        took,
    );
    let mut out = encoded(&reg);
    out.push_str(&render_tick_level(tick));
    out
}

/// The tick-level series alone ([`TICK_LEVEL`]).
pub fn render_tick_level(tick: &TickLevel) -> String {
    let mut reg = Registry::default();
    let at = F64Gauge::default();
    at.set(tick.at);
    reg.register(
        "autoheal_last_tick_timestamp_seconds",
        "Unix time the last tick ended, whether it held the lock or not",
        at,
    );
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: bool| {
        let g = Gauge::<i64>::default();
        g.set(flag(v));
        reg.register(name, help, g);
    };
    gauge(
        &mut reg,
        "autoheal_tick_locked_out",
        "1 if the last tick found another tick holding the lock and did nothing",
        tick.locked_out,
    );
    gauge(
        &mut reg,
        "autoheal_config_valid",
        "1 if the config file loaded at the last tick",
        tick.config_valid,
    );
    reg.register(
        "autoheal_build",
        "The autoheal build that wrote this file",
        Info::new(labels(&[("version", env!("CARGO_PKG_VERSION"))])),
    );
    encoded(&reg)
}

fn encoded(reg: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error could only come from an encoder bug.
    if encode(&mut out, reg).is_err() {
        out.clear();
    }
    out
}

/// The lines of an existing file that belong to a [`KEPT`] family: what a locked-out tick
/// carries over. Anything else (a family of another writer, a stray line) is dropped.
fn kept_lines(old: &str) -> String {
    let mut out = String::new();
    for line in old.lines() {
        let name = match line
            .strip_prefix("# HELP ")
            .or(line.strip_prefix("# TYPE "))
        {
            Some(rest) => rest.split(' ').next().unwrap_or_default(),
            None if line.starts_with('#') => continue,
            None => line.split(['{', ' ']).next().unwrap_or_default(),
        };
        if KEPT.contains(&name) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Writes every series of a tick that held the lock (see the module doc).
pub fn write(path: &Path, state_dir: &Path, text: &str) -> Result<(), MetricsError> {
    with_lock(path, state_dir, || replace(path, text.as_bytes()))
}

/// Writes the tick-level series of a tick that did not run the services' part (found the lock
/// held, or a config that did not load: then `config_valid: false`), keeping the per-service
/// series of the last full tick from the file.
pub fn write_tick_level(
    path: &Path,
    state_dir: &Path,
    tick: &TickLevel,
) -> Result<(), MetricsError> {
    with_lock(path, state_dir, || {
        let mut text = kept_lines(&read_existing(path));
        text.push_str(&render_tick_level(tick));
        replace(path, text.as_bytes())
    })
}

fn with_lock(
    path: &Path,
    state_dir: &Path,
    f: impl FnOnce() -> Result<(), MetricsError>,
) -> Result<(), MetricsError> {
    judge_dir(path)?;
    match state::lock_metrics(state_dir, LOCK_WAIT) {
        Ok(LockOutcome::Acquired(_lock)) => f(),
        Ok(LockOutcome::Held { by }) => Err(MetricsError::Busy {
            path: path.to_path_buf(),
            by,
        }),
        Err(err) => Err(MetricsError::Lock {
            path: path.to_path_buf(),
            err: Box::new(err),
        }),
    }
}

/// The directory the file is written in, as root: every directory and symlink on the way to it
/// must be root's alone (the trust walk), or a symlink planted on the way would have root
/// create, replace and read files wherever its owner points it. The directory itself may be
/// another account's (node_exporter's textfile directory often is): in it, the temp file is
/// made exclusively and never through a link, and the rename replaces whatever is at the name.
fn judge_dir(path: &Path) -> Result<(), MetricsError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    match crate::trust::check_if_root(dir) {
        Ok(()) => Ok(()),
        Err(crate::trust::Untrusted::Unsafe { fault, .. })
            if fault.itself && fault.role == crate::trust::Role::Target =>
        {
            Ok(())
        }
        Err(why) if why.is_missing() => Ok(()),
        Err(why) => Err(MetricsError::Untrusted {
            path: path.to_path_buf(),
            why: Box::new(why),
        }),
    }
}

/// The file as it is, if it is a regular file autoheal can read (never through a symlink,
/// never a FIFO or a device, at most [`READ_MAX`]); else nothing.
fn read_existing(path: &Path) -> String {
    let Ok(file) = state::open_in_dir(path, OpenOptions::new().read(true), |path, err| {
        StateError::Read { path, err }
    }) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.take(READ_MAX).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// Replaces `path` atomically with `bytes` (see the module doc).
fn replace(path: &Path, bytes: &[u8]) -> Result<(), MetricsError> {
    let failed = |err| MetricsError::Write {
        path: path.to_path_buf(),
        err,
    };
    let name = path
        .file_name()
        .ok_or_else(|| failed(io::Error::other("the path has no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match std::fs::remove_file(&tmp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(failed(err)),
        _ => {}
    }
    let result = state::open_in_dir(
        &tmp,
        OpenOptions::new().write(true).create_new(true).mode(0o644),
        |_, err| StateError::Write {
            path: tmp.clone(),
            err,
        },
    )
    .map_err(|e| match e {
        StateError::Write { err, .. } => failed(err),
        other => failed(io::Error::other(other.to_string())),
    })
    .and_then(|mut file| {
        // Readable by node_exporter's own user whatever the umask cron gave.
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(failed)
    });
    result.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DepStatus, PauseStatus, ServiceStatus};

    fn service(name: &str, state: &'static str, alive: bool) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state,
            alive,
            healthy: None,
            pid: None,
            dead_because: None,
            deps: Vec::new(),
            last_start: None,
            last_result: None,
            starts: 0,
            failures: 0,
            backoff_until: None,
            backoff_holds: false,
            backoff_until_unix: None,
            gave_up: false,
            reason: None,
            paused: None,
        }
    }

    fn report(services: Vec<ServiceStatus>) -> StatusReport {
        StatusReport {
            schema: 1,
            config: "c.yaml".into(),
            time: String::new(),
            all_alive: false,
            services,
        }
    }

    const TICK: TickLevel = TickLevel {
        at: 1_764_000_000.5,
        locked_out: false,
        config_valid: true,
    };

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn every_series_has_help_type_and_its_value() {
        let mut web = service("web", "waiting", false);
        web.starts = 3;
        web.failures = 2;
        web.backoff_until_unix = Some(1_764_000_060.0);
        web.deps = vec![
            DepStatus {
                name: "db".into(),
                kind: "tcp",
                target: "127.0.0.1:1".into(),
                ready: false,
                reason: Some("connection refused".into()),
                probed: true,
            },
            DepStatus {
                name: "api".into(),
                kind: "http",
                target: "http://x/".into(),
                ready: false,
                reason: Some("not probed".into()),
                probed: false,
            },
        ];
        let mut queue = service("queue", "paused", true);
        queue.paused = Some(PauseStatus {
            by: "alice".into(),
            reason: None,
            since: String::new(),
            until: None,
            since_unix: 1_764_000_000.0,
            until_unix: Some(1_764_003_600.0),
        });
        let text = render(
            &report(vec![web, service("db", "alive", true), queue]),
            &TICK,
            Duration::from_millis(1500),
        );
        let l = lines(&text);
        for want in [
            "# TYPE autoheal_service_up gauge",
            "# TYPE autoheal_service_starts_total counter",
            "# TYPE autoheal_build_info gauge",
            r#"autoheal_service_up{service="web"} 0"#,
            r#"autoheal_service_up{service="db"} 1"#,
            r#"autoheal_service_healthy{service="db"} 1"#,
            r#"autoheal_service_state{service="web",state="waiting"} 1"#,
            r#"autoheal_service_state{service="web",state="alive"} 0"#,
            r#"autoheal_service_state{service="db",state="alive"} 1"#,
            r#"autoheal_service_starts_total{service="web"} 3"#,
            r#"autoheal_service_consecutive_failures{service="web"} 2"#,
            r#"autoheal_service_backoff_until_timestamp_seconds{service="web"} 1764000060.0"#,
            r#"autoheal_service_backoff_until_timestamp_seconds{service="db"} 0.0"#,
            r#"autoheal_dep_ready{service="web",dep="db",kind="tcp"} 0"#,
            r#"autoheal_service_state{service="queue",state="paused"} 1"#,
            r#"autoheal_service_paused_since_timestamp_seconds{service="queue"} 1764000000.0"#,
            r#"autoheal_service_paused_until_timestamp_seconds{service="queue"} 1764003600.0"#,
            r#"autoheal_service_paused_since_timestamp_seconds{service="db"} 0.0"#,
            r#"autoheal_service_paused_until_timestamp_seconds{service="db"} 0.0"#,
            "autoheal_tick_duration_seconds 1.5",
            "autoheal_last_tick_timestamp_seconds 1764000000.5",
            "autoheal_tick_locked_out 0",
            "autoheal_config_valid 1",
            concat!(
                r#"autoheal_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
        ] {
            assert!(l.contains(&want), "no line {want:?} in\n{text}");
        }
        assert!(!text.contains(r#"dep="api""#), "an unprobed dep: {text}");
        assert_eq!(
            l.iter()
                .filter(|l| l.starts_with("autoheal_service_state{service=\"web\""))
                .count(),
            STATE_WORDS.len()
        );
        // HELP and TYPE once for each family.
        let families: Vec<&str> = l.iter().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
        let helps = l.iter().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(helps, families.len());
        let mut written: Vec<&str> = families
            .iter()
            .filter_map(|f| f.split(' ').next())
            .collect();
        let mut known: Vec<&str> = KEPT.iter().chain(&TICK_LEVEL).copied().collect();
        written.sort();
        known.sort();
        assert_eq!(written, known, "every family is either kept or tick-level");
    }

    /// A family with no series (no dep probed: every service alive) has no `# HELP` or
    /// `# TYPE` line either, as prometheus-client's own families do.
    #[test]
    fn a_family_without_series_is_left_out() {
        let text = render(
            &report(vec![service("web", "alive", true)]),
            &TICK,
            Duration::ZERO,
        );
        assert!(!text.contains("autoheal_dep_ready"), "{text}");
        assert!(text.contains("# TYPE autoheal_service_up gauge\nautoheal_service_up{"));
        let none = render(&report(Vec::new()), &TICK, Duration::ZERO);
        assert!(!none.contains("autoheal_service_"), "{none}");
        assert!(none.contains("autoheal_tick_duration_seconds 0"), "{none}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = service("web", "alive", true);
        s.deps = vec![DepStatus {
            name: "a\\b\"c\nd".into(),
            kind: "lua",
            target: "lua".into(),
            ready: true,
            reason: None,
            probed: true,
        }];
        let text = render(&report(vec![s]), &TICK, Duration::ZERO);
        assert!(
            text.contains(r#"autoheal_dep_ready{service="web",dep="a\\b\"c\nd",kind="lua"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn a_locked_out_tick_keeps_the_services_and_replaces_the_tick() {
        let full = render(
            &report(vec![service("web", "alive", true)]),
            &TICK,
            Duration::from_secs(2),
        );
        let later = TickLevel {
            at: 1_764_000_060.0,
            locked_out: true,
            config_valid: true,
        };
        let mut text = kept_lines(&format!("{full}stray 1\n# HELP other_thing x\n"));
        text.push_str(&render_tick_level(&later));
        let l = lines(&text);
        assert!(
            l.contains(&r#"autoheal_service_up{service="web"} 1"#),
            "{text}"
        );
        assert!(l.contains(&"autoheal_tick_duration_seconds 2.0"), "{text}");
        assert!(l.contains(&"autoheal_tick_locked_out 1"), "{text}");
        assert!(l.contains(&"autoheal_last_tick_timestamp_seconds 1764000060.0"));
        assert!(
            !text.contains("1764000000.5"),
            "the old tick time is gone: {text}"
        );
        assert!(!text.contains("stray") && !text.contains("other_thing"));
        assert_eq!(
            l.iter()
                .filter(|l| l.starts_with("# TYPE autoheal_build_info"))
                .count(),
            1
        );
    }
}
