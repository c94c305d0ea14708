//! The process table: one read of `/proc` per observation, and the two liveness questions the
//! config can ask of it (`pname:` with pgrep -f semantics, `pid_file:`).
//!
//! Why `/proc` directly and not sysinfo: measured on the 2-core dev machine with 300
//! processes (`cargo test --release --test observe_bench -- --ignored --nocapture`, median of
//! 50, three runs), one snapshot took 4.4–4.6 ms reading /proc here against 9.4–11.0 ms with
//! sysinfo refreshing only cmd (+ the start time it always reads): about 2x faster. (sysinfo
//! is no longer a dependency: the benchmark now sets the snapshot against the reads of a
//! general process library, `stat`, `status` and `cmdline` per pid, made with std.)
//!
//! What a snapshot reads is what a decision needs, and nothing else per process (README,
//! "Benchmarks": the tick against `cat` of every `cmdline` and `stat`):
//! - every `cmdline` (any process may be the one a `pname` matches), with one `openat` (from an
//!   open `/proc`) and one `read` into one reused 64 KiB buffer: a `/proc` file hands over all
//!   it has that fits, so no size is asked first and no growing read is made;
//! - all the `pname`s of the observation matched at once, one [`regex::RegexSet`] pass over
//!   each command line (the config's [`PatternSet`], compiled once when it loaded); a pattern
//!   is known by its text, and one not in the set is compiled and matched alone when asked;
//! - `stat` (parent, session, state, start) of the processes a pattern matches, right after;
//!   of any other only when a question needs it: the pid of a pid file, and the parents on the
//!   own-tree walk below;
//! - the real uid (for the account rules) of the processes a question matches: from the kernel
//!   through a pidfd (`PIDFD_GET_INFO`, Linux 6.13), else from `status`, which the kernel
//!   formats in full for every read and which cost more than every other read of a healthy tick.
//!
//! A field read on first need is of the process there at that moment, milliseconds after its
//! command line was read; a pid cannot be handed out again that fast in practice, and a signal
//! goes only to the process whose start ticks were checked again through a pidfd
//! ([`signal`]).
//!
//! Our own tree is never matched by `pname`: autoheal itself, its descendants (the scripts it
//! runs, until they daemonize and leave the tree) and those of its ancestors that share its
//! session (field 6 of `/proc/PID/stat`): the `sh -c` that cron spawns for the job (and cron's
//! own per-job child, the session leader), or the interactive shell an operator types
//! `autoheal status` into. Ancestors in other sessions are ordinary processes: the cron daemon,
//! sshd, a terminal emulator, init. With `pname: cron` the cron daemon that runs autoheal is
//! alive, not hidden. The walk up stops at the first ancestor outside our session, since the
//! session's members above us form one unbroken chain up to its leader.
//!
//! That rule needs no `stat` of every process. Our ancestors are walked up from us (a handful
//! of reads). Whether a candidate descends from us is found the other way round: its parents,
//! walked up from it through the table, reach our pid or not. Each process met is remembered,
//! so the next candidate's walk ends at the first known one (their common parent, most often:
//! a service's master, init): about one more `stat` per distinct parent. A ppid loop (pids
//! reused while the table was read) ends a walk as it ended the old descent from us.
//!
//! When our session leader lives outside our pid namespace (a `docker exec` without a tty, CI
//! containers), the session id reads 0 for us and for every process of that session, so sessions
//! cannot be told apart there: the ancestors that also read 0 are taken as ours. In practice that
//! is the chain of processes exec'd into the container along with us (the parent of the first
//! reads as pid 0 and ends the walk); a container's init normally leads its own session (runc
//! calls setsid), so it stays visible. Only where nothing inside the namespace ever started a
//! session does this fall back to hiding every ancestor, as before sessions were considered.
//!
//! What this module must not do: signal, restart or otherwise act on a process. It only reads;
//! [`ProcTable::stop_target`] only picks the pid that the engine then signals.

pub mod signal;

use crate::fmt::io_reason;
use crate::pattern::{Pattern, PatternSet};
use crate::state::ProcId;
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags};
use signal::Meta;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A pid file may be written up to this long before its process's recorded start time and still
/// count: the boot time in `/proc/stat` has one-second granularity.
const PID_FILE_SLACK: Duration = Duration::from_secs(1);

/// At most this many bytes of a pid file are read; a pid is a handful of digits.
const PID_FILE_MAX: usize = 4096;

/// The bytes read of a command line at once: one `read` for any command line up to this long
/// (the kernel hands over the whole of it in one call); a longer one takes more reads.
const CMDLINE_BUF: usize = 64 * 1024;

/// The bytes read of `/proc/PID/stat` or `status` at once: both fit, with room to spare (a
/// `stat` is some 300 bytes, and the `Uid:` line is within the first 1 KiB of `status`).
const SMALL_BUF: usize = 1024;

/// What one snapshot knows about one process: its command line, read for every process (a
/// `pname` may match any), and what else a question needs, read on first need.
#[derive(Debug, Clone, Default)]
struct Proc {
    /// Arguments joined by spaces, as `pgrep -f` sees them; empty for kernel threads (and for
    /// zombies, whose memory is gone).
    cmdline: String,
    /// From `/proc/PID/stat`: read with the command line when a `pname` matches it, else on
    /// first need (a pid from a pid file, an ancestor on the own-tree walk); `None` if the
    /// process is gone by then.
    facts: OnceLock<Option<Facts>>,
    /// Its real uid, read on first need (only processes a question matches are asked: reading
    /// one more file for every process would slow every snapshot).
    uid: OnceLock<Option<u32>>,
    /// Whether it descends from autoheal, found on first need by walking up its parents.
    below_us: OnceLock<bool>,
}

/// The fields of `/proc/PID/stat` that liveness needs.
#[derive(Debug, Clone)]
struct Facts {
    ppid: u32,
    /// Session id (field 6 of `/proc/PID/stat`); 0 if the session leader is outside our pid
    /// namespace.
    session: u32,
    started: Option<SystemTime>,
    /// Start in clock ticks since boot (field 22): unlike `started`, no clock step moves it.
    start_ticks: u64,
    zombie: bool,
}

/// Whose processes may be a service's: root's and one account's (`process_user`, else the
/// script's `user`, else the one autoheal runs as).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// `None` when no such user exists on this host: then only root's processes count.
    pub uid: Option<u32>,
}

impl Account {
    /// Whether a process of real uid `uid` may be the service's.
    pub fn admits(&self, uid: u32) -> bool {
        uid == 0 || self.uid == Some(uid)
    }

    /// "root", or "admin or root", for reasons.
    fn describe(&self) -> String {
        if self.uid == Some(0) {
            self.name.clone()
        } else {
            format!("{} or root", self.name)
        }
    }
}

/// A pid file as seen: the liveness it gives, and the owner and mode of the file read (from the
/// open file, so that they are the file whose content was read).
#[derive(Debug, Clone, PartialEq)]
pub struct PidFileSeen {
    pub liveness: Liveness,
    pub meta: Option<Meta>,
}

/// Whether a service's process is there.
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness {
    /// The process that makes the service alive, and when it started (if known).
    Alive {
        pid: u32,
        started: Option<SystemTime>,
    },
    /// Why the service counts as dead, short enough for a status line.
    Dead { reason: String },
}

impl Liveness {
    /// True for [`Liveness::Alive`].
    pub fn is_alive(&self) -> bool {
        matches!(self, Liveness::Alive { .. })
    }

    fn dead(reason: impl Into<String>) -> Liveness {
        Liveness::Dead {
            reason: reason.into(),
        }
    }
}

/// One snapshot of the process table, taken once per observation so that every liveness check
/// of a tick sees the same world.
#[derive(Debug, Clone, Default)]
pub struct ProcTable {
    /// Ordered by pid so that lookups are deterministic.
    procs: BTreeMap<u32, Proc>,
    /// For each `pname` the snapshot was taken for (by its text): the pids whose command line
    /// it matches, found in one pass of all the patterns over each command line. A pattern not
    /// here is matched against every command line when asked.
    matched: HashMap<String, Vec<u32>>,
    /// autoheal itself and its ancestors in its own session: with its descendants
    /// ([`Proc::below_us`]), its own tree, never matched by `pname`.
    own_tree_up: HashSet<u32>,
    /// This boot's id (`sys/kernel/random/boot_id`), for [`ProcId`]s.
    boot_id: Option<String>,
    /// Where it was read from (`/proc`), for what is read later.
    root: PathBuf,
    /// Boot time and clock ticks per second, to turn a start in ticks into a time.
    boot: Option<SystemTime>,
    ticks: u64,
    /// autoheal's own pid.
    own_pid: u32,
    /// Every ancestor of autoheal, in any session, up to init: never signalled.
    ancestors: HashSet<u32>,
}

impl ProcTable {
    /// One read of /proc, for no `pname` in particular (see [`snapshot_for`](Self::snapshot_for)).
    pub fn snapshot() -> ProcTable {
        Self::snapshot_for(std::iter::empty())
    }

    /// One read of /proc, for the `pname`s that will be asked of it: every command line is
    /// read and matched against all of them in one pass, and the rest of a process (its
    /// `stat`) only when one matches. Any other pattern may still be asked; it is then matched
    /// against every command line in turn. Processes in autoheal's own tree are excluded from
    /// pname matching: our own pid, our ancestors in our own session (the cron job's shell, an
    /// interactive shell; not the cron daemon or sshd) and all our descendants (scripts we run,
    /// until they daemonize and leave our tree). See the module doc for a session id that
    /// reads 0.
    ///
    /// Processes that vanish while being read are left out; a `/proc` that cannot be read at all
    /// gives an empty table, in which every service is dead.
    pub fn snapshot_for<'a>(pnames: impl IntoIterator<Item = &'a regex::Regex>) -> ProcTable {
        Self::snapshot_with(&PatternSet::new(
            pnames.into_iter().map(regex::Regex::as_str),
        ))
    }

    /// As [`snapshot_for`](Self::snapshot_for), for patterns compiled together already (a
    /// config's, [`crate::config::Config::pnames`]: compiled once when it loaded, for every
    /// observation of the tick).
    pub fn snapshot_with(patterns: &PatternSet) -> ProcTable {
        Self::read(Path::new("/proc"), std::process::id(), patterns)
    }

    fn read(proc_root: &Path, own_pid: u32, patterns: &PatternSet) -> ProcTable {
        let boot = boot_time(proc_root);
        let ticks = clock_ticks(proc_root);
        let mut procs = BTreeMap::new();
        let mut matched: Vec<Vec<u32>> = vec![Vec::new(); patterns.sources.len()];
        let mut buf = vec![0u8; CMDLINE_BUF];
        let mut small = vec![0u8; SMALL_BUF];
        let mut path = String::new();
        let root = rustix::fs::open(
            proc_root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        let entries = root
            .as_ref()
            .and_then(|fd| rustix::fs::Dir::read_from(fd).ok());
        for entry in entries.into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            path.clear();
            let _ = write!(path, "{pid}/cmdline");
            // Unreadable (gone meanwhile): kept with no command line, as a kernel thread is; its
            // stat, if ever asked, says whether it is still there.
            let raw = root.as_ref().and_then(|fd| read_at(fd, &path, &mut buf));
            let p = Proc {
                cmdline: raw.map(join_cmdline).unwrap_or_default(),
                ..Proc::default()
            };
            let mut hit = false;
            if !p.cmdline.is_empty() {
                for (at, set) in &patterns.sets {
                    if set.is_match(&p.cmdline) {
                        hit = true;
                        for i in set.matches(&p.cmdline).iter() {
                            matched[at + i].push(pid);
                        }
                    }
                }
            }
            if hit {
                // Its stat now, as close to its command line as can be.
                path.clear();
                let _ = write!(path, "{pid}/stat");
                let stat = root.as_ref().and_then(|fd| read_at(fd, &path, &mut small));
                let _ = p.facts.set(stat.and_then(|s| parse_facts(s, boot, ticks)));
            }
            procs.insert(pid, p);
        }
        let mut table = ProcTable {
            procs,
            // Only the patterns a set covers: the others are matched line by line when asked.
            matched: patterns
                .sources
                .iter()
                .cloned()
                .zip(matched)
                .zip(&patterns.covered)
                .filter(|(_, covered)| **covered)
                .map(|(m, _)| m)
                .collect(),
            boot_id: boot_id(proc_root),
            root: proc_root.to_path_buf(),
            boot,
            ticks,
            ..ProcTable::default()
        };
        table.find_our_place(own_pid);
        table
    }

    /// Sets our own pid, and finds our ancestors (in our session, and in any) from it.
    fn find_our_place(&mut self, own_pid: u32) {
        self.own_pid = own_pid;
        self.own_tree_up = self.session_ancestors();
        self.ancestors = self.all_ancestors();
    }

    /// The facts of `pid` from its `stat`, read now if not yet; `None` if it is not in the
    /// table or is gone.
    fn facts(&self, pid: u32) -> Option<&Facts> {
        let p = self.procs.get(&pid)?;
        p.facts
            .get_or_init(|| {
                let mut buf = vec![0u8; SMALL_BUF];
                let path = self.root.join(pid.to_string()).join("stat");
                let stat = read_at(rustix::fs::CWD, &path, &mut buf)?;
                parse_facts(stat, self.boot, self.ticks)
            })
            .as_ref()
    }

    /// The process `pid`, with its facts, if both could be read.
    fn proc(&self, pid: u32) -> Option<(&Proc, &Facts)> {
        Some((self.procs.get(&pid)?, self.facts(pid)?))
    }

    /// The real uid of `pid` (the `Uid:` line of `/proc/PID/status`), read once per snapshot,
    /// for processes that matter only (see `read_real_uid`); `None` if it is gone.
    pub fn real_uid(&self, pid: u32) -> Option<u32> {
        let p = self.procs.get(&pid)?;
        *p.uid.get_or_init(|| read_real_uid(&self.root, pid))
    }

    /// True for autoheal itself and every one of its ancestors, in any session (the cron
    /// daemon, sshd, init): processes autoheal never signals.
    pub fn is_ours(&self, pid: u32) -> bool {
        pid == self.own_pid || self.ancestors.contains(&pid)
    }

    /// The start of `pid` in clock ticks since boot, if it is in the table.
    pub fn start_ticks(&self, pid: u32) -> Option<u64> {
        self.facts(pid).map(|f| f.start_ticks)
    }

    /// pgrep -f semantics: the first non-excluded, non-zombie process whose full command line
    /// matches `re`. "First" is the earliest started (then lowest pid): for a service with a
    /// master and workers that is the master.
    pub fn find_pname(&self, re: &dyn Pattern) -> Liveness {
        self.find_pname_as(re, None)
    }

    /// As [`find_pname`](Self::find_pname), among the processes of `account` (and root's) when
    /// one is given: a process of another account that matches is skipped, and when that is
    /// why nothing is found the dead reason names it and how to accept it (`process_user`).
    pub fn find_pname_as(&self, re: &dyn Pattern, account: Option<&Account>) -> Liveness {
        let (matching, skipped) = self.matching_as(re, account);
        let found = matching
            .iter()
            .min_by_key(|(pid, m)| (m.facts.started.unwrap_or(UNIX_EPOCH), **pid));
        match found {
            Some((&pid, m)) => Liveness::Alive {
                pid,
                started: m.facts.started,
            },
            None => Liveness::dead(self.no_match_as(re, account, &skipped)),
        }
    }

    /// The pid to signal to stop a `pname` service (before a health restart), which is not
    /// always the pid [`find_pname`](Self::find_pname) reports: a loose pattern may also match
    /// a `tail -f` of the service's log, started before the service itself.
    ///
    /// Takes the processes `find_pname` can match (not autoheal's own tree, not zombies, not
    /// kernel threads) and drops every one whose parent is also among them (the workers of a
    /// master, the children of a matching wrapper shell). Returns:
    /// - `Ok(pid)` if exactly one process is left: the topmost matching process;
    /// - `Err("no process matches \"RE\"")` if none matches (the text of the dead reason);
    /// - `Err(reason)` if several are left, the reason naming each of them as `pid (command
    ///   line)` (up to five, command lines cut at 60 characters) and saying to give the service
    ///   a `stop:` command or a `pid_file` so that autoheal knows which process to stop. Nothing
    ///   should be signalled then.
    pub fn stop_target(&self, re: &dyn Pattern) -> Result<u32, String> {
        let matching: BTreeMap<u32, Match<'_>> = self.matching(re).collect();
        top_of(re, &matching)
    }

    /// [`find_pname`](Self::find_pname) and [`stop_target`](Self::stop_target) in one scan of
    /// the table, for a service that may be restarted while alive: alive with the pid a restart
    /// would stop, or with the oldest match and why the one to stop is ambiguous.
    pub fn find_pname_to_stop(&self, re: &dyn Pattern) -> (Liveness, Option<String>) {
        self.find_pname_to_stop_as(re, None)
    }

    /// [`find_pname_to_stop`](Self::find_pname_to_stop) among the processes of `account` and
    /// root (see [`find_pname_as`](Self::find_pname_as)).
    pub fn find_pname_to_stop_as(
        &self,
        re: &dyn Pattern,
        account: Option<&Account>,
    ) -> (Liveness, Option<String>) {
        let (matching, skipped) = self.matching_as(re, account);
        let oldest = matching
            .iter()
            .min_by_key(|(pid, m)| (m.facts.started.unwrap_or(UNIX_EPOCH), **pid));
        let Some((&oldest, _)) = oldest else {
            let why = self.no_match_as(re, account, &skipped);
            return (Liveness::dead(why), None);
        };
        let (pid, ambiguous) = match top_of(re, &matching) {
            Ok(pid) => (pid, None),
            Err(why) => (oldest, Some(why)),
        };
        let alive = Liveness::Alive {
            pid,
            started: matching[&pid].facts.started,
        };
        (alive, ambiguous)
    }

    /// The processes `pname` matches, of `account` and root when one is given, and the pids
    /// (with their uid) of those it skipped for running as another account. Uids are read for
    /// matching processes only.
    fn matching_as<'a>(
        &'a self,
        re: &'a dyn Pattern,
        account: Option<&Account>,
    ) -> (BTreeMap<u32, Match<'a>>, Vec<(u32, u32)>) {
        let mut skipped = Vec::new();
        let mut matching = BTreeMap::new();
        for (pid, m) in self.matching(re) {
            let Some(account) = account else {
                matching.insert(pid, m);
                continue;
            };
            match self.real_uid(pid) {
                Some(uid) if account.admits(uid) => {
                    matching.insert(pid, m);
                }
                Some(uid) => skipped.push((pid, uid)),
                // Gone since the snapshot.
                None => {}
            }
        }
        (matching, skipped)
    }

    /// The dead reason of a pname that matches no process of `account`: the plain one, or,
    /// when processes of other accounts match, the first of them and what to do if it is the
    /// service.
    fn no_match_as(
        &self,
        re: &dyn Pattern,
        account: Option<&Account>,
        skipped: &[(u32, u32)],
    ) -> String {
        let (Some(account), Some(&(pid, uid))) = (account, skipped.first()) else {
            return no_match(re);
        };
        let user = user_name(uid);
        let more = match skipped.len() {
            1 => String::new(),
            n => format!(", and {} more of other accounts", n - 1),
        };
        format!(
            "no process of {} matches \"{}\" (pid {pid} matches but runs as {user}{more}{})",
            account.describe(),
            re.text(),
            process_user_hint(uid)
        )
    }

    /// The processes `pname` may match: not zombies, not kernel threads, not our own tree.
    /// Those the snapshot's one pass found for this pattern (the set knows a pattern by its
    /// text, compiled as `Regex::new` compiles it: so does every `pname` of autoheal's); for
    /// another pattern, every command line it matches.
    fn matching<'a>(&'a self, re: &'a dyn Pattern) -> impl Iterator<Item = (u32, Match<'a>)> {
        let (pids, matched): (Box<dyn Iterator<Item = u32> + 'a>, bool) =
            match self.matched.get(re.text()) {
                Some(pids) => (Box::new(pids.iter().copied()), true),
                None => (Box::new(self.procs.keys().copied()), false),
            };
        pids.filter_map(move |pid| {
            let cmdline = self.procs.get(&pid)?.cmdline.as_str();
            if cmdline.is_empty() || !(matched || re.regex().is_some_and(|r| r.is_match(cmdline))) {
                return None;
            }
            let facts = self.facts(pid)?;
            (!facts.zombie && !self.is_own_tree(pid)).then_some((pid, Match { cmdline, facts }))
        })
    }

    /// Alive iff the file holds a pid of a live, non-zombie process that started no later than
    /// the file's mtime (plus one second of slack for clock granularity): a pid file left over
    /// from before a reboot whose pid now belongs to some other process is stale, not alive.
    ///
    /// Never blocks: anything but a regular file (a FIFO, a device, a directory) is dead with
    /// "is not a regular file" and is not even opened, and at most the first 4 KiB are read.
    pub fn check_pid_file(&self, path: &Path) -> Liveness {
        self.check_pid_file_as(path, None, None)
    }

    /// The marks of process `pid` that no clock step changes, if it is in the table.
    pub fn proc_id(&self, pid: u32) -> Option<ProcId> {
        Some(ProcId {
            boot: self.boot_id.clone()?,
            pid,
            ticks: self.facts(pid)?.start_ticks,
        })
    }

    /// As [`check_pid_file`](Self::check_pid_file), but the start-time test is skipped for the
    /// service's own process, known by its command line matching `pname` or by being `known`
    /// (the process seen alive through this pid file before, [`proc_id`](Self::proc_id)). A
    /// clock stepped forward after the file was written (NTP correcting a slow hardware clock
    /// after boot) makes every process look younger than its pid file; neither is fooled by it.
    pub fn check_pid_file_as(
        &self,
        path: &Path,
        pname: Option<&dyn Pattern>,
        known: Option<&ProcId>,
    ) -> Liveness {
        self.look_at_pid_file(path, pname, known, None).liveness
    }

    /// The pid file of a service: [`check_pid_file_as`](Self::check_pid_file_as), and the
    /// owner and mode of the file read. Pid 1 and autoheal itself (and the ancestors it shares
    /// its session with: the cron job's shell) never make a service alive; nor, when `account`
    /// is given, a process whose real uid is neither root nor the account's.
    pub fn look_at_pid_file(
        &self,
        path: &Path,
        pname: Option<&dyn Pattern>,
        known: Option<&ProcId>,
        account: Option<&Account>,
    ) -> PidFileSeen {
        let (liveness, meta) = self.pid_file_liveness(path, pname, known, account);
        PidFileSeen { liveness, meta }
    }

    fn pid_file_liveness(
        &self,
        path: &Path,
        pname: Option<&dyn Pattern>,
        known: Option<&ProcId>,
        account: Option<&Account>,
    ) -> (Liveness, Option<Meta>) {
        let shown = path.display();
        let (text, mtime, meta) = match read_pid_file(path) {
            Ok(v) => v,
            Err(PidFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return (Liveness::dead(format!("pid file {shown} missing")), None);
            }
            Err(PidFileError::Io(e)) => {
                let why = format!("pid file {shown} unreadable: {}", io_reason(&e));
                return (Liveness::dead(why), None);
            }
            Err(PidFileError::NotRegular) => {
                let why = format!("pid file {shown} is not a regular file");
                return (Liveness::dead(why), None);
            }
        };
        let dead = |why: String| (Liveness::dead(why), Some(meta));
        let pid = match text.split_whitespace().next().map(str::parse::<u32>) {
            Some(Ok(pid)) if pid > 0 => pid,
            _ => return dead(format!("pid file {shown} holds no pid")),
        };
        // Whoever can write the file could name any process; these can never be a service's.
        if pid == 1 {
            return dead(format!(
                "pid file {shown} names pid 1 (init), never a service's own process"
            ));
        }
        if pid == self.own_pid {
            return dead(format!("pid file {shown} names pid {pid}, autoheal itself"));
        }
        if self.ancestors.contains(&pid) && self.own_tree_up.contains(&pid) {
            return dead(format!(
                "pid file {shown} names pid {pid} (`{}`), which runs autoheal itself",
                shorten(self.cmdline(pid).unwrap_or_default(), 60)
            ));
        }
        let Some((p, facts)) = self.proc(pid) else {
            return dead(format!("pid {pid} not running"));
        };
        if facts.zombie {
            return dead(format!("pid {pid} is a zombie"));
        }
        if let Some(account) = account {
            match self.real_uid(pid) {
                Some(uid) if account.admits(uid) => {}
                Some(uid) => {
                    let user = user_name(uid);
                    return dead(format!(
                        "pid {pid} from {shown} runs as {user}, not as {}{}",
                        account.describe(),
                        process_user_hint(uid).replacen("; if", " (if", 1)
                            + if crate::users::name_of(uid).is_some() {
                                ")"
                            } else {
                                ""
                            }
                    ));
                }
                None => return dead(format!("pid {pid} not running")),
            }
        }
        let confirmed = pname.is_some_and(|re| self.matches(re, pid, &p.cmdline))
            || known.is_some_and(|k| self.proc_id(pid).as_ref() == Some(k));
        if let (Some(started), Some(mtime), false) = (facts.started, mtime, confirmed)
            && started > mtime + PID_FILE_SLACK
        {
            return dead(format!(
                "stale pid file {shown}: pid {pid} started after the file was written"
            ));
        }
        let alive = Liveness::Alive {
            pid,
            started: facts.started,
        };
        (alive, Some(meta))
    }

    /// Whether `re` matches the command line `cmdline` of `pid`: as the snapshot's one pass
    /// found it, for a pattern it was taken for; else by the pattern alone.
    fn matches(&self, re: &dyn Pattern, pid: u32, cmdline: &str) -> bool {
        match self.matched.get(re.text()) {
            Some(pids) => pids.contains(&pid),
            None => re.regex().is_some_and(|r| r.is_match(cmdline)),
        }
    }

    /// When the process started, if it is in the table and its start time could be read.
    pub fn start_time(&self, pid: u32) -> Option<SystemTime> {
        self.facts(pid).and_then(|f| f.started)
    }

    /// The command line as pname matching sees it (arguments joined by spaces).
    pub fn cmdline(&self, pid: u32) -> Option<&str> {
        self.procs.get(&pid).map(|p| p.cmdline.as_str())
    }

    /// True if `pid` is autoheal itself, one of its descendants or one of its ancestors in its
    /// own session: the processes `pname` never matches.
    pub fn is_own_tree(&self, pid: u32) -> bool {
        self.own_tree_up.contains(&pid) || self.below_us(pid)
    }

    /// Whether `pid` descends from autoheal: its parents, walked up from it, reach our pid
    /// through processes of the table. Each process on the way is remembered, so the walk of
    /// the next one stops where it meets a known one (their common parent, most often).
    fn below_us(&self, pid: u32) -> bool {
        let mut chain = Vec::new();
        let mut at = pid;
        let found = loop {
            let Some(p) = self.procs.get(&at) else {
                break false;
            };
            if let Some(&known) = p.below_us.get() {
                break known;
            }
            // A pid seen on this walk means a ppid loop (pids reused while /proc was read).
            if chain.contains(&at) {
                break false;
            }
            chain.push(at);
            match self.facts(at) {
                Some(f) if f.ppid == self.own_pid => break true,
                Some(f) if f.ppid != 0 => at = f.ppid,
                _ => break false,
            }
        };
        for pid in chain {
            let _ = self.procs[&pid].below_us.set(found);
        }
        found
    }

    /// Number of processes in the snapshot.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True if the snapshot holds no process (e.g. /proc was unreadable).
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

/// The marks of process `pid` that no clock step changes ([`ProcId`]), read from `/proc` now;
/// `None` when it is gone.
pub fn proc_id(pid: u32) -> Option<ProcId> {
    Some(ProcId {
        ticks: stat_now(pid)?.start_ticks,
        boot: current_boot_id()?,
        pid,
    })
}

/// While `leader` (the `sh` of a script autoheal ran with `setsid`) still runs: the live
/// processes of its session, the leader first. Empty once the leader is gone (another boot, or
/// its pid now belongs to another process): the script has returned, and what it left in its
/// session (a daemon started with `&`) is the service, not the script. A daemon that left
/// with its own `setsid` is never a member.
pub fn session_members(leader: &ProcId) -> Vec<u32> {
    let proc_root = Path::new("/proc");
    let leader_stat = stat_now(leader.pid);
    // A zombie leader has returned: only a parent that never reaps it (a container's init)
    // keeps its entry.
    let same = leader_stat
        .is_some_and(|s| s.start_ticks == leader.ticks && !matches!(s.state, 'Z' | 'X'))
        && boot_id(proc_root).as_deref() == Some(leader.boot.as_str());
    if !same {
        return Vec::new();
    }
    let mut members = vec![leader.pid];
    let Ok(dir) = fs::read_dir(proc_root) else {
        return members;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(stat) = stat_now(pid) else {
            continue;
        };
        if pid != leader.pid && stat.session == leader.pid && !matches!(stat.state, 'Z' | 'X') {
            members.push(pid);
        }
    }
    members
}

/// The workers of `pid`, read from `/proc` now, as (pid, start ticks): its live children, and
/// the members of its session when it leads one (a daemon that called `setsid`, as pg_ctl's
/// postmaster does).
pub fn workers_of(pid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let p = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = stat_now(p)?;
            let mine = stat.ppid == pid || stat.session == pid;
            (p != pid && mine && !matches!(stat.state, 'Z' | 'X')).then_some((p, stat.start_ticks))
        })
        .collect()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`): it changes with every boot, and with
/// nothing else.
pub fn current_boot_id() -> Option<String> {
    boot_id(Path::new("/proc"))
}

fn boot_id(proc_root: &Path) -> Option<String> {
    fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A user's name, or `uid N` when the user database does not know it.
pub fn user_name(uid: u32) -> String {
    crate::users::name_of(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The start of `pid` in clock ticks since boot, read now from `/proc/PID/stat`: with the pid,
/// it tells a process from a later one that reused its pid.
pub fn read_start_ticks(pid: u32) -> Option<u64> {
    stat_now(pid).map(|s| s.start_ticks)
}

/// `/proc/PID/stat` read now (one open, one read), or `None` if `pid` is gone.
fn stat_now(pid: u32) -> Option<Stat> {
    let mut buf = vec![0u8; SMALL_BUF];
    let stat = read_at(
        rustix::fs::CWD,
        format!("/proc/{pid}/stat").as_str(),
        &mut buf,
    )?;
    parse_stat(&String::from_utf8_lossy(stat))
}

/// The real uid of `pid`, asked of the kernel through a pidfd where it can answer
/// ([`pidfd_real_uid`]), else from `<root>/PID/status`: one open and one read (the `Uid:` line
/// is among its first lines, and a read of a /proc file returns what fits, from its start).
/// This runs for every process a `pname` matches. The pid is the snapshot's of a moment ago; it
/// cannot have been reused since by another process in practice (the kernel hands out every
/// other pid first), and a signal is sent only after the process's start is checked again
/// through a pidfd.
fn read_real_uid(root: &Path, pid: u32) -> Option<u32> {
    use rustix::fs::{Mode, OFlags, open};
    if root == Path::new("/proc")
        && let Ok(uid) = pidfd_real_uid(pid)
    {
        return uid;
    }
    let fd = open(
        root.join(pid.to_string()).join("status"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    parse_real_uid(&String::from_utf8_lossy(&buf[..n]))
}

/// The kernel cannot answer through a pidfd (before Linux 6.13, or no descriptor left): the
/// caller reads `status` instead.
struct Unanswered;

/// Set once a kernel has said it has no `PIDFD_GET_INFO`, so that no other pid asks again.
static NO_PIDFD_INFO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `struct pidfd_info` of `<linux/pidfd.h>` as first published (Linux 6.13, 64 bytes); a later
/// kernel fills the fields of this size and no more.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

const PIDFD_INFO_CREDS: u64 = 1 << 1;

/// The real uid of `pid` from `ioctl(pidfd, PIDFD_GET_INFO)`: the credentials as the kernel
/// holds them, with no text made and parsed. `status` is formatted in full for every read
/// (memory counters, signal masks, CPU lists), which made it the largest part of a healthy
/// tick's look at the process table (README, "Benchmarks"). `Ok(None)` when the process is
/// gone (no pidfd can be opened for it); any answer of the ioctl but the uid leaves the
/// question to `status`.
fn pidfd_real_uid(pid: u32) -> Result<Option<u32>, Unanswered> {
    use rustix::io::Errno;
    use rustix::ioctl::{Opcode, Updater, ioctl, opcode};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    use std::sync::atomic::Ordering;
    const PIDFD_GET_INFO: Opcode = opcode::read_write::<PidfdInfo>(0xFF, 11);
    if NO_PIDFD_INFO.load(Ordering::Relaxed) {
        return Err(Unanswered);
    }
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(None);
    };
    let fd = match pidfd_open(p, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(None),
        Err(Errno::NOSYS) => {
            NO_PIDFD_INFO.store(true, Ordering::Relaxed);
            return Err(Unanswered);
        }
        Err(_) => return Err(Unanswered),
    };
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO reads and writes one `struct pidfd_info` of the size its opcode
    // encodes, which is `PidfdInfo`'s, and `info` lives across the call.
    let asked = unsafe { ioctl(&fd, Updater::<PIDFD_GET_INFO, PidfdInfo>::new(&mut info)) };
    match asked {
        Ok(()) if info.mask & PIDFD_INFO_CREDS != 0 => Ok(Some(info.ruid)),
        Ok(()) => Err(Unanswered),
        // Not "gone": Linux 6.13 to 6.17 also answer ESRCH for a live process whose parent is
        // outside our pid namespace (a `docker exec`'d daemon); `status` answers for it, and
        // for one reaped meanwhile says it is gone.
        Err(Errno::NOTTY | Errno::INVAL) => {
            NO_PIDFD_INFO.store(true, Ordering::Relaxed);
            Err(Unanswered)
        }
        Err(_) => Err(Unanswered),
    }
}

/// The real uid: the first field of the `Uid:` line of `/proc/PID/status`.
fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// "; if that is the service, set process_user: NAME" when `uid` has a name (`process_user`
/// takes a name); else nothing: there is no account to name.
fn process_user_hint(uid: u32) -> String {
    match crate::users::name_of(uid) {
        Some(name) => format!("; if that is the service, set process_user: {name}"),
        None => String::new(),
    }
}

/// The dead reason of a pname that matches nothing.
fn no_match(re: &dyn Pattern) -> String {
    format!("no process matches \"{}\"", re.text())
}

/// At most `max` characters of `s`, with "…" in place of the rest.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The facts of a process from the text of its `/proc/PID/stat`.
fn parse_facts(stat: &[u8], boot: Option<SystemTime>, ticks: u64) -> Option<Facts> {
    let Stat {
        state,
        ppid,
        session,
        start_ticks,
    } = parse_stat(&String::from_utf8_lossy(stat))?;
    let ms = start_ticks.saturating_mul(1000) / ticks.max(1);
    Some(Facts {
        ppid,
        session,
        started: boot.map(|b| b + Duration::from_millis(ms)),
        start_ticks,
        // X (dead) is only seen for an instant, but it is no more alive than a zombie.
        zombie: matches!(state, 'Z' | 'X'),
    })
}

/// The content of the file `path` (relative to `dir`), read into `buf` with one `read` when
/// it fits (a `/proc` file hands over all it has that fits in one call, so a short read is the
/// whole file), else with more reads into `buf` grown to fit; `None` if it cannot be opened or
/// read (the process is gone).
fn read_at<P: rustix::path::Arg>(dir: impl AsFd, path: P, buf: &mut Vec<u8>) -> Option<&[u8]> {
    let fd = rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((2 * buf.len()).max(SMALL_BUF), 0);
        }
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    Some(&buf[..len])
}

/// The fields of `/proc/PID/stat` that a snapshot keeps.
#[derive(Debug, PartialEq)]
struct Stat {
    state: char,
    ppid: u32,
    session: u32,
    /// Start time in clock ticks since boot.
    start_ticks: u64,
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) is in parentheses and may
/// itself hold spaces and ')', so the fields are counted from the last ')'.
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of proc(5), so field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Stat {
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// NUL-separated arguments → one string joined by spaces, as pgrep -f matches it.
fn join_cmdline(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    match std::str::from_utf8(raw) {
        Ok(text) => text.replace('\0', " "),
        Err(_) => {
            let joined: Vec<u8> = raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
            String::from_utf8_lossy(&joined).into_owned()
        }
    }
}

/// A process `pname` matches, as matching sees it.
#[derive(Debug, Clone, Copy)]
struct Match<'a> {
    cmdline: &'a str,
    facts: &'a Facts,
}

impl ProcTable {
    /// Ourselves and our ancestors in our own session, walked up from us until the first that
    /// is not (see the module doc).
    fn session_ancestors(&self) -> HashSet<u32> {
        let own_pid = self.own_pid;
        let mut tree = HashSet::from([own_pid]);
        let Some(session) = self.facts(own_pid).map(|f| f.session) else {
            return tree;
        };
        let mut pid = own_pid;
        while let Some(p) = self.facts(pid) {
            let Some(parent) = self.facts(p.ppid) else {
                break;
            };
            // A pid already in the tree means a ppid loop (pids reused while /proc was read).
            if parent.session != session || !tree.insert(p.ppid) {
                break;
            }
            pid = p.ppid;
        }
        tree
    }

    /// Every ancestor of ours up to the top of the table, in any session.
    fn all_ancestors(&self) -> HashSet<u32> {
        let own_pid = self.own_pid;
        let mut found = HashSet::new();
        let mut pid = own_pid;
        while let Some(p) = self.facts(pid) {
            // A pid already seen means a ppid loop (pids reused while /proc was read).
            if p.ppid == 0 || p.ppid == own_pid || !found.insert(p.ppid) {
                break;
            }
            pid = p.ppid;
        }
        found
    }
}

/// The one topmost process among `matching` (none whose parent also matches), or why not.
fn top_of(re: &dyn Pattern, matching: &BTreeMap<u32, Match<'_>>) -> Result<u32, String> {
    const SHOWN: usize = 5;
    let tops: Vec<(u32, Match<'_>)> = matching
        .iter()
        .filter(|(_, m)| !matching.contains_key(&m.facts.ppid))
        .map(|(&pid, &m)| (pid, m))
        .collect();
    match tops.as_slice() {
        [] => Err(no_match(re)),
        [(pid, _)] => Ok(*pid),
        _ => {
            let mut listed: Vec<String> = tops
                .iter()
                .take(SHOWN)
                .map(|(pid, p)| format!("{pid} ({})", shorten(p.cmdline, 60)))
                .collect();
            if tops.len() > SHOWN {
                listed.push(format!("and {} more", tops.len() - SHOWN));
            }
            Err(format!(
                "pname \"{}\" matches {} unrelated processes: {}; give the service a `stop:` \
                 command or a `pid_file` so that autoheal knows which process to stop",
                re.text(),
                tops.len(),
                listed.join(", ")
            ))
        }
    }
}

/// Boot time: now minus `/proc/uptime` (to the hundredth of a second, so that a process's
/// start time, and the grace counted from it, is not up to a second early), else the `btime`
/// line of `/proc/stat` (whole seconds since the epoch).
fn boot_time(proc_root: &Path) -> Option<SystemTime> {
    let uptime = fs::read_to_string(proc_root.join("uptime"))
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .filter(|u| u.is_finite() && *u >= 0.0);
    if let Some(up) = uptime {
        return SystemTime::now().checked_sub(Duration::from_secs_f64(up));
    }
    let stat = fs::read_to_string(proc_root.join("stat")).ok()?;
    let secs = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), read from the `AT_CLKTCK` entry of our
/// auxiliary vector so that no libc call is needed; 100 (Linux's USER_HZ) if that fails.
fn clock_ticks(proc_root: &Path) -> u64 {
    const AT_CLKTCK: usize = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let auxv = fs::read(proc_root.join("self/auxv")).unwrap_or_default();
    auxv.chunks_exact(2 * WORD)
        .map(|pair| {
            let word = |b: &[u8]| usize::from_ne_bytes(b.try_into().unwrap_or([0; WORD]));
            (word(&pair[..WORD]), word(&pair[WORD..]))
        })
        .find(|&(key, _)| key == AT_CLKTCK)
        .map(|(_, value)| value as u64)
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Why a pid file could not be read.
enum PidFileError {
    Io(std::io::Error),
    /// A FIFO, device, socket or directory: opening or reading it could block the tick (a FIFO
    /// with no writer blocks `open` forever) or have side effects, so it is not read at all.
    NotRegular,
}

impl From<std::io::Error> for PidFileError {
    fn from(e: std::io::Error) -> Self {
        PidFileError::Io(e)
    }
}

/// The first [`PID_FILE_MAX`] bytes of a pid file and its mtime, without ever blocking: the path
/// (symlinks followed) must be a regular file before it is opened, it is opened with
/// `O_NONBLOCK` (so a FIFO swapped in meanwhile cannot block the open either) and checked again
/// on the open descriptor.
fn read_pid_file(path: &Path) -> Result<(String, Option<SystemTime>, Meta), PidFileError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if !fs::metadata(path)?.is_file() {
        return Err(PidFileError::NotRegular);
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(PidFileError::NotRegular);
    }
    // One read: a regular file hands over all it has up to the size asked, short only at its
    // end (or when a signal interrupts it, which is retried).
    let mut buf = [0u8; PID_FILE_MAX];
    let n = loop {
        match rustix::io::read(&file, &mut buf[..]) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other.map_err(std::io::Error::from)?,
        }
    };
    Ok((
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        meta.modified().ok(),
        Meta {
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let stat = "4242 (my) (odd) name) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 \
                    123456 1000 50 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                state: 'S',
                ppid: 17,
                session: 4242,
                start_ticks: 123456
            })
        );
        assert_eq!(parse_stat("12 (z) Z 1 0"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdline_is_joined_by_spaces() {
        assert_eq!(
            join_cmdline(b"python3\0app.py\0--port\08080\0"),
            "python3 app.py --port 8080"
        );
        assert_eq!(
            join_cmdline(b"nginx: master process"),
            "nginx: master process"
        );
        assert_eq!(join_cmdline(b""), "");
        assert_eq!(join_cmdline(b"caf\xe9\0-x\0"), "caf\u{fffd} -x");
    }

    #[test]
    fn a_pattern_set_has_each_pattern_once_and_none_for_no_pattern() {
        let set = PatternSet::new(["^b$", "^a$", "^b$"]);
        assert_eq!(set.sources, ["^a$", "^b$"]);
        assert_eq!(set.sets.len(), 1);
        let matched: Vec<usize> = set.sets[0].1.matches("b").iter().collect();
        assert_eq!(matched, [1]);
        let none = PatternSet::new([]);
        assert!(none.sets.is_empty() && none.sources.is_empty());
    }

    /// Patterns that each compile but do not fit in one set together are split into sets that
    /// fit, and a process each matches is still found.
    #[test]
    fn patterns_past_the_size_limit_of_one_set_are_still_matched() {
        let big: Vec<String> = (0..4)
            .map(|i| format!(r"^p{i} \w{{120}} [\w.-]+ --port \d+ --name \w{{3,16}}$"))
            .collect();
        let refs: Vec<&str> = big.iter().map(String::as_str).collect();
        assert!(
            regex::RegexSet::new(&refs).is_err(),
            "the patterns must not fit in one set"
        );
        let set = PatternSet::new(refs.iter().copied());
        assert!(set.sets.len() > 1, "{} sets", set.sets.len());
        assert!(set.covered.iter().all(|c| *c));
        let line = format!("p2 {} a.py --port 80 --name web", "x".repeat(120));
        let hits: Vec<&str> = set
            .sets
            .iter()
            .flat_map(|(at, s)| s.matches(&line).into_iter().map(move |i| at + i))
            .map(|i| set.sources[i].as_str())
            .collect();
        assert_eq!(hits, [big[2].as_str()]);
    }

    #[test]
    fn a_file_longer_than_the_buffer_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("autoheal-read-at-{}", std::process::id()));
        let text: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
        fs::write(&dir, &text).unwrap();
        let mut buf = vec![0u8; SMALL_BUF];
        let read = read_at(rustix::fs::CWD, &dir, &mut buf).map(<[u8]>::to_vec);
        let _ = fs::remove_file(&dir);
        assert_eq!(read.as_deref(), Some(&text[..]));
        assert!(read_at(rustix::fs::CWD, "/nonexistent/x", &mut buf).is_none());
    }

    fn p(ppid: u32, session: u32) -> Proc {
        started(ppid, session, None)
    }

    fn started(ppid: u32, session: u32, started: Option<SystemTime>) -> Proc {
        let p = Proc {
            cmdline: "x".into(),
            ..Proc::default()
        };
        p.facts
            .set(Some(Facts {
                ppid,
                session,
                started,
                start_ticks: 0,
                zombie: false,
            }))
            .unwrap();
        p
    }

    /// The table of `procs`, as seen by `own_pid`.
    fn table_of(procs: &BTreeMap<u32, Proc>, own_pid: u32) -> ProcTable {
        let mut t = ProcTable {
            procs: procs.clone(),
            ..ProcTable::default()
        };
        t.find_our_place(own_pid);
        t
    }

    fn own_tree(procs: &BTreeMap<u32, Proc>, own_pid: u32) -> HashSet<u32> {
        let t = table_of(procs, own_pid);
        let pids = procs.keys().copied().chain([own_pid]);
        pids.filter(|&pid| t.is_own_tree(pid)).collect()
    }

    fn ancestors(procs: &BTreeMap<u32, Proc>, own_pid: u32) -> HashSet<u32> {
        table_of(procs, own_pid).ancestors
    }

    fn sorted(tree: HashSet<u32>) -> Vec<u32> {
        let mut tree: Vec<_> = tree.into_iter().collect();
        tree.sort();
        tree
    }

    #[test]
    fn own_tree_has_session_ancestors_and_descendants_but_not_siblings() {
        // init 1 ─ cron daemon 10 ─ cron's job child 15 (setsid) ─ sh -c 17 ─ us 20 ─ script 30
        // (its own session) ─ 40; 1 ─ 50 (daemonized); 17 ─ 21 (sibling); 10 ─ 16 (another job)
        let procs = BTreeMap::from([
            (1, p(0, 1)),
            (10, p(1, 10)),
            (15, p(10, 15)),
            (16, p(10, 16)),
            (17, p(15, 15)),
            (20, p(17, 15)),
            (21, p(17, 15)),
            (30, p(20, 30)),
            (40, p(30, 30)),
            (50, p(1, 50)),
        ]);
        // Not the cron daemon nor init: they are in other sessions.
        assert_eq!(sorted(own_tree(&procs, 20)), vec![15, 17, 20, 30, 40]);
    }

    #[test]
    fn own_tree_stops_at_the_first_ancestor_outside_our_session() {
        // 1 ─ 5 ─ 6 ─ 7 (our session's leader) ─ us 8. Artificially, 5 reads our session too (a
        // table read while pids were reused): the walk up must not jump the gap at 6.
        let procs = BTreeMap::from([
            (1, p(0, 1)),
            (5, p(1, 7)),
            (6, p(5, 6)),
            (7, p(6, 7)),
            (8, p(7, 7)),
        ]);
        assert_eq!(sorted(own_tree(&procs, 8)), vec![7, 8]);
    }

    #[test]
    fn own_tree_with_sessions_outside_our_namespace() {
        // docker exec: bash 100 ─ cargo 110 ─ us 120, all reading session 0 and bash's parent
        // reading pid 0; the container's init leads its own session. The exec'd chain is ours,
        // init is not.
        let procs = BTreeMap::from([
            (1, p(0, 1)),
            (100, p(0, 0)),
            (110, p(100, 0)),
            (120, p(110, 0)),
            (130, p(120, 0)),
        ]);
        assert_eq!(sorted(own_tree(&procs, 120)), vec![100, 110, 120, 130]);
        // Nothing in the namespace started a session: every ancestor reads 0 and is hidden.
        let procs = BTreeMap::from([(1, p(0, 0)), (100, p(1, 0)), (120, p(100, 0))]);
        assert_eq!(sorted(own_tree(&procs, 120)), vec![1, 100, 120]);
        // We are not in the table (it vanished, or /proc is odd): just ourselves.
        assert_eq!(sorted(own_tree(&procs, 999)), vec![999]);
    }

    #[test]
    fn stop_target_is_the_master_not_its_workers_nor_a_tail_of_its_log() {
        let named = |ppid, cmdline: &str, at| Proc {
            cmdline: cmdline.into(),
            ..started(ppid, 1, Some(UNIX_EPOCH + Duration::from_secs(at)))
        };
        let mut procs = BTreeMap::from([
            (1, named(0, "/sbin/init", 0)),
            (100, named(1, "nginx: master process /usr/sbin/nginx", 20)),
            (101, named(100, "nginx: worker process", 21)),
            (102, named(100, "nginx: worker process", 21)),
            (7, named(1, "cron", 1)),
            // autoheal run from cron, whose job line mentions nginx: hidden.
            (
                8,
                named(7, "sh -c autoheal run -c /etc/nginx-heal.yaml", 30),
            ),
            (9, named(8, "autoheal run -c /etc/nginx-heal.yaml", 30)),
        ]);
        let re = regex::Regex::new("nginx").unwrap();
        let table = |procs: &BTreeMap<u32, Proc>| table_of(procs, 9);
        assert_eq!(table(&procs).stop_target(&re), Ok(100));

        // An operator's tail of the error log, older than the master: liveness reports it, but
        // it is not a worker of the master, so there is no telling which one to stop.
        procs.insert(50, named(1, "tail -f /var/log/nginx/error.log", 10));
        let t = table(&procs);
        assert_eq!(
            t.find_pname(&re),
            Liveness::Alive {
                pid: 50,
                started: Some(UNIX_EPOCH + Duration::from_secs(10))
            }
        );
        assert_eq!(
            t.stop_target(&re),
            Err("pname \"nginx\" matches 2 unrelated processes: \
                 50 (tail -f /var/log/nginx/error.log), \
                 100 (nginx: master process /usr/sbin/nginx); \
                 give the service a `stop:` command or a `pid_file` so that autoheal knows \
                 which process to stop"
                .to_string())
        );

        let none = regex::Regex::new("redis").unwrap();
        assert_eq!(
            t.stop_target(&none),
            Err("no process matches \"redis\"".to_string())
        );
    }

    #[test]
    fn many_stop_candidates_are_listed_briefly() {
        let long = format!("worker {}", "x".repeat(100));
        let mut procs: BTreeMap<u32, Proc> = (10..18)
            .map(|pid| {
                (
                    pid,
                    Proc {
                        cmdline: long.clone(),
                        ..p(1, 1)
                    },
                )
            })
            .collect();
        procs.insert(
            1,
            Proc {
                cmdline: "init".into(),
                ..p(0, 1)
            },
        );
        let t = table_of(&procs, 999);
        let err = t
            .stop_target(&regex::Regex::new("^worker").unwrap())
            .unwrap_err();
        let shown = format!("{}…", &long[..60]);
        assert!(
            err.contains(&format!("10 ({shown}), 11 ({shown})")),
            "{err}"
        );
        assert!(err.contains(&format!("14 ({shown}), and 3 more;")), "{err}");
        assert!(!err.contains("15 ("), "{err}");
        assert!(
            err.starts_with("pname \"^worker\" matches 8 unrelated processes: "),
            "{err}"
        );
    }

    #[test]
    fn ancestors_are_every_one_up_to_init_in_any_session() {
        // init 1 ─ sshd 10 ─ its session 15 (setsid) ─ bash 17 ─ us 20 ─ script 30.
        let procs = BTreeMap::from([
            (1, p(0, 1)),
            (10, p(1, 10)),
            (15, p(10, 15)),
            (17, p(15, 15)),
            (20, p(17, 15)),
            (30, p(20, 30)),
        ]);
        assert_eq!(sorted(ancestors(&procs, 20)), vec![1, 10, 15, 17]);
        assert_eq!(sorted(ancestors(&procs, 999)), Vec::<u32>::new());
    }

    #[test]
    fn the_real_uid_is_the_first_of_the_uid_line() {
        let status = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n";
        assert_eq!(parse_real_uid(status), Some(1000));
        assert_eq!(parse_real_uid("Name:\tx\n"), None);
    }

    /// The uid of `pid` as `status` says it, read by hand.
    fn status_uid(pid: u32) -> Option<u32> {
        parse_real_uid(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }

    /// The pidfd route gives the real uid (not the effective one) that `status` gives, and
    /// `None` for a process that is gone; where the kernel cannot answer, `status` is read.
    #[test]
    fn the_real_uid_through_a_pidfd_is_the_one_status_gives() {
        let me = std::process::id();
        assert_eq!(read_real_uid(Path::new("/proc"), me), status_uid(me));
        if let Ok(uid) = pidfd_real_uid(me) {
            assert_eq!(uid, status_uid(me));
        }
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        assert_eq!(read_real_uid(Path::new("/proc"), pid), None);
        if !rustix::process::geteuid().is_root() {
            return;
        }
        // Real uid 65534, effective uid root: a setuid-root program run by a user looks so.
        let mut child = std::process::Command::new("setpriv")
            .args(["--ruid=65534", "--euid=0", "sleep", "30"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let exec = Instant::now() + Duration::from_secs(10);
        while fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() != b"sleep\x0030\x00"
            && Instant::now() < exec
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (by_status, by_pidfd) = (status_uid(pid), read_real_uid(Path::new("/proc"), pid));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(by_status, Some(65534));
        assert_eq!(by_pidfd, Some(65534));
    }

    #[test]
    fn pname_skips_processes_of_other_accounts_and_says_so() {
        let of = |uid: u32, cmdline: &str, at: u64| {
            let p = Proc {
                cmdline: cmdline.into(),
                ..started(1, 1, Some(UNIX_EPOCH + Duration::from_secs(at)))
            };
            p.uid.set(Some(uid)).unwrap();
            p
        };
        let procs = BTreeMap::from([
            (4242, of(3_999_999_995, "python3 /home/t/app.py", 10)),
            (4300, of(3_999_999_996, "python3 /home/u/app.py", 11)),
        ]);
        let t = table_of(&procs, 999);
        let re = regex::Regex::new("app.py").unwrap();
        let root = Account {
            name: "root".into(),
            uid: Some(0),
        };
        let dead = t.find_pname_as(&re, Some(&root));
        let Liveness::Dead { reason } = dead else {
            panic!("{dead:?}")
        };
        // No such user: "uid N".
        assert_eq!(
            reason,
            "no process of root matches \"app.py\" (pid 4242 matches but runs as uid 3999999995, and \
             1 more of other accounts)"
        );
        let web = Account {
            name: "web".into(),
            uid: Some(3_999_999_996),
        };
        assert!(matches!(
            t.find_pname_as(&re, Some(&web)),
            Liveness::Alive { pid: 4300, .. }
        ));
        assert_eq!(t.find_pname_to_stop_as(&re, Some(&web)).1, None);
        // Without an account, as before: the oldest match.
        assert!(matches!(
            t.find_pname(&re),
            Liveness::Alive { pid: 4242, .. }
        ));
    }

    #[test]
    fn clock_ticks_from_our_auxv() {
        assert!(clock_ticks(Path::new("/proc")) > 0);
        assert_eq!(clock_ticks(Path::new("/nonexistent")), 100);
    }

    #[test]
    fn io_reasons_are_short() {
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&e), "permission denied");
    }
}
