//! Running scripts: real `/bin/sh`, real processes, real log files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autoheal::exec::{HookOutcome, ScriptOutcome, ScriptSpec, resolve_user, run_hook, run_script};

fn spec(dir: &Path, command: &str) -> ScriptSpec {
    ScriptSpec {
        service: "web".into(),
        command: command.into(),
        user: None,
        timeout: Duration::from_secs(5),
        log_path: dir.join("logs/web.log"),
        env: vec![],
        cwd: None,
    }
}

fn log_of(spec: &ScriptSpec) -> String {
    fs::read_to_string(&spec.log_path).unwrap_or_default()
}

/// The script's own output: the log minus autoheal's `--- ` header and footer lines.
fn output_of(spec: &ScriptSpec) -> Vec<String> {
    log_of(spec)
        .lines()
        .filter(|l| !l.starts_with("--- "))
        .map(str::to_string)
        .collect()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// True when the process is gone or only a zombie (dead, not yet reaped by its new parent).
fn dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let after_comm = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            after_comm.split_whitespace().next() == Some("Z")
        }
    }
}

fn read_pid(path: &PathBuf) -> u32 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}", path.display()))
}

#[test]
fn exit_codes_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = run_script(&spec(tmp.path(), "exit 0"));
    assert!(
        matches!(ok, ScriptOutcome::Exited { code: 0, .. }),
        "{ok:?}"
    );
    assert!(ok.success());
    assert!(ok.describe().starts_with("exit 0 in "), "{}", ok.describe());

    let bad = run_script(&spec(tmp.path(), "exit 3"));
    assert!(
        matches!(bad, ScriptOutcome::Exited { code: 3, .. }),
        "{bad:?}"
    );
    assert!(!bad.success());
}

#[test]
fn killed_by_a_signal_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_script(&spec(tmp.path(), "kill -9 $$"));
    assert!(
        matches!(out, ScriptOutcome::Signaled { signal: 9, .. }),
        "{out:?}"
    );
    assert!(!out.success());
}

#[test]
fn output_goes_to_the_log_after_a_header() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path(), "echo to-stdout; echo to-stderr >&2");
    assert!(run_script(&s).success());
    let log = log_of(&s);
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].starts_with("--- ")
            && lines[0].ends_with(" autoheal: starting web: echo to-stdout; echo to-stderr >&2"),
        "{log}"
    );
    // An RFC 3339 time follows the dashes.
    let time = lines[0].split(' ').nth(1).unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    assert_eq!(&lines[1..3], ["to-stdout", "to-stderr"]);
    assert!(lines[3].contains("autoheal: web: exit 0 in "), "{log}");

    // A second run appends.
    assert!(run_script(&s).success());
    assert_eq!(
        output_of(&s),
        ["to-stdout", "to-stderr", "to-stdout", "to-stderr"]
    );
}

#[test]
fn backgrounded_daemon_does_not_hold_us() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("daemon.pid");
    let s = spec(
        tmp.path(),
        &format!("sleep 300 & echo $! > {}; echo started", pidfile.display()),
    );
    let t = Instant::now();
    let out = run_script(&s);
    let took = t.elapsed();
    let daemon = read_pid(&pidfile);
    let still_running = !dead(daemon);
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert!(out.success(), "{out:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(still_running, "the daemon must survive its script");
    assert_eq!(output_of(&s), ["started"]);
}

#[test]
fn hung_script_is_killed_with_its_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("child.pid");
    let mut s = spec(
        tmp.path(),
        &format!(
            "sleep 301 & echo $! > {}; wait; echo never",
            pidfile.display()
        ),
    );
    s.timeout = Duration::from_secs(1);
    let t = Instant::now();
    let out = run_script(&s);
    let took = t.elapsed();
    assert!(matches!(out, ScriptOutcome::TimedOut { .. }), "{out:?}");
    assert!(!out.success());
    assert!(
        out.describe().starts_with("killed after timeout "),
        "{}",
        out.describe()
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let child = read_pid(&pidfile);
    // The orphan is killed by then; give its reaper a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !dead(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dead(child), "child sleep {child} survived the timeout");
    assert!(!output_of(&s).contains(&"never".to_string()));
}

#[test]
fn script_ignoring_sigterm_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path(), "trap '' TERM; sleep 300; echo never");
    s.timeout = Duration::from_millis(300);
    let t = Instant::now();
    let out = run_script(&s);
    assert!(matches!(out, ScriptOutcome::TimedOut { .. }), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn stdin_is_dev_null() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path(), r#"read x; echo "rc=$?""#);
    let t = Instant::now();
    assert!(run_script(&s).success());
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(output_of(&s), ["rc=1"]);
}

/// Field 6 of /proc/self/stat (counted after the parenthesised command name, which may hold
/// spaces).
fn own_session() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    // After ")": state, ppid, pgrp, session.
    after.split(' ').nth(3).unwrap().parse().unwrap()
}

#[test]
fn script_runs_in_a_new_session_as_group_leader() {
    let tmp = tempfile::tempdir().unwrap();
    // Fields 5 and 6 of /proc/PID/stat are the process group and the session.
    let s = spec(tmp.path(), "echo $$; cut -d' ' -f5,6 /proc/$$/stat");
    assert!(run_script(&s).success());
    let out = output_of(&s);
    let pid: i32 = out[0].parse().unwrap();
    let ids: Vec<i32> = out[1].split(' ').map(|x| x.parse().unwrap()).collect();
    // Our own session from /proc too: getsid(2) gives 0 when the session leader lives outside
    // our pid namespace (as in a CI container), which rustix's Pid cannot hold.
    let ours = own_session();
    assert_eq!(ids, [pid, pid], "pgid and sid are the script's own pid");
    assert_ne!(ids[1], ours);
}

#[test]
fn environment_is_inherited_and_extended() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(
        tmp.path(),
        r#"echo "svc=$AUTOHEAL_SERVICE extra=$EXTRA path=${PATH:+set}""#,
    );
    s.env = vec![("EXTRA".into(), "42".into())];
    assert!(run_script(&s).success());
    assert_eq!(output_of(&s), ["svc=web extra=42 path=set"]);
}

#[test]
fn missing_command_is_a_plain_exit_127() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path(), "/nonexistent/startup.sh");
    let out = run_script(&s);
    assert!(
        matches!(out, ScriptOutcome::Exited { code: 127, .. }),
        "{out:?}"
    );
    assert!(log_of(&s).contains("/nonexistent/startup.sh"));
}

#[test]
fn unwritable_log_is_spawn_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    let mut s = spec(tmp.path(), "exit 0");
    s.log_path = file.join("web.log");
    let out = run_script(&s);
    match &out {
        ScriptOutcome::SpawnFailed { reason } => {
            assert!(reason.starts_with("cannot open log file "), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        out.describe()
            .starts_with("could not start: cannot open log file")
    );
}

#[test]
fn unknown_user_is_spawn_failed_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path(), "exit 0");
    s.user = Some("no-such-user-autoheal".into());
    let out = run_script(&s);
    assert_eq!(
        out,
        ScriptOutcome::SpawnFailed {
            reason: "user no-such-user-autoheal does not exist on this host".into()
        }
    );
    assert!(resolve_user("no-such-user-autoheal").is_err());
}

#[test]
fn user_root_when_root() {
    if !is_root() {
        eprintln!("note: not root; skipping user_root_when_root");
        return;
    }
    let ids = resolve_user("root").unwrap();
    assert_eq!((ids.uid, ids.gid), (0, 0));
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path(), r#"id -u; echo "$USER $LOGNAME""#);
    s.user = Some("root".into());
    assert!(run_script(&s).success());
    assert_eq!(output_of(&s), ["0", "root root"]);
}

#[test]
fn user_nobody_when_root() {
    if !is_root() {
        eprintln!("note: not root; skipping user_nobody_when_root");
        return;
    }
    let Ok(ids) = resolve_user("nobody") else {
        eprintln!("note: no user nobody; skipping user_nobody_when_root");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path(), r#"id -u; id -G; echo "$USER $HOME""#);
    s.user = Some("nobody".into());
    let out = run_script(&s);
    assert!(out.success(), "{out:?} {}", log_of(&s));
    let lines = output_of(&s);
    assert_eq!(lines[0], ids.uid.to_string());
    // Root's groups are dropped: only nobody's own.
    let mut got: Vec<u32> = lines[1]
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    let mut want = ids.groups.clone();
    got.sort();
    want.sort();
    want.dedup();
    assert_eq!(got, want);
    assert_eq!(lines[2], format!("nobody {}", ids.home.display()));
}

/// The event as a hook gets it.
const EVENT: &str = r#"{"kind":"down","service":"web"}"#;

fn hook(dir: &Path, command: &str, timeout: Duration) -> HookOutcome {
    let env = [
        ("AUTOHEAL_EVENT".to_string(), "down".to_string()),
        ("AUTOHEAL_SERVICE".to_string(), "web".to_string()),
    ];
    run_hook(
        command,
        &env,
        EVENT.as_bytes(),
        timeout,
        &dir.join("logs/notify.log"),
    )
}

#[test]
fn a_hook_reads_the_event_on_stdin_and_in_its_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let got = tmp.path().join("got");
    let out = hook(
        tmp.path(),
        &format!(
            "cat > {0}; echo \"$AUTOHEAL_EVENT $AUTOHEAL_SERVICE $PATH\" >> {0}; \
             echo \"home=${{HOME:+set}} secret=${{AUTOHEAL_TEST_SECRET:-none}}\" >> {0}; echo said",
            got.display()
        ),
        Duration::from_secs(5),
    );
    assert!(out.success(), "{out:?}");
    assert!(
        out.describe().starts_with("exit 0 in "),
        "{}",
        out.describe()
    );
    let text = fs::read_to_string(&got).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            &format!("{EVENT}down web {}", autoheal::exec::SAFE_PATH)[..],
            "home=set secret=none",
        ]
    );
    // Its output is appended to its log, between autoheal's header and footer.
    let log = fs::read_to_string(tmp.path().join("logs/notify.log")).unwrap();
    let log: Vec<&str> = log.lines().collect();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[0].starts_with("--- ") && log[0].contains(" autoheal: starting hook: cat > "));
    assert_eq!(log[1], "said");
    assert!(log[2].contains(" autoheal: hook: exit 0 in "), "{}", log[2]);
    // Appended, not replaced.
    assert!(hook(tmp.path(), "echo again", Duration::from_secs(5)).success());
    let log = fs::read_to_string(tmp.path().join("logs/notify.log")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| *l == "said" || *l == "again")
            .count(),
        2
    );
}

#[test]
fn a_hook_that_ignores_its_stdin_does_not_block() {
    let tmp = tempfile::tempdir().unwrap();
    // Far more than a pipe holds, to a hook that never reads it.
    let big = vec![b'x'; 4 << 20];
    let t = Instant::now();
    let out = run_hook(
        "sleep 0.2; exit 0",
        &[],
        &big,
        Duration::from_secs(5),
        &tmp.path().join("notify.log"),
    );
    assert!(out.success(), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn a_failing_hook_reports_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hook(
        tmp.path(),
        "echo no pager >&2; exit 3",
        Duration::from_secs(5),
    );
    assert!(
        matches!(out, ScriptOutcome::Exited { code: 3, .. }),
        "{out:?}"
    );
    assert!(
        out.describe().starts_with("exit 3 in "),
        "{}",
        out.describe()
    );
    let log = fs::read_to_string(tmp.path().join("logs/notify.log")).unwrap();
    assert!(log.contains("\nno pager\n"), "{log}");
    // A hook that cannot start says why.
    let out = run_hook(
        "true",
        &[],
        b"",
        Duration::from_secs(1),
        &tmp.path().join("no/such\0dir/notify.log"),
    );
    assert!(
        out.describe().starts_with("could not start: "),
        "{}",
        out.describe()
    );
}

/// The pids of a hook's processes, written by the hook itself, once it has written both.
fn pids_in(path: &Path, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<u32> = fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.len() >= n || Instant::now() > deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_hanging_hook_is_killed_with_its_group_at_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let t = Instant::now();
    let out = hook(
        tmp.path(),
        &format!(
            "sleep 60 & echo $! >> {0}; echo $$ >> {0}; sleep 60",
            pids.display()
        ),
        Duration::from_millis(500),
    );
    let took = t.elapsed();
    assert!(matches!(out, ScriptOutcome::TimedOut { .. }), "{out:?}");
    assert_eq!(out.describe(), "killed after timeout 500ms");
    // The limit, SIGTERM, which both sleeps obey at once, and at most the grace for the group
    // to be seen empty (an orphan that a non-reaping init leaves a zombie keeps it non-empty).
    let most = Duration::from_millis(500) + autoheal::exec::TERM_GRACE;
    assert!(took < most + Duration::from_millis(500), "took {took:?}");
    let pids = pids_in(&pids, 2);
    assert_eq!(pids.len(), 2, "{pids:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !pids.iter().all(|p| dead(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        assert!(dead(p), "pid {p} of the hook survived its limit");
    }
}

#[test]
fn what_a_hook_leaves_running_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let out = hook(
        tmp.path(),
        &format!("sleep 1000 > /dev/null 2>&1 & echo $! > {}", pids.display()),
        Duration::from_secs(5),
    );
    assert!(out.success(), "{out:?}");
    let pid = pids_in(&pids, 1)[0];
    let deadline = Instant::now() + Duration::from_secs(2);
    while !dead(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dead(pid), "the hook's sleep {pid} was left running");
    let log = fs::read_to_string(tmp.path().join("logs/notify.log")).unwrap();
    assert!(log.contains("; what it left running was killed"), "{log}");
}
