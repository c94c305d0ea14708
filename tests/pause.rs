//! `autoheal pause`, `resume` and `reset --all` against real processes: a paused service is
//! observed but never started, restarted or stopped, its dependents wait on it, the pause ends
//! by itself or by `resume`, and every lever takes the tick lock.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};
use support::*;

/// db, and web that depends on it; both daemons of this fixture.
fn stack(f: &Fixture) {
    f.config(&format!(
        r#"
db:
  pname: '{db_re}'
  script: {db}
web:
  pname: '{web_re}'
  dep: [{{name: db}}]
  script: {web}
"#,
        db_re = f.sleeper_re(1),
        db = f.daemon_script("db", 1),
        web_re = f.sleeper_re(2),
        web = f.daemon_script("web", 2),
    ));
}

/// `autoheal <args> -c conf.yaml --state-dir state`, run by `user` (as sudo says it).
fn lever(f: &Fixture, user: &str, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"]);
    f.autoheal_cmd(&all)
        .env("SUDO_USER", user)
        .output()
        .unwrap()
}

fn service<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

fn log_of(f: &Fixture) -> String {
    std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap_or_default()
}

#[test]
fn a_paused_dead_service_holds_its_dependents_through_three_ticks_until_resumed() {
    let f = Fixture::new();
    stack(&f);
    let out = lever(
        &f,
        "alice",
        &[
            "pause",
            "db",
            "--for",
            "2h",
            "--reason",
            "upgrading postgres",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("db: paused by alice for 2h00m, until ")
            && stdout(&out).contains(": upgrading postgres; autoheal observes it"),
        "{}",
        stdout(&out)
    );
    let metrics = f.path("metrics.prom");
    for tick in 1..=3 {
        let out = f.autoheal(&[
            "run",
            "-c",
            "{dir}/conf.yaml",
            "--state-dir",
            "{dir}/state",
            "--metrics",
            "{dir}/metrics.prom",
        ]);
        let log = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "tick {tick}: {log}");
        assert!(
            log.contains("db: still down: dead (no process matches")
                && log.contains("paused by alice until "),
            "tick {tick}: {log}"
        );
        assert!(
            log.contains("web: still down: waiting on db (dead, paused by alice until "),
            "tick {tick}: {log}"
        );
        assert!(f.journal().is_empty(), "tick {tick}: nothing started");
    }
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains(r#"autoheal_service_state{service="db",state="paused"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"autoheal_service_state{service="web",state="waiting"} 1"#),
        "{text}"
    );
    let status = f.status_json();
    assert_eq!(status["schema"], 1);
    let db = service(&status, "db");
    assert_eq!(db["state"], "paused");
    assert_eq!(db["paused"]["by"], "alice");
    assert_eq!(db["paused"]["reason"], "upgrading postgres");
    assert!(db["paused"]["until"].is_string(), "{db}");
    let web = service(&status, "web");
    assert_eq!(web["state"], "waiting");
    assert!(web["paused"].is_null());
    assert!(
        web["reason"].as_str().unwrap().contains("paused by alice"),
        "{web}"
    );

    let out = lever(&f, "bob", &["resume", "db"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        log_of(&f).contains("db: resumed by bob; it was paused by alice until "),
        "{}",
        log_of(&f)
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(f.journal(), ["db", "web"], "in order, once resumed");
    assert!(f.status_json()["services"][0]["paused"].is_null());
    // Resuming what is not paused says so and changes nothing.
    let out = lever(&f, "bob", &["resume", "db"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("db is not paused"),
        "{}",
        stderr(&out)
    );
}

/// The tick that finds the pause holding waits on it like on any hold that lifts within its
/// converge budget, and starts the service, then its dependent, once it has ended.
#[test]
fn a_pause_ends_by_itself() {
    let f = Fixture::new();
    stack(&f);
    let out = lever(&f, "alice", &["pause", "db", "--for", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let paused_at = Instant::now();
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(paused_at.elapsed() >= Duration::from_secs(1), "{log}");
    let ended = log
        .find("db: pause ended by itself (paused by alice at ")
        .unwrap_or_else(|| panic!("{log}"));
    let started = log.find("db: started: ").unwrap_or_else(|| panic!("{log}"));
    assert!(ended < started, "{log}");
    assert_eq!(f.journal(), ["db", "web"]);
    // Said once: the pause is gone from the state.
    assert!(f.status_json()["services"][0]["paused"].is_null());
    assert!(!stdout(&f.run()).contains("pause ended"));
}

#[test]
fn pause_all_holds_every_service_until_resume_all() {
    let f = Fixture::new();
    stack(&f);
    // db runs, started by hand; web is dead.
    let db = f.start_by_hand("db", 1);
    let out = lever(
        &f,
        "alice",
        &["pause", "--all", "--for", "0", "--reason", "kernel"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("web: paused by alice until resumed: kernel"));
    for _ in 0..2 {
        let out = f.run();
        let log = stdout(&out);
        // Until resumed: every tick says so, for the one alive too.
        assert!(
            log.contains("db: still paused: alive, paused by alice since ")
                && log.contains("until resumed (`autoheal resume`): kernel"),
            "{log}"
        );
        assert!(
            log.contains("web: still down: dead (no process matches")
                && log.contains("until resumed"),
            "{log}"
        );
    }
    let status = f.status_json();
    for name in ["db", "web"] {
        let s = service(&status, name);
        assert_eq!(s["state"], "paused", "{s}");
        assert!(s["paused"]["until"].is_null(), "{s}");
    }
    assert_eq!(service(&status, "db")["alive"], true);
    // Its process dies during the window: not started again.
    kill(db as i32);
    assert!(wait_for(Duration::from_secs(5), || !is_running(db)));
    f.run();
    assert_eq!(f.journal(), ["db"], "only the start by hand");

    let out = lever(&f, "bob", &["resume", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(f.journal(), ["db", "db", "web"]);
}

#[test]
fn reset_all_forgets_every_failure_but_not_a_pause() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  give_up_after: 1
bad:
  pname: '{re}'
  script: exit 3
db:
  pname: '{db_re}'
  script: {db}
"#,
        re = f.sleeper_re(9),
        db_re = f.sleeper_re(1),
        db = f.daemon_script("db", 1),
    ));
    assert_eq!(lever(&f, "alice", &["pause", "db"]).status.code(), Some(0));
    f.run();
    let status = f.status_json();
    assert_eq!(service(&status, "bad")["failures"], 1, "{status}");
    let out = lever(&f, "alice", &["reset", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = log_of(&f);
    assert!(
        log.contains("bad: reset by an operator: its 1 failed restart"),
        "{log}"
    );
    assert!(log.contains("db: reset by an operator"), "{log}");
    let status = f.status_json();
    assert_eq!(service(&status, "bad")["failures"], 0, "{status}");
    assert_eq!(service(&status, "db")["state"], "paused", "{status}");
}

#[test]
fn a_service_not_in_the_file_is_refused_and_nothing_is_touched() {
    let f = Fixture::new();
    stack(&f);
    for args in [
        &["pause", "nginx"][..],
        &["resume", "nginx"],
        &["reset", "nginx"],
    ] {
        let out = lever(&f, "alice", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("no service `nginx` in ")
                && stderr(&out).contains("(services: db, web)"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!f.state_dir().join("state.json").exists());
    // Neither a service nor --all, or both: a usage error.
    assert_eq!(lever(&f, "alice", &["pause"]).status.code(), Some(2));
    assert_eq!(
        lever(&f, "alice", &["resume", "db", "--all"]).status.code(),
        Some(2)
    );
    let out = lever(&f, "alice", &["pause", "db", "--for", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("soon"), "{}", stderr(&out));
}

#[test]
fn a_lever_refuses_while_a_tick_holds_the_lock() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
slow:
  pname: '{re}'
  script: sleep 2; {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("slow", 1),
    ));
    let mut tick = f
        .autoheal_cmd(&["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = f.state_dir().join("lock");
    assert!(wait_for(Duration::from_secs(5), || {
        std::fs::File::open(&lock).is_ok_and(|fd| {
            rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
        })
    }));
    for args in [
        &["pause", "slow"][..],
        &["resume", "--all"],
        &["reset", "--all"],
    ] {
        let out = lever(&f, "alice", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("a tick is running (pid ")
                && stderr(&out).contains(&format!("run {} again once it ends", args[0])),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(tick.wait().unwrap().success());
    let out = lever(&f, "alice", &["pause", "slow"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(f.status_json()["services"][0]["state"], "paused");
}

/// A typo in the file does not take the levers away: `pause` acts on the last version that
/// loaded, the one `run` heals with meanwhile, and says so; the next `run` holds the service.
#[test]
fn a_broken_file_still_takes_a_pause_through_its_last_good_version() {
    let f = Fixture::new();
    stack(&f);
    assert_eq!(f.run().status.code(), Some(0));
    let db = f.pid_of("db").unwrap();
    kill(db as i32);
    let good = std::fs::read_to_string(f.path("conf.yaml")).unwrap();
    std::fs::write(f.path("conf.yaml"), good.replace("  script:", "  scrpit:")).unwrap();
    let out = lever(&f, "alice", &["pause", "db", "--reason", "fixing the file"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("acting on the last version of"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        f.run().status.code(),
        Some(2),
        "the file still does not load"
    );
    let log = log_of(&f);
    assert!(log.contains("db: still down: dead"), "{log}");
    assert!(log.contains("paused by alice"), "{log}");
    assert_eq!(
        f.journal(),
        ["db", "web"],
        "db was not started again: {log}"
    );
}
