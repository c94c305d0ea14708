//! The fleet: every host's own file read together (`autoheal fleet FILE...`), so that what no
//! single host can see is seen before the power cut: which host each file is, which service of
//! which file each tcp and http dep waits on, the recovery order across hosts, the cycles that
//! would keep a set of hosts down for ever, and the recovery critical path.
//!
//! A pure model over loaded [`Config`]s: nothing here probes, starts, resolves a name or reads
//! a file except [`files`], which lists the files a command line names. The printing is
//! `report::fleet`'s.
//!
//! **Which host a file is.** Its `settings.host` (declared), else the addresses other hosts
//! could reach its services at: the non-loopback hosts of its services' `health:` and
//! `listen:` (derived); else it cannot be told (its services are reached by nothing, only by
//! name or loopback within the file).
//!
//! **Where a service listens.** Each `listen:` entry, a port alone (or `0.0.0.0`, `*`) and an
//! address of its host standing for every address of the host. Without `listen:`, its
//! `health:` target: a loopback or own-host address stands for the health port at every address
//! of the host (an operator probes `127.0.0.1:5432`; other hosts connect to `10.0.0.5:5432`),
//! any other address (a service address of its own) for itself.
//!
//! **What a dep waits on.** What the file's own graph says (a name, a local `health:`
//! address); else the service listening at its address: on its own host for a loopback
//! address that no file declares as a host's (127.0.0.1 is every host's own), in the whole
//! fleet otherwise. Two names or addresses are the same as [`Addr`] says (no DNS). Several
//! services at one address: the one the dep matches exactly (an http dep and the service whose
//! `health:` is at that url's path, a tcp dep and the one tcp `health:`), else it is ambiguous
//! and waits on none of them; none: an external dep.

use crate::config::graph::{self, Cycle, Edge};
use crate::config::{Addr, By, Config, Dep, Probe, Service};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// How a file's host was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFrom {
    /// `settings.host`.
    Declared,
    /// The non-loopback addresses of its `health:` and `listen:`.
    Derived,
    /// Neither: no address of it can be told.
    Unknown,
}

/// One file: one host of the fleet.
#[derive(Debug)]
pub struct Host<'a> {
    pub config: &'a Config,
    /// Its addresses, as written (declared or derived); empty when unknown.
    pub addresses: Vec<String>,
    pub from: HostFrom,
    /// Its first node: its services are nodes `first..first + services.len()`.
    first: usize,
}

impl Host<'_> {
    /// A short name: the file's name without `.yaml`.
    pub fn name(&self) -> String {
        let p = &self.config.path;
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    }
}

/// Where a point a service listens at came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Its `listen:` (the entry's line).
    Listen(usize),
    /// Its `health:` port, at its host's addresses or at the probe's own address.
    Health,
}

/// What one tcp or http dep waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// A service of the same file, as the file's own graph says (by name, or at its `health:`
    /// address).
    Local { to: usize, by: By },
    /// The service (a node) listening at the dep's address.
    Listening { to: usize, source: Source },
    /// Several services listen there and none matches the dep exactly: the nodes.
    Ambiguous(Vec<usize>),
    /// No service of any file listens there.
    External,
    /// A lua dep: what it waits on cannot be told.
    Lua,
}

/// The fleet's graph, its cycles, order, levels and critical path.
#[derive(Debug)]
pub struct Fleet<'a> {
    pub hosts: Vec<Host<'a>>,
    /// Per node, its host.
    host_of: Vec<usize>,
    /// Per node, per dep, what it waits on.
    waits: Vec<Vec<Wait>>,
    walk: graph::Walk,
    /// Per node, the earliest time after a power cut it can be ready: its warmup after the
    /// latest of what it waits on.
    ready_at: Vec<Duration>,
    /// Per node, the node it waits on last (on its critical path).
    last: Vec<Option<usize>>,
}

impl<'a> Fleet<'a> {
    /// The fleet of these files, one host each, in this order.
    pub fn new(configs: &'a [Config]) -> Fleet<'a> {
        let mut hosts = Vec::with_capacity(configs.len());
        let mut host_of = Vec::new();
        for (h, config) in configs.iter().enumerate() {
            let (addresses, from) = host_addresses(config);
            hosts.push(Host {
                config,
                addresses,
                from,
                first: host_of.len(),
            });
            host_of.extend(std::iter::repeat_n(h, config.services.len()));
        }
        // Every address a file names as a host's: a loopback one among them (127.0.1.1 for a
        // host of a test fleet) is that host's, not every host's own.
        let declared: HashSet<Addr> = hosts
            .iter()
            .flat_map(|h| h.addresses.iter().map(|a| Addr::new(a, 0)))
            .collect();
        let private = |a: &Addr| a.is_loopback() && !declared.contains(&a.with_port(0));
        // Who listens where: on its own host only (private loopback), and for the fleet.
        let mut local: Vec<HashMap<Addr, Vec<(usize, Source)>>> = vec![HashMap::new(); hosts.len()];
        let mut public: HashMap<Addr, Vec<(usize, Source)>> = HashMap::new();
        for (h, host) in hosts.iter().enumerate() {
            for (i, svc) in host.config.services.iter().enumerate() {
                for (addr, source) in listens_at(host, svc) {
                    let at = (host.first + i, source);
                    if private(&addr) {
                        local[h].entry(addr).or_default().push(at);
                    } else {
                        public.entry(addr).or_default().push(at);
                    }
                }
            }
        }
        let mut waits = Vec::with_capacity(host_of.len());
        let mut edges: Vec<Vec<Edge>> = Vec::with_capacity(host_of.len());
        for (h, host) in hosts.iter().enumerate() {
            let cfg = host.config;
            for (i, svc) in cfg.services.iter().enumerate() {
                let from = host.first + i;
                let mut mine = Vec::with_capacity(svc.deps.len());
                let mut out = Vec::new();
                for (dep, d) in svc.deps.iter().enumerate() {
                    let wait = if let Some(e) = cfg.graph.edge(i, dep) {
                        Wait::Local {
                            to: host.first + e.to,
                            by: e.by,
                        }
                    } else if matches!(d, Dep::Lua { .. }) {
                        Wait::Lua
                    } else {
                        let addr = Addr::of_dep(d);
                        let found = addr.as_ref().and_then(|a| match local[h].get(a) {
                            Some(c) => Some(c),
                            None if !private(a) => public.get(a),
                            None => None,
                        });
                        pick(&hosts, &host_of, d, found.map_or(&[], Vec::as_slice))
                    };
                    let to = match &wait {
                        Wait::Local { to, .. } | Wait::Listening { to, .. } => Some(*to),
                        _ => None,
                    };
                    if let Some(to) = to {
                        out.push(Edge {
                            from,
                            dep,
                            to,
                            by: By::Address,
                        });
                    }
                    mine.push(wait);
                }
                waits.push(mine);
                edges.push(out);
            }
        }
        let walk = graph::walk(&edges);
        let n = host_of.len();
        let (mut ready_at, mut last) = (vec![Duration::ZERO; n], vec![None; n]);
        if walk.cycles.is_empty() {
            for &v in &walk.order {
                let before = edges[v]
                    .iter()
                    .map(|e| (ready_at[e.to], e.to))
                    .max_by_key(|&(t, _)| t);
                let svc = service_of(&hosts, &host_of, v);
                ready_at[v] = before.map_or(Duration::ZERO, |(t, _)| t) + svc.warmup();
                last[v] = before.map(|(_, to)| to);
            }
        }
        Fleet {
            hosts,
            host_of,
            waits,
            walk,
            ready_at,
            last,
        }
    }

    /// How many nodes (services of every file).
    pub fn len(&self) -> usize {
        self.host_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.host_of.is_empty()
    }

    /// A node's host.
    pub fn host(&self, node: usize) -> &Host<'a> {
        &self.hosts[self.host_of[node]]
    }

    /// A node's host's index.
    pub fn host_index(&self, node: usize) -> usize {
        self.host_of[node]
    }

    /// A node's service.
    pub fn service(&self, node: usize) -> &'a Service {
        service_of(&self.hosts, &self.host_of, node)
    }

    /// The node of the service `name` of host `host`.
    pub fn node(&self, host: usize, name: &str) -> Option<usize> {
        let h = self.hosts.get(host)?;
        Some(h.first + h.config.graph.index(name)?)
    }

    /// What each dep of `node` waits on, in the order of its deps.
    pub fn waits(&self, node: usize) -> &[Wait] {
        &self.waits[node]
    }

    /// Every cycle, once each, each hop an edge between nodes (`dep` is the dep of the hop's
    /// `from` that closes it).
    pub fn cycles(&self) -> &[Cycle] {
        &self.walk.cycles
    }

    /// Whether a cycle goes through more than one host.
    pub fn across_hosts(&self, cycle: &Cycle) -> bool {
        let first = cycle.hops.first().map(|e| self.host_of[e.from]);
        cycle
            .hops
            .iter()
            .any(|e| Some(self.host_of[e.from]) != first)
    }

    /// A node's level: 0 when it waits on nothing in the fleet, else one more than the
    /// deepest it waits on.
    pub fn level(&self, node: usize) -> usize {
        self.walk.levels.get(node).copied().unwrap_or(0)
    }

    /// Every node, each after what it waits on.
    pub fn order(&self) -> &[usize] {
        &self.walk.order
    }

    /// The earliest a node can be ready after a power cut (without cycles): its `warmup` (else
    /// its `grace`) after the latest of what it waits on, external deps taken as up.
    pub fn ready_at(&self, node: usize) -> Duration {
        self.ready_at.get(node).copied().unwrap_or_default()
    }

    /// The longest chain, from what waits on nothing to the last service ready, and its total
    /// (empty without nodes, or with a cycle).
    pub fn critical_path(&self) -> (Vec<usize>, Duration) {
        if !self.walk.cycles.is_empty() {
            return (Vec::new(), Duration::ZERO);
        }
        // The latest; the first in order of files among equals.
        let Some(end) = (0..self.len()).rev().max_by_key(|&v| self.ready_at[v]) else {
            return (Vec::new(), Duration::ZERO);
        };
        let mut path = vec![end];
        while let Some(before) = self.last[*path.last().expect("not empty")] {
            path.push(before);
        }
        path.reverse();
        (path, self.ready_at[end])
    }
}

fn service_of<'a>(hosts: &[Host<'a>], host_of: &[usize], node: usize) -> &'a Service {
    let host = &hosts[host_of[node]];
    &host.config.services[node - host.first]
}

/// `settings.host`, else the non-loopback addresses of the file's `health:` and `listen:`.
fn host_addresses(config: &Config) -> (Vec<String>, HostFrom) {
    if !config.settings.host.is_empty() {
        return (config.settings.host.clone(), HostFrom::Declared);
    }
    let mut out: Vec<String> = Vec::new();
    let mut add = |host: &str| {
        let a = Addr::new(host, 0);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let unspecified = bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if !a.is_loopback() && !unspecified && !out.iter().any(|o| Addr::new(o, 0) == a) {
            out.push(bare.to_string());
        }
    };
    for svc in &config.services {
        if let Some(a) = svc.health.as_ref().and_then(probe_host) {
            add(&a);
        }
        for l in &svc.listen {
            if let Some(h) = &l.host {
                add(h);
            }
        }
    }
    let from = if out.is_empty() {
        HostFrom::Unknown
    } else {
        HostFrom::Derived
    };
    (out, from)
}

/// The host a `health:` probe connects to, as written.
fn probe_host(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Tcp { host, .. } => Some(host.clone()),
        Probe::Http { url, .. } => {
            let rest = url.split_once("://")?.1;
            let authority = rest.split(['/', '?', '#']).next()?;
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            Some(match hostport.strip_prefix('[') {
                Some(v6) => v6.split(']').next()?.to_string(),
                None => hostport.split(':').next()?.to_string(),
            })
        }
    }
}

/// Every address `svc` of `host` can be reached at, and how it is known.
fn listens_at(host: &Host, svc: &Service) -> Vec<(Addr, Source)> {
    let own = |h: &str| {
        let a = Addr::new(h, 0);
        host.addresses.iter().any(|o| Addr::new(o, 0) == a)
    };
    let everywhere = |port: u16, source: Source, out: &mut Vec<(Addr, Source)>| {
        for a in &host.addresses {
            out.push((Addr::new(a, port), source));
        }
    };
    let mut out = Vec::new();
    if !svc.listen.is_empty() {
        for l in &svc.listen {
            let source = Source::Listen(l.line);
            match &l.host {
                // Every address of the host, loopback too.
                None => {
                    everywhere(l.port, source, &mut out);
                    out.push((Addr::new("127.0.0.1", l.port), source));
                    out.push((Addr::new("::1", l.port), source));
                }
                Some(h) if own(h) => everywhere(l.port, source, &mut out),
                Some(h) => out.push((Addr::new(h, l.port), source)),
            }
        }
    } else if let Some(probe) = &svc.health
        && let (Some(addr), Some(h)) = (Addr::of_probe(probe), probe_host(probe))
    {
        if addr.is_loopback() || own(&h) {
            everywhere(addr.port(), Source::Health, &mut out);
        }
        if !host
            .addresses
            .iter()
            .any(|o| Addr::new(o, addr.port()) == addr)
        {
            out.push((addr, Source::Health));
        }
    }
    out
}

/// The one service among `candidates` (nodes listening at a dep's address) that `dep` waits
/// on: the only one, else the one it matches exactly, else none.
fn pick(hosts: &[Host], host_of: &[usize], dep: &Dep, candidates: &[(usize, Source)]) -> Wait {
    let mut nodes: Vec<(usize, Source)> = Vec::new();
    for &(n, s) in candidates {
        if !nodes.iter().any(|(m, _)| *m == n) {
            nodes.push((n, s));
        }
    }
    match nodes.as_slice() {
        [] => return Wait::External,
        [(to, source)] => {
            return Wait::Listening {
                to: *to,
                source: *source,
            };
        }
        _ => {}
    }
    let exact: Vec<(usize, Source)> = nodes
        .iter()
        .copied()
        .filter(
            |&(n, _)| match (dep, &service_of(hosts, host_of, n).health) {
                (Dep::Http { url, .. }, Some(Probe::Http { url: own, .. })) => {
                    path_of(url) == path_of(own)
                }
                (Dep::Tcp { .. }, Some(Probe::Tcp { .. })) => true,
                _ => false,
            },
        )
        .collect();
    match exact.as_slice() {
        [(to, source)] => Wait::Listening {
            to: *to,
            source: *source,
        },
        _ => Wait::Ambiguous(nodes.into_iter().map(|(n, _)| n).collect()),
    }
}

/// A url's path and query (`/app1/health`), `/` when it has none.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find(['/', '?']) {
        Some(at) => &rest[at..],
        None => "/",
    }
}

/// The files a command line names: each FILE as it is, each directory's `*.yaml` (sorted);
/// a file named twice is read once. A directory that cannot be read, or has no `*.yaml`, is
/// an error that says so.
pub fn files(args: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |p: PathBuf, out: &mut Vec<PathBuf>| {
        let key = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.insert(key) {
            out.push(p);
        }
    };
    for arg in args {
        if !arg.is_dir() {
            add(arg.clone(), &mut out);
            continue;
        }
        let entries = std::fs::read_dir(arg).map_err(|e| {
            format!(
                "cannot read the directory {}: {}",
                arg.display(),
                crate::fmt::io_reason(&e)
            )
        })?;
        let mut yaml: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml") && !p.is_dir())
            .collect();
        if yaml.is_empty() {
            return Err(format!(
                "the directory {} holds no *.yaml file",
                arg.display()
            ));
        }
        yaml.sort();
        for p in yaml {
            add(p, &mut out);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    fn cfg(name: &str, yaml: &str) -> Config {
        load_str(yaml, Path::new(name)).unwrap_or_else(|e| panic!("{e}"))
    }

    const SVC: &str = "  pname: x\n  script: s\n";

    /// The node each dep of `host`'s `svc` waits on, as `svc@file` or a word.
    fn waits(f: &Fleet, host: usize, svc: &str) -> Vec<String> {
        let v = f.node(host, svc).unwrap();
        f.waits(v)
            .iter()
            .map(|w| match w {
                Wait::Local { to, .. } | Wait::Listening { to, .. } => {
                    format!("{}@{}", f.service(*to).name, f.host(*to).name())
                }
                Wait::External => "external".into(),
                Wait::Ambiguous(_) => "ambiguous".into(),
                Wait::Lua => "lua".into(),
            })
            .collect()
    }

    #[test]
    fn deps_match_listen_and_health_ports_at_the_hosts_addresses() {
        let h1 = cfg(
            "h1.yaml",
            &format!(
                "settings:\n  host: [10.0.0.1, web1.example.com]\n\
                 web:\n{SVC}  health: {{url: 'http://localhost:8080/health'}}\n  dep:\n    - {{name: api, host: 10.0.0.2, port: 9000}}\n    - {{name: db, host: db.example.com, port: 5432}}\n    - {{name: mail, host: 192.0.2.25, port: 25}}\n    - {{name: own, host: 127.0.0.1, port: 6379}}\n\
                 cache:\n{SVC}  listen: 6379\n"
            ),
        );
        // h2 has no settings.host: derived from its listen: and health:.
        let h2 = cfg(
            "h2.yaml",
            &format!(
                "api:\n{SVC}  listen: 10.0.0.2:9000\n  dep:\n    - {{name: web, url: 'http://WEB1.example.com.:8080/'}}\n    - {{name: cache, host: 127.0.0.1, port: 6379}}\n\
                 db:\n{SVC}  health: {{host: db.example.com, port: 5432}}\n"
            ),
        );
        let configs = [h1, h2];
        let f = Fleet::new(&configs);
        assert_eq!(f.hosts[0].from, HostFrom::Declared);
        assert_eq!(f.hosts[1].from, HostFrom::Derived);
        assert_eq!(f.hosts[1].addresses, vec!["10.0.0.2", "db.example.com"]);
        assert_eq!(
            waits(&f, 0, "web"),
            vec!["api@h2", "db@h2", "external", "cache@h1"]
        );
        // A loopback dep is its own host's: h2 has no cache, so it is external.
        assert_eq!(waits(&f, 1, "api"), vec!["web@h1", "external"]);
        assert!(f.cycles().len() == 1 && f.across_hosts(&f.cycles()[0]));
    }

    #[test]
    fn a_declared_loopback_address_is_that_hosts_and_127_0_0_1_every_hosts() {
        let h1 = cfg(
            "h1.yaml",
            &format!(
                "settings:\n  host: 127.0.1.1\na:\n{SVC}  health: {{host: 127.0.0.1, port: 80}}\n"
            ),
        );
        let h2 = cfg(
            "h2.yaml",
            &format!(
                "settings:\n  host: 127.0.1.2\nb:\n{SVC}  dep:\n    - {{name: a, host: 127.0.1.1, port: 80}}\n    - {{name: lo, host: 127.0.0.1, port: 80}}\n    - {{name: l, lua: return true}}\n"
            ),
        );
        let configs = [h1, h2];
        let f = Fleet::new(&configs);
        assert_eq!(waits(&f, 1, "b"), vec!["a@h1", "external", "lua"]);
        assert!(f.cycles().is_empty());
        assert_eq!((f.level(0), f.level(1)), (0, 1));
    }

    #[test]
    fn several_services_at_one_address_match_only_exactly() {
        let h1 = cfg(
            "h1.yaml",
            &format!(
                "settings:\n  host: 192.0.2.1\nnginx:\n{SVC}  health: {{host: 127.0.0.1, port: 80}}\n\
                 app1:\n{SVC}  health: {{url: 'http://127.0.0.1/app1/health'}}\n\
                 app2:\n{SVC}  health: {{url: 'http://127.0.0.1/app2/health'}}\n"
            ),
        );
        let h2 = cfg(
            "h2.yaml",
            &format!(
                "c:\n{SVC}  dep:\n    - {{name: a1, url: 'http://192.0.2.1/app1/health'}}\n    - {{name: front, host: 192.0.2.1, port: 80}}\n    - {{name: x, url: 'http://192.0.2.1/'}}\n"
            ),
        );
        let configs = [h1, h2];
        let f = Fleet::new(&configs);
        assert_eq!(f.hosts[1].from, HostFrom::Unknown);
        assert_eq!(waits(&f, 1, "c"), vec!["app1@h1", "nginx@h1", "ambiguous"]);
    }

    #[test]
    fn a_cycle_across_three_hosts_is_found_with_its_hops() {
        let host = |n: u8, next: u8| {
            cfg(
                &format!("h{n}.yaml"),
                &format!(
                    "settings:\n  host: 192.0.2.{n}\ns{n}:\n{SVC}  health: {{host: 127.0.0.1, port: 900{n}}}\n  dep:\n    - {{name: next, host: 192.0.2.{next}, port: 900{next}}}\n"
                ),
            )
        };
        let configs = [host(1, 2), host(2, 3), host(3, 1)];
        let f = Fleet::new(&configs);
        assert_eq!(f.cycles().len(), 1);
        let hops: Vec<usize> = f.cycles()[0]
            .hops
            .iter()
            .map(|h| f.host_index(h.from))
            .collect();
        assert_eq!(hops, vec![0, 1, 2]);
        assert_eq!(f.critical_path(), (Vec::new(), Duration::ZERO));
    }

    #[test]
    fn the_critical_path_is_the_longest_chain_of_warmups() {
        let h1 = cfg(
            "h1.yaml",
            &format!(
                "settings:\n  host: 192.0.2.1\ndb:\n{SVC}  listen: 5432\n  warmup: 20s\n\
                 fast:\n{SVC}  listen: 80\n  warmup: 1s\n"
            ),
        );
        let h2 = cfg(
            "h2.yaml",
            &format!(
                "settings:\n  host: 192.0.2.2\napp:\n{SVC}  grace: 10s\n  dep:\n    - {{name: db, host: 192.0.2.1, port: 5432}}\n    - {{name: f, host: 192.0.2.1, port: 80}}\n\
                 web:\n{SVC}  warmup: 2s\n  dep: [{{name: app}}]\n"
            ),
        );
        let configs = [h1, h2];
        let f = Fleet::new(&configs);
        let (path, total) = f.critical_path();
        let names: Vec<&str> = path.iter().map(|&v| f.service(v).name.as_str()).collect();
        assert_eq!(names, vec!["db", "app", "web"]);
        assert_eq!(total, Duration::from_secs(32));
        assert_eq!(
            f.ready_at(f.node(1, "app").unwrap()),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn files_expand_directories_once_each() {
        let dir = std::env::temp_dir().join(format!("autoheal-fleet-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["b.yaml", "a.yaml", "notes.txt"] {
            std::fs::write(dir.join(n), "").unwrap();
        }
        let got = files(&[dir.clone(), dir.join("a.yaml")]).unwrap();
        assert_eq!(got, vec![dir.join("a.yaml"), dir.join("b.yaml")]);
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(files(&[empty]).unwrap_err().contains("holds no *.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
