//! Right decisions with a real daemon (issue 9): Debian's PostgreSQL under autoheal, with an
//! app that keeps one connection to it (tests/fixture/pg_app.py). A crashed postgres and the
//! app whose connection it broke, a postgres stopped with SIGSTOP, and two power cuts in a row
//! (the state file from the boot before, as a reboot leaves it), each healed for real.
//!
//! The servers run as the `postgres` account in the fixture's dir, on free loopback ports, and
//! are stopped by pid at the end. Where PostgreSQL is not installed the tests say so and pass,
//! except under CI (`CI=true`), where that is a failure: `.ci/run` installs it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// The newest `/usr/lib/postgresql/*/bin` with `pg_ctl` and `initdb`.
fn pg_bin() -> Option<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("pg_ctl").is_file() && b.join("initdb").is_file())
        .collect();
    bins.sort();
    let found = bins.pop();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not installed (apt-get install postgresql): under CI this test must run"
        );
        eprintln!("note: PostgreSQL not installed; real-stack test not run");
    }
    found
}

/// A postgres cluster and the app, as two services of one conf.yaml.
struct Stack {
    f: Fixture,
    pg_port: u16,
    app_port: u16,
}

impl Stack {
    /// initdb as `postgres` in `<fixture>/pg` (the fixture's dir is root's; postgres may only
    /// pass through it), and the config: `db` (pid file, `user: postgres`, a protocol-level
    /// `check:` that a stopped server fails), `app` (follows db's restarts, `health:` over
    /// http), each with `extra` YAML lines. The postmaster runs under a shell that waits for
    /// it, as under a supervisor: the init of a test machine may never reap an orphan, and a
    /// killed postmaster left a zombie keeps its pid, which the next one takes for running.
    fn new(bin: &Path, db_extra: &str) -> Stack {
        let f = Fixture::new();
        let (pg_port, app_port) = (free_port(), free_port());
        let dir = f.dir.path().to_path_buf();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .unwrap();
        let pg = dir.join("pg");
        std::fs::create_dir(&pg).unwrap();
        let ok = Command::new("chown")
            .args(["postgres:postgres", &pg.display().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "chown postgres (no postgres account?)");
        let init = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-D", &pg.join("data").display().to_string()])
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .unwrap();
        assert!(init.status.success(), "initdb: {}", stderr(&init));
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture/pg_app.py");
        f.config(&format!(
            r#"
settings:
  converge: 45s
db:
  pid_file: pg/data/postmaster.pid
  user: postgres
  stop: {bin}/pg_ctl -D pg/data stop -m fast -w -t 20
  check: postgres.ping{{port={pg_port}, timeout=1}}
  unhealthy_after: 1
  grace: 2s
  timeout: 60s
  script: sh -c '{bin}/postgres -D pg/data -p {pg_port} -k {pg} -h 127.0.0.1 -c fsync=off; :' >>pg/log 2>&1 &
{db_extra}
app:
  pname: 'pg_app.py {app_port} '
  dep:
    - name: db
  health:
    url: http://127.0.0.1:{app_port}/health
    timeout: 2s
  restart_on_dep_restart: true
  grace: 5s
  script: python3 {app} {app_port} {pg_port} >/dev/null 2>&1 & echo $! > {dir}/app.pid
"#,
            bin = bin.display(),
            pg = pg.display(),
            app = app.display(),
            dir = dir.display(),
        ));
        Stack {
            f,
            pg_port,
            app_port,
        }
    }

    fn postmaster(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.f.path("pg/data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// One tick; its log (stdout). It must end with everything alive (exit 0).
    fn heal(&self) -> String {
        let out = self.f.run();
        let log = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{log}{}\npostgres log:\n{}",
            stderr(&out),
            std::fs::read_to_string(self.f.path("pg/log")).unwrap_or_default()
        );
        log
    }

    fn app_healthy(&self) -> bool {
        http_status(self.app_port, "/health") == Some(200)
    }

    /// SIGKILL to the postmaster (as a power cut or the OOM killer would), then until its
    /// workers have followed it and the port is closed.
    fn crash_db(&self) {
        let pid = self.postmaster().expect("a postmaster");
        kill(pid as i32);
        assert!(
            wait_for(Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", self.pg_port)).is_err()
            }),
            "postgres still answers after SIGKILL"
        );
    }
}

impl Drop for Stack {
    /// The postmaster we started (through autoheal), by its pid: SIGQUIT, postgres's
    /// immediate shutdown, which takes its workers along. (The fixture kills the app.)
    fn drop(&mut self) {
        if let Some(pid) = self.postmaster()
            && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
        {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::QUIT);
            // A test that stopped it (SIGSTOP) and failed before autoheal ended it.
            let _ = rustix::process::kill_process(p, rustix::process::Signal::CONT);
        }
    }
}

/// GET http://127.0.0.1:port{path}: the status code, if it answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

/// The time of the first log line that contains `what`, in seconds of the day (the log's
/// times are whole seconds).
fn at(log: &str, what: &str) -> Option<u32> {
    let line = log.lines().find(|l| l.contains(what))?;
    let t = line.split('T').nth(1)?.get(..8)?;
    let mut parts = t.split(':').map(|p| p.parse::<u32>().ok());
    Some(parts.next()?? * 3600 + parts.next()?? * 60 + parts.next()??)
}

/// postgres crashes (SIGKILL) and comes back through autoheal; the app's connection broke with
/// it, so its health fails: `restart_on_dep_restart` restarts it within one grace of postgres
/// being ready, without waiting for `unhealthy_after` (3) failed health observations.
#[test]
fn a_broken_connection_is_healed_once_postgres_is_back() {
    let Some(bin) = pg_bin() else { return };
    let s = Stack::new(&bin, "");
    let log = s.heal();
    assert!(
        log.contains("db: started") && log.contains("app: started"),
        "{log}"
    );
    assert!(
        wait_for(Duration::from_secs(20), || s.app_healthy()),
        "app healthy at first"
    );
    s.crash_db();
    assert!(!s.app_healthy(), "the app's connection broke with postgres");
    let log = s.heal();
    assert!(log.contains("db: started: was dead"), "{log}");
    assert!(
        log.contains("app: restarted: db restarted after it"),
        "the app followed db's restart: {log}"
    );
    let (up, followed) = (
        at(&log, "db: up,").unwrap(),
        at(&log, "app: restarted").unwrap(),
    );
    // Within the app's grace (5 s) of postgres being ready, plus the log's 1 s resolution.
    assert!(
        followed <= up + 6,
        "db up at {up}, app restarted at {followed}: {log}"
    );
    assert!(
        wait_for(Duration::from_secs(20), || s.app_healthy()),
        "{log}"
    );
}

/// A postgres stopped with SIGSTOP answers no query: its check fails, and its health restart
/// stops it. The stop command cannot (a stopped server handles nothing), so autoheal signals
/// it: SIGTERM waits in vain, SIGKILL ends it, and the new start waits until the old postmaster
/// and its workers are gone, saying so. One start, and it works.
#[test]
fn a_stopped_postgres_is_restarted_cleanly_once() {
    let Some(bin) = pg_bin() else { return };
    // The stop command, bounded: a stopped server never answers pg_ctl.
    let s = Stack::new(&bin, "");
    let conf = s.f.path("conf.yaml");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("stop -m fast -w -t 20", "stop -m fast -w -t 2");
    std::fs::write(&conf, text).unwrap();
    s.heal();
    std::thread::sleep(Duration::from_secs(3)); // past db's grace
    let old = s.postmaster().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(old as i32).unwrap(),
        rustix::process::Signal::STOP,
    )
    .unwrap();
    let log = s.heal();
    assert!(log.contains("db: restarted: unhealthy"), "{log}");
    assert!(
        log.contains(&format!(
            "pid {old} ignored SIGTERM for 5s; SIGKILL ended it in"
        )),
        "{log}"
    );
    assert!(
        log.contains("workers by"),
        "the new start waited for the old workers: {log}"
    );
    assert_eq!(log.matches("db: restarted").count(), 1, "one start: {log}");
    assert!(
        !log.contains("db: restart failed") && !log.contains("db: start failed"),
        "{log}"
    );
    assert_ne!(s.postmaster(), Some(old), "a new postmaster");
    assert!(
        wait_for(Duration::from_secs(20), || s.app_healthy()),
        "{log}"
    );
}

/// Two power cuts a few seconds apart: after each, the state file is the one the boot before
/// left (another boot id). Both are healed at once, without a backoff wait: a death with the
/// host is not a failed restart.
#[test]
fn two_power_cuts_in_a_row_are_both_healed_without_backoff() {
    let Some(bin) = pg_bin() else { return };
    let s = Stack::new(&bin, "");
    s.heal();
    for cut in 1..=2 {
        std::thread::sleep(Duration::from_secs(1));
        s.crash_db();
        if let Some(pid) = s.f.pid_of("app") {
            kill(pid as i32);
        }
        // What a reboot leaves: the state file of the boot before.
        let path = s.f.state_dir().join("state.json");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        state["boot"] = format!("00000000-0000-0000-0000-00000000000{cut}").into();
        std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
        let log = s.heal();
        assert!(
            log.contains("the host rebooted since the last tick"),
            "cut {cut}: {log}"
        );
        assert!(
            log.contains("db: started") && log.contains("app: started"),
            "cut {cut}: {log}"
        );
        assert!(!log.contains("backed off"), "cut {cut}: {log}");
        let status = s.f.status_json();
        for svc in status["services"].as_array().unwrap() {
            assert_eq!(svc["failures"], 1, "cut {cut}: {svc}");
        }
    }
}
