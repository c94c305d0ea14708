//! Which process autoheal signals, and which processes make a service alive, against real
//! processes, real pid files (owned by root or by the throwaway account `autoheal-test`) and
//! the real binary. Every process signalled here is one these tests started, by its pid; all
//! traffic is on 127.0.0.1.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// A process this test started, killed by its pid (and reaped) when dropped.
struct Started(Child);

impl Started {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        kill(self.0.id() as i32);
        let _ = self.0.wait();
    }
}

/// `sleep <arg>` as root (the tests run as root).
fn root_sleep(arg: &str) -> Started {
    Started(
        Command::new("sleep")
            .arg(arg)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `sleep <arg>` as the test user (setpriv execs it: the pid is the sleep's).
fn test_user_sleep(arg: &str) -> Started {
    let (_, uid, gid) = test_user();
    Started(
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "sleep",
                arg,
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Writes `pid` into `path`, mode 0644, owned by `uid` (root: 0).
fn pid_file(path: &Path, pid: u32, uid: u32) {
    std::fs::write(path, format!("{pid}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

/// Waits until `pid` runs as `uid` (setpriv has switched and exec'd).
fn runs_as(pid: u32, uid: u32) -> bool {
    wait_for(Duration::from_secs(3), || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok())
            })
            == Some(uid)
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep"))
    })
}

/// A service whose health fails, with a pid file: the config (unhealthy at once, grace 1 s,
/// one pass), `extra` keys added to the service.
fn unhealthy_service(f: &Fixture, extra: &str) {
    let closed = free_port();
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
svc:
  pid_file: {{dir}}/svc.pid
  health:
    host: 127.0.0.1
    port: {closed}
  grace: 1s
  script: echo svc >> {{dir}}/journal
{extra}"#
    ));
}

/// A pid file another account (the test user) wrote, naming a root process: without a pname,
/// the pid is not taken for the service (it is dead, and started); with a pname the real
/// service matches while the pid file names another process, the health restart does not
/// signal it, and the reason says why and what to do, in the log and in `status`. Neither
/// root process is ever signalled.
#[test]
fn a_pid_file_another_account_could_write_does_not_get_a_root_process_signalled() {
    let (user, uid, _) = test_user();
    let f = Fixture::new();
    unhealthy_service(&f, "");
    let sleep = root_sleep(&format!("1000.{}", f.tag));
    pid_file(&f.path("svc.pid"), sleep.pid(), uid);
    std::thread::sleep(Duration::from_millis(1100)); // past its grace
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let dead = format!(
        "svc: started: was dead (pid {pid} from {dir}/svc.pid is not taken for the service: \
         {user} could have written the pid file, and the process runs as root; give the \
         service a pname, or make root own the pid file), deps ready",
        pid = sleep.pid(),
        dir = f.dir.path().display(),
    );
    assert!(log.contains(&dead), "{log}");
    assert!(is_running(sleep.pid()), "the root sleep was signalled");
    assert_eq!(f.journal(), ["svc"], "{log}");

    // With a pname: the service's own process matches it; the pid file names another one.
    let f = Fixture::new();
    let service = root_sleep(&format!("1000.{}1", f.tag));
    let other = root_sleep(&format!("1000.{}2", f.tag));
    unhealthy_service(&f, &format!("  pname: 'sleep 1000\\.{}1$'\n", f.tag));
    pid_file(&f.path("svc.pid"), other.pid(), uid);
    std::thread::sleep(Duration::from_millis(1100));
    let out = f.run();
    let log = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let why = format!(
        "not restarted: pid {pid} from {dir}/svc.pid (owned by {user}, mode 0644) is not the \
         service: `sleep 1000.{tag}2` does not match pname",
        pid = other.pid(),
        dir = f.dir.path().display(),
        tag = f.tag
    );
    assert!(
        log.contains("svc: still unhealthy: unhealthy (1 failed health observation in a row)")
            && log.contains(&why),
        "{log}"
    );
    assert!(
        is_running(other.pid()) && is_running(service.pid()),
        "a root sleep was signalled"
    );
    assert!(f.journal().is_empty(), "nothing started: {log}");
    let status = f.status_json();
    let svc = &status["services"][0];
    assert_eq!(svc["state"], "unhealthy");
    assert!(svc["reason"].as_str().unwrap().contains(&why), "{svc}");
}

/// The same file with a `pname` that the process matches: the pid is the service's, restarted.
/// And root's own pid file with a matching `pname`: restarted too, its process getting SIGTERM.
#[test]
fn a_pid_whose_process_matches_pname_is_signalled_with_sigterm() {
    let (_, uid, _) = test_user();
    for owner in [uid, 0] {
        let f = Fixture::new();
        let got = f.path("got");
        // A shell that says it got SIGTERM, then exits.
        let mark = format!("autoheal-sig-{}", f.tag);
        let term = Started(
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "trap 'echo TERM > {}; exit 0' TERM; while :; do sleep 0.05; done; : {mark}",
                    got.display()
                ))
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        unhealthy_service(&f, &format!("  pname: '{mark}'\n"));
        pid_file(&f.path("svc.pid"), term.pid(), owner);
        std::thread::sleep(Duration::from_millis(1100));
        let out = f.run();
        let log = stdout(&out);
        assert!(
            log.contains(&format!("pid {} exited on SIGTERM", term.pid())),
            "owner {owner}: {log}"
        );
        assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "TERM");
        assert_eq!(f.journal(), vec!["svc"], "restarted: {log}");
    }
}

/// A pid file only the test user could write, naming the test user's own process, of a service
/// whose process runs as that user: autoheal gives the user nothing it could not do itself,
/// so the pid is signalled.
#[test]
fn one_accounts_pid_file_naming_that_accounts_process_is_signalled() {
    let (user, uid, _) = test_user();
    let f = Fixture::new();
    unhealthy_service(&f, &format!("  process_user: {user}\n"));
    let sleep = test_user_sleep(&format!("1000.{}", f.tag));
    assert!(runs_as(sleep.pid(), uid));
    pid_file(&f.path("svc.pid"), sleep.pid(), uid);
    std::thread::sleep(Duration::from_millis(1100));
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains(&format!("pid {} exited on SIGTERM", sleep.pid())),
        "{log}"
    );
    assert_eq!(f.journal(), vec!["svc"], "{log}");
}

/// A pid file holding `1`: never alive through it; the service is dead and started, nothing
/// signalled.
#[test]
fn a_pid_file_naming_pid_1_is_dead() {
    let f = Fixture::new();
    unhealthy_service(&f, "");
    pid_file(&f.path("svc.pid"), 1, 0);
    let out = f.run();
    let log = stdout(&out);
    let dir = f.dir.path().display();
    assert!(
        log.contains(&format!(
            "svc: started: was dead (pid file {dir}/svc.pid names pid 1 (init), never a \
             service's own process)"
        )),
        "{log}"
    );
    assert!(!log.contains("SIGTERM"), "{log}");
}

/// A start script that writes the tick's own pid (`$PPID`) into the pid file of a service whose
/// health fails: autoheal is never alive through itself, never signals itself, and the tick
/// ends normally.
#[test]
fn a_pid_file_naming_autoheal_itself_never_gets_it_signalled() {
    let f = Fixture::new();
    let closed = free_port();
    f.config(&format!(
        r#"
settings:
  converge: 3s
  unhealthy_after: 1
svc:
  pid_file: {{dir}}/svc.pid
  health:
    host: 127.0.0.1
    port: {closed}
  grace: 200ms
  script: echo $PPID > {{dir}}/svc.pid.txt; cp {{dir}}/svc.pid.txt {{dir}}/svc.pid; echo svc >> {{dir}}/journal
"#
    ));
    let out = f.run();
    // Keep the fixture from killing a pid that is no longer ours.
    std::fs::remove_file(f.path("svc.pid")).unwrap();
    let log = stdout(&out);
    // Exit 1 (still down), not killed by a signal.
    assert_eq!(out.status.code(), Some(1), "{log} {}", stderr(&out));
    let tick = std::fs::read_to_string(f.path("svc.pid.txt")).unwrap();
    assert!(
        log.contains(&format!(
            "pid file {}/svc.pid names pid {}, autoheal itself",
            f.dir.path().display(),
            tick.trim()
        )),
        "{log}"
    );
    assert!(!log.contains("SIGTERM"), "{log}");
    // Never alive through itself: started, and started again past its grace, in the tick.
    assert!(f.journal().len() >= 2, "{log}");
}

/// An ancestor of autoheal in another session (here a shell that runs it through `setsid`, as
/// cron's daemon or sshd would be): alive through a root pid file, but never signalled.
#[test]
fn an_ancestor_in_another_session_is_never_signalled() {
    let f = Fixture::new();
    unhealthy_service(&f, "");
    let outer = Started(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {dir}/svc.pid; sleep 1.2; setsid {bin} run -c {dir}/conf.yaml \
                 --state-dir {dir}/state > {dir}/out 2>&1; echo $? > {dir}/code",
                dir = f.dir.path().display(),
                bin = env!("CARGO_BIN_EXE_autoheal")
            ))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = outer.pid();
    assert!(wait_for(Duration::from_secs(10), || f
        .path("code")
        .exists()));
    let log = std::fs::read_to_string(f.path("out")).unwrap();
    assert!(
        log.contains(&format!(
            "not restarted: its process, pid {pid} (`sh -c echo $$ > {}",
            f.dir.path().display()
        )) && log.contains("is autoheal itself or one of its ancestors, which it never signals"),
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(f.path("code")).unwrap().trim(), "1");
    assert!(f.journal().is_empty(), "{log}");
    std::fs::remove_file(f.path("svc.pid")).unwrap();
}

/// A test-user process matching the `pname` of a root service does not make it alive: the
/// service is started, and the reason names the process and the fix; with `process_user`
/// naming that account, it is alive. The same for a pid file naming it.
#[test]
fn only_processes_of_the_services_account_make_it_alive() {
    let (user, uid, _) = test_user();
    let f = Fixture::new();
    let sleep = test_user_sleep(&format!("1000.{}1", f.tag));
    assert!(runs_as(sleep.pid(), uid));
    let re = f.sleeper_re(1);
    let conf = |extra: &str| {
        f.config(&format!(
            "settings:\n  converge: 0\nsvc:\n  pname: '{re}'\n  script: echo svc >> \
             {{dir}}/journal\n{extra}"
        ));
    };
    conf("");
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains(&format!(
            "svc: started: was dead (no process of root matches \"{re}\" (pid {} matches but \
             runs as {user}; if that is the service, set process_user: {user})), deps ready",
            sleep.pid()
        )),
        "{log}"
    );
    assert_eq!(f.journal(), vec!["svc"]);
    conf(&format!("  process_user: {user}\n"));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(f.journal(), vec!["svc"], "not started again");

    // By pid file: a root service's pid file naming the test user's process.
    let g = Fixture::new();
    g.config("settings:\n  converge: 0\nsvc:\n  pid_file: svc.pid\n  script: 'true'\n");
    pid_file(&g.path("svc.pid"), sleep.pid(), 0);
    let status = g.status_json();
    assert_eq!(
        status["services"][0]["dead_because"],
        format!(
            "pid {} from {}/svc.pid runs as {user}, not as root (if that is the service, set \
             process_user: {user})",
            sleep.pid(),
            g.dir.path().display()
        )
    );
    std::fs::remove_file(g.path("svc.pid")).unwrap();
}

/// `stop_process` signals the observed process only: with another start time (its pid reused
/// since it was observed) nothing is signalled; with its own, it gets SIGTERM.
#[test]
fn stop_process_checks_the_process_is_the_one_observed() {
    let sleep = root_sleep("1000.7");
    let pid = sleep.pid();
    assert!(wait_for(Duration::from_secs(2), || {
        autoheal::procs::read_start_ticks(pid).is_some()
    }));
    let ticks = autoheal::procs::read_start_ticks(pid).unwrap();
    let said = autoheal::exec::stop_process(pid, ticks + 1, Duration::from_secs(1));
    assert!(said.contains("not signalled"), "{said}");
    assert!(is_running(pid));
    let said = autoheal::exec::stop_process(pid, ticks, Duration::from_secs(2));
    assert!(
        said.starts_with(&format!("pid {pid} exited on SIGTERM")),
        "{said}"
    );
}

/// A root service's pid file reached through a symlink another account planted: in a sticky
/// dir anyone may write to (the link is theirs), or under a directory of theirs. The pid the
/// link leads to (a root-only file naming a root process) is not taken for the service, and
/// the root process is never signalled.
#[test]
fn a_symlink_another_account_planted_on_the_pid_files_path_gets_nothing_signalled() {
    let (user, uid, gid) = test_user();
    for variant in ["sticky", "their-dir"] {
        let f = Fixture::new();
        let victim = root_sleep(&format!("1000.{}", f.tag));
        let vault = f.path("vault");
        std::fs::create_dir(&vault).unwrap();
        pid_file(&vault.join("victim.pid"), victim.pid(), 0);
        let pid_path = match variant {
            "sticky" => {
                let shared = f.path("shared");
                std::fs::create_dir(&shared).unwrap();
                std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
                let link = shared.join("svc.pid");
                std::os::unix::fs::symlink(vault.join("victim.pid"), &link).unwrap();
                std::os::unix::fs::lchown(&link, Some(uid), Some(gid)).unwrap();
                link
            }
            _ => {
                let theirs = f.path("theirs");
                std::fs::create_dir(&theirs).unwrap();
                std::os::unix::fs::symlink(&vault, theirs.join("run")).unwrap();
                std::os::unix::fs::lchown(theirs.join("run"), Some(uid), Some(gid)).unwrap();
                std::os::unix::fs::chown(&theirs, Some(uid), Some(gid)).unwrap();
                theirs.join("run/victim.pid")
            }
        };
        let closed = free_port();
        f.config(&format!(
            "settings:\n  converge: 0\n  unhealthy_after: 1\nsvc:\n  pid_file: {}\n  health: {{host: 127.0.0.1, port: {closed}}}\n  grace: 100ms\n  script: echo svc >> {{dir}}/journal\n",
            pid_path.display()
        ));
        std::thread::sleep(Duration::from_millis(200));
        let out = f.run();
        let log = stdout(&out);
        assert!(
            log.contains(&format!("is not taken for the service: {user} could have written the pid file, and the process runs as root")),
            "{variant}: {log}"
        );
        assert_eq!(f.journal(), ["svc"], "{variant}: {log}");
        assert!(
            is_running(victim.pid()),
            "{variant}: the root sleep was signalled"
        );
    }
}

/// A pid file naming a kernel thread (kthreadd, pid 2, where the pid namespace shows it) never
/// makes a service alive.
#[test]
fn a_pid_file_naming_a_kernel_thread_is_dead() {
    if std::fs::read_to_string("/proc/2/comm")
        .map(|c| c.trim().to_string())
        .ok()
        .as_deref()
        != Some("kthreadd")
    {
        eprintln!("note: no kthreadd at pid 2 in this pid namespace; nothing to test here");
        return;
    }
    let f = Fixture::new();
    f.config("settings:\n  converge: 0\nsvc:\n  pid_file: svc.pid\n  script: echo svc >> {dir}/journal\n");
    pid_file(&f.path("svc.pid"), 2, 0);
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains(&format!(
            "svc: started: was dead (pid file {}/svc.pid names pid 2, a kernel thread)",
            f.dir.path().display()
        )),
        "{log}"
    );
    assert_eq!(f.journal(), ["svc"]);
}
