//! The engine: the pure [`plan`] and the converge loop around it.
//!
//! `plan(config, observation, state, now)` decides, with no I/O, no clock and no threads, what
//! each service needs: nothing (alive), a start (dead, deps ready, not in grace or backoff), or
//! to be held back, with the reason down to the root cause. Almost every rule of the contract
//! lives here and is unit-tested with plain structs. The shells around it (`observe`, `exec`,
//! `state`) do the I/O; [`tick`] strings them together: observe → plan → act, until every service
//! is alive, nothing more can change, or the converge budget is spent.

use crate::config::{By, Config, Dep, Service, Settings};
use crate::fmt::secs;
use crate::state::{ServiceState, State};
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

impl Unsignallable {
    /// The phrase for the log and `status`: what autoheal found and what to do about it.
    pub fn describe(&self) -> String {
        match self {
            Unsignallable::Ambiguous(which) => which.clone(),
            Unsignallable::Init => "its process is pid 1 (init), which autoheal never signals; \
                 give the service a `stop:` command or a pname that does not match init"
                .into(),
            Unsignallable::Ours { pid, cmdline } => format!(
                "its process, pid {pid} (`{cmdline}`), is autoheal itself or one of its \
                 ancestors, which it never signals; give the service a `stop:` command"
            ),
            Unsignallable::NotTheService(foreign) => {
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
}

/// One tcp, http or lua dep as probed.
#[derive(Debug, Clone, PartialEq)]
pub struct DepObs {
    /// What was probed, for messages: `10.0.0.7:80`, the url, `lua`.
    pub target: String,
    pub result: Result<(), String>,
}

/// What a service needs, as decided by [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Alive and (if it has a `check:`) healthy.
    Alive,
    /// Alive, but its `check:` or `health:` fails (or it must follow a restarted dep); `held`
    /// is what keeps its restart back, when the restart is due but the gate is shut.
    Unhealthy { reason: String, held: Option<Hold> },
    /// Dead, every dep ready, not in grace or backoff: run its script now.
    Start,
    /// Alive but to be restarted (health failed `unhealthy_after` times, or a dep it follows
    /// restarted after it), and the gate is open: stop it, then run its script.
    Restart { reason: String },
    /// Dead and held back.
    Held(Hold),
}

/// Why a dead service is not started now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// Some direct deps are not ready; `why` follows local deps down to the root cause.
    Deps { why: String },
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
}

impl Hold {
    /// The earliest time this hold may lift by itself (deps may come up any moment: `now`);
    /// `None` when it never lifts within a tick.
    pub fn lifts_at(&self, now: Unix) -> Option<Unix> {
        match self {
            Hold::Deps { .. } | Hold::Starting => Some(now),
            Hold::Grace { until } | Hold::Backoff { until, .. } => Some(*until),
            Hold::GaveUp { .. } | Hold::NotSignalled(_) => None,
        }
    }

    /// A short phrase: "waiting on nginx (dead) ← ...", "in grace for 12s", ...
    pub fn describe(&self, now: Unix) -> String {
        match self {
            Hold::Deps { why } => format!("waiting on {why}"),
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
            Hold::NotSignalled(why) => why.describe(),
        }
    }
}

/// A dead service held by its grace: why it is dead, then the grace ("just started" alone read
/// as if it were coming up).
pub fn with_death(verdict: &Verdict, dead: Option<&String>, reason: String) -> String {
    match (verdict, dead) {
        (Verdict::Held(Hold::Grace { .. }), Some(why)) => format!("dead ({why}); {reason}"),
        _ => reason,
    }
}

/// "1 failed restart", "3 failed restarts".
pub fn failed_restarts(n: u32) -> String {
    format!("{n} failed restart{}", if n == 1 { "" } else { "s" })
}

impl Verdict {
    /// The phrase used in logs and `status` for a service that is not alive and well.
    pub fn reason(&self, now: Unix) -> Option<String> {
        match self {
            Verdict::Alive => None,
            // Its reason may already say it ("unhealthy (3 failed health observations ...)").
            Verdict::Unhealthy { reason, .. } if reason.starts_with("unhealthy") => {
                Some(reason.clone())
            }
            Verdict::Unhealthy { reason, .. } => Some(format!("unhealthy: {reason}")),
            Verdict::Start => Some("dead, deps ready: starting".into()),
            Verdict::Restart { reason } => Some(format!("restarting: {reason}")),
            Verdict::Held(h) => Some(h.describe(now)),
        }
    }
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
    /// Lines for the log that are not a service's verdict: (service, message), e.g. a restart
    /// a Lua chunk asked for that the gate did not let through.
    pub notes: Vec<(String, String)>,
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
    let mut notes = Vec::new();
    if let Some(boot) = &obs.boot {
        if next.boot.as_ref().is_some_and(|b| b != boot) {
            forgive_reboot(&mut next);
            notes.push((
                "autoheal".to_string(),
                "the host rebooted since the last tick (its boot id changed): failed restarts, \
                 backoffs and given-up services are forgiven, as a death by power cut is not a \
                 failed restart"
                    .to_string(),
            ));
        }
        next.boot = Some(boot.clone());
    }
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    for svc in &config.services {
        let ss = next.services.entry(svc.name.clone()).or_default();
        clamp_to_clock(ss, svc, &config.settings, now);
        update_streaks(ss, obs.services.get(&svc.name), &config.settings, now);
    }
    for svc in &config.services {
        decide(config, obs, &next, now, &svc.name, &mut verdicts);
    }
    // Giving up is a state change, so it survives the tick and shows in `status`.
    for (name, v) in &verdicts {
        if let Verdict::Held(Hold::GaveUp { .. }) = v
            && let Some(ss) = next.services.get_mut(name)
        {
            ss.gave_up = true;
        }
    }
    // A restart a chunk asked for that the gate holds now that every result is in: the
    // service stays as it is (alive and well), and the log says why nothing was done.
    for (name, who) in &obs.requested {
        if let (Some(Verdict::Alive), Some(svc)) = (verdicts.get(name), config.service(name)) {
            let ss = next.services.get(name).cloned().unwrap_or_default();
            let why = unsignallable(obs, svc)
                .map(Unsignallable::describe)
                .or_else(|| {
                    gate(config, obs, &next, now, svc, &ss, &mut verdicts.clone())
                        .map(|hold| hold.describe(now))
                });
            if let Some(why) = why {
                notes.push((
                    name.clone(),
                    format!("restart requested by {who} not done: {why}"),
                ));
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
    if alive && obs.is_some_and(|o| o.check_error) {
        // Health unknown: no failure is counted, no streak is broken, no counter is reset.
        return;
    }
    if alive && !unhealthy {
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
    // Alive: restarted only when a dep it follows restarted, or its health kept failing. A
    // followed dep comes first: the broken connection it left is often why the health fails
    // now, and waiting for `unhealthy_after` failures would only prolong the outage.
    let followed = dep_restarted_after(obs, svc, o);
    if let (true, Some(Err(reason)), None) = (o.check_error, &o.health, &followed) {
        return Verdict::Unhealthy {
            reason: format!("its check failed to run: {reason} (not counted toward a restart)"),
            held: None,
        };
    }
    // `requested`: only a chunk's restart() asks for it; the service itself is well.
    let (why, requested) = match (&o.health, followed) {
        (Some(Err(reason)), Some(why)) => (format!("{why} (and now unhealthy: {reason})"), false),
        (_, Some(why)) => (why, false),
        (Some(Err(reason)), None) if ss.health_failures < svc.unhealthy_after => {
            return Verdict::Unhealthy {
                reason: reason.clone(),
                held: None,
            };
        }
        (Some(Err(reason)), None) => (
            format!(
                "unhealthy ({} failed health observation{} in a row): {reason}",
                ss.health_failures,
                if ss.health_failures == 1 { "" } else { "s" }
            ),
            false,
        ),
        (_, None) => match obs.requested.get(&svc.name) {
            Some(who) => (format!("restart requested by {who}"), true),
            None => return Verdict::Alive,
        },
    };
    if let Some(refusal) = unsignallable(obs, svc) {
        // Signalling a guess, or a process that is not the service, could kill the wrong
        // process; starting another could double it.
        if requested {
            return Verdict::Alive;
        }
        let hold = Hold::NotSignalled(refusal.clone());
        return Verdict::Unhealthy {
            reason: format!("{why}; not restarted: {}", hold.describe(now)),
            held: Some(hold),
        };
    }
    match gate(config, obs, state, now, svc, &ss, memo) {
        None => Verdict::Restart { reason: why },
        // Only asked for by a chunk, and healthy: held, it is simply left alone (see `plan`).
        Some(_) if requested => Verdict::Alive,
        Some(hold) => Verdict::Unhealthy {
            reason: format!("{why}; its restart is held: {}", hold.describe(now)),
            held: Some(hold),
        },
    }
}

/// Whether `service` may be started or restarted now: the gate of [`plan`] (not given up, not
/// in grace or backoff, every dep ready), for Lua's `restart()`. `Err` says why not.
pub fn may_start(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    service: &str,
) -> Result<(), String> {
    let svc = config
        .service(service)
        .ok_or_else(|| format!("no service `{service}`"))?;
    if let Some(refusal) = unsignallable(obs, svc) {
        return Err(refusal.describe());
    }
    let ss = state.services.get(service).cloned().unwrap_or_default();
    match gate(config, obs, state, now, svc, &ss, &mut BTreeMap::new()) {
        None => Ok(()),
        Some(hold) => Err(hold.describe(now)),
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
            (theirs > mine).then(|| format!("{name} restarted after it"))
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
    let mut waits = Vec::new();
    for dep in &svc.deps {
        if let Some(why) = dep_unready(config, obs, state, now, svc, dep, memo) {
            waits.push(why);
        }
    }
    (!waits.is_empty()).then(|| Hold::Deps {
        why: elide(waits.join(", ")),
    })
}

/// `None` when the dep is ready, else what it waits on, following local deps down the chain:
/// `nginx (dead) ← middleware 10.0.0.7:80 (connection refused)`. A tcp or http dep at a local
/// service's `health:` address is followed too when that service is down: its probe fails
/// because the service is not there, and the service's own reason is the root cause.
fn dep_unready(
    config: &Config,
    obs: &Observation,
    state: &State,
    now: Unix,
    svc: &Service,
    dep: &Dep,
    memo: &mut BTreeMap<String, Verdict>,
) -> Option<String> {
    let name = dep.name();
    if let Dep::Service { .. } = dep {
        let verdict = decide(config, obs, state, now, name, memo);
        return local_unready(name, verdict, now);
    }
    let probed = obs.services.get(&svc.name).and_then(|o| o.deps.get(name));
    if let Some(DepObs { result: Ok(()), .. }) = probed {
        return None;
    }
    if let Some((local, By::Address)) = config.local_dep(svc, dep) {
        let verdict = decide(config, obs, state, now, &local.name, memo);
        if !matches!(verdict, Verdict::Alive | Verdict::Unhealthy { .. }) {
            let label = if local.name == name {
                name.to_string()
            } else {
                format!("{name} = {}", local.name)
            };
            return local_unready(&label, verdict, now);
        }
    }
    match probed {
        Some(DepObs {
            target,
            result: Err(reason),
        }) => Some(if target == name {
            format!("{name} ({reason})")
        } else {
            format!("{name} {target} ({reason})")
        }),
        Some(DepObs { result: Ok(()), .. }) => None,
        None => Some(format!("{name} (not probed)")),
    }
}

/// What a dep on a local service (`name` as the dep shows it) waits on, from its verdict.
fn local_unready(name: &str, verdict: &Verdict, now: Unix) -> Option<String> {
    match verdict {
        Verdict::Alive => None,
        Verdict::Unhealthy { reason, .. } => Some(format!("{name} (unhealthy: {reason})")),
        Verdict::Start => Some(format!("{name} (dead, starting)")),
        Verdict::Restart { .. } => Some(format!("{name} (restarting)")),
        Verdict::Held(Hold::Deps { why }) => Some(elide(format!("{name} (dead) ← {why}"))),
        Verdict::Held(Hold::Grace { until }) => Some(format!(
            "{name} (starting, in grace for {} more)",
            secs(until - now)
        )),
        Verdict::Held(Hold::Backoff { until, .. }) => Some(format!(
            "{name} (dead, backed off for {} more)",
            secs(until - now)
        )),
        Verdict::Held(Hold::GaveUp { .. }) => {
            Some(format!("{name} (dead, autoheal gave up on it)"))
        }
        Verdict::Held(Hold::Starting) => Some(format!("{name} (starting: script running)")),
        Verdict::Held(h @ Hold::NotSignalled(_)) => {
            Some(format!("{name} (held: {})", h.describe(now)))
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

/// Records that a start's script returned at `finished`, with its outcome: grace and backoff
/// count from then, not from when it began (a script that takes 40 s must not be judged 30 s
/// after it began, or its service is started twice). Pure.
pub fn record_result(ss: &mut ServiceState, settings: &Settings, finished: Unix, result: String) {
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
mod tests;
