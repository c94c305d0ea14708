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

use crate::report::io_reason;
use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

/// Name of the state file inside the state dir.
pub const STATE_FILE: &str = "state.json";
/// Name of the lock file inside the state dir.
pub const LOCK_FILE: &str = "lock";
/// The state file format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Everything autoheal remembers between ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Format version; always [`STATE_VERSION`] for a state this build wrote.
    pub version: u32,
    /// Per service, by its name in conf.yaml.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            services: BTreeMap::new(),
        }
    }
}

/// What autoheal remembers about one service. All times are unix seconds (with a fraction).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ServiceState {
    /// When autoheal last ran this service's script.
    pub last_start: Option<f64>,
    /// How that run ended, as `exec::ScriptOutcome::describe()` put it.
    pub last_result: Option<String>,
    /// Consecutive restarts that did not bring the service up for good: reset to 0 once it has
    /// stayed alive for `settings.healthy_after`. Backoff and giving up are counted from it.
    pub failures: u32,
    /// No restart before this time.
    pub backoff_until: Option<f64>,
    /// Restarts stopped until an operator (or the service coming alive) resets it.
    pub gave_up: bool,
    /// First observation alive in the current alive streak.
    pub alive_since: Option<f64>,
    /// Consecutive failed health observations.
    pub health_failures: u32,
    /// When the last failed health observation was counted (they count at most once per
    /// `defaults::HEALTH_SPACING`).
    pub health_seen_at: Option<f64>,
    /// Total restarts autoheal ran, for the log and `status`.
    pub starts: u64,
    /// Set when a start's script is launched (to when its `timeout` kills it at the latest),
    /// cleared when it returns: a tick interrupted meanwhile leaves it, and the next tick does
    /// not start the service again before then (the script may still be running).
    pub script_until: Option<f64>,
    /// The process last seen alive through the service's `pid_file`, by a mark no clock step
    /// changes: the same process is trusted whatever the pid file's time says.
    pub pid_file_process: Option<ProcId>,
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
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads `<dir>/state.json`.
///
/// A missing file is an empty state. A file that cannot be used (empty, truncated, not JSON,
/// unknown version) is also an empty state plus a warning for the log; the bad file is renamed
/// to `state.json.corrupt-<unix time>` so it can be inspected. Only a file that exists but cannot
/// be read (permissions, a directory in its place) is an error.
pub fn load(dir: &Path) -> Result<(State, Option<String>), StateError> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((State::default(), None)),
        Err(err) => return Err(StateError::Read { path, err }),
    };
    let problem = match parse(&bytes) {
        Ok(state) => return Ok((state, None)),
        Err(problem) => problem,
    };
    let aside_name = format!("{STATE_FILE}.corrupt-{}", unix_now());
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
    match fs::read(&path) {
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
        Err(err) if err.kind() == io::ErrorKind::NotFound => (State::default(), None),
        Err(err) => (
            State::default(),
            Some(format!(
                "cannot read state file {}: {}",
                path.display(),
                io_reason(&err)
            )),
        ),
    }
}

/// Parses a state file; the error completes "state file X is ...".
fn parse(bytes: &[u8]) -> Result<State, String> {
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

/// Creates the state dir (and its parents) if missing, mode 0755.
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|err| StateError::CreateDir {
            path: dir.to_path_buf(),
            err,
        })
}

/// Writes `<dir>/state.json` atomically: a temp file in the same dir, fsync, rename over the old
/// file, fsync the dir. At any instant the file on disk is the old state or the new one, whole.
/// Creates the dir (mode 0755) if missing.
pub fn save(dir: &Path, state: &State) -> Result<(), StateError> {
    create_dir(dir)?;
    let path = dir.join(STATE_FILE);
    // One fixed name: only the holder of the tick lock writes the state.
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let result = write_synced(&tmp, state)
        .and_then(|()| fs::rename(&tmp, &path))
        .and_then(|()| File::open(dir)?.sync_all());
    result.map_err(|err| {
        let _ = fs::remove_file(&tmp);
        StateError::Write { path, err }
    })
}

fn write_synced(tmp: &Path, state: &State) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    json.push(b'\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(tmp)?;
    file.write_all(&json)?;
    file.sync_all()
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
    create_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let lock_err = |err: io::Error| StateError::Lock {
        path: path.clone(),
        err,
    };
    // No truncate on open: the file holds the current holder's pid until we own the lock.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(lock_err)?;
    loop {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
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
