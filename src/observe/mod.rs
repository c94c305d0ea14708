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

use crate::config::{Config, Dep, Liveness, LuaChunk, Probe};
use crate::engine::{DepObs, Observation, ServiceObs};
use probe::Target;
use procs::ProcTable;
use std::time::Duration;

/// What to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A healing tick: the deps of dead services only (an alive service's deps decide nothing).
    Dead,
    /// `status`: every dep of every service.
    All,
}

/// Runs one Lua chunk under its time limit: `Ok` when it returned a truthy value, else the
/// reason. This is the seam to the Lua host (`crate::lua`).
pub type LuaRunner<'a> = &'a (dyn Fn(&LuaChunk, Duration) -> Result<(), String> + Sync);

/// One observation: one process-table snapshot, then every needed probe, Lua dep and health
/// check in parallel, each bounded by its own timeout.
pub fn observe(config: &Config, scope: Scope, lua: LuaRunner<'_>) -> Observation {
    let table = ProcTable::snapshot();
    let (alive, started): (Vec<_>, Vec<_>) = config
        .services
        .iter()
        .map(|s| liveness(&table, &s.liveness))
        .unzip();

    // Everything to probe or run, deduplicated: many services may wait on one database.
    let mut targets: Vec<(Target, Duration)> = Vec::new();
    let mut chunks: Vec<(usize, Option<String>, &LuaChunk, Duration)> = Vec::new();
    for (i, svc) in config.services.iter().enumerate() {
        if let (Ok(_), Some(check)) = (&alive[i], &svc.check) {
            chunks.push((i, None, check, config.settings.lua_timeout));
        }
        if let (Ok(_), Some(h)) = (&alive[i], &svc.health) {
            targets.push(health_target(h));
        }
        if scope == Scope::Dead && alive[i].is_ok() {
            continue;
        }
        for dep in &svc.deps {
            match dep {
                Dep::Tcp {
                    host,
                    port,
                    timeout,
                    ..
                } => targets.push((
                    Target::Tcp {
                        host: host.clone(),
                        port: *port,
                    },
                    *timeout,
                )),
                Dep::Http { url, timeout, .. } => {
                    targets.push((Target::Http { url: url.clone() }, *timeout))
                }
                Dep::Lua {
                    name,
                    chunk,
                    timeout,
                } => chunks.push((i, Some(name.clone()), chunk, *timeout)),
                Dep::Service { .. } => {}
            }
        }
    }

    let (probed, ran) = std::thread::scope(|s| {
        let probes = s.spawn(|| probe::probe_all(&targets, crate::defaults::PROBE_WORKERS));
        let runs: Vec<_> = chunks
            .iter()
            .map(|(_, _, chunk, timeout)| s.spawn(move || lua(chunk, *timeout)))
            .collect();
        let ran: Vec<Result<(), String>> = runs
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the Lua check crashed".into()))
            })
            .collect();
        let probed = probes.join().unwrap_or_default();
        (probed, ran)
    });

    let mut services: Vec<ServiceObs> = alive
        .into_iter()
        .zip(started)
        .map(|(alive, started)| ServiceObs {
            alive,
            started,
            health: None,
            deps: Default::default(),
        })
        .collect();
    // Health: the `health:` probe, then `check:`; both must pass.
    for (i, svc) in config.services.iter().enumerate() {
        if let (Ok(_), Some(h)) = (&services[i].alive, &svc.health) {
            let (target, _) = health_target(h);
            let result = probed
                .get(&target)
                .cloned()
                .unwrap_or_else(|| Err("not probed".into()));
            services[i].health = Some(result.map_err(|e| format!("health {target}: {e}")));
        }
    }
    for ((i, dep, _, _), result) in chunks.iter().zip(ran) {
        match dep {
            None => {
                let h = &mut services[*i].health;
                if !matches!(h, Some(Err(_))) {
                    *h = Some(result);
                }
            }
            Some(name) => {
                services[*i].deps.insert(
                    name.clone(),
                    DepObs {
                        target: "lua".into(),
                        result,
                    },
                );
            }
        }
    }
    for (i, svc) in config.services.iter().enumerate() {
        if scope == Scope::Dead && services[i].alive.is_ok() {
            continue;
        }
        for dep in &svc.deps {
            let target = match dep {
                Dep::Tcp { host, port, .. } => Target::Tcp {
                    host: host.clone(),
                    port: *port,
                },
                Dep::Http { url, .. } => Target::Http { url: url.clone() },
                _ => continue,
            };
            let result = probed
                .get(&target)
                .cloned()
                .unwrap_or_else(|| Err("not probed".into()));
            services[i].deps.insert(
                dep.name().to_string(),
                DepObs {
                    target: target.to_string(),
                    result,
                },
            );
        }
    }
    Observation {
        services: config
            .services
            .iter()
            .map(|s| s.name.clone())
            .zip(services)
            .collect(),
    }
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
