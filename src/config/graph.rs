//! The graph of a file's services: who waits on whom, built once when the config loads and
//! kept in [`Config`](super::Config), so that `check` (its cycles), `plan` (the root-cause
//! chain) and `order` (the levels) read the same edges.
//!
//! An edge goes from a service to a local service it waits on: a dep by name, or a tcp or http
//! dep whose address is a local service's `health:` address (see [`Addr`] for when two
//! addresses are the same). Everything here is iterative: a file of 10,000 services in one
//! chain is walked without deep recursion. This module only reads the model; it reports
//! nothing itself (`load` turns its cycles into errors with positions).

use super::types::{Dep, Probe, Service};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// How a dep names the local service it waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// `- name: cache` alone.
    Name,
    /// A tcp or http dep at that service's `health:` address.
    Address,
}

/// One edge: service `from` waits, through its dep number `dep`, on service `to` (indices in
/// file order, into `Config::services` and that service's `deps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub dep: usize,
    pub to: usize,
    pub by: By,
}

/// A cycle of services that wait on each other: each hop's `to` is the next hop's `from`, and
/// the last hop leads back to the first service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub hops: Vec<Edge>,
}

impl Cycle {
    /// The services on it, in order, starting with the first one the walk met.
    pub fn services(&self) -> impl Iterator<Item = usize> + '_ {
        self.hops.iter().map(|h| h.from)
    }
}

/// Where a tcp or http probe connects. Two addresses are the same when their ports are equal
/// and their hosts are: IP literals compared as addresses (`[::1]` is `::1`), names compared
/// without case or a trailing dot, and `localhost` taken for `127.0.0.1`. Nothing else is
/// resolved: `127.0.1.1` and a host's own name stay other hosts (they may be other hosts: the
/// drill puts three "hosts" on loopback addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Addr {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Addr {
    pub fn new(host: &str, port: u16) -> Addr {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => {
                let name = bare.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" {
                    Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
                } else {
                    Host::Name(name)
                }
            }
        };
        Addr { host, port }
    }

    /// The address an http(s) url connects to: its host, and its port or the scheme's.
    pub fn of_url(url: &str) -> Option<Addr> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let default = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().ok()?),
                None if after.is_empty() => (host, default),
                None => return None,
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (hostport, default),
            }
        };
        (!host.is_empty()).then(|| Addr::new(host, port))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same host at another port.
    pub fn with_port(&self, port: u16) -> Addr {
        Addr {
            host: self.host.clone(),
            port,
        }
    }

    /// Whether it is on this host: a loopback address (127.0.0.0/8, ::1, `localhost`).
    pub fn is_loopback(&self) -> bool {
        matches!(self.host, Host::Ip(ip) if ip.is_loopback())
    }

    /// The address a dep probes, for tcp and http deps.
    pub fn of_dep(dep: &Dep) -> Option<Addr> {
        match dep {
            Dep::Tcp { host, port, .. } => Some(Addr::new(host, *port)),
            Dep::Http { url, .. } => Addr::of_url(url),
            Dep::Service { .. } | Dep::Lua { .. } => None,
        }
    }

    /// The address a `health:` probe connects to.
    pub fn of_probe(probe: &Probe) -> Option<Addr> {
        match probe {
            Probe::Tcp { host, port, .. } => Some(Addr::new(host, *port)),
            Probe::Http { url, .. } => Addr::of_url(url),
        }
    }
}

/// The services of one file and their edges, cycles, order and levels.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    index: HashMap<String, usize>,
    /// Per service, its edges in the order of its deps.
    edges: Vec<Vec<Edge>>,
    cycles: Vec<Cycle>,
    /// Every service after every service it waits on (when there is no cycle).
    order: Vec<usize>,
    levels: Vec<usize>,
}

impl Graph {
    /// Builds the graph of `services` (in file order): edges, cycles, order and levels.
    pub fn new(services: &[Service]) -> Graph {
        let mut index = HashMap::with_capacity(services.len());
        for (i, s) in services.iter().enumerate() {
            index.entry(s.name.clone()).or_insert(i);
        }
        // Who answers at each `health:` address.
        let mut at: HashMap<Addr, Vec<usize>> = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            if let Some(addr) = s.health.as_ref().and_then(Addr::of_probe) {
                at.entry(addr).or_default().push(i);
            }
        }
        let edges = services
            .iter()
            .enumerate()
            .map(|(from, s)| {
                s.deps
                    .iter()
                    .enumerate()
                    .filter_map(|(dep, d)| {
                        let (to, by) = match d {
                            Dep::Service { name } => (*index.get(name)?, By::Name),
                            _ => (by_address(services, &at, d)?, By::Address),
                        };
                        Some(Edge { from, dep, to, by })
                    })
                    .collect()
            })
            .collect();
        let mut graph = Graph {
            index,
            edges,
            ..Graph::default()
        };
        graph.walk();
        graph
    }

    /// The index of the service named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The edges of service `service`, in the order of its deps.
    pub fn edges(&self, service: usize) -> &[Edge] {
        self.edges.get(service).map_or(&[], Vec::as_slice)
    }

    /// The edge of dep number `dep` of service `service`: the local service it waits on.
    pub fn edge(&self, service: usize, dep: usize) -> Option<&Edge> {
        self.edges(service).iter().find(|e| e.dep == dep)
    }

    /// Every cycle found, once each (one per dep that closes it), in the order a walk of the
    /// services in file order meets them.
    pub fn cycles(&self) -> &[Cycle] {
        &self.cycles
    }

    /// Every service, each after every service it waits on (without cycles; with one, a
    /// service on it comes before the one that closes it).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// A service's level: 0 for one that waits on no local service, else one more than the
    /// deepest it waits on.
    pub fn level(&self, service: usize) -> usize {
        self.levels.get(service).copied().unwrap_or(0)
    }

    /// `service` and what it waits on, directly or not, each after what it waits on,
    /// leaving out (and not walking past) those `done` says are done.
    pub fn closure(&self, service: usize, done: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen = vec![false; self.edges.len()];
        if service >= self.edges.len() || done(service) {
            return out;
        }
        // (service, how many of its edges were walked)
        let mut stack = vec![(service, 0)];
        seen[service] = true;
        while let Some((v, next)) = stack.last_mut() {
            let v = *v;
            if let Some(e) = self.edges[v].get(*next) {
                *next += 1;
                let w = e.to;
                if !seen[w] && !done(w) {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                stack.pop();
                out.push(v);
            }
        }
        out
    }

    fn walk(&mut self) {
        let w = walk(&self.edges);
        (self.cycles, self.order, self.levels) = (w.cycles, w.order, w.levels);
    }
}

/// What [`walk`] finds: the cycles, the order and the levels of a graph.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    pub cycles: Vec<Cycle>,
    /// Every node after every node it waits on (with a cycle, a node on it comes before the
    /// one that closes it).
    pub order: Vec<usize>,
    /// 0 for a node that waits on nothing, else one more than the deepest it waits on.
    pub levels: Vec<usize>,
}

/// One depth-first walk from every node in index order, with an explicit stack: each edge
/// back to a node still on the walk's path is a cycle; the order nodes finish in puts each
/// after what it waits on, and gives the levels. `edges[v]` are node `v`'s edges (each with
/// `from == v`); the same walk serves one file ([`Graph`]) and a fleet of them.
pub fn walk(edges: &[Vec<Edge>]) -> Walk {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let n = edges.len();
    let mut out = Walk::default();
    let mut color = vec![NEW; n];
    let mut levels = vec![0usize; n];
    // (service, how many of its edges were walked); the path is the stack itself.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if color[root] != NEW {
            continue;
        }
        color[root] = ON_PATH;
        stack.push((root, 0));
        while let Some(&(v, next)) = stack.last() {
            let Some(&e) = edges[v].get(next) else {
                stack.pop();
                color[v] = DONE;
                levels[v] = edges[v]
                    .iter()
                    .filter(|e| color[e.to] == DONE)
                    .map(|e| levels[e.to] + 1)
                    .max()
                    .unwrap_or(0);
                out.order.push(v);
                continue;
            };
            stack.last_mut().expect("v is on the stack").1 += 1;
            // Two deps of one service may reach the same service: one edge is enough.
            if edges[v][..next].iter().any(|x| x.to == e.to) {
                continue;
            }
            match color[e.to] {
                NEW => {
                    color[e.to] = ON_PATH;
                    stack.push((e.to, 0));
                }
                ON_PATH => {
                    let at = stack
                        .iter()
                        .position(|&(x, _)| x == e.to)
                        .expect("a service on the path is on the stack");
                    // Each frame's last walked edge is the hop it took.
                    let hops = stack[at..]
                        .iter()
                        .map(|&(x, walked)| edges[x][walked - 1])
                        .collect();
                    out.cycles.push(Cycle { hops });
                }
                _ => {}
            }
        }
    }
    out.levels = levels;
    out
}

/// The one local service whose `health:` address a tcp or http dep probes. An address several
/// services share names the one among them the dep matches exactly (an http dep with the very
/// same url, a tcp dep and the only tcp `health:`), else none: autoheal does not guess.
fn by_address(services: &[Service], at: &HashMap<Addr, Vec<usize>>, dep: &Dep) -> Option<usize> {
    let candidates = at.get(&Addr::of_dep(dep)?)?;
    if let [one] = candidates.as_slice() {
        return Some(*one);
    }
    let exact: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| match (dep, &services[i].health) {
            (Dep::Http { url, .. }, Some(Probe::Http { url: own, .. })) => url == own,
            (Dep::Tcp { .. }, Some(Probe::Tcp { .. })) => true,
            _ => false,
        })
        .collect();
    match exact.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::fmt::Write;
    use std::path::Path;

    /// The services of a valid file.
    fn services(yaml: &str) -> Vec<Service> {
        match load_str(yaml, Path::new("t.yaml")) {
            Ok(c) => c.services,
            Err(e) => panic!("{e}"),
        }
    }

    /// A service with these `health:` and deps (which `load` might reject as a cycle).
    fn svc(name: &str, health: Option<Probe>, deps: Vec<Dep>) -> Service {
        let yaml = format!("{name}:\n  pname: x\n  script: s\n");
        let mut s = services(&yaml).remove(0);
        s.health = health;
        s.deps = deps;
        s
    }

    fn tcp(name: &str, host: &str, port: u16) -> Dep {
        Dep::Tcp {
            name: name.into(),
            host: host.into(),
            port,
            timeout: crate::defaults::PROBE_TIMEOUT,
        }
    }

    fn http(name: &str, url: &str) -> Dep {
        Dep::Http {
            name: name.into(),
            url: url.into(),
            timeout: crate::defaults::PROBE_TIMEOUT,
        }
    }

    fn by_name(name: &str) -> Dep {
        Dep::Service { name: name.into() }
    }

    fn health_tcp(host: &str, port: u16) -> Option<Probe> {
        Some(Probe::Tcp {
            host: host.into(),
            port,
            timeout: crate::defaults::PROBE_TIMEOUT,
        })
    }

    fn health_url(url: &str) -> Option<Probe> {
        Some(Probe::Http {
            url: url.into(),
            timeout: crate::defaults::PROBE_TIMEOUT,
        })
    }

    fn names(services: &[Service], cycle: &Cycle) -> Vec<String> {
        cycle.services().map(|i| services[i].name.clone()).collect()
    }

    #[test]
    fn addresses_are_the_same_host_and_port() {
        let a = |h: &str, p| Addr::new(h, p);
        assert_eq!(a("localhost", 80), a("127.0.0.1", 80));
        assert_eq!(a("LocalHost.", 80), a("127.0.0.1", 80));
        assert_eq!(a("[::1]", 80), a("::1", 80));
        assert_eq!(a("0:0:0:0:0:0:0:1", 80), a("::1", 80));
        assert_eq!(a("DB.example.org", 5432), a("db.example.org.", 5432));
        assert_ne!(a("127.0.0.1", 80), a("127.0.0.1", 81));
        assert_ne!(a("127.0.1.1", 80), a("127.0.0.1", 80));
        assert_ne!(a("::1", 80), a("127.0.0.1", 80));
        assert_ne!(a("db", 80), a("db.example.org", 80));
        let u = |url: &str| Addr::of_url(url);
        assert_eq!(
            u("http://localhost:8080/health"),
            Some(a("127.0.0.1", 8080))
        );
        assert_eq!(u("http://127.0.0.1/x?y#z"), Some(a("127.0.0.1", 80)));
        assert_eq!(u("HTTPS://example.org"), Some(a("example.org", 443)));
        assert_eq!(u("http://user:pw@[::1]:9000/"), Some(a("::1", 9000)));
        assert_eq!(u("http://[::1]/"), Some(a("::1", 80)));
        assert_eq!(u("http://host:notaport/"), None);
        assert_eq!(u("no scheme"), None);
    }

    #[test]
    fn edges_by_name_and_by_address() {
        let services = vec![
            svc("db", health_tcp("127.0.0.1", 5432), vec![]),
            svc(
                "app",
                health_url("http://127.0.0.1:8080/health"),
                vec![
                    tcp("database", "localhost", 5432),
                    tcp("remote", "10.0.0.7", 5432),
                ],
            ),
            svc(
                "web",
                None,
                vec![
                    by_name("db"),
                    http("app", "http://localhost:8080/other"),
                    Dep::Lua {
                        name: "lua".into(),
                        chunk: crate::config::LuaChunk {
                            source: "return true".into(),
                            line: 1,
                            label: "web.dep[lua].lua".into(),
                            service: "web".into(),
                        },
                        timeout: crate::defaults::LUA_TIMEOUT,
                    },
                ],
            ),
        ];
        let g = Graph::new(&services);
        assert_eq!(g.edges(0), &[]);
        assert_eq!(
            g.edges(1),
            &[Edge {
                from: 1,
                dep: 0,
                to: 0,
                by: By::Address
            }]
        );
        assert_eq!(g.edge(1, 1), None, "10.0.0.7 is another host");
        assert_eq!(
            g.edges(2),
            &[
                Edge {
                    from: 2,
                    dep: 0,
                    to: 0,
                    by: By::Name
                },
                Edge {
                    from: 2,
                    dep: 1,
                    to: 1,
                    by: By::Address
                },
            ]
        );
        assert!(g.cycles().is_empty());
        assert_eq!(g.order(), &[0, 1, 2]);
        assert_eq!((g.level(0), g.level(1), g.level(2)), (0, 1, 2));
        assert_eq!(g.index("app"), Some(1));
        assert_eq!(g.closure(2, |_| false), vec![0, 1, 2]);
        assert_eq!(g.closure(2, |i| i == 0), vec![1, 2]);
    }

    #[test]
    fn a_shared_health_address_names_only_an_exact_match() {
        // nginx serves the health pages of two apps on one port.
        let services = vec![
            svc("nginx", health_tcp("127.0.0.1", 80), vec![]),
            svc("app1", health_url("http://127.0.0.1/app1/health"), vec![]),
            svc("app2", health_url("http://127.0.0.1/app2/health"), vec![]),
            svc(
                "web",
                None,
                vec![
                    http("a1", "http://127.0.0.1/app1/health"),
                    tcp("front", "127.0.0.1", 80),
                    http("other", "http://127.0.0.1/"),
                ],
            ),
        ];
        let g = Graph::new(&services);
        let to: Vec<_> = (0..3).map(|d| g.edge(3, d).map(|e| e.to)).collect();
        assert_eq!(to, vec![Some(1), Some(0), None]);
    }

    #[test]
    fn cycles_by_address_and_by_name() {
        let services = vec![
            svc(
                "a",
                health_tcp("127.0.0.1", 9001),
                vec![tcp("b", "127.0.0.1", 9002)],
            ),
            svc(
                "b",
                health_url("http://localhost:9002/health"),
                vec![tcp("a", "127.0.0.1", 9001)],
            ),
            svc("c", None, vec![by_name("d")]),
            svc("d", health_tcp("127.0.0.1", 9004), vec![by_name("c")]),
            svc(
                "e",
                health_tcp("127.0.0.1", 9005),
                vec![tcp("me", "localhost", 9005)],
            ),
            svc("f", None, vec![by_name("a")]),
        ];
        let g = Graph::new(&services);
        let found: Vec<_> = g.cycles().iter().map(|c| names(&services, c)).collect();
        assert_eq!(found, vec![vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
        let ab = &g.cycles()[0];
        assert_eq!(
            ab.hops[0],
            Edge {
                from: 0,
                dep: 0,
                to: 1,
                by: By::Address
            }
        );
        assert!(ab.hops.iter().all(|h| h.by == By::Address));
        assert!(g.cycles()[1].hops.iter().all(|h| h.by == By::Name));
        // Every service is in the order once, cycles or not.
        let mut order = g.order().to_vec();
        order.sort_unstable();
        assert_eq!(order, (0..services.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_service_reached_twice_by_one_service_closes_a_cycle_once() {
        let services = vec![
            svc(
                "a",
                health_tcp("127.0.0.1", 9001),
                vec![by_name("b"), tcp("b-port", "127.0.0.1", 9002)],
            ),
            svc("b", health_tcp("127.0.0.1", 9002), vec![by_name("a")]),
        ];
        assert_eq!(Graph::new(&services).cycles().len(), 1);
    }

    /// A chain of `n` services, each waiting on the next by name or (every other one) at its
    /// health address; the last one waits on the first when `closed`.
    fn chain(n: usize, closed: bool) -> String {
        let mut yaml = String::new();
        for i in 0..n {
            let next = (i + 1) % n;
            write!(yaml, "s{i}:\n  pname: s{i}\n  script: start\n").unwrap();
            writeln!(yaml, "  health: {{host: 127.0.0.1, port: {}}}", 10_000 + i).unwrap();
            if i + 1 < n || closed {
                if i % 2 == 0 {
                    writeln!(yaml, "  dep: [{{name: s{next}}}]").unwrap();
                } else {
                    writeln!(
                        yaml,
                        "  dep: [{{name: n, host: localhost, port: {}}}]",
                        10_000 + next
                    )
                    .unwrap();
                }
            }
        }
        yaml
    }

    #[test]
    fn a_chain_of_10000_services_is_walked_without_deep_recursion() {
        const N: usize = 10_000;
        let cfg = load_str(&chain(N, false), Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let g = &cfg.graph;
        assert!(g.cycles().is_empty());
        assert_eq!(g.level(0), N - 1);
        assert_eq!(g.level(N - 1), 0);
        assert_eq!(g.order().first(), Some(&(N - 1)));
        assert_eq!(g.order().last(), Some(&0));
        assert_eq!(g.closure(0, |_| false).len(), N);
        // Closed into one ring: one cycle through all of them, by name and by address.
        let Err(e) = load_str(&chain(N, true), Path::new("t.yaml")) else {
            panic!("a ring of services must be rejected");
        };
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0]
                .message
                .starts_with("dependency cycle: s0 → s1 → s2 → ")
        );
    }
}
