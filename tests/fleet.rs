//! `autoheal fleet` through the real binary: the example fleet of three hosts (levels per
//! service, the critical path and its total, the external deps, exit 0), given as a directory
//! or as files; the same fleet with a cycle across its three hosts (exit 2, the cycle spelled
//! with each file and line); a host told from its own addresses ("derived"); a file that does
//! not load; `--dot` read back by Graphviz (a missing `dot` fails under CI). Nothing is probed
//! or started: the files name loopback or TEST-NET addresses only.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `autoheal fleet ARGS`, run in the source tree.
fn fleet(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoheal"));
    cmd.current_dir(root())
        .env_remove("AUTOHEAL_CONFIG")
        .arg("fleet");
    cmd.args(args);
    output_within(cmd, LIMIT)
}

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

/// The line of `needle` in the file (1-based).
fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    1 + text
        .lines()
        .position(|l| l.starts_with(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", path.display()))
}

const EXAMPLE: &str = "\
Fleet of 3 hosts, 6 services: 2 deps on their own host, 3 across hosts, 1 external, 0 lua or ambiguous. Nothing was probed or started.

Hosts:
  h1  examples/fleet/h1.yaml: 127.0.1.1 (settings.host)
  h2  examples/fleet/h2.yaml: 127.0.1.2 (settings.host)
  h3  examples/fleet/h3.yaml: 127.0.1.3 (settings.host)

Recovery order across hosts (5 levels): level 0 waits on nothing in the fleet; each level starts once
the one before is up, services of one level in parallel. READY: the earliest after a power cut.
level 0  cache@h2    ready     1s
level 0  db@h3       ready    20s
level 1  auth@h2     ready    30s  after: cache, db = db@h3 (127.0.1.3:5432)
level 2  api@h1      ready    35s  after: auth = auth@h2 (http://127.0.1.2:9100/health), smtp 127.0.9.9:25 (external)
level 3  web@h1      ready    37s  after: api
level 4  metrics@h3  ready    38s  after: web = web@h1 (http://127.0.1.1:8080/)

Critical path after a power cut: 38s (each service counted by its warmup, else its grace;
from the hosts' first ticks, external deps taken as up):
  db@h3       +20s (warmup)     ready    20s
  auth@h2     +10s (grace)      ready    30s
  api@h1      +5s (warmup)      ready    35s
  web@h1      +2s (warmup)      ready    37s
  metrics@h3  +1s (warmup)      ready    38s
  db@h3 → auth@h2 → api@h1 → web@h1 → metrics@h3 = 38s

External deps (no service of any of these files listens there):
  examples/fleet/h1.yaml:25  api: smtp 127.0.9.9:25
";

/// The example fleet, as a directory: its levels, critical path and externals, whole.
#[test]
fn the_example_fleet_from_its_directory() {
    let out = fleet(&["examples/fleet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), EXAMPLE);
    assert_eq!(stderr(&out), "");
    // The external dep's line is where its list item starts.
    let h1 = root().join("examples/fleet/h1.yaml");
    assert_eq!(line_of(&h1, "    - name: smtp"), 25);
}

/// The same files named one by one (a shell's glob) say the same.
#[test]
fn the_example_fleet_from_its_files() {
    let out = fleet(&[
        "examples/fleet/h1.yaml",
        "examples/fleet/h2.yaml",
        "examples/fleet/h3.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), EXAMPLE);
}

/// The example fleet with h3's db waiting on h1's api: api → auth → db → api never comes up.
fn cyclic(f: &Fixture) -> [PathBuf; 3] {
    let files = ["h1.yaml", "h2.yaml", "h3.yaml"].map(|n| f.path(n));
    for (n, to) in ["h1.yaml", "h2.yaml", "h3.yaml"].iter().zip(&files) {
        let mut text = std::fs::read_to_string(root().join("examples/fleet").join(n)).unwrap();
        if *n == "h3.yaml" {
            text = text.replace(
                "  warmup: 20s                # crash recovery after a power cut\n",
                "  warmup: 20s\n  dep:\n    - name: api\n      url: http://127.0.1.1:9000/\n",
            );
        }
        std::fs::write(to, text).unwrap();
    }
    files
}

#[test]
fn a_cycle_across_three_hosts_is_rejected_with_its_files_and_lines() {
    let f = Fixture::new();
    let [h1, h2, h3] = cyclic(&f);
    let out = fleet(&[
        h1.to_str().unwrap(),
        h2.to_str().unwrap(),
        h3.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "",
        "no order is printed for a fleet that never comes up"
    );
    let (d1, d2, d3) = (h1.display(), h2.display(), h3.display());
    let (api, auth, db) = (
        line_of(&h1, "api:"),
        line_of(&h2, "auth:"),
        line_of(&h3, "db:"),
    );
    let err = stderr(&out);
    let expected = format!(
        "autoheal: fleet: dependency cycle across hosts: {d1}:{api} api → {d2}:{auth} auth → \
         {d3}:{db} db → {d1}:{api} api\n\
         \x20 {d1}:{}: api's dep `auth` (http://127.0.1.2:9100/health) waits on auth@h2, at its `health:` port on its host\n\
         \x20 {d2}:{}: auth's dep `db` (127.0.1.3:5432) waits on db@h3, which listens there (`listen:` on {d3}:{})\n\
         \x20 {d3}:{}: db's dep `api` (http://127.0.1.1:9000/) waits on api@h1, at its `health:` port on its host\n\
         \x20 = help: after a power cut none of these services ever starts: each waits on the next; remove one of these deps\n\
         1 cycle in the fleet; nothing was probed or started.\n",
        line_of(&h1, "    - name: auth"),
        line_of(&h2, "    - name: db"),
        line_of(&h3, "  listen:"),
        line_of(&h3, "    - name: api"),
    );
    assert_eq!(err, expected);
}

/// `--dot` draws a cluster per host and the cross-host edges; Graphviz reads it, with or
/// without a cycle (drawn in red; the exit code is still 2).
#[test]
fn dot_draws_one_cluster_per_host() {
    let Some(dot) = dot() else { return };
    let f = Fixture::new();
    let [h1, h2, h3] = cyclic(&f);
    let ok = fleet(&["--dot", "examples/fleet"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let cyc = fleet(&[
        "--dot",
        h1.to_str().unwrap(),
        h2.to_str().unwrap(),
        h3.to_str().unwrap(),
    ]);
    assert_eq!(cyc.status.code(), Some(2));
    assert!(stderr(&cyc).contains("dependency cycle across hosts"));
    for (name, text) in [("ok", stdout(&ok)), ("cycle", stdout(&cyc))] {
        for h in 0..3 {
            assert!(text.contains(&format!("subgraph cluster_{h} {{")), "{text}");
        }
        let file = f.path(&format!("{name}.dot"));
        std::fs::write(&file, &text).unwrap();
        let mut cmd = Command::new(&dot);
        cmd.arg("-Tsvg").arg(&file);
        let out = output_within(cmd, LIMIT);
        assert!(
            out.status.success() && stderr(&out).is_empty(),
            "dot -Tsvg refused the DOT: {}\n{text}",
            stderr(&out)
        );
        assert!(stdout(&out).contains("<svg"));
    }
    let text = stdout(&ok);
    // The three cross-host edges are drawn as such; the external target has its own node.
    assert_eq!(text.matches("color=\"#1f5fbf\"").count(), 3, "{text}");
    assert!(text.contains("\"127.0.9.9:25 (external)\""), "{text}");
    assert_eq!(stdout(&cyc).matches("color=red").count(), 3);
}

/// Without settings.host, a file's host is told from its non-loopback health: and listen:
/// addresses, and the output says "derived"; one with neither is listed as unknown.
#[test]
fn a_host_without_settings_host_is_derived_and_said_so() {
    let f = Fixture::new();
    let svc = "  pname: fleet-test-never-runs\n  script: exit 1\n";
    std::fs::write(
        f.path("db1.yaml"),
        format!("db:\n{svc}  health: {{host: 192.0.2.10, port: 5432}}\n  warmup: 4s\n"),
    )
    .unwrap();
    std::fs::write(
        f.path("app1.yaml"),
        format!(
            "app:\n{svc}  grace: 2s\n  dep:\n    - {{name: db, host: 192.0.2.10, port: 5432}}\n"
        ),
    )
    .unwrap();
    let out = fleet(&[f.dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let dir = f.dir.path().display();
    assert!(
        text.contains(&format!(
            "  db1   {dir}/db1.yaml: 192.0.2.10 (derived from its health: and listen: addresses)\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("  app1  {dir}/app1.yaml: unknown: ")),
        "{text}"
    );
    assert!(
        text.contains("level 1  app@app1  ready     6s  after: db = db@db1 (192.0.2.10:5432)\n"),
        "{text}"
    );
    assert!(text.contains("  db@db1 → app@app1 = 6s\n"), "{text}");
    assert!(
        text.contains("External deps (no service of any of these files listens there): none\n"),
        "{text}"
    );
}

/// A file that does not load: its errors, with their positions, and which file; exit 2.
#[test]
fn a_file_that_does_not_load_is_named() {
    let f = Fixture::new();
    std::fs::write(
        f.path("bad.yaml"),
        "web:\n  pname: x\n  script: s\n  listen: 10.0.0.5\n",
    )
    .unwrap();
    let bad = f.path("bad.yaml");
    let out = fleet(&["examples/fleet", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:4:11: web: bad `listen` address `10.0.0.5`: port `10.0.0.5` is not a number",
            bad.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "autoheal: fleet: 1 of 4 files does not load: {}; nothing was probed or started",
            bad.display()
        )),
        "{err}"
    );
    // A directory without *.yaml, and no file at all.
    let empty = f.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = fleet(&[empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("holds no *.yaml file"));
    assert_eq!(fleet(&[]).status.code(), Some(2));
}

/// Every example of the fleet validates with `check` and names loopback addresses only.
#[test]
fn the_example_fleet_checks_and_stays_on_loopback() {
    let ip = regex::Regex::new(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b").unwrap();
    for n in ["h1", "h2", "h3"] {
        let path = format!("examples/fleet/{n}.yaml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoheal"));
        cmd.current_dir(root()).args(["check", "-c", &path]);
        let out = output_within(cmd, LIMIT);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        assert!(text.contains("for `autoheal fleet examples/fleet` ONLY: never `run`"));
        for m in ip.captures_iter(&text) {
            let a: std::net::IpAddr = m[1].parse().unwrap();
            assert!(a.is_loopback(), "{path} names {a}");
        }
    }
}
