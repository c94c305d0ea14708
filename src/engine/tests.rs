//! `plan()` rule by rule, with plain structs: a config from YAML text, observations by hand.

use super::*;
use crate::config;
use std::path::Path;

pub(super) const NOW: f64 = 1_800_000_000.0;

pub(super) fn cfg(yaml: &str) -> Config {
    config::load_str(yaml, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn alive() -> ServiceObs {
    ServiceObs {
        alive: Ok(Some(100)),
        started: Some(NOW - 1000.0),
        health: None,
        deps: BTreeMap::new(),
        stop: None,
        check_error: false,
        pid_file_process: None,
    }
}

pub(super) fn dead() -> ServiceObs {
    ServiceObs {
        alive: Err("no process matches".into()),
        started: None,
        health: None,
        deps: BTreeMap::new(),
        stop: None,
        check_error: false,
        pid_file_process: None,
    }
}

pub(super) fn with_dep(
    mut o: ServiceObs,
    name: &str,
    target: &str,
    result: Result<(), &str>,
) -> ServiceObs {
    o.deps.insert(
        name.into(),
        DepObs {
            target: target.into(),
            result: result.map_err(refused_or),
        },
    );
    o
}

/// A probe failure as observe gives it: "connection refused" is refused, anything else
/// timed out or failed.
pub(super) fn refused_or(text: &str) -> ProbeError {
    use crate::probe::How;
    let how = match text {
        "connection refused" => How::Refused,
        t if t.starts_with("timed out") => How::TimedOut,
        _ => How::Failed,
    };
    ProbeError::new(how, text)
}

/// Held on deps, each waiting on what is given.
pub(super) fn waiting(waits: Vec<Wait>) -> Verdict {
    Verdict::Held(Hold::Deps { waits })
}

/// A dep by name on a local service that is not ready.
pub(super) fn on_service(dep: &str) -> Wait {
    Wait {
        dep: dep.into(),
        on: WaitOn::Service { name: dep.into() },
    }
}

/// A dep whose probe of `target` failed.
pub(super) fn on_probe(dep: &str, target: &str, text: &str) -> Wait {
    Wait {
        dep: dep.into(),
        on: WaitOn::Probe {
            target: target.into(),
            error: refused_or(text),
        },
    }
}

/// What a plan says of a service, worded (for the few tests of what the log shows).
pub(super) fn said(c: &Config, p: &Plan, name: &str) -> String {
    crate::report::words::Reasons::new(c, &p.decisions, NOW)
        .of(name)
        .unwrap_or_default()
}

pub(super) fn obs(list: Vec<(&str, ServiceObs)>) -> Observation {
    Observation {
        services: list.into_iter().map(|(n, o)| (n.to_string(), o)).collect(),
        ..Default::default()
    }
}

fn verdict(p: &Plan, name: &str) -> Verdict {
    p.verdict(name).cloned().unwrap()
}

const CHAIN: &str = "
middleware:
  pname: middleware
  script: start-middleware
nginx:
  pname: nginx
  dep:
    - name: middleware
      url: http://10.0.0.7/check.htm
  script: start-nginx
web:
  pname: web
  dep:
    - name: nginx
  script: start-web
other:
  pname: other
  script: start-other
";

#[test]
fn dead_with_ready_deps_starts() {
    let c = cfg(CHAIN);
    let o = obs(vec![
        ("middleware", alive()),
        (
            "nginx",
            with_dep(dead(), "middleware", "http://10.0.0.7/check.htm", Ok(())),
        ),
        ("web", dead()),
        ("other", alive()),
    ]);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(verdict(&p, "nginx"), Verdict::Start);
    assert_eq!(verdict(&p, "middleware"), Verdict::Alive);
    assert_eq!(verdict(&p, "web"), waiting(vec![on_service("nginx")]));
    assert_eq!(p.starts(), vec!["nginx"]);
    assert!(!p.all_well());
}

#[test]
fn root_cause_follows_local_deps_down_the_chain() {
    let c = cfg(CHAIN);
    let o = obs(vec![
        ("middleware", dead()),
        (
            "nginx",
            with_dep(
                dead(),
                "middleware",
                "10.0.0.7:80",
                Err("connection refused"),
            ),
        ),
        ("web", dead()),
        ("other", alive()),
    ]);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(verdict(&p, "web"), waiting(vec![on_service("nginx")]));
    assert_eq!(
        verdict(&p, "nginx"),
        waiting(vec![on_probe(
            "middleware",
            "10.0.0.7:80",
            "connection refused"
        )])
    );
    assert_eq!(
        said(&c, &p, "web"),
        "waiting on nginx (dead) ← middleware 10.0.0.7:80 (connection refused)"
    );
    // The local middleware service has no deps: it starts, independently.
    assert_eq!(verdict(&p, "middleware"), Verdict::Start);
}

#[test]
fn an_unready_dep_never_blocks_an_unrelated_service() {
    let c = cfg("
a:
  pname: a
  dep:
    - name: db
      host: 10.0.0.9
      port: 5432
  script: x
b:
  pname: b
  script: y
");
    let o = obs(vec![
        (
            "a",
            with_dep(dead(), "db", "10.0.0.9:5432", Err("timed out after 3s")),
        ),
        ("b", dead()),
    ]);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(
        verdict(&p, "a"),
        waiting(vec![on_probe("db", "10.0.0.9:5432", "timed out after 3s")])
    );
    assert_eq!(verdict(&p, "b"), Verdict::Start);
}

#[test]
fn every_unready_dep_is_named() {
    let c = cfg("
a:
  pname: a
  dep:
    - {name: db, host: 10.0.0.9, port: 5432}
    - {name: api, url: 'http://10.0.0.8/'}
    - {name: q, lua: return false}
  script: x
");
    let o = obs(vec![(
        "a",
        with_dep(
            with_dep(
                with_dep(dead(), "db", "10.0.0.9:5432", Err("connection refused")),
                "api",
                "http://10.0.0.8/",
                Ok(()),
            ),
            "q",
            "lua",
            Err("queue empty"),
        ),
    )]);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(
        verdict(&p, "a"),
        waiting(vec![
            on_probe("db", "10.0.0.9:5432", "connection refused"),
            on_probe("q", "lua", "queue empty")
        ])
    );
}

#[test]
fn a_local_dep_must_be_alive_and_healthy() {
    let c = cfg("
cache:
  pname: redis
  check: return false
  script: x
web:
  pname: web
  dep: [{name: cache}]
  script: y
");
    let mut cache = alive();
    cache.health = Some(Err("PING got -LOADING".into()));
    let p = plan(
        &c,
        &obs(vec![("cache", cache.clone()), ("web", dead())]),
        &State::default(),
        NOW,
    );
    assert_eq!(
        verdict(&p, "cache"),
        Verdict::Unhealthy {
            why: Sick::Health {
                error: "PING got -LOADING".into(),
                count: 1,
                due: false
            },
            held: None
        }
    );
    assert_eq!(verdict(&p, "web"), waiting(vec![on_service("cache")]));
    cache.health = Some(Ok(()));
    let p = plan(
        &c,
        &obs(vec![("cache", cache), ("web", dead())]),
        &State::default(),
        NOW,
    );
    assert_eq!(verdict(&p, "web"), Verdict::Start);
}

#[test]
fn an_alive_service_is_left_alone_whatever_its_deps() {
    let c = cfg(CHAIN);
    let o = obs(vec![
        ("middleware", dead()),
        ("nginx", alive()),
        ("web", alive()),
        ("other", alive()),
    ]);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(verdict(&p, "web"), Verdict::Alive);
    assert_eq!(verdict(&p, "nginx"), Verdict::Alive);
    assert_eq!(p.starts(), vec!["middleware"]);
}

fn state_with(name: &str, f: impl FnOnce(&mut ServiceState)) -> State {
    let mut s = State::default();
    f(s.services.entry(name.into()).or_default());
    s
}

#[test]
fn a_fresh_start_is_not_judged_before_its_grace_ends() {
    let c = cfg("a:\n  pname: a\n  script: x\n  grace: 30s\n");
    let st = state_with("a", |s| {
        record_start(s, &c.settings, NOW - 5.0, "exit 0".into());
    });
    let p = plan(&c, &obs(vec![("a", dead())]), &st, NOW);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Grace { until: NOW + 25.0 })
    );
    let p = plan(&c, &obs(vec![("a", dead())]), &st, NOW + 25.0);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Start,
        "the first retry needs no backoff"
    );
    // Alive within grace: alive, and its dependents may go on.
    let p = plan(&c, &obs(vec![("a", alive())]), &st, NOW);
    assert_eq!(verdict(&p, "a"), Verdict::Alive);
}

#[test]
fn backoff_doubles_and_is_capped() {
    let c = cfg("settings:\n  backoff: 60s\n  backoff_max: 5m\na:\n  pname: a\n  script: x\n");
    let d: Vec<f64> = (1..=6).map(|n| backoff_delay(n, &c.settings)).collect();
    assert_eq!(d, vec![0.0, 60.0, 120.0, 240.0, 300.0, 300.0]);
    assert_eq!(backoff_delay(u32::MAX, &c.settings), 300.0);
}

#[test]
fn a_crash_looping_service_is_backed_off_then_given_up() {
    let c = cfg(
        "settings:\n  backoff: 60s\n  give_up_after: 3\na:\n  pname: a\n  script: x\n  grace: 10s\n",
    );
    let mut st = State::default();
    let mut t = NOW;
    let mut starts = Vec::new();
    // Tick every second for two hours; the service never stays up.
    for _ in 0..7200 {
        let p = plan(&c, &obs(vec![("a", dead())]), &st, t);
        st = p.state.clone();
        if p.starts() == ["a"] {
            starts.push(t - NOW);
            record_start(
                st.services.get_mut("a").unwrap(),
                &c.settings,
                t,
                "exit 0".into(),
            );
        }
        t += 1.0;
    }
    // Start, retry after grace, then after the 60 s backoff; then it gives up.
    assert_eq!(starts, vec![0.0, 10.0, 70.0]);
    let p = plan(&c, &obs(vec![("a", dead())]), &st, t);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Held(Hold::GaveUp { failures: 3 })
    );
    assert!(p.state.services["a"].gave_up);
    // Seen alive again: no longer given up.
    let p = plan(&c, &obs(vec![("a", alive())]), &p.state, t);
    assert!(!p.state.services["a"].gave_up);
}

#[test]
fn never_more_than_one_start_per_grace_period() {
    let c = cfg(
        "settings:\n  give_up_after: 0\n  backoff: 1s\n  backoff_max: 1s\na:\n  pname: a\n  script: x\n  grace: 30s\n",
    );
    let mut st = State::default();
    let mut last: Option<f64> = None;
    let mut t = NOW;
    for _ in 0..10_000 {
        let p = plan(&c, &obs(vec![("a", dead())]), &st, t);
        st = p.state.clone();
        if !p.starts().is_empty() {
            if let Some(l) = last {
                assert!(t - l >= 30.0, "started at {l} and again at {t}");
            }
            last = Some(t);
            record_start(
                st.services.get_mut("a").unwrap(),
                &c.settings,
                t,
                "exit 0".into(),
            );
        }
        t += 0.25;
    }
    assert!(last.is_some());
}

#[test]
fn counters_reset_after_staying_alive() {
    let c = cfg("settings:\n  healthy_after: 5m\na:\n  pname: a\n  script: x\n");
    let st = state_with("a", |s| {
        s.failures = 4;
        s.backoff_until = Some(NOW + 100.0);
        s.last_start = Some(NOW - 10.0);
    });
    let p = plan(&c, &obs(vec![("a", alive())]), &st, NOW);
    assert_eq!(p.state.services["a"].failures, 4, "alive for 0 s: not yet");
    assert_eq!(p.state.services["a"].alive_since, Some(NOW));
    let p = plan(&c, &obs(vec![("a", alive())]), &p.state, NOW + 301.0);
    assert_eq!(p.state.services["a"].failures, 0);
    assert_eq!(p.state.services["a"].backoff_until, None);
    // Dead again: the streak ends.
    let p = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW + 302.0);
    assert_eq!(p.state.services["a"].alive_since, None);
}

#[test]
fn a_dependent_names_a_backed_off_dep() {
    let c = cfg("a:\n  pname: a\n  script: x\nb:\n  pname: b\n  dep: [{name: a}]\n  script: y\n");
    let st = state_with("a", |s| {
        s.failures = 3;
        s.last_start = Some(NOW - 100.0);
        s.backoff_until = Some(NOW + 20.0);
    });
    let p = plan(&c, &obs(vec![("a", dead()), ("b", dead())]), &st, NOW);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Backoff {
            until: NOW + 20.0,
            failures: 3
        })
    );
    assert_eq!(verdict(&p, "b"), waiting(vec![on_service("a")]));
    assert!(matches!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Backoff { until, .. }) if until == NOW + 20.0
    ));
}

#[test]
fn services_gone_from_the_file_are_forgotten() {
    let c = cfg("a:\n  pname: a\n  script: x\n");
    let st = state_with("gone", |s| s.failures = 2);
    let p = plan(&c, &obs(vec![("a", alive())]), &st, NOW);
    assert!(!p.state.services.contains_key("gone"));
    assert!(p.all_well());
}

#[test]
fn holds_say_when_they_may_lift() {
    assert_eq!(Hold::Deps { waits: vec![] }.lifts_at(NOW), Some(NOW));
    assert_eq!(
        Hold::Grace { until: NOW + 3.0 }.lifts_at(NOW),
        Some(NOW + 3.0)
    );
    assert_eq!(Hold::GaveUp { failures: 3 }.lifts_at(NOW), None);
}

#[test]
fn an_unhealthy_service_is_restarted_after_n_spaced_observations() {
    let c = cfg(
        "settings:\n  unhealthy_after: 3\na:\n  pname: a\n  health: {url: 'http://127.0.0.1:1/h'}\n  script: x\n",
    );
    let mut o = alive();
    o.health = Some(Err("HTTP 503".into()));
    let o = obs(vec![("a", o)]);
    let mut st = State::default();
    let mut verdicts = Vec::new();
    // Observations 1 s apart: only one every HEALTH_SPACING (5 s) counts.
    for k in 0..11 {
        let p = plan(&c, &o, &st, NOW + k as f64);
        st = p.state.clone();
        verdicts.push(verdict(&p, "a"));
    }
    assert!(
        verdicts[..10]
            .iter()
            .all(|v| matches!(v, Verdict::Unhealthy { .. })),
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts[10],
        Verdict::Restart {
            why: Sick::Health {
                error: "HTTP 503".into(),
                count: 3,
                due: true
            }
        }
    );
    // Healthy again: the count starts over.
    let p = plan(&c, &obs(vec![("a", alive())]), &st, NOW + 12.0);
    assert_eq!(p.state.services["a"].health_failures, 0);
}

#[test]
fn a_health_restart_goes_through_the_gate() {
    let c = cfg(
        "settings:\n  unhealthy_after: 1\ndb:\n  pname: db\n  script: x\na:\n  pname: a\n  dep: [{name: db}]\n  grace: 30s\n  script: y\n",
    );
    let mut sick = alive();
    sick.health = Some(Err("HTTP 503".into()));
    // Its dep is down: the restart waits.
    let p = plan(
        &c,
        &obs(vec![("db", dead()), ("a", sick.clone())]),
        &State::default(),
        NOW,
    );
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Unhealthy {
            why: Sick::Health {
                error: "HTTP 503".into(),
                count: 1,
                due: true
            },
            held: Some(Hold::Deps {
                waits: vec![on_service("db")]
            })
        }
    );
    // Within grace of its last start: no restart either.
    let st = state_with("a", |s| {
        record_start(s, &c.settings, NOW - 10.0, "exit 0".into())
    });
    let p = plan(
        &c,
        &obs(vec![("db", alive()), ("a", sick.clone())]),
        &st,
        NOW,
    );
    assert!(matches!(
        verdict(&p, "a"),
        Verdict::Unhealthy {
            held: Some(Hold::Grace { .. }),
            ..
        }
    ));
    // Dep ready, grace over: restart.
    let p = plan(
        &c,
        &obs(vec![("db", alive()), ("a", sick)]),
        &st,
        NOW + 25.0,
    );
    assert!(matches!(verdict(&p, "a"), Verdict::Restart { .. }));
    assert_eq!(p.starts(), vec!["a"]);
}

#[test]
fn a_dependent_follows_a_dep_that_restarted_after_it() {
    let yaml = "db:\n  pname: db\n  script: x\napp:\n  pname: app\n  dep: [{name: db}]\n  restart_on_dep_restart: true\n  script: y\nother:\n  pname: other\n  dep: [{name: db}]\n  script: z\n";
    let c = cfg(yaml);
    let mut db = alive();
    db.started = Some(NOW - 10.0);
    let mut app = alive();
    app.started = Some(NOW - 500.0);
    let other = app.clone();
    let p = plan(
        &c,
        &obs(vec![
            ("db", db.clone()),
            ("app", app.clone()),
            ("other", other.clone()),
        ]),
        &State::default(),
        NOW,
    );
    assert_eq!(
        verdict(&p, "app"),
        Verdict::Restart {
            why: Sick::DepRestarted {
                dep: "db".into(),
                health: None
            }
        }
    );
    assert_eq!(
        verdict(&p, "other"),
        Verdict::Alive,
        "without the key, no restart"
    );
    // Not before the dep is ready again.
    let mut db_sick = db.clone();
    db_sick.health = Some(Err("warming up".into()));
    let c2 = cfg(&yaml.replace(
        "db:\n  pname: db\n",
        "db:\n  pname: db\n  health: {url: 'http://127.0.0.1:1/'}\n",
    ));
    let p = plan(
        &c2,
        &obs(vec![
            ("db", db_sick),
            ("app", app.clone()),
            ("other", other),
        ]),
        &State::default(),
        NOW,
    );
    assert!(
        matches!(verdict(&p, "app"), Verdict::Unhealthy { why: Sick::DepRestarted { .. }, held: Some(Hold::Deps { waits }) } if waits == vec![on_service("db")])
    );
    // Once the dependent is newer than its dep, nothing to do.
    app.started = Some(NOW - 5.0);
    let p = plan(
        &c,
        &obs(vec![("db", db), ("app", app), ("other", alive())]),
        &State::default(),
        NOW,
    );
    assert_eq!(verdict(&p, "app"), Verdict::Alive);
}

#[test]
fn a_requested_restart_passes_the_gate_like_any_other() {
    let c = cfg("a:\n  pname: a\n  grace: 30s\n  script: x\n");
    let mut o = obs(vec![("a", alive())]);
    o.requested.insert("a".into(), "web.check".into());
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Restart {
            why: Sick::Requested {
                by: "web.check".into()
            }
        }
    );
    let st = state_with("a", |s| {
        record_start(s, &c.settings, NOW - 1.0, "exit 0".into())
    });
    assert_eq!(
        may_start(&c, &o, &st, NOW, "a").map_err(|(why, _)| why),
        Err(Refusal::Held(Hold::Grace { until: NOW + 29.0 }))
    );
    // Held: a healthy service asked for by a chunk stays alive, and the log says why.
    let p = plan(&c, &o, &st, NOW);
    assert_eq!(verdict(&p, "a"), Verdict::Alive);
    assert_eq!(
        p.notes,
        vec![Note::RestartNotDone {
            service: "a".into(),
            by: "web.check".into(),
            why: Refusal::Held(Hold::Grace { until: NOW + 29.0 })
        }]
    );
}

#[test]
fn a_process_younger_than_its_grace_is_not_health_restarted() {
    let c = cfg(
        "settings:\n  unhealthy_after: 1\na:\n  pname: a\n  health: {host: 127.0.0.1, port: 1}\n  grace: 30s\n  script: x\n",
    );
    let mut o = alive();
    o.started = Some(NOW - 10.0); // started by someone else 10 s ago: warming up
    o.health = Some(Err("connection refused".into()));
    let p = plan(&c, &obs(vec![("a", o.clone())]), &State::default(), NOW);
    match verdict(&p, "a") {
        Verdict::Unhealthy {
            held: Some(Hold::Grace { until }),
            ..
        } => assert_eq!(until, NOW + 20.0),
        v => panic!("{v:?}"),
    }
    // Older than its grace and still failing: restarted.
    let p = plan(&c, &obs(vec![("a", o)]), &p.state, NOW + 20.0);
    assert!(matches!(verdict(&p, "a"), Verdict::Restart { .. }));
}

#[test]
fn a_clock_stepped_back_holds_for_one_grace_or_backoff_at_most() {
    let c = cfg("settings:\n  backoff_max: 5m\na:\n  pname: a\n  script: x\n  grace: 30s\n");
    // What a tick wrote 30 days "later" than the clock now reads.
    let later = NOW + 30.0 * 86400.0;
    let st = state_with("a", |s| {
        s.last_start = Some(later);
        s.failures = 5;
        s.backoff_until = Some(later + 300.0);
    });
    let p = plan(&c, &obs(vec![("a", dead())]), &st, NOW);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Grace { until: NOW + 30.0 })
    );
    // The clamped times are what the state keeps, so the hold lifts.
    let p = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW + 30.0);
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Backoff {
            until: NOW + 300.0,
            failures: 5
        })
    );
    let p = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW + 300.0);
    assert_eq!(verdict(&p, "a"), Verdict::Start);
}

#[test]
fn a_result_restarts_grace_and_backoff_from_when_the_script_returned() {
    let c = cfg("settings:\n  backoff: 60s\na:\n  pname: a\n  script: x\n  grace: 30s\n");
    let mut ss = ServiceState::default();
    record_start(&mut ss, &c.settings, NOW, "script running".into());
    record_start(&mut ss, &c.settings, NOW, "script running".into());
    record_result(
        &mut ss,
        &c.settings,
        NOW + 40.0,
        "exit 0 in 40s".into(),
        true,
    );
    assert_eq!(ss.last_start, Some(NOW + 40.0));
    assert_eq!(ss.backoff_until, Some(NOW + 100.0));
    assert_eq!(ss.starts, 2);
    assert_eq!(ss.last_result.as_deref(), Some("exit 0 in 40s"));
}

#[test]
fn a_service_whose_process_to_stop_is_ambiguous_is_not_restarted() {
    let c = cfg(
        "settings:\n  unhealthy_after: 1\na:\n  pname: nginx\n  health: {host: 127.0.0.1, port: 1}\n  script: x\nb:\n  pname: b\n  stop: kill-b\n  health: {host: 127.0.0.1, port: 1}\n  script: y\n",
    );
    let sick = |ambiguous: Option<&str>| {
        let mut o = alive();
        o.health = Some(Err("connection refused".into()));
        o.stop = ambiguous.map(|a| Err(Unsignallable::Ambiguous(a.to_string())));
        o
    };
    let two = "several processes match: 10 (nginx: master), 11 (tail -f nginx.log)";
    let p = plan(
        &c,
        &obs(vec![("a", sick(Some(two))), ("b", sick(Some(two)))]),
        &State::default(),
        NOW,
    );
    assert_eq!(
        verdict(&p, "a"),
        Verdict::Unhealthy {
            why: Sick::Health {
                error: "connection refused".into(),
                count: 1,
                due: true
            },
            held: Some(Hold::NotSignalled(Unsignallable::Ambiguous(two.into())))
        }
    );
    assert!(
        p.starts() == ["b"],
        "with a stop: command it is: {:?}",
        p.decisions
    );
}

#[test]
fn a_check_that_errs_is_shown_but_never_restarts_the_service() {
    let c =
        cfg("settings:\n  unhealthy_after: 1\na:\n  pname: a\n  check: return x.y\n  script: x\n");
    let mut o = alive();
    o.health = Some(Err(
        "t.yaml:4: a.check: attempt to index a nil value (global 'x')".into(),
    ));
    o.check_error = true;
    let mut st = State::default();
    for k in 0..20 {
        let p = plan(&c, &obs(vec![("a", o.clone())]), &st, NOW + 10.0 * k as f64);
        st = p.state.clone();
        match verdict(&p, "a") {
            Verdict::Unhealthy {
                why: Sick::CheckError { .. },
                held: None,
            } => {}
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(st.services["a"].health_failures, 0);
    // The same failure as an answer (`return false, "why"`) counts.
    o.check_error = false;
    let p = plan(&c, &obs(vec![("a", o)]), &st, NOW + 300.0);
    assert!(matches!(verdict(&p, "a"), Verdict::Restart { .. }));
}

#[test]
fn a_script_an_interrupted_tick_left_running_holds_its_service() {
    let c = cfg("a:\n  pname: a\n  script: x\n  timeout: 60s\n  grace: 30s\n");
    // Launched 40 s ago (past its grace) by a tick that never recorded how it ended.
    let st = state_with("a", |s| {
        record_start(s, &c.settings, NOW - 40.0, "script running".into());
        s.script_until = Some(NOW + 20.0);
    });
    let p = plan(&c, &obs(vec![("a", dead())]), &st, NOW);
    assert_eq!(verdict(&p, "a"), Verdict::Held(Hold::Starting));
    let p = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW + 20.0);
    assert_eq!(verdict(&p, "a"), Verdict::Start);
    // Its outcome, once recorded, clears it.
    let mut ss = st.services["a"].clone();
    record_result(&mut ss, &c.settings, NOW, "exit 0 in 40s".into(), true);
    assert_eq!(ss.script_until, None);
    // A clock stepped back cannot make it hold longer than the script's timeout.
    let st = state_with("a", |s| s.script_until = Some(NOW + 86400.0));
    let p = plan(&c, &obs(vec![("a", dead())]), &st, NOW);
    assert_eq!(p.state.services["a"].script_until, Some(NOW + 60.0));
}

#[test]
fn a_requested_restart_of_an_ambiguous_service_is_refused_and_said() {
    let c = cfg("a:\n  pname: a\n  script: x\n");
    let mut o = alive();
    o.stop = Some(Err(Unsignallable::Ambiguous(
        "pname \"a\" matches 2 unrelated processes".into(),
    )));
    let mut ob = obs(vec![("a", o)]);
    let two = Unsignallable::Ambiguous("pname \"a\" matches 2 unrelated processes".into());
    assert_eq!(
        may_start(&c, &ob, &State::default(), NOW, "a").map_err(|(why, _)| why),
        Err(Refusal::NotSignalled(two.clone()))
    );
    ob.requested.insert("a".into(), "web.check".into());
    let p = plan(&c, &ob, &State::default(), NOW);
    assert_eq!(verdict(&p, "a"), Verdict::Alive);
    assert_eq!(
        p.notes,
        vec![Note::RestartNotDone {
            service: "a".into(),
            by: "web.check".into(),
            why: Refusal::NotSignalled(two)
        }]
    );
}

#[test]
fn a_health_count_from_the_future_is_brought_back_to_now() {
    let c = cfg(
        "settings:\n  unhealthy_after: 2\na:\n  pname: a\n  health: {host: 127.0.0.1, port: 1}\n  script: x\n",
    );
    let mut o = alive();
    o.health = Some(Err("connection refused".into()));
    let st = state_with("a", |s| {
        s.health_failures = 1;
        s.health_seen_at = Some(NOW + 86400.0);
    });
    let p = plan(&c, &obs(vec![("a", o)]), &st, NOW);
    assert_eq!(p.state.services["a"].health_seen_at, Some(NOW));
    assert_eq!(p.state.services["a"].health_failures, 1);
}

#[test]
fn the_pid_file_s_process_is_remembered_while_it_lives() {
    let c = cfg("a:\n  pid_file: /run/a.pid\n  script: x\n");
    let id = crate::state::ProcId {
        boot: "b".into(),
        pid: 100,
        ticks: 5,
    };
    let mut o = alive();
    o.pid_file_process = Some(id.clone());
    let p = plan(&c, &obs(vec![("a", o)]), &State::default(), NOW);
    assert_eq!(p.state.services["a"].pid_file_process, Some(id));
    let p = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW + 1.0);
    assert_eq!(p.state.services["a"].pid_file_process, None);
}

#[test]
fn a_restart_that_would_signal_a_process_that_is_not_the_service_is_held_and_says_why() {
    let c = cfg(
        "settings:\n  unhealthy_after: 1\nweb:\n  pid_file: /run/web.pid\n  health: {host: 127.0.0.1, port: 1}\n  script: x\ndependent:\n  pname: d\n  dep: [{name: web}]\n  script: y\n",
    );
    let refusal = Unsignallable::NotTheService(Box::new(ForeignPid {
        pid: 812,
        file: "/run/web.pid".into(),
        owner: "admin".into(),
        mode: 0o644,
        cmdline: "sshd -D".into(),
        mismatch: Mismatch::Writers {
            writers: "admin".into(),
            runs_as: "root".into(),
        },
    }));
    let mut o = alive();
    o.health = Some(Err("connection refused".into()));
    o.stop = Some(Err(refusal.clone()));
    let p = plan(
        &c,
        &obs(vec![("web", o.clone()), ("dependent", dead())]),
        &State::default(),
        NOW,
    );
    let hold = Hold::NotSignalled(refusal.clone());
    assert_eq!(
        verdict(&p, "web"),
        Verdict::Unhealthy {
            why: Sick::Health {
                error: "connection refused".into(),
                count: 1,
                due: true
            },
            held: Some(hold.clone()),
        }
    );
    // It never lifts by itself within a tick.
    assert_eq!(hold.lifts_at(NOW), None);
    assert!(p.starts().is_empty(), "{:?}", p.decisions);
    // The gate Lua's restart() asks says the same.
    assert_eq!(
        may_start(
            &c,
            &obs(vec![("web", o.clone())]),
            &State::default(),
            NOW,
            "web"
        )
        .map_err(|(why, _)| why),
        Err(Refusal::NotSignalled(refusal.clone()))
    );
    // The same process, signalled through the pid: restarted.
    o.stop = Some(Ok(StopTarget {
        pid: 812,
        start_ticks: 5,
    }));
    let p = plan(&c, &obs(vec![("web", o)]), &State::default(), NOW);
    assert!(matches!(verdict(&p, "web"), Verdict::Restart { .. }));
}

#[test]
fn a_dependent_with_a_failing_health_still_follows_its_restarted_dep() {
    // The case restart_on_dep_restart exists for: the app's held connection broke when db
    // restarted, so its own health fails too; one failure (below unhealthy_after) must not
    // hold the restart back, nor a check that errs.
    let yaml = "db:\n  pname: db\n  script: x\napp:\n  pname: app\n  dep: [{name: db}]\n  restart_on_dep_restart: true\n  health: {url: 'http://127.0.0.1:1/'}\n  unhealthy_after: 3\n  script: y\n";
    let c = cfg(yaml);
    let mut db = alive();
    db.started = Some(NOW - 10.0);
    let mut app = alive();
    app.started = Some(NOW - 500.0);
    app.health = Some(Err("HTTP 500".into()));
    let st = state_with("app", |s| s.health_failures = 1);
    let p = plan(
        &c,
        &obs(vec![("db", db.clone()), ("app", app.clone())]),
        &st,
        NOW,
    );
    assert_eq!(
        verdict(&p, "app"),
        Verdict::Restart {
            why: Sick::DepRestarted {
                dep: "db".into(),
                health: Some("HTTP 500".into())
            }
        }
    );
    app.check_error = true;
    let p = plan(&c, &obs(vec![("db", db), ("app", app.clone())]), &st, NOW);
    assert!(matches!(verdict(&p, "app"), Verdict::Restart { .. }));
    // Without a restarted dep, the count rules as before.
    let mut db_old = alive();
    db_old.started = Some(NOW - 900.0);
    app.check_error = false;
    let p = plan(&c, &obs(vec![("db", db_old), ("app", app)]), &st, NOW);
    assert!(matches!(
        verdict(&p, "app"),
        Verdict::Unhealthy { held: None, .. }
    ));
}

#[test]
fn a_reboot_forgives_failed_restarts_and_backoff() {
    let c = cfg("a:\n  pname: a\n  script: x\n  grace: 30s\n");
    let mut st = state_with("a", |s| {
        s.failures = 2;
        s.last_start = Some(NOW - 40.0);
        s.backoff_until = Some(NOW + 20.0);
    });
    let mut in_grace = st.clone();
    in_grace.services.get_mut("a").unwrap().last_start = Some(NOW - 5.0);
    st.boot = Some("boot-1".into());
    let mut o = obs(vec![("a", dead())]);
    // The same boot: a crash; the backoff holds.
    o.boot = Some("boot-1".into());
    let p = plan(&c, &o, &st, NOW);
    assert!(matches!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Backoff { .. })
    ));
    assert!(p.notes.is_empty());
    // Another boot: the host went down with it; no backoff, no failure counted, said once.
    o.boot = Some("boot-2".into());
    let p = plan(&c, &o, &st, NOW);
    assert_eq!(verdict(&p, "a"), Verdict::Start);
    assert_eq!(p.state.services["a"].failures, 0);
    assert_eq!(p.state.boot.as_deref(), Some("boot-2"));
    assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
    assert_eq!(p.notes[0], Note::Rebooted);
    let again = plan(&c, &o, &p.state, NOW);
    assert!(again.notes.is_empty(), "said once");
    // A start made just before the cut is not warming up in the new boot: no grace either.
    in_grace.boot = Some("boot-1".into());
    let p = plan(&c, &o, &in_grace, NOW);
    assert_eq!(verdict(&p, "a"), Verdict::Start);
    // A state from before boot ids were kept: nothing to compare, nothing forgiven.
    st.boot = None;
    let p = plan(&c, &o, &st, NOW);
    assert!(matches!(
        verdict(&p, "a"),
        Verdict::Held(Hold::Backoff { .. })
    ));
}

#[test]
fn a_start_is_judged_failed_only_when_its_service_never_ran() {
    let c = cfg("a:\n  pname: a\n  grace: 10s\n  script: x\n");
    let started = |ok| {
        state_with("a", |s| {
            record_start(s, &c.settings, NOW - 100.0, "script running".into());
            record_result(s, &c.settings, NOW - 30.0, "exit 0 in 70s".into(), ok);
        })
    };
    // Its script succeeded, and it is dead at the end of its grace: that start failed, once.
    let p = plan(&c, &obs(vec![("a", dead())]), &started(true), NOW);
    assert_eq!(
        p.notes,
        vec![Note::StartDied {
            service: "a".into(),
            after: 30.0,
            dead: "no process matches".into()
        }]
    );
    let again = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW + 1.0);
    assert!(again.notes.is_empty(), "said once: {:?}", again.notes);
    // Within its grace: not judged yet.
    let p = plan(&c, &obs(vec![("a", dead())]), &started(true), NOW - 25.0);
    assert!(p.notes.is_empty());
    // A script that failed was said as it ended.
    let p = plan(&c, &obs(vec![("a", dead())]), &started(false), NOW);
    assert!(p.notes.is_empty());
    // Seen running, even unhealthy or with a check that errs, then dead: a crash, not a start
    // that failed.
    for seen in [
        ServiceObs {
            health: Some(Err("warming".into())),
            ..alive()
        },
        ServiceObs {
            health: Some(Err("lua error".into())),
            check_error: true,
            ..alive()
        },
    ] {
        let p = plan(&c, &obs(vec![("a", seen)]), &started(true), NOW - 25.0);
        let p = plan(&c, &obs(vec![("a", dead())]), &p.state, NOW);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }
}
