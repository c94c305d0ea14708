//! Alerts (issue 10, item 5), with real processes, real hooks and a real loopback HTTP server:
//! each condition fires once however many ticks it lasts, recovery once; a hook that hangs is
//! killed at its limit and holds back no start; one that fails is logged; `on_event` posts a
//! webhook; a dry run fires nothing; a start whose script exits 0 but whose daemon dies at once
//! is a failed start, said where to look.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::*;

/// The `notify:` line of a command that keeps each alert: its JSON (one line) and its
/// environment. The alerts of one tick are sent at once, so it takes a lock.
fn record(f: &Fixture) -> String {
    std::fs::write(
        f.path("record.sh"),
        f.expand(
            "cat >> {dir}/alerts.jsonl\necho >> {dir}/alerts.jsonl\n\
             echo \"$AUTOHEAL_SCHEMA $AUTOHEAL_EVENT $AUTOHEAL_SERVICE\" >> {dir}/env.txt\n\
             printf '%s\\n' \"$AUTOHEAL_MESSAGE\" >> {dir}/messages.txt\n",
        ),
    )
    .unwrap();
    f.expand("notify: 'flock {dir}/alerts.lock sh {dir}/record.sh'")
}

fn alerts(f: &Fixture) -> Vec<Value> {
    std::fs::read_to_string(f.path("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn kinds(f: &Fixture) -> Vec<String> {
    alerts(f)
        .iter()
        .map(|a| format!("{} {}", a["kind"].as_str().unwrap(), a["service"]))
        .collect()
}

fn log(f: &Fixture) -> String {
    std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap_or_default()
}

/// A service whose start fails until it is fixed: gave-up is sent once over five ticks, the
/// failed start once, and, once it is fixed and reset, recovered once. The JSON is the
/// documented one and the environment says the same.
#[test]
fn each_condition_fires_once_and_recovery_once() {
    let f = Fixture::new();
    let failing = format!(
        "settings:\n  converge: 0s\n  give_up_after: 2\n  backoff: 1s\n  {}\nweb:\n  \
         pname: '{}'\n  grace: 100ms\n  script: 'echo failing; exit 1'\n",
        record(&f),
        f.sleeper_re(1)
    );
    f.config(&failing);
    for _ in 0..5 {
        f.run();
        std::thread::sleep(Duration::from_millis(1200)); // past grace and backoff
    }
    let text = log(&f);
    assert!(
        text.contains("web: giving up after 2 failed restarts"),
        "{text}"
    );
    assert_eq!(
        kinds(&f),
        ["start_failed \"web\"", "gave_up \"web\""],
        "{text}"
    );
    let first = &alerts(&f)[0];
    assert_eq!(first["schema"], 1);
    assert_eq!(first["details"]["how"], "script");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("start failed: script exit 1"),
        "{first}"
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert!(!first["host"].as_str().unwrap().is_empty());
    assert_eq!(
        first["config"].as_str().unwrap(),
        f.path("conf.yaml").display().to_string()
    );
    // Fixed, and reset by its operator: up again, recovered is sent once.
    f.config(&failing.replace("'echo failing; exit 1'", &f.daemon_script("web", 1)));
    assert!(f.reset("web").status.success());
    for _ in 0..2 {
        assert_eq!(f.run().status.code(), Some(0), "{}", log(&f));
    }
    assert_eq!(
        kinds(&f),
        [
            "start_failed \"web\"",
            "gave_up \"web\"",
            "recovered \"web\""
        ]
    );
    let recovered = &alerts(&f)[2];
    assert_eq!(
        recovered["details"]["after"],
        serde_json::json!(["gave_up", "start_failed"])
    );
    let env = std::fs::read_to_string(f.path("env.txt")).unwrap();
    assert_eq!(
        env.lines().collect::<Vec<_>>(),
        ["1 start_failed web", "1 gave_up web", "1 recovered web"]
    );
}

/// Processes whose command line is `cmdline`.
fn processes(cmdline: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
        })
        .filter(|pid| is_running(*pid))
        .collect()
}

/// A chain of two that starts, and a third service whose start fails: its alert's hook hangs.
/// Both starts are made, the tick ends about the hook's limit later, the hook's whole group is
/// gone, and the log says the hook was killed.
#[test]
fn a_hook_that_hangs_is_killed_at_its_limit_and_holds_back_no_start() {
    let f = Fixture::new();
    let hang = format!("sleep 60.{}9", f.tag);
    assert!(f.dir.path().to_str().is_some_and(|d| !d.contains('\'')));
    f.config(&format!(
        "settings:\n  converge: 5s\n  hook_timeout: 2s\n  notify: 'touch {{dir}}/hooked; {hang} & \
         {hang}'\na:\n  \
         pname: '{}'\n  grace: 100ms\n  script: {}\nb:\n  pname: '{}'\n  grace: 100ms\n  dep: \
         [{{name: a}}]\n  script: {}\nc:\n  pname: '{}'\n  grace: 100ms\n  script: 'exit 1'\n",
        f.sleeper_re(1),
        f.daemon_script("a", 1),
        f.sleeper_re(2),
        f.daemon_script("b", 2),
        f.sleeper_re(3),
    ));
    let began = Instant::now();
    let first = f
        .autoheal_cmd(&["run", "-c", "{dir}/conf.yaml", "--state-dir", "{dir}/state"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // While its hook hangs, the tick holds no lock: another tick heals (and is not locked out).
    while !f.path("hooked").exists() {
        assert!(began.elapsed() < Duration::from_secs(20), "{}", log(&f));
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = f.run();
    assert!(!stdout(&second).contains("holds"), "{}", stdout(&second));
    let out = first.wait_with_output().unwrap();
    let took = began.elapsed();
    let text = log(&f);
    assert_eq!(f.journal(), ["a", "b"], "{text}");
    assert!(took < Duration::from_secs(20), "{took:?}: {text}");
    assert!(
        text.contains("autoheal: alert start_failed c: notify killed after timeout 2s; see "),
        "{text}"
    );
    let b_started = text.find("b: started").expect("b started");
    let alert = text.find("alert start_failed").unwrap();
    assert!(b_started < alert, "{text}");
    assert_eq!(out.status.code(), Some(1), "c is still down");
    assert_eq!(
        processes(&hang),
        Vec::<u32>::new(),
        "the hook's group is gone"
    );
}

/// A hook that fails is logged, and the tick's outcome is the healing's, not the hook's.
#[test]
fn a_hook_that_fails_is_logged() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0s\n  notify: 'echo no pager here >&2; exit 3'\nweb:\n  pname: \
         '{}'\n  grace: 100ms\n  script: 'exit 1'\n",
        f.sleeper_re(1)
    ));
    assert_eq!(f.run().status.code(), Some(1));
    let text = log(&f);
    assert!(
        text.contains("autoheal: alert start_failed web: notify exit 3 in"),
        "{text}"
    );
    let hook_log = std::fs::read_to_string(f.state_dir().join("logs").join("notify.log")).unwrap();
    assert!(hook_log.contains("no pager here"), "{hook_log}");
}

/// `on_event` posts the alert to a webhook on loopback: the server gets the JSON.
#[test]
fn on_event_posts_a_webhook() {
    let f = Fixture::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        (head, String::from_utf8(body).unwrap())
    });
    f.config(&format!(
        "settings:\n  converge: 0s\n  on_event: |\n    local r, err = \
         http_post(\"http://127.0.0.1:{port}/hook\", json.encode(event))\n    return r ~= nil \
         and r.status == 200, err\nweb:\n  pname: '{}'\n  grace: 100ms\n  script: 'exit 1'\n",
        f.sleeper_re(1)
    ));
    assert_eq!(f.run().status.code(), Some(1), "{}", log(&f));
    let (head, body) = got.join().unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["kind"], "start_failed");
    assert_eq!(event["service"], "web");
    assert_eq!(event["schema"], 1);
    assert!(!log(&f).contains("on_event failed"), "{}", log(&f));
}

/// A dry run fires nothing.
#[test]
fn a_dry_run_fires_nothing() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0s\n  {}\nweb:\n  pname: '{}'\n  script: 'exit 1'\n",
        record(&f),
        f.sleeper_re(1)
    ));
    let out = f.autoheal(&[
        "run",
        "--dry-run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert!(
        stdout(&out).contains("web: would start"),
        "{}",
        stdout(&out)
    );
    assert!(!f.path("alerts.jsonl").exists());
    assert!(!f.state_dir().exists(), "a dry run writes nothing");
}

/// A script that exits 0 but whose daemon dies at once: the end of its grace says the start
/// failed and where its output is, and the alert says it too.
#[test]
fn a_start_whose_daemon_dies_at_once_is_a_failed_start() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 30s\n  backoff: 5m\n  {}\nweb:\n  pname: '{}'\n  grace: \
         300ms\n  script: 'echo starting; ({} & echo $! > {{dir}}/web.pid; sleep 0.05; kill \
         $(cat {{dir}}/web.pid))'\n",
        record(&f),
        f.sleeper_re(1),
        f.sleeper(1)
    ));
    assert_eq!(f.run().status.code(), Some(1), "{}", log(&f));
    let text = log(&f);
    let script_log = f.state_dir().join("logs").join("web.log");
    // "dead 300ms later", or a little more: the first look after its grace says it.
    let line = text
        .lines()
        .find(|l| l.contains("web: start failed: its script exited 0, but it was dead "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with(&format!(
            " later (no process matches \"{}\"); see {} for what it said",
            f.sleeper_re(1),
            script_log.display()
        )),
        "{line}"
    );
    assert!(text.contains(&script_log.display().to_string()), "{text}");
    assert!(
        std::fs::read_to_string(&script_log)
            .unwrap()
            .contains("starting")
    );
    // Sent at once with its backoff (the second start): in either order.
    let sent = alerts(&f);
    let failed: Vec<&Value> = sent
        .iter()
        .filter(|a| a["kind"] == "start_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{sent:?}");
    assert_eq!(failed[0]["details"]["how"], "died", "{sent:?}");
}

/// A config that stops loading is sent once, through the hooks of its last good version, and
/// its recovery once when it loads again.
#[test]
fn a_config_that_does_not_load_is_alerted_once() {
    let f = Fixture::new();
    let good = format!(
        "settings:\n  converge: 2s\n  {}\nweb:\n  pname: '{}'\n  grace: 100ms\n  script: \
         {}\n",
        record(&f),
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    );
    f.config(&good);
    assert_eq!(f.run().status.code(), Some(0));
    f.config(&good.replace("  script:", "  scrpit:"));
    for _ in 0..3 {
        assert_eq!(f.run().status.code(), Some(2));
    }
    // Strict: nothing is healed, but it is still said (once: it is the same condition).
    assert_eq!(
        f.autoheal(&[
            "run",
            "--strict",
            "-c",
            "{dir}/conf.yaml",
            "--state-dir",
            "{dir}/state"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(kinds(&f), ["config_invalid null"], "{}", log(&f));
    let sent = &alerts(&f)[0];
    assert_eq!(sent["details"]["errors"], 1);
    assert!(
        sent["message"]
            .as_str()
            .unwrap()
            .contains("unknown key `scrpit`"),
        "{sent}"
    );
    f.config(&good);
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(kinds(&f), ["config_invalid null", "recovered null"]);
}

/// A service held on a dep for longer than `notify_after` is sent once, `held`, with why; and
/// `recovered` once it is up.
#[test]
fn a_service_held_longer_than_notify_after_is_sent_once() {
    let f = Fixture::new();
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    f.config(&format!(
        "settings:\n  converge: 0s\n  notify_after: 1s\n  {}\nweb:\n  pname: '{}'\n  grace: \
         100ms\n  dep: [{{name: db, host: 127.0.0.1, port: {port}}}]\n  script: {}\n",
        record(&f),
        f.sleeper_re(1),
        f.daemon_script("web", 1)
    ));
    assert_eq!(f.run().status.code(), Some(1));
    assert_eq!(
        kinds(&f),
        Vec::<String>::new(),
        "not yet: held for less than 1s"
    );
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..3 {
        assert_eq!(f.run().status.code(), Some(1));
    }
    assert_eq!(kinds(&f), ["held \"web\""]);
    let held = &alerts(&f)[0];
    assert!(
        held["details"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "waiting on db 127.0.0.1:{port} (connection refused)"
            )),
        "{held}"
    );
    let _db = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert_eq!(f.run().status.code(), Some(0), "{}", log(&f));
    assert_eq!(kinds(&f), ["held \"web\"", "recovered \"web\""]);
}

/// Text from outside (here a Lua check's reason, as a probed server could make it) reaches the
/// hook as the log has it: one line, a NUL or an escape written out; the JSON keeps it exact.
#[test]
fn what_comes_from_outside_reaches_the_hook_as_one_line() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0s\n  notify_after: 0s\n  {}\nweb:\n  pname: '{}'\n  dep: \
         [{{name: q, lua: 'return false, \"bad\\0x\\nFORGED: y\\27[31m\"'}}]\n  script: \
         'true'\n",
        record(&f),
        f.sleeper_re(1)
    ));
    assert_eq!(f.run().status.code(), Some(1), "{}", log(&f));
    assert_eq!(kinds(&f), ["held \"web\""], "{}", log(&f));
    let messages = std::fs::read_to_string(f.path("messages.txt")).unwrap();
    assert_eq!(messages.lines().count(), 1, "{messages}");
    assert!(
        messages.contains("waiting on q lua (bad\\x00x\\nFORGED: y\\x1b[31m)"),
        "{messages}"
    );
    assert!(!messages.contains('\x1b'));
}

/// A service may be called `autoheal`: its alerts are its own, not the config's.
#[test]
fn a_service_called_autoheal_is_alerted_once_like_any() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0s\n  notify_after: 0s\n  {}\nautoheal:\n  pname: '{}'\n  \
         dep: [{{name: q, lua: 'return false'}}]\n  script: 'true'\n",
        record(&f),
        f.sleeper_re(1)
    ));
    for _ in 0..3 {
        assert_eq!(f.run().status.code(), Some(1));
    }
    assert_eq!(kinds(&f), ["held \"autoheal\""], "{}", log(&f));
}

/// A service taken out of the file and put back is alerted again: what was sent for it is
/// forgotten with it.
#[test]
fn a_service_put_back_is_alerted_again() {
    let f = Fixture::new();
    let head = format!(
        "settings:\n  converge: 0s\n  notify_after: 0s\n  {}\nother:\n  pname: '{}'\n  \
         script: {}\n",
        record(&f),
        f.sleeper_re(2),
        f.daemon_script("other", 2)
    );
    let web = format!(
        "web:\n  pname: '{}'\n  dep: [{{name: q, lua: 'return false'}}]\n  script: 'true'\n",
        f.sleeper_re(1)
    );
    let both = format!("{head}{web}");
    f.config(&both);
    assert_eq!(f.run().status.code(), Some(1));
    assert_eq!(kinds(&f), ["held \"web\""], "{}", log(&f));
    f.config(&head);
    assert_eq!(f.run().status.code(), Some(0), "{}", log(&f));
    let state = std::fs::read_to_string(f.state_dir().join("state.json")).unwrap();
    assert!(!state.contains("\"web\""), "{state}");
    f.config(&both);
    assert_eq!(f.run().status.code(), Some(1));
    assert_eq!(kinds(&f), ["held \"web\"", "held \"web\""], "{}", log(&f));
}

/// What `on_event` logs is in the log, under its label.
#[test]
fn on_event_log_lines_are_logged() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0s\n  on_event: |\n    log(\"hook sees \" .. event.kind)\n    \
         return true\nweb:\n  pname: '{}'\n  grace: 100ms\n  script: 'exit 1'\n",
        f.sleeper_re(1)
    ));
    assert_eq!(f.run().status.code(), Some(1));
    let text = log(&f);
    assert!(
        text.contains("settings.on_event: hook sees start_failed"),
        "{text}"
    );
}

/// A planned window pages no one: a paused service and the services waiting only on it send
/// no `held`, and `notify_after` counts from the end of the pause.
#[test]
fn a_pause_and_its_dependents_page_no_one() {
    let f = Fixture::new();
    f.config(&format!(
        "settings:\n  converge: 0s\n  notify_after: 1s\n  {}\ndb:\n  pname: '{}'\n  grace: \
         100ms\n  script: {}\nweb:\n  pname: '{}'\n  grace: 100ms\n  dep: [{{name: db}}]\n  \
         script: {}\napi:\n  pname: '{}'\n  grace: 100ms\n  dep: [{{name: web}}]\n  script: {}\n",
        record(&f),
        f.sleeper_re(1),
        f.daemon_script("db", 1),
        f.sleeper_re(2),
        f.daemon_script("web", 2),
        f.sleeper_re(3),
        f.daemon_script("api", 3),
    ));
    let pause = f.autoheal(&[
        "pause",
        "db",
        "--reason",
        "upgrade",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert!(pause.status.success(), "{}", stderr(&pause));
    assert_eq!(f.run().status.code(), Some(1));
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..2 {
        assert_eq!(f.run().status.code(), Some(1));
    }
    assert!(log(&f).contains("api: still down: waiting on web (dead) ← db (dead, paused by"));
    assert_eq!(kinds(&f), Vec::<String>::new(), "{}", log(&f));
}
