//! The state file and the tick lock, both in the state dir (`settings.state_dir`, `--state-dir`).
//!
//! This module owns *storage* only: reading `state.json` (a bad file is reported, set aside and
//! replaced by an empty state, never fatal), writing it atomically so a power cut mid-write can
//! never leave a file that breaks the next tick, and the `flock` that keeps two ticks from acting
//! at once. It holds no policy: when to back off, for how long, when to give up, all live in the
//! pure planner (`engine`), which reads and updates [`State`] as plain data.
//!
//! Times are stored as unix seconds with a fraction (`f64`, millisecond precision is plenty):
//! grace and converge intervals can be shorter than a second, so whole seconds would judge a
//! fresh start up to a second early. Otherwise the planner reasons in seconds (grace, backoff
//! of seconds to minutes), and integers survive a JSON round trip exactly.

use crate::fmt::io_reason;
use crate::time::Unix;
use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// Name of the state file inside the state dir.
pub const STATE_FILE: &str = "state.json";
/// Name of the lock file inside the state dir.
pub const LOCK_FILE: &str = "lock";
/// Name of the lock that writers of the metrics file take (`report::metrics`), inside the
/// state dir: held only while the file is written, never for a whole tick.
pub const METRICS_LOCK_FILE: &str = "metrics.lock";
/// The state file format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Everything autoheal remembers between ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Format version; always [`STATE_VERSION`] for a state this build wrote.
    pub version: u32,
    /// The boot (`/proc/sys/kernel/random/boot_id`) this state was last observed in: a tick
    /// that finds another one knows the host rebooted since (a power cut), and that deaths
    /// since were not failed restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Per service, by its name in conf.yaml.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    /// The alerts sent (`settings.notify`, `settings.on_event`) for conditions still ongoing,
    /// by service: each condition is sent once, and its recovery once, however many ticks it
    /// lasts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Since when the ticks have been waiting on a remote dep (cleared by a tick that ends
    /// waiting on none): the next tick goes on with the re-check schedule where the last one
    /// left it, instead of probing that dep from its first, shortest wait again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_wait_since: Option<Unix>,
    /// The same for the config file itself (`config_invalid`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub config_alerts: std::collections::BTreeSet<String>,
    /// The services an operator paused (`autoheal pause`), by name: observed, never started,
    /// restarted or stopped until the pause ends (`autoheal resume`, or its `until`). Kept
    /// apart from [`ServiceState`] so that `reset` and a reboot, which forget a service's
    /// failures, leave a maintenance window alone; forgotten when the service leaves the file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paused: BTreeMap<String, Pause>,
}

/// One service's pause: who, why, since and until when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pause {
    /// Who paused it: `$SUDO_USER`, else `$USER` or `$LOGNAME`, else the name of the uid.
    pub by: String,
    /// What the operator said (`--reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was paused.
    pub since: Unix,
    /// When it ends by itself; `None`: only `autoheal resume` ends it (`--for 0`).
    #[serde(default)]
    pub until: Option<Unix>,
}

impl Pause {
    /// Whether it still holds at `now` (an expired pause is dropped by the planner).
    pub fn holds_at(&self, now: Unix) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            boot: None,
            services: BTreeMap::new(),
            alerts: BTreeMap::new(),
            remote_wait_since: None,
            config_alerts: Default::default(),
            paused: BTreeMap::new(),
        }
    }
}

/// What autoheal remembers about one service. All times are unix seconds (with a fraction).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ServiceState {
    /// When autoheal last ran this service's script.
    pub last_start: Option<Unix>,
    /// How that run ended, as `exec::ScriptOutcome::describe()` put it.
    pub last_result: Option<String>,
    /// Consecutive restarts that did not bring the service up for good: reset to 0 once it has
    /// stayed alive for `settings.healthy_after`. Backoff and giving up are counted from it.
    pub failures: u32,
    /// No restart before this time.
    pub backoff_until: Option<Unix>,
    /// Restarts stopped until an operator (or the service coming alive) resets it.
    pub gave_up: bool,
    /// First observation alive in the current alive streak.
    pub alive_since: Option<Unix>,
    /// Consecutive failed health observations.
    pub health_failures: u32,
    /// When the last failed health observation was counted (they count at most once per
    /// `defaults::HEALTH_SPACING`).
    pub health_seen_at: Option<Unix>,
    /// Total restarts autoheal ran, for the log and `status`.
    pub starts: u64,
    /// Set when a start's script is launched (to when its `timeout` kills it at the latest),
    /// cleared when it returns: a tick interrupted meanwhile leaves it, and the next tick does
    /// not start the service again before then (the script may still be running).
    pub script_until: Option<Unix>,
    /// The leader of that script's session (`/bin/sh`, which autoheal starts with `setsid`),
    /// recorded as soon as it is launched: the next tick, finding the deadline passed and the
    /// session still alive, ends it as the launching tick would have, before it may start the
    /// service again.
    pub script_session: Option<ProcId>,
    /// The process last seen alive through the service's `pid_file`, by a mark no clock step
    /// changes: the same process is trusted whatever the pid file's time says.
    pub pid_file_process: Option<ProcId>,
    /// Its last start's script returned, and the service has not been seen running since: if
    /// it is dead when its grace ends, that start failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
    /// Since when it has not been alive and well (for `settings.notify_after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_since: Option<Unix>,
}

/// A process, told apart from any other by marks no clock step changes: the boot it belongs to
/// (`/proc/sys/kernel/random/boot_id`), its pid and its start in clock ticks since that boot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcId {
    pub boot: String,
    pub pid: u32,
    pub ticks: u64,
}

/// Errors of the state dir. Each names the path and what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot create state dir {}: {} (run as root or set settings.state_dir / --state-dir)",
        path.display(), io_reason(err)
    )]
    CreateDir { path: PathBuf, err: io::Error },
    #[error(
        "cannot read state file {}: {} (fix its permissions, or remove it to start from an empty state)",
        path.display(), io_reason(err)
    )]
    Read { path: PathBuf, err: io::Error },
    #[error(
        "cannot write state file {}: {} (check free space and permissions of the state dir, or set settings.state_dir / --state-dir)",
        path.display(), io_reason(err)
    )]
    Write { path: PathBuf, err: io::Error },
    #[error(
        "cannot lock {}: {} (check permissions of the state dir, or set settings.state_dir / --state-dir)",
        path.display(), io_reason(err)
    )]
    Lock { path: PathBuf, err: io::Error },
    #[error("refusing state dir {}, as where it sits is not root's alone: {why}", path.display())]
    Untrusted {
        path: PathBuf,
        why: crate::trust::Untrusted,
    },
    #[error("refusing state dir {}: it {why}. Fix: {fix}", path.display())]
    NotOwn {
        path: PathBuf,
        why: String,
        fix: String,
    },
    #[error(
        "refusing {}: it is {kind}, not a regular file; autoheal opens nothing else in its state dir (a FIFO would hang the tick, a device feed it without end). Fix: remove it (autoheal makes a new one)",
        path.display()
    )]
    NotRegular { path: PathBuf, kind: &'static str },
}

/// At most this much of a state file is read (a thousand services take some 500 KiB): a
/// bigger file is not a state this build wrote, and is set aside like a corrupt one.
pub const STATE_MAX: u64 = 16 * 1024 * 1024;

/// Reads `<dir>/state.json`.
///
/// A missing file is an empty state. A file that cannot be used (empty, truncated, not JSON,
/// unknown version, bigger than [`STATE_MAX`]) is also an empty state plus a warning for the
/// log; the bad file is renamed to `state.json.corrupt-<unix time>` so it can be inspected.
/// A file that exists but cannot be read (permissions), or that is not a regular file (a
/// symlink, a FIFO, a device: see [`open_in_dir`]) is an error.
pub fn load(dir: &Path) -> Result<(State, Option<String>), StateError> {
    let path = dir.join(STATE_FILE);
    let bytes = match read_bounded(&path) {
        Ok(bytes) => bytes,
        Err(StateError::Read { err, .. }) if err.kind() == io::ErrorKind::NotFound => {
            return Ok((State::default(), None));
        }
        Err(e) => return Err(e),
    };
    let problem = match parse(&bytes) {
        Ok(state) => return Ok((state, None)),
        Err(problem) => problem,
    };
    let aside_name = format!("{STATE_FILE}.corrupt-{}", crate::time::now() as u64);
    let kept = match fs::rename(&path, dir.join(&aside_name)) {
        Ok(()) => format!("The old file was kept as {aside_name}."),
        Err(err) => format!(
            "It could not be renamed to {aside_name} ({}); it will be overwritten.",
            io_reason(&err)
        ),
    };
    let warning = format!(
        "state file {} is {problem}; starting from an empty state. {kept}",
        path.display()
    );
    Ok((State::default(), Some(warning)))
}

/// Reads the state without changing anything on disk (for `status` and `--dry-run`): a bad file
/// gives an empty state and a warning, and stays where it is.
pub fn peek(dir: &Path) -> (State, Option<String>) {
    let path = dir.join(STATE_FILE);
    match read_bounded(&path) {
        Ok(bytes) => match parse(&bytes) {
            Ok(state) => (state, None),
            Err(problem) => (
                State::default(),
                Some(format!(
                    "state file {} is {problem}; ignoring it",
                    path.display()
                )),
            ),
        },
        Err(StateError::Read { err, .. }) if err.kind() == io::ErrorKind::NotFound => {
            (State::default(), None)
        }
        Err(e) => (State::default(), Some(format!("{e}; ignoring it"))),
    }
}

/// The first [`STATE_MAX`] bytes of the state file, and one more if there is more.
fn read_bounded(path: &Path) -> Result<Vec<u8>, StateError> {
    let file = open_in_dir(path, OpenOptions::new().read(true), read_err)?;
    let mut bytes = Vec::new();
    file.take(STATE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| read_err(path.to_path_buf(), err))?;
    Ok(bytes)
}

/// Parses a state file; the error completes "state file X is ...".
fn parse(bytes: &[u8]) -> Result<State, String> {
    if bytes.len() as u64 > STATE_MAX {
        return Err(format!(
            "bigger than {} MiB, so not a state autoheal wrote",
            STATE_MAX >> 20
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("empty".to_string());
    }
    let state: State = serde_json::from_slice(bytes).map_err(|e| format!("corrupt ({e})"))?;
    if state.version != STATE_VERSION {
        return Err(format!(
            "of unknown version {} (this autoheal reads version {STATE_VERSION})",
            state.version
        ));
    }
    Ok(state)
}

/// Makes sure `dir` is a directory of autoheal's own: created (mode 0700; missing parents
/// 0755) if it does not exist; refused if it is a symlink, not a directory, owned by another
/// user than the one autoheal runs as (root), or writable by group or others. Anyone else who
/// could write in it could plant a symlink there under a name autoheal then writes through
/// (`lock`, `autoheal.log`), or a FIFO that hangs the tick.
pub fn own_dir(dir: &Path) -> Result<(), StateError> {
    judge_dir(dir, true)
}

/// [`own_dir`]'s judgement of an existing state dir, creating nothing: for `status`, which
/// only reads it (a missing dir is fine: no history).
pub fn judge_own_dir(dir: &Path) -> Result<(), StateError> {
    match fs::symlink_metadata(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => judge_dir(dir, false),
    }
}

fn judge_dir(dir: &Path, create: bool) -> Result<(), StateError> {
    let create_err = |err| StateError::CreateDir {
        path: dir.to_path_buf(),
        err,
    };
    // Where it sits must be root's too: whoever could rename a directory on its path could
    // swap the whole state dir for one of theirs between two ticks.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        match crate::trust::check_if_root(parent) {
            // The parent is a directory on the way, not a file to read: a sticky one of
            // root's (`/tmp`) is fine to sit in, as the dir itself is then judged below.
            Err(crate::trust::Untrusted::Unsafe { fault, .. })
                if fault.itself && !fault.foreign && fault.mode & 0o1000 != 0 => {}
            Err(why) if !why.is_missing() => {
                return Err(StateError::Untrusted {
                    path: dir.to_path_buf(),
                    why,
                });
            }
            _ => {}
        }
    }
    if let (true, Err(err)) = (create, fs::symlink_metadata(dir)) {
        if err.kind() != io::ErrorKind::NotFound {
            return Err(create_err(err));
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(create_err)?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            // Made meanwhile by someone else: judged below like any existing dir.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(create_err(err)),
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(create_err)?;
    let euid = rustix::process::geteuid().as_raw();
    let refuse = |why: String, fix: String| {
        Err(StateError::NotOwn {
            path: dir.to_path_buf(),
            why,
            fix,
        })
    };
    let shown = dir.display();
    if meta.file_type().is_symlink() {
        return refuse(
            "is a symlink; autoheal never follows one to its state".into(),
            format!(
                "point settings.state_dir (or --state-dir) at the real directory, or remove the link {shown}"
            ),
        );
    }
    if !meta.is_dir() {
        return refuse(
            format!("is {}, not a directory", kind_of(meta.file_type())),
            format!("remove {shown} (autoheal makes the directory, mode 0700)"),
        );
    }
    if meta.uid() != euid {
        return refuse(
            format!(
                "is owned by {}, not by {} that autoheal runs as: its owner could plant links \
                 in it that autoheal would write through",
                user_desc(meta.uid()),
                user_desc(euid)
            ),
            format!(
                "remove it (rm -r {shown}; autoheal makes it anew, mode 0700), or set \
                 settings.state_dir (or --state-dir) to a directory of root's own"
            ),
        );
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(
            format!(
                "is writable by {} (mode {:04o})",
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777
            ),
            format!("chmod 0700 {shown}"),
        );
    }
    Ok(())
}

/// Creates the state dir if missing and checks that it is autoheal's own ([`own_dir`]).
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    own_dir(dir)
}

/// Opens a file in the state dir without following a symlink and without ever blocking (a
/// FIFO opens at once with `O_NONBLOCK`), then refuses anything but a regular file: a FIFO
/// would hang the tick while it holds the lock, a device such as `/dev/zero` would feed it
/// without end. Close-on-exec, as every file Rust opens. `io_err` tells what an I/O error
/// means for this file (a read of the state, a write of a log...).
pub fn open_in_dir(
    path: &Path,
    how: &mut OpenOptions,
    io_err: impl FnOnce(PathBuf, io::Error) -> StateError,
) -> Result<File, StateError> {
    let not_regular = |kind| StateError::NotRegular {
        path: path.to_path_buf(),
        kind,
    };
    let file = match how
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        // O_NOFOLLOW fails with ELOOP on a symlink: say so, not "too many levels of links".
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_regular("a symlink"));
        }
        Err(err) if err.raw_os_error() == Some(libc::EISDIR) => {
            return Err(not_regular("a directory"));
        }
        Err(err) => return Err(io_err(path.to_path_buf(), err)),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(meta) => Err(not_regular(kind_of(meta.file_type()))),
        Err(err) => Err(io_err(path.to_path_buf(), err)),
    }
}

fn read_err(path: PathBuf, err: io::Error) -> StateError {
    StateError::Read { path, err }
}

fn write_err(path: PathBuf, err: io::Error) -> StateError {
    StateError::Write { path, err }
}

/// Opens a log in the state dir for appending (created 0640 if missing, made 0640 if it was
/// more open: logs hold the services' output and the reasons of their failures). Refuses what
/// [`open_in_dir`] refuses.
pub fn open_log(path: &Path) -> Result<File, StateError> {
    let file = open_in_dir(
        path,
        OpenOptions::new().append(true).create(true).mode(0o640),
        write_err,
    )?;
    if let Ok(meta) = file.metadata()
        && meta.mode() & 0o137 != 0
    {
        let _ = file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o640));
    }
    Ok(file)
}

/// "a FIFO", "a character device"...: what stands where a regular file should.
fn kind_of(t: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a regular file"
    }
}

/// `uid 1001 (admin)`, or `root`.
fn user_desc(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    match crate::users::name_of(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// Writes `<dir>/state.json` atomically: a temp file in the same dir, fsync, rename over the old
/// file, fsync the dir. At any instant the file on disk is the old state or the new one, whole.
/// Creates the dir (mode 0700) if missing.
pub fn save(dir: &Path, state: &State) -> Result<(), StateError> {
    create_dir(dir)?;
    let path = dir.join(STATE_FILE);
    let mut json = serde_json::to_vec_pretty(state)
        .map_err(|e| write_err(path.clone(), io::Error::other(e)))?;
    json.push(b'\n');
    write_atomic(dir, &path, &json)
}

/// Replaces `path` (in the state dir `dir`) with `bytes` atomically: a temp file beside it,
/// fsync, rename over it, fsync of the dir. One fixed temp name per file: only the holder of
/// the tick lock writes them. A leftover from a tick that died mid-write is removed (unlink
/// never follows a link), then the temp file is made anew, exclusively, 0600.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp"));
    let failed = |err| write_err(path.to_path_buf(), err);
    match fs::remove_file(&tmp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(failed(err)),
        _ => {}
    }
    let result = open_in_dir(
        &tmp,
        OpenOptions::new().write(true).create_new(true).mode(0o600),
        |_, err| failed(err),
    )
    .and_then(|mut file| {
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, path))
            .and_then(|()| File::open(dir)?.sync_all())
            .map_err(failed)
    });
    result.inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Name of the last version of the config file that loaded, kept in the state dir.
pub const KEPT_CONFIG: &str = "last-good.yaml";
/// Beside it, the absolute path of the file it is a version of: several configs may share a
/// state dir (the default one), and a copy heals only the file it was kept from.
pub const KEPT_CONFIG_PATH: &str = "last-good.path";

/// Keeps `source` (the text of a config file that loaded) as `<dir>/last-good.yaml`, for the
/// ticks that find a later version of the file broken: written atomically (as the state) and
/// only when it differs from the copy there, so that the copy's mtime says since when this
/// version is the one kept. Whether it was written.
pub fn keep_config(dir: &Path, source: &str, config: &Path) -> Result<bool, StateError> {
    create_dir(dir)?;
    let path = dir.join(KEPT_CONFIG);
    let of = config.display().to_string();
    let same_file = read_kept(&dir.join(KEPT_CONFIG_PATH))?.as_deref() == Some(of.as_str());
    match read_kept(&path) {
        Ok(Some(old)) if old == source && same_file => return Ok(false),
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    // The path first: a copy is never taken for another file's, even half-written.
    write_atomic(dir, &dir.join(KEPT_CONFIG_PATH), of.as_bytes())?;
    write_atomic(dir, &path, source.as_bytes())?;
    Ok(true)
}

/// A kept config: its text and since when it is kept (unix seconds), or the path of the other
/// file it was kept from.
pub type Kept = Result<(String, Unix), String>;

/// The kept config of the file `config` (see [`keep_config`]) and when it was kept (unix
/// seconds), if there is one; `Err(path)` of the other file when the copy in `dir` is
/// another's.
pub fn kept_config(dir: &Path, config: &Path) -> Result<Option<Kept>, StateError> {
    let path = dir.join(KEPT_CONFIG);
    let Some(text) = read_kept(&path)? else {
        return Ok(None);
    };
    let of = read_kept(&dir.join(KEPT_CONFIG_PATH))?.unwrap_or_default();
    if of != config.display().to_string() {
        return Ok(Some(Err(of)));
    }
    let kept = fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .map_or(0.0, crate::time::of);
    Ok(Some(Ok((text, kept))))
}

fn read_kept(path: &Path) -> Result<Option<String>, StateError> {
    let file = match open_in_dir(path, OpenOptions::new().read(true), read_err) {
        Ok(f) => f,
        Err(StateError::Read { err, .. }) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(STATE_MAX)
        .read_to_end(&mut bytes)
        .map_err(|err| read_err(path.to_path_buf(), err))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The tick lock, held until dropped (or until the process dies: the kernel releases a `flock`
/// with its last file descriptor, so a crashed tick never leaves a stale lock behind).
///
/// The descriptor is close-on-exec, so scripts and the daemons they start never hold it.
#[derive(Debug)]
pub struct TickLock {
    _file: File,
    path: PathBuf,
}

impl TickLock {
    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Result of [`try_lock`].
#[derive(Debug)]
pub enum LockOutcome {
    /// This process now holds the lock.
    Acquired(TickLock),
    /// Another tick holds it; `by` is its pid as written in the lock file, if readable.
    Held { by: Option<u32> },
}

/// Takes the tick lock: `flock(LOCK_EX|LOCK_NB)` on `<dir>/lock`, never waiting. The holder
/// writes its pid into the file for the operator. Creates the dir if missing.
pub fn try_lock(dir: &Path) -> Result<LockOutcome, StateError> {
    lock_within(dir, LOCK_FILE, std::time::Duration::ZERO)
}

/// Takes the metrics lock (`<dir>/metrics.lock`), waiting up to `limit` for a writer that
/// holds it: writers hold it for one write of the file, milliseconds.
pub fn lock_metrics(dir: &Path, limit: std::time::Duration) -> Result<LockOutcome, StateError> {
    lock_within(dir, METRICS_LOCK_FILE, limit)
}

/// `flock(LOCK_EX|LOCK_NB)` on `<dir>/<name>`, tried again every few milliseconds up to
/// `limit` (zero: once).
fn lock_within(
    dir: &Path,
    name: &str,
    limit: std::time::Duration,
) -> Result<LockOutcome, StateError> {
    create_dir(dir)?;
    let path = dir.join(name);
    let lock_err = |err: io::Error| StateError::Lock {
        path: path.clone(),
        err,
    };
    // No truncate on open: the file holds the current holder's pid until we own the lock.
    let mut file = open_in_dir(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600),
        |_, err| lock_err(err),
    )?;
    let end = crate::fmt::deadline(limit);
    loop {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < end => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let by = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Ok(LockOutcome::Held { by });
            }
            Err(errno) => return Err(lock_err(errno.into())),
        }
    }
    // The pid is a courtesy for the operator; failing to write it must not fail the tick.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(LockOutcome::Acquired(TickLock { _file: file, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reason_is_lowercase_without_errno() {
        let err = io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&err), "permission denied");
    }

    #[test]
    fn unknown_version_is_reported() {
        let err = parse(br#"{"version": 7, "services": {}}"#).unwrap_err();
        assert_eq!(err, "of unknown version 7 (this autoheal reads version 1)");
    }

    #[test]
    fn missing_service_fields_default() {
        let s = parse(br#"{"version":1,"services":{"web":{"failures":2}}}"#).unwrap();
        assert_eq!(s.services["web"].failures, 2);
        assert_eq!(s.services["web"].last_start, None);
    }
}
