//! The wording of every reason and event, in one place: the text log, `status` and the
//! alerts' `message` all say what these functions say. What they word is data
//! ([`crate::engine`]'s verdicts, holds and notes; [`crate::event::Event`]).

use crate::config::Config;
use crate::engine::{Decision, Hold, Note, Refusal, Sick, Unsignallable, Verdict, Wait, WaitOn};
use crate::event::{Event, StartFailure};
use crate::fmt::secs;
use crate::state::Pause;
use crate::time::{Unix, rfc3339};
use std::collections::HashMap;

/// "1 failed restart", "3 failed restarts".
pub fn failed_restarts(n: u32) -> String {
    format!("{n} failed restart{}", if n == 1 { "" } else { "s" })
}

/// Why autoheal will not signal a process: what it found and what to do about it.
pub fn unsignallable(why: &Unsignallable) -> String {
    use crate::engine::{ForeignPid, Mismatch, Unsignallable as U};
    match why {
        U::Ambiguous(which) => which.clone(),
        U::Init => "its process is pid 1 (init), which autoheal never signals; \
             give the service a `stop:` command or a pname that does not match init"
            .into(),
        U::Ours { pid, cmdline } => format!(
            "its process, pid {pid} (`{cmdline}`), is autoheal itself or one of its \
             ancestors, which it never signals; give the service a `stop:` command"
        ),
        U::NotTheService(foreign) => {
            let ForeignPid {
                pid,
                file,
                owner,
                mode,
                cmdline,
                mismatch,
            } = &**foreign;
            let head = format!(
                "pid {pid} from {} (owned by {owner}, mode {mode:04o}) is not the service",
                file.display()
            );
            match mismatch {
                Mismatch::Pname { pname } => format!(
                    "{head}: `{cmdline}` does not match pname \"{pname}\"; fix the pname, or \
                     what writes the pid file"
                ),
                Mismatch::Writers { writers, runs_as } => format!(
                    "{head}: `{cmdline}` runs as {runs_as}, and {writers} could have written \
                     the pid file; give the service a pname or make root own the pid file"
                ),
            }
        }
    }
}

/// A pause, as every reason and line names it: who, until when, why. With `now`, how long it
/// has left: `paused by alice until 2026-11-25T14:00:00Z (in 42m): upgrading postgres`. One
/// until resumed says so loudly, as a forgotten pause keeps a service down for weeks:
/// `paused by alice since 2026-11-25T13:00:00Z, until resumed (autoheal resume): ...`.
pub fn pause(p: &Pause, now: Option<Unix>) -> String {
    let mut text = match p.until {
        Some(until) => {
            let left = now
                .map(|now| format!(" (in {})", secs(until - now)))
                .unwrap_or_default();
            format!("paused by {} until {}{left}", p.by, rfc3339(until))
        }
        None => format!(
            "paused by {} since {}, until resumed (`autoheal resume`)",
            p.by,
            rfc3339(p.since)
        ),
    };
    if let Some(why) = &p.reason {
        text.push_str(": ");
        text.push_str(why);
    }
    text
}

/// The reason `status` gives for a paused service that is alive and well.
pub fn paused_alive(p: &Pause, now: Unix) -> String {
    format!(
        "alive; {}; not restarted or stopped, whatever its health",
        pause(p, Some(now))
    )
}

/// Why an alive service is not well (or is restarted).
pub fn sick(why: &Sick) -> String {
    match why {
        Sick::Health {
            error,
            count,
            due: true,
        } => format!(
            "unhealthy ({count} failed health observation{} in a row): {error}",
            if *count == 1 { "" } else { "s" }
        ),
        Sick::Health { error, .. } => error.clone(),
        Sick::CheckError { error } => {
            format!("its check failed to run: {error} (not counted toward a restart)")
        }
        Sick::DepRestarted { dep, health: None } => format!("{dep} restarted after it"),
        Sick::DepRestarted {
            dep,
            health: Some(h),
        } => format!("{dep} restarted after it (and now unhealthy: {h})"),
        Sick::Requested { by } => format!("restart requested by {by}"),
    }
}

/// The reasons of one plan, each local service's once: a service's reason builds on those of
/// the local services it waits on (`nginx (dead) ← middleware 10.0.0.7:80 (connection
/// refused)`), down to the root cause.
pub struct Reasons<'a> {
    verdicts: HashMap<&'a str, &'a Verdict>,
    now: Unix,
    /// What each service held on its deps waits on, its deps' first.
    waits: HashMap<&'a str, String>,
}

impl<'a> Reasons<'a> {
    pub fn new(config: &'a Config, decisions: &'a [Decision], now: Unix) -> Self {
        let verdicts: HashMap<&str, &Verdict> = decisions
            .iter()
            .map(|d| (d.service.as_str(), &d.verdict))
            .collect();
        let mut r = Reasons {
            verdicts,
            now,
            waits: HashMap::new(),
        };
        // Each after the services it waits on: each finds theirs worded already.
        for &i in config.graph.order() {
            let name = config.services[i].name.as_str();
            if let Some(Verdict::Held(Hold::Deps { waits })) = r.verdicts.get(name).copied() {
                let text = r.waits_text(waits);
                r.waits.insert(name, text);
            }
        }
        r
    }

    /// Why `service` is not alive and well; `None` when it is.
    pub fn of(&self, service: &str) -> Option<String> {
        self.verdict(self.verdicts.get(service)?)
    }

    /// The phrase for a verdict (its waits worded from this plan).
    pub fn verdict(&self, v: &Verdict) -> Option<String> {
        match v {
            Verdict::Alive => None,
            Verdict::Unhealthy {
                why: why @ Sick::Health { due: true, .. },
                held,
            } => Some(self.sick_held(why, held.as_ref())),
            Verdict::Unhealthy { why, held } => {
                Some(format!("unhealthy: {}", self.sick_held(why, held.as_ref())))
            }
            Verdict::Start => Some("dead, deps ready: starting".into()),
            Verdict::Restart { why } => Some(format!("restarting: {}", sick(why))),
            Verdict::Held(h) => Some(self.hold(h)),
        }
    }

    /// An unhealthy service's reason, and what holds its due restart.
    pub fn sick_held(&self, why: &Sick, held: Option<&Hold>) -> String {
        match held {
            None => sick(why),
            Some(h @ (Hold::NotSignalled(_) | Hold::Paused(_))) => {
                format!("{}; not restarted: {}", sick(why), self.hold(h))
            }
            Some(h) => format!("{}; its restart is held: {}", sick(why), self.hold(h)),
        }
    }

    /// A short phrase: "waiting on nginx (dead) ← ...", "in grace for 12s", ...
    pub fn hold(&self, h: &Hold) -> String {
        let now = self.now;
        match h {
            Hold::Deps { waits } => format!("waiting on {}", self.waits_text(waits)),
            Hold::Grace { until } => {
                format!("just started, in grace for {} more", secs(until - now))
            }
            Hold::Backoff { until, failures } => format!(
                "backed off for {} more after {}",
                secs(until - now),
                failed_restarts(*failures)
            ),
            Hold::Starting => "its start script is running".into(),
            Hold::GaveUp { failures } => format!(
                "gave up after {}; run `autoheal reset` on it once it is fixed",
                failed_restarts(*failures)
            ),
            Hold::NotSignalled(why) => unsignallable(why),
            Hold::Paused(p) => pause(p, Some(now)),
        }
    }

    /// Why a start or restart may not happen now.
    pub fn refusal(&self, r: &Refusal) -> String {
        match r {
            Refusal::NoService(name) => format!("no service `{name}`"),
            Refusal::NotSignalled(why) => unsignallable(why),
            Refusal::Held(h) => self.hold(h),
        }
    }

    fn waits_text(&self, waits: &[Wait]) -> String {
        let all: Vec<String> = waits.iter().map(|w| self.wait(w)).collect();
        elide(all.join(", "))
    }

    /// One dep that is not ready.
    fn wait(&self, w: &Wait) -> String {
        let name = &w.dep;
        match &w.on {
            WaitOn::Probe { target, error } if target == name => format!("{name} ({error})"),
            WaitOn::Probe { target, error } => format!("{name} {target} ({error})"),
            WaitOn::NotProbed => format!("{name} (not probed)"),
            WaitOn::Service { name: local } => {
                let label = if local == name {
                    name.clone()
                } else {
                    format!("{name} = {local}")
                };
                self.local(&label, local)
            }
        }
    }

    /// What a dep on a local service (`label` as the dep shows it) waits on, from its verdict.
    fn local(&self, label: &str, service: &str) -> String {
        let now = self.now;
        let Some(verdict) = self.verdicts.get(service) else {
            return format!("{label} (not ready)");
        };
        match verdict {
            Verdict::Alive => format!("{label} (alive)"),
            Verdict::Unhealthy { why, held } => {
                format!(
                    "{label} (unhealthy: {})",
                    self.sick_held(why, held.as_ref())
                )
            }
            Verdict::Start => format!("{label} (dead, starting)"),
            Verdict::Restart { .. } => format!("{label} (restarting)"),
            Verdict::Held(Hold::Deps { waits }) => {
                let why = match self.waits.get(service) {
                    Some(text) => text.clone(),
                    None => self.waits_text(waits),
                };
                elide(format!("{label} (dead) ← {why}"))
            }
            Verdict::Held(Hold::Grace { until }) => format!(
                "{label} (starting, in grace for {} more)",
                secs(until - now)
            ),
            Verdict::Held(Hold::Backoff { until, .. }) => {
                format!("{label} (dead, backed off for {} more)", secs(until - now))
            }
            Verdict::Held(Hold::GaveUp { .. }) => format!("{label} (dead, autoheal gave up on it)"),
            Verdict::Held(Hold::Starting) => format!("{label} (starting: script running)"),
            Verdict::Held(h @ Hold::NotSignalled(_)) => {
                format!("{label} (held: {})", self.hold(h))
            }
            Verdict::Held(h @ Hold::Paused(_)) => format!("{label} (dead, {})", self.hold(h)),
        }
    }

    /// A note of [`crate::engine::plan`], worded.
    pub fn note(&self, n: &Note) -> String {
        match n {
            Note::Rebooted => "the host rebooted since the last tick (its boot id changed): \
                failed restarts, backoffs and given-up services are forgiven, as a death by \
                power cut is not a failed restart"
                .into(),
            Note::RestartNotDone { by, why, .. } => {
                format!("restart requested by {by} not done: {}", self.refusal(why))
            }
            Note::GaveUp { service, failures } => format!(
                "giving up after {}; fix it, then run `autoheal reset {service}`",
                failed_restarts(*failures)
            ),
            Note::StartDied { after, dead, .. } => format!(
                "start failed: its script exited 0, but it was dead {} later ({dead})",
                secs(*after)
            ),
            Note::PauseEnded { pause: p, .. } => pause_ended(p),
        }
    }

    /// A dead service held by its grace: why it is dead, then the grace ("just started" alone
    /// read as if it were coming up).
    pub fn with_death(verdict: &Verdict, dead: Option<&String>, reason: String) -> String {
        match (verdict, dead) {
            (Verdict::Held(Hold::Grace { .. } | Hold::Paused(_)), Some(why)) => {
                format!("dead ({why}); {reason}")
            }
            _ => reason,
        }
    }
}

/// A pause that reached its end.
fn pause_ended(p: &Pause) -> String {
    let why = p
        .reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!(
        "pause ended by itself (paused by {} at {} until {}{why}); autoheal heals it again as \
         usual",
        p.by,
        rfc3339(p.since),
        p.until.map(rfc3339).unwrap_or_default()
    )
}

/// An event's line, without time and name (`<time> <who>: <this>`).
pub fn event(e: &Event, reasons: Option<&Reasons>) -> String {
    match e {
        Event::Plan(Note::PauseEnded { pause: p, .. }) => pause_ended(p),
        Event::Plan(n) => match reasons {
            Some(r) => r.note(n),
            None => format!("{n:?}"),
        },
        Event::Paused {
            service,
            pause: p,
            replaced,
        } => {
            let why = p
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let (lasts, ends) = match p.until {
                Some(until) => (
                    format!("for {}, until {}", secs(until - p.since), rfc3339(until)),
                    format!("before then (`autoheal resume {service}` ends it sooner)"),
                ),
                None => (
                    "until resumed".to_string(),
                    format!("until `autoheal resume {service}`: nothing else ends this pause"),
                ),
            };
            let instead = replaced
                .as_ref()
                .map(|old| format!(" It replaces the pause it had ({}).", pause(old, None)))
                .unwrap_or_default();
            format!(
                "paused by {} {lasts}{why}; autoheal observes it but will not start, restart or \
                 stop it {ends}.{instead}",
                p.by
            )
        }
        Event::Resumed { by, pause: p, .. } => format!(
            "resumed by {by}; it was {}; autoheal heals it again as usual",
            pause(p, None)
        ),
        Event::StillPaused { pause: p, .. } => {
            format!("still paused: alive, {}", pause(p, None))
        }
        Event::LuaLog { message, .. } => message.clone(),
        Event::Warning { message } | Event::Trouble { message } => message.clone(),
        Event::StateSetAside { message } => message.clone(),
        Event::LockHeld { pid, lock } => format!(
            "another tick{} holds {}; this one does nothing",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            lock.display()
        ),
        Event::ConfigInvalid { path, summary, .. } => {
            format!("config {} does not load: {summary}", path.display())
        }
        Event::ConfigKept { path, since, kept } => format!(
            "healing with the last version of {} that loaded, kept since {} ({}); fix the \
             file, or run with --strict to heal nothing meanwhile",
            path.display(),
            crate::time::rfc3339(*since),
            kept.display()
        ),
        Event::NothingHealed { path, why } => format!(
            "{why}: nothing is healed until {0} loads (autoheal check -c {0})",
            path.display()
        ),
        Event::Started { was, outcome, .. } => {
            format!("started: was dead ({was}), deps ready; script {outcome}")
        }
        Event::Restarted {
            why,
            stopped,
            outcome,
            ..
        } => format!("restarted: {}; {stopped}; script {outcome}", sick(why)),
        Event::StartFailed {
            restart, why, log, ..
        } => {
            let what = if *restart { "restart" } else { "start" };
            match why {
                StartFailure::Script { outcome, context } => format!(
                    "{what} failed: script {outcome}; see {} ({context})",
                    log.display()
                ),
                StartFailure::Died { after, dead } => format!(
                    "{what} failed: its script exited 0, but it was dead {} later ({dead}); see \
                     {} for what it said",
                    secs(*after),
                    log.display()
                ),
                StartFailure::LeftRunning {
                    session,
                    timeout,
                    how,
                } => format!(
                    "{what} failed: its start script (session {session}), left running by an \
                     interrupted tick, ran past its timeout {timeout}: {how}"
                ),
            }
        }
        Event::NotStarted { .. } => "not started: the state file cannot be saved, so its start \
             could not be remembered (grace, backoff)"
            .into(),
        Event::Up { after, .. } => format!("up, {} after its start", secs(*after)),
        Event::Still {
            unhealthy, reason, ..
        } => {
            let still = if *unhealthy {
                "still unhealthy"
            } else {
                "still down"
            };
            format!("{still}: {reason}")
        }
        Event::Would { what, .. } => what.clone(),
        Event::Reset {
            failures, gave_up, ..
        } => format!(
            "reset by an operator: its {}{} and its backoff are forgotten; the next tick starts \
             it if it is down and its deps are ready",
            failed_restarts(*failures),
            if *gave_up { ", the giving up" } else { "" }
        ),
        Event::BackedOff {
            until, failures, ..
        } => format!(
            "backed off until {} after {}",
            crate::time::rfc3339(*until),
            failed_restarts(*failures)
        ),
        Event::HeldLong { since, reason, .. } => format!(
            "not alive and well since {}: {reason}",
            crate::time::rfc3339(*since)
        ),
        Event::Recovered {
            service: None,
            after,
        } => format!(
            "recovered: the config loads again (after {})",
            after.join(", ")
        ),
        Event::Recovered { after, .. } => {
            format!(
                "recovered: alive and well again (after {})",
                after.join(", ")
            )
        }
    }
}

/// A reason cut to at most about `MAX_REASON` bytes: its head (what the service waits on
/// directly) and its tail (the root cause) are kept, the links between them left out as
/// `← … ←`. Each service's reason builds on its deps', so without a bound a chain of N
/// services would make reasons of N links each (N² in all).
fn elide(why: String) -> String {
    let max = crate::defaults::MAX_REASON;
    if why.len() <= max {
        return why;
    }
    const LINK: &str = " ← ";
    let half = max / 2;
    let floor = |mut i: usize| {
        while !why.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head_end = floor(half);
    let head_end = why[..head_end]
        .rfind(LINK)
        .filter(|&at| at > 0)
        .unwrap_or(head_end);
    let tail_start = floor(why.len() - half);
    let mut tail_start = why[tail_start..]
        .find(LINK)
        .map_or(tail_start, |at| tail_start + at + LINK.len());
    // A dep's reason, cut already, keeps its one mark: what lay between is left out too.
    let mark = format!("{LINK}…{LINK}");
    let mut head_end = head_end;
    if let (Some(first), Some(last)) = (why.find(&mark), why.rfind(&mark)) {
        head_end = head_end.min(first);
        tail_start = tail_start.max(last + mark.len());
    }
    format!("{}{mark}{}", &why[..head_end], &why[tail_start..])
}

#[cfg(test)]
mod tests {
    use super::elide;

    #[test]
    fn elide_keeps_the_head_and_the_root_cause() {
        let short = "a (dead) ← b (connection refused)".to_string();
        assert_eq!(elide(short.clone()), short);
        let long: Vec<String> = (0..1000).map(|i| format!("s{i} (dead)")).collect();
        let cut = elide(long.join(" ← "));
        assert!(
            cut.len() <= crate::defaults::MAX_REASON + 10,
            "{}",
            cut.len()
        );
        assert!(cut.starts_with("s0 (dead) ← s1 (dead) ← "), "{cut}");
        assert!(cut.ends_with(" ← s999 (dead)"), "{cut}");
        assert_eq!(cut.matches('…').count(), 1);
        // No link is cut in two, and a multibyte text without links is cut on a char boundary.
        assert!(cut.split(" ← ").all(|l| l == "…" || l.ends_with(" (dead)")));
        let wide = elide("é".repeat(2000));
        assert!(wide.contains('…'));
        // Link by link, as each dependent adds its own to its dep's reason: one mark, ever.
        let mut why = "root 10.0.0.9:1 (connection refused)".to_string();
        for i in 0..2000 {
            why = elide(format!("s{i} (dead) ← {why}"));
            assert!(why.matches('…').count() <= 1, "{why}");
            assert!(
                why.len() <= crate::defaults::MAX_REASON + 10,
                "{}",
                why.len()
            );
        }
        assert_eq!(why.matches('…').count(), 1, "{why}");
        assert!(why.starts_with("s1999 (dead) ← s1998 (dead) ← "), "{why}");
        assert!(
            why.ends_with(" ← s0 (dead) ← root 10.0.0.9:1 (connection refused)"),
            "{why}"
        );
    }
}
