//! Safe as root (issue 8): what a hostile local user or a hostile server could do to a tick,
//! each tried for real and shown closed: forged log lines, a state dir someone else made or
//! planted with symlinks, FIFOs and devices in the state dir, the environment and descriptors
//! a script inherits, a script an interrupted tick left running.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use support::*;

/// A server that answers every connection with `reply`, for the life of the test.
fn replying_server(reply: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

/// A probed server's reply that holds a newline and a whole log line reaches the log, the
/// output and `status` as one escaped line; `status --json` keeps it exact.
#[test]
fn a_forged_log_line_arrives_as_one_escaped_line() {
    const FORGED: &str = "nope\n2026-12-01T00:00:00Z web: started: forged by the server\x1b[2J\n";
    let port = replying_server(FORGED);
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
web:
  pname: '{re}'
  dep:
    - name: api
      lua: |
        local reply, err = tcp_exchange("127.0.0.1", {port}, "hi\n", {{timeout = 2}})
        return false, reply or err
  script: {script}
"#,
        re = f.sleeper_re(1),
        script = f.daemon_script("web", 1),
    ));
    let out = f.run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let escaped = "nope\\n2026-12-01T00:00:00Z web: started: forged by the server\\x1b[2J\\n";
    let file = std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap();
    for text in [stdout(&out), file] {
        assert!(text.contains(escaped), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        for line in text.lines() {
            assert!(
                line.starts_with("20") && !line.contains(": started: forged\n"),
                "{line}"
            );
            assert!(
                !line.starts_with("2026-12-01T00:00:00Z"),
                "a forged line: {line}"
            );
        }
    }
    assert!(f.journal().is_empty(), "nothing started");
    let table = f.autoheal(&[
        "status",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    let table = stdout(&table);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains(escaped), "{table}");
    let json = f.status_json();
    let reason = json["services"][0]["deps"][0]["reason"].as_str().unwrap();
    assert!(reason.contains(FORGED), "{reason:?}");
}
