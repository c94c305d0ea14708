//! The state file and the tick lock, on real files and real processes.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::state::{self, LockOutcome, ProcId, STATE_FILE, ServiceState, State};

mod support;

fn sample() -> State {
    let mut s = State::default();
    s.services.insert(
        "web".into(),
        ServiceState {
            last_start: Some(1_700_000_000.25),
            last_result: Some("exit 0 in 0.2s".into()),
            failures: 2,
            backoff_until: Some(1_700_000_120.5),
            gave_up: false,
            alive_since: None,
            health_failures: 1,
            health_seen_at: Some(1_700_000_100.0),
            starts: 7,
            script_until: Some(1_700_000_060.25),
            script_session: Some(ProcId {
                boot: "5f1f6b7e-0d3b-4c59-9a0e-0c1d2e3f4a5b".into(),
                pid: 4300,
                ticks: 123_999,
            }),
            pid_file_process: Some(ProcId {
                boot: "5f1f6b7e-0d3b-4c59-9a0e-0c1d2e3f4a5b".into(),
                pid: 4242,
                ticks: 123_456,
            }),
            unconfirmed: true,
            down_since: Some(1_700_000_001.5),
        },
    );
    s.alerts.insert(
        "web".into(),
        ["backed_off".to_string()].into_iter().collect(),
    );
    s.services.insert("db".into(), ServiceState::default());
    s
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn save_then_load_roundtrips() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample();
    state::save(tmp.path(), &s).unwrap();
    let (loaded, warning) = state::load(tmp.path()).unwrap();
    assert_eq!(warning, None);
    assert_eq!(loaded, s);
    assert_eq!(loaded.version, 1);
}

#[test]
fn missing_file_is_empty_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (loaded, warning) = state::load(tmp.path()).unwrap();
    assert_eq!(warning, None);
    assert_eq!(loaded, State::default());
}

#[test]
fn missing_dir_is_created_by_save() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/state");
    state::save(&dir, &sample()).unwrap();
    assert!(dir.join(STATE_FILE).is_file());
    let (loaded, _) = state::load(&dir).unwrap();
    assert_eq!(loaded, sample());
}

#[test]
fn save_leaves_no_temp_file_and_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    state::save(tmp.path(), &sample()).unwrap();
    state::save(tmp.path(), &State::default()).unwrap();
    assert_eq!(names(tmp.path()), vec![STATE_FILE.to_string()]);
    assert_eq!(state::load(tmp.path()).unwrap().0, State::default());
}

/// Writes `bytes` as the state file, loads, and checks the fallback: empty state, a warning
/// naming the file, and the bad file kept aside byte for byte.
fn assert_recovers(bytes: &[u8], expect_in_warning: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(STATE_FILE);
    fs::write(&path, bytes).unwrap();
    let (loaded, warning) = state::load(tmp.path()).unwrap();
    assert_eq!(loaded, State::default());
    let warning = warning.expect("a warning");
    assert!(
        warning.contains(&path.display().to_string()),
        "warning names the file: {warning}"
    );
    assert!(
        warning.contains(expect_in_warning),
        "warning says {expect_in_warning:?}: {warning}"
    );
    assert!(
        warning.contains("starting from an empty state"),
        "{warning}"
    );
    assert!(!path.exists(), "bad file was moved aside");
    let aside: Vec<String> = names(tmp.path())
        .into_iter()
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", names(tmp.path()));
    assert!(warning.contains(&aside[0]), "warning names the kept file");
    assert_eq!(fs::read(tmp.path().join(&aside[0])).unwrap(), bytes);
    // The next save works normally.
    state::save(tmp.path(), &sample()).unwrap();
    assert_eq!(state::load(tmp.path()).unwrap(), (sample(), None));
}

#[test]
fn truncated_file_is_reported_and_kept_aside() {
    let full = serde_json::to_vec_pretty(&sample()).unwrap();
    assert_recovers(&full[..full.len() / 2], "is corrupt (EOF while parsing");
}

#[test]
fn garbage_is_reported_and_kept_aside() {
    assert_recovers(b"\x00\xff\xfe garbage \x01", "is corrupt (");
}

#[test]
fn empty_file_is_reported_and_kept_aside() {
    assert_recovers(b"", "is empty");
}

#[test]
fn a_file_past_the_bound_is_reported_and_kept_aside() {
    let mut big = b"{\"version\": 1, \"services\": {}}".to_vec();
    big.resize(state::STATE_MAX as usize + 1, b' ');
    assert_recovers(&big, "bigger than 16 MiB, so not a state autoheal wrote");
}

#[test]
fn unknown_version_is_reported_and_kept_aside() {
    assert_recovers(
        br#"{"version": 2, "services": {}}"#,
        "unknown version 2 (this autoheal reads version 1)",
    );
}

#[test]
fn unreadable_state_path_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join(STATE_FILE)).unwrap();
    let err = state::load(tmp.path()).unwrap_err().to_string();
    assert!(err.starts_with("refusing "), "{err}");
    assert!(
        err.contains(&format!(
            "{STATE_FILE}: it is a directory, not a regular file"
        )),
        "{err}"
    );
}

#[test]
fn uncreatable_state_dir_is_an_error_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    let err = state::save(&file.join("state"), &State::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot create state dir "), "{err}");
    assert!(err.contains("settings.state_dir / --state-dir"), "{err}");
}

#[test]
fn lock_is_exclusive_and_released_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fresh");
    let first = match state::try_lock(&dir).unwrap() {
        LockOutcome::Acquired(l) => l,
        LockOutcome::Held { by } => panic!("held by {by:?}"),
    };
    assert_eq!(first.path(), dir.join("lock"));
    let me = std::process::id();
    assert_eq!(
        fs::read_to_string(dir.join("lock")).unwrap().trim(),
        me.to_string()
    );
    // A second open file description conflicts, even in the same process.
    match state::try_lock(&dir).unwrap() {
        LockOutcome::Held { by } => assert_eq!(by, Some(me)),
        LockOutcome::Acquired(_) => panic!("lock taken twice"),
    }
    drop(first);
    assert!(matches!(
        acquire_within(&dir, Duration::from_secs(1)),
        LockOutcome::Acquired(_)
    ));
}

#[test]
fn lock_is_not_inherited_by_children() {
    // A script started during a tick (and any daemon it leaves behind) must not keep the lock.
    let tmp = tempfile::tempdir().unwrap();
    let lock = match state::try_lock(tmp.path()).unwrap() {
        LockOutcome::Acquired(l) => l,
        LockOutcome::Held { by } => panic!("held by {by:?}"),
    };
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    drop(lock);
    let outcome = acquire_within(tmp.path(), Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    assert!(matches!(outcome, LockOutcome::Acquired(_)));
}

/// Other tests of this binary spawn processes concurrently; a child forked by another thread
/// holds a copy of every descriptor for the instant between fork and exec, so a lock released
/// here may look held for that instant. Retry briefly; a real holder would hold it for seconds.
fn acquire_within(dir: &Path, limit: Duration) -> LockOutcome {
    let deadline = Instant::now() + limit;
    loop {
        let outcome = state::try_lock(dir).unwrap();
        if matches!(outcome, LockOutcome::Acquired(_)) || Instant::now() > deadline {
            return outcome;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn lock_held_by_another_process() {
    let Some(flock) = support::require_server("flock") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lock_path = tmp.path().join("lock");
    // One process (sh, then exec'd sleep) takes the lock on fd 9, writes its pid as a holder
    // would, and keeps holding it; killing it releases the lock.
    let script = format!(
        "exec 9<>'{p}'; {flock} 9; echo $$ > '{p}'; exec sleep 5",
        p = lock_path.display(),
        flock = flock.display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child holds it (bounded).
    let deadline = Instant::now() + Duration::from_secs(3);
    let outcome = loop {
        let outcome = state::try_lock(tmp.path()).unwrap();
        match outcome {
            LockOutcome::Held { by: Some(pid) } if pid == child.id() => break outcome,
            _ if Instant::now() > deadline => break outcome,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let child_pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    match outcome {
        LockOutcome::Held { by } => assert_eq!(by, Some(child_pid)),
        LockOutcome::Acquired(_) => panic!("lock not seen as held"),
    }
    // Dead holder: the kernel released it.
    assert!(matches!(
        acquire_within(tmp.path(), Duration::from_secs(1)),
        LockOutcome::Acquired(_)
    ));
}
