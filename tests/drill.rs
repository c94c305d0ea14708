//! The power-cut drill (issue 5): three hosts on loopback, nine fixture services of depth 3,
//! every process killed with its pid file left behind, then each host's own unsynchronized
//! cron of `autoheal run`. Each variant is its own test; they run in parallel.

#[path = "support/drill.rs"]
mod drill;
mod support;

use drill::*;

fn check(d: &Drill, o: &Outcome, what: &str) {
    println!("{}", o.summary(what));
    let problems = d.problems(o);
    assert!(
        problems.is_empty(),
        "{what}:\n{}\n{}",
        problems.join("\n"),
        d.dump(o)
    );
}

/// All healthy within the physical limit (the critical path of warm-ups) plus `slack` seconds
/// of the last host's first tick.
fn check_speed(d: &Drill, o: &Outcome, slack: f64) {
    let (cp, path) = critical_path(&d.graph);
    let t = o.all_healthy.unwrap();
    println!(
        "critical path {cp:.1}s ({}); all healthy {:.1}s after the last host's first tick",
        path.join(" → "),
        t - o.last_first_tick
    );
    assert!(
        t - o.last_first_tick <= cp + slack,
        "all healthy at {t:.1}s, last first tick {:.1}s, critical path {cp:.1}s\n{}",
        o.last_first_tick,
        d.dump(o)
    );
}

#[test]
fn drill_graph_has_depth_3_and_crosses_hosts() {
    let g = graph();
    assert_eq!(g.iter().map(|s| level(&g, s.name)).max(), Some(3));
    let (cp, path) = critical_path(&g);
    assert_eq!(path, ["db", "api", "web", "admin"]);
    assert!((cp - 5.0).abs() < 1e-9);
    let d = Drill::new(DrillSpec::default());
    let h2 = d.yaml(1);
    assert!(h2.contains("url: http://127.0.1.1:"), "{h2}");
    assert!(h2.contains("host: 127.0.1.1"), "{h2}");
    let h3 = d.yaml(2);
    assert!(h3.contains("- name: queue\n"), "{h3}");
    for h in 0..3 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_autoheal"))
            .args(["check", "-c"])
            .arg(d.conf(h))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// (a) The base drill: every host on its own 2 s cron, out of step.
#[test]
fn drill_power_cut_heals_everything_once_in_order() {
    let d = Drill::new(DrillSpec::default());
    let o = d.run();
    check(&d, &o, "base drill");
    check_speed(&d, &o, 3.0);
}

/// (b) Host 3 comes back 5 s after the others.
#[test]
fn drill_late_host() {
    let d = Drill::new(DrillSpec {
        late: Some((2, 5.0)),
        ..DrillSpec::default()
    });
    let o = d.run();
    check(&d, &o, "late host");
    check_speed(&d, &o, 3.0);
}

/// (c) db never comes back: its dependents wait quietly, the rest heals, no restart storm.
#[test]
fn drill_dead_dependency() {
    let d = Drill::new(DrillSpec {
        dead: Some("db"),
        observe_at_least: 15.0,
        ..DrillSpec::default()
    });
    let o = d.run();
    check(&d, &o, "dead db");
    let span = o.ticks.iter().map(|t| t.start + t.secs).fold(0.0, f64::max);
    let attempts = o.attempts("db");
    let bound = (span / GRACE).ceil() as usize + 1;
    println!("db: {attempts} start attempts in {span:.1}s (bound {bound})");
    assert!(attempts >= 2, "db was retried: {attempts}\n{}", d.dump(&o));
    assert!(
        attempts <= bound,
        "db: {attempts} attempts > {bound}\n{}",
        d.dump(&o)
    );
    for s in ["api", "auth", "web", "worker", "admin"] {
        assert_eq!(o.starts_of(s), 0, "{s}");
        assert!(!o.healthy_at_end.contains(&s), "{s}");
    }
    // The wait is explained, down to the root cause.
    assert!(
        o.logs[1].contains("api: still down: waiting on db"),
        "{}",
        o.logs[1]
    );
}

/// (d) Host 2's cron starts two ticks at once, every time: the second finds the lock and
/// exits 0; still no duplicate start.
#[test]
fn drill_overlapping_ticks() {
    let d = Drill::new(DrillSpec {
        overlap: Some(1),
        ..DrillSpec::default()
    });
    let o = d.run();
    check(&d, &o, "overlapping ticks");
    let locked = o
        .ticks
        .iter()
        .filter(|t| t.host == 1 && t.stdout.contains("this one does nothing"))
        .count();
    assert!(locked >= 1, "{}", d.dump(&o));
    assert!(
        o.ticks
            .iter()
            .filter(|t| t.stdout.contains("this one does nothing"))
            .all(|t| t.code == Some(0))
    );
}
