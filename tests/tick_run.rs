//! `autoheal run`, `status` and `reset` against real processes, pid files and loopback sockets.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// The original config's shapes: liveness by pname and by pid file, a tcp and an http dep,
/// against real listeners. Both services come up in one run.
#[test]
fn original_shapes_heal() {
    let f = Fixture::new();
    let http = http_server(200);
    let tcp = tcp_server();
    f.config(&format!(
        r#"
nginx:
    pname: '{re}'
    dep:
        - name: middleware
          url: http://127.0.0.1:{http}/check.htm
    script: {s1}
web_service:
    pid_file: {{dir}}/web_service.pid
    dep:
        - name: nginx
          host: 127.0.0.1
          port: {tcp}
    script: {s2}
"#,
        re = f.sleeper_re(1),
        s1 = f.daemon_script("nginx", 1),
        s2 = f.daemon_script("web_service", 2),
    ));
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let log = stdout(&out);
    assert!(
        log.contains("nginx: started: was dead (no process matches"),
        "{log}"
    );
    assert!(
        log.contains("web_service: started: was dead (pid file"),
        "{log}"
    );
    assert!(is_running(f.pid_of("nginx").unwrap()));
    assert!(is_running(f.pid_of("web_service").unwrap()));
    // All well now: the next tick is quiet and starts nothing.
    let out = f.run();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
    assert_eq!(f.journal().len(), 2);
}

#[test]
fn an_unready_dep_holds_its_service_but_not_an_unrelated_later_one() {
    let f = Fixture::new();
    let closed = free_port();
    f.config(&format!(
        r#"
settings:
  converge: 0
first:
  pname: '{re1}'
  dep:
    - name: db
      host: 127.0.0.1
      port: {closed}
  script: {s1}
second:
  pname: '{re2}'
  script: {s2}
"#,
        re1 = f.sleeper_re(1),
        re2 = f.sleeper_re(2),
        s1 = f.daemon_script("first", 1),
        s2 = f.daemon_script("second", 2),
    ));
    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "first is still down");
    assert_eq!(f.journal(), vec!["second"]);
    let log = stdout(&out);
    assert!(
        log.contains(&format!(
            "first: still down: waiting on db 127.0.0.1:{closed} (connection refused)"
        )),
        "{log}"
    );
}

/// a ← b ← c, all local: one run brings the three up, in order.
#[test]
fn a_local_chain_of_depth_3_heals_in_one_run_in_order() {
    let f = Fixture::new();
    let yaml = format!(
        r#"
settings:
  converge: 20s
c:
  pname: '{re3}'
  dep: [{{name: b}}]
  script: {s3}
b:
  pname: '{re2}'
  dep: [{{name: a}}]
  script: {s2}
a:
  pid_file: {{dir}}/a.pid
  script: {s1}
"#,
        re2 = f.sleeper_re(2),
        re3 = f.sleeper_re(3),
        s1 = f.daemon_script("a", 1),
        s2 = f.daemon_script("b", 2),
        s3 = f.daemon_script("c", 3),
    );
    f.config(&yaml);
    let t = Instant::now();
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(f.journal(), vec!["a", "b", "c"]);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
}

/// A dep on another host that comes up while the tick waits: started in the same tick.
#[test]
fn a_remote_dep_that_comes_up_during_the_tick_is_used_in_that_tick() {
    let f = Fixture::new();
    let port = free_port();
    f.config(&format!(
        r#"
settings:
  converge: 20s
web:
  pname: '{re}'
  dep:
    - name: db
      host: 127.0.0.1
      port: {port}
      timeout: 1s
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("web", 1),
    ));
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_secs(10));
        drop(l);
    });
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(f.journal(), vec!["web"]);
    drop(opener);
}

/// A pid file whose pid now belongs to a process started after the file was written (a pid
/// reused after a reboot) is stale: the service is dead and is started.
#[test]
fn a_reused_pid_in_a_stale_pid_file_is_dead() {
    let f = Fixture::new();
    // A live process that is not the service: its pid goes into an old pid file.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pidfile = f.path("svc.pid.old");
    std::fs::write(&pidfile, other.id().to_string()).unwrap();
    age_file(&pidfile, 3600);
    f.config(&format!(
        r#"
svc:
  pid_file: {{dir}}/svc.pid.old
  script: {s}; cp {{dir}}/svc.pid {{dir}}/svc.pid.old
"#,
        s = f.daemon_script("svc", 1)
    ));
    let j = f.status_json();
    let why = j["services"][0]["dead_because"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.starts_with("stale pid file"), "{why}");
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(f.journal(), vec!["svc"]);
    other.kill().unwrap();
    other.wait().unwrap();
}

/// `pname` never matches autoheal itself nor the shell that runs it (cron's `sh -c`).
#[test]
fn pname_does_not_match_autoheal_or_its_cron_shell() {
    let f = Fixture::new();
    let marker = format!("marker{}", f.tag);
    f.config(&format!(
        r#"
settings:
  converge: 0
svc:
  pname: "{marker}|autoheal run -c {{dir}}/conf.yaml"
  script: echo started >> {{dir}}/journal
"#
    ));
    // The cron shell's command line contains the marker, and autoheal's own matches the second
    // branch; other tests' autoheal processes are not in our tree, so the pattern names this one.
    let line = format!(
        "{} run -c {}/conf.yaml --state-dir {}/state; : {marker}",
        env!("CARGO_BIN_EXE_autoheal"),
        f.dir.path().display(),
        f.dir.path().display()
    );
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&line)
        .output()
        .unwrap();
    assert_eq!(f.journal(), vec!["started"], "{}", stdout(&out));
}

/// A script that starts a daemon which keeps stdout open must not hang the tick.
#[test]
fn a_script_that_backgrounds_a_daemon_returns_promptly() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
svc:
  pname: '{re}'
  script: "{sleeper} & echo $! > {{dir}}/svc.pid; echo started"
"#,
        re = f.sleeper_re(1),
        sleeper = f.sleeper(1)
    ));
    let t = Instant::now();
    let out = f.run();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(stdout(&out).contains("svc: started"), "{}", stdout(&out));
    assert!(is_running(f.pid_of("svc").unwrap()));
    let log = std::fs::read_to_string(f.state_dir().join("logs/svc.log")).unwrap();
    assert!(log.contains("started"), "{log}");
}

/// A hung script is killed at its timeout, with its children.
#[test]
fn a_hung_script_is_killed_at_its_timeout_with_its_children() {
    let f = Fixture::new();
    f.config(
        r#"
settings:
  converge: 0
svc:
  pname: "never-matches-{tag}"
  script: "sleep 301 & echo $! > {dir}/child.pid; wait"
  timeout: 1s
"#,
    );
    let t = Instant::now();
    let out = f.run();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("svc: start failed: script killed after timeout"),
        "{}",
        stdout(&out)
    );
    let child = f.pid_of("child").unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || !is_running(child)),
        "the script's child {child} survived"
    );
}

/// A second tick while one holds the lock exits 0 at once, without acting.
#[test]
fn a_concurrent_run_exits_on_the_lock() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
svc:
  pname: '{re}'
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    std::fs::create_dir_all(f.state_dir()).unwrap();
    let lock = f.state_dir().join("lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "20"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Wait until flock really holds it: our own try from here would then fail.
    assert!(wait_for(Duration::from_secs(5), || {
        let fd = std::fs::File::open(&lock);
        fd.is_ok_and(|fd| {
            rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
        })
    }));
    let out = f.run();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("holds") && stdout(&out).contains("this one does nothing"),
        "{}",
        stdout(&out)
    );
    assert!(f.journal().is_empty(), "nothing started");
}

#[test]
fn a_truncated_state_file_is_reported_and_replaced() {
    let f = Fixture::new();
    f.config(&format!(
        "svc:\n  pname: '{re}'\n  script: {s}\n",
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    std::fs::create_dir_all(f.state_dir()).unwrap();
    std::fs::write(
        f.state_dir().join("state.json"),
        "{\"version\": 1, \"services\": {\"svc\": {\"last_st",
    )
    .unwrap();
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("is corrupt"), "{}", stdout(&out));
    let text = std::fs::read_to_string(f.state_dir().join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["services"]["svc"]["starts"], 1);
}

/// A service that never stays up: started, retried once after grace, then backed off; the
/// next tick does not start it and `status` says so.
#[test]
fn a_crash_looping_service_is_backed_off() {
    let f = Fixture::new();
    f.config(
        r#"
settings:
  converge: 4s
  backoff: 1m
svc:
  pname: "never-matches-{tag}"
  script: echo try >> {dir}/journal
  grace: 1s
"#,
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        f.journal().len(),
        2,
        "a start and one retry after grace: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("svc: still down: backed off for"),
        "{}",
        stdout(&out)
    );
    let out = f.run();
    assert_eq!(
        f.journal().len(),
        2,
        "no start while backed off: {}",
        stdout(&out)
    );
    let j = f.status_json();
    assert_eq!(j["services"][0]["state"], "backoff");
    assert_eq!(j["services"][0]["failures"], 2);
    // An operator's reset lifts it.
    let out = f.reset("svc");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = f.status_json();
    assert_eq!(j["services"][0]["state"], "dead");
}

#[test]
fn dry_run_starts_nothing_and_writes_nothing() {
    let f = Fixture::new();
    f.config(&format!(
        "svc:\n  pname: '{re}'\n  script: {s}\n",
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let out = f.autoheal(&[
        "run",
        "--dry-run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("svc: would start: dead, deps ready"),
        "{}",
        stdout(&out)
    );
    assert!(f.journal().is_empty());
    assert!(!f.state_dir().exists(), "dry-run wrote the state dir");
}

#[test]
fn status_json_matches_the_schema() {
    let f = Fixture::new();
    let http = http_server(503);
    f.config(&format!(
        r#"
settings:
  converge: 0
up:
  pname: '{re}'
  script: {s}
down:
  pid_file: {{dir}}/down.pid
  dep:
    - name: up
    - name: api
      url: http://127.0.0.1:{http}/
  script: "true"
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("up", 1)
    ));
    assert_eq!(f.run().status.code(), Some(1));
    let out = f.autoheal(&[
        "status",
        "--json",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(j["all_alive"], false);
    assert!(j["time"].as_str().unwrap().ends_with('Z'));
    let up = &j["services"][0];
    assert_eq!(up["name"], "up");
    assert_eq!(up["state"], "alive");
    assert_eq!(up["alive"], true);
    assert_eq!(up["pid"].as_u64(), f.pid_of("up").map(u64::from));
    assert_eq!(up["starts"], 1);
    assert!(up["last_start"].is_string() && up["reason"].is_null());
    let down = &j["services"][1];
    assert_eq!(down["state"], "waiting");
    assert_eq!(down["alive"], false);
    assert_eq!(down["healthy"], serde_json::Value::Null);
    assert!(down["dead_because"].as_str().unwrap().contains("missing"));
    assert_eq!(down["deps"][0]["kind"], "service");
    assert_eq!(down["deps"][0]["ready"], true);
    assert_eq!(down["deps"][1]["kind"], "http");
    assert_eq!(down["deps"][1]["ready"], false);
    assert_eq!(down["deps"][1]["reason"], "HTTP 503");
    assert_eq!(
        down["reason"],
        format!("waiting on api http://127.0.0.1:{http}/ (HTTP 503)")
    );
    for key in ["failures", "gave_up", "backoff_until", "last_result"] {
        assert!(down.get(key).is_some(), "{key} missing");
    }
    // The table has the same facts.
    let out = f.autoheal(&[
        "status",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    let table = stdout(&out);
    assert!(table.starts_with("SERVICE"), "{table}");
    assert!(table.contains("api DOWN"), "{table}");
}

#[test]
fn a_bad_config_starts_nothing_and_exits_2() {
    let f = Fixture::new();
    f.config(&format!(
        "svc:\n  pname: '{re}'\n  script: {s}\n  grace: forever\n",
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let out = f.run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("conf.yaml:4:10: svc: `grace`: bad duration `forever`"),
        "{}",
        stderr(&out)
    );
    assert!(f.journal().is_empty());
    // Never silent: the state dir's log says it, and that nothing is healed (no version of
    // the file ever loaded here, so there is none to heal with).
    let log = std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap();
    assert!(log.contains("does not load: 1 error: "), "{log}");
    assert!(
        log.contains("no version of it has loaded here before"),
        "{log}"
    );
}

/// `--dry-run` and `status` read a bad state file but leave it where it is.
#[test]
fn dry_run_and_status_leave_a_bad_state_file_alone() {
    let f = Fixture::new();
    f.config("settings:\n  converge: 0\nsvc:\n  pname: 'never-{tag}'\n  script: 'true'\n");
    std::fs::create_dir_all(f.state_dir()).unwrap();
    let bad = f.state_dir().join("state.json");
    std::fs::write(&bad, "{not json").unwrap();
    let out = f.autoheal(&[
        "run",
        "--dry-run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert!(stdout(&out).contains("is corrupt"), "{}", stdout(&out));
    let out = f.autoheal(&[
        "status",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "{not json");
    assert_eq!(std::fs::read_dir(f.state_dir()).unwrap().count(), 1);
}

/// Alive but failing its `health:` probe: restarted (SIGTERM to its pid, then its script).
#[test]
fn an_unhealthy_service_is_stopped_and_restarted() {
    let f = Fixture::new();
    let sick = http_server(503);
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
svc:
  pid_file: {{dir}}/svc.pid
  health:
    url: http://127.0.0.1:{sick}/health
  grace: 1s
  script: {s}
"#,
        s = f.daemon_script("svc", 1)
    ));
    // First tick: dead, started.
    assert_eq!(f.run().status.code(), Some(1));
    let first = f.pid_of("svc").unwrap();
    assert!(wait_for(Duration::from_secs(3), || is_running(first)));
    std::thread::sleep(Duration::from_millis(1100)); // past grace
    let out = f.run();
    let log = stdout(&out);
    assert!(log.contains("svc: restarted: unhealthy (1 failed health observation in a row): health http://127.0.0.1:"), "{log}");
    assert!(
        log.contains(&format!("pid {first} exited on SIGTERM")),
        "{log}"
    );
    let second = f.pid_of("svc").unwrap();
    assert_ne!(first, second);
    assert!(wait_for(Duration::from_secs(2), || !is_running(first)));
    assert_eq!(f.journal().len(), 2);
}

/// `restart_on_dep_restart`: a dependent restarted after its dep restarted behind its back.
#[test]
fn a_dependent_follows_its_restarted_dep() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
db:
  pname: '{re1}'
  script: {s1}
app:
  pname: '{re2}'
  dep: [{{name: db}}]
  restart_on_dep_restart: true
  grace: 1s
  stop: kill $(cat {{dir}}/app.pid)
  script: {s2}
"#,
        re1 = f.sleeper_re(1),
        re2 = f.sleeper_re(2),
        s1 = f.daemon_script("db", 1),
        s2 = f.daemon_script("app", 2),
    ));
    // app first, by hand, then db: db is newer than app (process start times count in
    // clock ticks; keep them clearly apart).
    let old_app = f.start_by_hand("app", 2);
    std::thread::sleep(Duration::from_millis(300));
    f.start_by_hand("db", 1);
    // app's process older than its grace: no longer warming up, so it may be restarted.
    std::thread::sleep(Duration::from_millis(900));
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains("app: restarted: db restarted after it; stop command exit 0"),
        "{log}"
    );
    assert_ne!(f.pid_of("app").unwrap(), old_app);
    assert!(wait_for(Duration::from_secs(2), || !is_running(old_app)));
    // Now app is newer than db: the next tick leaves both alone.
    let out = f.run();
    assert_eq!(stdout(&out), "");
    assert_eq!(f.journal(), vec!["app", "db", "app"]);
}

/// Bad usage names what is wrong and changes nothing: a reset of a service the file does not
/// have, a state dir that cannot be created.
#[test]
fn bad_usage_exits_2_and_says_why() {
    let f = Fixture::new();
    f.config(&format!(
        "svc:\n  pname: '{re}'\n  script: {s}\n",
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let out = f.reset("svc2");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no service `svc2` in") && stderr(&out).contains("(services: svc)"),
        "{}",
        stderr(&out)
    );
    // A state dir below a plain file cannot exist.
    std::fs::write(f.path("file"), "").unwrap();
    let out = f.autoheal(&[
        "run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/file/state",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot create state dir"),
        "{}",
        stderr(&out)
    );
    assert!(f.journal().is_empty(), "nothing started");
}

/// Grace counts from when a start's script returned, not from when it began: a script slower
/// than the grace, whose daemon shows up a moment after it returns, is started once.
#[test]
fn a_script_slower_than_its_grace_is_started_once() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 4s
svc:
  pname: '{re}'
  grace: 1s
  script: sleep 1.5; (sleep 0.5; {s}) >/dev/null 2>&1 &
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(f.journal(), vec!["svc"], "{}", stdout(&out));
    let starts = stdout(&out).matches("svc: started").count();
    assert_eq!(starts, 1, "{}", stdout(&out));
}

/// A state file that cannot be written starts nothing (else grace and backoff would be lost
/// and every tick would start the service again): exit 2, the reason on stderr and in the log.
#[test]
fn a_state_that_cannot_be_saved_starts_nothing() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0\nsvc:\n  pname: '{re}'\n  script: {s}\n",
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    // The temp file the state is written through is a directory: every save fails, as on a
    // full or read-only disk.
    std::fs::create_dir_all(f.path("state/.state.json.tmp/x")).unwrap();
    for _ in 0..3 {
        let out = f.run();
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("cannot write state file"),
            "{}",
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("svc: not started: the state file cannot be saved"),
            "{}",
            stdout(&out)
        );
    }
    assert!(f.journal().is_empty(), "nothing was started");
}

/// A process younger than its grace is warming up, whoever started it (systemd at boot, an
/// operator): failing health does not restart it yet.
#[test]
fn a_warming_up_process_is_not_health_restarted() {
    let f = Fixture::new();
    let closed = free_port();
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
svc:
  pname: '{re}'
  health:
    host: 127.0.0.1
    port: {closed}
  grace: 3s
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    // Started by someone else, a moment ago.
    let first = f.start_by_hand("svc", 1);
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains("svc: still unhealthy:") && log.contains("in grace for"),
        "{log}"
    );
    assert!(is_running(first));
    // Past its grace, still failing: restarted.
    std::thread::sleep(Duration::from_millis(3200));
    let out = f.run();
    assert!(
        stdout(&out).contains("svc: restarted: unhealthy"),
        "{}",
        stdout(&out)
    );
    assert!(wait_for(Duration::from_secs(3), || !is_running(first)));
}

/// A loose `pname` matching two unrelated processes: a health restart would have to guess which
/// one to stop. autoheal does not guess: it signals nothing, starts nothing and says why.
#[test]
fn an_ambiguous_pname_is_not_health_restarted() {
    let f = Fixture::new();
    let closed = free_port();
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
svc:
  pname: 'sleep 1000\.{tag}[12]$'
  health:
    host: 127.0.0.1
    port: {closed}
  grace: 1s
  script: {s}
"#,
        tag = f.tag,
        s = f.daemon_script("svc", 1)
    ));
    let (one, two) = (f.start_by_hand("one", 1), f.start_by_hand("two", 2));
    std::thread::sleep(Duration::from_millis(1100)); // past grace
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("svc: still unhealthy: unhealthy (1 failed health observation in a row)")
            && log.contains("not restarted:")
            && log.contains("stop:"),
        "{log}"
    );
    assert!(is_running(one) && is_running(two), "nothing signalled");
    assert_eq!(f.journal(), vec!["one", "two"], "nothing started");
}

/// A hung script holds back only its own service: the tick goes on observing and heals an
/// unrelated chain while it runs, then records the hung one when its timeout kills it.
#[test]
fn a_hung_script_does_not_hold_back_unrelated_services() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 5s
hung:
  pname: 'never-{{tag}}'
  script: sleep 30
  timeout: 4s
a:
  pname: '{re1}'
  script: {s1}
b:
  pname: '{re2}'
  dep: [{{name: a}}]
  script: {s2}
"#,
        re1 = f.sleeper_re(1),
        re2 = f.sleeper_re(2),
        s1 = f.daemon_script("a", 1),
        s2 = f.daemon_script("b", 2),
    ));
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(f.journal(), vec!["a", "b"], "{log}");
    let b_started = log.find("b: started").expect(&log);
    let hung_killed = log
        .find("hung: start failed: script killed after timeout 4s")
        .expect(&log);
    assert!(
        b_started < hung_killed,
        "b did not wait for hung's script: {log}"
    );
}

/// A tick ends on a last look after the scripts it ran: in one pass (`converge: 0`) a service
/// whose script left it running is reported up and the tick exits 0, not 1.
#[test]
fn a_one_pass_tick_ends_on_what_its_scripts_did() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0\nsvc:\n  pname: '{re}'\n  script: {s}\n",
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("svc: started") && log.contains("svc: up,"),
        "{log}"
    );
    assert_eq!(f.journal(), vec!["svc"]);
}

/// When the state cannot be saved mid-tick, the tick ends (exit 2), but only after the scripts
/// it started have returned: none is left running unwatched, and each outcome is logged.
#[test]
fn a_tick_that_cannot_save_waits_for_its_scripts_before_it_ends() {
    let f = Fixture::new();
    f.config(
        r#"
settings:
  converge: 5s
slow:
  pname: 'never-{tag}-slow'
  script: until mkdir -p {dir}/state/state.json/x 2>/dev/null; do rm -f {dir}/state/state.json; done; sleep 1.5; echo slow >> {dir}/journal
  timeout: 10s
quick:
  pname: 'never-{tag}-quick'
  script: sleep 0.2; echo quick >> {dir}/journal
"#,
    );
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{log}{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write state file"),
        "{}",
        stderr(&out)
    );
    // quick returned first; the save after it failed; slow's outcome was still waited for.
    let mut journal = f.journal();
    journal.sort();
    assert_eq!(journal, vec!["quick", "slow"], "{log}");
    assert!(
        log.contains("slow: start failed") || log.contains("slow: started"),
        "{log}"
    );
}

/// A clock stepped forward after a service wrote its pid file makes its process look younger
/// than the file. The process autoheal has already seen alive through that pid file is known by
/// marks no clock changes (boot id, pid, start ticks): it stays alive, and is not started twice.
#[test]
fn a_pid_file_seen_alive_stays_alive_when_the_clock_jumps() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0\nsvc:\n  pid_file: svc.pid\n  script: {s}\n",
        s = f.daemon_script("svc", 1)
    ));
    let pid = f.start_by_hand("svc", 1);
    assert_eq!(stdout(&f.run()), "", "alive: nothing to do");
    // What a forward step looks like from here: the pid file now seems written an hour before
    // its process started.
    age_file(&f.path("svc.pid"), 3600);
    let out = f.run();
    assert_eq!(stdout(&out), "", "still alive, not started again");
    assert_eq!(out.status.code(), Some(0));
    assert!(is_running(pid));
    assert_eq!(f.journal(), vec!["svc"]);
}

/// A tick whose only unhealed services are one autoheal gave up on and its dependent waits for
/// nothing: it ends at once, not at the end of its converge budget.
#[test]
fn a_tick_held_only_by_a_given_up_service_ends_at_once() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 60s\n  give_up_after: 1\na:\n  pname: 'never-{tag}-a'\n  grace: 100ms\n  script: exit 1\nb:\n  pname: 'never-{tag}-b'\n  dep: [{{name: a}}]\n  script: 'true'\n",
        tag = f.tag
    ));
    let first = f.run();
    assert_eq!(first.status.code(), Some(1), "{}", stdout(&first));
    let began = Instant::now();
    let out = f.run();
    let took = began.elapsed();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("b: still down: waiting on a (dead, autoheal gave up on it)"),
        "{log}"
    );
    // Half the budget is a margin no loaded machine needs; the old tick took all 60 s.
    assert!(
        took < Duration::from_secs(30),
        "the tick waited {took:?} for nothing: {log}"
    );
}

/// `autoheal run | head -1`: stdout closes after the first line. The tick still does all its
/// work (a chain of three comes up, in order) and its log file gets every line; nothing
/// panics. `status --json` into a closed pipe and `check >/dev/full` do not panic either.
#[test]
fn a_closed_or_full_stdout_never_breaks_a_tick() {
    use std::process::Stdio;
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 20s\na:\n  pname: '{}'\n  script: {}\nb:\n  pname: '{}'\n  dep: [{{name: a}}]\n  script: {}\nc:\n  pname: '{}'\n  dep: [{{name: b}}]\n  script: {}\n",
        f.sleeper_re(1),
        f.daemon_script("a", 1),
        f.sleeper_re(2),
        f.daemon_script("b", 2),
        f.sleeper_re(3),
        f.daemon_script("c", 3),
    ));
    let closed = |args: &[&str]| {
        let mut child = f
            .autoheal_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let out = child.wait_with_output().unwrap();
        (out.status.code(), stderr(&out))
    };
    let (code, err) = closed(&["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(f.journal(), ["a", "b", "c"]);
    let log = std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap();
    for s in ["a", "b", "c"] {
        assert!(log.contains(&format!("{s}: started: was dead")), "{log}");
        assert!(log.contains(&format!("{s}: up,")), "{log}");
    }
    let (code, err) = closed(&[
        "status",
        "--json",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = f
        .autoheal_cmd(&["check", "-c", "{dir}/conf.yaml"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
