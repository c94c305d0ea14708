//! The engine: the pure [`plan`] and the converge loop around it.
//!
//! `plan(config, observation, state, now)` decides, with no I/O, no clock and no threads, what
//! each service needs: nothing (alive), a start (dead, deps ready, not in grace or backoff), or
//! to be held back, with the reason down to the root cause. Almost every rule of the contract
//! lives here and is unit-tested with plain structs. The shells around it (`observe`, `exec`,
//! `state`) do the I/O; [`tick`] strings them together: observe → plan → act, until every service
//! is alive, nothing more can change, or the converge budget is spent.

use crate::config::{By, Config, Dep, Service, Settings};
use crate::probe::ProbeError;
use crate::state::{Pause, ServiceState, State};
use crate::time::Unix;
use std::collections::{BTreeMap, BTreeSet};

/// What one observation saw; the input of [`plan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub services: BTreeMap<String, ServiceObs>,
    /// Restarts a Lua chunk asked for and the gate allowed (service → who asked).
    pub requested: BTreeMap<String, String>,
    /// Lines Lua chunks logged with `log()`: (chunk label, message).
    pub notes: Vec<(String, String)>,
    /// Services whose start (or restart) script is still running: not started again.
    pub running: BTreeSet<String>,
    /// This boot's id, when it could be read (see [`State::boot`]).
    pub boot: Option<String>,
}

/// One service as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceObs {
    /// `Ok(pid)` when alive, `Err(reason)` when dead ("no process matches `nginx`", "stale pid file ...").
    pub alive: Result<Option<u32>, String>,
    /// When its process started (unix seconds), if known: a dep restarted after it shows here.
    pub started: Option<Unix>,
    /// The service's own `check:`: `None` when it has none or it was not run (the service is dead).
    pub health: Option<Result<(), String>>,
    /// Results of its tcp, http and lua deps, by dep name. A dep missing here was not probed.
    pub deps: BTreeMap<String, DepObs>,
    /// For an alive service that may be restarted: the process a restart signals (re-checked
    /// right before each signal), or why autoheal will not signal it (so that, without a
    /// `stop:`, it does not restart it). `None`: dead, or no restart can happen.
    pub stop: Option<Result<StopTarget, Unsignallable>>,
    /// Its `health` failure is its `check:` chunk erring (a runtime error, a time or memory
    /// limit), not an answer: the service's health is unknown. Shown, never counted toward a
    /// health restart (a bug in a check must not restart a working service).
    pub check_error: bool,
    /// With a `pid_file`, its live process, by marks no clock step changes: remembered, so that
    /// a clock stepped forward later cannot make this same process look stale.
    pub pid_file_process: Option<crate::state::ProcId>,
}

/// The process a restart signals, as observed: its pid and its start in clock ticks since boot,
/// so that a pid reused meanwhile by another process is not signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopTarget {
    pub pid: u32,
    pub start_ticks: u64,
}

/// Why autoheal will not signal the process a restart of a service would stop (see
/// `observe::signal` for the rules).
#[derive(Debug, Clone, PartialEq)]
pub enum Unsignallable {
    /// A loose `pname` alone matches several unrelated processes: the text names them.
    Ambiguous(String),
    /// The process is pid 1.
    Init,
    /// The process is autoheal itself or one of its ancestors.
    Ours { pid: u32, cmdline: String },
    /// A pid from a pid file that cannot be trusted to name the service's process.
    NotTheService(Box<ForeignPid>),
}

/// A pid from a pid file, and why it is not taken for the service's process.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignPid {
    pub pid: u32,
    pub file: std::path::PathBuf,
    /// The file's owner (a name) and mode.
    pub owner: String,
    pub mode: u32,
    pub cmdline: String,
    pub mismatch: Mismatch,
}

/// Why a pid from a pid file is not taken for the service's process.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    /// The service has a `pname` and the process does not match it.
    Pname { pname: String },
    /// No `pname`, and someone besides root and the process's own account could have
    /// written the file: `writers` says who, `runs_as` whose the process is.
    Writers { writers: String, runs_as: String },
}

/// One tcp, http or lua dep as probed.
#[derive(Debug, Clone, PartialEq)]
pub struct DepObs {
    /// What was probed, for messages: `10.0.0.7:80`, the url, `lua`.
    pub target: String,
    pub result: Result<(), ProbeError>,
}

/// What a service needs, as decided by [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Alive and (if it has a `check:`) healthy.
    Alive,
    /// Alive, but its `check:` or `health:` fails (or it must follow a restarted dep); `held`
    /// is what keeps its restart back, when the restart is due but the gate is shut.
    Unhealthy { why: Sick, held: Option<Hold> },
    /// Dead, every dep ready, not in grace or backoff: run its script now.
    Start,
    /// Alive but to be restarted (health failed `unhealthy_after` times, or a dep it follows
    /// restarted after it, or a chunk asked), and the gate is open: stop it, then run its
    /// script.
    Restart { why: Sick },
    /// Dead and held back.
    Held(Hold),
}

/// Why an alive service is not well, or is to be restarted.
#[derive(Debug, Clone, PartialEq)]
pub enum Sick {
    /// Its `check:` (or `health:`) fails: `count` observations in a row; `due` once that
    /// reaches `unhealthy_after`.
    Health {
        error: String,
        count: u32,
        due: bool,
    },
    /// Its `check:` chunk failed to run (an error, a time or memory limit): its health is
    /// unknown, and this is never counted toward a restart.
    CheckError { error: String },
    /// A local dep it follows (`restart_on_dep_restart`) restarted after it; `health`, when
    /// its own check fails too.
    DepRestarted { dep: String, health: Option<String> },
    /// A Lua chunk's `restart()` asked for it.
    Requested { by: String },
}

/// Why a dead service is not started now (or an alive one's due restart is held).
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// Some direct deps are not ready: each, with what it waits on.
    Deps { waits: Vec<Wait> },
    /// Started at `since`; not judged again before `until`.
    Grace { until: Unix },
    /// Its restarts keep failing: no new start before `until`.
    Backoff { until: Unix, failures: u32 },
    /// `failures` restarts in a row failed; autoheal stopped trying (`autoheal reset`).
    GaveUp { failures: u32 },
    /// Its start script is still running (a slow script holds only its own service).
    Starting,
    /// A restart would have to signal a process autoheal must not signal (and the service has
    /// no `stop:`): it is not restarted.
    NotSignalled(Unsignallable),
    /// An operator paused it (`autoheal pause`): never started, restarted or stopped until the
    /// pause ends. First of all holds: whatever else is true of the service, this is why.
    Paused(Pause),
}

/// A direct dep that is not ready, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    /// The dep's name, as in conf.yaml.
    pub dep: String,
    pub on: WaitOn,
}

/// What a dep that is not ready waits on: its root cause, as data.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitOn {
    /// A local service of the file that is not ready: by name, or the service whose
    /// `health:` address a tcp or http dep probes (its probe fails because the service is not
    /// there, and that service's own verdict is the root cause). That verdict is in the plan.
    Service { name: String },
    /// Its probe failed.
    Probe { target: String, error: ProbeError },
    /// It was not probed in this observation.
    NotProbed,
}

impl Hold {
    /// The earliest time this hold may lift by itself (deps may come up any moment: `now`);
    /// `None` when it never lifts within a tick.
    pub fn lifts_at(&self, now: Unix) -> Option<Unix> {
        match self {
            Hold::Deps { .. } | Hold::Starting => Some(now),
            Hold::Grace { until } | Hold::Backoff { until, .. } => Some(*until),
            Hold::GaveUp { .. } | Hold::NotSignalled(_) => None,
            Hold::Paused(p) => p.until,
        }
    }
}

/// Why a start or restart may not happen now (what Lua's `restart()` is told).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No service of that name in the file.
    NoService(String),
    /// Its process may not be signalled.
    NotSignalled(Unsignallable),
    /// The gate is shut.
    Held(Hold),
}

/// What [`plan`] noticed besides the verdicts, for the log and the alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The boot id changed since the last tick: failures are forgiven.
    Rebooted,
    /// A chunk's `restart()` that the gate held.
    RestartNotDone {
        service: String,
        by: String,
        why: Refusal,
    },
    /// autoheal just gave up on it.
    GaveUp { service: String, failures: u32 },
    /// Its last start's script succeeded, but the service is dead at the end of its grace
    /// (`after` seconds after the script returned): that start failed.
    StartDied {
        service: String,
        after: f64,
        dead: String,
    },
    /// Its pause reached its `until`: dropped from the state, the usual rules apply again.
    PauseEnded { service: String, pause: Pause },
}

/// One decision per service, in config order.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub service: String,
    pub verdict: Verdict,
}

/// The outcome of [`plan`]: a decision per service and the state as this observation leaves it
/// (alive streaks, counters reset, gave-up flags). Starts are recorded by [`record_start`].
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    pub state: State,
    /// What this observation showed besides the verdicts: a reboot, a start that failed, a
    /// service given up on, a restart a chunk asked for that was not done.
    pub notes: Vec<Note>,
}

impl Plan {
    /// Names of the services to start (or restart) now.
    pub fn starts(&self) -> Vec<&str> {
        self.decisions
            .iter()
            .filter(|d| matches!(d.verdict, Verdict::Start | Verdict::Restart { .. }))
            .map(|d| d.service.as_str())
            .collect()
    }

    pub fn verdict(&self, service: &str) -> Option<&Verdict> {
        self.decisions
            .iter()
            .find(|d| d.service == service)
            .map(|d| &d.verdict)
    }

    /// Every service alive and healthy.
    pub fn all_well(&self) -> bool {
        self.decisions.iter().all(|d| d.verdict == Verdict::Alive)
    }
}

/// Decides what each service needs. Pure: no I/O, no clock; `now` is unix seconds.
pub fn plan(config: &Config, obs: &Observation, state: &State, now: Unix) -> Plan {
    let mut next = state.clone();
    // Forget services no longer in the file.
    next.services
        .retain(|name, _| config.service(name).is_some());
    next.paused.retain(|name, _| config.service(name).is_some());
    let mut notes = end_pauses(&mut next, now);
    if let Some(boot) = &obs.boot {
        if next.boot.as_ref().is_some_and(|b| b != boot) {
            forgive_reboot(&mut next);
            notes.push(Note::Rebooted);
        }
        next.boot = Some(boot.clone());
    }
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    for svc in &config.services {
        let paused = next.paused.contains_key(&svc.name);
        let ss = next.services.entry(svc.name.clone()).or_default();
        clamp_to_clock(ss, svc, &config.settings, now);
        let o = obs.services.get(&svc.name);
        update_streaks(ss, o, &config.settings, now);
        if paused {
            // A deliberate outage is not one to alert on: `notify_after` counts from its end.
            ss.down_since = None;
        }
        if let Some(note) = judge_start(ss, svc, o, now) {
            notes.push(note);
        }
    }
    for svc in &config.services {
        decide(config, obs, &next, now, &svc.name, &mut verdicts);
    }
    // Giving up is a state change, so it survives the tick and shows in `status`.
    for (name, v) in &verdicts {
        if let Verdict::Held(Hold::GaveUp { failures }) = v
            && let Some(ss) = next.services.get_mut(name)
        {
            if !ss.gave_up {
                notes.push(Note::GaveUp {
                    service: name.clone(),
                    failures: *failures,
                });
            }
            ss.gave_up = true;
        }
    }
    // A restart a chunk asked for that the gate holds now that every result is in: the
    // service stays as it is (alive and well), and the log says why nothing was done.
    for (name, who) in &obs.requested {
        if let (Some(Verdict::Alive), Some(svc)) = (verdicts.get(name), config.service(name)) {
            let ss = next.services.get(name).cloned().unwrap_or_default();
            let why = active_pause(&next, name, now)
                .map(|p| Refusal::Held(Hold::Paused(p.clone())))
                .or_else(|| unsignallable(obs, svc).cloned().map(Refusal::NotSignalled))
                .or_else(|| {
                    gate(config, obs, &next, now, svc, &ss, &mut verdicts.clone())
                        .map(Refusal::Held)
                });
            if let Some(why) = why {
                notes.push(Note::RestartNotDone {
                    service: name.clone(),
                    by: who.clone(),
                    why,
                });
            }
        }
    }
    let decisions = config
        .services
        .iter()
        .map(|s| Decision {
            service: s.name.clone(),
            verdict: verdicts.remove(&s.name).expect("every service decided"),
        })
        .collect();
    Plan {
        decisions,
        state: next,
        notes,
    }
}

/// Drops the pauses whose `until` has come, each with a note (said once: the next plan finds
/// it gone). A pause written before the clock was stepped back (`since` in the future) keeps
/// its length from now, so a clock step neither ends it early nor stretches it.
fn end_pauses(state: &mut State, now: Unix) -> Vec<Note> {
    let mut notes = Vec::new();
    state.paused.retain(|service, p| {
        if p.since > now {
            p.until = p.until.map(|u| now + (u - p.since).max(0.0));
            p.since = now;
        }
        if p.holds_at(now) {
            return true;
        }
        notes.push(Note::PauseEnded {
            service: service.clone(),
            pause: p.clone(),
        });
        false
    });
    notes
}

/// The pause of `service` that holds at `now`, if any.
pub fn active_pause<'a>(state: &'a State, service: &str, now: Unix) -> Option<&'a Pause> {
    state.paused.get(service).filter(|p| p.holds_at(now))
}

/// After a reboot: what counted restarts that failed belongs to the boot before. Every service
/// died with its host, which says nothing about the service: its failure count, backoff,
/// given-up flag and health count start again, a script launched in the old boot is gone, and
/// so is the grace of a start made in it (no process of it is warming up any more).
fn forgive_reboot(state: &mut State) {
    for ss in state.services.values_mut() {
        ss.last_start = None;
        ss.failures = 0;
        ss.backoff_until = None;
        ss.gave_up = false;
        ss.health_failures = 0;
        ss.health_seen_at = None;
        ss.alive_since = None;
        ss.script_until = None;
        ss.script_session = None;
    }
}

/// Times in the future are what a clock stepped back leaves (a state written before the step):
/// a start is brought back to now and a backoff to at most `backoff_max` from now, so the step
/// holds a service for one grace or one backoff at most, not for the size of the step.
fn clamp_to_clock(ss: &mut ServiceState, svc: &Service, settings: &Settings, now: Unix) {
    if let Some(t) = ss.script_until.as_mut() {
        *t = t.min(now + svc.timeout.as_secs_f64());
    }
    if let Some(t) = ss.last_start.as_mut() {
        *t = t.min(now);
    }
    if let Some(u) = ss.backoff_until.as_mut() {
        *u = u.min(now + settings.backoff_max.as_secs_f64());
    }
    if let Some(t) = ss.alive_since.as_mut() {
        *t = t.min(now);
    }
    if let Some(t) = ss.health_seen_at.as_mut() {
        *t = t.min(now);
    }
    if let Some(t) = ss.down_since.as_mut() {
        *t = t.min(now);
    }
}

/// A start whose script succeeded, judged once its grace is over: dead then (and never seen
/// alive and well since), it failed, though its script said nothing of it. Said once.
fn judge_start(
    ss: &mut ServiceState,
    svc: &Service,
    obs: Option<&ServiceObs>,
    now: Unix,
) -> Option<Note> {
    let dead = obs.and_then(|o| o.alive.as_ref().err())?;
    let returned = ss
        .last_start
        .filter(|_| ss.unconfirmed && ss.script_until.is_none())?;
    if now < returned + svc.grace.as_secs_f64() {
        return None;
    }
    ss.unconfirmed = false;
    Some(Note::StartDied {
        service: svc.name.clone(),
        after: now - returned,
        dead: dead.clone(),
    })
}

/// Alive streaks and counter resets, from one observation.
fn update_streaks(ss: &mut ServiceState, obs: Option<&ServiceObs>, settings: &Settings, now: Unix) {
    let alive = obs.is_some_and(|o| o.alive.is_ok());
    let unhealthy = obs.is_some_and(|o| matches!(o.health, Some(Err(_))));
    if let Some(o) = obs {
        // Remember the pid file's process while it lives; forget it once the service is dead.
        if o.alive.is_err() || o.pid_file_process.is_some() {
            ss.pid_file_process = o.pid_file_process.clone();
        }
    }
    if alive {
        // Seen running after its start: that start worked, whatever its health says now.
        ss.unconfirmed = false;
    }
    if alive && obs.is_some_and(|o| o.check_error) {
        // Health unknown: no failure is counted, no streak is broken, no counter is reset.
        return;
    }
    if alive && !unhealthy {
        ss.down_since = None;
        let since = *ss.alive_since.get_or_insert(now);
        // Seen alive and well: whatever made autoheal give up is over.
        ss.gave_up = false;
        ss.health_failures = 0;
        ss.health_seen_at = None;
        if now - since >= settings.healthy_after.as_secs_f64() {
            ss.failures = 0;
            ss.backoff_until = None;
        }
    } else {
        ss.alive_since = None;
        ss.down_since.get_or_insert(now);
        if alive {
            let spacing = crate::defaults::HEALTH_SPACING.as_secs_f64();
            if ss.health_seen_at.is_none_or(|t| now - t >= spacing) {
                ss.health_failures = ss.health_failures.saturating_add(1);
                ss.health_seen_at = Some(now);
            }
        } else {
            ss.health_failures = 0;
            ss.health_seen_at = None;
        }
    }
}

/// Decides one service (and, first, the local services it waits on, deepest first: each
/// finds its own deps decided, so nothing recurses however long the chain).
fn decide<'a>(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    name: &str,
    memo: &'a mut BTreeMap<String, Verdict>,
) -> &'a Verdict {
    if !memo.contains_key(name) {
        let at = config
            .graph
            .index(name)
            .expect("decide only names services of the file");
        let todo = config
            .graph
            .closure(at, |i| memo.contains_key(&config.services[i].name));
        for i in todo {
            let svc = &config.services[i];
            let v = decide_uncached(config, obs, state, now, svc, memo);
            memo.insert(svc.name.clone(), v);
        }
    }
    &memo[name]
}

fn decide_uncached(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    svc: &Service,
    memo: &mut BTreeMap<String, Verdict>,
) -> Verdict {
    let o = obs.services.get(&svc.name);
    let ss = state.services.get(&svc.name).cloned().unwrap_or_default();
    let Some(o) = o.filter(|o| o.alive.is_ok()) else {
        return match gate(config, obs, state, now, svc, &ss, memo) {
            None => Verdict::Start,
            Some(hold) => Verdict::Held(hold),
        };
    };
    let verdict = decide_alive(config, obs, state, now, svc, o, &ss, memo);
    // Paused: whatever its health, its restart is held by the pause (and says so), even one
    // not due yet or one that could not be signalled; an alive and well one is just alive.
    match (active_pause(state, &svc.name, now), verdict) {
        (Some(p), Verdict::Unhealthy { why, .. } | Verdict::Restart { why }) => {
            Verdict::Unhealthy {
                why,
                held: Some(Hold::Paused(p.clone())),
            }
        }
        (_, verdict) => verdict,
    }
}

/// The verdict of an alive service.
#[allow(clippy::too_many_arguments)]
fn decide_alive(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    svc: &Service,
    o: &ServiceObs,
    ss: &ServiceState,
    memo: &mut BTreeMap<String, Verdict>,
) -> Verdict {
    // Alive: restarted only when a dep it follows restarted, or its health kept failing. A
    // followed dep comes first: the broken connection it left is often why the health fails
    // now, and waiting for `unhealthy_after` failures would only prolong the outage.
    let followed = dep_restarted_after(obs, svc, o);
    let health = match &o.health {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    if let (true, Some(error), None) = (o.check_error, &health, &followed) {
        return Verdict::Unhealthy {
            why: Sick::CheckError {
                error: error.clone(),
            },
            held: None,
        };
    }
    let why = match (health, followed) {
        (health, Some(dep)) => Sick::DepRestarted { dep, health },
        (Some(error), None) => {
            let due = ss.health_failures >= svc.unhealthy_after;
            let why = Sick::Health {
                error,
                count: ss.health_failures,
                due,
            };
            if !due {
                return Verdict::Unhealthy { why, held: None };
            }
            why
        }
        (None, None) => match obs.requested.get(&svc.name) {
            Some(by) => Sick::Requested { by: by.clone() },
            None => return Verdict::Alive,
        },
    };
    // Only a chunk's restart() asks for it; the service itself is well.
    let requested = matches!(why, Sick::Requested { .. });
    if let Some(refusal) = unsignallable(obs, svc) {
        // Signalling a guess, or a process that is not the service, could kill the wrong
        // process; starting another could double it.
        if requested {
            return Verdict::Alive;
        }
        return Verdict::Unhealthy {
            why,
            held: Some(Hold::NotSignalled(refusal.clone())),
        };
    }
    match gate(config, obs, state, now, svc, ss, memo) {
        None => Verdict::Restart { why },
        // Only asked for by a chunk, and healthy: held, it is simply left alone (see `plan`).
        Some(_) if requested => Verdict::Alive,
        Some(hold) => Verdict::Unhealthy {
            why,
            held: Some(hold),
        },
    }
}

/// Whether `service` may be started or restarted now: the gate of [`plan`] (not given up, not
/// in grace or backoff, every dep ready), for Lua's `restart()`. `Err` says why not, with the
/// verdicts of the local services its deps wait on (what the reason is worded from).
pub fn may_start(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    service: &str,
) -> Result<(), (Refusal, Vec<Decision>)> {
    let svc = config
        .service(service)
        .ok_or_else(|| (Refusal::NoService(service.to_string()), Vec::new()))?;
    if let Some(p) = active_pause(state, service, now) {
        return Err((Refusal::Held(Hold::Paused(p.clone())), Vec::new()));
    }
    if let Some(refusal) = unsignallable(obs, svc) {
        return Err((Refusal::NotSignalled(refusal.clone()), Vec::new()));
    }
    let ss = state.services.get(service).cloned().unwrap_or_default();
    let mut memo = BTreeMap::new();
    match gate(config, obs, state, now, svc, &ss, &mut memo) {
        None => Ok(()),
        Some(hold) => {
            let decided = memo
                .into_iter()
                .map(|(service, verdict)| Decision { service, verdict })
                .collect();
            Err((Refusal::Held(hold), decided))
        }
    }
}

/// Why a restart of `svc` may not signal its process (it has no `stop:`; see
/// [`ServiceObs::stop`]), if so.
fn unsignallable<'a>(obs: &'a Observation, svc: &Service) -> Option<&'a Unsignallable> {
    if svc.stop.is_some() {
        return None;
    }
    obs.services.get(&svc.name)?.stop.as_ref()?.as_ref().err()
}

/// With `restart_on_dep_restart`, a local dep whose process started after this one's.
fn dep_restarted_after(obs: &Observation, svc: &Service, o: &ServiceObs) -> Option<String> {
    if !svc.restart_on_dep_restart {
        return None;
    }
    let mine = o.started?;
    svc.deps.iter().find_map(|d| match d {
        Dep::Service { name } => {
            let theirs = obs.services.get(name)?.started?;
            (theirs > mine).then(|| name.clone())
        }
        _ => None,
    })
}

/// The gate every start and restart passes: not given up, not in grace, not backed off, every
/// dep ready. `None` when it may go now.
fn gate(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    svc: &Service,
    ss: &ServiceState,
    memo: &mut BTreeMap<String, Verdict>,
) -> Option<Hold> {
    // Paused by an operator: nothing else matters until the pause ends.
    if let Some(p) = active_pause(state, &svc.name, now) {
        return Some(Hold::Paused(p.clone()));
    }
    // Its script runs (in this tick), or may still run (launched by a tick that was
    // interrupted before it returned; killed at its timeout at the latest).
    if obs.running.contains(&svc.name) || ss.script_until.is_some_and(|t| now < t) {
        return Some(Hold::Starting);
    }
    let settings = &config.settings;
    let grace = svc.grace.as_secs_f64();
    let last_start = ss.last_start;
    if ss.gave_up
        || (settings.give_up_after > 0
            && ss.failures >= settings.give_up_after
            && last_start.is_none_or(|t| now >= t + grace))
    {
        return Some(Hold::GaveUp {
            failures: ss.failures,
        });
    }
    if let Some(t) = last_start {
        let until = t + grace;
        if now < until {
            return Some(Hold::Grace { until });
        }
    }
    // An alive service whose process is younger than its grace (started by autoheal or not:
    // by systemd at boot, by hand) is still warming up: not restarted yet.
    if let Some(t) = obs
        .services
        .get(&svc.name)
        .filter(|o| o.alive.is_ok())
        .and_then(|o| o.started)
    {
        let until = t.min(now) + grace;
        if now < until {
            return Some(Hold::Grace { until });
        }
    }
    if let Some(until) = ss.backoff_until.filter(|u| now < *u) {
        return Some(Hold::Backoff {
            until,
            failures: ss.failures,
        });
    }
    let waits: Vec<Wait> = svc
        .deps
        .iter()
        .filter_map(|dep| dep_unready(config, obs, state, now, svc, dep, memo))
        .collect();
    (!waits.is_empty()).then_some(Hold::Deps { waits })
}

/// `None` when the dep is ready, else what it waits on. A tcp or http dep at a local
/// service's `health:` address waits on that service when it is down: its probe fails because
/// the service is not there, and the service's own verdict is the root cause.
fn dep_unready(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    svc: &Service,
    dep: &Dep,
    memo: &mut BTreeMap<String, Verdict>,
) -> Option<Wait> {
    let name = dep.name();
    let wait = |on| {
        Some(Wait {
            dep: name.to_string(),
            on,
        })
    };
    if let Dep::Service { .. } = dep {
        let verdict = decide(config, obs, state, now, name, memo);
        return match verdict {
            Verdict::Alive => None,
            _ => wait(WaitOn::Service {
                name: name.to_string(),
            }),
        };
    }
    let probed = obs.services.get(&svc.name).and_then(|o| o.deps.get(name));
    if let Some(DepObs { result: Ok(()), .. }) = probed {
        return None;
    }
    if let Some((local, By::Address)) = config.local_dep(svc, dep) {
        let verdict = decide(config, obs, state, now, &local.name, memo);
        if !matches!(verdict, Verdict::Alive | Verdict::Unhealthy { .. }) {
            return wait(WaitOn::Service {
                name: local.name.clone(),
            });
        }
    }
    match probed {
        Some(DepObs {
            target,
            result: Err(error),
        }) => wait(WaitOn::Probe {
            target: target.clone(),
            error: error.clone(),
        }),
        Some(DepObs { result: Ok(()), .. }) => None,
        None => wait(WaitOn::NotProbed),
    }
}

/// Records that a start's script returned at `finished`, with its outcome: grace and backoff
/// count from then, not from when it began (a script that takes 40 s must not be judged 30 s
/// after it began, or its service is started twice). Pure.
pub fn record_result(
    ss: &mut ServiceState,
    settings: &Settings,
    finished: Unix,
    result: String,
    succeeded: bool,
) {
    // A script that failed is said at once; one that succeeded is judged at its grace's end.
    ss.unconfirmed = succeeded;
    ss.script_until = None;
    ss.script_session = None;
    ss.last_start = Some(finished);
    ss.last_result = Some(result);
    let delay = backoff_delay(ss.failures, settings);
    ss.backoff_until = (delay > 0.0).then_some(finished + delay);
}

/// Records a start in the state: when, and the backoff the next one must respect.
/// Called by the act shell before it runs the script (and saved before it runs, so that a
/// start is never made that the state does not know of); pure itself.
pub fn record_start(ss: &mut ServiceState, settings: &Settings, started: Unix, result: String) {
    ss.last_start = Some(started);
    ss.last_result = Some(result);
    // Counters read from the state file: any number, so they saturate.
    ss.starts = ss.starts.saturating_add(1);
    ss.failures = ss.failures.saturating_add(1);
    ss.alive_since = None;
    ss.health_failures = 0;
    ss.health_seen_at = None;
    let delay = backoff_delay(ss.failures, settings);
    ss.backoff_until = (delay > 0.0).then_some(started + delay);
}

/// Seconds the next start must wait after `failures` consecutive unsuccessful starts: none after
/// the first (a crash is healed at once, and grace already spaces restarts), then `backoff`,
/// doubling, capped at `backoff_max`.
pub fn backoff_delay(failures: u32, settings: &Settings) -> f64 {
    if failures <= 1 {
        return 0.0;
    }
    let base = settings.backoff.as_secs_f64();
    let exp = (failures - 2).min(30);
    (base * f64::from(1u32 << exp)).min(settings.backoff_max.as_secs_f64())
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod pause_tests;
#[cfg(test)]
mod tests;
