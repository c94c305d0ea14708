//! `autoheal order`: the recovery plan before the power cut. Levels of the local dependency
//! graph (a service's level is one more than its deepest local dep), remote deps listed as
//! externals each service waits on. Nothing is probed or started.

use crate::config::{Config, Dep, Probe, Service};

/// One service's place in the recovery order.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub level: usize,
    pub service: &'a Service,
}

/// Every service with its level, sorted by level then file order. The config has no cycle
/// (`config::load` rejects them), so the recursion ends.
pub fn levels(config: &Config) -> Vec<Step<'_>> {
    fn level(config: &Config, s: &Service, memo: &mut Vec<Option<usize>>) -> usize {
        let i = config
            .services
            .iter()
            .position(|x| x.name == s.name)
            .expect("a service of the file");
        if let Some(l) = memo[i] {
            return l;
        }
        let l = s
            .deps
            .iter()
            .filter_map(|d| local_of(config, d).map(|d| level(config, d, memo) + 1))
            .max()
            .unwrap_or(0);
        memo[i] = Some(l);
        l
    }
    let mut memo = vec![None; config.services.len()];
    let mut steps: Vec<Step> = config
        .services
        .iter()
        .map(|s| Step {
            level: level(config, s, &mut memo),
            service: s,
        })
        .collect();
    steps.sort_by_key(|s| s.level); // stable: file order within a level
    steps
}

/// The local service a dep waits on: named, or reached at the address of its `health:` probe
/// (`url: http://127.0.0.1:8080/check` as a dep of another service is that service).
pub fn local_of<'a>(config: &'a Config, d: &Dep) -> Option<&'a Service> {
    let addr = match d {
        Dep::Service { name } => return config.service(name),
        Dep::Tcp { host, port, .. } => format!("{host}:{port}"),
        Dep::Http { url, .. } => authority(url)?,
        Dep::Lua { .. } => return None,
    };
    config.services.iter().find(|s| {
        s.health.as_ref().is_some_and(|h| match h {
            Probe::Tcp { host, port, .. } => format!("{host}:{port}") == addr,
            Probe::Http { url, .. } => authority(url).as_deref() == Some(addr.as_str()),
        })
    })
}

/// `host:port` of an http(s) url, with the scheme's default port.
fn authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    if host.contains(':') && !host.ends_with(']') {
        Some(host.to_string())
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        Some(format!("{host}:{port}"))
    }
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
                _ if local_of(config, d).is_some() => {
                    format!(
                        "{} (local, by its health address)",
                        local_of(config, d)
                            .map(|l| l.name.as_str())
                            .unwrap_or_default()
                    )
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
