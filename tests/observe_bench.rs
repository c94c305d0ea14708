//! Rerunnable measurements of the process table: reading /proc as autoheal does against what a
//! general process library reads for each pid (`stat`, `status` and `cmdline`, made here with
//! std so that no crate serves only this benchmark), and the process-table part of an
//! observation of N `pname` services against the floor of reading every `cmdline` and `stat`
//! (README, "Benchmarks"). Ignored by default; run with
//! `cargo test --release --test observe_bench -- --ignored --nocapture --test-threads 1`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::procs::{Account, Liveness, ProcTable};

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
                .filter(|re| matches!(table.find_pname_as(*re, account), Liveness::Alive { .. }))
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
