//! Fixtures for the integration tests: a temp dir with a conf.yaml, the real binary, real
//! processes started by real scripts (their pids kept in the temp dir and killed at the end),
//! real listeners on loopback.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(1);

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Unique to this fixture, so that `pname` patterns of parallel tests never collide.
    pub tag: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            tag: format!("{}{:03}", std::process::id(), n),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes conf.yaml; `{dir}` and `{tag}` are replaced.
    pub fn config(&self, yaml: &str) -> PathBuf {
        let p = self.path("conf.yaml");
        std::fs::write(&p, self.expand(yaml)).unwrap();
        p
    }

    pub fn expand(&self, s: &str) -> String {
        s.replace("{dir}", &self.dir.path().display().to_string())
            .replace("{tag}", &self.tag)
    }

    /// A command line unique to this fixture and `name`: `sleep 1000.<tag><k>`.
    pub fn sleeper(&self, k: u32) -> String {
        format!("sleep 1000.{}{k}", self.tag)
    }

    /// The regex that matches [`sleeper`].
    pub fn sleeper_re(&self, k: u32) -> String {
        format!("sleep 1000\\.{}{k}$", self.tag)
    }

    /// A script that starts sleeper `k` as a daemon, records its pid as `<name>.pid` and
    /// returns once the daemon runs, as a real start script (`pg_ctl -w`, `nginx`) does: the
    /// forked shell may otherwise not have exec'd `sleep` yet when the script exits, and on a
    /// loaded machine a tick's last look would find the service still starting. The wait is
    /// bounded (5 s); a daemon that never runs leaves the script to return anyway.
    pub fn daemon_script(&self, name: &str, k: u32) -> String {
        format!(
            "{} >/dev/null 2>&1 & p=$!; echo $p > {}/{name}.pid; echo {name} >> {}/journal; \
             i=0; while [ $i -lt 500 ]; do case $(readlink /proc/$p/exe) in *sleep) break;; esac; \
             i=$((i+1)); sleep 0.01; done",
            self.sleeper(k),
            self.dir.path().display(),
            self.dir.path().display()
        )
    }

    /// Runs [`daemon_script`](Self::daemon_script) by hand, as an operator or systemd would
    /// start the service behind autoheal's back; returns the daemon's pid.
    pub fn start_by_hand(&self, name: &str, k: u32) -> u32 {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(self.daemon_script(name, k))
            .status()
            .unwrap();
        assert!(status.success(), "{name}: {status}");
        self.pid_of(name).expect("the script wrote its pid file")
    }

    /// Runs the binary with `args` (`{dir}` expanded), the config and state dir of this fixture.
    pub fn autoheal(&self, args: &[&str]) -> Output {
        self.autoheal_cmd(args).output().unwrap()
    }

    pub fn autoheal_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autoheal"));
        c.env_remove("AUTOHEAL_CONFIG");
        for a in args {
            c.arg(self.expand(a));
        }
        c
    }

    /// `autoheal run -c conf.yaml --state-dir state`.
    pub fn run(&self) -> Output {
        self.autoheal(&["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"])
    }

    /// `autoheal status --json` of this fixture, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.autoheal(&[
            "status",
            "--json",
            "-c",
            "{dir}/conf.yaml",
            "--state-dir",
            "{dir}/state",
        ]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", stderr(&out)))
    }

    /// `autoheal reset SERVICE` of this fixture.
    pub fn reset(&self, service: &str) -> Output {
        self.autoheal(&[
            "reset",
            service,
            "-c",
            "{dir}/conf.yaml",
            "--state-dir",
            "{dir}/state",
        ])
    }

    /// Lines of the journal the daemon scripts append to.
    pub fn journal(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("journal"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn pid_of(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.path(&format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Fixture {
    /// Kills every process our scripts recorded (`*.pid` in the temp dir), by pid.
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "pid")
                    && let Some(pid) = std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok())
                {
                    kill(pid);
                }
            }
        }
    }
}

pub fn kill(pid: i32) {
    if pid > 1
        && let Some(p) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback port that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP server on 127.0.0.1:0 answering every request with `status`; runs until the
/// test process ends. Returns its port.
pub fn http_server(status: u16) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || answer(s, status));
        }
    });
    port
}

fn answer(mut s: TcpStream, status: u16) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
}

/// A tcp listener on 127.0.0.1:0 that accepts and drops connections, for the life of the test.
pub fn tcp_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in l.incoming() {});
    port
}

/// Waits until `f` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Sets a file's mtime `secs` seconds into the past.
pub fn age_file(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// The throwaway unprivileged account the security tests act as: `autoheal-test`, a system
/// user with its own group and no home, created on first use (`.ci/run` removes it after the
/// suite). Returns (name, uid, gid). Needs root; panics with a clear message otherwise.
pub fn test_user() -> (&'static str, u32, u32) {
    const NAME: &str = "autoheal-test";
    static ONCE: std::sync::Once = std::sync::Once::new();
    assert!(
        is_root(),
        "this test needs root (it acts as the unprivileged user {NAME})"
    );
    ONCE.call_once(|| {
        if lookup_ids(NAME).is_none() {
            // Two test binaries may race here: useradd locks /etc/passwd, and the loser's
            // "already exists" is fine.
            let _ = Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home"])
                .args(["--shell", "/usr/sbin/nologin", NAME])
                .output();
        }
    });
    let (uid, gid) = lookup_ids(NAME).unwrap_or_else(|| panic!("cannot create user {NAME}"));
    (NAME, uid, gid)
}

fn lookup_ids(name: &str) -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", name]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", name]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// Whether the tests run as root (CI does).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `cmd` and returns its output, or kills it (by its pid) and panics once `limit` has
/// passed: a hung binary fails its test instead of hanging the suite.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "still running after {limit:?}; killed. stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
}

/// Whether the tests run under CI (`CI=true`, as `.ci/run`, GitHub Actions and GitLab set it).
/// There a test never skips for want of a server: it fails, saying what to install, so that a
/// missing package cannot turn a real-server test into a silent pass.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The Debian package that provides `program`, for the message of a missing one.
fn package_of(program: &str) -> &str {
    match program {
        "mariadbd" | "mariadb-install-db" => "mariadb-server",
        "postgres" | "initdb" => "postgresql",
        "flock" => "util-linux",
        "promtool" => "prometheus",
        other => other,
    }
}

/// The path of `program`, a real server (or tool) a test runs: `redis-server`, `memcached`,
/// `mariadbd`, ..., found on `PATH` or in the usual bin and sbin directories. Missing, it is
/// `None` with a note that the test is skipped, or, under CI ([`in_ci`]), a panic that says
/// which package to install. Every test that needs a server it may not find goes through this
/// (or [`cannot_run`]).
pub fn require_server(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        return cannot_run(&format!(
            "no `{program}` on PATH or in /usr/sbin (apt-get install {})",
            package_of(program)
        ));
    }
    found
}

/// A test that cannot run here (`why`: what is missing or failed, and what to install): `None`,
/// with a note that it is skipped; under CI ([`in_ci`]), a panic with `why` instead.
pub fn cannot_run<T>(why: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "{why}; under CI (CI={}) a test does not skip: install it (.ci/run does)",
        std::env::var("CI").unwrap_or_default()
    );
    eprintln!("note: test skipped: {why}");
    None
}
