//! Lua in the tick: inline chunks deciding starts and restarts, errors at their conf.yaml line,
//! runaway chunks contained while the tick heals the rest, `restart()` through the gate.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn a_lua_dep_decides_the_start() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
svc:
  pname: '{re}'
  dep:
    - name: go
      lua: |
        if file_age("{{dir}}/go") then return true end
        return false, "no go file yet"
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let out = f.run();
    assert!(
        stdout(&out).contains("svc: still down: waiting on go lua (no go file yet)"),
        "{}",
        stdout(&out)
    );
    assert!(f.journal().is_empty());
    std::fs::write(f.path("go"), "").unwrap();
    let out = f.run();
    assert!(stdout(&out).contains("svc: started"), "{}", stdout(&out));
    assert_eq!(f.journal(), vec!["svc"]);
}

#[test]
fn a_failing_check_restarts_an_alive_service() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
svc:
  pname: '{re}'
  check: |
    if file_age("{{dir}}/sick") then return false, "the sick file is there" end
    return true
  grace: 500ms
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    f.run();
    let first = f.pid_of("svc").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(stdout(&f.run()), "", "healthy: nothing to do");
    std::fs::write(f.path("sick"), "").unwrap();
    let out = f.run();
    assert!(
        stdout(&out).contains("svc: restarted: unhealthy (1 failed health observation in a row): the sick file is there"),
        "{}",
        stdout(&out)
    );
    assert!(wait_for(Duration::from_secs(3), || !is_running(first)));
    assert_eq!(f.journal(), vec!["svc", "svc"]);
}

/// An endless loop, a memory bomb, `error()`, `os.exit`, deep recursion and a 10 MB reply to
/// `tcp_exchange`: each fails its own dep, the tick goes on and heals the unrelated service.
/// What is asserted is containment, not which limit a chunk meets first: on a loaded machine a
/// memory bomb or a deep recursion may reach the 1 s time limit before the 64 MiB memory limit
/// or Lua's stack limit (`memory_bomb_hits_the_memory_limit` in lua_host.rs is the test of the
/// memory limit itself).
#[test]
fn runaway_chunks_are_contained_and_the_tick_heals_the_rest() {
    let f = Fixture::new();
    // A server that answers every connection with 10 MB.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let flood = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..10 {
                    if s.write_all(&chunk).is_err() {
                        return;
                    }
                }
            });
        }
    });
    f.config(&format!(
        r#"
settings:
  converge: 0
  lua_timeout: 1s
bad:
  pname: 'never-{{tag}}'
  dep:
    - name: loop
      lua: while true do end
      timeout: 500ms
    - name: bomb
      lua: |
        local t = {{}}
        while true do t[#t + 1] = string.rep("x", 1000000) end
    - name: boom
      lua: error("boom")
    - name: quit
      lua: os.exit(1)
    - name: deep
      lua: |
        local function f() return 1 + f() end
        return f()
    - name: flood
      lua: |
        local reply, err = tcp_exchange("127.0.0.1", {flood}, "hi", {{max = 1000}})
        return reply ~= nil and #reply <= 1000, "got " .. tostring(reply and #reply) .. " " .. tostring(err)
  script: echo bad >> {{dir}}/journal
good:
  pname: '{re}'
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("good", 1)
    ));
    let t = Instant::now();
    let out = f.run();
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(f.journal(), vec!["good"], "{}", stdout(&out));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let j = f.status_json();
    let deps = &j["services"][0]["deps"];
    let reason = |i: usize| deps[i]["reason"].as_str().unwrap_or("").to_string();
    // Each runaway failed its own dep, and only its own.
    for i in 0..5 {
        assert_eq!(deps[i]["ready"], false, "dep {i}: {}", reason(i));
    }
    assert!(reason(0).contains("timed out after 500ms"), "{}", reason(0));
    // The bomb ends on whichever of its two limits it meets first: contained either way.
    assert!(
        ["memory limit of 64 MiB exceeded", "timed out after 1s"]
            .iter()
            .any(|w| reason(1).contains(w)),
        "{}",
        reason(1)
    );
    assert!(
        reason(2).contains("conf.yaml:16: bad.dep[boom].lua: boom"),
        "{}",
        reason(2)
    );
    assert!(
        reason(3).contains("conf.yaml:18: bad.dep[quit].lua"),
        "{}",
        reason(3)
    );
    // Deep recursion ends on Lua's stack limit, the memory limit or (on a busy machine) the
    // time limit, whichever comes first: contained either way.
    assert!(
        [
            "stack overflow",
            "C stack",
            "memory limit",
            "timed out after 1s"
        ]
        .iter()
        .any(|w| reason(4).contains(w)),
        "{}",
        reason(4)
    );
    assert_eq!(deps[5]["ready"], true, "{}", reason(5));
}

#[test]
fn lua_errors_name_their_conf_yaml_line() {
    let f = Fixture::new();
    f.config(
        r#"
web:
  pname: 'never-{tag}'
  check: |
    local a = 1
    return a +
  script: "true"
"#,
    );
    let out = f.autoheal(&["check", "-c", "{dir}/conf.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("conf.yaml:6: web.check:"), "{err}");
    // Nothing runs on a file whose Lua does not compile.
    assert_eq!(f.run().status.code(), Some(2));

    // A runtime error points at the line in conf.yaml too.
    f.config(
        r#"
settings:
  converge: 0
web:
  pname: 'never-{tag}'
  dep:
    - name: api
      lua: |
        local resp = nil
        return resp.status == 200
  script: "true"
"#,
    );
    let j = f.status_json();
    let reason = j["services"][0]["deps"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains(
            "conf.yaml:10: web.dep[api].lua: attempt to index a nil value (local 'resp')"
        ),
        "{reason}"
    );
}

/// `restart()` from a chunk goes through the engine's gate: refused while the target's deps are
/// not ready, accepted (and done by the engine) when they are.
#[test]
fn lua_restart_goes_through_the_gate() {
    let f = Fixture::new();
    let closed = free_port();
    let open = tcp_server();
    f.config(&format!(
        r#"
settings:
  converge: 0
db:
  pname: '{re1}'
  dep:
    - {{name: disk, host: 127.0.0.1, port: {closed}}}
  script: {s1}
cache:
  pname: '{re2}'
  dep:
    - {{name: net, host: 127.0.0.1, port: {open}}}
  grace: 200ms
  script: {s2}
watch:
  pname: '{re3}'
  check: |
    local ok, why = restart("db")
    log("restart db: " .. tostring(ok) .. ", " .. tostring(why))
    local ok2, why2 = restart("cache")
    log("restart cache: " .. tostring(ok2) .. ", " .. tostring(why2))
    return true
  script: {s3}
"#,
        re1 = f.sleeper_re(1),
        re2 = f.sleeper_re(2),
        re3 = f.sleeper_re(3),
        s1 = f.daemon_script("db", 1),
        s2 = f.daemon_script("cache", 2),
        s3 = f.daemon_script("watch", 3),
    ));
    // Start cache and watch (db cannot start: its dep is closed).
    f.run();
    // Scripts of independent services run in parallel: either order.
    let mut first = f.journal();
    first.sort();
    assert_eq!(first, vec!["cache", "watch"]);
    let cache = f.pid_of("cache").unwrap();
    std::thread::sleep(Duration::from_millis(300)); // cache's grace
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains(&format!("watch.check: restart db: false, waiting on disk 127.0.0.1:{closed} (connection refused)")),
        "{log}"
    );
    assert!(
        log.contains("watch.check: restart cache: true, nil"),
        "{log}"
    );
    assert!(
        log.contains("cache: restarted: restart requested by a Lua restart()"),
        "{log}"
    );
    assert!(wait_for(Duration::from_secs(3), || !is_running(cache)));
    let journal = f.journal();
    assert_eq!(journal.len(), 3, "{journal:?}");
    assert_eq!(journal[2], "cache", "db never started: {journal:?}");
    // The dry run refuses, saying so.
    let out = f.autoheal(&[
        "run",
        "--dry-run",
        "-c",
        "{dir}/conf.yaml",
        "--state-dir",
        "{dir}/state",
    ]);
    assert!(
        stdout(&out).contains("restart cache: false, dry run: nothing is restarted"),
        "{}",
        stdout(&out)
    );
}

/// Chunks run side by side: eight checks that each sleep one second cost about one second (one
/// after the other, eight; the bound leaves a busy machine room).
#[test]
fn slow_chunks_run_in_parallel() {
    let f = Fixture::new();
    let mut yaml = String::from("settings:\n  converge: 0\n");
    for i in 0..8 {
        yaml.push_str(&format!(
            "s{i}:\n  pname: 'never-{{tag}}-{i}'\n  dep:\n    - name: slow\n      lua: sleep(1); return false, 'slept'\n  script: 'true'\n"
        ));
    }
    f.config(&yaml);
    let t = Instant::now();
    let j = f.status_json();
    let took = t.elapsed();
    for i in 0..8 {
        assert_eq!(j["services"][i]["deps"][0]["reason"], "slept");
    }
    assert!(
        took < Duration::from_secs(6),
        "8 one-second chunks took {took:?}"
    );
}

/// A chunk stuck inside a library function written in C (a pathological `string.find`, where
/// the instruction hook never runs) is abandoned a second past its limit: the tick heals the
/// rest, goes on converging, does not run that chunk again, and ends.
#[test]
fn a_chunk_stuck_in_a_c_function_is_abandoned() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 3s
stuck:
  pname: 'never-{{tag}}'
  dep:
    - name: find
      lua: |
        local s = string.rep("a", 30000)
        return s:find(".-.-.-.-x")
      timeout: 500ms
  script: echo stuck >> {{dir}}/journal
good:
  pname: '{re}'
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("good", 1)
    ));
    let t = Instant::now();
    let out = f.run();
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(f.journal(), vec!["good"], "{}", stdout(&out));
    // Not hung: the converge budget and one abandoned chunk, with room for a loaded machine.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let log = stdout(&out);
    assert!(
        log.contains("stuck: still down: waiting on find lua (")
            && log.contains(
                "conf.yaml:9: stuck.dep[find].lua: still running 1s past its 500ms limit"
            ),
        "{log}"
    );
    assert!(
        log.contains("not run again"),
        "later rounds reuse the verdict: {log}"
    );
}

/// `restart()` of a service with a Lua dep is judged with that dep's result (it runs beside the
/// asking chunk, so the plan judges it once every result is in); a restart the plan's gate
/// then holds is not done, the service is left as it is and the log says why.
#[test]
fn lua_restart_is_judged_again_once_every_result_is_in() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
web:
  pname: '{re1}'
  dep:
    - name: q
      lua: return true
  grace: 1s
  script: {s1}
other:
  pname: '{re2}'
  check: return false, "never healthy"
  script: {s2}
y:
  pname: '{re3}'
  dep: [{{name: other}}]
  grace: 1s
  script: {s3}
mon:
  pname: '{re4}'
  check: |
    if alive("web") and alive("y") then
      log("web: " .. tostring((restart("web"))))
      log("y: " .. tostring((restart("y"))))
    end
    return true
  script: {s4}
"#,
        re1 = f.sleeper_re(1),
        re2 = f.sleeper_re(2),
        re3 = f.sleeper_re(3),
        re4 = f.sleeper_re(4),
        s1 = f.daemon_script("web", 1),
        s2 = f.daemon_script("other", 2),
        s3 = f.daemon_script("y", 3),
        s4 = f.daemon_script("mon", 4),
    ));
    f.run();
    // y waits on the unhealthy `other`: start it by hand, as an operator would.
    let y = f.start_by_hand("y", 3);
    let web = f.pid_of("web").unwrap();
    std::thread::sleep(Duration::from_millis(1200)); // past every grace
    let out = f.run();
    let log = stdout(&out);
    assert!(log.contains("mon.check: web: true"), "{log}");
    assert!(
        log.contains("web: restarted: restart requested by a Lua restart()"),
        "{log}"
    );
    assert!(wait_for(Duration::from_secs(3), || !is_running(web)));
    assert!(
        log.contains(
            "y: restart requested by a Lua restart() not done: waiting on other (unhealthy: never healthy)"
        ),
        "{log}"
    );
    assert!(!log.contains("y: restarted"), "{log}");
    assert!(is_running(y), "y is left as it is");
}

/// A service's `check_timeout:` is the time limit of its `check:` (not `settings.lua_timeout`).
#[test]
fn check_timeout_limits_the_check() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
  lua_timeout: 10s
svc:
  pname: '{re}'
  check: sleep(5) return true
  check_timeout: 300ms
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    f.run();
    let t = Instant::now();
    let j = f.status_json();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let reason = j["services"][0]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(reason.contains("timed out after 300ms"), "{j}");
}

/// A check that errs (a bug in it, not an answer) is reported, and its dependents wait, but it
/// never restarts the service: only `false` (or nil) from a check that ran counts.
#[test]
fn a_check_that_errs_never_restarts_a_working_service() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
svc:
  pname: '{re}'
  check: |
    local r = http_get("http://127.0.0.1:1/health", {{timeout = 0.2}})
    return r.status == 200
  grace: 100ms
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("svc", 1)
    ));
    let first = f.start_by_hand("svc", 1);
    std::thread::sleep(Duration::from_millis(200)); // past its grace
    for _ in 0..2 {
        let out = f.run();
        let log = stdout(&out);
        assert!(
            log.contains("svc: still unhealthy: its check failed to run: ")
                && log.contains("svc.check: attempt to index a nil value (local 'r')")
                && log.contains("(not counted toward a restart)"),
            "{log}"
        );
    }
    assert!(is_running(first));
    assert_eq!(f.journal(), vec!["svc"], "started by hand only");
}

/// Following a remote dep's restart from Lua: `started(name)` (when the service's own process
/// started) against a fact the dep exposes (here the age of a file its start touches).
#[test]
fn a_check_follows_a_remote_restart_with_started() {
    let f = Fixture::new();
    f.config(&format!(
        r#"
settings:
  converge: 0
  unhealthy_after: 1
app:
  pname: '{re}'
  check: |
    local age = file_age("{{dir}}/db_started")
    if age and os.time() - age > started("app") + 1 then
      return false, "db restarted after app"
    end
    return true
  grace: 1s
  script: {s}
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("app", 1)
    ));
    let first = f.start_by_hand("app", 1);
    std::thread::sleep(Duration::from_millis(2500)); // past its grace, and a second apart
    std::fs::write(f.path("db_started"), "").unwrap();
    let out = f.run();
    assert!(
        stdout(&out).contains("app: restarted: unhealthy (1 failed health observation in a row): db restarted after app"),
        "{}",
        stdout(&out)
    );
    assert!(wait_for(Duration::from_secs(3), || !is_running(first)));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(stdout(&f.run()), "", "app is now newer than db's start");
}

/// `restart()` answers within the asking chunk's own time limit, even while the observation's
/// probes are slower: it refuses, and nothing is restarted behind the chunk's back.
#[test]
fn lua_restart_answers_within_the_chunk_s_time_limit() {
    let f = Fixture::new();
    // Accepts connections (the kernel's backlog) and never answers: an http probe waits.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port();
    f.config(&format!(
        r#"
settings:
  converge: 0
x:
  pname: '{re}'
  grace: 1s
  script: {s}
mon:
  pname: 'never-{{tag}}'
  dep:
    - name: slow
      url: http://127.0.0.1:{port}/
      timeout: 3s
    - name: ask
      lua: |
        local ok, why = restart("x")
        log("restart x: " .. tostring(ok) .. ", " .. tostring(why))
        return true
      timeout: 1s
  script: echo mon >> {{dir}}/journal
"#,
        re = f.sleeper_re(1),
        s = f.daemon_script("x", 1)
    ));
    let x = f.start_by_hand("x", 1);
    std::thread::sleep(Duration::from_millis(1100)); // past x's grace
    let out = f.run();
    let log = stdout(&out);
    assert!(
        log.contains("restart x: false, the probes of this observation did not finish within the chunk's time limit"),
        "{log}"
    );
    assert!(!log.contains("x: restarted"), "{log}");
    assert!(is_running(x));
    drop(mute);
}
