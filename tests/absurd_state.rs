//! A state file can hold any number: times past year 9999, before 1970 or past what a
//! `Duration` holds, counters at their maximum. `status`, `run` and `reset` read it with the
//! real binary and end normally (0 or 1), never with a panic (101).

mod support;

use support::*;

/// Written by hand, as a bad disk, an old build or an operator's editor could leave it.
const ABSURD: &str = r#"{"version": 1, "services": {
  "far": {"last_start": 1e300, "backoff_until": 1e300, "alive_since": 1e300,
          "health_seen_at": 1e300, "script_until": 1e300, "failures": 4294967295,
          "starts": 18446744073709551615, "health_failures": 4294967295},
  "past": {"last_start": -1e300, "backoff_until": -1e300, "alive_since": -1e300,
           "health_seen_at": -1e300, "script_until": -1e300, "failures": 4294967295,
           "starts": 18446744073709551615, "health_failures": 4294967295},
  "y10k": {"last_start": 253402300800, "backoff_until": 253402300800, "failures": 3}
}}"#;

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.config(
        r#"
settings:
  converge: 0
  give_up_after: 0 # so that a start adds to the counters at their maximum
far:
  pname: "never-matches-{tag}-far"
  script: "true"
past:
  pname: "never-matches-{tag}-past"
  script: "true"
y10k:
  pname: "never-matches-{tag}-y10k"
  script: "true"
"#,
    );
    std::fs::create_dir_all(f.state_dir()).unwrap();
    std::fs::write(f.state_dir().join("state.json"), ABSURD).unwrap();
    f
}

fn assert_normal(what: &str, out: &std::process::Output) {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{what}: {:?}\n{}\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    assert!(!stderr(out).contains("panicked"), "{what}: {}", stderr(out));
}

#[test]
fn status_reads_absurd_times_without_a_panic() {
    let f = fixture();
    let out = f.autoheal(&[
        "status",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert_normal("status", &out);
    // Times are clamped to what RFC 3339 can write.
    assert!(
        stdout(&out).contains("9999-12-31T23:59:59Z"),
        "{}",
        stdout(&out)
    );
    let j = f.status_json();
    assert_eq!(j["services"][0]["last_start"], "9999-12-31T23:59:59Z");
    assert_eq!(j["services"][1]["last_start"], "1970-01-01T00:00:00Z");
}

#[test]
fn run_and_reset_read_absurd_times_without_a_panic() {
    let f = fixture();
    assert_normal("run", &f.run());
    // What the run saved reads again.
    assert_normal("second run", &f.run());
    std::fs::write(f.state_dir().join("state.json"), ABSURD).unwrap();
    for svc in ["far", "past", "y10k"] {
        let out = f.reset(svc);
        assert_eq!(out.status.code(), Some(0), "reset {svc}: {}", stderr(&out));
    }
    assert_normal("run after reset", &f.run());
}
