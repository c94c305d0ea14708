//! The operator's levers on the state: `pause`, `resume` and `reset`, of one service or of
//! every service of the file (`--all`). Each takes the tick lock (a tick running meanwhile
//! would overwrite the state with its own copy), loads the state, changes it, saves it, and
//! returns what it did as events for the log. A name not in the file is refused before
//! anything is touched.
//!
//! Must not: decide anything of the healing. A pause is data in the state ([`Pause`]); what it
//! holds back, and when it ends by itself, is the planner's (`engine::plan`).

use crate::config::Config;
use crate::event::Event;
use crate::state::{self, LockOutcome, Pause, State, StateError};
use crate::time::Unix;
use std::path::Path;
use std::time::Duration;

/// The services a lever moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    One(&'a str),
    /// Every service of the file.
    All,
}

impl<'a> Target<'a> {
    /// From the command line: a service name, or `--all` (clap keeps exactly one of them).
    pub fn of(service: Option<&'a str>, all: bool) -> Target<'a> {
        match service {
            Some(name) if !all => Target::One(name),
            _ => Target::All,
        }
    }
}

/// Why a lever did nothing.
#[derive(Debug, thiserror::Error)]
pub enum LeverError {
    #[error("no service `{name}` in {path} (services: {services})")]
    NoService {
        name: String,
        path: String,
        services: String,
    },
    #[error("a tick is running{}; run {command} again once it ends", by.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        command: &'static str,
        by: Option<u32>,
    },
    #[error(
        "--reason is {len} bytes long; at most {} are kept (say the rest in your ticket)",
        crate::defaults::MAX_PAUSE_REASON
    )]
    ReasonTooLong { len: usize },
    #[error(
        "--for {} is longer than {}; for a longer window, pause with --for 0 (until `autoheal resume`), which every tick then reports",
        crate::fmt::duration(*asked),
        crate::fmt::duration(crate::defaults::MAX_PAUSE)
    )]
    TooLong { asked: Duration },
    #[error(
        "--for {} is shorter than a second: it would be over before a tick saw it; give a \
         window (e.g. --for 30m), or --for 0 to pause until `autoheal resume`",
        crate::fmt::duration(*asked)
    )]
    TooShort { asked: Duration },
    #[error("{0}")]
    State(#[from] StateError),
}

impl LeverError {
    /// Its exit code: a tick holding the lock is 1 (try again), anything else 2.
    pub fn exit(&self) -> crate::Exit {
        match self {
            LeverError::Locked { .. } => crate::Exit::Down,
            _ => crate::Exit::Usage,
        }
    }
}

/// What a lever did: its events for the log, and the services it left as they were (`resume`
/// of a service that was not paused).
#[derive(Debug, Default)]
pub struct Done {
    pub events: Vec<Event>,
    pub untouched: Vec<String>,
}

/// Who runs this command, as a pause names them: `$SUDO_USER` (the person behind `sudo`),
/// else `$USER`, else `$LOGNAME`, else the name of the real uid (`uid N` if it has none).
pub fn operator() -> String {
    let uid = rustix::process::getuid().as_raw();
    operator_from(|var| std::env::var(var).ok(), uid)
}

fn operator_from(env: impl Fn(&str) -> Option<String>, uid: u32) -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .into_iter()
        .filter_map(&env)
        .map(|name| name.trim().to_string())
        .find(|name| !name.is_empty())
        .map(|name| name.chars().take(64).collect())
        .or_else(|| crate::users::name_of(uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The pause `pause` writes: `by`, from `now`, for `length` (zero: until resumed).
pub fn new_pause(
    by: String,
    reason: Option<String>,
    length: Duration,
    now: Unix,
) -> Result<Pause, LeverError> {
    if length > crate::defaults::MAX_PAUSE {
        return Err(LeverError::TooLong { asked: length });
    }
    if !length.is_zero() && length < Duration::from_secs(1) {
        return Err(LeverError::TooShort { asked: length });
    }
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if let Some(r) = &reason
        && r.len() > crate::defaults::MAX_PAUSE_REASON
    {
        return Err(LeverError::ReasonTooLong { len: r.len() });
    }
    Ok(Pause {
        by,
        reason,
        since: now,
        until: (!length.is_zero()).then_some(now + length.as_secs_f64()),
    })
}

/// `autoheal pause`: each target paused with `pause` (a pause it had is replaced).
pub fn pause(
    config: &Config,
    dir: &Path,
    target: Target,
    pause: &Pause,
) -> Result<Done, LeverError> {
    under_lock(config, dir, target, "pause", |st, names, done| {
        for name in names {
            let replaced = st.paused.insert(name.clone(), pause.clone());
            done.events.push(Event::Paused {
                service: name,
                pause: pause.clone(),
                replaced,
            });
        }
    })
}

/// `autoheal resume`: each target's pause ended, `by` whom; one not paused is left alone.
pub fn resume(config: &Config, dir: &Path, target: Target, by: &str) -> Result<Done, LeverError> {
    under_lock(config, dir, target, "resume", |st, names, done| {
        for name in names {
            match st.paused.remove(&name) {
                Some(pause) => done.events.push(Event::Resumed {
                    service: name,
                    by: by.to_string(),
                    pause,
                }),
                None => done.untouched.push(name),
            }
        }
    })
}

/// `autoheal reset`: each target's failures, backoff and giving up forgotten. A pause is not
/// a failure: it stays (`resume` ends it).
pub fn reset(config: &Config, dir: &Path, target: Target) -> Result<Done, LeverError> {
    under_lock(config, dir, target, "reset", |st, names, done| {
        for name in names {
            let before = st.services.remove(&name).unwrap_or_default();
            done.events.push(Event::Reset {
                service: name,
                failures: before.failures,
                gave_up: before.gave_up,
            });
        }
    })
}

/// The names of `target`, checked against the file; then, under the tick lock, `change` on the
/// state, saved if it did anything.
fn under_lock(
    config: &Config,
    dir: &Path,
    target: Target,
    command: &'static str,
    change: impl FnOnce(&mut State, Vec<String>, &mut Done),
) -> Result<Done, LeverError> {
    let names: Vec<String> = match target {
        Target::One(name) if config.service(name).is_some() => vec![name.to_string()],
        Target::One(name) => {
            let services: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
            return Err(LeverError::NoService {
                name: name.to_string(),
                path: config.path.display().to_string(),
                services: services.join(", "),
            });
        }
        Target::All => config.services.iter().map(|s| s.name.clone()).collect(),
    };
    state::create_dir(dir)?;
    let _lock = match state::try_lock(dir)? {
        LockOutcome::Acquired(lock) => lock,
        LockOutcome::Held { by } => return Err(LeverError::Locked { command, by }),
    };
    let (mut st, warning) = state::load(dir)?;
    let mut done = Done::default();
    if let Some(message) = warning {
        done.events.push(Event::StateSetAside { message });
    }
    change(&mut st, names, &mut done);
    if done.events.iter().any(|e| e.service().is_some()) {
        state::save(dir, &st)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_is_the_person_behind_sudo_first() {
        fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            }
        }
        let both = [("SUDO_USER", "alice"), ("USER", "root")];
        assert_eq!(operator_from(env(&both), 0), "alice");
        assert_eq!(operator_from(env(&[("USER", "bob")]), 0), "bob");
        let blank = [("SUDO_USER", " "), ("LOGNAME", "carol")];
        assert_eq!(operator_from(env(&blank), 0), "carol");
        // No variable: the uid's name (root is uid 0 everywhere), or the uid itself.
        assert_eq!(operator_from(env(&[]), 0), "root");
        assert_eq!(operator_from(env(&[]), 4_000_000_000), "uid 4000000000");
    }

    #[test]
    fn a_pause_lasts_its_length_or_until_resumed() {
        let p = new_pause(
            "alice".into(),
            Some(" upgrade ".into()),
            Duration::from_secs(3600),
            100.0,
        )
        .unwrap();
        assert_eq!(p.until, Some(3700.0));
        assert_eq!(p.reason.as_deref(), Some("upgrade"));
        assert!(p.holds_at(3699.0) && !p.holds_at(3700.0));
        let p = new_pause("alice".into(), Some("".into()), Duration::ZERO, 100.0).unwrap();
        assert_eq!((p.until, p.reason), (None, None));
        let long = "x".repeat(crate::defaults::MAX_PAUSE_REASON + 1);
        assert!(matches!(
            new_pause("a".into(), Some(long), Duration::ZERO, 0.0),
            Err(LeverError::ReasonTooLong { .. })
        ));
        let year = Duration::from_secs(366 * 86_400);
        assert!(matches!(
            new_pause("a".into(), None, year, 0.0),
            Err(LeverError::TooLong { .. })
        ));
        assert!(matches!(
            new_pause("a".into(), None, Duration::from_micros(1), 0.0),
            Err(LeverError::TooShort { .. })
        ));
    }
}
