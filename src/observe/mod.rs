//! Observing: reading the world as one tick needs it, and nothing else.
//!
//! Owns the process table ([`procs`]: one `/proc` snapshot per observation, liveness by
//! `pname` or `pid_file`) and the tcp/http readiness probes ([`probe`], bounded, run in
//! parallel); later the running of Lua checks. The same probe functions are reached from the
//! YAML deps and from the Lua host.
//!
//! What it must not do: act. Nothing here restarts, signals or kills a process, runs a
//! service's script, or writes state; it returns facts (with short, operator-readable reasons)
//! for `engine::plan` to decide on.

pub mod probe;
pub mod procs;
mod world;

use crate::config::{Config, Dep, Liveness, LuaChunk, Probe, Service};
use crate::engine::{DepObs, Observation, ServiceObs};
use crate::state::State;
use probe::Target;
use procs::ProcTable;
use std::collections::HashMap;
use std::time::Duration;

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

/// What observing may do on behalf of a Lua chunk's `restart()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restarts {
    /// A healing tick: requests go through the engine's gate.
    Allowed,
    /// `run --dry-run`: refused, saying so.
    DryRun,
    /// `status`: refused, saying so.
    Never,
}

/// What an observation needs besides the config.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub restarts: Restarts,
}

/// Lua chunks run at most this many at once.
pub const LUA_WORKERS: usize = 16;

/// One observation: one process-table snapshot, then every needed probe, Lua dep and health
/// check in parallel, each bounded by its own timeout.
pub fn observe(config: &Config, scope: Scope, ctx: &Ctx<'_>) -> Observation {
    let table = ProcTable::snapshot();
    let (alive, started): (Vec<_>, Vec<_>) = config
        .services
        .iter()
        .map(|s| liveness(&table, &s.liveness))
        .unzip();

    // Everything to probe or run. Probes are deduplicated by `probe_all`: many services may
    // wait on one database.
    let mut targets: Vec<(Target, Duration)> = Vec::new();
    let mut chunks: Vec<(usize, Option<&str>, &LuaChunk, Duration)> = Vec::new();
    for (i, svc) in config.services.iter().enumerate() {
        if let (Ok(_), Some(check)) = (&alive[i], &svc.check) {
            chunks.push((i, None, check, config.settings.lua_timeout));
        }
        if let (Ok(_), Some(h)) = (&alive[i], &svc.health) {
            targets.push(health_target(h));
        }
        if !needs_deps(scope, svc, &alive[i]) {
            continue;
        }
        for dep in &svc.deps {
            if let Dep::Lua {
                name,
                chunk,
                timeout,
            } = dep
            {
                chunks.push((i, Some(name.as_str()), chunk, *timeout));
            }
            targets.extend(dep_target(dep));
        }
    }
    let probes_end = targets.iter().map(|(_, t)| *t).max().unwrap_or_default();
    let world = world::TickWorld::new(config, ctx, &alive, probes_end);
    let (probed, ran) = std::thread::scope(|s| {
        let probes = s.spawn(|| {
            let probed = probe::probe_all(&targets, crate::defaults::PROBE_WORKERS);
            // What `restart()` needs to judge the gate: everything but the Lua results (only
            // chunks can call it, so without chunks there is nothing to publish).
            if !chunks.is_empty() {
                world.publish(assemble(config, scope, &alive, &started, &probed, &[]));
            }
            probed
        });
        let pool = crate::lua::Pool::default();
        let ran = parallel_map(&chunks, LUA_WORKERS, |(i, dep, chunk, timeout)| {
            let result = crate::lua::run_chunk_in(&pool, config, chunk, *timeout, &world);
            (*i, *dep, result)
        });
        (probes.join().unwrap_or_default(), ran)
    });
    let mut obs = assemble(config, scope, &alive, &started, &probed, &ran);
    let left = world.finish();
    for (service, dep, result) in left.extra {
        if let Some(o) = obs.services.get_mut(&service) {
            o.deps.entry(dep).or_insert(result);
        }
    }
    obs.requested = left.requests;
    obs.notes = left.notes;
    obs
}

type LuaResult<'a> = (usize, Option<&'a str>, Result<(), String>);

/// The observation from liveness, probe results and Lua results.
fn assemble(
    config: &Config,
    scope: Scope,
    alive: &[Result<Option<u32>, String>],
    started: &[Option<f64>],
    probed: &HashMap<Target, probe::ProbeResult>,
    lua: &[LuaResult<'_>],
) -> Observation {
    let mut services: Vec<ServiceObs> = alive
        .iter()
        .zip(started)
        .map(|(alive, started)| ServiceObs {
            alive: alive.clone(),
            started: *started,
            health: None,
            deps: Default::default(),
        })
        .collect();
    let result_of = |target: &Target| {
        probed
            .get(target)
            .cloned()
            .unwrap_or_else(|| Err("not probed".into()))
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
                let h = &mut services[*i].health;
                if !matches!(h, Some(Err(_))) {
                    *h = Some(result.clone());
                }
            }
            Some(name) => {
                services[*i].deps.insert(
                    name.to_string(),
                    DepObs {
                        target: "lua".into(),
                        result: result.clone(),
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
        ..Default::default()
    }
}

/// `f` over `items` on at most `workers` threads; results in the order of `items`.
///
/// Workers are added as they are needed: two at first, then one more every 2 ms while items
/// are still waiting. Quick items (most checks take microseconds) are done by a couple of
/// threads, without paying for sixteen thread starts and Lua states; slow ones (a check
/// waiting on a timeout) get up to `workers` threads within some 30 ms, so one slow chunk never
/// holds the others back.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let main = std::thread::current();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                // Nothing left to hand out: the spawning loop below can stop waiting.
                main.unpark();
                break;
            };
            let r = f(item);
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    let max = workers.min(items.len());
    std::thread::scope(|s| {
        let mut spawned = 0;
        while spawned < max.min(2) {
            s.spawn(work);
            spawned += 1;
        }
        while spawned < max && next.load(Ordering::Relaxed) < items.len() {
            std::thread::park_timeout(std::time::Duration::from_millis(2));
            if next.load(Ordering::Relaxed) < items.len() {
                s.spawn(work);
                spawned += 1;
            }
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was mapped")
        })
        .collect()
}

/// Whether this observation probes the deps of `svc` (see [`Scope`]).
fn needs_deps(scope: Scope, svc: &Service, alive: &Result<Option<u32>, String>) -> bool {
    scope == Scope::All
        || alive.is_err()
        || svc.check.is_some()
        || svc.health.is_some()
        || svc.restart_on_dep_restart
}

/// What a tcp or http dep probes, with its timeout; `None` for lua and local-service deps.
fn dep_target(dep: &Dep) -> Option<(Target, Duration)> {
    match dep {
        Dep::Tcp {
            host,
            port,
            timeout,
            ..
        } => Some((
            Target::Tcp {
                host: host.clone(),
                port: *port,
            },
            *timeout,
        )),
        Dep::Http { url, timeout, .. } => Some((Target::Http { url: url.clone() }, *timeout)),
        Dep::Lua { .. } | Dep::Service { .. } => None,
    }
}

/// The tcp and http deps of `svc` as probe targets, by dep name.
pub(crate) fn dep_targets(svc: &Service) -> Vec<(String, Target, Duration)> {
    svc.deps
        .iter()
        .filter_map(|d| dep_target(d).map(|(t, timeout)| (d.name().to_string(), t, timeout)))
        .collect()
}

fn health_target(p: &Probe) -> (Target, Duration) {
    match p {
        Probe::Tcp {
            host,
            port,
            timeout,
        } => (
            Target::Tcp {
                host: host.clone(),
                port: *port,
            },
            *timeout,
        ),
        Probe::Http { url, timeout } => (Target::Http { url: url.clone() }, *timeout),
    }
}

/// Alive iff every liveness check of the service holds: `Ok(pid)` and when that process
/// started (unix seconds), or the first reason it does not hold.
fn liveness(table: &ProcTable, l: &Liveness) -> (Result<Option<u32>, String>, Option<f64>) {
    let mut found = None;
    let checks = [
        l.pname().map(|p| table.find_pname(&p.regex)),
        l.pid_file().map(|f| table.check_pid_file(f)),
    ];
    for check in checks.into_iter().flatten() {
        match check {
            procs::Liveness::Alive { pid, started } => found = Some((pid, started)),
            procs::Liveness::Dead { reason } => return (Err(reason), None),
        }
    }
    let started = found.and_then(|(_, s)| s).and_then(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64())
    });
    (Ok(found.map(|(pid, _)| pid)), started)
}
