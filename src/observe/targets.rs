//! What the tcp and http deps and `health:` probes of a service probe, as [`Target`]s.

use crate::config::{Dep, Probe, Service};
use crate::probe::Target;
use std::time::Duration;

/// What a tcp or http dep probes, with its timeout; `None` for lua and local-service deps.
pub(super) fn dep_target(dep: &Dep) -> Option<(Target, Duration)> {
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
pub(super) fn dep_targets(svc: &Service) -> Vec<(String, Target, Duration)> {
    svc.deps
        .iter()
        .filter_map(|d| dep_target(d).map(|(t, timeout)| (d.name().to_string(), t, timeout)))
        .collect()
}

pub(super) fn health_target(p: &Probe) -> (Target, Duration) {
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
