//! The process table against real processes: pname matching (with our own tree excluded) and
//! pid files (live, stale, missing, garbage, zombie, a FIFO), and the pid a health restart
//! stops. Only processes these tests start are ever signalled, by their pid.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use autoheal::procs::{Liveness, ProcTable};
use regex::Regex;

/// A number no other process's command line will hold: `30.<our pid><nanos>`, a valid
/// argument for sleep(1).
fn unique_sleep_arg() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("3000.{}{nanos}", std::process::id())
}

fn exact(cmdline: &str) -> Regex {
    Regex::new(&format!("^{}$", regex::escape(cmdline))).unwrap()
}

fn sleep_child(arg: &str) -> Child {
    Command::new("sleep")
        .arg(arg)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

/// Sets a file's mtime an hour back, as a pid file written before a reboot would be.
fn written_an_hour_ago(path: &std::path::Path) {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
}

/// Kills, by pid, a process this test started, when dropped (also when an assert fails).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill(self.0);
    }
}

fn kill(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Polls fresh snapshots until `f` holds, for at most 5 s.
fn eventually(what: &str, f: impl Fn(&ProcTable) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f(&ProcTable::snapshot()) {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_file(dir: &Path, content: &str) -> PathBuf {
    let path = dir.join("svc.pid");
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn pname_finds_a_daemonized_process_and_loses_it_once_killed() {
    // Daemonize like a service's startup script does: the shell exits, sleep is reparented
    // out of our tree, so own-tree exclusion does not hide it.
    let arg = unique_sleep_arg();
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {arg} </dev/null >/dev/null 2>&1 & echo $!"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    sh.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    sh.wait().unwrap();
    let pid: u32 = out.trim().parse().unwrap();
    let _guard = KillOnDrop(pid);

    let re = exact(&format!("sleep {arg}"));
    let table = ProcTable::snapshot();
    assert!(!table.is_own_tree(pid), "sleep should have left our tree");
    match table.find_pname(&re) {
        Liveness::Alive {
            pid: found,
            started,
        } => {
            assert_eq!(found, pid);
            let started = started.expect("start time known");
            let age = SystemTime::now()
                .duration_since(started)
                .unwrap_or_default();
            assert!(age < Duration::from_secs(60), "started {age:?} ago");
            assert_eq!(table.start_time(pid), Some(started));
        }
        dead => panic!("expected alive, got {dead:?}"),
    }

    kill(pid);
    // Once killed it is gone, or a zombie until its new parent reaps it: dead either way.
    eventually("killed sleep to be dead", |t| !t.find_pname(&re).is_alive());
    let Liveness::Dead { reason } = ProcTable::snapshot().find_pname(&re) else {
        unreachable!()
    };
    assert!(reason.starts_with("no process matches"), "{reason}");
}

#[test]
fn pname_never_matches_our_own_descendants() {
    let arg = unique_sleep_arg();
    let mut child = sleep_child(&arg);
    let _guard = KillOnDrop(child.id());
    let re = exact(&format!("sleep {arg}"));

    eventually("child to have exec'd sleep", |t| {
        t.cmdline(child.id()).is_some_and(|c| re.is_match(c))
    });
    let table = ProcTable::snapshot();
    // It is there and matches: only the exclusion can hide it.
    assert!(table.is_own_tree(child.id()));
    assert!(!table.find_pname(&re).is_alive());

    child.kill().unwrap();
    child.wait().unwrap();
}

/// Field 6 of /proc/PID/stat: the session id (0 if its leader is outside our pid namespace).
fn session_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    // After ")": state, ppid, pgrp, session.
    after.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn pname_never_matches_ourselves_or_our_ancestors_in_our_session() {
    let table = ProcTable::snapshot();
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    assert!(table.is_own_tree(me));
    // cargo (or a shell) shares our session unless a test runner gave us one of our own.
    assert_eq!(
        table.is_own_tree(parent),
        session_of(parent) == session_of(me),
        "parent {parent} (cargo or a shell)"
    );

    let own = table.cmdline(me).expect("our own cmdline").to_string();
    let re = exact(&own);
    assert!(re.is_match(&own));
    // Only another run of this very test binary with the same arguments could match here.
    assert_eq!(
        table.find_pname(&re),
        Liveness::Dead {
            reason: format!("no process matches \"{}\"", re.as_str())
        }
    );
}

#[test]
fn pid_file_written_after_start_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleep_child(&unique_sleep_arg());
    let _guard = KillOnDrop(child.id());
    let path = pid_file(dir.path(), &format!("{}\n", child.id()));

    match ProcTable::snapshot().check_pid_file(&path) {
        Liveness::Alive { pid, started } => {
            assert_eq!(pid, child.id());
            assert!(started.is_some());
        }
        dead => panic!("expected alive, got {dead:?}"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        ProcTable::snapshot().check_pid_file(&path),
        Liveness::Dead {
            reason: format!("pid {} not running", child.id())
        }
    );
}

#[test]
fn a_pid_file_confirmed_by_pname_is_not_stale_whatever_its_time() {
    // As after a clock stepped forward: the file looks older than its process. With `pname`
    // also given and matching the pid's command line, it is the service's own process.
    let dir = tempfile::tempdir().unwrap();
    let arg = unique_sleep_arg();
    let mut child = sleep_child(&arg);
    let _guard = KillOnDrop(child.id());
    let path = pid_file(dir.path(), &child.id().to_string());
    written_an_hour_ago(&path);
    let mine = regex::Regex::new(&format!("sleep {}$", regex::escape(&arg))).unwrap();
    // spawn() returns once the child is in execve, maybe before its new command line is set
    // up (it reads empty for that moment).
    eventually("child to have exec'd sleep", |t| {
        t.cmdline(child.id()).is_some_and(|c| mine.is_match(c))
    });
    let table = ProcTable::snapshot();
    assert!(matches!(
        table.check_pid_file_as(&path, Some(&mine), None),
        Liveness::Alive { pid, .. } if pid == child.id()
    ));
    let other = regex::Regex::new("^not-this-one$").unwrap();
    assert!(matches!(
        table.check_pid_file_as(&path, Some(&other), None),
        Liveness::Dead { reason } if reason.starts_with("stale pid file")
    ));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_pid_file_s_known_process_is_not_stale_whatever_its_time() {
    // The process seen alive through the pid file before (boot id, pid, start ticks): a clock
    // stepped forward since cannot make it stale. Another process under that pid can.
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleep_child(&unique_sleep_arg());
    let _guard = KillOnDrop(child.id());
    let path = pid_file(dir.path(), &child.id().to_string());
    written_an_hour_ago(&path);
    let table = ProcTable::snapshot();
    let known = table
        .proc_id(child.id())
        .expect("boot id and start ticks are readable");
    assert!(matches!(
        table.check_pid_file_as(&path, None, Some(&known)),
        Liveness::Alive { pid, .. } if pid == child.id()
    ));
    let other = autoheal::state::ProcId {
        ticks: known.ticks + 1,
        ..known.clone()
    };
    assert!(matches!(
        table.check_pid_file_as(&path, None, Some(&other)),
        Liveness::Dead { reason } if reason.starts_with("stale pid file")
    ));
    let other_boot = autoheal::state::ProcId {
        boot: "another-boot".into(),
        ..known
    };
    assert!(matches!(
        table.check_pid_file_as(&path, None, Some(&other_boot)),
        Liveness::Dead { .. }
    ));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn pid_file_older_than_its_process_is_stale() {
    // As after a reboot: the file was written long ago, its pid now belongs to a new process.
    let dir = tempfile::tempdir().unwrap();
    let mut child = sleep_child(&unique_sleep_arg());
    let _guard = KillOnDrop(child.id());
    let path = pid_file(dir.path(), &child.id().to_string());
    written_an_hour_ago(&path);

    assert_eq!(
        ProcTable::snapshot().check_pid_file(&path),
        Liveness::Dead {
            reason: format!(
                "stale pid file {}: pid {} started after the file was written",
                path.display(),
                child.id()
            )
        }
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn pid_file_missing_garbage_or_unreadable_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let table = ProcTable::snapshot();
    let dead = |reason: String| Liveness::Dead { reason };

    let missing = dir.path().join("nope.pid");
    assert_eq!(
        table.check_pid_file(&missing),
        dead(format!("pid file {} missing", missing.display()))
    );
    for garbage in ["", "\n", "hello", "-5", "0", "12abc"] {
        let path = pid_file(dir.path(), garbage);
        assert_eq!(
            table.check_pid_file(&path),
            dead(format!("pid file {} holds no pid", path.display())),
            "content {garbage:?}"
        );
    }
    // A directory (or a device, as /dev/null) is not even opened.
    for not_regular in [dir.path(), Path::new("/dev/null")] {
        assert_eq!(
            table.check_pid_file(not_regular),
            dead(format!(
                "pid file {} is not a regular file",
                not_regular.display()
            ))
        );
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let path = pid_file(dir.path(), "123");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        // root reads it anyway; anyone else is told why not.
        if std::fs::read(&path).is_err() {
            assert_eq!(
                table.check_pid_file(&path),
                dead(format!(
                    "pid file {} unreadable: permission denied",
                    path.display()
                ))
            );
        }
    }
}

#[test]
fn pid_file_that_is_a_fifo_is_dead_at_once() {
    // Opening a FIFO with no writer for reading blocks forever; a pid_file pointing at one must
    // not hang the tick (which holds the lock meanwhile). A symlink to it is no better.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("svc.pid");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let link = dir.path().join("link.pid");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();

    for path in [fifo.clone(), link] {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(ProcTable::snapshot().check_pid_file(&p));
        });
        let got = rx.recv_timeout(Duration::from_secs(5));
        if got.is_err() {
            // Unblock the stuck reader so the test process can end, then fail.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        assert_eq!(
            got.expect("check_pid_file blocked on a FIFO"),
            Liveness::Dead {
                reason: format!("pid file {} is not a regular file", path.display())
            }
        );
    }
}

#[test]
fn pid_of_a_zombie_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    // Not waited for: once it exits it stays a zombie until we reap it below.
    let path = pid_file(dir.path(), &child.id().to_string());
    let zombie = Liveness::Dead {
        reason: format!("pid {} is a zombie", child.id()),
    };
    eventually("child to become a zombie", |t| {
        t.check_pid_file(&path) == zombie
    });
    child.wait().unwrap();
}

/// What `autoheal status --json`, run under `sh -c '...' outer<tag>` → `setsid sh -c '...'
/// inner<tag>`, says of two services whose pnames match those two shells.
#[test]
fn pname_matches_an_ancestor_in_another_session_but_not_one_in_ours() {
    // As cron: the daemon (another session) ─ the job's `sh -c` (autoheal's session) ─ autoheal.
    // The outer shell stands for the cron daemon: it matches and is alive; the inner one is the
    // job's shell and stays hidden.
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_sleep_arg().replace('.', "");
    std::fs::write(
        dir.path().join("conf.yaml"),
        format!(
            "outer:\n  pname: '^sh -c .* outer{tag}$'\n  script: 'true'\n\
             inner:\n  pname: '^sh -c .* inner{tag}$'\n  script: 'true'\n"
        ),
    )
    .unwrap();
    let inner = r#""$AH" status --json -c "$DIR/conf.yaml" --state-dir "$DIR/state"; exit 0"#;
    // -w: should setsid have to fork, the outer shell still waits for autoheal.
    let outer = r#"setsid -w sh -c "$INNER" "inner$TAG"; exit 0"#;
    let sh = Command::new("sh")
        .args(["-c", outer, &format!("outer{tag}")])
        .env("AH", env!("CARGO_BIN_EXE_autoheal"))
        .env("DIR", dir.path())
        .env("INNER", inner)
        .env("TAG", &tag)
        .env_remove("AUTOHEAL_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outer_pid = sh.id();
    let out = sh.wait_with_output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let service = |name: &str| {
        json["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
            .clone()
    };
    let (outer, inner) = (service("outer"), service("inner"));
    assert_eq!(outer["alive"], true, "{outer}");
    assert_eq!(outer["pid"], outer_pid, "{outer}");
    assert_eq!(inner["alive"], false, "{inner}");
    assert!(
        inner["dead_because"]
            .as_str()
            .is_some_and(|r| r.starts_with("no process matches")),
        "{inner}"
    );
}

/// Runs `script` as a daemon: through a shell that exits at once, so that it leaves our tree
/// (as a service's startup script does). Returns its pid.
fn daemon(script: &str) -> u32 {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{script} </dev/null >/dev/null 2>&1 & echo $!"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The pids whose parent is `pid`, from a scan of /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                stat.rfind(')').is_some_and(|i| {
                    stat[i + 1..].split_whitespace().nth(1) == Some(&pid.to_string())
                })
            })
        })
        .collect();
    kids.sort();
    kids
}

#[test]
fn stop_target_is_the_matching_parent_not_its_matching_children() {
    // A master (a shell whose own command line matches) with two workers that match too.
    let arg = unique_sleep_arg();
    let master = daemon(&format!("sh -c 'sleep {arg} & sleep {arg} & wait'"));
    let _guard = KillOnDrop(master);
    let re = Regex::new(&regex::escape(&format!("sleep {arg}"))).unwrap();
    eventually("both workers to have exec'd sleep", |t| {
        let kids = children_of(master);
        kids.len() == 2
            && kids
                .iter()
                .all(|&k| t.cmdline(k) == Some(format!("sleep {arg}").as_str()))
    });
    let workers = children_of(master);
    let _workers: Vec<KillOnDrop> = workers.iter().map(|&k| KillOnDrop(k)).collect();

    let table = ProcTable::snapshot();
    assert!(re.is_match(table.cmdline(master).unwrap()));
    assert_eq!(table.stop_target(&re), Ok(master));

    // Once the master is gone (its workers orphaned), there is no single process to stop.
    kill(master);
    eventually("the orphaned workers to be ambiguous", |t| {
        t.stop_target(&re).is_err_and(|e| {
            workers
                .iter()
                .all(|w| e.contains(&format!("{w} (sleep {arg})")))
        })
    });
}

#[test]
fn stop_target_refuses_to_pick_among_unrelated_matching_processes() {
    let arg = unique_sleep_arg();
    let re = Regex::new(&regex::escape(&format!("sleep {arg}"))).unwrap();
    assert_eq!(
        ProcTable::snapshot().stop_target(&re),
        Err(format!("no process matches \"{}\"", re.as_str()))
    );

    let first = daemon(&format!("sleep {arg}"));
    let _first = KillOnDrop(first);
    eventually("the first to have exec'd sleep", |t| {
        t.stop_target(&re) == Ok(first)
    });

    // A second, unrelated one (as a `tail -f` of the service's log would be).
    let second = daemon(&format!("sleep {arg}"));
    let _second = KillOnDrop(second);
    eventually("the second to have exec'd sleep", |t| {
        t.cmdline(second) == Some(format!("sleep {arg}").as_str())
    });
    let err = ProcTable::snapshot().stop_target(&re).unwrap_err();
    for pid in [first, second] {
        assert!(err.contains(&format!("{pid} (sleep {arg})")), "{err}");
    }
    assert!(err.contains("2 unrelated processes"), "{err}");
    assert!(
        err.contains("give the service a `stop:` command or a `pid_file`"),
        "{err}"
    );

    // Our own matching child never counts.
    kill(second);
    let mut child = sleep_child(&arg);
    let _child = KillOnDrop(child.id());
    eventually("only the first to be a candidate", |t| {
        t.cmdline(child.id()) == Some(format!("sleep {arg}").as_str())
            && t.stop_target(&re) == Ok(first)
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_start_time_is_read_to_a_fraction_of_a_second() {
    // The boot time comes from /proc/uptime (hundredths), not /proc/stat's whole seconds: a
    // grace counted from a process's start must not end up to a second early.
    let mut worst = 0.0f64;
    for _ in 0..5 {
        let before = SystemTime::now();
        let mut child = sleep_child(&unique_sleep_arg());
        let _guard = KillOnDrop(child.id());
        let started = ProcTable::snapshot().start_time(child.id()).unwrap();
        let off = match started.duration_since(before) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        worst = worst.max(off.abs());
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Clock ticks are 10 ms; allow for a busy machine, not for a whole second.
    assert!(worst < 0.3, "start times off by up to {worst:.3}s");
}

#[test]
fn a_snapshot_for_its_pnames_finds_what_each_pname_alone_finds() {
    // Two daemons, one with a command line longer than the snapshot's first read (64 KiB),
    // which only a pattern anchored at its end tells apart; our own child, hidden whatever the
    // pattern; and patterns that match nothing, several processes, or are not in the set.
    let arg = unique_sleep_arg();
    // sleep(1) sums its arguments: 100,000 zeros are a valid 0, and the 1 after them is what
    // only a whole read of the command line sees.
    let long = "0".repeat(100_000);
    let short = daemon(&format!("sleep {arg}"));
    let _g1 = KillOnDrop(short);
    let tail = daemon(&format!("sleep {arg} {long} 1"));
    let _g2 = KillOnDrop(tail);
    let mut child = sleep_child(&arg);
    let _g3 = KillOnDrop(child.id());
    let patterns: Vec<Regex> = [
        format!("^sleep {arg}$"),
        format!("^sleep {arg} 0+ 1$"),
        format!("{arg} 0+ 1$"),
        format!("sleep {arg}"),
        format!("^no such {arg}$"),
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap())
    .collect();
    eventually("both daemons to have exec'd", |t| {
        t.cmdline(tail).is_some_and(|c| c.len() > 100_000)
            && t.cmdline(short) == Some(format!("sleep {arg}").as_str())
    });
    let set = ProcTable::snapshot_for(&patterns);
    let alone = ProcTable::snapshot();
    assert!(set.is_own_tree(child.id()));
    // The pid found, or why not (the start times of two snapshots may differ by a few ms:
    // each reads the boot time anew).
    let seen = |t: &ProcTable, re: &Regex| match t.find_pname(re) {
        Liveness::Alive { pid, .. } => Ok(pid),
        Liveness::Dead { reason } => Err(reason),
    };
    for re in &patterns {
        assert_eq!(seen(&set, re), seen(&alone, re), "{re}");
        assert_eq!(set.stop_target(re), alone.stop_target(re), "{re}");
    }
    let found = |re: &Regex| seen(&set, re).ok();
    assert_eq!(found(&patterns[0]), Some(short));
    assert_eq!(found(&patterns[1]), Some(tail));
    assert_eq!(found(&patterns[2]), Some(tail));
    assert!(
        set.stop_target(&patterns[3]).is_err(),
        "two unrelated matches"
    );
    assert_eq!(found(&patterns[4]), None);
    // A pattern the set was not built for is matched on its own.
    let other = Regex::new(&format!("^sleep {arg} 0")).unwrap();
    assert_eq!(found(&other), Some(tail));
    child.kill().unwrap();
    child.wait().unwrap();
}
