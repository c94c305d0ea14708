//! Running one service's `script`, bounded in time and detached from autoheal.
//!
//! The script runs as `/bin/sh -c COMMAND` in a new session (so it leads its own process group),
//! with stdin from `/dev/null` and stdout and stderr appended to the service's log file. Its
//! output never goes through a pipe: a script that backgrounds a daemon which inherits stdout
//! would otherwise keep the pipe open and hang the tick. autoheal waits for the `sh` process
//! alone; whatever it leaves running is the service. Past the timeout the whole process group
//! gets SIGTERM, then SIGKILL.
//!
//! An alert hook (`settings.notify`, [`run_hook`]) runs the same way, with the event on its
//! stdin, and leaves nothing behind: its process group is killed at its time limit, or when
//! its `sh` exits with something of it still running.
//!
//! This module decides nothing: whether a script should run at all is the planner's business.
//! Nothing here panics; every failure becomes a [`ScriptOutcome`].

use crate::fmt::duration as secs;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal};

use crate::users;
pub use crate::users::UserIds;

/// After SIGTERM at the timeout, the process group gets this long before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(1);
/// After SIGKILL, at most this long is spent reaping `sh` (a process stuck in the kernel may
/// not die at once; autoheal moves on rather than hang).
pub const KILL_REAP_LIMIT: Duration = Duration::from_secs(2);
/// First and longest pause between checks of a running script.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(50);

/// The `PATH` of every command autoheal runs, whatever its own was (cron's is short, an
/// operator's may hold directories others can write).
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `/bin/sh -c command` as every command autoheal starts (scripts, `stop:`, Lua `exec`) is
/// started: with a clean environment (`HOME`, `USER`, `LOGNAME` and `SHELL` of the user it
/// runs as, [`SAFE_PATH`], then `env` in order: the service's `env:` and the `AUTOHEAL_*`
/// variables), no file descriptor but 0, 1 and 2 (whatever autoheal itself inherited stays
/// behind), as `user` when given (switched before exec; `None` runs it as autoheal's own user),
/// and in a new session when `new_session` (else in a new process group).
///
/// Nothing of root's environment reaches the command: not its secrets, not `LD_PRELOAD`, not a
/// `PATH` that others can write into.
pub fn shell_command(
    command: &str,
    user: Option<&UserIds>,
    env: &[(String, String)],
    new_session: bool,
) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .env("PATH", SAFE_PATH);
    let own = match user {
        Some(_) => None,
        None => users::by_uid(rustix::process::geteuid().as_raw()).ok(),
    };
    match user.or(own.as_ref()) {
        Some(u) => {
            cmd.env("HOME", &u.home)
                .env("USER", &u.name)
                .env("LOGNAME", &u.name)
                .env("SHELL", &u.shell);
        }
        None => {
            cmd.env("HOME", "/");
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    // Not root means resolve_user found the same user: nothing to switch.
    let switch = user
        .filter(|_| rustix::process::geteuid().is_root())
        .map(|u| (u.uid, u.gid, u.groups.clone()));
    if !new_session {
        cmd.process_group(0);
    }
    // SAFETY: the closure only makes raw system calls (close_range or fcntl, setsid,
    // setgroups, setgid, setuid) on data prepared before the fork: it allocates nothing and
    // takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            cloexec_from_3();
            if new_session {
                rustix::process::setsid()?;
            }
            if let Some((uid, gid, groups)) = &switch
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Marks every descriptor from 3 up close-on-exec, in the child between fork and exec: the
/// descriptors autoheal inherited (from cron, a shell, a service manager) must not reach the
/// commands it runs, while std's own error pipe (already close-on-exec) keeps working.
/// `close_range` (Linux 5.11) in one call, else one `fcntl` per possible descriptor.
fn cloexec_from_3() {
    // SAFETY: raw system calls on plain integers; async-signal-safe.
    unsafe {
        if libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) == 0 {
            return;
        }
        let mut lim: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 16) as libc::c_int
        } else {
            1024
        };
        for fd in 3..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Everything needed to run one service's script.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSpec {
    /// Service name, for the log header and `AUTOHEAL_SERVICE`.
    pub service: String,
    /// Run with `/bin/sh -c`.
    pub command: String,
    /// Run as this user instead of autoheal's own (needs root unless it is the same user).
    pub user: Option<String>,
    /// Past this, the script's process group is killed.
    pub timeout: Duration,
    /// stdout and stderr are appended here; parent dirs are created.
    pub log_path: PathBuf,
    /// Added, in order, to the clean environment of [`shell_command`] (the service's `env:`,
    /// then `AUTOHEAL_*`); `AUTOHEAL_SERVICE` comes last.
    pub env: Vec<(String, String)>,
    /// The script's working directory (autoheal runs scripts in the config file's directory).
    pub cwd: Option<PathBuf>,
}

/// How a script run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptOutcome {
    /// `sh` exited with this code.
    Exited { code: i32, elapsed: Duration },
    /// `sh` was killed by this signal (not by autoheal).
    Signaled { signal: i32, elapsed: Duration },
    /// The timeout passed; the script's process group was killed.
    TimedOut { limit: Duration, elapsed: Duration },
    /// The script never ran: log file, user, or spawn failure.
    SpawnFailed { reason: String },
}

impl ScriptOutcome {
    /// True only for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ScriptOutcome::Exited { code: 0, .. })
    }

    /// One line for the log, the state file and `status`: "exit 0 in 200ms",
    /// "killed by signal 9 (SIGKILL) after 3s", "killed after timeout 5s", "could not start: ...".
    pub fn describe(&self) -> String {
        match self {
            ScriptOutcome::Exited { code, elapsed } => {
                format!("exit {code} in {}", secs(*elapsed))
            }
            ScriptOutcome::Signaled { signal, elapsed } => format!(
                "killed by signal {signal}{} after {}",
                signal_name(*signal)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                secs(*elapsed)
            ),
            // The limit, not the time it took: killing the group may take a few seconds more.
            ScriptOutcome::TimedOut { limit, .. } => {
                format!("killed after timeout {}", secs(*limit))
            }
            ScriptOutcome::SpawnFailed { reason } => format!("could not start: {reason}"),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

/// Looks up `name` in the user database with its supplementary groups.
///
/// Errors when the user does not exist, or when autoheal is not root and `name` is not the user
/// it runs as (switching user needs root).
pub fn resolve_user(name: &str) -> Result<UserIds, String> {
    let ids = users::by_name(name)?;
    check_can_switch(&ids, rustix::process::geteuid().as_raw())?;
    Ok(ids)
}

fn check_can_switch(ids: &UserIds, euid: u32) -> Result<(), String> {
    if euid == 0 || euid == ids.uid {
        Ok(())
    } else {
        Err(format!(
            "user {}: autoheal must run as root to switch user (it runs as uid {euid})",
            ids.name
        ))
    }
}

/// Opens the log at `path` for appending (creating it and its dir) and writes the header line
/// of `what` (a service's name, "hook") running `command`.
fn open_log(path: &Path, what: &str, command: &str) -> Result<File, String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::state::own_dir(parent).map_err(|e| e.to_string())?;
    }
    let mut log = crate::state::open_log(path).map_err(|e| e.to_string())?;
    writeln!(
        log,
        "--- {} autoheal: starting {what}: {command}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
    )
    .map_err(|e| format!("cannot write to {}: {e}", path.display()))?;
    Ok(log)
}

fn build_command(spec: &ScriptSpec, log: &File, user: Option<&UserIds>) -> io::Result<Command> {
    let mut env = spec.env.clone();
    env.push(("AUTOHEAL_SERVICE".into(), spec.service.clone()));
    let mut cmd = shell_command(&spec.command, user, &env, true);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    Ok(cmd)
}

/// Stops a running service's process: SIGTERM, then SIGKILL if it is still there after
/// `timeout`. Says what happened, for the log. Used before a health restart when the service
/// has no `stop:` command, or when that command left the process running.
///
/// The process is the one observed: `pid` started at `start_ticks` (clock ticks since boot).
/// It is pinned with a pidfd (`pidfd_open`) and its start checked again through it, so a pid
/// that was reused since the observation is not signalled, and both signals reach the same
/// process (`pidfd_send_signal`): a pid cannot be reused while its pidfd is open. On a kernel
/// without pidfds (before 5.3) the start is checked again right before each `kill`.
pub fn stop_process(pid: u32, start_ticks: u64, timeout: Duration) -> String {
    use rustix::process::{PidfdFlags, pidfd_open, pidfd_send_signal};
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return format!("pid {pid} is not a valid pid");
    };
    let same = || crate::procs::read_start_ticks(pid) == Some(start_ticks);
    let fd = match pidfd_open(p, PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::NOSYS) => None,
        Err(rustix::io::Errno::SRCH) => return format!("pid {pid} had already exited"),
        Err(e) => return format!("could not open a pidfd for pid {pid}: {e}; not signalled"),
    };
    if !same() {
        return format!(
            "pid {pid} had already exited (its pid now belongs to another process, not signalled)"
        );
    }
    if !running(pid) {
        return format!("pid {pid} had already exited");
    }
    // Its workers must be gone too before a new instance starts: they hold what the old one
    // held (shared memory, a lock file, a port). Looked at now, while the pid is surely still
    // this process's and they are still its children.
    let workers = crate::procs::workers_of(pid);
    let signal = |sig: Signal| match &fd {
        Some(fd) => pidfd_send_signal(fd, sig),
        None if same() => rustix::process::kill_process(p, sig),
        None => Err(rustix::io::Errno::SRCH),
    };
    if let Err(e) = signal(Signal::TERM) {
        if e == rustix::io::Errno::SRCH {
            return format!("pid {pid} had already exited");
        }
        return format!("could not signal pid {pid}: {e}");
    }
    let start = Instant::now();
    let exited = |wait: Duration| match &fd {
        Some(fd) => pidfd_exited(fd, wait),
        None => {
            std::thread::sleep(wait);
            !running(pid) || !same()
        }
    };
    while start.elapsed() < timeout {
        // The clock moved on since the loop's test: never a negative wait.
        let wait = timeout
            .saturating_sub(start.elapsed())
            .min(Duration::from_millis(25));
        if exited(wait) {
            let said = format!("pid {pid} exited on SIGTERM in {}", secs(start.elapsed()));
            return said + &left_behind(pid, &workers, start);
        }
    }
    let _ = signal(Signal::KILL);
    let killed = Instant::now();
    while killed.elapsed() < crate::defaults::KILL_WAIT {
        let wait = crate::defaults::KILL_WAIT
            .saturating_sub(killed.elapsed())
            .min(Duration::from_millis(25));
        if exited(wait) {
            let said = format!(
                "pid {pid} ignored SIGTERM for {}; SIGKILL ended it in {}",
                secs(timeout),
                secs(killed.elapsed())
            );
            return said + &left_behind(pid, &workers, killed);
        }
    }
    format!(
        "pid {pid} ignored SIGTERM for {}, and was still there {} after SIGKILL (stuck in the \
         kernel?); starting anyway",
        secs(timeout),
        secs(crate::defaults::KILL_WAIT)
    )
}

/// Once the process `pid` was seen to exit: waits, up to [`crate::defaults::KILL_WAIT`] from
/// `since`, for its `workers` (its children and session when it was stopped: they see their
/// master gone and exit) and for `pid` itself to be reaped, and says how that went ("" when all
/// went at once). A new instance started while they linger finds the old one's shared memory
/// attached, or its pid still taken (postgres checks its lock file's pid with `kill(pid, 0)`,
/// which a zombie passes).
fn left_behind(pid: u32, workers: &[(u32, u64)], since: Instant) -> String {
    let lingering = || -> Vec<u32> {
        workers
            .iter()
            .filter(|(w, ticks)| running(*w) && crate::procs::read_start_ticks(*w) == Some(*ticks))
            .map(|(w, _)| *w)
            .collect()
    };
    let reaped = || !std::path::Path::new(&format!("/proc/{pid}")).exists();
    let mut left = lingering();
    while (!left.is_empty() || !reaped()) && since.elapsed() < crate::defaults::KILL_WAIT {
        std::thread::sleep(Duration::from_millis(20));
        left = lingering();
    }
    let mut said = String::new();
    if !workers.is_empty() {
        said = if left.is_empty() {
            format!(
                ", and its {} workers by {}",
                workers.len(),
                secs(since.elapsed())
            )
        } else {
            format!(
                ", but {} of its {} workers were still there {} after (pids {}); starting anyway",
                left.len(),
                workers.len(),
                secs(since.elapsed()),
                left.iter()
                    .take(5)
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
    }
    if !reaped() {
        said.push_str(
            "; it is a zombie its parent has not reaped (a daemon that checks its old pid, as \
             postgres does, may refuse to start)",
        );
    }
    said
}

/// Whether the process of `pidfd` has exited, waiting up to `wait` (a pidfd becomes readable
/// when its process exits).
fn pidfd_exited(pidfd: &std::os::fd::OwnedFd, wait: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, and its count.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// Whether a pid is a live process (a zombie is not: it has exited, only its parent has not
/// read its status yet).
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Runs `spec.command` and waits for it, at most `spec.timeout` (plus [`TERM_GRACE`] and
/// [`KILL_REAP_LIMIT`] when it has to be killed). Never panics.
pub fn run_script(spec: &ScriptSpec) -> ScriptOutcome {
    run_script_with(spec, |_| {})
}

/// [`run_script`], calling `launched` with the pid of `sh` (the leader of the script's own
/// session) as soon as it runs, so that the caller can record it before waiting.
pub fn run_script_with(spec: &ScriptSpec, launched: impl FnOnce(u32)) -> ScriptOutcome {
    let spawn_failed = |reason: String| ScriptOutcome::SpawnFailed { reason };
    // Resolve the user first: a wrong `user:` is the likelier mistake, and says more.
    let user = match &spec.user {
        Some(name) => match resolve_user(name) {
            Ok(ids) => Some(ids),
            Err(reason) => return spawn_failed(reason),
        },
        None => None,
    };
    let user_desc = user
        .as_ref()
        .map(|u| format!(" as user {} (uid {})", u.name, u.uid));
    let mut log = match open_log(&spec.log_path, &spec.service, &spec.command) {
        Ok(log) => log,
        Err(e) => {
            return spawn_failed(format!(
                "cannot open log file {}: {e}",
                spec.log_path.display()
            ));
        }
    };
    let mut cmd = match build_command(spec, &log, user.as_ref()) {
        Ok(cmd) => cmd,
        Err(e) => return spawn_failed(format!("cannot pass log file to the script: {e}")),
    };
    let start = Instant::now();
    let outcome = match cmd.spawn() {
        Ok(child) => {
            launched(child.id());
            wait_bounded(child, spec.timeout, start)
        }
        Err(e) => spawn_failed(format!(
            "/bin/sh{}: {e}",
            user_desc.as_deref().unwrap_or_default()
        )),
    };
    // The footer is for the operator reading the log; losing it must not change the outcome.
    let _ = writeln!(
        log,
        "--- {} autoheal: {}: {}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        spec.service,
        outcome.describe()
    );
    outcome
}

/// How an alert hook ended: the outcomes of a script, described the same way ("exit 3 in
/// 20ms", "killed after timeout 10s", "could not start: ...").
pub type HookOutcome = ScriptOutcome;

/// Runs the alert command `command` (`settings.notify`): `/bin/sh -c` as autoheal's own
/// account, in a new session, with the clean environment of [`shell_command`] plus `env`,
/// `stdin` written to its stdin, and its stdout and stderr appended to `log_path` (created with
/// its directory, as a script's log is). At `timeout` its whole process group gets SIGTERM,
/// then, [`TERM_GRACE`] later, SIGKILL; what it leaves running when its `sh` exits is killed
/// the same way, so a hook leaves nothing behind. Returns within `timeout` + [`TERM_GRACE`] +
/// [`KILL_REAP_LIMIT`]. Never panics.
///
/// stdin is written without blocking, between looks at the hook: one that never reads it, or
/// exits first, costs nothing but what fits its pipe.
pub fn run_hook(
    command: &str,
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Duration,
    log_path: &Path,
) -> HookOutcome {
    let spawn_failed = |reason: String| ScriptOutcome::SpawnFailed { reason };
    let mut log = match open_log(log_path, "hook", command) {
        Ok(log) => log,
        Err(e) => {
            return spawn_failed(format!("cannot open log file {}: {e}", log_path.display()));
        }
    };
    let (out, err) = match (log.try_clone(), log.try_clone()) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return spawn_failed(format!("cannot pass log file to the hook: {e}"));
        }
    };
    let mut cmd = shell_command(command, None, env, true);
    cmd.stdin(Stdio::piped()).stdout(out).stderr(err);
    let start = Instant::now();
    let spawned = cmd.spawn();
    // The Command holds copies of the log: only the hook keeps one open.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return spawn_failed(format!("/bin/sh: {e}")),
    };
    let pgid = Pid::from_child(&child);
    let mut input = child.stdin.take().and_then(|pipe| Feed::new(pipe, stdin));
    let outcome = wait_feeding(&mut child, timeout, start, || {
        if input.as_mut().is_some_and(Feed::write_some) {
            // All written, or the hook will take no more: closing it is its EOF.
            input = None;
        }
    });
    drop(input);
    let exited = !matches!(
        outcome,
        ScriptOutcome::TimedOut { .. } | ScriptOutcome::SpawnFailed { .. }
    );
    let mut footer = outcome.describe();
    if exited && rustix::process::test_kill_process_group(pgid).is_ok() {
        kill_group(&mut child, pgid);
        footer.push_str("; what it left running was killed");
    }
    // The footer is for the operator reading the log; losing it must not change the outcome.
    let _ = writeln!(
        log,
        "--- {} autoheal: hook: {footer}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
    );
    outcome
}

/// The rest of a hook's stdin, written without blocking.
struct Feed<'a> {
    pipe: std::process::ChildStdin,
    rest: &'a [u8],
}

impl<'a> Feed<'a> {
    /// `None` when the pipe cannot be made non-blocking: then the hook gets no input (an EOF)
    /// rather than a write that could hang autoheal.
    fn new(pipe: std::process::ChildStdin, data: &'a [u8]) -> Option<Feed<'a>> {
        rustix::io::ioctl_fionbio(&pipe, true).ok()?;
        Some(Feed { pipe, rest: data })
    }

    /// Writes what the pipe takes now; true once nothing more is to be written (all of it, or
    /// the hook closed its stdin).
    fn write_some(&mut self) -> bool {
        while !self.rest.is_empty() {
            match self.pipe.write(self.rest) {
                Ok(0) => return true,
                Ok(n) => self.rest = &self.rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                // EPIPE: the hook does not read its stdin (SIGPIPE is ignored by Rust programs).
                Err(_) => return true,
            }
        }
        true
    }
}

fn from_status(status: ExitStatus, elapsed: Duration) -> ScriptOutcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => ScriptOutcome::Exited { code, elapsed },
        (None, Some(signal)) => ScriptOutcome::Signaled { signal, elapsed },
        // Neither code nor signal cannot happen for a reaped child; report it rather than panic.
        (None, None) => ScriptOutcome::Exited { code: -1, elapsed },
    }
}

/// Polls `sh` until it exits or `timeout` passes; then kills its process group.
fn wait_bounded(mut child: Child, timeout: Duration, start: Instant) -> ScriptOutcome {
    wait_feeding(&mut child, timeout, start, || {})
}

/// [`wait_bounded`], calling `feed` before each look at `sh` (to write its stdin).
fn wait_feeding(
    child: &mut Child,
    timeout: Duration,
    start: Instant,
    mut feed: impl FnMut(),
) -> ScriptOutcome {
    let pgid = Pid::from_child(child);
    let mut pause = POLL_MIN;
    loop {
        feed();
        match child.try_wait() {
            Ok(Some(status)) => return from_status(status, start.elapsed()),
            Ok(None) => {}
            Err(e) => {
                kill_group(child, pgid);
                return ScriptOutcome::SpawnFailed {
                    reason: format!("lost track of the script (pid {}): {e}", child.id()),
                };
            }
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            break;
        }
        std::thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(POLL_MAX);
    }
    kill_group(child, pgid);
    ScriptOutcome::TimedOut {
        limit: timeout,
        elapsed: start.elapsed(),
    }
}

/// SIGTERM to the group, up to [`TERM_GRACE`] for it to empty, SIGKILL to the group, reap `sh`.
fn kill_group(child: &mut Child, pgid: Pid) {
    let _ = rustix::process::kill_process_group(pgid, Signal::TERM);
    let mut reaped = false;
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline {
        if !reaped {
            reaped = matches!(child.try_wait(), Ok(Some(_)) | Err(_));
        }
        // Once `sh` is reaped, an empty group means every member has exited. (Orphans that a
        // non-reaping init leaves as zombies keep the group "non-empty"; SIGKILL is harmless.)
        if reaped && rustix::process::test_kill_process_group(pgid).is_err() {
            return;
        }
        std::thread::sleep(POLL_MIN);
    }
    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    let deadline = Instant::now() + KILL_REAP_LIMIT;
    while !reaped && Instant::now() < deadline {
        reaped = matches!(child.try_wait(), Ok(Some(_)) | Err(_));
        std::thread::sleep(POLL_MIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_each_outcome() {
        let d = Duration::from_millis(200);
        assert_eq!(
            ScriptOutcome::Exited {
                code: 0,
                elapsed: d
            }
            .describe(),
            "exit 0 in 200ms"
        );
        assert_eq!(
            ScriptOutcome::Signaled {
                signal: 9,
                elapsed: Duration::from_secs(3)
            }
            .describe(),
            "killed by signal 9 (SIGKILL) after 3s"
        );
        assert_eq!(
            ScriptOutcome::TimedOut {
                limit: Duration::from_secs(2),
                elapsed: Duration::from_millis(5_030)
            }
            .describe(),
            "killed after timeout 2s"
        );
        assert_eq!(
            ScriptOutcome::SpawnFailed {
                reason: "no such file".into()
            }
            .describe(),
            "could not start: no such file"
        );
    }

    #[test]
    fn non_root_cannot_switch_to_another_user() {
        let admin = UserIds {
            name: "admin".into(),
            uid: 1001,
            gid: 1001,
            groups: vec![1001],
            home: "/home/admin".into(),
            shell: "/bin/sh".into(),
        };
        assert_eq!(
            check_can_switch(&admin, 1000).unwrap_err(),
            "user admin: autoheal must run as root to switch user (it runs as uid 1000)"
        );
        assert!(check_can_switch(&admin, 0).is_ok());
        assert!(check_can_switch(&admin, 1001).is_ok());
    }
}
