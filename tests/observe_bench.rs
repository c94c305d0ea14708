//! Rerunnable measurements of the process table: reading /proc directly against sysinfo
//! (figures quoted in `src/procs/mod.rs`), and the process-table part of an observation of N
//! `pname` services against the floor of reading every `cmdline` and `stat` (README,
//! "Benchmarks"). Ignored by default; run with
//! `cargo test --release --test observe_bench -- --ignored --nocapture --test-threads 1`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::procs::{Account, Liveness, ProcTable};
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System, UpdateKind};

const TARGET_PROCS: usize = 300;
const ROUNDS: u32 = 50;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
fn snapshot_proc_vs_sysinfo() {
    // Top the machine up to about TARGET_PROCS processes with children of our own.
    let have = ProcTable::snapshot().len();
    let mut kids: Vec<Child> = (have..TARGET_PROCS)
        .map(|_| {
            Command::new("sleep")
                .arg("60")
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn sleep")
        })
        .collect();
    let n = ProcTable::snapshot().len();

    let proc_times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(ProcTable::snapshot());
            t.elapsed()
        })
        .collect();

    // A fresh System each round, as one observation per tick would have.
    let kind = ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always);
    let sysinfo_times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let mut sys = System::new_with_specifics(RefreshKind::nothing()).expect("sysinfo");
            sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
            let started: u64 = sys.processes().values().map(|p| p.start_time()).sum();
            std::hint::black_box(started);
            t.elapsed()
        })
        .collect();

    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    println!(
        "{n} processes, median of {ROUNDS}: /proc {:?}, sysinfo (cmd + start time) {:?}",
        median(proc_times),
        median(sysinfo_times)
    );
}

/// The floor: every `cmdline` and `stat` of the table read whole, in this process.
fn read_everything() -> usize {
    let mut bytes = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok())
        {
            for file in ["cmdline", "stat"] {
                bytes += std::fs::read(entry.path().join(file)).map_or(0, |b| b.len());
            }
        }
    }
    bytes
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
fn observation_of_n_pnames_against_the_floor() {
    let tag = format!("{}", std::process::id() % 100_000);
    let root = Account {
        name: "root".into(),
        uid: Some(rustix::process::getuid().as_raw()),
    };
    let mut pids: Vec<u32> = Vec::new();
    for n in [100usize, 500, 2000] {
        // Daemons (out of our tree, as services are), topped up to n, with unique lines.
        let script: String = (pids.len()..n)
            .map(|i| format!("sleep 3600.{tag}{i:04} </dev/null >/dev/null 2>&1 & echo $!\n"))
            .collect();
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh");
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
        let patterns: Vec<regex::Regex> = (0..n)
            .map(|i| regex::Regex::new(&format!("^sleep 3600\\.{tag}{i:04}$")).unwrap())
            .collect();
        let procs = ProcTable::snapshot().len();
        // One observation: the snapshot for the patterns, then each service's pname among the
        // processes of root (its `status` read), or of anyone (no `status`).
        let observe = |account: Option<&Account>| {
            let t = Instant::now();
            let table = ProcTable::snapshot_for(&patterns);
            let alive = patterns
                .iter()
                .filter(|re| matches!(table.find_pname_as(re, account), Liveness::Alive { .. }))
                .count();
            assert_eq!(alive, n, "every daemon found");
            t.elapsed()
        };
        // The first builds the set of patterns, as the first observation of a tick does.
        let first = observe(Some(&root));
        let (mut ours, mut no_uid, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS / 2 {
            ours.push(observe(Some(&root)));
            no_uid.push(observe(None));
            let t = Instant::now();
            std::hint::black_box(read_everything());
            floor.push(t.elapsed());
        }
        let (ours, no_uid, floor) = (median(ours), median(no_uid), median(floor));
        let x = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
        println!(
            "{n} pnames, {procs} processes, median of {}: reading every cmdline and stat {floor:?}; \
             snapshot_for + find_pname_as of each {ours:?} ({:.2}x; the first, building the set, \
             {first:?}, {:.2}x), without the uid rule (no status read) {no_uid:?} ({:.2}x)",
            ROUNDS / 2,
            x(ours),
            x(first),
            x(no_uid)
        );
    }
    for pid in pids {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}
