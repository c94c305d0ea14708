//! A config that does not load is never silent and never stops the healing (issue 10, item 3):
//! `run` under cron's `>/dev/null 2>&1` leaves its trace in the state dir's log, and heals with
//! the last version of the file that loaded, kept in the state dir; exit 2 either way.

mod support;

use std::process::{Command, Stdio};
use support::*;

/// One service, started by its script.
fn good(f: &Fixture) -> String {
    format!(
        "settings:\n  converge: 5s\nweb:\n  pname: '{}'\n  grace: 100ms\n  script: {}\n",
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    )
}

/// `run`, its output thrown away as cron does; the exit code.
fn quiet_run(f: &Fixture, extra: &[&str]) -> Option<i32> {
    let mut args = vec!["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"];
    args.extend_from_slice(extra);
    f.autoheal_cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
}

fn log(f: &Fixture) -> String {
    std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap_or_default()
}

/// A typo breaks the file after a good tick: the next tick says so in its log (the count, the
/// first error with its position), heals the service that died meanwhile with the kept
/// version, says so and since when, and exits 2.
#[test]
fn a_broken_edit_is_logged_and_the_last_good_version_heals() {
    let f = Fixture::new();
    f.config(&good(&f));
    assert_eq!(quiet_run(&f, &[]), Some(0));
    let kept = f.state_dir().join("last-good.yaml");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), f.expand(&good(&f)));
    support::kill(f.pid_of("web").unwrap() as i32);
    std::thread::sleep(std::time::Duration::from_millis(200)); // past its grace
    f.config(&good(&f).replace("  script:", "  scrpit:"));
    assert_eq!(quiet_run(&f, &[]), Some(2));
    let text = log(&f);
    let dir = f.dir.path().display();
    assert!(
        text.contains(&format!(
            "autoheal: config {dir}/conf.yaml does not load: 1 error: {dir}/conf.yaml:6:3: web: unknown key `scrpit`"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "autoheal: healing with the last version of {dir}/conf.yaml that loaded, kept since 20"
        )),
        "{text}"
    );
    assert!(text.contains("web: started: was dead"), "{text}");
    assert_eq!(f.journal(), ["web", "web"], "healed by the kept version");
    // The broken file is never kept.
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), f.expand(&good(&f)));
}

/// `--strict` (or `strict: true` in the good version) heals nothing meanwhile, and says so; a
/// broken file with nothing kept says that nothing is healed.
#[test]
fn strict_or_nothing_kept_heals_nothing_and_says_so() {
    let f = Fixture::new();
    f.config(&good(&f).replace("settings:\n", "settings:\n  strict: true\n"));
    assert_eq!(quiet_run(&f, &[]), Some(0));
    support::kill(f.pid_of("web").unwrap() as i32);
    std::thread::sleep(std::time::Duration::from_millis(200)); // past its grace
    f.config(&good(&f).replace("  script:", "  scrpit:"));
    assert_eq!(quiet_run(&f, &[]), Some(2));
    assert!(
        log(&f).contains("its last good version says `strict: true`: nothing is healed until"),
        "{}",
        log(&f)
    );
    assert_eq!(f.journal(), ["web"]);

    let f = Fixture::new();
    f.config(&good(&f));
    assert_eq!(quiet_run(&f, &[]), Some(0));
    support::kill(f.pid_of("web").unwrap() as i32);
    std::thread::sleep(std::time::Duration::from_millis(200)); // past its grace
    f.config(&good(&f).replace("  script:", "  scrpit:"));
    assert_eq!(quiet_run(&f, &["--strict"]), Some(2));
    assert!(
        log(&f).contains("--strict: nothing is healed until"),
        "{}",
        log(&f)
    );
    assert_eq!(f.journal(), ["web"]);

    let f = Fixture::new();
    f.config(&good(&f).replace("  script:", "  scrpit:"));
    assert_eq!(quiet_run(&f, &[]), Some(2));
    assert!(
        log(&f).contains("no version of it has loaded here before"),
        "{}",
        log(&f)
    );
    assert!(f.journal().is_empty());
}

/// A file root may not trust (made world-writable) is refused, said, and the kept version of
/// root's own heals; the refused file is never kept.
#[test]
fn a_refused_file_heals_with_the_kept_version() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let conf = f.config(&good(&f));
    assert_eq!(quiet_run(&f, &[]), Some(0));
    support::kill(f.pid_of("web").unwrap() as i32);
    std::thread::sleep(std::time::Duration::from_millis(200)); // past its grace
    std::fs::write(
        &conf,
        f.expand(&good(&f)).replace("converge: 5s", "converge: 6s"),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(quiet_run(&f, &[]), Some(2));
    let text = log(&f);
    assert!(text.contains("does not load: refusing"), "{text}");
    assert!(text.contains("healing with the last version"), "{text}");
    assert_eq!(f.journal(), ["web", "web"]);
    let kept = std::fs::read_to_string(f.state_dir().join("last-good.yaml")).unwrap();
    assert!(kept.contains("converge: 5s"), "{kept}");
}

/// The metrics say it too: `autoheal_config_valid 0` after a tick that healed with the kept
/// version, 1 again once the file loads.
#[test]
fn the_metrics_say_the_config_does_not_load() {
    let f = Fixture::new();
    let metrics = f.path("autoheal.prom");
    let with_metrics = good(&f).replace(
        "settings:\n",
        &format!("settings:\n  metrics_file: {}\n", metrics.display()),
    );
    f.config(&with_metrics);
    assert_eq!(quiet_run(&f, &[]), Some(0));
    let valid = |f: &std::path::Path| {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("autoheal_config_valid"))
            .map(str::to_string)
    };
    assert_eq!(valid(&metrics).as_deref(), Some("autoheal_config_valid 1"));
    f.config(&with_metrics.replace("  script:", "  scrpit:"));
    assert_eq!(quiet_run(&f, &[]), Some(2));
    assert_eq!(valid(&metrics).as_deref(), Some("autoheal_config_valid 0"));
    assert!(
        log(&f).contains("healing with the last version"),
        "{}",
        log(&f)
    );
    f.config(&with_metrics);
    assert_eq!(quiet_run(&f, &[]), Some(0));
    assert_eq!(valid(&metrics).as_deref(), Some("autoheal_config_valid 1"));
}

/// A state dir shared by two configs (the default one is): the copy kept of one never heals
/// the other; a YAML syntax error does not hide the broken file's own `state_dir`.
#[test]
fn a_kept_copy_heals_only_its_own_file_and_a_syntax_error_keeps_the_state_dir() {
    let f = Fixture::new();
    std::fs::create_dir(f.path("p")).unwrap();
    std::fs::create_dir(f.path("q")).unwrap();
    let shared = f.path("shared");
    let p = f.path("p/conf.yaml");
    std::fs::write(&p, good(&f)).unwrap();
    let run = |conf: &std::path::Path| {
        f.autoheal_cmd(&[
            "run",
            "-c",
            &conf.display().to_string(),
            "--state-dir",
            &shared.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
    };
    assert_eq!(run(&p), Some(0));
    support::kill(f.pid_of("web").unwrap() as i32);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let q = f.path("q/conf.yaml");
    std::fs::write(&q, "qsvc:\n  pname: x\n  script: [oops\n").unwrap();
    assert_eq!(run(&q), Some(2));
    let text = std::fs::read_to_string(shared.join("autoheal.log")).unwrap();
    assert!(
        text.contains(&format!(
            "the version kept in {} is of another file ({})",
            shared.display(),
            p.display()
        )),
        "{text}"
    );
    assert_eq!(f.journal(), ["web"], "p's service was not started for q");

    // Its own state dir, named in a file whose YAML is broken further down.
    let g = Fixture::new();
    g.config(&good(&g).replace("settings:\n", "settings:\n  state_dir: st\n"));
    let out = g.autoheal(&["run", "-c", "{dir}/conf.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    support::kill(g.pid_of("web").unwrap() as i32);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let broken = good(&g).replace("settings:\n", "settings:\n  state_dir: st\n") + "oops: [\n";
    g.config(&broken);
    let out = g.autoheal(&["run", "-c", "{dir}/conf.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("but this tick heals with the last version"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(g.path("st/autoheal.log")).unwrap();
    assert!(text.contains("healing with the last version"), "{text}");
    assert_eq!(g.journal(), ["web", "web"]);
}

/// A FIFO where the config should be is an error at once, never a blocking read.
#[test]
fn a_fifo_as_config_is_an_error_at_once() {
    let f = Fixture::new();
    let conf = f.path("conf.yaml");
    assert!(
        Command::new("mkfifo")
            .arg(&conf)
            .status()
            .unwrap()
            .success()
    );
    for args in [
        vec!["check", "-c", "{dir}/conf.yaml"],
        vec!["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"],
    ] {
        let out = output_within(f.autoheal_cmd(&args), std::time::Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("cannot read the config: it is not a regular file"),
            "{}",
            stderr(&out)
        );
    }
}
