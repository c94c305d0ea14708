//! What a tick reports, as data: every event it emits, to the sinks of `report` (the text log,
//! the alerts). The wording of each lives in `report::words`; here is only what happened.

use crate::engine::{Note, Sick};
use crate::state::Pause;
use crate::time::Unix;
use std::path::PathBuf;

/// One thing that happened in a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// What [`crate::engine::plan`] noticed: a reboot, a start that died at once, a service
    /// given up on, a chunk's restart that was not done.
    Plan(Note),
    /// A line a Lua chunk logged with `log()`.
    LuaLog { chunk: String, message: String },
    /// A warning about the config (what `check` says), said by every tick.
    Warning { message: String },
    /// Something autoheal itself could not do that does not stop the tick (keep a copy of the
    /// config, write the metrics file, run an alert hook).
    Trouble { message: String },
    /// Another tick holds the lock: this one did nothing.
    LockHeld { pid: Option<u32>, lock: PathBuf },
    /// The state file was bad and is set aside (or could not be read); the text says which.
    StateSetAside { message: String },
    /// The config does not load: `errors` errors, the first ones in `summary`.
    ConfigInvalid {
        path: PathBuf,
        errors: usize,
        summary: String,
    },
    /// The tick heals with the last version of the config that loaded.
    ConfigKept {
        path: PathBuf,
        since: Unix,
        kept: PathBuf,
    },
    /// The config does not load and nothing may heal in its place.
    NothingHealed { path: PathBuf, why: String },
    /// A dead service's script returned 0.
    Started {
        service: String,
        was: String,
        outcome: String,
    },
    /// An alive service was stopped and its script returned 0.
    Restarted {
        service: String,
        why: Sick,
        stopped: String,
        outcome: String,
    },
    /// A start or restart failed.
    StartFailed {
        service: String,
        restart: bool,
        why: StartFailure,
        /// Where its script's output went.
        log: PathBuf,
    },
    /// Not started: the state file cannot be saved, so the start could not be remembered.
    NotStarted { service: String },
    /// Up, `after` seconds after its start began.
    Up { service: String, after: f64 },
    /// At the end of the tick, not alive and well: `state` is its `status` word.
    Still {
        service: String,
        state: &'static str,
        unhealthy: bool,
        reason: String,
    },
    /// What a dry run would do.
    Would { service: String, what: String },
    /// An operator ran `autoheal reset`.
    Reset {
        service: String,
        failures: u32,
        gave_up: bool,
    },
    /// An operator paused it (`autoheal pause`); `replaced`, the pause it had until then.
    Paused {
        service: String,
        pause: Pause,
        replaced: Option<Pause>,
    },
    /// An operator ended its pause (`autoheal resume`): `by` who, `pause` the one it ended.
    Resumed {
        service: String,
        by: String,
        pause: Pause,
    },
    /// At the end of a tick, paused and alive (a paused service that is down says so in its
    /// [`Event::Still`]): every tick says a pause, lest it be forgotten.
    StillPaused { service: String, pause: Pause },
    /// Alerts only: backed off after failed restarts.
    BackedOff {
        service: String,
        until: Unix,
        failures: u32,
    },
    /// Alerts only: not alive and well for longer than `settings.notify_after`.
    HeldLong {
        service: String,
        since: Unix,
        reason: String,
    },
    /// Alerts only: alive and well again after the conditions in `after` (their kinds); for
    /// `service` `None`, the config loads again.
    Recovered {
        service: Option<String>,
        after: Vec<String>,
    },
}

/// How a start failed.
#[derive(Debug, Clone, PartialEq)]
pub enum StartFailure {
    /// Its script failed (`outcome`); `context` says why it was started.
    Script { outcome: String, context: String },
    /// Its script succeeded, but the service was dead `after` seconds later, at the end of its
    /// grace.
    Died { after: f64, dead: String },
    /// A script an interrupted tick left running went past its timeout and was killed.
    LeftRunning {
        session: u32,
        timeout: String,
        how: String,
    },
}

impl Event {
    /// Its kind, one word (the `kind` of the alert JSON, `AUTOHEAL_EVENT`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Plan(Note::Rebooted) => "rebooted",
            Event::Plan(Note::RestartNotDone { .. }) => "restart_not_done",
            Event::Plan(Note::GaveUp { .. }) => "gave_up",
            Event::Plan(Note::StartDied { .. }) => "start_failed",
            Event::Plan(Note::PauseEnded { .. }) => "pause_ended",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::StillPaused { .. } => "still_paused",
            Event::LuaLog { .. } => "lua_log",
            Event::Warning { .. } => "warning",
            Event::Trouble { .. } => "trouble",
            Event::LockHeld { .. } => "lock_held",
            Event::StateSetAside { .. } => "state_set_aside",
            Event::ConfigInvalid { .. } => "config_invalid",
            Event::ConfigKept { .. } => "config_kept",
            Event::NothingHealed { .. } => "nothing_healed",
            Event::Started { .. } => "started",
            Event::Restarted { .. } => "restarted",
            Event::StartFailed { .. } => "start_failed",
            Event::NotStarted { .. } => "not_started",
            Event::Up { .. } => "up",
            Event::Still { .. } => "still_down",
            Event::Would { .. } => "would",
            Event::Reset { .. } => "reset",
            Event::BackedOff { .. } => "backed_off",
            Event::HeldLong { .. } => "held",
            Event::Recovered { .. } => "recovered",
        }
    }

    /// The service it is about; `None` for autoheal itself.
    pub fn service(&self) -> Option<&str> {
        match self {
            Event::Plan(Note::Rebooted) => None,
            Event::Plan(
                Note::RestartNotDone { service, .. }
                | Note::GaveUp { service, .. }
                | Note::StartDied { service, .. }
                | Note::PauseEnded { service, .. },
            ) => Some(service),
            Event::Paused { service, .. }
            | Event::Resumed { service, .. }
            | Event::StillPaused { service, .. } => Some(service),
            Event::Started { service, .. }
            | Event::Restarted { service, .. }
            | Event::StartFailed { service, .. }
            | Event::NotStarted { service }
            | Event::Up { service, .. }
            | Event::Still { service, .. }
            | Event::Would { service, .. }
            | Event::Reset { service, .. }
            | Event::BackedOff { service, .. }
            | Event::HeldLong { service, .. } => Some(service),
            Event::Recovered { service, .. } => service.as_deref(),
            _ => None,
        }
    }

    /// Who the log line names: the service, a chunk, or `autoheal`.
    pub fn who(&self) -> &str {
        match self {
            Event::LuaLog { chunk, .. } => chunk,
            e => e.service().unwrap_or(AUTOHEAL),
        }
    }
}

/// The name events about autoheal itself go under.
pub const AUTOHEAL: &str = "autoheal";
