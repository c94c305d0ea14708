//! One tick: lock, load state, then observe → plan → act until every service is alive, nothing
//! more can change, or the converge budget is spent; the state is saved after every round of
//! starts, so a tick killed half-way still remembers what it started.

use crate::config::{Config, Service};
use crate::engine::{Hold, Note, Plan, Sick, Verdict, WaitOn, plan, record_result, record_start};
use crate::engine::{Observation, ServiceObs, StopTarget, Unsignallable};
use crate::event::{Event, StartFailure};
use crate::exec::{ScriptOutcome, ScriptSpec, run_script, run_script_with};
use crate::fmt::secs;
use crate::observe::{Ctx, Restarts, Scope, observe};
use crate::report::log::Log;
use crate::report::metrics;
use crate::report::words::{self, Reasons};
use crate::state::{self, LockOutcome, State, StateError};
use crate::time::Unix;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How a tick is run.
#[derive(Debug, Clone)]
pub struct TickOptions {
    pub state_dir: PathBuf,
    /// Decide and print; start nothing, write nothing.
    pub dry_run: bool,
    /// The Prometheus textfile to rewrite at the end of the tick (`report::metrics`).
    pub metrics_file: Option<PathBuf>,
    /// The config file loaded: `false` for a tick that heals with its last good version.
    pub config_valid: bool,
}

/// How a tick ended.
#[derive(Debug)]
pub enum TickOutcome {
    /// Another tick holds the lock; this one did nothing.
    LockedOut { holder: Option<u32> },
    /// The tick ran; `plan` is the last one, `now` its time.
    Done { plan: Plan, now: Unix },
}

/// The first wait between observations while a tick waits on a remote dep; see [`Schedule`].
pub const FIRST_INTERVAL: Duration = Duration::from_millis(250);
/// A tick goes on with the schedule of the ticks before it if they waited on a remote dep
/// until less than this ago (they run every minute); an older wait is another outage.
const RESUME_WITHIN: Duration = Duration::from_secs(600);

/// When a tick that waits on a remote dep looks again: after [`FIRST_INTERVAL`], each wait half
/// as long again as the one before, up to `settings.recheck_max`, each with ±20 % jitter, so
/// that a fleet of hosts waiting on one remote database probes it less and less often, and not
/// in step. What bench/fleet_model.rs drives, for the probe load it puts on that database.
#[derive(Debug, Clone)]
pub struct Schedule {
    next: Duration,
    max: Duration,
}

impl Schedule {
    pub fn new(max: Duration) -> Schedule {
        Schedule {
            next: FIRST_INTERVAL.min(max),
            max,
        }
    }

    /// The wait before the next look, jittered by `r` (uniform in [0, 1)); the one after grows.
    pub fn wait(&mut self, r: f64) -> Duration {
        let wait = self.next.mul_f64(0.8 + 0.4 * r.clamp(0.0, 1.0));
        self.next = self.next.mul_f64(1.5).min(self.max);
        wait
    }

    /// The schedule of a wait that began `waited` ago: its next wait is the one it had reached
    /// (a tick goes on where the one before it left off: see [`State::remote_wait_since`]).
    pub fn resumed(max: Duration, waited: Duration) -> Schedule {
        let mut s = Schedule::new(max);
        let mut spent = Duration::ZERO;
        while s.next < s.max && spent + s.next <= waited {
            spent += s.next;
            s.next = s.next.mul_f64(1.5).min(s.max);
        }
        s
    }

    /// From the first wait again: something changed (a script returned, a start was made).
    pub fn restart(&mut self) {
        self.next = FIRST_INTERVAL.min(self.max);
    }
}

/// Runs one tick.
pub fn run(
    config: &Arc<Config>,
    opts: &TickOptions,
    log: &mut Log,
) -> Result<TickOutcome, StateError> {
    let dir = &opts.state_dir;
    let began = Instant::now();
    // The lock lives as long as this binding: to the end of the tick, but for its alerts.
    let lock = if opts.dry_run {
        None
    } else {
        match state::try_lock(dir)? {
            LockOutcome::Acquired(lock) => Some(lock),
            LockOutcome::Held { by } => {
                let lock = dir.join(state::LOCK_FILE);
                log.emit(Event::LockHeld { pid: by, lock }, None);
                if let Some(path) = &opts.metrics_file {
                    let tick = metrics::TickLevel {
                        at: crate::time::now(),
                        locked_out: true,
                        config_valid: opts.config_valid,
                    };
                    if let Err(e) = metrics::write_tick_level(path, dir, &tick) {
                        log.emit(trouble(e), None);
                    }
                }
                return Ok(TickOutcome::LockedOut { holder: by });
            }
        }
    };
    let mut state = load_state(dir, opts.dry_run, log)?;
    for w in &config.warnings {
        let message = w.headline();
        log.emit(Event::Warning { message }, None);
    }

    let started_at = Instant::now();
    let budget = config.settings.converge;
    let max = config.settings.recheck_max;
    let waited = state
        .remote_wait_since
        .and_then(|t| Duration::try_from_secs_f64(crate::time::now() - t).ok())
        .filter(|w| *w < RESUME_WITHIN);
    let mut schedule = match waited {
        Some(waited) => Schedule::resumed(max, waited),
        None => Schedule::new(max),
    };
    let mut reported_up: BTreeSet<String> = BTreeSet::new();
    let mut running = Running::new();
    // Set once the tick is over but for the scripts it waited on: one last look, acting on
    // nothing, so that the tick ends on what is true now.
    let mut closing = false;
    loop {
        running.settle(Duration::ZERO, config, dir, &mut state, log)?;
        if !opts.dry_run
            && end_left_scripts(config, dir, &running, &mut state, crate::time::now(), log)
        {
            state::save(dir, &state)?;
        }
        let ctx = Ctx {
            state: &state,
            restarts: if opts.dry_run {
                Restarts::DryRun
            } else {
                Restarts::Allowed
            },
        };
        let looked = Instant::now();
        let mut obs = observe(config, Scope::Dead, &ctx);
        let look_took = looked.elapsed();
        obs.running = running.services.clone();
        for (chunk, message) in &obs.notes {
            let (chunk, message) = (chunk.clone(), message.clone());
            log.emit(Event::LuaLog { chunk, message }, None);
        }
        let now = crate::time::now();
        let p = plan(config, &obs, &state, now);
        let reasons = Reasons::new(config, &p.decisions, now);
        for note in &p.notes {
            let event = match note {
                Note::StartDied {
                    service,
                    after,
                    dead,
                } => Event::StartFailed {
                    service: service.clone(),
                    restart: false,
                    why: StartFailure::Died {
                        after: *after,
                        dead: dead.clone(),
                    },
                    log: script_log(dir, service),
                },
                n => Event::Plan(n.clone()),
            };
            log.emit(event, Some(&reasons));
        }
        log_up(&p, &running.started, &mut reported_up, now, log);
        state = p.state.clone();

        if opts.dry_run {
            for d in &p.decisions {
                let what =
                    match &d.verdict {
                        Verdict::Start => "would start: dead, deps ready".to_string(),
                        Verdict::Restart { why } => format!("would restart: {}", words::sick(why)),
                        v => reasons.verdict(v).unwrap_or_else(|| {
                            match p.state.paused.get(&d.service) {
                                Some(pause) => words::paused_alive(pause, now),
                                None => "alive".into(),
                            }
                        }),
                    };
                let service = d.service.clone();
                log.emit(Event::Would { service, what }, None);
            }
            return Ok(TickOutcome::Done { plan: p, now });
        }

        let starts = if closing { Vec::new() } else { p.starts() };
        if !starts.is_empty() {
            if let Err(e) = launch(config, &p, &obs, dir, &mut state, &mut running, log) {
                running.drain(config, dir, &mut state, log);
                return Err(e);
            }
            schedule.restart();
        }
        let elapsed = started_at.elapsed();
        let done = closing
            || p.all_well()
            || elapsed >= budget
            || (starts.is_empty()
                && !can_change(
                    config,
                    &obs,
                    &p,
                    now,
                    now + (budget - elapsed).as_secs_f64(),
                ));
        if done && !running.services.is_empty() {
            // The budget is spent or nothing else can change, but scripts still run: wait for
            // them (each is bounded by its `timeout`), record how they ended, and look once
            // more, acting on nothing. Done only because every service looked well while a
            // script still ran, with budget left: look again as any round does, for what the
            // script did to the end may have undone it (a daemon it started and that died).
            running.drain(config, dir, &mut state, log);
            state::save(dir, &state)?;
            closing = !p.all_well() || started_at.elapsed() >= budget;
            continue;
        }
        if done {
            if p.all_well() || waits_only_on_this_host(config, &p) {
                state.remote_wait_since = None;
            }
            state::save(dir, &state)?;
            for d in &p.decisions {
                let reason = match &d.verdict {
                    // Due, but this tick acts no more: the next one will.
                    Verdict::Start => Some(
                        "dead, deps ready; the next tick starts it (this tick's converge budget \
                         is spent)"
                            .to_string(),
                    ),
                    Verdict::Restart { why } => Some(format!(
                        "{}; the next tick restarts it (this tick's converge budget is spent)",
                        words::sick(why)
                    )),
                    // "still unhealthy: ..." says it already.
                    Verdict::Unhealthy { why, held } => Some(reasons.sick_held(why, held.as_ref())),
                    Verdict::Alive => {
                        // Alive, but paused: said every tick, lest the pause be forgotten.
                        if let Some(pause) = p.state.paused.get(&d.service) {
                            let (service, pause) = (d.service.clone(), pause.clone());
                            log.emit(Event::StillPaused { service, pause }, None);
                        }
                        None
                    }
                    v => reasons.verdict(v),
                };
                let dead = obs
                    .services
                    .get(&d.service)
                    .and_then(|o| o.alive.as_ref().err());
                if let Some(reason) = reason {
                    let reason = Reasons::with_death(&d.verdict, dead, reason);
                    log.emit(
                        Event::Still {
                            service: d.service.clone(),
                            state: crate::report::state_word(&d.verdict),
                            // An unhealthy service's process runs: it is not "down".
                            unhealthy: matches!(d.verdict, Verdict::Unhealthy { .. }),
                            reason,
                        },
                        None,
                    );
                }
            }
            let before = (state.alerts.clone(), state.config_alerts.clone());
            let alerts =
                crate::notify::due(config, &p, &mut state, &log.emitted, now, opts.config_valid);
            if (&state.alerts, &state.config_alerts) != (&before.0, &before.1) {
                state::save(dir, &state)?;
            }
            if let Some(path) = &opts.metrics_file {
                // Under the tick lock, from what `status` would show of this last look.
                let report = crate::report::status(config, &obs, &p, &state, now);
                let tick = metrics::TickLevel {
                    at: crate::time::now(),
                    locked_out: false,
                    config_valid: opts.config_valid,
                };
                let text = metrics::render(&report, &tick, began.elapsed());
                if let Err(e) = metrics::write(path, dir, &text) {
                    log.emit(trouble(e), None);
                }
            }
            // Last, without the lock: every start is made and the state saved whatever the
            // hooks do, and a hook that hangs keeps no other tick from healing.
            drop(lock);
            for said in crate::notify::send(config, &alerts, dir, now) {
                log.emit(said, None);
            }
            return Ok(TickOutcome::Done { plan: p, now });
        }
        // Wait for the next look; a script that returns meanwhile ends the wait: its service
        // may already be up.
        // Waiting only on this host for something coming up, it looks again soon: each level
        // of a local chain is noticed as it comes up, not on the growing schedule meant for
        // remote targets (and never spends more than a third of its time looking).
        let local = waits_only_on_this_host(config, &p);
        let wait = if local && coming_up(config, &obs, &state, &p, now) {
            crate::defaults::LOCAL_RECHECK.max(look_took * 2)
        } else {
            if !local {
                state.remote_wait_since.get_or_insert(now);
            }
            schedule.wait(random_unit())
        };
        if running.settle(wait.min(budget - elapsed), config, dir, &mut state, log)? > 0 {
            schedule.restart();
        }
    }
}

/// The alerts of a `run` that heals nothing (its config does not load and may not be healed
/// with its last good version): `config_invalid`, once, through the hooks of `config` (that
/// last good version). Under the tick lock; a tick that holds it alerts instead.
pub fn alert_only(config: &Arc<Config>, dir: &Path, log: &mut Log) -> Result<(), StateError> {
    let LockOutcome::Acquired(lock) = state::try_lock(dir)? else {
        return Ok(());
    };
    let mut state = load_state(dir, false, log)?;
    let now = crate::time::now();
    let none = Plan {
        decisions: Vec::new(),
        state: state.clone(),
        notes: Vec::new(),
    };
    let alerts = crate::notify::due(config, &none, &mut state, &log.emitted, now, false);
    if !alerts.is_empty() {
        state::save(dir, &state)?;
    }
    drop(lock);
    for said in crate::notify::send(config, &alerts, dir, now) {
        log.emit(said, None);
    }
    Ok(())
}

/// Whether any hold may lift before `deadline`. A service held on its deps can change only
/// if one of the deps that holds it can: a remote one (it may come up any moment), or a local
/// one whose own verdict can change. One held only by local services that gave up, are
/// backed off past the deadline or may not be signalled waits for nothing in this tick.
fn can_change(config: &Config, obs: &Observation, p: &Plan, now: Unix, deadline: Unix) -> bool {
    let verdicts: BTreeMap<&str, &Verdict> = p
        .decisions
        .iter()
        .map(|d| (d.service.as_str(), &d.verdict))
        .collect();
    let mut seen = BTreeSet::new();
    p.decisions
        .iter()
        .any(|d| verdict_can_change(config, obs, &verdicts, &d.service, now, deadline, &mut seen))
}

fn verdict_can_change<'a>(
    config: &'a Config,
    obs: &Observation,
    verdicts: &BTreeMap<&str, &Verdict>,
    name: &'a str,
    now: Unix,
    deadline: Unix,
    seen: &mut BTreeSet<&'a str>,
) -> bool {
    let lifts = |h: &Hold| h.lifts_at(now).is_some_and(|t| t < deadline);
    match verdicts.get(name) {
        Some(Verdict::Held(Hold::Deps { .. })) => {
            // Each service is followed once: the local graph has no cycle, and a chain of
            // thousands of services costs one visit each.
            if !seen.insert(name) {
                return false;
            }
            let Some(svc) = config.service(name) else {
                return true;
            };
            let o = obs.services.get(name);
            svc.deps.iter().any(|dep| match dep {
                crate::config::Dep::Service { name: d } => {
                    !matches!(verdicts.get(d.as_str()), Some(Verdict::Alive))
                        && verdict_can_change(config, obs, verdicts, d, now, deadline, seen)
                }
                other => o
                    .and_then(|o| o.deps.get(other.name()))
                    .is_none_or(|r| r.result.is_err()),
            })
        }
        Some(Verdict::Held(h)) => lifts(h),
        Some(Verdict::Start | Verdict::Restart { .. }) => true,
        // An unhealthy service may recover by itself (and its dependents with it), and its
        // failure count goes on; unless its due restart is held past the deadline.
        Some(Verdict::Unhealthy { held, .. }) => held.as_ref().is_none_or(lifts),
        Some(Verdict::Alive) => false,
        None => false,
    }
}

/// A number in [0, 1), from the process's random hasher seed: enough to keep hosts out of step.
fn random_unit() -> f64 {
    (RandomState::new().hash_one(Instant::now()) % 1000) as f64 / 1000.0
}

/// Whether a service that is not alive and well is coming up: its start is due or its script
/// runs, or it was started (by autoheal or not) within its grace. A service unhealthy for
/// longer, or held by a backoff, is not: the tick looks at it on the growing schedule.
fn coming_up(config: &Config, obs: &Observation, state: &State, p: &Plan, now: Unix) -> bool {
    p.decisions.iter().any(|d| {
        let Some(svc) = config.service(&d.service) else {
            return false;
        };
        let grace = svc.grace.as_secs_f64();
        let recent = |t: Option<Unix>| t.is_some_and(|t| now < t + grace);
        match &d.verdict {
            Verdict::Alive => false,
            Verdict::Start | Verdict::Restart { .. } | Verdict::Held(Hold::Starting) => true,
            _ => {
                recent(state.services.get(&d.service).and_then(|s| s.last_start))
                    || recent(obs.services.get(&d.service).and_then(|o| o.started))
            }
        }
    })
}

/// Whether all the tick waits on is on this host: local services (by name or at their
/// `health:` address), probes of loopback addresses, grace, a running script. A lua dep or a
/// probe of another host is remote.
fn waits_only_on_this_host(config: &Config, p: &Plan) -> bool {
    p.decisions.iter().all(|d| {
        let waits = match &d.verdict {
            Verdict::Held(Hold::Deps { waits })
            | Verdict::Unhealthy {
                held: Some(Hold::Deps { waits }),
                ..
            } => waits,
            _ => return true,
        };
        let svc = config.service(&d.service);
        waits.iter().all(|w| match &w.on {
            WaitOn::Service { .. } => true,
            WaitOn::Probe { .. } | WaitOn::NotProbed => svc
                .and_then(|s| s.deps.iter().find(|dep| dep.name() == w.dep))
                .and_then(crate::config::Addr::of_dep)
                .is_some_and(|a| a.is_loopback()),
        })
    })
}

/// A script that returned, for the log and the state.
struct Finished {
    service: String,
    /// Why it was restarted (`None`: a start of a dead service) and what stopping it did.
    restart: Option<(Sick, String)>,
    /// Why it was dead, for the log line of a start.
    was: String,
    outcome: ScriptOutcome,
    at: Unix,
}

/// What a script's thread tells the tick.
enum Msg {
    /// Its `sh` runs: the leader of its own session, marked (None if it was gone already).
    Launched {
        service: String,
        session: Option<crate::state::ProcId>,
    },
    Finished(Finished),
}

/// Scripts launched and not yet returned. They run on their own threads, so that a slow or
/// hung script (killed only at its `timeout`) holds back nothing but its own service and its
/// dependents: the tick goes on observing and starting the others.
struct Running {
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    /// Scripts whose `sh` runs, not yet recorded in the state (service, its session leader).
    launched: Vec<(String, Option<crate::state::ProcId>)>,
    /// Services whose script runs now.
    services: BTreeSet<String>,
    /// Services whose script returned in this tick, and when it began (for "up, N after its
    /// start").
    started: BTreeMap<String, Unix>,
}

impl Running {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Running {
            tx,
            rx,
            launched: Vec::new(),
            services: BTreeSet::new(),
            started: BTreeMap::new(),
        }
    }

    /// Waits up to `wait` for a script to be launched or to return, then takes every message
    /// there is: the launched ones into [`Running::launched`], the returned ones returned.
    fn collect(&mut self, wait: Duration) -> Vec<Finished> {
        let mut msgs = Vec::new();
        if self.services.is_empty() {
            std::thread::sleep(wait);
        } else if let Ok(m) = self.rx.recv_timeout(wait) {
            msgs.push(m);
        }
        msgs.extend(self.rx.try_iter());
        let mut done = Vec::new();
        for m in msgs {
            match m {
                Msg::Launched { service, session } => self.launched.push((service, session)),
                Msg::Finished(f) => {
                    self.services.remove(&f.service);
                    done.push(f);
                }
            }
        }
        done
    }

    /// Records in the state the session of every script launched since the last call, so that
    /// a tick killed from now on leaves the next one what it needs to end that script at its
    /// deadline. Whether there was any.
    fn note_launched(&mut self, state: &mut State) -> bool {
        let launched = std::mem::take(&mut self.launched);
        for (service, session) in &launched {
            if let Some(ss) = state.services.get_mut(service)
                && ss.script_until.is_some()
            {
                ss.script_session = session.clone();
            }
        }
        !launched.is_empty()
    }

    /// Waits up to `wait` for scripts to return, records each (state, log) and saves the
    /// state; how many returned. When the state cannot be saved the tick ends, but only once
    /// every script it started has returned (none is left behind unwatched).
    fn settle(
        &mut self,
        wait: Duration,
        config: &Config,
        dir: &Path,
        state: &mut State,
        log: &mut Log,
    ) -> Result<usize, StateError> {
        let done = self.collect(wait);
        let n = done.len();
        let launched = self.note_launched(state);
        if n > 0 || launched {
            self.record(config, dir, done, state, log);
            state::save(dir, state).inspect_err(|_| {
                self.drain(config, dir, state, log);
                let _ = state::save(dir, state);
            })?;
        }
        Ok(n)
    }

    /// Waits for every running script (each bounded by its `timeout`) and records how it
    /// ended.
    fn drain(&mut self, config: &Config, dir: &Path, state: &mut State, log: &mut Log) {
        while !self.services.is_empty() {
            let done = self.collect(Duration::from_secs(1));
            // Saved at once: the tick may be killed while it waits here. A state that cannot
            // be saved is said by the caller's next save.
            if self.note_launched(state) {
                let _ = state::save(dir, state);
            }
            self.record(config, dir, done, state, log);
        }
    }

    /// Records the outcome of each returned script (grace and backoff count from its return)
    /// and logs it.
    fn record(
        &mut self,
        config: &Config,
        dir: &Path,
        done: Vec<Finished>,
        state: &mut State,
        log: &mut Log,
    ) {
        for f in done {
            let ss = state.services.entry(f.service.clone()).or_default();
            let began = ss.last_start.unwrap_or(f.at);
            let (outcome, ok) = (f.outcome.describe(), f.outcome.success());
            record_result(ss, &config.settings, f.at, outcome.clone(), ok);
            self.started.insert(f.service.clone(), began);
            let service = f.service;
            let event = match (ok, f.restart) {
                (true, None) => Event::Started {
                    service,
                    was: f.was,
                    outcome,
                },
                (true, Some((why, stopped))) => Event::Restarted {
                    service,
                    why,
                    stopped,
                    outcome,
                },
                (false, restart) => Event::StartFailed {
                    log: script_log(dir, &service),
                    service,
                    restart: restart.is_some(),
                    why: StartFailure::Script {
                        outcome,
                        context: match restart {
                            Some((why, stopped)) => format!("{}; {stopped}", words::sick(&why)),
                            None => format!("was dead ({}), deps ready", f.was),
                        },
                    },
                },
            };
            log.emit(event, None);
        }
    }
}

/// Launches the scripts of every service to start, each on its own thread (stopping first
/// those to restart), after recording each start in the state file: a state that cannot be
/// saved starts nothing (without it, grace and backoff would be forgotten and every tick would
/// start the service again).
fn launch(
    config: &Config,
    p: &Plan,
    obs: &Observation,
    dir: &Path,
    state: &mut State,
    running: &mut Running,
    log: &mut Log,
) -> Result<(), StateError> {
    let cwd = config
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let spec = |svc: &Service, command: &str| ScriptSpec {
        service: svc.name.clone(),
        command: command.to_string(),
        user: svc.user.clone(),
        timeout: svc.timeout,
        log_path: script_log(dir, &svc.name),
        env: svc
            .env
            .iter()
            .cloned()
            .chain([(
                "AUTOHEAL_CONFIG".into(),
                config.absolute_path().display().to_string(),
            )])
            .collect(),
        cwd: cwd.clone(),
    };
    let jobs: Vec<(&Service, Option<&Sick>, &ServiceObs)> = p
        .decisions
        .iter()
        .filter_map(|d| {
            let svc = config.service(&d.service)?;
            let o = obs.services.get(&d.service)?;
            match &d.verdict {
                Verdict::Start => Some((svc, None, o)),
                Verdict::Restart { why } => Some((svc, Some(why), o)),
                _ => None,
            }
        })
        .collect();
    let at = crate::time::now();
    for (svc, _, _) in &jobs {
        let ss = state.services.entry(svc.name.clone()).or_default();
        record_start(ss, &config.settings, at, LAUNCHED.into());
        ss.script_until = Some(at + svc.timeout.as_secs_f64());
        ss.script_session = None;
    }
    if let Err(e) = state::save(dir, state) {
        for (svc, _, _) in &jobs {
            let service = svc.name.clone();
            log.emit(Event::NotStarted { service }, None);
        }
        return Err(e);
    }
    for (svc, restart, o) in jobs {
        let script = spec(svc, &svc.script);
        let stop_spec = svc.stop.as_ref().map(|cmd| spec(svc, cmd));
        let target = o.stop.clone();
        let restart = restart.cloned();
        let was = o.alive.clone().err().unwrap_or_default();
        let service = svc.name.clone();
        let tx = running.tx.clone();
        running.services.insert(service.clone());
        std::thread::spawn(move || {
            // The tick waits for every script it launched: a bug that panicked this thread
            // must still say how its script ended, or the tick would wait for ever.
            let work = std::panic::AssertUnwindSafe(|| {
                let restart = restart.map(|why| (why, stop(stop_spec.as_ref(), target)));
                let outcome = run_script_with(&script, |pid| {
                    // Marked here, before `sh` can be reaped (by this thread, later): its pid
                    // cannot belong to another process yet.
                    let _ = tx.send(Msg::Launched {
                        service: service.clone(),
                        session: crate::procs::proc_id(pid),
                    });
                });
                (restart, outcome)
            });
            let (restart, outcome) = std::panic::catch_unwind(work).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let reason = format!("autoheal failed while starting it (a bug: {what})");
                (None, ScriptOutcome::SpawnFailed { reason })
            });
            let _ = tx.send(Msg::Finished(Finished {
                service,
                restart,
                was,
                outcome,
                at: crate::time::now(),
            }));
        });
    }
    Ok(())
}

/// Scripts that a tick which was killed (or lost power) launched and never saw return: each is
/// recorded in the state with its deadline and its session. One whose `sh` has returned is
/// cleared (its `last_result` says so instead of "script running"); one still running past its
/// deadline is killed, its whole session, as the tick that launched it would have done at its
/// `timeout`, and counts as a failed start. Only then may the service be started again: at
/// most one start script of a service ever runs. One still within its deadline keeps holding
/// its service (`starting`). Whether the state changed.
fn end_left_scripts(
    config: &Config,
    dir: &Path,
    running: &Running,
    state: &mut State,
    now: Unix,
    log: &mut Log,
) -> bool {
    use crate::procs::session_members;
    let mut changed = false;
    for (name, ss) in state.services.iter_mut() {
        let (Some(until), false) = (ss.script_until, running.services.contains(name)) else {
            continue;
        };
        let members = ss
            .script_session
            .as_ref()
            .map(session_members)
            .unwrap_or_default();
        let leader = ss.script_session.as_ref().map(|s| s.pid);
        if members.is_empty() && (leader.is_some() || now >= until) {
            // Over: its `sh` returned while no tick watched (or, with no session recorded, its
            // time is up).
            ss.script_until = None;
            ss.script_session = None;
            if ss.last_result.as_deref() == Some(LAUNCHED) {
                ss.last_result = Some(
                    "ended while no tick watched it (the tick that launched it was interrupted)"
                        .into(),
                );
            }
            changed = true;
        } else if !members.is_empty() && now >= until {
            let limit = config
                .service(name)
                .map(|s| secs(s.timeout.as_secs_f64()))
                .unwrap_or_else(|| "?".into());
            let how = end_session(&members, leader.unwrap_or_default());
            let result =
                format!("killed after timeout {limit} (left running by an interrupted tick)");
            log.emit(
                Event::StartFailed {
                    service: name.clone(),
                    restart: false,
                    why: StartFailure::LeftRunning {
                        session: leader.unwrap_or_default(),
                        timeout: limit,
                        how,
                    },
                    log: script_log(dir, name),
                },
                None,
            );
            record_result(ss, &config.settings, now, result, false);
            changed = true;
        }
    }
    changed
}

/// SIGTERM to every member of a script's session, up to [`crate::exec::TERM_GRACE`] for them
/// to exit, then SIGKILL to those left: what [`run_script`] does at a script's timeout.
fn end_session(members: &[u32], leader: u32) -> String {
    use rustix::process::{Pid, Signal, kill_process};
    let signal = |pids: &[u32], sig| {
        for pid in pids {
            if let Some(p) = i32::try_from(*pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(p, sig);
            }
        }
    };
    signal(members, Signal::TERM);
    let left = || {
        members
            .iter()
            .copied()
            .filter(|p| crate::exec::running(*p))
            .collect::<Vec<_>>()
    };
    let end = Instant::now() + crate::exec::TERM_GRACE;
    while Instant::now() < end && !left().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rest = left();
    if rest.is_empty() {
        format!("{} processes ended on SIGTERM", members.len())
    } else {
        signal(&rest, Signal::KILL);
        format!(
            "{} processes got SIGTERM, {} of them SIGKILL (leader {leader})",
            members.len(),
            rest.len()
        )
    }
}

/// The `last_result` of a start whose script runs.
const LAUNCHED: &str = "script running";

/// Stops a service before its restart: its `stop:` command, then its process if still
/// running. The process is the one observed (`target`, re-checked right before each signal);
/// one autoheal must not signal is not signalled (without a `stop:` the plan does not restart
/// such a service at all).
fn stop(stop: Option<&ScriptSpec>, target: Option<Result<StopTarget, Unsignallable>>) -> String {
    let mut said = Vec::new();
    if let Some(spec) = stop {
        said.push(format!("stop command {}", run_script(spec).describe()));
    }
    match target {
        Some(Ok(t)) if stop.is_none() || crate::exec::running(t.pid) => {
            said.push(crate::exec::stop_process(
                t.pid,
                t.start_ticks,
                crate::defaults::STOP_TIMEOUT,
            ));
        }
        Some(Err(why)) if stop.is_some() => {
            said.push(format!(
                "its process not signalled: {}",
                words::unsignallable(&why)
            ));
        }
        _ => {}
    }
    if said.is_empty() {
        "nothing to stop".into()
    } else {
        said.join(", ")
    }
}

/// `<state_dir>/logs/<service>.log`: where a service's script output goes.
pub fn script_log(dir: &Path, service: &str) -> PathBuf {
    dir.join("logs").join(format!("{service}.log"))
}

/// Services that came up after a start this tick (each said once).
fn log_up(
    p: &Plan,
    started: &BTreeMap<String, Unix>,
    reported_up: &mut BTreeSet<String>,
    now: Unix,
    log: &mut Log,
) {
    for d in &p.decisions {
        if let (Verdict::Alive, Some(at)) = (&d.verdict, started.get(&d.service))
            && reported_up.insert(d.service.clone())
        {
            let (service, after) = (d.service.clone(), now - at);
            log.emit(Event::Up { service, after }, None);
        }
    }
}

/// Something autoheal could not do, for the log.
fn trouble(e: impl std::fmt::Display) -> Event {
    Event::Trouble {
        message: e.to_string(),
    }
}

fn load_state(dir: &Path, dry_run: bool, log: &mut Log) -> Result<State, StateError> {
    let (s, warning) = if dry_run {
        state::peek(dir)
    } else {
        state::load(dir)?
    };
    if let Some(message) = warning {
        log.emit(Event::StateSetAside { message }, None);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Decision;

    fn plan_of(verdicts: &[(&str, Verdict)]) -> Plan {
        Plan {
            decisions: verdicts
                .iter()
                .map(|(s, v)| Decision {
                    service: s.to_string(),
                    verdict: v.clone(),
                })
                .collect(),
            state: State::default(),
            notes: Vec::new(),
        }
    }

    fn cfg(yaml: &str) -> Config {
        crate::config::load_str(yaml, Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn a_tick_stops_waiting_when_nothing_can_change_before_its_deadline() {
        let (now, deadline) = (100.0, 150.0);
        let c = cfg("a:\n  pname: a\n  script: x\n");
        let obs = Observation::default();
        let one = |v: Verdict| can_change(&c, &obs, &plan_of(&[("a", v)]), now, deadline);
        let unhealthy = |held| Verdict::Unhealthy {
            why: Sick::Health {
                error: "HTTP 503".into(),
                count: 1,
                due: true,
            },
            held,
        };
        assert!(one(unhealthy(None)), "still counting");
        let backoff = |until| Hold::Backoff { until, failures: 3 };
        assert!(!one(unhealthy(Some(backoff(900.0)))));
        assert!(one(unhealthy(Some(backoff(120.0)))));
        assert!(!one(Verdict::Held(backoff(900.0))));
        assert!(!one(Verdict::Held(Hold::GaveUp { failures: 9 })));
        assert!(!one(Verdict::Alive));
    }

    #[test]
    fn a_service_held_only_by_a_dep_that_gave_up_waits_for_nothing() {
        let (now, deadline) = (100.0, 150.0);
        let c = cfg(
            "db:\n  pname: db\n  script: x\napi:\n  pname: api\n  dep: [{name: db}]\n  \
             script: y\nweb:\n  pname: web\n  dep: [{name: api}, {name: ext, host: 10.0.0.9, \
             port: 80}]\n  script: z\n",
        );
        let deps = || {
            Verdict::Held(Hold::Deps {
                waits: vec![crate::engine::Wait {
                    dep: "db".into(),
                    on: crate::engine::WaitOn::Service { name: "db".into() },
                }],
            })
        };
        let gave_up = Verdict::Held(Hold::GaveUp { failures: 10 });
        let mut obs = Observation::default();
        let mut web = crate::engine::ServiceObs {
            alive: Err("dead".into()),
            started: None,
            health: None,
            deps: Default::default(),
            stop: None,
            check_error: false,
            pid_file_process: None,
        };
        web.deps.insert(
            "ext".into(),
            crate::engine::DepObs {
                target: "10.0.0.9:80".into(),
                result: Ok(()),
            },
        );
        obs.services.insert("web".into(), web.clone());
        let plan = plan_of(&[("db", gave_up.clone()), ("api", deps()), ("web", deps())]);
        assert!(
            !can_change(&c, &obs, &plan, now, deadline),
            "db gave up: the chain waits for nothing"
        );
        // A remote dep that is down may come up: worth waiting for.
        web.deps.get_mut("ext").unwrap().result = Err(crate::probe::ProbeError::new(
            crate::probe::How::Refused,
            "connection refused",
        ));
        obs.services.insert("web".into(), web);
        assert!(can_change(&c, &obs, &plan, now, deadline));
        // A local dep that is only in grace lifts before the deadline.
        let obs = Observation::default();
        let graced = Verdict::Held(Hold::Grace { until: 120.0 });
        let plan = plan_of(&[("db", graced), ("api", deps())]);
        assert!(can_change(&c, &obs, &plan, now, deadline));
    }

    #[test]
    fn the_schedule_grows_by_half_up_to_its_cap_jittered_by_a_fifth() {
        let mut s = Schedule::new(Duration::from_secs(2));
        let waits: Vec<u128> = (0..8).map(|_| s.wait(0.5).as_millis()).collect();
        assert_eq!(waits, [250, 375, 562, 843, 1265, 1898, 2000, 2000]);
        assert_eq!(s.wait(0.0), Duration::from_millis(1600));
        assert_eq!(s.wait(1.0), Duration::from_millis(2400));
        s.restart();
        assert_eq!(s.wait(0.5), Duration::from_millis(250));
        // A wait that began 3.5 s ago goes on at the wait it had reached.
        let mut s = Schedule::resumed(Duration::from_secs(2), Duration::from_millis(3500));
        assert_eq!(s.wait(0.5).as_millis(), 1898);
        let mut s = Schedule::resumed(Duration::from_secs(2), Duration::from_secs(600));
        assert_eq!(s.wait(0.5).as_millis(), 2000);
        let mut s = Schedule::resumed(Duration::from_secs(2), Duration::ZERO);
        assert_eq!(s.wait(0.5).as_millis(), 250);
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn only_a_service_coming_up_makes_a_tick_look_often() {
        let c = cfg("a:\n  pname: a\n  grace: 30s\n  script: x\n");
        let now = 1000.0;
        let sick = Verdict::Unhealthy {
            why: Sick::Health {
                error: "warming".into(),
                count: 1,
                due: false,
            },
            held: None,
        };
        let p = plan_of(&[("a", sick)]);
        let mut st = State::default();
        let obs = Observation::default();
        // Unhealthy for long, never started by autoheal: not coming up.
        assert!(!coming_up(&c, &obs, &st, &p, now));
        // Started 10 s ago, within its 30 s grace: coming up.
        st.services.entry("a".into()).or_default().last_start = Some(now - 10.0);
        assert!(coming_up(&c, &obs, &st, &p, now));
        assert!(!coming_up(&c, &obs, &st, &p, now + 25.0));
        let backoff = Verdict::Held(Hold::Backoff {
            until: now + 60.0,
            failures: 3,
        });
        assert!(!coming_up(
            &c,
            &obs,
            &State::default(),
            &plan_of(&[("a", backoff)]),
            now
        ));
        assert!(coming_up(
            &c,
            &obs,
            &State::default(),
            &plan_of(&[("a", Verdict::Start)]),
            now
        ));
    }

    #[test]
    fn only_local_waits_and_loopback_probes_are_this_hosts() {
        let c = cfg(
            "db:\n  pname: db\n  script: x\nlocal:\n  pname: l\n  dep: [{name: db}, {name: \
             cache, host: 127.0.0.1, port: 6379}]\n  script: y\nfar:\n  pname: f\n  dep: \
             [{name: ext, host: 10.0.0.9, port: 80}]\n  script: z\n",
        );
        let wait = |dep: &str, on| crate::engine::Wait {
            dep: dep.into(),
            on,
        };
        let refused = || crate::engine::WaitOn::Probe {
            target: "x".into(),
            error: crate::probe::ProbeError::new(crate::probe::How::Refused, "refused"),
        };
        let local = Verdict::Held(Hold::Deps {
            waits: vec![
                wait("db", crate::engine::WaitOn::Service { name: "db".into() }),
                wait("cache", refused()),
            ],
        });
        let far = Verdict::Held(Hold::Deps {
            waits: vec![wait("ext", refused())],
        });
        let grace = Verdict::Held(Hold::Grace { until: 1.0 });
        assert!(waits_only_on_this_host(
            &c,
            &plan_of(&[("db", grace), ("local", local.clone())])
        ));
        assert!(!waits_only_on_this_host(
            &c,
            &plan_of(&[("local", local), ("far", far)])
        ));
    }
}
