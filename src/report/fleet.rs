//! `autoheal fleet`: the words of the fleet view ([`crate::fleet`]): the hosts, the recovery
//! order across them, the critical path, the external and ambiguous deps, a cycle as an error,
//! and the whole fleet as Graphviz DOT, one cluster per host. Renders only.

use super::graph::quote;
use crate::config::{By, Dep};
use crate::fleet::{Fleet, HostFrom, Source, Wait};
use crate::fmt::duration;
use std::fmt::Write;

/// `h1.yaml:12 api`: a node as the cycle and the lists name it.
pub fn at(fleet: &Fleet, node: usize) -> String {
    let s = fleet.service(node);
    format!(
        "{}:{} {}",
        fleet.host(node).config.path.display(),
        s.line,
        s.name
    )
}

/// `api@h1`: a node in the order's lists.
fn short(fleet: &Fleet, node: usize) -> String {
    format!("{}@{}", fleet.service(node).name, fleet.host(node).name())
}

/// A tcp or http dep's target as written.
fn target(d: &Dep) -> String {
    match d {
        Dep::Tcp { host, port, .. } => format!("{host}:{port}"),
        Dep::Http { url, .. } => url.clone(),
        Dep::Service { name } => name.clone(),
        Dep::Lua { .. } => "lua".into(),
    }
}

/// How a matched dep reached its service, for the cycle's lines.
fn how(fleet: &Fleet, wait: &Wait) -> String {
    match wait {
        Wait::Local { to, by: By::Name } => {
            format!("{} of the same file, by name", short(fleet, *to))
        }
        Wait::Local { to, .. } => format!(
            "{} of the same file, at its `health:` address",
            short(fleet, *to)
        ),
        Wait::Listening {
            to,
            source: Source::Listen(line),
        } => format!(
            "{}, which listens there (`listen:` on {}:{line})",
            short(fleet, *to),
            fleet.host(*to).config.path.display()
        ),
        Wait::Listening { to, .. } => {
            format!("{}, at its `health:` port on its host", short(fleet, *to))
        }
        _ => String::new(),
    }
}

/// The error of a fleet with cycles: each spelled out with its files and lines, then the
/// dep of each hop, and what to do.
pub fn cycles(fleet: &Fleet) -> String {
    let mut out = String::new();
    for c in fleet.cycles() {
        let mut path: Vec<String> = c.hops.iter().map(|h| at(fleet, h.from)).collect();
        path.push(path[0].clone());
        let across = if fleet.across_hosts(c) {
            " across hosts"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "autoheal: fleet: dependency cycle{across}: {}",
            path.join(" → ")
        );
        for h in &c.hops {
            let svc = fleet.service(h.from);
            let d = &svc.deps[h.dep];
            let _ = writeln!(
                out,
                "  {}:{}: {}'s dep `{}` ({}) waits on {}",
                fleet.host(h.from).config.path.display(),
                svc.dep_line(h.dep),
                svc.name,
                d.name(),
                target(d),
                how(fleet, &fleet.waits(h.from)[h.dep])
            );
        }
        let _ = writeln!(
            out,
            "  = help: after a power cut none of these services ever starts: each waits on the \
             next; remove one of these deps"
        );
    }
    let n = fleet.cycles().len();
    let _ = write!(
        out,
        "{n} cycle{} in the fleet; nothing was probed or started.",
        if n == 1 { "" } else { "s" }
    );
    out
}

/// What a file's host is, for the hosts' list.
fn host_words(fleet: &Fleet, h: usize) -> String {
    let host = &fleet.hosts[h];
    match host.from {
        HostFrom::Declared => format!("{} (settings.host)", host.addresses.join(", ")),
        HostFrom::Derived => format!(
            "{} (derived from its health: and listen: addresses)",
            host.addresses.join(", ")
        ),
        HostFrom::Unknown => "unknown: no settings.host, and no health: or listen: at an address \
                              other hosts reach; nothing of another file can wait on it"
            .to_string(),
    }
}

/// The text `autoheal fleet` prints (a fleet without cycles).
pub fn render(fleet: &Fleet) -> String {
    let mut out = String::new();
    let (mut local, mut across, mut external, mut other) = (0, 0, 0, 0);
    for v in 0..fleet.len() {
        for w in fleet.waits(v) {
            match w {
                Wait::Local { .. } => local += 1,
                Wait::Listening { to, .. } if fleet.host_index(*to) == fleet.host_index(v) => {
                    local += 1
                }
                Wait::Listening { .. } => across += 1,
                Wait::External => external += 1,
                Wait::Ambiguous(_) | Wait::Lua => other += 1,
            }
        }
    }
    let _ = writeln!(
        out,
        "Fleet of {} host{}, {} services: {local} deps on their own host, {across} across hosts, \
         {external} external, {other} lua or ambiguous. Nothing was probed or started.",
        fleet.hosts.len(),
        if fleet.hosts.len() == 1 { "" } else { "s" },
        fleet.len(),
    );
    out.push_str("\nHosts:\n");
    let width = fleet
        .hosts
        .iter()
        .map(|h| h.name().len())
        .max()
        .unwrap_or(0);
    for (h, host) in fleet.hosts.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:<width$}  {}: {}",
            host.name(),
            host.config.path.display(),
            host_words(fleet, h)
        );
    }

    let mut nodes: Vec<usize> = (0..fleet.len()).collect();
    nodes.sort_by_key(|&v| fleet.level(v)); // stable: file order within a level
    let depth = nodes.last().map_or(0, |&v| fleet.level(v));
    let _ = writeln!(
        out,
        "\nRecovery order across hosts ({} level{}): level 0 waits on nothing in the fleet; each \
         level starts once\nthe one before is up, services of one level in parallel. READY: the \
         earliest after a power cut.",
        depth + 1,
        if depth == 0 { "" } else { "s" }
    );
    let names: Vec<String> = nodes.iter().map(|&v| short(fleet, v)).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for (&v, name) in nodes.iter().zip(&names) {
        let svc = fleet.service(v);
        let after: Vec<String> = svc
            .deps
            .iter()
            .zip(fleet.waits(v))
            .map(|(d, w)| match w {
                Wait::Local { to, .. } if fleet.service(*to).name == d.name() => {
                    fleet.service(*to).name.clone()
                }
                Wait::Local { to, .. } => format!("{} = {}", d.name(), fleet.service(*to).name),
                Wait::Listening { to, .. } => {
                    format!("{} = {} ({})", d.name(), short(fleet, *to), target(d))
                }
                Wait::External => format!("{} {} (external)", d.name(), target(d)),
                Wait::Ambiguous(_) => format!("{} {} (ambiguous)", d.name(), target(d)),
                Wait::Lua => format!("{} (lua check)", d.name()),
            })
            .collect();
        let after = if after.is_empty() {
            String::new()
        } else {
            format!("  after: {}", after.join(", "))
        };
        let line = format!(
            "level {}  {name:<width$}  ready {:>6}{after}",
            fleet.level(v),
            duration(fleet.ready_at(v))
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }

    let (path, total) = fleet.critical_path();
    let _ = writeln!(
        out,
        "\nCritical path after a power cut: {} (each service counted by its warmup, else its \
         grace;\nfrom the hosts' first ticks, external deps taken as up):",
        duration(total)
    );
    for &v in &path {
        let svc = fleet.service(v);
        let by = if svc.warmup.is_some() {
            "warmup"
        } else {
            "grace"
        };
        let plus = format!("+{} ({by})", duration(svc.warmup()));
        let _ = writeln!(
            out,
            "  {:<width$}  {plus:<16}  ready {:>6}",
            short(fleet, v),
            duration(fleet.ready_at(v))
        );
    }
    if !path.is_empty() {
        let chain: Vec<String> = path.iter().map(|&v| short(fleet, v)).collect();
        let _ = writeln!(out, "  {} = {}", chain.join(" → "), duration(total));
    }

    let mut externals = Vec::new();
    let mut ambiguous = Vec::new();
    for v in 0..fleet.len() {
        let svc = fleet.service(v);
        let file = fleet.host(v).config.path.display();
        for (i, (d, w)) in svc.deps.iter().zip(fleet.waits(v)).enumerate() {
            let what = format!(
                "{file}:{}  {}: {} {}",
                svc.dep_line(i),
                svc.name,
                d.name(),
                target(d)
            );
            match w {
                Wait::External => externals.push(what),
                Wait::Ambiguous(nodes) => {
                    let who: Vec<String> = nodes.iter().map(|&n| short(fleet, n)).collect();
                    ambiguous.push(format!("{what}: listened at by {}", who.join(", ")));
                }
                _ => {}
            }
        }
    }
    let _ = writeln!(
        out,
        "\nExternal deps (no service of any of these files listens there): {}",
        if externals.is_empty() { "none" } else { "" }.trim_end()
    );
    for e in &externals {
        let _ = writeln!(out, "  {e}");
    }
    if !ambiguous.is_empty() {
        out.push_str(
            "\nAmbiguous deps (several services listen there and none matches exactly; give \
             each a listen: of its own):\n",
        );
        for a in &ambiguous {
            let _ = writeln!(out, "  {a}");
        }
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The whole fleet as DOT: one `cluster_N` per host (its services as boxes), an edge for each
/// dep that waits on a service (bold and blue across hosts, red on a cycle), each external
/// target a dashed ellipse outside every cluster.
pub fn dot(fleet: &Fleet) -> String {
    let on_cycle: std::collections::HashSet<(usize, usize)> = fleet
        .cycles()
        .iter()
        .flat_map(|c| c.hops.iter().map(|h| (h.from, h.dep)))
        .collect();
    let mut out = String::new();
    out.push_str("digraph fleet {\n");
    let (_, total) = fleet.critical_path();
    let title = if fleet.cycles().is_empty() {
        format!(
            "fleet of {} hosts: critical path {}",
            fleet.hosts.len(),
            duration(total)
        )
    } else {
        format!(
            "fleet of {} hosts: {} dependency cycle(s)",
            fleet.hosts.len(),
            fleet.cycles().len()
        )
    };
    let _ = writeln!(
        out,
        "  label={}; labelloc=t; fontname=\"Helvetica\"; fontsize=13; compound=true;",
        quote(&title)
    );
    out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n");
    let critical: std::collections::HashSet<usize> = fleet.critical_path().0.into_iter().collect();
    for (h, host) in fleet.hosts.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{h} {{");
        let label = match host.from {
            HostFrom::Unknown => format!("{} (host unknown)", host.config.path.display()),
            _ => format!(
                "{} {}",
                host.config.path.display(),
                host.addresses.join(", ")
            ),
        };
        let _ = writeln!(
            out,
            "    label={}; style=rounded; color=\"#888888\";",
            quote(&label)
        );
        for v in 0..fleet.len() {
            if fleet.host_index(v) != h {
                continue;
            }
            let svc = fleet.service(v);
            let label = format!(
                "{}\\nwarmup {}, level {}",
                super::graph::escape(&svc.name),
                duration(svc.warmup()),
                fleet.level(v)
            );
            let fill = if critical.contains(&v) {
                "lightyellow"
            } else {
                "white"
            };
            let _ = writeln!(
                out,
                "    n{v} [label=\"{label}\", shape=box, style=\"rounded,filled\", fillcolor=\"{fill}\"];"
            );
        }
        out.push_str("  }\n");
    }
    let mut targets: std::collections::HashMap<String, usize> = Default::default();
    let mut edges = Vec::new();
    for v in 0..fleet.len() {
        let svc = fleet.service(v);
        for (i, (d, w)) in svc.deps.iter().zip(fleet.waits(v)).enumerate() {
            let mut attrs: Vec<String> = Vec::new();
            let to = match w {
                Wait::Local { to, .. } | Wait::Listening { to, .. } => {
                    if fleet.host_index(*to) != fleet.host_index(v) && !on_cycle.contains(&(v, i)) {
                        attrs.push("color=\"#1f5fbf\", penwidth=2".into());
                    }
                    if !matches!(d, Dep::Service { .. }) {
                        attrs.push(format!("label={}", quote(&target(d))));
                    }
                    format!("n{to}")
                }
                Wait::External | Wait::Ambiguous(_) | Wait::Lua => {
                    let key = match w {
                        Wait::Lua => format!("lua {}@{} {}", svc.name, v, d.name()),
                        _ => target(d),
                    };
                    let n = targets.len();
                    let n = *targets.entry(key.clone()).or_insert_with(|| {
                        let (shape, text) = match w {
                            Wait::Lua => ("hexagon", format!("{} (lua)", d.name())),
                            Wait::Ambiguous(_) => ("ellipse", format!("{key} (ambiguous)")),
                            _ => ("ellipse", format!("{key} (external)")),
                        };
                        edges.push(format!(
                            "  t{n} [label={}, shape={shape}, style=dashed];",
                            quote(&text)
                        ));
                        n
                    });
                    attrs.push(format!("label={}", quote(d.name())));
                    format!("t{n}")
                }
            };
            if on_cycle.contains(&(v, i)) {
                attrs.push("color=red, penwidth=2".into());
            }
            if attrs.is_empty() {
                edges.push(format!("  n{v} -> {to};"));
            } else {
                edges.push(format!("  n{v} -> {to} [{}];", attrs.join(", ")));
            }
        }
    }
    for e in edges {
        out.push_str(&e);
        out.push('\n');
    }
    out.push_str("}\n");
    out
}
