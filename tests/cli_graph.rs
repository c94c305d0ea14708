//! The graph of services through the real binary: `check` rejects services that wait on each
//! other at their `health:` addresses, `order` labels a dep at a local health address as that
//! service, and `order` never crashes on a file `check` accepts (a 10,000-long chain, random
//! graphs of deps by name and by address).

mod support;

use std::fmt::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::*;

/// A generous bound for a debug build on a loaded 2-core machine; a crash is what is tested.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `autoheal ARGS -c FILE` with its output in files (no pipe a long output could fill),
/// killed and failed past `LIMIT`.
fn autoheal(fx: &Fixture, args: &[&str], file: &Path) -> Output {
    let out = std::fs::File::create(fx.path("stdout")).unwrap();
    let err = std::fs::File::create(fx.path("stderr")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .env_remove("AUTOHEAL_CONFIG")
        .args(args)
        .arg("-c")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let end = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("autoheal {args:?} still running after {LIMIT:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(fx.path("stdout")).unwrap(),
        stderr: std::fs::read(fx.path("stderr")).unwrap(),
    }
}

const WAIT_ON_EACH_OTHER: &str = "\
a:
  pname: aaa
  health: {host: 127.0.0.1, port: 18001}
  dep:
    - {name: b, host: 127.0.0.1, port: 18002}
  script: start-a
b:
  pname: bbb
  health: {host: 127.0.0.1, port: 18002}
  dep:
    - {name: a, host: 127.0.0.1, port: 18001}
  script: start-b
";

#[test]
fn services_that_wait_on_each_other_at_their_health_ports_are_rejected() {
    let fx = Fixture::new();
    let file = fx.config(WAIT_ON_EACH_OTHER);
    let out = autoheal(&fx, &["check"], &file);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let shown = file.display();
    assert_eq!(
        stderr(&out),
        format!(
            "{shown}:1:1: a: dependency cycle: a → b → a\n   \
             |\n \
             1 | a:\n   \
             | ^\n  \
             = help: a's dep `b` is b's `health:` address and b's dep `a` is a's `health:` \
             address, and a dep at a service's `health:` address waits on that service; services \
             that wait on each other never start; remove one of these deps\n\
             \n\
             1 error in {shown}; nothing was started or changed.\n"
        )
    );
    // Every command refuses it the same way: `order` used to overflow its stack (exit 134).
    let out = autoheal(&fx, &["order"], &file);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("a: dependency cycle: a → b → a"));
}

#[test]
fn order_labels_a_dep_at_a_local_health_address_as_that_service() {
    let fx = Fixture::new();
    let file = fx.config(
        "\
db:
  pname: postgres
  health: {host: 127.0.0.1, port: 5432}
  script: start-db
app:
  pname: app
  health: {url: 'http://127.0.0.1:18933/health'}
  dep:
    - {name: db, host: localhost, port: 5432}
    - {name: remote, host: 10.0.0.7, port: 5432}
  script: start-app
web:
  pname: web
  dep:
    - {name: api, host: localhost, port: 18933}
    - {name: app, url: 'http://localhost:18933/health'}
    - {name: other, host: 127.0.1.1, port: 18933}
  script: start-web
",
    );
    let out = autoheal(&fx, &["check"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = autoheal(&fx, &["order"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let levels: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(
        levels,
        vec![
            "level 0  db",
            "level 1  app  after: db (local, by its health address), remote 10.0.0.7:5432 (external)",
            "level 2  web  after: api = app (local, by its health address), app (local, by its \
             health address), other 127.0.1.1:18933 (external)",
        ],
        "{text}"
    );
}

#[test]
fn a_chain_of_10000_services_is_checked_and_ordered() {
    const N: usize = 10_000;
    let fx = Fixture::new();
    let mut yaml = String::new();
    for i in 0..N {
        let port = 10_000 + i;
        write!(yaml, "s{i}:\n  pname: s{i}\n  script: start\n").unwrap();
        writeln!(yaml, "  health: {{host: 127.0.0.1, port: {port}}}").unwrap();
        if i + 1 < N {
            if i % 2 == 0 {
                writeln!(yaml, "  dep: [{{name: s{}}}]", i + 1).unwrap();
            } else {
                writeln!(
                    yaml,
                    "  dep: [{{name: n, host: localhost, port: {}}}]",
                    port + 1
                )
                .unwrap();
            }
        }
    }
    let file = fx.config(&yaml);
    let out = autoheal(&fx, &["check"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = autoheal(&fx, &["order"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("(10000 services, 10000 levels)"),
        "{text:.300}"
    );
    let last = text.lines().last().unwrap();
    assert_eq!(
        last.split_whitespace().take(3).collect::<Vec<_>>(),
        ["level", "9999", "s0"]
    );
    // The ring is one cycle, found once.
    let ring = yaml + &format!("  dep: [{{name: s0, host: localhost, port: {}}}]\n", 10_000);
    let file = fx.config(&ring);
    let out = autoheal(&fx, &["check"], &file);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("dependency cycle: s0 → s1 → ").count(),
        1
    );
}

/// A small deterministic generator (no crate needed for a few hundred numbers).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// A random file of a few services whose health addresses and deps share a few ports, written
/// in every way an address can be: some wait on each other (by name, by address or both).
fn random_file(rng: &mut Lcg) -> String {
    let n = 2 + rng.below(5);
    let host = |rng: &mut Lcg| ["127.0.0.1", "localhost", "LOCALHOST", "127.0.1.1"][rng.below(4)];
    let mut yaml = String::new();
    for i in 0..n {
        write!(yaml, "s{i}:\n  pname: s{i}\n  script: start\n").unwrap();
        let port = 18_000 + rng.below(4);
        match rng.below(4) {
            0 => {}
            1 => writeln!(yaml, "  health: {{host: {}, port: {port}}}", host(rng)).unwrap(),
            2 => writeln!(yaml, "  health: {{url: 'http://{}:{port}/h'}}", host(rng)).unwrap(),
            _ => writeln!(yaml, "  health: {{url: 'http://{}:{port}/'}}", host(rng)).unwrap(),
        }
        let deps = rng.below(3);
        if deps > 0 {
            yaml.push_str("  dep:\n");
        }
        for d in 0..deps {
            let port = 18_000 + rng.below(4);
            match rng.below(3) {
                0 => writeln!(yaml, "    - {{name: s{}}}", rng.below(n)).unwrap(),
                1 => writeln!(
                    yaml,
                    "    - {{name: d{d}, host: {}, port: {port}}}",
                    host(rng)
                )
                .unwrap(),
                _ => writeln!(
                    yaml,
                    "    - {{name: d{d}, url: 'http://{}:{port}/h'}}",
                    host(rng)
                )
                .unwrap(),
            }
        }
    }
    yaml
}

#[test]
fn order_never_crashes_on_a_file_check_accepts() {
    let fx = Fixture::new();
    let mut rng = Lcg(9);
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..60 {
        let yaml = random_file(&mut rng);
        let file = fx.config(&yaml);
        let check = autoheal(&fx, &["check"], &file);
        let order = autoheal(&fx, &["order"], &file);
        match check.status.code() {
            Some(0) => accepted += 1,
            Some(2) => rejected += 1,
            _ => panic!("round {round}: check {:?}\n{yaml}", check.status),
        }
        // `order` loads as `check` does: the same verdict, and never a crash.
        assert_eq!(
            order.status.code(),
            check.status.code(),
            "round {round}:\n{yaml}\n{}",
            stderr(&order)
        );
    }
    // The generator makes both kinds of file.
    assert!(
        accepted > 5 && rejected > 5,
        "{accepted} accepted, {rejected} rejected"
    );
}
