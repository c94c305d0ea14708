//! Safe as root (issue 8): what a hostile local user or a hostile server could do to a tick,
//! each tried for real and shown closed: forged log lines, a state dir someone else made or
//! planted with symlinks, FIFOs and devices in the state dir, the environment and descriptors
//! a script inherits, a script an interrupted tick left running.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use support::*;

/// A server that answers every connection with `reply`, for the life of the test.
fn replying_server(reply: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

/// A probed server's reply that holds a newline and a whole log line reaches the log, the
/// output and `status` as one escaped line; `status --json` keeps it exact.
#[test]
fn a_forged_log_line_arrives_as_one_escaped_line() {
    const FORGED: &str = "nope\n2026-12-01T00:00:00Z web: started: forged by the server\x1b[2J\n";
    let port = replying_server(FORGED);
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
web:
  pname: '{re}'
  dep:
    - name: api
      lua: |
        local reply, err = tcp_exchange("127.0.0.1", {port}, "hi\n", {{timeout = 2}})
        return false, reply or err
  script: {script}
"#,
        re = f.sleeper_re(1),
        script = f.daemon_script("web", 1),
    ));
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let escaped = "nope\\n2026-12-01T00:00:00Z web: started: forged by the server\\x1b[2J\\n";
    let file = std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap();
    for text in [stdout(&out), file] {
        assert!(text.contains(escaped), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        for line in text.lines() {
            assert!(
                line.starts_with("20") && !line.contains(": started: forged\n"),
                "{line}"
            );
            assert!(
                !line.starts_with("2026-12-01T00:00:00Z"),
                "a forged line: {line}"
            );
        }
    }
    assert!(f.journal().is_empty(), "nothing started");
    let table = f.autoheal(&[
        "status",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    let table = stdout(&table);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains(escaped), "{table}");
    let json = f.status_json();
    let reason = json["services"][0]["deps"][0]["reason"].as_str().unwrap();
    assert!(reason.contains(FORGED), "{reason:?}");
}

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A root-only file (0600, in a 0700 dir) with known content: what a planted link points at.
fn secret(f: &Fixture, name: &str) -> (PathBuf, std::time::SystemTime) {
    let vault = f.path("vault");
    std::fs::create_dir_all(&vault).unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = vault.join(name);
    std::fs::write(&p, format!("root's {name}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    (p, mtime)
}

fn untouched(p: &Path, mtime: std::time::SystemTime) {
    let name = p.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(p).unwrap(),
        format!("root's {name}\n")
    );
    assert_eq!(
        std::fs::metadata(p).unwrap().modified().unwrap(),
        mtime,
        "{p:?} written"
    );
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// One service that would be started (dead, no deps); its script appends to the journal.
fn one_service(f: &Fixture) {
    f.config(&format!(
        "settings:\n  converge: 0\nweb:\n  pname: '{}'\n  script: {}\n",
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    ));
}

/// The four links a local user plants in a state dir made before autoheal's first tick.
fn plant(f: &Fixture, dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut targets = Vec::new();
    for name in ["lock", ".state.json.tmp", "autoheal.log", "logs/web.log"] {
        let (target, mtime) = secret(f, &name.replace('/', "_"));
        std::os::unix::fs::symlink(&target, dir.join(name)).unwrap();
        targets.push((target, mtime));
    }
    targets
}

/// A state dir another user made (in a directory anyone may write to, as /tmp), with links
/// planted to root-only files: refused whole, exit 2; nothing written through the links,
/// nothing started.
#[test]
fn a_state_dir_made_by_another_user_is_refused_and_its_links_never_followed() {
    let (user, uid, gid) = test_user();
    let f = Fixture::new();
    one_service(&f);
    let dir = f.state_dir();
    let targets = plant(&f, &dir);
    for p in [dir.join("logs"), dir.clone()] {
        chown(&p, uid, gid);
    }
    for name in ["lock", ".state.json.tmp", "autoheal.log", "logs/web.log"] {
        chown(&dir.join(name), uid, gid);
    }
    for args in [
        vec!["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"],
        vec![
            "reset",
            "web",
            "-c",
            "{dir}/conf.yaml",
            "--state-dir",
            "{dir}/state",
        ],
    ] {
        let out = f.autoheal(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "refusing state dir {}: it is owned by uid {uid} ({user}), not by root",
                dir.display()
            )),
            "{err}"
        );
        assert!(err.contains(&format!("rm -r {}", dir.display())), "{err}");
    }
    for (t, m) in &targets {
        untouched(t, *m);
    }
    assert!(f.journal().is_empty(), "nothing started");
}

/// The same links in a state dir of root's own (left there while it was open to others):
/// never followed. The lock link ends the tick with exit 2 at once; without it, the tick runs,
/// its log and the script's log refuse their links (the script is not run), and the temp file
/// link is replaced, not written through.
#[test]
fn links_in_a_state_dir_of_roots_own_are_never_followed() {
    let f = Fixture::new();
    one_service(&f);
    let dir = f.state_dir();
    let targets = plant(&f, &dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!(
            "refusing {}: it is a symlink, not a regular file",
            dir.join("lock").display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        f.journal().is_empty(),
        "nothing started with the lock refused"
    );
    std::fs::remove_file(dir.join("lock")).unwrap();
    let out = f.run();
    let text = stdout(&out);
    assert!(
        text.contains("cannot append to the log: refusing"),
        "{text}"
    );
    assert!(
        text.contains("web: start failed: script could not start: cannot open log file"),
        "{text}"
    );
    assert!(
        f.journal().is_empty(),
        "the script never ran without its log"
    );
    for (t, m) in &targets {
        untouched(t, *m);
    }
    assert!(
        std::fs::symlink_metadata(dir.join(".state.json.tmp")).is_err(),
        "the link is gone"
    );
    assert!(dir.join("state.json").is_file());
}

/// A state dir of root's that others may write to is refused; a new one is made 0700; the
/// logs are 0640 or stricter (an older, more open log is tightened), the state file 0600.
#[test]
fn the_state_dir_is_0700_and_logs_0640() {
    let f = Fixture::new();
    one_service(&f);
    let dir = f.state_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = f.run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("it is writable by others (mode 0777). Fix: chmod 0700"),
        "{}",
        stderr(&out)
    );
    assert!(f.journal().is_empty());
    std::fs::remove_dir(&dir).unwrap();
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().mode() & 0o7777;
    assert_eq!(mode(dir.clone()), 0o700);
    assert_eq!(mode(dir.join("logs")), 0o700);
    assert_eq!(mode(dir.join("autoheal.log")), 0o640);
    assert_eq!(mode(dir.join("logs/web.log")), 0o640);
    assert_eq!(mode(dir.join("state.json")), 0o600);
    std::fs::set_permissions(
        dir.join("autoheal.log"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    support::kill(f.pid_of("web").unwrap() as i32);
    f.run();
    assert_eq!(mode(dir.join("autoheal.log")), 0o640);
}

/// A FIFO or a device where the state file or the lock should be ends the tick at once with a
/// clear error (exit 2), never a blocking open or an endless read; nothing is started.
#[test]
fn a_fifo_or_a_device_in_the_state_dir_ends_the_tick_at_once() {
    for (name, kind) in [
        ("state.json", "fifo"),
        ("state.json", "zero"),
        ("state.json", "zero-link"),
        ("lock", "fifo"),
        ("lock", "zero"),
    ] {
        let f = Fixture::new();
        one_service(&f);
        let dir = f.state_dir();
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let p = dir.join(name);
        let made = match kind {
            "fifo" => Command::new("mkfifo").arg(&p).status(),
            "zero" => Command::new("mknod").arg(&p).args(["c", "1", "5"]).status(),
            _ => std::os::unix::fs::symlink("/dev/zero", &p)
                .map(|()| Command::new("true").status().unwrap()),
        };
        assert!(made.unwrap().success());
        let cmd = f.autoheal_cmd(&["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"]);
        let out = output_within(cmd, Duration::from_secs(20));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name} {kind}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let what = match kind {
            "fifo" => "a FIFO",
            "zero" => "a character device",
            _ => "a symlink",
        };
        assert!(
            stderr(&out).contains(&format!(
                "refusing {}: it is {what}, not a regular file",
                p.display()
            )),
            "{name} {kind}: {}",
            stderr(&out)
        );
        assert!(f.journal().is_empty(), "{name} {kind}: nothing started");
    }
}

/// A `user:` service's script gets the small documented environment (its user's HOME, USER,
/// LOGNAME, SHELL, a safe PATH, AUTOHEAL_*, its `env:`), none of root's (a secret, LD_PRELOAD,
/// root's PATH), and no descriptor beyond 0-2 of those autoheal inherited; its `check:`
/// runs `exec` as that user too.
#[test]
fn a_user_script_starts_clean_and_its_check_execs_as_that_user() {
    let (user, uid, _) = test_user();
    let f = Fixture::new();
    // The daemon is started as the user; its pid file goes through the script's log (the
    // user cannot write in the fixture's root-only dir).
    f.config(&format!(
        r#"
settings:
  converge: 5s
web:
  pname: 'sleep 1000\.{tag}7$'
  user: {user}
  env:
    APP_MODE: prod
    QUOTED: "a b"
  check: |
    local ok, code, out = exec("id -u")
    return ok and out:match("^%d+") == "{uid}", "exec ran as " .. tostring(out)
  script: |
    echo "ENV-BEGIN"; env | sort; echo "ENV-END"
    echo "FDS-BEGIN"; ls -1 /proc/$$/fd; echo "FDS-END"
    sleep 1000.{tag}7 >/dev/null 2>&1 &
    echo "PID $!"
"#,
        tag = f.tag
    ));
    let bin = env!("CARGO_BIN_EXE_autoheal");
    let run = format!(
        "exec 7</etc/hostname 9</etc/passwd; exec {bin} run -c {dir}/conf.yaml --state-dir {dir}/state",
        dir = f.dir.path().display()
    );
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&run)
        .env("SECRET_TOKEN", "hunter2")
        .env("LD_PRELOAD", "")
        .env(
            "PATH",
            format!("/tmp/evil:{}", std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    let log = std::fs::read_to_string(f.state_dir().join("logs/web.log")).unwrap();
    let pid: i32 = log
        .lines()
        .find_map(|l| l.strip_prefix("PID "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the script ran");
    std::fs::write(f.path("web.pid"), format!("{pid}\n")).unwrap(); // killed by the fixture
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}\n{log}",
        stdout(&out),
        stderr(&out)
    );
    let env: Vec<&str> = log
        .lines()
        .skip_while(|l| *l != "ENV-BEGIN")
        .skip(1)
        .take_while(|l| *l != "ENV-END")
        .collect();
    let names: Vec<&str> = env.iter().filter_map(|l| l.split('=').next()).collect();
    let expected = [
        "APP_MODE",
        "AUTOHEAL_CONFIG",
        "AUTOHEAL_SERVICE",
        "HOME",
        "LOGNAME",
        "PATH",
        "PWD",
        "QUOTED",
        "SHELL",
        "USER",
    ];
    assert_eq!(names, expected, "{log}");
    assert!(
        env.contains(&"APP_MODE=prod") && env.contains(&"QUOTED=a b"),
        "{log}"
    );
    assert!(env.contains(&format!("USER={user}").as_str()), "{log}");
    assert!(env.contains(&format!("LOGNAME={user}").as_str()), "{log}");
    assert!(
        env.contains(&"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{log}"
    );
    assert!(env.contains(&"AUTOHEAL_SERVICE=web"), "{log}");
    assert!(
        !log.contains("hunter2") && !log.contains("/tmp/evil"),
        "{log}"
    );
    let fds: Vec<&str> = log
        .lines()
        .skip_while(|l| *l != "FDS-BEGIN")
        .skip(1)
        .take_while(|l| *l != "FDS-END")
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "{log}");
    // The check's exec ran as the user: the service is healthy.
    let json = f.status_json();
    assert_eq!(json["services"][0]["healthy"], true, "{json}");
    assert_eq!(json["services"][0]["alive"], true, "{json}");
}

/// Starts `autoheal run` of the fixture and SIGKILLs it (by its pid) once the state file
/// records the session of the script it launched.
fn kill_tick_mid_script(f: &Fixture) {
    let mut tick = f
        .autoheal_cmd(&["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let recorded = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(f.state_dir().join("state.json"))
            .is_ok_and(|s| s.contains("\"script_session\": {"))
    });
    tick.kill().unwrap();
    tick.wait().unwrap();
    assert!(recorded, "the tick recorded its script's session");
}

/// A tick SIGKILLed while a slow start script runs leaves it running; the next tick, past the
/// script's timeout, kills it (its whole session) before it starts the service again: one
/// daemon, never two.
#[test]
fn a_killed_tick_leaves_nothing_running_past_its_time() {
    let f = Fixture::new();
    // The first run is slow (it would start its daemon after 8 s); a later run starts it at once.
    let daemon = f.daemon_script("web", 1);
    f.config(&format!(
        r#"
settings:
  converge: 5s
web:
  pname: '{re}'
  timeout: 1s
  grace: 200ms
  script: if [ -e {dir}/slow-done ]; then {daemon}; else touch {dir}/slow-done; sleep 8; {daemon}; fi
"#,
        re = f.sleeper_re(1),
        dir = f.dir.path().display(),
    ));
    let launched = std::time::Instant::now();
    kill_tick_mid_script(&f);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.state_dir().join("state.json")).unwrap())
            .unwrap();
    let until = state["services"]["web"]["script_until"].as_f64().unwrap();
    let session = state["services"]["web"]["script_session"]["pid"]
        .as_u64()
        .unwrap() as u32;
    assert!(is_running(session), "the slow script outlived its tick");
    // Past the script's deadline (1 s after its launch), not yet at the end of its sleep.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    while now() <= until + 0.05 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{log}{}", stderr(&out));
    assert!(
        log.contains(&format!(
            "web: start failed: its start script (session {session}), left running by an interrupted tick, ran past its timeout 1s"
        )),
        "{log}"
    );
    assert!(log.contains("web: started: was dead"), "{log}");
    assert!(!is_running(session), "the left script was killed");
    // Once the slow run's sleep would have ended, still one daemon, started once.
    while launched.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.journal(), ["web"], "one start of the daemon");
    let pgrep = Command::new("pgrep")
        .args(["-c", "-f", &f.sleeper_re(1)])
        .output()
        .unwrap();
    assert_eq!(stdout(&pgrep).trim(), "1", "exactly one daemon");
}

/// A script left by a killed tick that ends by itself is not "script running" any more in the
/// next tick: its result says what happened, and the service is judged again.
#[test]
fn a_left_script_that_ended_is_not_left_running_in_the_state() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0\nweb:\n  pname: '{}'\n  timeout: 60s\n  script: sleep 1; {}\n",
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    ));
    kill_tick_mid_script(&f);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.state_dir().join("state.json")).unwrap())
            .unwrap();
    let session = state["services"]["web"]["script_session"]["pid"]
        .as_u64()
        .unwrap() as u32;
    assert!(
        wait_for(Duration::from_secs(20), || !is_running(session)),
        "the script ends"
    );
    assert!(f.pid_of("web").is_some(), "it started its daemon");
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let json = f.status_json();
    let web = &json["services"][0];
    assert_eq!(web["state"], "alive", "{json}");
    assert_eq!(
        web["last_result"],
        "ended while no tick watched it (the tick that launched it was interrupted)",
        "{json}"
    );
    assert_eq!(f.journal(), ["web"]);
}

/// A state dir inside a directory another user owns is refused (that user could swap it for
/// one of theirs), before anything is made in it.
#[test]
fn a_state_dir_under_another_users_dir_is_refused() {
    let (user, uid, gid) = test_user();
    let f = Fixture::new();
    one_service(&f);
    let theirs = f.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, uid, gid);
    let out = f.autoheal(&[
        "run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/theirs/state",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "refusing state dir {}/state, as where it sits is not root's alone",
            theirs.display()
        )) && err.contains(&format!("owned by {user}")),
        "{err}"
    );
    assert!(!theirs.join("state").exists(), "nothing made in it");
    assert!(f.journal().is_empty());
}

/// `status` only reads the state dir, but not one `run` would refuse: its content could be
/// anyone's. It says so and shows no history.
#[test]
fn status_does_not_read_a_state_dir_run_would_refuse() {
    let (user, uid, gid) = test_user();
    let f = Fixture::new();
    one_service(&f);
    let dir = f.state_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("state.json"),
        r#"{"version":1,"services":{"web":{"gave_up":true,"failures":9}}}"#,
    )
    .unwrap();
    chown(&dir, uid, gid);
    let out = f.autoheal(&[
        "status",
        "--json",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "refusing state dir {}: it is owned by uid {uid} ({user})",
            dir.display()
        )) && stderr(&out).contains("showing no history"),
        "{}",
        stderr(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["services"][0]["gave_up"], false, "{json}");
    assert_eq!(json["services"][0]["failures"], 0, "{json}");
}

/// A metrics file whose path goes through a symlink another account planted (in a directory of
/// theirs) is never written: the root-only file the link leads to stays as it was, and the log
/// says why. The metrics directory itself may be another account's (node_exporter's).
#[test]
fn a_metrics_path_through_another_accounts_symlink_is_not_written() {
    let (_, uid, gid) = test_user();
    let f = Fixture::new();
    let (secret_file, mtime) = secret(&f, "autoheal.prom");
    let theirs = f.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, uid, gid);
    std::os::unix::fs::symlink(secret_file.parent().unwrap(), theirs.join("m")).unwrap();
    chown(&theirs.join("m"), uid, gid);
    let through = theirs.join("m/autoheal.prom");
    f.config(&format!(
        "settings:\n  converge: 0\n  metrics_file: {}\nweb:\n  pname: '{}'\n  script: {}\n",
        through.display(),
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    ));
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    untouched(&secret_file, mtime);
    assert!(
        stdout(&out).contains("not written: where it sits is not root's alone"),
        "{}",
        stdout(&out)
    );
    // In a directory of theirs that is really one (no link on the way), it is written.
    let direct = theirs.join("autoheal.prom");
    f.config(&format!(
        "settings:\n  converge: 0\n  metrics_file: {}\nweb:\n  pname: '{}'\n  script: {}\n",
        direct.display(),
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    ));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        std::fs::read_to_string(&direct)
            .unwrap()
            .contains("autoheal_service_up")
    );
}
