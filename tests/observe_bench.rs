//! Rerunnable measurement behind the choice of reading /proc directly, two small reads per pid
//! (figures quoted in `src/procs/mod.rs`, which were measured against sysinfo), set against what
//! a general process library reads for each pid (`stat`, `status` and `cmdline`), made here with
//! std so that no crate serves only this benchmark. Ignored by default; run with
//! `cargo test --release --test observe_bench -- --ignored --nocapture`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::procs::ProcTable;

const TARGET_PROCS: usize = 300;
const ROUNDS: u32 = 50;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One pass over /proc as a general library makes it: every field of every process, from
/// `stat`, `status` and `cmdline`; returns a checksum so that nothing is optimised away.
fn general_snapshot() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut sum = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let base = entry.path();
        for file in ["stat", "status", "cmdline"] {
            sum += std::fs::read(base.join(file)).map_or(0, |b| b.len());
        }
    }
    sum
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
fn snapshot_proc_vs_general_reads() {
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

    let time = |f: &dyn Fn()| -> Duration {
        median(
            (0..ROUNDS)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let ours = time(&|| {
        std::hint::black_box(ProcTable::snapshot());
    });
    let general = time(&|| {
        std::hint::black_box(general_snapshot());
    });

    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    println!(
        "{n} processes, median of {ROUNDS}: /proc as autoheal reads it {ours:?}, \
         stat + status + cmdline per pid {general:?}"
    );
}
