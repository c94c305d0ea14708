//! The Prometheus textfile (`settings.metrics_file`, `--metrics`), with real processes and
//! real files: promtool accepts it, Debian's real node_exporter serves it with the right
//! values, a locked-out tick still writes its tick-level series, and a symlink planted at the
//! file's name is replaced, never written through.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Fixture;

/// db (healed: dead, started, alive at the end) and web (held: its tcp dep refuses).
fn healed_and_held(f: &Fixture) -> PathBuf {
    std::fs::create_dir(f.path("textfile")).unwrap();
    let refused = support::free_port();
    f.config(&format!(
        "settings:\n  converge: 0\n  metrics_file: textfile/autoheal.prom\n\
         db:\n  pname: '{}'\n  script: '{}'\n\
         web:\n  pname: '{}'\n  dep:\n    - name: api\n      host: 127.0.0.1\n      port: {refused}\n  \
         script: '{}'\n",
        f.sleeper_re(1),
        f.daemon_script("db", 1),
        f.sleeper_re(2),
        f.daemon_script("web", 2),
    ));
    f.path("textfile/autoheal.prom")
}

/// Every sample of an exposition as (name, labels) → value.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.insert((name.to_string(), labels), value.parse().unwrap());
    }
    out
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key = (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    samples(text).get(&key).copied()
}

/// The values the brief names, for a tick that healed db and left web held.
fn assert_healed_and_held(text: &str) {
    let v = |name, labels: &[(&str, &str)]| {
        value(text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    };
    assert_eq!(v("autoheal_service_up", &[("service", "db")]), 1.0);
    assert_eq!(
        v(
            "autoheal_service_state",
            &[("service", "db"), ("state", "alive")]
        ),
        1.0
    );
    assert_eq!(
        v("autoheal_service_starts_total", &[("service", "db")]),
        1.0
    );
    assert_eq!(v("autoheal_service_up", &[("service", "web")]), 0.0);
    assert_eq!(
        v(
            "autoheal_service_state",
            &[("service", "web"), ("state", "waiting")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "autoheal_service_state",
            &[("service", "web"), ("state", "alive")]
        ),
        0.0
    );
    assert_eq!(
        v("autoheal_service_starts_total", &[("service", "web")]),
        0.0
    );
    assert_eq!(
        v(
            "autoheal_dep_ready",
            &[("service", "web"), ("dep", "api"), ("kind", "tcp")]
        ),
        0.0
    );
    assert_eq!(v("autoheal_config_valid", &[]), 1.0);
    assert_eq!(v("autoheal_tick_locked_out", &[]), 0.0);
    let at = v("autoheal_last_tick_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - 120.0..=now + 1.0).contains(&at), "{at} vs {now}");
    assert!(v("autoheal_tick_duration_seconds", &[]) > 0.0);
    assert_eq!(
        v(
            "autoheal_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[test]
fn promtool_accepts_the_file_of_a_tick_that_healed_one_and_held_one() {
    let Some(promtool) = support::require_server("promtool") else {
        return;
    };
    let f = Fixture::new();
    let file = healed_and_held(&f);
    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_healed_and_held(&text);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "node_exporter's own user must read it");
    // It reads the exposition on stdin; lint problems (names, units, HELP) fail it too.
    let check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool: {} {}\n{text}",
        support::stdout(&check),
        support::stderr(&check)
    );
    // No temp file is left beside it (node_exporter reads only *.prom, but still).
    let names: Vec<_> = std::fs::read_dir(f.path("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["autoheal.prom"]);
}

/// Kills the node_exporter it holds, by its pid, however the test ends.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(port: u16) -> Option<String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    agent
        .get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()
}

#[test]
fn node_exporter_serves_the_series_with_their_values() {
    let Some(exporter) = support::require_server("prometheus-node-exporter") else {
        return;
    };
    let f = Fixture::new();
    let file = healed_and_held(&f);
    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    assert!(file.is_file());
    let port = support::free_port();
    let child = Command::new(exporter)
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!(
            "--collector.textfile.directory={}",
            f.path("textfile").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Started(child);
    let end = Instant::now() + Duration::from_secs(15);
    let text = loop {
        if let Some(text) = scrape(port) {
            break text;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("node_exporter exited ({status}): {err}");
        }
        assert!(
            Instant::now() < end,
            "node_exporter did not answer on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        value(&text, "node_textfile_scrape_error", &[]),
        Some(0.0),
        "node_exporter could not read the file:\n{text}"
    );
    assert_healed_and_held(&text);
}

/// Holds `<dir>/lock` with flock(1) from another process, as a running tick would; killed on
/// drop.
fn hold_lock(flock: &Path, dir: &Path) -> Started {
    let lock = dir.join("lock");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9<>'{p}'; {flock} 9; echo $$ > '{p}'; exec sleep 30",
            p = lock.display(),
            flock = flock.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let held = Started(child);
    assert!(
        support::wait_for(Duration::from_secs(3), || {
            std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid.to_string())
        }),
        "the lock holder did not start"
    );
    held
}

#[test]
fn a_locked_out_tick_still_writes_its_tick_level_series() {
    let Some(flock) = support::require_server("flock") else {
        return;
    };
    let f = Fixture::new();
    let file = healed_and_held(&f);
    // Also `--metrics`, which overrides the setting: here to the same file.
    let args = [
        "run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
        "--metrics",
        "{dir}/textfile/autoheal.prom",
    ];
    assert_eq!(f.autoheal(&args).status.code(), Some(1));
    let before = std::fs::read_to_string(&file).unwrap();
    let at_before = value(&before, "autoheal_last_tick_timestamp_seconds", &[]).unwrap();
    std::thread::sleep(Duration::from_millis(20));

    let _holder = hold_lock(&flock, &f.state_dir());
    let out = f.autoheal(&args);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(value(&text, "autoheal_tick_locked_out", &[]), Some(1.0));
    assert_eq!(value(&text, "autoheal_config_valid", &[]), Some(1.0));
    let at = value(&text, "autoheal_last_tick_timestamp_seconds", &[]).unwrap();
    assert!(
        at > at_before,
        "the last tick time moved on: {at} vs {at_before}"
    );
    assert_eq!(
        value(
            &text,
            "autoheal_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // The series of the last tick that ran are kept: an alert that has waited on a service
    // for minutes does not start over because one tick found the lock held.
    assert_eq!(
        value(&text, "autoheal_service_up", &[("service", "db")]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "autoheal_service_up", &[("service", "web")]),
        Some(0.0)
    );
    // And it is still a file that parses, one HELP and TYPE per family.
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, 15, "{text}");
    assert_eq!(helps, 15);
    if let Some(promtool) = support::require_server("promtool") {
        let check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", support::stdout(&check));
    }
}

#[test]
fn a_symlink_at_the_metrics_file_leaves_its_target_untouched() {
    let f = Fixture::new();
    let file = healed_and_held(&f);
    let secret = f.path("root-only");
    std::fs::write(&secret, "root's own\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    // And a link planted at the temp file's name, which autoheal must not write through either.
    let tmp = f.path("textfile/.autoheal.prom.tmp");
    std::os::unix::fs::symlink(&secret, &tmp).unwrap();

    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root's own\n");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    let meta = std::fs::symlink_metadata(&file).unwrap();
    assert!(meta.is_file(), "the link was replaced by the file");
    assert!(
        value(
            &std::fs::read_to_string(&file).unwrap(),
            "autoheal_service_up",
            &[("service", "db")]
        ) == Some(1.0)
    );
    assert!(
        std::fs::symlink_metadata(&tmp).is_err(),
        "no temp file left"
    );

    // A locked-out tick reads the old file back: never through a link planted there.
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    if let Some(flock) = support::require_server("flock") {
        let _holder = hold_lock(&flock, &f.state_dir());
        assert_eq!(f.run().status.code(), Some(0));
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root's own\n");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
        assert!(!text.contains("root's own"), "{text}");
        assert_eq!(value(&text, "autoheal_tick_locked_out", &[]), Some(1.0));
    }
}
