//! The root-cause chain through the graph of services, with plain structs: deps at a local
//! service's `health:` address are followed like deps by name, and a chain of any length is
//! decided without deep recursion and with reasons of bounded size.

use super::*;
use std::fmt::Write;

// The plain structs of the planner's tests.
use super::tests::{NOW, alive, cfg, dead, obs, said, with_dep};

/// The stack of the issue: web waits on the app at its health url, the app on the database by
/// name, the database on a disk array on another host.
const STACK: &str = "
db:
  pname: postgres
  health: {host: 127.0.0.1, port: 5432}
  dep:
    - {name: san, host: 10.0.0.9, port: 3260}
  script: start-db
app:
  pname: app
  health: {url: 'http://127.0.0.1:18933/health'}
  dep:
    - name: db
  script: start-app
web:
  pname: web
  dep:
    - {name: app, url: 'http://127.0.0.1:18933/health'}
    - {name: api, host: localhost, port: 18933}
  script: start-web
";

fn stack_down() -> Observation {
    let refused = Err("connection refused");
    obs(vec![
        ("db", with_dep(dead(), "san", "10.0.0.9:3260", refused)),
        ("app", dead()),
        (
            "web",
            with_dep(
                with_dep(dead(), "app", "http://127.0.0.1:18933/health", refused),
                "api",
                "localhost:18933",
                refused,
            ),
        ),
    ])
}

#[test]
fn a_dep_at_a_local_health_address_is_followed_to_the_root_cause() {
    let c = cfg(STACK);
    let p = plan(&c, &stack_down(), &State::default(), NOW);
    assert_eq!(
        said(&c, &p, "web"),
        "waiting on app (dead) ← db (dead) ← san 10.0.0.9:3260 (connection refused), \
         api = app (dead) ← db (dead) ← san 10.0.0.9:3260 (connection refused)"
    );
    assert_eq!(
        said(&c, &p, "app"),
        "waiting on db (dead) ← san 10.0.0.9:3260 (connection refused)"
    );
}

#[test]
fn a_local_service_that_is_up_leaves_its_probe_to_say_why() {
    // The app runs but does not answer yet: its probe says what is wrong, not its verdict.
    let mut o = stack_down();
    o.services.insert("db".into(), alive());
    o.services.insert("app".into(), alive());
    let c = cfg(STACK);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(
        said(&c, &p, "web"),
        "waiting on app http://127.0.0.1:18933/health (connection refused), \
         api localhost:18933 (connection refused)"
    );
    // The app in its grace: followed, like a dep by name.
    let mut o = stack_down();
    o.services.insert("db".into(), alive());
    let mut state = State::default();
    state.services.entry("app".into()).or_default().last_start = Some(NOW - 5.0);
    let c = cfg(STACK);
    let p = plan(&c, &o, &state, NOW);
    assert_eq!(
        said(&c, &p, "web"),
        "waiting on app (starting, in grace for 25s more), \
         api = app (starting, in grace for 25s more)"
    );
}

#[test]
fn a_dep_at_a_local_health_address_that_answers_is_ready() {
    // Something answers at the address: the dep is ready, whatever autoheal thinks of the
    // service (its pname may be stale); readiness is the probe's.
    let mut o = stack_down();
    let web = o.services.get_mut("web").unwrap();
    for d in web.deps.values_mut() {
        d.result = Ok(());
    }
    let c = cfg(STACK);
    let p = plan(&c, &o, &State::default(), NOW);
    assert_eq!(p.verdict("web"), Some(&Verdict::Start));
}

/// `n` services in one chain, every other link at the next one's health address; the last
/// waits on a host that refuses.
fn chain(n: usize) -> String {
    let mut yaml = String::new();
    for i in 0..n {
        let port = 10_000 + i;
        write!(yaml, "s{i}:\n  pname: s{i}\n  script: start\n").unwrap();
        writeln!(yaml, "  health: {{host: 127.0.0.1, port: {port}}}").unwrap();
        let dep = match i {
            _ if i + 1 == n => "{name: far, host: 10.0.0.9, port: 1}".to_string(),
            _ if i % 2 == 0 => format!("{{name: s{}}}", i + 1),
            _ => format!("{{name: s{}, host: localhost, port: {}}}", i + 1, port + 1),
        };
        writeln!(yaml, "  dep: [{dep}]").unwrap();
    }
    yaml
}

#[test]
fn a_chain_of_10000_services_is_planned_with_short_reasons() {
    const N: usize = 10_000;
    let c = cfg(&chain(N));
    let mut o = Observation::default();
    for i in 0..N {
        let svc = format!("s{i}");
        let o1 = if i + 1 == N {
            with_dep(dead(), "far", "10.0.0.9:1", Err("connection refused"))
        } else if i % 2 == 1 {
            let next = format!("s{}", i + 1);
            with_dep(dead(), &next, "localhost:1", Err("connection refused"))
        } else {
            dead()
        };
        o.services.insert(svc, o1);
    }
    // On a thread of a small stack: a recursion per link would overflow it.
    let c2 = c.clone();
    let p = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || plan(&c2, &o, &State::default(), NOW))
        .unwrap()
        .join()
        .expect("plan of a long chain");
    assert_eq!(p.starts(), Vec::<&str>::new());
    let head = said(&c, &p, "s0");
    assert!(
        head.len() <= crate::defaults::MAX_REASON + 100,
        "{}",
        head.len()
    );
    assert!(
        head.starts_with("waiting on s1 (dead) ← s2 (dead) ← s3 (dead) ← "),
        "{head}"
    );
    assert_eq!(head.matches(" ← … ← ").count(), 1, "{head}");
    assert!(
        head.ends_with(" ← s9998 (dead) ← s9999 (dead) ← far 10.0.0.9:1 (connection refused)"),
        "{head}"
    );
    // Short reasons need no eliding.
    assert_eq!(
        said(&c, &p, &format!("s{}", N - 2)),
        "waiting on s9999 (dead) ← far 10.0.0.9:1 (connection refused)"
    );
}

#[test]
fn may_start_on_a_long_chain_decides_without_deep_recursion() {
    const N: usize = 10_000;
    let c = cfg(&chain(N));
    let mut o = Observation::default();
    for i in 0..N {
        o.services.insert(format!("s{i}"), alive());
    }
    let got = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || may_start(&c, &o, &State::default(), NOW, "s0"))
        .unwrap()
        .join()
        .expect("may_start on a long chain");
    assert_eq!(got, Ok(()));
}

#[test]
fn a_wide_graph_gives_short_reasons_too() {
    // Two services a level, each waiting on both of the level below: unbounded, each level's
    // reason would hold both of the one below, 2^40 links at the top.
    const LEVELS: usize = 40;
    let mut yaml = String::new();
    let mut o = Observation::default();
    for l in 0..LEVELS {
        for side in ["a", "b"] {
            let name = format!("l{l}{side}");
            write!(yaml, "{name}:\n  pname: {name}\n  script: start\n").unwrap();
            if l + 1 < LEVELS {
                writeln!(
                    yaml,
                    "  dep: [{{name: l{}a}}, {{name: l{}b}}]",
                    l + 1,
                    l + 1
                )
                .unwrap();
                o.services.insert(name, dead());
            } else {
                writeln!(yaml, "  dep: [{{name: far, host: 10.0.0.9, port: 1}}]").unwrap();
                let refused = Err("connection refused");
                o.services
                    .insert(name, with_dep(dead(), "far", "10.0.0.9:1", refused));
            }
        }
    }
    let c = cfg(&yaml);
    let p = plan(&c, &o, &State::default(), NOW);
    let top = said(&c, &p, "l0a");
    assert!(
        top.len() <= crate::defaults::MAX_REASON + 100,
        "{}",
        top.len()
    );
    assert!(
        top.starts_with("waiting on l1a (dead) ← l2a (dead) ← "),
        "{top}"
    );
    assert!(
        top.ends_with("far 10.0.0.9:1 (connection refused)"),
        "{top}"
    );
}
