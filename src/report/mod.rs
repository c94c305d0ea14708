//! What autoheal tells operators: the event log ([`log`]) and `status` (an aligned table, or
//! JSON with the schema documented in README.md "status --json").

pub mod fleet;
pub mod graph;
pub mod log;
pub mod metrics;
pub mod order;
pub mod words;

use crate::config::{Config, Dep};
use crate::engine::{Hold, Observation, Plan, Verdict};
use crate::fmt::secs;
use crate::state::State;
use crate::time::Unix;
use crate::time::rfc3339;
use serde::Serialize;

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

/// Every word [`ServiceStatus::state`] can be, in the order the metrics list them.
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
    "paused",
];

/// One service in `status`.
#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `alive`, `unhealthy`, `restart`, `dead` (would be started now), `waiting` (on deps),
    /// `grace`, `backoff`, `gave_up`, `starting` or `paused` (by an operator, whether it is
    /// alive or not: `alive` and `healthy` say that).
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
    pub backoff_until_unix: Option<Unix>,
    /// Whether that backoff is what holds it now (an alive, healthy service keeps its backoff
    /// for its next failure, which says nothing now).
    #[serde(skip)]
    pub backoff_holds: bool,
    pub gave_up: bool,
    /// Why it is not alive and well, down to the root cause; null when it is (and not paused).
    pub reason: Option<String>,
    /// Its pause (`autoheal pause`), null when it is not paused.
    pub paused: Option<PauseStatus>,
}

/// A pause in `status`.
#[derive(Debug, Serialize)]
pub struct PauseStatus {
    /// Who paused it.
    pub by: String,
    /// What they said (`--reason`), else null.
    pub reason: Option<String>,
    /// When, RFC 3339 UTC.
    pub since: String,
    /// When it ends by itself, RFC 3339 UTC; null: only `autoheal resume` ends it.
    pub until: Option<String>,
    /// Both unrounded, for the metrics.
    #[serde(skip)]
    pub since_unix: Unix,
    #[serde(skip)]
    pub until_unix: Option<Unix>,
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

/// Builds the status of every service from one observation and its plan.
pub fn status(
    config: &Config,
    obs: &Observation,
    p: &Plan,
    state: &State,
    now: Unix,
) -> StatusReport {
    let reasons = words::Reasons::new(config, &p.decisions, now);
    // By name: a lookup per service and per dep, not a scan of every decision.
    let verdicts: std::collections::HashMap<&str, &Verdict> = p
        .decisions
        .iter()
        .map(|d| (d.service.as_str(), &d.verdict))
        .collect();
    let services = config
        .services
        .iter()
        .map(|svc| {
            let o = obs.services.get(&svc.name);
            let verdict = verdicts
                .get(svc.name.as_str())
                .map_or(Verdict::Start, |v| (*v).clone());
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
                        Dep::Service { name } => match reasons.of(name) {
                            None if verdicts.contains_key(name.as_str()) => Ok(()),
                            None => Err("unknown".into()),
                            Some(why) => Err(why),
                        },
                        _ => match o.and_then(|o| o.deps.get(d.name())) {
                            Some(obs) => obs.result.clone().map_err(String::from),
                            None => Err("not probed".into()),
                        },
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
            let dead = o.and_then(|o| o.alive.as_ref().err());
            // The plan's state: a pause that ended at `now` is gone from it.
            let pause = p.state.paused.get(&svc.name);
            ServiceStatus {
                name: svc.name.clone(),
                state: if pause.is_some() {
                    "paused"
                } else {
                    state_word(&verdict)
                },
                alive: o.is_some_and(|o| o.alive.is_ok()),
                healthy: o.and_then(|o| o.health.as_ref()).map(Result::is_ok),
                pid: o.and_then(|o| o.alive.clone().ok().flatten()),
                dead_because: dead.cloned(),
                deps,
                last_start: ss.last_start.map(rfc3339),
                last_result: ss.last_result.clone(),
                starts: ss.starts,
                failures: ss.failures,
                backoff_until: ss.backoff_until.filter(|t| *t > now).map(rfc3339),
                backoff_until_unix: ss.backoff_until.filter(|t| *t > now),
                backoff_holds: matches!(
                    verdict,
                    Verdict::Held(Hold::Backoff { .. })
                        | Verdict::Unhealthy {
                            held: Some(Hold::Backoff { .. }),
                            ..
                        }
                ),
                gave_up: ss.gave_up || matches!(verdict, Verdict::Held(Hold::GaveUp { .. })),
                reason: match &verdict {
                    Verdict::Start => Some(format!(
                        "dead ({}), deps ready: the next tick starts it",
                        dead.cloned().unwrap_or_default()
                    )),
                    Verdict::Alive => pause.map(|p| words::paused_alive(p, now)),
                    v => reasons
                        .verdict(v)
                        .map(|r| words::Reasons::with_death(v, dead, r)),
                },
                paused: pause.map(|p| PauseStatus {
                    by: p.by.clone(),
                    reason: p.reason.clone(),
                    since: rfc3339(p.since),
                    until: p.until.map(rfc3339),
                    since_unix: p.since,
                    until_unix: p.until,
                }),
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

/// The word of [`ServiceStatus::state`] for a verdict (one of [`STATE_WORDS`]).
pub fn state_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Alive => "alive",
        // A paused one's restart is held by its pause, whatever its health.
        Verdict::Unhealthy {
            held: Some(Hold::Paused(_)),
            ..
        } => "paused",
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
        Verdict::Held(Hold::Paused(_)) => "paused",
    }
}

/// The aligned table of `status`.
pub fn table(r: &StatusReport, now: Unix) -> String {
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
            ("paused", Some(pid)) => format!("paused (pid {pid})"),
            (w, _) => w.to_string(),
        };
        let last = match (&s.last_start, &s.last_result) {
            (Some(t), Some(res)) => format!("{t} ({res})"),
            (Some(t), None) => t.clone(),
            _ => "-".into(),
        };
        // Only where the backoff holds it back, with the very time REASON shows.
        let backoff = s
            .backoff_until_unix
            .filter(|_| s.backoff_holds)
            .map(|until| {
                format!(
                    "{} ({})",
                    secs(until - now),
                    words::failed_restarts(s.failures)
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

#[cfg(test)]
mod tests {
    use super::one_line;

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
