//! What a Lua chunk may ask of the tick ([`crate::lua::World`]): liveness of a service of the
//! file, a restart through the engine's gate, a log line.
//!
//! `restart()` is judged by the same gate as every start ([`crate::engine::may_start`]) on this
//! observation's liveness and probe results. Chunks run while the probes are still in flight,
//! so a chunk that calls `restart()` waits for them (at most the longest probe timeout, and
//! never past its own time limit, which the Lua host enforces around the call). An accepted
//! request is carried in the observation; the engine's plan performs it. Nothing here starts,
//! stops or signals anything.

use super::ctx::{Ctx, Restarts, lock};
use super::targets::dep_targets;
use crate::config::Config;
use crate::engine::{DepObs, Observation, may_start};
use crate::lua::World;
use crate::state::State;
use crate::time::Unix;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Owned, not borrowed: chunks run on threads that may outlive the observation (one stuck in
/// a library function past its time limit is abandoned, see `observe::run_chunks`).
pub(super) struct TickWorld {
    config: Arc<Config>,
    state: State,
    restarts: Restarts,
    alive: Vec<Result<Option<u32>, String>>,
    started: Vec<Option<f64>>,
    now: Unix,
    /// Until when `restart()` waits for the probes.
    wait_until: Instant,
    partial: Mutex<Option<Observation>>,
    published: Condvar,
    requests: Mutex<BTreeMap<String, String>>,
    notes: Mutex<Vec<(String, String)>>,
    /// Deps probed for a `restart()`, for the plan to judge the same gate on.
    extra: Mutex<Vec<(String, String, DepObs)>>,
}

/// What the chunks left behind: accepted restarts (service → who asked), their log lines, and
/// deps probed on their behalf (service, dep, result).
pub(super) struct Leftovers {
    pub requests: BTreeMap<String, String>,
    pub notes: Vec<(String, String)>,
    pub extra: Vec<(String, String, DepObs)>,
}

impl TickWorld {
    pub(super) fn new(
        config: Arc<Config>,
        ctx: &Ctx<'_>,
        alive: &[Result<Option<u32>, String>],
        started: &[Option<f64>],
        probes_take: Duration,
    ) -> Self {
        TickWorld {
            config,
            state: ctx.state.clone(),
            restarts: ctx.restarts,
            alive: alive.to_vec(),
            started: started.to_vec(),
            now: crate::time::now(),
            wait_until: crate::fmt::deadline(probes_take.saturating_add(Duration::from_secs(1))),
            partial: Mutex::new(None),
            published: Condvar::new(),
            requests: Mutex::new(BTreeMap::new()),
            notes: Mutex::new(Vec::new()),
            extra: Mutex::new(Vec::new()),
        }
    }

    /// The observation without Lua results: what `restart()` judges the gate on.
    pub(super) fn publish(&self, obs: Observation) {
        *lock(&self.partial) = Some(obs);
        self.published.notify_all();
    }

    /// The services a chunk has asked to restart so far.
    pub(super) fn requested(&self) -> Vec<String> {
        lock(&self.requests).keys().cloned().collect()
    }

    /// What the chunks left, taken out (an abandoned chunk may still hold the world).
    pub(super) fn finish(&self) -> Leftovers {
        Leftovers {
            requests: std::mem::take(&mut *lock(&self.requests)),
            notes: std::mem::take(&mut *lock(&self.notes)),
            extra: std::mem::take(&mut *lock(&self.extra)),
        }
    }

    fn index(&self, service: &str) -> Result<usize, String> {
        self.config
            .services
            .iter()
            .position(|s| s.name == service)
            .ok_or_else(|| format!("no service `{service}` in {}", self.config.path.display()))
    }
}

impl World for TickWorld {
    fn alive(&self, service: &str) -> Result<bool, String> {
        Ok(self.alive[self.index(service)?].is_ok())
    }

    fn started(&self, service: &str) -> Result<Option<f64>, String> {
        let i = self.index(service)?;
        Ok(self.started[i].filter(|_| self.alive[i].is_ok()))
    }

    fn restart(&self, service: &str, deadline: Instant) -> Result<(), String> {
        self.index(service)?;
        match self.restarts {
            Restarts::Allowed => {}
            Restarts::DryRun => return Err("dry run: nothing is restarted".into()),
            Restarts::Never => return Err("`autoheal status` restarts nothing".into()),
        }
        let mut partial = lock(&self.partial);
        // Never past the asking chunk's own time limit: the hook cannot stop a wait in Rust.
        let wait_until = self.wait_until.min(deadline);
        while partial.is_none() {
            let left = wait_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(
                    "the probes of this observation did not finish within the chunk's time limit"
                        .into(),
                );
            }
            partial = self
                .published
                .wait_timeout(partial, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let mut obs = partial.as_ref().expect("published").clone();
        drop(partial);
        // The deps of an alive service this observation did not need: probe them now.
        let svc = &self.config.services[self.index(service)?];
        let missing: Vec<_> = dep_targets(svc)
            .into_iter()
            .filter(|(name, _, _)| {
                obs.services
                    .get(service)
                    .is_none_or(|o| !o.deps.contains_key(name))
            })
            .collect();
        if !missing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let targets: Vec<_> = missing
                .iter()
                .map(|(_, t, d)| (t.clone(), (*d).min(left)))
                .collect();
            let probed = crate::probe::probe_all(&targets, crate::defaults::PROBE_WORKERS);
            if let Some(o) = obs.services.get_mut(service) {
                for (name, target, _) in missing {
                    let result = probed
                        .get(&target)
                        .cloned()
                        .unwrap_or_else(|| Err(crate::probe::ProbeError::not_probed()));
                    let dep = DepObs {
                        target: target.to_string(),
                        result,
                    };
                    lock(&self.extra).push((service.to_string(), name.clone(), dep.clone()));
                    o.deps.insert(name, dep);
                }
            }
        }
        // Its Lua deps run beside this chunk, so their results are not in yet: they count as
        // ready here, and the plan, which has every result, judges the whole gate again (a
        // restart it holds is not done, and the log says why).
        if let Some(o) = obs.services.get_mut(service) {
            for dep in &svc.deps {
                if let crate::config::Dep::Lua { name, .. } = dep {
                    o.deps.entry(name.clone()).or_insert_with(|| DepObs {
                        target: "lua".into(),
                        result: Ok(()),
                    });
                }
            }
        }
        may_start(&self.config, &obs, &self.state, self.now, service).map_err(
            |(why, decided)| {
                crate::report::words::Reasons::new(&self.config, &decided, self.now).refusal(&why)
            },
        )?;
        if Instant::now() >= deadline {
            return Err("decided past the chunk's time limit: not done".into());
        }
        lock(&self.requests)
            .entry(service.to_string())
            .or_insert_with(|| "a Lua restart()".to_string());
        Ok(())
    }

    fn log(&self, label: &str, msg: &str) {
        lock(&self.notes).push((label.to_string(), msg.to_string()));
    }
}
