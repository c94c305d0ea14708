//! `autoheal graph`: the dependency graph of a file as Graphviz DOT. Local services are boxes
//! (their name and how autoheal tells they are alive), a dep by name or at a local service's
//! `health:` address is an edge to that service, a remote tcp or http dep is an edge to a
//! dashed ellipse labelled with its target (one per distinct target, as the probes are made
//! once per target), and a lua dep is a hexagon of its own. Edges go from a service to what
//! it waits on, so the foundations are drawn at the bottom.
//!
//! With a [`StatusReport`] (`--status`), each node is filled with the colour of its state and
//! says it, with the reason as its tooltip. This module only renders: it observes nothing.
//!
//! Every name, path, url, chunk and reason comes from a file or a probe: each is written as
//! one line ([`one_line`]) and quoted for DOT ([`quote`]), so no text can end a string, add an
//! attribute or a node, or be taken for one of Graphviz's `\N`-style escapes.

use super::{DepStatus, ServiceStatus, StatusReport, one_line};
use crate::config::{Config, Dep, Liveness, Probe, Service};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// The longest text of a chunk shown in a label; past it, `…`.
const CHUNK_CHARS: usize = 48;

/// The DOT text of `config`'s graph; coloured by `status` when there is one.
pub fn render(config: &Config, status: Option<&StatusReport>) -> String {
    // Paths are shown relative to the file's directory (as it was named, or absolute), as
    // the file most likely wrote them.
    let dirs: Vec<std::path::PathBuf> = [config.path.clone(), config.absolute_path()]
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    let by_name: HashMap<&str, &ServiceStatus> = status
        .map(|r| r.services.iter().map(|s| (s.name.as_str(), s)).collect())
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "digraph autoheal {{");
    let _ = writeln!(
        out,
        "  label={}; labelloc=t; fontname=\"Helvetica\"; fontsize=13;",
        quote(&match status {
            Some(r) => format!("{} at {}", config.path.display(), r.time),
            None => config.path.display().to_string(),
        })
    );
    out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n");

    for (i, svc) in config.services.iter().enumerate() {
        let mut lines = vec![svc.name.clone()];
        lines.extend(checked_by(svc, &dirs));
        let mut attrs = vec![
            "shape=box".to_string(),
            "style=\"rounded,filled\"".to_string(),
        ];
        match by_name.get(svc.name.as_str()) {
            Some(s) => {
                lines.push(match s.pid {
                    Some(pid) if s.alive => format!("{} (pid {pid})", s.state),
                    _ => s.state.to_string(),
                });
                attrs.push(format!("fillcolor=\"{}\"", state_colour(s.state)));
                attrs.push(format!(
                    "tooltip={}",
                    quote(s.reason.as_deref().unwrap_or(s.state))
                ));
            }
            None => attrs.push("fillcolor=\"white\"".into()),
        }
        attrs.insert(0, format!("label={}", label(&lines)));
        let _ = writeln!(out, "  s{i} [{}];", attrs.join(", "));
    }

    // One node per distinct remote target; one per lua dep.
    let mut targets: HashMap<(&'static str, String), usize> = HashMap::new();
    let mut externals: Vec<String> = Vec::new();
    let mut edges: Vec<String> = Vec::new();
    let mut luas = 0usize;
    for (i, svc) in config.services.iter().enumerate() {
        let deps = by_name.get(svc.name.as_str()).map(|s| &s.deps);
        let dep_status = |name: &str| deps.and_then(|ds| ds.iter().find(|d| d.name == name));
        for d in &svc.deps {
            if let Some((local, by)) = config.local_dep(svc, d) {
                let to = config.graph.index(&local.name).unwrap_or_default();
                let mut attrs = Vec::new();
                if by == crate::config::By::Address {
                    // Named by its address: say which, as the dep wrote it.
                    let mut text = target_of(d).map(|(_, t)| t).unwrap_or_default();
                    if d.name() != local.name {
                        text = format!("{} {text}", d.name());
                    }
                    attrs.push(format!("label={}", quote(&text)));
                }
                edges.push(edge(i, &format!("s{to}"), &attrs));
                continue;
            }
            match d {
                Dep::Tcp { .. } | Dep::Http { .. } => {
                    let Some((kind, target)) = target_of(d) else {
                        continue;
                    };
                    let n = match targets.get(&(kind, target.clone())) {
                        Some(&n) => n,
                        None => {
                            let n = externals.len();
                            targets.insert((kind, target.clone()), n);
                            let mut attrs = vec![
                                format!("label={}", label(&[format!("{kind} {target}")])),
                                "shape=ellipse".into(),
                                "style=\"dashed,filled\"".into(),
                            ];
                            dep_attrs(&mut attrs, dep_status(d.name()));
                            externals.push(format!("  t{n} [{}];", attrs.join(", ")));
                            n
                        }
                    };
                    // The node is the target; the edge says what this service calls it.
                    let name = format!("label={}", quote(d.name()));
                    edges.push(edge(i, &format!("t{n}"), &[name]));
                }
                Dep::Lua { name, chunk, .. } => {
                    let n = luas;
                    luas += 1;
                    let mut attrs = vec![
                        format!(
                            "label={}",
                            label(&[name.clone(), format!("lua: {}", short(&chunk.source))])
                        ),
                        "shape=hexagon".into(),
                        "style=filled".into(),
                    ];
                    dep_attrs(&mut attrs, dep_status(name));
                    externals.push(format!("  l{n} [{}];", attrs.join(", ")));
                    edges.push(edge(i, &format!("l{n}"), &[]));
                }
                // A name alone always names a local service (`load` checks it).
                Dep::Service { .. } => {}
            }
        }
    }
    for line in externals.iter().chain(&edges) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("}\n");
    out
}

/// The lines of a service's label that say how autoheal tells it is alive and well.
fn checked_by(svc: &Service, dirs: &[std::path::PathBuf]) -> Vec<String> {
    let shown = |p: &Path| {
        let rel = dirs.iter().find_map(|d| p.strip_prefix(d).ok());
        rel.unwrap_or(p).display().to_string()
    };
    let mut lines = match &svc.liveness {
        Liveness::Pname(p) => vec![format!("pname: {}", p.source)],
        Liveness::PidFile(f) => vec![format!("pid_file: {}", shown(f))],
        Liveness::Both { pname, pid_file } => vec![
            format!("pname: {}", pname.source),
            format!("pid_file: {}", shown(pid_file)),
        ],
    };
    match &svc.health {
        Some(Probe::Tcp { host, port, .. }) => lines.push(format!("health: {host}:{port}")),
        Some(Probe::Http { url, .. }) => lines.push(format!("health: {url}")),
        None => {}
    }
    if let Some(c) = &svc.check {
        lines.push(format!("check: {}", short(&c.source)));
    }
    lines
}

/// A remote dep's kind and target as `status` shows them: `host:port`, or the url.
fn target_of(d: &Dep) -> Option<(&'static str, String)> {
    match d {
        Dep::Tcp { host, port, .. } => Some(("tcp", format!("{host}:{port}"))),
        Dep::Http { url, .. } => Some(("http", url.clone())),
        Dep::Service { .. } | Dep::Lua { .. } => None,
    }
}

/// The fill and tooltip of a dep's node: whether it was ready, and why not.
fn dep_attrs(attrs: &mut Vec<String>, status: Option<&DepStatus>) {
    match status {
        Some(d) => {
            let colour = if d.ready { "palegreen" } else { "lightcoral" };
            attrs.push(format!("fillcolor=\"{colour}\""));
            let why = match &d.reason {
                Some(r) => format!("not ready: {r}"),
                None => "ready".into(),
            };
            attrs.push(format!("tooltip={}", quote(&why)));
        }
        None => attrs.push("fillcolor=\"white\"".into()),
    }
}

fn edge(from: usize, to: &str, attrs: &[String]) -> String {
    if attrs.is_empty() {
        format!("  s{from} -> {to};")
    } else {
        format!("  s{from} -> {to} [{}];", attrs.join(", "))
    }
}

/// The fill of a state word of `status` (`report::STATE_WORDS`); a word this build does not
/// know is grey.
pub fn state_colour(state: &str) -> &'static str {
    match state {
        "alive" => "palegreen",
        "unhealthy" | "restart" => "orange",
        "dead" => "lightcoral",
        "waiting" => "lightyellow",
        "grace" | "starting" => "lightblue",
        "backoff" => "sandybrown",
        "gave_up" => "indianred",
        "paused" => "plum",
        _ => "lightgrey",
    }
}

/// A chunk's first line, cut to [`CHUNK_CHARS`]; `…` when anything was left out.
fn short(source: &str) -> String {
    let trimmed = source.trim();
    let first = trimmed.lines().next().unwrap_or_default().trim();
    let mut text: String = first.chars().take(CHUNK_CHARS).collect();
    if text.len() < first.len() || first.len() < trimmed.len() {
        text.push('…');
    }
    text
}

/// A label of several lines, each quoted, joined by DOT's centred line break.
fn label(lines: &[String]) -> String {
    let inner: Vec<String> = lines.iter().map(|l| escape(l)).collect();
    format!("\"{}\"", inner.join("\\n"))
}

/// `s` as a DOT quoted string that Graphviz shows as `s` is (as one line).
pub fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// `s` as one line ([`one_line`]), with `"` and `\` escaped: inside a DOT string a backslash
/// starts an escape (`\n`, `\N`, `\G`, a line continuation), so every one is doubled.
pub(crate) fn escape(s: &str) -> String {
    let line = one_line(s);
    let mut out = String::with_capacity(line.len() + 2);
    for c in line.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_string_one_dot_string() {
        assert_eq!(quote("web"), "\"web\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("a\\N"), "\"a\\\\N\"");
        // A newline becomes the visible escape `\n`, its backslash doubled: no line break.
        assert_eq!(quote("x\ny"), "\"x\\\\ny\"");
        assert_eq!(quote("end\\"), "\"end\\\\\"");
    }

    #[test]
    fn every_state_word_has_its_colour() {
        for word in crate::report::STATE_WORDS {
            assert_ne!(state_colour(word), "lightgrey", "{word}");
        }
    }

    #[test]
    fn chunks_are_shortened() {
        assert_eq!(short("return true"), "return true");
        assert_eq!(short("local a = 1\nreturn a"), "local a = 1…");
        assert_eq!(short(&"x".repeat(60)).chars().count(), CHUNK_CHARS + 1);
    }
}
