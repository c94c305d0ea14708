//! The power-cut drill: three "hosts" on loopback (127.0.1.1, 127.0.2.1, 127.0.3.1), each with
//! its own conf.yaml and state dir, nine `autoheal-fixture` services in a dependency graph of
//! depth 3 with cross-host edges. Every fixture is started, then killed (the power cut: stale
//! pid files stay behind); then each host runs `autoheal run` on its own cron-like schedule,
//! unsynchronized, until everything is healthy. What happened is read back from the fixtures'
//! journal, the hosts' `autoheal.log` and the ticks' exit codes and durations.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const HOSTS: [&str; 3] = ["127.0.1.1", "127.0.2.1", "127.0.3.1"];

/// One service of the drill's graph.
#[derive(Debug, Clone)]
pub struct Svc {
    pub name: &'static str,
    /// Index into [`HOSTS`].
    pub host: usize,
    /// Seconds of `/health` 503 after the start.
    pub warmup: f64,
    /// `strict` (exits when started too early) or `degraded` (runs, 503 forever).
    pub mode: &'static str,
    pub deps: &'static [&'static str],
}

/// The graph: three roots, depth 3 (db → api → web → admin), cross-host edges everywhere, one
/// same-host edge (worker → queue on host 3), both fixture modes.
///
/// ```text
/// host1: db (2.0 s)   cache (1.0 s)                admin ← web        (0.5 s)
/// host2: api ← db, cache (1.5 s)   auth ← db (1.0 s)   metrics ← cache (0.5 s, degraded)
/// host3: queue (0.5 s)   web ← api, auth (1.0 s, degraded)   worker ← api, queue (0.5 s)
/// ```
pub fn graph() -> Vec<Svc> {
    let s = |name, host, warmup, mode, deps| Svc {
        name,
        host,
        warmup,
        mode,
        deps,
    };
    vec![
        s("db", 0, 2.0, "strict", &[]),
        s("cache", 0, 1.0, "strict", &[]),
        s("admin", 0, 0.5, "strict", &["web"]),
        s("api", 1, 1.5, "strict", &["db", "cache"]),
        s("auth", 1, 1.0, "strict", &["db"]),
        s("metrics", 1, 0.5, "degraded", &["cache"]),
        s("queue", 2, 0.5, "strict", &[]),
        s("web", 2, 1.0, "degraded", &["api", "auth"]),
        s("worker", 2, 0.5, "strict", &["api", "queue"]),
    ]
}

fn find<'a>(g: &'a [Svc], name: &str) -> &'a Svc {
    g.iter()
        .find(|s| s.name == name)
        .expect("a service of the graph")
}

/// Dependency level: 0 for a root, else 1 + the deepest dep.
pub fn level(g: &[Svc], name: &str) -> usize {
    let s = find(g, name);
    s.deps.iter().map(|d| 1 + level(g, d)).max().unwrap_or(0)
}

/// The physical limit: the longest sum of warm-ups along a dependency path (a service can
/// start only once its deps are warm, and is healthy once it is warm itself).
pub fn critical_path(g: &[Svc]) -> (f64, Vec<&'static str>) {
    fn best(g: &[Svc], name: &'static str) -> (f64, Vec<&'static str>) {
        let s = find(g, name);
        let (t, mut path) = s
            .deps
            .iter()
            .map(|d| best(g, d))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((0.0, Vec::new()));
        path.push(name);
        (t + s.warmup, path)
    }
    g.iter()
        .map(|s| best(g, s.name))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .expect("a graph")
}

/// `name` depends on `on`, directly or not.
pub fn depends_on(g: &[Svc], name: &str, on: &str) -> bool {
    find(g, name)
        .deps
        .iter()
        .any(|d| *d == on || depends_on(g, d, on))
}

/// How a drill is run.
#[derive(Debug, Clone)]
pub struct DrillSpec {
    /// Seconds between two cron ticks of a host.
    pub interval: f64,
    /// Each host's first tick, seconds after power-on (unsynchronized cron).
    pub offsets: [f64; 3],
    /// A host that comes back late: (host, extra seconds before its first tick).
    pub late: Option<(usize, f64)>,
    /// `settings.converge` in seconds (0 = one pass).
    pub converge: f64,
    /// A service that never comes back: its script fails.
    pub dead: Option<&'static str>,
    /// A host whose cron starts two ticks at once, every time.
    pub overlap: Option<usize>,
    /// Keep the cron going at least this long after power-on, even once all is healthy.
    pub observe_at_least: f64,
    /// Give up (and fail) this long after power-on.
    pub deadline: f64,
    /// Leave every `dep:` out of the configs (what a tool without dependencies would do): the
    /// drill must then see premature starts.
    pub no_deps: bool,
}

impl Default for DrillSpec {
    fn default() -> Self {
        DrillSpec {
            interval: 2.0,
            offsets: [0.0, 0.7, 1.3],
            late: None,
            converge: 8.0,
            dead: None,
            overlap: None,
            observe_at_least: 0.0,
            deadline: 40.0,
            no_deps: false,
        }
    }
}

pub const GRACE: f64 = 3.0;

/// One `autoheal run`.
#[derive(Debug, Clone)]
pub struct Tick {
    pub host: usize,
    /// Seconds after power-on.
    pub start: f64,
    pub secs: f64,
    pub code: Option<i32>,
    pub stdout: String,
}

/// One line of the fixtures' journal.
#[derive(Debug, Clone)]
pub struct Start {
    pub time: f64,
    pub name: String,
    pub pid: i32,
    pub deps_ok: bool,
    pub line: String,
}

/// What a drill saw.
#[derive(Debug)]
pub struct Outcome {
    /// Seconds from power-on (the first tick) to every expected service answering 200.
    pub all_healthy: Option<f64>,
    /// Seconds from power-on to the first tick of the last host to tick.
    pub last_first_tick: f64,
    pub ticks: Vec<Tick>,
    /// Journal lines written after the power cut.
    pub starts: Vec<Start>,
    /// Per host, `autoheal.log`.
    pub logs: Vec<String>,
    /// Services that answer 200 at the end.
    pub healthy_at_end: Vec<&'static str>,
}

impl Outcome {
    pub fn starts_of(&self, name: &str) -> usize {
        self.starts.iter().filter(|s| s.name == name).count()
    }
    pub fn premature(&self) -> Vec<&Start> {
        self.starts.iter().filter(|s| !s.deps_ok).collect()
    }
    /// Starts beyond the first of each service.
    pub fn duplicates(&self) -> usize {
        let mut n = BTreeMap::new();
        for s in &self.starts {
            *n.entry(s.name.as_str()).or_insert(0usize) += 1;
        }
        n.values().map(|c| c - 1).sum()
    }
    /// Script runs of `name` per the logs: `started:` and `start failed:` lines.
    pub fn attempts(&self, name: &str) -> usize {
        let a = format!(" {name}: started:");
        let b = format!(" {name}: start failed:");
        self.logs
            .iter()
            .flat_map(|l| l.lines())
            .filter(|l| l.contains(&a) || l.contains(&b))
            .count()
    }
    pub fn longest_tick(&self) -> f64 {
        self.ticks.iter().map(|t| t.secs).fold(0.0, f64::max)
    }
    /// One line for the test output.
    pub fn summary(&self, what: &str) -> String {
        format!(
            "{what}: all healthy {} after power-on (last host's first tick at {:.1}s); \
             {} ticks, longest {:.1}s; {} starts, {} premature",
            self.all_healthy
                .map(|t| format!("{t:.1}s"))
                .unwrap_or_else(|| "never".into()),
            self.last_first_tick,
            self.ticks.len(),
            self.longest_tick(),
            self.starts.len(),
            self.premature().len()
        )
    }
}

/// A drill's files and processes. Dropping it kills every fixture it started (by pid, only
/// processes whose command line names this drill's directory).
pub struct Drill {
    pub dir: tempfile::TempDir,
    pub graph: Vec<Svc>,
    pub ports: BTreeMap<&'static str, u16>,
    pub spec: DrillSpec,
}

/// The drills' service, `autoheal-fixture` (tests/fixture/service.rs): an example, so that
/// neither `cargo install` nor the package installs it. `cargo test` builds the examples beside
/// the test binaries (`target/<profile>/examples/`, the test being in `target/<profile>/deps/`);
/// a test binary built alone (`cargo test --test drill`) finds it missing or older than its
/// source, and builds it then, once per process.
pub fn fixture_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary is in target/<profile>/deps");
        let bin = profile_dir.join("examples/autoheal-fixture");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture/service.rs");
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if !matches!((mtime(&bin), mtime(&src)), (Some(b), Some(s)) if b >= s) {
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "autoheal-fixture",
                    "--profile",
                ])
                .arg(profile)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build --example autoheal-fixture");
            assert!(
                status.success(),
                "cargo build --example autoheal-fixture failed"
            );
        }
        assert!(bin.exists(), "{} was not built", bin.display());
        bin.into_os_string()
            .into_string()
            .expect("a UTF-8 target path")
    })
}

/// A free port on `ip` (bound, then released).
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of `GET /health` on `ip:port`, if any.
pub fn health(ip: &str, port: u16) -> Option<u16> {
    let sa: SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let t = Duration::from_millis(300);
    let mut s = TcpStream::connect_timeout(&sa, t).ok()?;
    s.set_read_timeout(Some(t)).ok()?;
    write!(s, "GET /health HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(128).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn secs_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

impl Drill {
    pub fn new(spec: DrillSpec) -> Drill {
        let graph = graph();
        let dir = tempfile::tempdir().unwrap();
        let ports = graph
            .iter()
            .map(|s| (s.name, free_port(HOSTS[s.host])))
            .collect();
        for d in ["run", "out", "h1", "h2", "h3"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let d = Drill {
            dir,
            graph,
            ports,
            spec,
        };
        for h in 0..3 {
            std::fs::write(d.conf(h), d.yaml(h)).unwrap();
        }
        d
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn conf(&self, host: usize) -> PathBuf {
        self.root().join(format!("h{}", host + 1)).join("conf.yaml")
    }
    fn pid_file(&self, name: &str) -> PathBuf {
        self.root().join("run").join(format!("{name}.pid"))
    }
    fn journal(&self) -> PathBuf {
        self.root().join("journal")
    }
    fn addr(&self, name: &str) -> String {
        let s = find(&self.graph, name);
        format!("{}:{}", HOSTS[s.host], self.ports[name])
    }
    fn url(&self, name: &str) -> String {
        format!("http://{}/health", self.addr(name))
    }

    /// The host's conf.yaml: its own services only; every dep an http probe of the dep's
    /// `/health` (ready only once warm), plus the local service itself for a same-host dep and a
    /// tcp probe for db.
    pub fn yaml(&self, host: usize) -> String {
        let mut y = format!(
            "settings:\n  state_dir: state\n  converge: {}s\n  grace: {GRACE}s\n  probe_timeout: 500ms\n  \
             backoff: 2s\n  backoff_max: 8s\n",
            self.spec.converge
        );
        for s in self.graph.iter().filter(|s| s.host == host) {
            y += &format!(
                "{}:\n  pid_file: {}\n",
                s.name,
                self.pid_file(s.name).display()
            );
            let deps = if self.spec.no_deps { &[][..] } else { s.deps };
            if !deps.is_empty() {
                y += "  dep:\n";
            }
            for d in deps {
                let ds = find(&self.graph, d);
                if ds.host == host {
                    y += &format!(
                        "    - name: {d}\n    - name: {d}-health\n      url: {}\n",
                        self.url(d)
                    );
                } else {
                    y += &format!("    - name: {d}\n      url: {}\n", self.url(d));
                }
                if *d == "db" {
                    y += &format!(
                        "    - name: db-port\n      host: {}\n      port: {}\n",
                        HOSTS[ds.host], self.ports[d]
                    );
                }
            }
            let script = if self.spec.dead == Some(s.name) {
                format!("echo '{} never comes back' >&2; exit 1", s.name)
            } else {
                let deps: String = s
                    .deps
                    .iter()
                    .map(|d| format!(" --dep {}", self.addr(d)))
                    .collect();
                format!(
                    "{} --name {} --listen {} --warmup {} --mode {}{deps} --pid-file {} --journal {} >> {} 2>&1 &",
                    fixture_bin(),
                    s.name,
                    self.addr(s.name),
                    s.warmup,
                    s.mode,
                    self.pid_file(s.name).display(),
                    self.journal().display(),
                    self.root()
                        .join("out")
                        .join(format!("{}.out", s.name))
                        .display()
                )
            };
            y += &format!("  script: \"{}\"\n", script.replace('"', "\\\""));
        }
        y
    }

    /// Before the cut: every fixture running and healthy (started directly, no deps), then
    /// killed by pid and reaped, its pid file left behind.
    pub fn power_cut(&self) {
        let before = self.root().join("journal.before");
        let mut children: Vec<_> = self
            .graph
            .iter()
            .map(|s| {
                Command::new(fixture_bin())
                    .args(["--name", s.name, "--listen", &self.addr(s.name)])
                    .arg("--pid-file")
                    .arg(self.pid_file(s.name))
                    .arg("--journal")
                    .arg(&before)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let end = Instant::now() + Duration::from_secs(10);
        while !self
            .graph
            .iter()
            .all(|s| self.pid_file(s.name).exists() && self.healthy(s.name))
        {
            assert!(
                Instant::now() < end,
                "the fixtures did not come up before the cut"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in &mut children {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        for s in &self.graph {
            assert!(
                self.pid_file(s.name).exists(),
                "stale pid file of {}",
                s.name
            );
            assert_eq!(
                health(HOSTS[s.host], self.ports[s.name]),
                None,
                "{} still up",
                s.name
            );
        }
    }

    pub fn healthy(&self, name: &str) -> bool {
        let s = find(&self.graph, name);
        health(HOSTS[s.host], self.ports[name]) == Some(200)
    }

    /// Services expected to heal: all, less those that depend on the dead one.
    pub fn expected(&self) -> Vec<&'static str> {
        self.graph
            .iter()
            .filter(|s| match self.spec.dead {
                Some(d) => s.name != d && !depends_on(&self.graph, s.name, d),
                None => true,
            })
            .map(|s| s.name)
            .collect()
    }

    /// The power cut, then every host's cron until all expected services are healthy (and
    /// `observe_at_least` has passed) or the deadline; then waits for the running ticks.
    pub fn run(&self) -> Outcome {
        self.power_cut();
        let spec = &self.spec;
        let stop = Arc::new(AtomicBool::new(false));
        let ticks: Arc<Mutex<Vec<Tick>>> = Arc::default();
        let t0 = Instant::now();
        let mut first_ticks = [0.0f64; 3];
        let crons: Vec<_> = (0..3)
            .map(|h| {
                let first =
                    spec.offsets[h] + spec.late.filter(|(lh, _)| *lh == h).map_or(0.0, |(_, d)| d);
                first_ticks[h] = first;
                let conf = self.conf(h);
                let (stop, ticks) = (stop.clone(), ticks.clone());
                let (interval, deadline) = (spec.interval, spec.deadline);
                let at_once = if spec.overlap == Some(h) { 2 } else { 1 };
                std::thread::spawn(move || {
                    let mut running = Vec::new();
                    for k in 0.. {
                        let at = first + k as f64 * interval;
                        if at > deadline {
                            break;
                        }
                        while secs_since(t0) < at {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        for _ in 0..at_once {
                            let (conf, ticks) = (conf.clone(), ticks.clone());
                            running.push(std::thread::spawn(move || {
                                let start = secs_since(t0);
                                let out = Command::new(env!("CARGO_BIN_EXE_autoheal"))
                                    .env_remove("AUTOHEAL_CONFIG")
                                    .arg("run")
                                    .arg("-c")
                                    .arg(&conf)
                                    .output()
                                    .unwrap();
                                ticks.lock().unwrap().push(Tick {
                                    host: h,
                                    start,
                                    secs: secs_since(t0) - start,
                                    code: out.status.code(),
                                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                                });
                            }));
                        }
                    }
                    for r in running {
                        r.join().unwrap();
                    }
                })
            })
            .collect();
        let expected = self.expected();
        let mut all_healthy = None;
        loop {
            let now = secs_since(t0);
            if all_healthy.is_none() && expected.iter().all(|n| self.healthy(n)) {
                all_healthy = Some(now);
            }
            if (all_healthy.is_some() && now >= spec.observe_at_least) || now > spec.deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        stop.store(true, Ordering::SeqCst);
        for c in crons {
            c.join().unwrap();
        }
        let mut ticks = ticks.lock().unwrap().clone();
        ticks.sort_by(|a, b| a.start.total_cmp(&b.start));
        Outcome {
            all_healthy,
            last_first_tick: first_ticks.iter().copied().fold(0.0, f64::max),
            ticks,
            starts: self.starts(),
            logs: (0..3)
                .map(|h| {
                    std::fs::read_to_string(
                        self.root().join(format!("h{}/state/autoheal.log", h + 1)),
                    )
                    .unwrap_or_default()
                })
                .collect(),
            healthy_at_end: self
                .graph
                .iter()
                .filter(|s| self.healthy(s.name))
                .map(|s| s.name)
                .collect(),
        }
    }

    pub fn starts(&self) -> Vec<Start> {
        std::fs::read_to_string(self.journal())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let time = w.next()?.parse().ok()?;
                let name = w.next()?.to_string();
                let pid = w.next()?.strip_prefix("pid=")?.parse().ok()?;
                let deps_ok = w.next()? == "deps_ok=yes";
                Some(Start {
                    time,
                    name,
                    pid,
                    deps_ok,
                    line: l.to_string(),
                })
            })
            .collect()
    }

    /// Every check of a drill that healed: all expected services healthy, no premature start,
    /// none started twice, no tick hung or failed to run. Returns a description of each failure.
    pub fn problems(&self, o: &Outcome) -> Vec<String> {
        let mut p = Vec::new();
        let expected = self.expected();
        if o.all_healthy.is_none() {
            p.push(format!(
                "not all healthy by the deadline: healthy at the end {:?}, expected {expected:?}",
                o.healthy_at_end
            ));
        }
        for s in o.premature() {
            p.push(format!("premature start: {}", s.line));
        }
        for s in &self.graph {
            let want = usize::from(expected.contains(&s.name));
            if self.spec.dead == Some(s.name) {
                if o.starts_of(s.name) != 0 {
                    p.push(format!("{} is dead but has journal lines", s.name));
                }
                continue;
            }
            if o.starts_of(s.name) != want {
                p.push(format!(
                    "{}: {} journal lines after the cut, want {want}",
                    s.name,
                    o.starts_of(s.name)
                ));
            }
            if o.attempts(s.name) != want {
                p.push(format!(
                    "{}: {} starts in the autoheal logs, want {want}",
                    s.name,
                    o.attempts(s.name)
                ));
            }
        }
        let limit = self.spec.converge + GRACE + 3.0;
        for t in &o.ticks {
            if t.secs > limit {
                p.push(format!(
                    "tick of host {} at {:.1}s took {:.1}s (limit {limit}s)",
                    t.host + 1,
                    t.start,
                    t.secs
                ));
            }
            if !matches!(t.code, Some(0) | Some(1)) {
                p.push(format!(
                    "tick of host {} at {:.1}s exited {:?}: {}",
                    t.host + 1,
                    t.start,
                    t.code,
                    t.stdout
                ));
            }
        }
        p
    }

    /// Everything a failed assertion should show.
    pub fn dump(&self, o: &Outcome) -> String {
        let mut s = String::new();
        for (h, log) in o.logs.iter().enumerate() {
            s += &format!("--- host {} autoheal.log\n{log}", h + 1);
        }
        s += "--- journal\n";
        for st in &o.starts {
            s += &format!("{}\n", st.line);
        }
        s += "--- ticks\n";
        for t in &o.ticks {
            s += &format!(
                "host {} at {:5.2}s: {:5.2}s exit {:?}\n",
                t.host + 1,
                t.start,
                t.secs,
                t.code
            );
        }
        s
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        let root = self.root().display().to_string();
        let mut pids: Vec<i32> = self.starts().iter().map(|s| s.pid).collect();
        for s in &self.graph {
            if let Some(p) = std::fs::read_to_string(self.pid_file(s.name))
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                pids.push(p);
            }
        }
        for pid in pids {
            // Only our own fixtures: a pid reused since names something else.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&root));
            if ours {
                crate::support::kill(pid);
            }
        }
    }
}
