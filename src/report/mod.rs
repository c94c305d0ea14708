//! What autoheal tells operators: the event log ([`log`]) and `status` (an aligned table, or
//! JSON with the schema documented in README.md "status --json").

pub mod log;
pub mod metrics;
pub mod order;

use crate::config::{Config, Dep};
use crate::engine::{Hold, Observation, Plan, Verdict};
use crate::state::State;
use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};

/// `status --json`, top level.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The version of this JSON's shape: 1. A field is only ever added within a version.
    pub schema: u32,
    /// The config file.
    pub config: String,
    /// When it was observed, RFC 3339 UTC.
    pub time: String,
    /// Every service alive and healthy.
    pub all_alive: bool,
    pub services: Vec<ServiceStatus>,
}

/// Every word [`ServiceStatus::state`] can be, in the order the metrics list them. `held` is
/// reserved for a service an operator holds back (`pause`): no verdict of this build gives it.
pub const STATE_WORDS: [&str; 10] = [
    "alive",
    "unhealthy",
    "restart",
    "dead",
    "waiting",
    "grace",
    "backoff",
    "gave_up",
    "starting",
    "held",
];

/// One service in `status`.
#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `alive`, `unhealthy`, `dead` (would be started now), `waiting` (on deps), `grace`,
    /// `backoff` or `gave_up`.
    pub state: &'static str,
    pub alive: bool,
    /// The `check:` result: `null` when it has none or is dead.
    pub healthy: Option<bool>,
    pub pid: Option<u32>,
    /// Why it counts as dead (`no process matches "nginx"`, `stale pid file ...`), else null.
    pub dead_because: Option<String>,
    pub deps: Vec<DepStatus>,
    pub last_start: Option<String>,
    pub last_result: Option<String>,
    pub starts: u64,
    /// Consecutive restarts that did not bring it up for good.
    pub failures: u32,
    pub backoff_until: Option<String>,
    /// The same, unrounded: for the table (whose BACKOFF must agree with REASON) and the
    /// metrics.
    #[serde(skip)]
    pub backoff_until_unix: Option<f64>,
    pub gave_up: bool,
    /// Why it is not alive and well, down to the root cause; null when it is.
    pub reason: Option<String>,
}

/// One dep in `status`.
#[derive(Debug, Serialize)]
pub struct DepStatus {
    pub name: String,
    /// `tcp`, `http`, `lua` or `service`.
    pub kind: &'static str,
    /// `host:port`, the url, `lua`, or the local service's name.
    pub target: String,
    pub ready: bool,
    pub reason: Option<String>,
    /// Whether the observation has a result for it: always for a `service` dep (the verdict
    /// of that service), for the others only when it was probed (`run` probes only the deps
    /// of the services it may start or restart). For the metrics.
    #[serde(skip)]
    pub probed: bool,
}

/// A unix time as RFC 3339 UTC. A state file can hold any number: it is clamped to what RFC
/// 3339 can write (1970 to 9999; humantime refuses a later year), never a panic.
fn rfc3339(t: f64) -> String {
    const LAST: f64 = 253_402_300_799.0; // 9999-12-31T23:59:59Z
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, LAST) };
    let at = Duration::try_from_secs_f64(t).unwrap_or_default();
    humantime::format_rfc3339_seconds(UNIX_EPOCH + at).to_string()
}

/// Builds the status of every service from one observation and its plan.
pub fn status(
    config: &Config,
    obs: &Observation,
    p: &Plan,
    state: &State,
    now: f64,
) -> StatusReport {
    let services = config
        .services
        .iter()
        .map(|svc| {
            let o = obs.services.get(&svc.name);
            let verdict = p.verdict(&svc.name).cloned().unwrap_or(Verdict::Start);
            let ss = state.services.get(&svc.name).cloned().unwrap_or_default();
            let deps = svc
                .deps
                .iter()
                .map(|d| {
                    let (kind, target) = match d {
                        Dep::Tcp { host, port, .. } => ("tcp", format!("{host}:{port}")),
                        Dep::Http { url, .. } => ("http", url.clone()),
                        Dep::Lua { .. } => ("lua", "lua".into()),
                        Dep::Service { name } => ("service", name.clone()),
                    };
                    let probed = matches!(d, Dep::Service { .. })
                        || o.is_some_and(|o| o.deps.contains_key(d.name()));
                    let result: Result<(), String> = match d {
                        Dep::Service { name } => match p.verdict(name) {
                            Some(Verdict::Alive) => Ok(()),
                            Some(v) => Err(v.reason(now).unwrap_or_default()),
                            None => Err("unknown".into()),
                        },
                        _ => o
                            .and_then(|o| o.deps.get(d.name()))
                            .map(|d| d.result.clone())
                            .unwrap_or_else(|| Err("not probed".into())),
                    };
                    DepStatus {
                        name: d.name().to_string(),
                        kind,
                        target,
                        ready: result.is_ok(),
                        reason: result.err(),
                        probed,
                    }
                })
                .collect();
            let state_word = match &verdict {
                Verdict::Alive => "alive",
                Verdict::Unhealthy { .. } => "unhealthy",
                Verdict::Start => "dead",
                Verdict::Restart { .. } => "restart",
                Verdict::Held(Hold::Deps { .. }) => "waiting",
                Verdict::Held(Hold::Grace { .. }) => "grace",
                Verdict::Held(Hold::Backoff { .. }) => "backoff",
                Verdict::Held(Hold::GaveUp { .. }) => "gave_up",
                Verdict::Held(Hold::Starting) => "starting",
                // Only ever the hold of an alive service's restart.
                Verdict::Held(Hold::NotSignalled(_)) => "unhealthy",
            };
            ServiceStatus {
                name: svc.name.clone(),
                state: state_word,
                alive: o.is_some_and(|o| o.alive.is_ok()),
                healthy: o.and_then(|o| o.health.as_ref()).map(Result::is_ok),
                pid: o.and_then(|o| o.alive.clone().ok().flatten()),
                dead_because: o.and_then(|o| o.alive.clone().err()),
                deps,
                last_start: ss.last_start.map(rfc3339),
                last_result: ss.last_result.clone(),
                starts: ss.starts,
                failures: ss.failures,
                backoff_until: ss.backoff_until.filter(|t| *t > now).map(rfc3339),
                backoff_until_unix: ss.backoff_until.filter(|t| *t > now),
                gave_up: ss.gave_up || matches!(verdict, Verdict::Held(Hold::GaveUp { .. })),
                reason: match &verdict {
                    Verdict::Start => Some(format!(
                        "dead ({}), deps ready: the next tick starts it",
                        o.and_then(|o| o.alive.clone().err()).unwrap_or_default()
                    )),
                    v => v.reason(now).map(|r| {
                        crate::engine::with_death(v, o.and_then(|o| o.alive.as_ref().err()), r)
                    }),
                },
            }
        })
        .collect();
    StatusReport {
        schema: 1,
        config: config.path.display().to_string(),
        time: rfc3339(now),
        all_alive: p.all_well(),
        services,
    }
}

/// The aligned table of `status`.
pub fn table(r: &StatusReport, now: f64) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "SERVICE".into(),
        "STATE".into(),
        "DEPS".into(),
        "LAST START".into(),
        "BACKOFF".into(),
        "REASON".into(),
    ]];
    for s in &r.services {
        let deps = if s.deps.is_empty() {
            "-".into()
        } else {
            s.deps
                .iter()
                .map(|d| format!("{} {}", d.name, if d.ready { "ok" } else { "DOWN" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let state = match (s.state, s.pid) {
            ("alive", Some(pid)) => format!("alive (pid {pid})"),
            (w, _) => w.to_string(),
        };
        let last = match (&s.last_start, &s.last_result) {
            (Some(t), Some(res)) => format!("{t} ({res})"),
            (Some(t), None) => t.clone(),
            _ => "-".into(),
        };
        // Only where the backoff holds something back (an alive, healthy service keeps its
        // backoff for its next failure, which says nothing now), with the very time REASON
        // shows.
        let holds = s.state == "backoff"
            || s.reason
                .as_deref()
                .is_some_and(|r| r.contains("backed off"));
        let backoff = s
            .backoff_until_unix
            .filter(|_| holds)
            .map(|until| {
                format!(
                    "{} ({})",
                    secs(until - now),
                    crate::engine::failed_restarts(s.failures)
                )
            })
            .unwrap_or_else(|| "-".into());
        rows.push(
            [
                s.name.clone(),
                state,
                deps,
                last,
                backoff,
                s.reason.clone().unwrap_or_else(|| "-".into()),
            ]
            .map(|cell| one_line(&cell).into_owned()),
        );
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == row.len() - 1 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `limit` from now: a deadline. Past what an `Instant` can hold (a limit no config can give,
/// since `config::load` bounds every duration) it is a century from now, never a panic.
pub fn deadline(limit: Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(limit)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// [`secs`] of a `Duration`.
pub fn duration(d: std::time::Duration) -> String {
    secs(d.as_secs_f64())
}

/// Short durations for messages: `40ms`, `1.5s`, `45s`, `3m20s`, `2h01m`.
pub fn secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round() as u64)
    } else if s < 9.95 {
        let t = format!("{s:.1}");
        format!("{}s", t.trim_end_matches(".0"))
    } else if s < 120.0 {
        format!("{}s", s.round() as u64)
    } else {
        let s = s.round() as u64;
        if s < 7200 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// `s` as one line a terminal shows as it is: control characters (C0, DEL, C1), the Unicode
/// line and paragraph separators and the bidirectional overrides are written as escapes
/// (`\n`, `\r`, `\t`, `\x1b`, `\u{2028}`), so that text from outside (a probe's reply, an
/// HTTP reason phrase, a Lua value or `log()` line) can neither start a forged log line nor
/// rewrite the operator's terminal. Everything else, backslashes included, is kept as it is:
/// the escapes are for a reader, not a decoder.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    fn risky(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(risky) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && risky(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if risky(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// An io error as a person reads it: "permission denied" rather than "Permission denied (os error 13)".
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{deadline, one_line, rfc3339};
    use std::time::{Duration, Instant};

    /// A state file can hold any time: each is written, clamped, never a panic.
    #[test]
    fn any_unix_time_is_written() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1e300), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_800.0), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(f64::INFINITY), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1e300), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(f64::NAN), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_deadline_never_overflows() {
        let d = deadline(Duration::MAX);
        assert!(d > Instant::now() + Duration::from_secs(365 * 86_400));
        let soon = deadline(Duration::from_secs(1));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn outside_text_becomes_one_line() {
        assert_eq!(one_line("plain: a\\b \"q\" é"), "plain: a\\b \"q\" é");
        assert_eq!(
            one_line("HTTP 500\n2026-11-25T14:03:07Z web: started: forged\r\t"),
            "HTTP 500\\n2026-11-25T14:03:07Z web: started: forged\\r\\t"
        );
        assert_eq!(one_line("\x1b[2J\x7f\u{85}"), "\\x1b[2J\\x7f\\u{85}");
        assert_eq!(one_line("a\u{2028}b\u{202e}c"), "a\\u{2028}b\\u{202e}c");
        assert_eq!(one_line("nul\0"), "nul\\x00");
    }
}
