//! Observing: reading the world as one tick needs it, and nothing else.
//!
//! Owns the process table ([`procs`]: one `/proc` snapshot per observation, liveness by
//! `pname` or `pid_file`, by the processes of root and the service's account), which process a
//! restart may signal ([`signal`]: the rules, judged here and carried to the plan as data), the
//! tcp/http readiness probes ([`probe`], bounded, run in parallel) and the running of Lua
//! checks. The same probe functions are reached from the
//! YAML deps and from the Lua host.
//!
//! What it must not do: act. Nothing here restarts, signals or kills a process, runs a
//! service's script, or writes state; it returns facts (with short, operator-readable reasons)
//! for `engine::plan` to decide on.

mod ctx;
mod targets;
mod world;

pub use ctx::{Ctx, Restarts};

use crate::config::{Config, Dep, Liveness, LuaChunk, Service};
use crate::engine::{DepObs, Observation, ServiceObs, StopTarget, Unsignallable};
use crate::lua::Failure;
use crate::pattern::Pattern;
use crate::probe::{self, Target};
use crate::procs::signal::{self, Candidate, FromFile, Meta, Writers};
use crate::procs::{self, Account, ProcTable};
use crate::state::ProcId;
use ctx::lock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use targets::{dep_target, health_target};

/// What to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A healing tick: the deps of every service that may be started or restarted: the dead
    /// ones, and the alive ones with `check:`, `health:` or `restart_on_dep_restart` (their
    /// restart passes the same gate). The deps of other alive services decide nothing.
    Dead,
    /// `status`: every dep of every service.
    All,
}

/// Lua chunks run at most this many at once.
pub const LUA_WORKERS: usize = 16;

/// One observation: one process-table snapshot, then every needed probe, Lua dep and health
/// check in parallel, each bounded by its own timeout.
pub fn observe(config: &Arc<Config>, scope: Scope, ctx: &Ctx<'_>) -> Observation {
    let table = ProcTable::snapshot_with(&config.pnames);
    let mut alive = Vec::new();
    let mut started = Vec::new();
    let mut extra = Vec::new();
    // Which process a restart would stop matters only where a restart of an alive service
    // can happen: health, check, dependents that follow, or any Lua (restart()).
    let any_lua = config
        .services
        .iter()
        .any(|s| s.check.is_some() || s.deps.iter().any(|d| matches!(d, Dep::Lua { .. })));
    let mut accounts: HashMap<Option<&str>, Account> = HashMap::new();
    let dirs = crate::trust::Dirs::default();
    for s in &config.services {
        let restartable =
            any_lua || s.health.is_some() || s.check.is_some() || s.restart_on_dep_restart;
        let known = ctx
            .state
            .services
            .get(&s.name)
            .and_then(|ss| ss.pid_file_process.as_ref());
        let account = accounts
            .entry(s.account())
            .or_insert_with(|| account(s.account()));
        let (a, t, x) = liveness(&table, &s.liveness, restartable, known, account, &dirs);
        alive.push(a);
        started.push(t);
        extra.push(x);
    }

    // Everything to probe or run. Probes are deduplicated by `probe_all`: many services may
    // wait on one database.
    let mut targets: Vec<(Target, Duration)> = Vec::new();
    let mut chunks: Vec<LuaJob<'_>> = Vec::new();
    for (i, svc) in config.services.iter().enumerate() {
        if let (Ok(_), Some(check)) = (&alive[i], &svc.check) {
            chunks.push((i, None, check, svc.check_timeout));
        }
        if let (Ok(_), Some(h)) = (&alive[i], &svc.health) {
            targets.push(health_target(h));
        }
        if !needs_deps(scope, svc, &alive[i]) {
            continue;
        }
        for (name, chunk, timeout) in lua_deps(svc) {
            chunks.push((i, Some(name), chunk, timeout));
        }
        targets.extend(svc.deps.iter().filter_map(dep_target));
    }
    let probes_end = targets.iter().map(|(_, t)| *t).max().unwrap_or_default();
    // The chunks' world shares the config: their threads may outlive this call.
    let shared = (!chunks.is_empty()).then(|| Arc::clone(config));
    let world = shared.as_ref().map(|c| {
        Arc::new(world::TickWorld::new(
            c.clone(),
            ctx,
            &alive,
            &started,
            probes_end,
        ))
    });
    let (probed, ran) = std::thread::scope(|s| {
        let probes = s.spawn(|| {
            let probed = probe::probe_all(&targets, crate::defaults::PROBE_WORKERS);
            // What `restart()` needs to judge the gate: everything but the Lua results (only
            // chunks can call it, so without chunks there is nothing to publish).
            if let Some(world) = &world {
                let live = (&alive[..], &started[..], &extra[..]);
                world.publish(assemble(config, scope, live, &probed, &[]));
            }
            probed
        });
        let results = match (&shared, &world) {
            (Some(shared), Some(world)) => {
                let jobs = chunks
                    .iter()
                    .map(|(_, _, chunk, timeout)| ((*chunk).clone(), *timeout))
                    .collect();
                run_chunks(shared.clone(), jobs, world.clone(), LUA_WORKERS)
            }
            _ => Vec::new(),
        };
        let ran: Vec<LuaResult<'_>> = chunks
            .iter()
            .zip(results)
            .map(|((i, dep, _, _), result)| (*i, *dep, result))
            .collect();
        (probes.join().unwrap_or_default(), ran)
    });
    let mut ran = ran;
    if let (Some(shared), Some(world)) = (&shared, &world) {
        // A restart a chunk asked for is judged by the plan with every dep of the service;
        // the Lua deps of an alive service were not run above: run them now.
        let asked = world.requested();
        let mut extra: Vec<LuaJob<'_>> = Vec::new();
        for (i, svc) in config.services.iter().enumerate() {
            if !asked.contains(&svc.name) {
                continue;
            }
            for (name, chunk, timeout) in lua_deps(svc) {
                if !chunks
                    .iter()
                    .any(|(j, d, _, _)| *j == i && *d == Some(name))
                {
                    extra.push((i, Some(name), chunk, timeout));
                }
            }
        }
        if !extra.is_empty() {
            let jobs = extra
                .iter()
                .map(|(_, _, c, t)| ((*c).clone(), *t))
                .collect();
            let results = run_chunks(shared.clone(), jobs, world.clone(), LUA_WORKERS);
            ran.extend(
                extra
                    .iter()
                    .zip(results)
                    .map(|((i, dep, _, _), result)| (*i, *dep, result)),
            );
        }
    }
    let live = (&alive[..], &started[..], &extra[..]);
    let mut obs = assemble(config, scope, live, &probed, &ran);
    if let Some(world) = world {
        let left = world.finish();
        for (service, dep, result) in left.extra {
            if let Some(o) = obs.services.get_mut(&service) {
                o.deps.entry(dep).or_insert(result);
            }
        }
        obs.requested = left.requests;
        obs.notes = left.notes;
    }
    obs
}

type LuaResult<'a> = (usize, Option<&'a str>, Result<(), Failure>);

/// A chunk to run: (service index, dep name or `None` for its `check:`, chunk, time limit).
type LuaJob<'a> = (usize, Option<&'a str>, &'a LuaChunk, Duration);

/// Liveness of every service, in config order: alive or why not, when its process started,
/// why its process to stop is ambiguous (see [`liveness`]).
type Live<'a> = (
    &'a [Result<Option<u32>, String>],
    &'a [Option<f64>],
    &'a [Extra],
);

/// The observation from liveness, probe results and Lua results.
fn assemble(
    config: &Config,
    scope: Scope,
    (alive, started, extra): Live<'_>,
    probed: &HashMap<Target, probe::ProbeResult>,
    lua: &[LuaResult<'_>],
) -> Observation {
    let mut services: Vec<ServiceObs> = alive
        .iter()
        .zip(started)
        .zip(extra)
        .map(|((alive, started), extra)| ServiceObs {
            alive: alive.clone(),
            started: *started,
            health: None,
            deps: Default::default(),
            stop: extra.stop.clone(),
            pid_file_process: extra.pid_file_process.clone(),
            check_error: false,
        })
        .collect();
    let result_of = |target: &Target| {
        probed
            .get(target)
            .cloned()
            .unwrap_or_else(|| Err(probe::ProbeError::not_probed()))
    };
    for (i, svc) in config.services.iter().enumerate() {
        // Health: the `health:` probe, and `check:` below; both must pass.
        if let (Ok(_), Some(h)) = (&services[i].alive, &svc.health) {
            let (target, _) = health_target(h);
            services[i].health =
                Some(result_of(&target).map_err(|e| format!("health {target}: {e}")));
        }
        if !needs_deps(scope, svc, &services[i].alive) {
            continue;
        }
        for dep in &svc.deps {
            let Some((target, _)) = dep_target(dep) else {
                continue;
            };
            services[i].deps.insert(
                dep.name().to_string(),
                DepObs {
                    target: target.to_string(),
                    result: result_of(&target),
                },
            );
        }
    }
    for (i, dep, result) in lua {
        match dep {
            None => {
                let o = &mut services[*i];
                if !matches!(o.health, Some(Err(_))) {
                    o.check_error = matches!(result, Err(Failure::Error(_)));
                    o.health = Some(result.clone().map_err(Failure::reason));
                }
            }
            Some(name) => {
                services[*i].deps.insert(
                    name.to_string(),
                    DepObs {
                        target: "lua".into(),
                        result: result.clone().map_err(Failure::probe_error),
                    },
                );
            }
        }
    }
    Observation {
        services: config
            .services
            .iter()
            .map(|s| s.name.clone())
            .zip(services)
            .collect(),
        boot: procs::current_boot_id(),
        ..Default::default()
    }
}

/// A chunk still running this long past its own time limit is abandoned.
const STUCK_AFTER: Duration = Duration::from_secs(1);

/// When a chunk started `at` with `limit` is abandoned: saturating, never a panic.
fn stuck_at(at: Instant, limit: Duration) -> Instant {
    let after = limit.saturating_add(STUCK_AFTER);
    at.checked_add(after)
        .unwrap_or_else(|| crate::fmt::deadline(after))
}

/// Chunks abandoned in this process (this tick), by [`stuck_key`], with why: later
/// observations of the same tick do not run them again, so one stuck chunk costs one thread,
/// not one per round.
static STUCK: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// How [`STUCK`] knows a chunk: its label and line (two unnamed deps share a label).
fn stuck_key(label: &str, line: usize) -> String {
    format!("{label}@{line}")
}

/// More stuck chunks than this in one tick, and the rest of the chunks are not run.
const MAX_STUCK: usize = LUA_WORKERS;

enum Event {
    Started(usize, Instant),
    Done(usize, Result<(), Failure>),
}

/// Runs `jobs` (chunk, time limit) on at most `workers` threads; results in job order.
///
/// Workers are added as they are needed: two at first, then one more every 2 ms while jobs
/// are still waiting. Quick chunks (most take microseconds) are run by a couple of threads,
/// without paying for sixteen thread starts and Lua states; slow ones (a check waiting on a
/// timeout) get up to `workers` threads within some 30 ms, so one slow chunk never holds the
/// others back.
///
/// The instruction hook that enforces a chunk's time limit cannot interrupt a function of the
/// Lua library written in C (`string.find` with a pathological pattern, say). So the threads
/// are not joined: a chunk still running [`STUCK_AFTER`] past its limit fails with that
/// reason, its thread is abandoned (it ends with the process, at the end of the tick) and a
/// new worker takes its place. The tick carries on either way.
fn run_chunks(
    config: Arc<Config>,
    jobs: Vec<(LuaChunk, Duration)>,
    world: Arc<world::TickWorld>,
    workers: usize,
) -> Vec<Result<(), Failure>> {
    let n = jobs.len();
    let mut results: Vec<Option<Result<(), Failure>>> = vec![None; n];
    let mut started: Vec<Option<Instant>> = vec![None; n];
    let limits: Vec<(String, usize, Duration)> = jobs
        .iter()
        .map(|(c, t)| (c.label.clone(), c.line, *t))
        .collect();
    let mut queue = std::collections::VecDeque::new();
    {
        let stuck = lock(&STUCK);
        for (i, (chunk, timeout)) in jobs.into_iter().enumerate() {
            if let Some((_, why)) = stuck
                .iter()
                .find(|(k, _)| *k == stuck_key(&chunk.label, chunk.line))
            {
                results[i] = Some(Err(Failure::Error(format!(
                    "{why} (earlier in this tick; not run again)"
                ))));
            } else {
                queue.push_back((i, chunk, timeout));
            }
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let pool = Arc::new(crate::lua::Pool::default());
    let (tx, rx) = mpsc::channel::<Event>();
    let spawn = || {
        let (queue, pool, config, world, tx) = (
            queue.clone(),
            pool.clone(),
            config.clone(),
            world.clone(),
            tx.clone(),
        );
        std::thread::spawn(move || {
            loop {
                let Some((i, chunk, timeout)) = lock(&queue).pop_front() else {
                    break;
                };
                let _ = tx.send(Event::Started(i, Instant::now()));
                let r = crate::lua::run_chunk_in(&pool, &config, &chunk, timeout, &*world);
                let _ = tx.send(Event::Done(i, r));
            }
        })
    };
    let waiting = || !lock(&queue).is_empty();
    let mut live = 0;
    while live < workers.min(2) && waiting() {
        spawn();
        live += 1;
    }
    let mut last_spawn = Instant::now();
    while results.iter().any(Option::is_none) {
        // Wake for the next message, the next worker to add, or the next chunk to give up on.
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        if live < workers && waiting() {
            wake = wake.min(last_spawn + Duration::from_millis(2));
        }
        for i in 0..n {
            if let (None, Some(at)) = (&results[i], started[i]) {
                wake = wake.min(stuck_at(at, limits[i].2));
            }
        }
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Event::Started(i, at)) => started[i] = Some(at),
            Ok(Event::Done(i, r)) => {
                if results[i].is_none() {
                    results[i] = Some(r);
                }
            }
            Err(_) => {}
        }
        let now = Instant::now();
        for i in 0..n {
            let Some(at) = started[i] else { continue };
            if results[i].is_some() || now < stuck_at(at, limits[i].2) {
                continue;
            }
            let (label, line, limit) = &limits[i];
            let why = format!(
                "{}:{line}: {label}: still running {} past its {} limit, inside a library \
                 function the limit cannot interrupt (string.find with a pathological pattern?): \
                 abandoned",
                config.path.display(),
                crate::fmt::duration(STUCK_AFTER),
                crate::fmt::duration(*limit)
            );
            results[i] = Some(Err(Failure::Error(why.clone())));
            let mut stuck = lock(&STUCK);
            stuck.push((stuck_key(label, *line), why));
            live -= 1;
            if stuck.len() >= MAX_STUCK {
                // Give up on the rest rather than lose a thread per chunk.
                for (j, chunk, _) in lock(&queue).drain(..) {
                    results[j] = Some(Err(Failure::Error(format!(
                        "{}: not run: {} Lua chunks are stuck in this tick",
                        chunk.label,
                        stuck.len()
                    ))));
                }
            }
        }
        if live < workers
            && waiting()
            && (live == 0 || last_spawn.elapsed() >= Duration::from_millis(2))
        {
            spawn();
            live += 1;
            last_spawn = Instant::now();
        }
        // A worker whose queue ran dry has ended: the live count only bounds new spawns.
    }
    results
        .into_iter()
        .map(|r| r.expect("every job has a result"))
        .collect()
}

/// The `lua:` deps of `svc`: (name, chunk, time limit).
fn lua_deps(svc: &Service) -> impl Iterator<Item = (&str, &LuaChunk, Duration)> {
    svc.deps.iter().filter_map(|d| match d {
        Dep::Lua {
            name,
            chunk,
            timeout,
        } => Some((name.as_str(), chunk, *timeout)),
        _ => None,
    })
}

/// Whether this observation probes the deps of `svc` (see [`Scope`]).
fn needs_deps(scope: Scope, svc: &Service, alive: &Result<Option<u32>, String>) -> bool {
    scope == Scope::All
        || alive.is_err()
        || svc.check.is_some()
        || svc.health.is_some()
        || svc.restart_on_dep_restart
}

/// What liveness found besides alive or dead.
#[derive(Debug, Clone, Default)]
struct Extra {
    /// For a service that may be restarted: the process a restart signals, or why not.
    stop: Option<Result<StopTarget, Unsignallable>>,
    /// The process alive through the `pid_file`, by marks no clock step changes.
    pid_file_process: Option<ProcId>,
}

/// The account whose processes (and root's) may be a service's: `name`, or, when the service
/// names none, the one autoheal runs as.
fn account(name: Option<&str>) -> Account {
    match name {
        Some(name) => Account {
            name: name.to_string(),
            uid: crate::users::uid_of(name),
        },
        None => {
            let uid = rustix::process::getuid().as_raw();
            Account {
                name: procs::user_name(uid),
                uid: Some(uid),
            }
        }
    }
}

/// Liveness of one service: `Ok(pid)` or `Err(why dead)` (the first check that does not
/// hold), when its process started (unix seconds), and the [`Extra`]s. `known` is the process
/// seen alive through its `pid_file` before: trusted whatever the file's time. Only processes
/// of root and `account` count.
///
/// For `pname` alone, of a service that may be restarted while alive (`restartable`), the pid
/// is the topmost matching process (see [`ProcTable::stop_target`]), the one a restart would
/// signal; when several unrelated processes match, the oldest is shown and the service is
/// marked ambiguous. Otherwise it is the oldest match; with a `pid_file`, the file's pid.
fn liveness(
    table: &ProcTable,
    l: &Liveness,
    restartable: bool,
    known: Option<&ProcId>,
    account: &Account,
    dirs: &crate::trust::Dirs,
) -> (Result<Option<u32>, String>, Option<f64>, Extra) {
    let mut found = None;
    let mut ambiguous = None;
    let pname = l.pname().map(|p| p as &dyn Pattern);
    let by_pname = pname.map(|re| match (l, restartable) {
        (Liveness::Pname(_), true) => {
            let (alive, why) = table.find_pname_to_stop_as(re, Some(account));
            ambiguous = why;
            alive
        }
        _ => table.find_pname_as(re, Some(account)),
    });
    let mut file_meta = None;
    let mut file_writers = None;
    let by_file = l.pid_file().map(|f| {
        let seen = table.look_at_pid_file(f, pname, known, Some(account));
        file_meta = seen.meta;
        match (seen.liveness, seen.meta) {
            // Without a pname to confirm it, a pid from a file others could have written is
            // the service's only if it runs as the one other who could: else anyone able to
            // write the file could keep a dead service "alive" with any root process's pid.
            (procs::Liveness::Alive { pid, started }, Some(meta)) if pname.is_none() => {
                let writers = pid_file_writers(f, meta, dirs);
                let verdict = file_pid_alive(table, f, pid, &writers);
                file_writers = Some(writers);
                match verdict {
                    Ok(()) => procs::Liveness::Alive { pid, started },
                    Err(reason) => procs::Liveness::Dead { reason },
                }
            }
            (liveness, _) => liveness,
        }
    });
    for check in [by_pname, by_file].into_iter().flatten() {
        match check {
            procs::Liveness::Alive { pid, started } => found = Some((pid, started)),
            procs::Liveness::Dead { reason } => return (Err(reason), None, Extra::default()),
        }
    }
    let started = found.and_then(|(_, s)| s).map(crate::time::of);
    // With a pid file, the pid found last is the pid file's.
    let pid_file_process = l
        .pid_file()
        .and(found)
        .and_then(|(pid, _)| table.proc_id(pid));
    let stop = match (restartable, found, ambiguous) {
        (false, _, _) | (_, None, _) => None,
        (true, Some(_), Some(why)) => Some(Err(Unsignallable::Ambiguous(why))),
        (true, Some((pid, _)), None) => {
            let from_file = l.pid_file().zip(file_meta).map(|(path, meta)| FromFile {
                path: path.clone(),
                meta,
                writers: file_writers
                    .take()
                    .unwrap_or_else(|| pid_file_writers(path, meta, dirs)),
            });
            let candidate = Candidate {
                pid,
                cmdline: table.cmdline(pid).unwrap_or_default(),
                uid: table.real_uid(pid),
                ours: table.is_ours(pid),
                from_file,
                pname,
            };
            // The pid was found in the table, so its start is known (a 0 would only make the
            // check right before the signal fail).
            let start_ticks = table.start_ticks(pid).unwrap_or_default();
            Some(
                signal::judge(&candidate, &procs::user_name)
                    .map(|()| StopTarget { pid, start_ticks }),
            )
        }
    };
    let extra = Extra {
        stop,
        pid_file_process,
    };
    (Ok(found.map(|(pid, _)| pid)), started, extra)
}

/// Whether the live process `pid`, read from the pid file `path` of a service without `pname`,
/// is taken for the service: a kernel thread never is; one from a file only root could have
/// written is; one from a file one other account could have written is if it runs as that
/// account; else (several accounts, anyone, unknown) not.
fn file_pid_alive(
    table: &ProcTable,
    path: &Path,
    pid: u32,
    writers: &Writers,
) -> Result<(), String> {
    let shown = path.display();
    if table.cmdline(pid).is_some_and(str::is_empty) {
        return Err(format!("pid file {shown} names pid {pid}, a kernel thread"));
    }
    let runs_as = table.real_uid(pid);
    let who = match writers {
        Writers::Root => return Ok(()),
        Writers::One(u) if runs_as == Some(*u) => return Ok(()),
        Writers::One(u) => procs::user_name(*u),
        Writers::Several(us) => us
            .iter()
            .map(|u| procs::user_name(*u))
            .collect::<Vec<_>>()
            .join(", "),
        Writers::Anyone { path, mode } => format!("anyone ({} is mode {mode:04o})", path.display()),
        Writers::Unknown(why) => format!("someone (who could write it is unknown: {why})"),
    };
    Err(format!(
        "pid {pid} from {shown} is not taken for the service: {who} could have written the \
         pid file, and the process runs as {}; give the service a pname, or make root own the \
         pid file",
        runs_as.map_or_else(|| "an unknown account".into(), procs::user_name)
    ))
}

/// Who could have written the pid file `path` (whose own owner and mode, read from the open
/// file, are `meta`): from the walk root's trust check makes ([`crate::trust::entries_with`]),
/// every directory met on the way (from `/`, through every symlink), the owner of every
/// symlink met (in a sticky directory its owner may point it anywhere), and the file. A file
/// with more than one hard link could be a link someone made to a file of root's: anyone.
fn pid_file_writers(path: &Path, meta: Meta, dirs: &crate::trust::Dirs) -> Writers {
    use std::os::unix::fs::MetadataExt;
    let met = match crate::trust::entries_with(path, dirs) {
        Ok(met) => met,
        Err(e) => return Writers::Unknown(e.to_string()),
    };
    let Some((real, target, _)) = met.last() else {
        return Writers::Unknown(format!("{}: nothing to read", path.display()));
    };
    if !target.is_dir() && target.nlink() > 1 {
        return Writers::Anyone {
            path: real.clone(),
            mode: target.mode() & 0o7777,
        };
    }
    let dirs: Vec<(PathBuf, Meta)> = met[..met.len() - 1]
        .iter()
        .rev()
        .map(|(at, m, role)| {
            // A symlink's mode means nothing; its owner is a writer.
            let mode = if *role == crate::trust::Role::Link {
                0
            } else {
                m.mode() & 0o7777
            };
            (at.clone(), Meta { uid: m.uid(), mode })
        })
        .collect();
    signal::writers(real, meta, &dirs)
}
