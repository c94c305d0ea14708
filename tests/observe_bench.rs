//! Rerunnable measurement behind the choice of reading /proc directly over sysinfo
//! (figures quoted in `src/observe/procs.rs`). Ignored by default; run with
//! `cargo test --release --test observe_bench -- --ignored --nocapture`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::procs::ProcTable;
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
