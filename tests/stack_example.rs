//! examples/stack.yaml end to end, as it is: Debian's PostgreSQL and Redis, the app, nginx in
//! front. One `autoheal run` starts the stack (HTTP through nginx reaches the app); a power
//! cut (SIGKILL to every process of it, stale pid files left); one more `run` brings it all
//! back, in dependency order, no service started before its deps were ready.
//!
//! The example runs from a copy in a temp dir (the repo is never written), on free loopback
//! ports written over its own. Each start script of the copy first records, in a journal, the
//! time and whether each of its deps answered at that moment (a real PING to redis, a real
//! startup message to postgres, GET /health to the app): the proof of "no premature start"
//! is taken by the started service's own script, not inferred from the log's whole seconds.
//!
//! It runs as root (postgres runs as the `postgres` account, as in the example). Where a
//! server is missing, or not root, the test says so and passes, except under CI (`CI=true`),
//! where that is a failure: `.ci/run` installs postgresql, redis-server and nginx.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// One run of the stack on a loaded 2-core machine: initdb and four starts.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// The example's own ports, each written over with a free one in the copy.
const PORTS: [(&str, &str); 4] = [
    ("postgres", "15432"),
    ("redis", "16379"),
    ("app", "18090"),
    ("nginx", "18088"),
];

/// Records `NAME START_TIME dep=ready|down(why)...` for a start script (see the module doc).
const PROBE: &str = r#"
import socket, struct, sys, time
name, specs = sys.argv[1], sys.argv[2:]
start = time.time()
def ready(spec):
    kind, port = spec.split(":", 1)
    try:
        if kind == "pg":
            params = b"user\0postgres\0database\0postgres\0\0"
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
                s.sendall(struct.pack(">II", 8 + len(params), 196608) + params)
                kind = s.recv(1)
            return "ready" if kind == b"R" else "down(%r)" % kind
        if kind == "redis":
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
            return "ready" if reply.startswith(b"+PONG") else "down(%r)" % reply
        if kind == "http":
            port, path = port.split("/", 1)
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
                s.sendall(("GET /%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
                reply = s.recv(64)
            return "ready" if reply.split()[1:2] == [b"200"] else "down(%r)" % reply[:20]
    except OSError as e:
        return "down(%s)" % e
    return "down(unknown kind)"
print(name, "%.3f" % start, *("%s=%s" % (s, ready(s)) for s in specs), flush=True)
"#;

/// The newest `/usr/lib/postgresql/*/bin` with `pg_ctl` and `initdb`, as the example's pg.sh
/// finds it.
fn pg_bin() -> Option<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("pg_ctl").is_file() && b.join("initdb").is_file())
        .collect();
    bins.sort();
    match bins.pop() {
        Some(b) => Some(b),
        None => cannot_run("no /usr/lib/postgresql/*/bin/pg_ctl (apt-get install postgresql)"),
    }
}

/// The copy of the example and its ports.
struct Stack {
    f: Fixture,
    /// `<temp>/examples`, where autoheal runs the scripts.
    dir: PathBuf,
    ports: HashMap<&'static str, u16>,
}

impl Stack {
    /// Copies examples/stack.yaml and examples/stack/ (not its `run/`) into the fixture, with
    /// free ports and each script prefixed by the journal's probe of its deps.
    fn new() -> Stack {
        let f = Fixture::new();
        // postgres (not root) must pass through the temp dir to its cluster.
        std::fs::set_permissions(
            f.dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let dir = f.path("examples");
        std::fs::create_dir_all(dir.join("stack")).unwrap();
        for e in std::fs::read_dir(repo.join("stack")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.join("stack").join(p.file_name().unwrap())).unwrap();
            }
        }
        let mut yaml = std::fs::read_to_string(repo.join("stack.yaml")).unwrap();
        let mut ports = HashMap::new();
        for (name, port) in PORTS {
            assert!(yaml.contains(port), "stack.yaml names port {port}");
            let free = free_port();
            yaml = yaml.replace(port, &free.to_string());
            ports.insert(name, free);
        }
        std::fs::write(f.path("probe.py"), PROBE).unwrap();
        let deps = |name: &str| -> Vec<String> {
            match name {
                "app" => vec![
                    format!("pg:{}", ports["postgres"]),
                    format!("redis:{}", ports["redis"]),
                ],
                "nginx" => vec![format!("http:{}/health", ports["app"])],
                _ => vec![],
            }
        };
        // Each service's `script:` line, in file order, gets the probe first.
        let mut out = String::new();
        let mut service = String::new();
        for line in yaml.lines() {
            if !line.starts_with([' ', '#']) && line.ends_with(':') {
                service = line.trim_end_matches(':').to_string();
            }
            match line.strip_prefix("  script: ") {
                Some(script) => out.push_str(&format!(
                    "  script: python3 {} {service} {} >>{}; {script}\n",
                    f.path("probe.py").display(),
                    deps(&service).join(" "),
                    f.path("journal").display(),
                )),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        assert_eq!(out.matches("probe.py").count(), 4, "{out}");
        std::fs::write(dir.join("stack.yaml"), out).unwrap();
        let stack = Stack { f, dir, ports };
        // The deps the probes check are the example's own.
        let cfg = autoheal::config::load(&stack.dir.join("stack.yaml")).unwrap();
        let names: Vec<(String, Vec<String>)> = cfg
            .services
            .iter()
            .map(|s| {
                let deps = s.deps.iter().map(|d| d.name().to_string()).collect();
                (s.name.clone(), deps)
            })
            .collect();
        let want = |s: &str, d: &[&str]| (s.to_string(), d.iter().map(|x| x.to_string()).collect());
        assert_eq!(
            names,
            vec![
                want("postgres", &[]),
                want("redis", &[]),
                want("app", &["postgres", "redis"]),
                want("nginx", &["app"]),
            ]
        );
        stack
    }

    /// One `autoheal run` of the copy; its log. It must end with everything up (exit 0).
    fn run(&self) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoheal"));
        cmd.env_remove("AUTOHEAL_CONFIG")
            .arg("run")
            .arg("-c")
            .arg(self.dir.join("stack.yaml"))
            .stdin(std::process::Stdio::null());
        let out = output_within(cmd, RUN_LIMIT);
        let log = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{log}{}\npostgres: {}\n{}",
            stderr(&out),
            self.read("stack/run/pg/log"),
            self.read("stack/run/state/logs/postgres.log"),
        );
        log
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_default()
    }

    /// The pids in the stack's pid files (the first line of postmaster.pid).
    fn main_pids(&self) -> Vec<(&'static str, u32)> {
        [
            ("postgres", "stack/run/pg/data/postmaster.pid"),
            ("redis", "stack/run/redis/redis.pid"),
            ("app", "stack/run/app.pid"),
            ("nginx", "stack/run/nginx/nginx.pid"),
        ]
        .into_iter()
        .filter_map(|(name, file)| {
            let text = self.read(file);
            let pid = text.lines().next()?.trim().parse().ok()?;
            Some((name, pid))
        })
        .collect()
    }

    /// Every live process of the stack: the pids of its pid files and all their descendants
    /// (postgres's workers, nginx's worker), from the process table.
    fn processes(&self) -> Vec<u32> {
        let mut set: HashSet<u32> = self
            .main_pids()
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| is_running(*p))
            .collect();
        let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let rest = stat.rsplit_once(')')?.1;
                let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
                Some((pid, ppid))
            })
            .collect();
        loop {
            let before = set.len();
            for (pid, ppid) in &parents {
                if set.contains(ppid) && is_running(*pid) {
                    set.insert(*pid);
                }
            }
            if set.len() == before {
                break;
            }
        }
        let mut pids: Vec<u32> = set.into_iter().collect();
        pids.sort();
        pids
    }

    fn answers(&self, service: &str) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.ports[service])).is_ok()
    }

    /// The journal's starts: (service, time, deps as `spec=ready|down(..)`).
    fn starts(&self) -> Vec<(String, f64, Vec<String>)> {
        self.f
            .journal()
            .iter()
            .map(|line| {
                let mut words = line.split(' ');
                let name = words.next().unwrap().to_string();
                let at = words.next().unwrap().parse().unwrap();
                (name, at, words.map(str::to_string).collect())
            })
            .collect()
    }

    /// Each service started exactly once since the journal was last cleared, each after its
    /// deps answered (as its own script saw them), in an order that respects the graph.
    fn assert_started_in_order(&self, log: &str) {
        let starts = self.starts();
        let mut names: Vec<&str> = starts.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["app", "nginx", "postgres", "redis"],
            "{starts:?}\n{log}"
        );
        for (name, _, deps) in &starts {
            for d in deps {
                assert!(
                    d.ends_with("=ready"),
                    "{name} was started before its dep was ready: {d}\n{starts:?}\n{log}"
                );
            }
        }
        let at = |n: &str| starts.iter().find(|(s, _, _)| s == n).unwrap().1;
        assert!(
            at("app") > at("postgres") && at("app") > at("redis"),
            "{starts:?}"
        );
        assert!(at("nginx") > at("app"), "{starts:?}");
    }

    /// GET / through nginx: the app's answer.
    fn through_nginx(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.ports["nginx"])).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        Some(reply)
    }

    fn assert_serves(&self) {
        let reply = self.through_nginx().unwrap_or_default();
        assert!(
            reply.starts_with("HTTP/1.1 200")
                && reply.contains("hello from the app (postgres: ok; redis: +PONG)"),
            "through nginx: {reply}"
        );
    }
}

impl Drop for Stack {
    /// Stops what the test's runs started, by pid: postgres with SIGQUIT (its immediate
    /// shutdown, which takes its workers and shared memory along), then SIGKILL to the rest.
    fn drop(&mut self) {
        let pg = self
            .main_pids()
            .into_iter()
            .find(|(n, _)| *n == "postgres")
            .map(|(_, p)| p);
        if let Some(pid) = pg
            && is_running(pid)
            && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
        {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::QUIT);
            wait_for(Duration::from_secs(10), || !is_running(pid));
        }
        for pid in self.processes() {
            kill(pid as i32);
        }
    }
}

#[test]
fn the_stack_comes_back_in_order_after_a_power_cut() {
    if !is_root() {
        let _: Option<()> = cannot_run("the stack example runs as root (postgres as `postgres`)");
        return;
    }
    let (Some(_), Some(_), Some(_)) = (
        pg_bin(),
        require_server("redis-server"),
        require_server("nginx"),
    ) else {
        return;
    };
    let began = Instant::now();
    let s = Stack::new();

    // Everything down: one run starts the stack.
    let log = s.run();
    let first = began.elapsed();
    s.assert_started_in_order(&log);
    s.assert_serves();

    // The power cut: SIGKILL to every process of the stack at once.
    let victims = s.processes();
    assert!(
        victims.len() >= 6,
        "postgres and its workers, redis, app, nginx: {victims:?}"
    );
    for pid in &victims {
        kill(*pid as i32);
    }
    assert!(
        wait_for(Duration::from_secs(20), || {
            victims.iter().all(|p| !is_running(*p)) && PORTS.iter().all(|(n, _)| !s.answers(n))
        }),
        "the stack is still up after SIGKILL: {:?}",
        victims
            .iter()
            .filter(|p| is_running(**p))
            .collect::<Vec<_>>()
    );
    // Stale pid files are left, naming the dead.
    let stale = s.main_pids();
    assert_eq!(stale.len(), 4, "{stale:?}");
    assert!(stale.iter().all(|(_, p)| !is_running(*p)), "{stale:?}");

    // Each service's grace (5 s) from its start must be over, or the run would hold it.
    let cut = Instant::now();
    std::thread::sleep(Duration::from_secs(6).saturating_sub(began.elapsed() - first));
    std::fs::rename(s.f.path("journal"), s.f.path("journal.first")).unwrap();
    let again = Instant::now();
    let log = s.run();
    let second = again.elapsed();
    for (name, pid) in &stale {
        assert!(
            log.contains(&format!(
                "{name}: started: was dead (pid {pid} not running)"
            )),
            "{name}'s stale pid file is recognised: {log}"
        );
    }
    s.assert_started_in_order(&log);
    s.assert_serves();
    eprintln!(
        "stack: first run {:.1}s, power cut to the second run {:.1}s, second run {:.1}s, test {:.1}s",
        first.as_secs_f64(),
        (again - cut).as_secs_f64(),
        second.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
