//! `autoheal graph` through the real binary and Debian's Graphviz: the DOT parses with `dot`,
//! has a node for every service, remote target and lua dep and an edge for every dep; names,
//! urls and reasons with quotes and backslashes are drawn exactly as written; `--status`
//! colours a dead and an alive service (real processes) apart.
//!
//! Where `dot` is not installed the tests say so and pass, except under CI (`CI=true`), where
//! that is a failure: `.ci/run` installs graphviz.

mod support;

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Graphviz's `dot`, or a skip (a failure under CI).
fn dot() -> Option<PathBuf> {
    let found = ["/usr/bin/dot", "/usr/local/bin/dot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        return cannot_run("no `dot` in /usr/bin (apt-get install graphviz)");
    }
    found
}

/// `autoheal graph ARGS -c conf.yaml` of the fixture: its DOT (exit 0 required).
fn graph(f: &Fixture, args: &[&str]) -> String {
    let mut cmd = f.autoheal_cmd(&["graph", "-c", "{dir}/conf.yaml"]);
    for a in args {
        cmd.arg(f.expand(a));
    }
    let out = output_within(cmd, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

/// The DOT rendered by `dot -T<format>` (which must accept it).
fn render(f: &Fixture, dot: &PathBuf, text: &str, format: &str) -> String {
    let file = f.path("graph.dot");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(dot);
    cmd.arg(format!("-T{format}")).arg(&file);
    let out = output_within(cmd, LIMIT);
    assert!(
        out.status.success() && stderr(&out).is_empty(),
        "dot -T{format} refused the DOT: {}\n{text}",
        stderr(&out)
    );
    stdout(&out)
}

/// A node as Graphviz parsed it.
#[derive(Debug)]
struct Node {
    /// The first line of its label (a service's or a lua dep's name, a target).
    title: String,
    shape: String,
    fill: String,
    /// The rest of its label, lines as DOT wrote them.
    lines: Vec<String>,
    tooltip: String,
}

/// An edge as Graphviz parsed it: (tail, head, label).
type Edge = (u64, u64, String);

/// The nodes of `dot -Tjson`'s answer, by Graphviz's id, and its edges.
fn parse(json: &str) -> (HashMap<u64, Node>, Vec<Edge>) {
    let v: Value = serde_json::from_str(json).unwrap();
    let s = |o: &Value, k: &str| o[k].as_str().unwrap_or_default().to_string();
    let nodes = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            // In DOT `\n` breaks the line and `\\` is one backslash; `\"` was one quote.
            let label = s(o, "label");
            let mut lines: Vec<String> = label
                .split("\\n")
                .map(|l| l.replace("\\\\", "\\"))
                .collect();
            let title = lines.remove(0);
            let node = Node {
                title,
                shape: s(o, "shape"),
                fill: s(o, "fillcolor"),
                lines,
                tooltip: s(o, "tooltip").replace("\\\\", "\\"),
            };
            (o["_gvid"].as_u64().unwrap(), node)
        })
        .collect();
    let edges = v["edges"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    (
                        e["tail"].as_u64().unwrap(),
                        e["head"].as_u64().unwrap(),
                        s(e, "label").replace("\\\\", "\\"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (nodes, edges)
}

/// Every edge as (from's title, to's title, to's shape, label), sorted.
fn edge_titles(
    nodes: &HashMap<u64, Node>,
    edges: &[Edge],
) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = edges
        .iter()
        .map(|(t, h, l)| {
            (
                nodes[t].title.clone(),
                nodes[h].title.clone(),
                nodes[h].shape.clone(),
                l.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

const EVERY_KIND: &str = r#"
db:
  pid_file: '{dir}/db.pid'
  check: return true
  script: 'true'
cache:
  pname: 'cache-{tag}'
  health: {host: 127.0.0.1, port: 18391}
  script: 'true'
app:
  pname: 'app-{tag}'
  health: {url: 'http://127.0.0.1:18392/health'}
  dep:
    - name: db                      # by name
    - name: redis                   # at cache's health address: an edge to cache
      host: localhost
      port: 18391
    - name: pg                      # a remote tcp target, shared with worker
      host: 127.0.9.1
      port: 5432
    - name: auth                    # a remote http target
      url: 'http://127.0.9.2/check'
    - name: quota                   # lua
      lua: return true
  script: 'true'
worker:
  pname: 'worker-{tag}'
  dep:
    - name: database                # the same target as app's pg, by another name
      host: 127.0.9.1
      port: 5432
    - name: app                     # at app's health address
      url: 'http://127.0.0.1:18392/health'
    - name: quota                   # a lua dep of its own
      lua: |
        local ok = true
        return ok
  script: 'true'
"#;

#[test]
fn every_dep_kind_is_a_node_or_an_edge() {
    let Some(dot) = dot() else { return };
    let f = Fixture::new();
    f.config(EVERY_KIND);
    let text = graph(&f, &[]);
    render(&f, &dot, &text, "svg");
    let (nodes, edges) = parse(&render(&f, &dot, &text, "json"));

    let mut titles: Vec<(&str, &str)> = nodes
        .values()
        .map(|n| (n.title.as_str(), n.shape.as_str()))
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            ("app", "box"),
            ("cache", "box"),
            ("db", "box"),
            ("http http://127.0.9.2/check", "ellipse"),
            ("quota", "hexagon"),
            ("quota", "hexagon"),
            ("tcp 127.0.9.1:5432", "ellipse"),
            ("worker", "box"),
        ],
        "{text}"
    );
    let e = |a: &str, b: &str, shape: &str, label: &str| {
        (a.into(), b.into(), shape.into(), label.into())
    };
    assert_eq!(
        edge_titles(&nodes, &edges),
        vec![
            e("app", "cache", "box", "redis localhost:18391"),
            e("app", "db", "box", ""),
            e("app", "http http://127.0.9.2/check", "ellipse", "auth"),
            e("app", "quota", "hexagon", ""),
            e("app", "tcp 127.0.9.1:5432", "ellipse", "pg"),
            e("worker", "app", "box", "http://127.0.0.1:18392/health"),
            e("worker", "quota", "hexagon", ""),
            e("worker", "tcp 127.0.9.1:5432", "ellipse", "database"),
        ],
        "{text}"
    );
    // Each lua dep has its own node.
    let quotas: Vec<u64> = edges
        .iter()
        .filter(|(_, h, _)| nodes[h].title == "quota")
        .map(|(_, h, _)| *h)
        .collect();
    assert_eq!(quotas.len(), 2);
    assert_ne!(quotas[0], quotas[1]);
    // How each service is checked, paths relative to the file.
    let by = |t: &str| nodes.values().find(|n| n.title == t).unwrap();
    assert_eq!(by("db").lines, ["pid_file: db.pid", "check: return true"]);
    assert_eq!(
        by("cache").lines,
        [
            format!("pname: cache-{}", f.tag),
            "health: 127.0.0.1:18391".into()
        ]
    );
    let worker_quota = nodes
        .values()
        .find(|n| n.title == "quota" && n.lines[0].contains("local ok"))
        .expect("the multi-line chunk, shortened");
    assert_eq!(worker_quota.lines, ["lua: local ok = true…"]);
    // Without --status nothing is coloured: nothing was observed.
    assert!(nodes.values().all(|n| n.fill == "white"), "{text}");
}

/// Names, urls and reasons with `"`, `\` and Graphviz escapes (`\N`, `\n`) are drawn exactly
/// as written, and `--status` fills a dead, an alive and a waiting service each in its own
/// colour, with the state in its label and the reason as its tooltip.
#[test]
fn status_colours_each_service_by_its_state() {
    let Some(dot) = dot() else { return };
    let f = Fixture::new();
    let port = http_server(503);
    let pid = f.start_by_hand("up", 1);
    f.config(&format!(
        r#"
up:
  pname: '{up}'
  pid_file: '{{dir}}/up.pid'
  script: 'true'
'do"wn\N':
  pname: 'nothing\\N-{{tag}}'
  script: 'true'
after:
  pname: 'after-{{tag}}'
  dep:
    - name: 'do"wn\N'
    - name: 'q"\'
      url: 'http://127.0.0.1:{port}/a"b\n'
    - name: why
      lua: 'return false, [[b"a\N d\]]'
  script: 'true'
"#,
        up = f.sleeper_re(1),
    ));
    let text = graph(&f, &["--status", "--state-dir", "{dir}/state"]);
    // The svg draws the names as written (XML-escaped).
    let svg = render(&f, &dot, &text, "svg");
    for drawn in [
        "do&quot;wn\\N",
        "pname: nothing\\\\N&#45;",
        "http http://127.0.0.1:",
        "/a&quot;b\\n",
        "q&quot;\\<",
    ] {
        assert!(svg.contains(drawn), "{drawn} in:\n{svg}");
    }
    let (nodes, _) = parse(&render(&f, &dot, &text, "json"));
    let by = |t: &str| {
        nodes
            .values()
            .find(|n| n.title == t)
            .unwrap_or_else(|| panic!("{t} in {text}"))
    };
    let (up, down, after) = (by("up"), by("do\"wn\\N"), by("after"));
    assert_eq!(up.lines.last().unwrap(), &format!("alive (pid {pid})"));
    assert_eq!(down.lines.last().unwrap(), "dead");
    assert_eq!(after.lines.last().unwrap(), "waiting");
    assert_eq!(up.fill, "palegreen");
    assert_eq!(down.fill, "lightcoral");
    assert_eq!(after.fill, "lightyellow");
    assert!(
        down.tooltip.starts_with("dead (no process matches")
            && down.tooltip.contains("nothing\\\\N-"),
        "{}",
        down.tooltip
    );
    assert!(
        after.tooltip.starts_with("waiting on do\"wn\\N (dead"),
        "{}",
        after.tooltip
    );
    let remote = nodes
        .values()
        .find(|n| n.title.starts_with("http "))
        .unwrap();
    assert_eq!(remote.fill, "lightcoral");
    assert_eq!(remote.tooltip, "not ready: HTTP 503");
    // A reason from a chunk, as it returned it.
    let why = by("why");
    assert_eq!(why.fill, "lightcoral");
    assert_eq!(why.tooltip, "not ready: b\"a\\N d\\");
}

/// A bad file is refused as by every command: its errors, exit 2, no DOT.
#[test]
fn a_bad_file_is_refused() {
    let f = Fixture::new();
    f.config("a:\n  pname: a\n  script: x\n  dep:\n    - name: nosuch\n");
    let out = output_within(f.autoheal_cmd(&["graph", "-c", "{dir}/conf.yaml"]), LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
