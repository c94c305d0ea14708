//! A paused service in the planner, with plain structs: never started, restarted or stopped,
//! whatever it is; its dependents wait on it; the pause ends by itself at its `until`, survives
//! a reboot, and is forgotten with its service.

use super::*;

use super::tests::{NOW, alive, cfg, dead, obs};

const STACK: &str = "
db:
  pname: db
  script: start-db
  health: {host: 127.0.0.1, port: 5432}
  unhealthy_after: 3
web:
  pname: web
  dep: [{name: db}]
  script: start-web
";

fn paused(service: &str, until: Option<Unix>) -> State {
    let mut st = State::default();
    st.paused.insert(service.into(), pause(until));
    st
}

fn pause(until: Option<Unix>) -> Pause {
    Pause {
        by: "alice".into(),
        reason: Some("upgrading postgres".into()),
        since: NOW - 60.0,
        until,
    }
}

fn verdict(p: &Plan, name: &str) -> Verdict {
    p.verdict(name).cloned().unwrap()
}

fn held_by_pause(until: Option<Unix>) -> Verdict {
    Verdict::Held(Hold::Paused(pause(until)))
}

#[test]
fn a_paused_dead_service_is_never_started_and_its_dependents_wait_on_it() {
    let c = cfg(STACK);
    let o = obs(vec![("db", dead()), ("web", dead())]);
    let mut st = paused("db", Some(NOW + 3600.0));
    for tick in 0..3 {
        let now = NOW + f64::from(tick) * 60.0;
        let p = plan(&c, &o, &st, now);
        assert_eq!(verdict(&p, "db"), held_by_pause(Some(NOW + 3600.0)));
        assert_eq!(
            verdict(&p, "web"),
            Verdict::Held(Hold::Deps {
                waits: vec![Wait {
                    dep: "db".into(),
                    on: WaitOn::Service { name: "db".into() }
                }]
            })
        );
        assert!(p.starts().is_empty());
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        // A deliberate outage: nothing counts toward `notify_after`.
        assert_eq!(p.state.services["db"].down_since, None);
        assert!(p.state.services["web"].down_since.is_some());
        st = p.state;
    }
    // Lua's restart() is refused, with the pause as the reason.
    assert_eq!(
        may_start(&c, &o, &st, NOW, "db").map_err(|(why, _)| why),
        Err(Refusal::Held(Hold::Paused(pause(Some(NOW + 3600.0)))))
    );
}

#[test]
fn a_paused_service_is_held_whatever_else_holds_it() {
    let c = cfg(STACK);
    let o = obs(vec![("db", dead()), ("web", dead())]);
    // In backoff, given up, its script running: the pause is what the operator sees.
    let mut st = paused("db", None);
    let ss = st.services.entry("db".into()).or_default();
    ss.gave_up = true;
    ss.failures = 12;
    ss.backoff_until = Some(NOW + 600.0);
    let p = plan(&c, &o, &st, NOW);
    assert_eq!(verdict(&p, "db"), held_by_pause(None));
    let mut o2 = o.clone();
    o2.running.insert("db".into());
    assert_eq!(verdict(&plan(&c, &o2, &st, NOW), "db"), held_by_pause(None));
}

#[test]
fn a_paused_alive_service_is_never_restarted_whatever_its_health() {
    let c = cfg(STACK);
    let sick = |o: ServiceObs| ServiceObs {
        health: Some(Err("connection refused".into())),
        ..o
    };
    let st = |failures| {
        let mut st = paused("db", Some(NOW + 600.0));
        st.services.entry("db".into()).or_default().health_failures = failures;
        st
    };
    let held = Some(Hold::Paused(pause(Some(NOW + 600.0))));
    // Unhealthy, its restart due or not: held by the pause, and said so.
    for failures in [0, 5] {
        let p = plan(&c, &obs(vec![("db", sick(alive()))]), &st(failures), NOW);
        match verdict(&p, "db") {
            Verdict::Unhealthy { held: h, .. } => assert_eq!(h, held, "{failures}"),
            v => panic!("{failures}: {v:?}"),
        }
        assert!(p.starts().is_empty());
    }
    // Alive and well: alive, and its dependents may start.
    let o = obs(vec![("db", alive()), ("web", dead())]);
    let p = plan(&c, &o, &st(0), NOW);
    assert_eq!(verdict(&p, "db"), Verdict::Alive);
    assert_eq!(verdict(&p, "web"), Verdict::Start);
    // A chunk's restart() of it: not done, and the log is told why.
    let mut o = obs(vec![("db", alive())]);
    o.requested.insert("db".into(), "web.check".into());
    let p = plan(&c, &o, &st(0), NOW);
    assert_eq!(verdict(&p, "db"), Verdict::Alive);
    assert_eq!(
        p.notes,
        vec![Note::RestartNotDone {
            service: "db".into(),
            by: "web.check".into(),
            why: Refusal::Held(Hold::Paused(pause(Some(NOW + 600.0))))
        }]
    );
}

#[test]
fn a_pause_ends_by_itself_at_its_until_and_says_so_once() {
    let c = cfg(STACK);
    let o = obs(vec![("db", dead()), ("web", dead())]);
    let st = paused("db", Some(NOW + 30.0));
    let p = plan(&c, &o, &st, NOW + 29.0);
    assert!(matches!(verdict(&p, "db"), Verdict::Held(Hold::Paused(_))));
    // Its `until` is when a tick waiting on it may change.
    assert_eq!(
        Hold::Paused(pause(Some(NOW + 30.0))).lifts_at(NOW),
        Some(NOW + 30.0)
    );
    assert_eq!(Hold::Paused(pause(None)).lifts_at(NOW), None);
    let p = plan(&c, &o, &st, NOW + 30.0);
    assert_eq!(verdict(&p, "db"), Verdict::Start);
    assert!(p.state.paused.is_empty());
    assert_eq!(
        p.notes,
        vec![Note::PauseEnded {
            service: "db".into(),
            pause: pause(Some(NOW + 30.0))
        }]
    );
    let again = plan(&c, &o, &p.state, NOW + 31.0);
    assert!(again.notes.is_empty(), "said once: {:?}", again.notes);
    // One until resumed never ends by itself.
    let p = plan(&c, &o, &paused("db", None), NOW + 1e9);
    assert_eq!(verdict(&p, "db"), held_by_pause(None));
}

#[test]
fn a_pause_survives_a_reboot_and_is_forgotten_with_its_service() {
    let c = cfg(STACK);
    let o = Observation {
        boot: Some("boot-2".into()),
        ..obs(vec![("db", dead()), ("web", dead())])
    };
    let mut st = paused("db", None);
    st.boot = Some("boot-1".into());
    let p = plan(&c, &o, &st, NOW);
    assert_eq!(p.notes, vec![Note::Rebooted]);
    assert_eq!(verdict(&p, "db"), held_by_pause(None));
    assert!(p.state.paused.contains_key("db"));
    // db left the file: its pause goes with it (a new db later starts unpaused).
    let c = cfg("web:\n  pname: web\n  script: start-web\n");
    let p = plan(&c, &o, &st, NOW);
    assert!(p.state.paused.is_empty());
    assert!(
        p.notes
            .iter()
            .all(|n| !matches!(n, Note::PauseEnded { .. }))
    );
}

#[test]
fn a_clock_stepped_back_neither_ends_a_pause_early_nor_stretches_it() {
    let c = cfg(STACK);
    let o = obs(vec![("db", dead())]);
    // Paused for an hour at NOW + 1000, then the clock went back to NOW.
    let mut st = State::default();
    st.paused.insert(
        "db".into(),
        Pause {
            since: NOW + 1000.0,
            until: Some(NOW + 4600.0),
            ..pause(None)
        },
    );
    let p = plan(&c, &o, &st, NOW);
    let kept = &p.state.paused["db"];
    assert_eq!((kept.since, kept.until), (NOW, Some(NOW + 3600.0)));
}
