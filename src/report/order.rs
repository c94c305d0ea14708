//! `autoheal order`: the recovery plan before the power cut. Levels of the local dependency
//! graph (a service's level is one more than its deepest local dep), remote deps listed as
//! externals each service waits on. Nothing is probed or started.

use crate::config::{Config, Dep, Service};

/// One service's place in the recovery order.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub level: usize,
    pub service: &'a Service,
}

/// Every service with its level (from the config's graph), sorted by level then file order.
pub fn levels(config: &Config) -> Vec<Step<'_>> {
    let mut steps: Vec<Step> = config
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| Step {
            level: config.graph.level(i),
            service: s,
        })
        .collect();
    steps.sort_by_key(|s| s.level); // stable: file order within a level
    steps
}

/// The local service a dep of `svc` waits on: named, or reached at the address of its
/// `health:` probe (`url: http://127.0.0.1:8080/check` as a dep of another service is that
/// service; see `config::Addr` for when two addresses are the same).
pub fn local_of<'a>(config: &'a Config, svc: &Service, d: &Dep) -> Option<&'a Service> {
    config.local_dep(svc, d).map(|(s, _)| s)
}

/// The text `autoheal order` prints.
pub fn render(config: &Config) -> String {
    let steps = levels(config);
    let depth = steps.iter().map(|s| s.level).max().unwrap_or(0);
    let width = steps
        .iter()
        .map(|s| s.service.name.len())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "Recovery order for {} ({} services, {} level{}): each level starts once the one before is up;\n\
         services of one level start in parallel. Remote deps are waited on as they are.\n",
        config.path.display(),
        steps.len(),
        depth + 1,
        if depth == 0 { "" } else { "s" }
    );
    for s in &steps {
        let mut after: Vec<String> = Vec::new();
        for d in &s.service.deps {
            after.push(match d {
                Dep::Service { name } => name.clone(),
                _ if let Some(local) = local_of(config, s.service, d) => {
                    if local.name == d.name() {
                        format!("{} (local, by its health address)", local.name)
                    } else {
                        format!(
                            "{} = {} (local, by its health address)",
                            d.name(),
                            local.name
                        )
                    }
                }
                Dep::Tcp {
                    name, host, port, ..
                } => format!("{name} {host}:{port} (external)"),
                Dep::Http { name, url, .. } => format!("{name} {url} (external)"),
                Dep::Lua { name, .. } => format!("{name} (lua check)"),
            });
        }
        let after = if after.is_empty() {
            String::new()
        } else {
            format!("  after: {}", after.join(", "))
        };
        let line = format!("level {}  {:<width$}{after}", s.level, s.service.name);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
