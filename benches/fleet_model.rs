//! The probe load a fleet puts on one shared dependency, from the tick's own re-check schedule
//! (`autoheal::tick::Schedule`, the very function a tick uses, not a copy of its numbers).
//!
//! `cargo bench --bench fleet_model`
//!
//! N hosts (10 to 10,000) lose power together and wait on one remote dependency (a database)
//! that comes back `T` seconds after they boot. Each host boots within the first 10 s, and its
//! cron starts a tick at boot (`@reboot`) and every minute after; each tick waits up to
//! `converge` (50 s by default) looking at the dependency on the schedule, then ends; the next
//! minute's tick goes on with the schedule where it was (`Schedule::resumed`). A look at a dependency that is down is one
//! connection attempt, answered at once (refused). Printed per `recheck_max`: the peak and the
//! mean connection attempts per second at the dependency while it is down, and the median and
//! 99th percentile of the time from its return to each host's noticing it.

use autoheal::tick::Schedule;
use std::time::Duration;

/// xorshift64*: deterministic, and enough to spread hosts as a real fleet's boots are.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

const BOOT_SPREAD: f64 = 10.0;
const CRON: f64 = 60.0;
const CONVERGE: f64 = 50.0;

/// One host: the times of its looks at the dependency while it is down, and when it noticed
/// the dependency back (its first look at or after `back`).
fn host(rng: &mut Rng, max: Duration, back: f64) -> (Vec<f64>, f64) {
    let boot = rng.unit() * BOOT_SPREAD;
    let mut looks = Vec::new();
    let mut tick = boot;
    loop {
        // Each tick goes on where the one before left off (`State::remote_wait_since`).
        let mut schedule = Schedule::resumed(max, Duration::from_secs_f64(tick - boot));
        let mut t = tick;
        while t < tick + CONVERGE {
            if t >= back {
                return (looks, t);
            }
            looks.push(t);
            t += schedule.wait(rng.unit()).as_secs_f64();
        }
        tick += CRON;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // Within every host's second tick (60 to 110 s after its boot), its schedule long at its cap.
    let back = 100.0;
    println!(
        "The dependency comes back {back:.0} s after the hosts boot (within {BOOT_SPREAD:.0} s \
         of each other); cron every {CRON:.0} s, converge {CONVERGE:.0} s.\n"
    );
    println!(
        "{:>7}  {:>11}  {:>16}  {:>16}  {:>15}  {:>15}",
        "hosts", "recheck_max", "peak attempts/s", "mean attempts/s", "notice median", "notice p99"
    );
    for hosts in [10usize, 100, 1_000, 10_000] {
        for max in [2u64, 5, 10, 30] {
            let max = Duration::from_secs(max);
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ hosts as u64);
            let mut per_second = vec![0u64; back as usize + 1];
            let mut delays = Vec::with_capacity(hosts);
            for _ in 0..hosts {
                let (looks, noticed) = host(&mut rng, max, back);
                for t in looks {
                    per_second[t as usize] += 1;
                }
                delays.push(noticed - back);
            }
            delays.sort_by(f64::total_cmp);
            // While every host is up and waiting: from the last boot to the return.
            let waiting = &per_second[BOOT_SPREAD as usize..back as usize];
            let peak = per_second.iter().max().copied().unwrap_or(0);
            let mean = waiting.iter().sum::<u64>() as f64 / waiting.len() as f64;
            println!(
                "{hosts:>7}  {:>10}s  {peak:>16}  {mean:>16.1}  {:>13.2} s  {:>13.2} s",
                max.as_secs(),
                percentile(&delays, 0.5),
                percentile(&delays, 0.99),
            );
        }
    }
}
