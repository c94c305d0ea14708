//! The Lua host against real things on loopback: every primitive, verdicts, the conf.yaml line
//! mapping of syntax and runtime errors, and the limits (endless loop, memory bomb, recursion,
//! os.exit, io, huge replies, require outside lua dirs).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use autoheal::config::{self, Config, LuaChunk};
use autoheal::lua::{self, World};

/// A world of named services, some alive, with a restart gate that refuses what the test says.
#[derive(Default)]
struct TestWorld {
    alive: HashMap<String, bool>,
    started: HashMap<String, f64>,
    refuse: HashMap<String, String>,
    restarted: Mutex<Vec<String>>,
    logs: Mutex<Vec<String>>,
}

impl World for TestWorld {
    fn alive(&self, service: &str) -> Result<bool, String> {
        self.alive
            .get(service)
            .copied()
            .ok_or_else(|| format!("no service `{service}` in this file"))
    }
    fn started(&self, service: &str) -> Result<Option<f64>, String> {
        let alive = self.alive(service)?;
        Ok(self.started.get(service).copied().filter(|_| alive))
    }
    fn restart(&self, service: &str, _: Instant) -> Result<(), String> {
        if let Some(why) = self.refuse.get(service) {
            return Err(why.clone());
        }
        self.restarted.lock().unwrap().push(service.to_string());
        Ok(())
    }
    fn log(&self, label: &str, msg: &str) {
        self.logs.lock().unwrap().push(format!("{label}: {msg}"));
    }
}

/// A config whose service `web` has `src` as its `check:`, starting at line 5 of conf.yaml.
fn config_with(src: &str) -> Config {
    let mut yaml = String::from(
        "settings:\n  state_dir: /tmp\nweb:\n  pname: web-nothing\n  script: \"true\"\n  check: |\n",
    );
    for line in src.lines() {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    config::load_str(&yaml, Path::new("conf.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn check_of(config: &Config) -> &LuaChunk {
    config.services[0].check.as_ref().unwrap()
}

fn run_with(src: &str, timeout: Duration, world: &TestWorld) -> Result<(), String> {
    let config = config_with(src);
    lua::run_chunk(&config, check_of(&config), timeout, world)
}

fn run(src: &str) -> Result<(), String> {
    run_with(src, Duration::from_secs(5), &TestWorld::default())
}

/// A listener on a free loopback port that answers each connection with `reply(request)`.
fn server(reply: impl Fn(&[u8]) -> Vec<u8> + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = s.write_all(&reply(&buf[..n]));
        }
    });
    port
}

/// A tiny HTTP/1.0 server: GET /json → JSON body, /down → 503, anything else → 200 "hello".
fn http_server() -> u16 {
    server(|req| {
        let req = String::from_utf8_lossy(req);
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        let method = req.split_whitespace().next().unwrap_or("").to_string();
        let (status, body, ctype) = match path.as_str() {
            "/json" => (
                "200 OK",
                r#"{"status":"UP","db":{"ok":true},"n":[1,2,3]}"#.to_string(),
                "application/json",
            ),
            "/down" => ("503 Service Unavailable", "down".to_string(), "text/plain"),
            "/echo" => (
                "200 OK",
                format!("method={method} auth={}", req.contains("x-token: abc")),
                "text/plain",
            ),
            _ => ("200 OK", "hello".to_string(), "text/plain"),
        };
        format!(
            "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn verdicts() {
    assert_eq!(run("return true"), Ok(()));
    assert_eq!(run("return 0"), Ok(()));
    assert_eq!(run("return false"), Err("returned false".into()));
    assert_eq!(run("return nil"), Err("returned nil".into()));
    assert_eq!(run("local x = 1"), Err("returned nil".into()));
    assert_eq!(run("return false, \"not yet\""), Err("not yet".into()));
    assert_eq!(run("return nil, 'gone'"), Err("gone".into()));
    // A one-expression chunk is its own return value.
    assert_eq!(run("1 == 1"), Ok(()));
    assert_eq!(run("1 == 2"), Err("returned false".into()));
}

#[test]
fn runtime_errors_name_the_conf_yaml_line() {
    // The chunk starts at line 7 of conf.yaml; its line 2 is line 8.
    assert_eq!(
        run("local x = 1\nreturn resp.status == 200"),
        Err("conf.yaml:8: web.check: attempt to index a nil value (global 'resp')".into())
    );
    assert_eq!(
        run("local a = 1\nlocal b = 2\nerror(\"boom\")"),
        Err("conf.yaml:9: web.check: boom".into())
    );
    // A misused primitive: the line of the call.
    let err = run("local p = 1\nreturn tcp_probe('127.0.0.1', 70000)").unwrap_err();
    assert_eq!(
        err,
        "conf.yaml:8: web.check: port must be 1..65535, not 70000"
    );
    // An error inside a function defined in the chunk: the line where it is raised.
    let err = run("local function f()\n  return nil + 1\nend\nreturn f()").unwrap_err();
    assert!(
        err.starts_with("conf.yaml:8: web.check: attempt to perform arithmetic on a nil value"),
        "{err}"
    );
}

#[test]
fn syntax_errors_name_the_conf_yaml_line() {
    let config = config_with("local x = 1\nif x then\nreturn true");
    let diags = lua::check_config(&config);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!((d.file.as_str(), d.line, d.col), ("conf.yaml", 9, 0));
    assert_eq!(d.context, "web.check");
    assert_eq!(
        d.message,
        "'end' expected (to close 'if' at line 8) near <eof>"
    );
    assert_eq!(
        d.headline(),
        "conf.yaml:9: web.check: 'end' expected (to close 'if' at line 8) near <eof>"
    );
    // run_chunk reports the same error the same way.
    let err = lua::run_chunk(
        &config,
        check_of(&config),
        Duration::from_secs(1),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "conf.yaml:9: web.check: 'end' expected (to close 'if' at line 8) near <eof>"
    );
}

#[test]
fn long_labels_still_map_lines() {
    let long = "a_service_with_a_rather_long_name";
    let yaml = format!(
        "{long}:\n  pname: x\n  script: \"true\"\n  dep:\n    - name: a_dependency_with_an_even_longer_name\n      lua: |\n        local x = 1\n        return x.y\n"
    );
    let config = config::load_str(&yaml, Path::new("conf.yaml")).unwrap();
    let autoheal::config::Dep::Lua { chunk, .. } = &config.services[0].deps[0] else {
        panic!()
    };
    let err = lua::run_chunk(
        &config,
        chunk,
        Duration::from_secs(1),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        format!(
            "conf.yaml:8: {}: attempt to index a number value (local 'x')",
            chunk.label
        )
    );
}

#[test]
fn syntax_error_in_a_dep_chunk() {
    let yaml = "web:\n  pname: x\n  script: \"true\"\n  dep:\n    - name: queue\n      lua: return tcp_probe(\"10.0.0.9\" 5672)\n";
    let config = config::load_str(yaml, Path::new("/etc/autoheal/conf.yaml")).unwrap();
    let diags = lua::check_config(&config);
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].headline(),
        "/etc/autoheal/conf.yaml:6: web.dep[queue].lua: ')' expected near '5672'"
    );
}

#[test]
fn check_config_resolves_modules() {
    let config = config_with("reddis.ping{port=6379}");
    let diags = lua::check_config(&config);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].line, 7);
    assert!(
        diags[0]
            .message
            .starts_with("no Lua module `reddis` (searched: "),
        "{}",
        diags[0].message
    );
    assert_eq!(diags[0].help.as_deref(), Some("did you mean `redis`?"));

    let config = config_with("local m = require \"nosuchmod\"\nreturn true");
    let diags = lua::check_config(&config);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].line, 7);

    // A module that does not compile: reported in its own file, named by the chunk using it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.lua"),
        "local M = {}\nfunction M.f(\nreturn M\n",
    )
    .unwrap();
    let yaml = format!(
        "settings:\n  lua_path: {}\nweb:\n  pname: x\n  script: \"true\"\n  check: broken.f()\n",
        dir.path().display()
    );
    let config = config::load_str(&yaml, Path::new("conf.yaml")).unwrap();
    let diags = lua::check_config(&config);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let broken = dir.path().join("broken.lua");
    assert_eq!(
        diags[0].headline(),
        format!(
            "{}:3: web.check: <name> or '...' expected near 'return'",
            broken.display()
        )
    );

    for ok in [
        "redis.ping{port=6379}",
        "local r = require(\"redis\")\nreturn r.ping{port=1}",
        "local ah = require 'autoheal'\nreturn ah.tcp_probe('127.0.0.1', 1)",
        "return http_probe('http://127.0.0.1:1/')",
        "string.len('x') > 0",
    ] {
        assert_eq!(lua::check_config(&config_with(ok)), vec![], "{ok}");
    }
}

#[test]
fn tcp_probe_against_real_listeners() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    assert_eq!(
        run(&format!("return tcp_probe('127.0.0.1', {port})")),
        Ok(())
    );
    let closed = closed_port();
    assert_eq!(
        run(&format!(
            "return tcp_probe('127.0.0.1', {closed}, {{timeout=1}})"
        )),
        Err("connection refused".into())
    );
    // Both values reach Lua.
    assert_eq!(
        run(&format!(
            "local ok, why = tcp_probe('127.0.0.1', {closed})\nreturn not ok and why == 'connection refused'"
        )),
        Ok(())
    );
}

#[test]
fn http_primitives_against_a_real_server() {
    let port = http_server();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(run(&format!("return http_probe('{base}/')")), Ok(()));
    assert_eq!(
        run(&format!("return http_probe('{base}/down')")),
        Err("HTTP 503".into())
    );
    assert_eq!(
        run(&format!("return http_probe('{base}/down', {{status=503}})")),
        Ok(())
    );
    assert_eq!(
        run(&format!(
            "return http_probe('{base}/down', {{status={{500,599}}}})"
        )),
        Ok(())
    );
    assert_eq!(
        run(&format!("return http_probe('{base}/', {{body='hell'}})")),
        Ok(())
    );
    assert!(
        run(&format!("return http_probe('{base}/', {{body='nope'}})"))
            .unwrap_err()
            .contains("body lacks")
    );
    assert_eq!(
        run(&format!(
            "local r = http_get('{base}/echo', {{method='post', headers={{['X-Token']='abc'}}}})\nreturn r.body == 'method=POST auth=true', r.body"
        )),
        Ok(())
    );
    // http_get + json: read a field of a JSON health endpoint.
    let src = format!(
        "local r, err = http_get('{base}/json')\nif not r then return false, err end\nlocal j = json.decode(r.body)\nreturn r.status == 200 and r.headers['content-type'] == 'application/json' and j.status == 'UP' and j.db.ok and #j.n == 3"
    );
    assert_eq!(run(&src), Ok(()));
    let closed = closed_port();
    assert_eq!(
        run(&format!(
            "local r, err = http_get('http://127.0.0.1:{closed}/')\nreturn r == nil and err ~= nil, err"
        )),
        Ok(())
    );
}

#[test]
fn json_round_trip() {
    assert_eq!(
        run(
            r#"local s = json.encode({a = {1, 2, "x"}, b = true, c = json.null})
               local t = json.decode(s)
               return t.a[3] == "x" and t.b == true and t.c == json.null, s"#
        ),
        Ok(())
    );
    assert_eq!(
        run(
            "local v, err = json.decode('{bad')\nreturn v == nil and err:find('invalid JSON') ~= nil, err"
        ),
        Ok(())
    );
    assert_eq!(
        run(
            "local t = {} t.self = t\nlocal v, err = json.encode(t)\nreturn v == nil, 'encoded a cycle'"
        ),
        Ok(())
    );
}

/// json.encode and json.decode work outside the Lua memory limit, so they have their own bound:
/// 1 MiB of JSON text. Shared subtables cannot blow an encoding up past it.
#[test]
fn json_size_is_bounded() {
    let t = Duration::from_secs(2);
    let within = Duration::from_secs(10);
    let bomb = |rounds: u32| {
        format!(
            "local s = string.rep('x', 1000)\nlocal t = {{s, s}}\nfor i = 1, {rounds} do t = {{t, t}} end\n\
             local v, err = json.encode(t)\n\
             return v == nil and err == 'cannot encode: the result would be larger than 1 MiB', err or #v"
        )
    };
    assert_eq!(run_within(&bomb(11), t, within), Ok(()));
    assert_eq!(run_within(&bomb(40), t, within), Ok(()));
    // Up to the bound, as before (keys sorted, compact).
    assert_eq!(
        run(
            r#"local v = json.encode({b = 1, a = {1, 2.5, "x\n"}, c = json.null, [3] = false})
               return v == '{"3":false,"a":[1,2.5,"x\\n"],"b":1,"c":null}', v"#
        ),
        Ok(())
    );
    assert_eq!(
        run(
            "local v = json.encode({string.rep('x', 1000000)})\nlocal w = json.encode(string.rep('y', 1048574))\nreturn #v == 1000004 and #w == 1048576, #v"
        ),
        Ok(())
    );
    assert_eq!(
        run(
            "local v, err = json.encode({string.rep('x', 1048575)})\nreturn v == nil and err == 'cannot encode: the result would be larger than 1 MiB', err"
        ),
        Ok(())
    );
    // json.decode takes at most 1 MiB of text.
    assert_eq!(
        run(
            "local v = json.decode('[\"' .. string.rep('x', 1000000) .. '\"]')\nreturn #v[1] == 1000000"
        ),
        Ok(())
    );
    assert_eq!(
        run(
            "local v, err = json.decode('\"' .. string.rep('x', 1048575) .. '\"')\n\
             return v == nil and err == 'cannot decode: the text is 1048577 bytes, more than 1 MiB', err"
        ),
        Ok(())
    );
}

/// `log` and `print` are bounded: a message is cut at 2 KiB (with a marker saying how long it
/// was), and one run writes at most 100 lines (then one line saying the rest are dropped).
#[test]
fn log_is_bounded() {
    let t = Duration::from_secs(5);
    let world = TestWorld::default();
    assert_eq!(
        run_with(
            "for i = 1, 1000 do log(string.rep('x', 100000)) end\nreturn true",
            t,
            &world
        ),
        Ok(())
    );
    let logs = std::mem::take(&mut *world.logs.lock().unwrap());
    assert_eq!(logs.len(), 101);
    let cut = format!(
        "web.check: {}… [truncated: 100000 bytes in all]",
        "x".repeat(2048)
    );
    assert!(logs[..100].iter().all(|l| *l == cut), "{}", &logs[0]);
    assert_eq!(
        logs[100],
        "web.check: more than 100 log lines in one run; the rest are dropped"
    );
    // print: the same limits, its arguments joined by tabs before the cut; a cut never splits
    // a character.
    assert_eq!(
        run_with(
            "print('a', 1, nil, true, string.rep('y', 5000))\nlog('a' .. string.rep('é', 2000))\nlog('short')\nreturn true",
            t,
            &world
        ),
        Ok(())
    );
    let logs = std::mem::take(&mut *world.logs.lock().unwrap());
    assert_eq!(logs.len(), 3);
    assert_eq!(
        logs[0],
        format!(
            "web.check: a\t1\tnil\ttrue\t{}… [truncated: 5013 bytes in all]",
            "y".repeat(2048 - 13)
        )
    );
    assert_eq!(
        logs[1],
        format!(
            "web.check: a{}… [truncated: 4001 bytes in all]",
            "é".repeat(1023)
        )
    );
    assert_eq!(logs[2], "web.check: short");
    // The count is per run.
    assert_eq!(
        run_with("for i = 1, 150 do print(i) end\nreturn true", t, &world),
        Ok(())
    );
    assert_eq!(world.logs.lock().unwrap().len(), 101);
}

#[test]
fn tcp_exchange_and_its_bounds() {
    let echo = server(|req| {
        let mut r = b"+".to_vec();
        r.extend_from_slice(req);
        r
    });
    assert_eq!(
        run(&format!(
            "local r, err = tcp_exchange('127.0.0.1', {echo}, 'PING\\r\\n', {{stop='\\r\\n'}})\nreturn r == '+PING\\r\\n', r or err"
        )),
        Ok(())
    );
    // A server that sends 10 MB and keeps going: the reply is bounded by `max`.
    let huge = server(|_| vec![b'x'; 10 * 1024 * 1024]);
    let start = Instant::now();
    assert_eq!(
        run(&format!(
            "local r = tcp_exchange('127.0.0.1', {huge}, 'hi', {{max=1000}})\nreturn #r == 1000, #r"
        )),
        Ok(())
    );
    assert_eq!(
        run(&format!(
            "local r = tcp_exchange('127.0.0.1', {huge}, 'hi')\nreturn #r == 65536, #r"
        )),
        Ok(())
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    // A server that never answers: bounded by opts.timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = silent.local_addr().unwrap().port();
    let start = Instant::now();
    let err = run(&format!(
        "return tcp_exchange('127.0.0.1', {sport}, 'x', {{timeout=0.3}})"
    ))
    .unwrap_err();
    assert_eq!(err, "timed out after 300ms waiting for a reply");
    assert!(start.elapsed() < Duration::from_secs(2));
    let closed = closed_port();
    assert_eq!(
        run(&format!("return tcp_exchange('127.0.0.1', {closed}, 'x')")),
        Err("connection refused".into())
    );
}

/// `opts.done`: reading stops as soon as the reply so far satisfies a Lua function, with a
/// server that keeps the connection open after answering (a length-prefixed message here).
#[test]
fn tcp_exchange_done_stops_at_a_complete_message() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                // In two pieces, then silence for longer than any check waits.
                let _ = s.write_all(b"\x00\x05he");
                std::thread::sleep(Duration::from_millis(50));
                let _ = s.write_all(b"llo");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = s.read(&mut [0u8; 64]);
            });
        }
    });
    let whole = "function(r) calls = calls + 1 return #r >= 2 and #r >= 2 + r:byte(2) end";
    let start = Instant::now();
    assert_eq!(
        run(&format!(
            "calls = 0\nlocal r, err = tcp_exchange('127.0.0.1', {port}, '', {{timeout = 5, done = {whole}}})\n\
             return r == '\\0\\5hello' and calls >= 1, tostring(r or err) .. ' ' .. calls"
        )),
        Ok(())
    );
    // Well under the 5 s that waiting for the timeout would take, with room for a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // Never satisfied: a timeout is an error, as with `stop`.
    let err = run(&format!(
        "return tcp_exchange('127.0.0.1', {port}, '', {{timeout = 0.3, done = function() return false end}})"
    ))
    .unwrap_err();
    assert_eq!(
        err,
        "timed out after 300ms (got 7 bytes: \"\\0\\u{5}hello\")"
    );
    // An error in `done` is the chunk's error; `done` must be a function.
    assert_eq!(
        run(&format!(
            "return tcp_exchange('127.0.0.1', {port}, '', {{done = function()\nerror('not this')\nend}})"
        )),
        Err("conf.yaml:8: web.check: not this".into())
    );
    assert_eq!(
        run(&format!(
            "return tcp_exchange('127.0.0.1', {port}, '', {{done = 1}})"
        )),
        Err("conf.yaml:7: web.check: done must be a function, got integer".into())
    );
}

#[test]
fn probes_count_against_the_chunk_time_limit() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = silent.local_addr().unwrap().port();
    let start = Instant::now();
    // opts.timeout asks for 10 s, the chunk has 400 ms.
    let err = run_with(
        &format!("tcp_exchange('127.0.0.1', {sport}, 'x', {{timeout=10}})\nreturn tcp_exchange('127.0.0.1', {sport}, 'x', {{timeout=10}})"),
        Duration::from_millis(400),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert!(err.contains("timed out after"), "{err}");
    // Not the 10 s a probe asked for (twice): the chunk's limit, with room for a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let err = run_with(
        "sleep(10) return true",
        Duration::from_millis(300),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(err, "timed out after 300ms");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn started_gives_a_service_s_process_start_time() {
    let world = TestWorld {
        alive: HashMap::from([("db".to_string(), true), ("app".to_string(), false)]),
        started: HashMap::from([("db".to_string(), 1_800_000_100.5)]),
        ..Default::default()
    };
    let t = Duration::from_secs(5);
    assert_eq!(
        run_with("return started('db') == 1800000100.5", t, &world),
        Ok(())
    );
    assert_eq!(
        run_with(
            "local t, why = started('app') return t == nil, why",
            t,
            &world
        ),
        Ok(())
    );
    assert_eq!(
        run_with("return select(2, started('app'))", t, &world),
        Ok(()),
        "the reason is a string"
    );
    assert_eq!(
        run_with("return require('autoheal').started('db') > 0", t, &world),
        Ok(())
    );
    assert_eq!(
        run_with("return started('nope')", t, &world),
        Err("conf.yaml:7: web.check: started: no service `nope` in this file".into())
    );
}

#[test]
fn alive_by_name_and_spec() {
    let world = TestWorld {
        alive: HashMap::from([("db".to_string(), true), ("cache".to_string(), false)]),
        ..Default::default()
    };
    let t = Duration::from_secs(5);
    assert_eq!(run_with("return alive('db')", t, &world), Ok(()));
    assert_eq!(
        run_with("return alive('cache')", t, &world),
        Err("cache is dead".into())
    );
    assert_eq!(
        run_with("local x = 1\nreturn alive('nope')", t, &world),
        Err("conf.yaml:8: web.check: alive: no service `nope` in this file".into())
    );
    // A real process, by pname and by pid file.
    // Started through a shell that exits, so that it leaves the test's own process tree
    // (which pname never matches).
    let out = std::process::Command::new("sh")
        .args(["-c", "sleep 31.4159 >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("s.pid");
    std::fs::write(&pid_file, pid.to_string()).unwrap();
    let r1 = run_with("return alive{pname='sleep 31\\\\.4159'}", t, &world);
    let r2 = run_with(
        &format!("return alive{{pid_file='{}'}}", pid_file.display()),
        t,
        &world,
    );
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(r1, Ok(()));
    assert_eq!(r2, Ok(()));
    let r = run_with("return alive{pname='no-such-process-[x]yz'}", t, &world).unwrap_err();
    assert!(r.starts_with("no process matches"), "{r}");
    let r = run_with(
        &format!("return alive{{pid_file='{}'}}", pid_file.display()),
        t,
        &world,
    )
    .unwrap_err();
    assert!(r.contains("not running") || r.contains("zombie"), "{r}");
}

#[test]
fn restart_goes_through_the_world() {
    let world = TestWorld {
        refuse: HashMap::from([("web".to_string(), "waiting on db (dead)".to_string())]),
        ..Default::default()
    };
    let t = Duration::from_secs(5);
    assert_eq!(
        run_with("return restart('web')", t, &world),
        Err("waiting on db (dead)".into())
    );
    assert_eq!(run_with("return restart('worker')", t, &world), Ok(()));
    assert_eq!(*world.restarted.lock().unwrap(), vec!["worker".to_string()]);
    // log and print go to the world, labelled.
    assert_eq!(
        run_with("log('hello') print('a', 1) return true", t, &world),
        Ok(())
    );
    assert_eq!(
        *world.logs.lock().unwrap(),
        vec![
            "web.check: hello".to_string(),
            "web.check: a\t1".to_string()
        ]
    );
    // The same functions through require "autoheal".
    assert_eq!(
        run_with(
            "local ah = require 'autoheal'\nreturn ah.restart('web')",
            t,
            &world
        ),
        Err("waiting on db (dead)".into())
    );
}

#[test]
fn exec_env_file_age_disk_free() {
    assert_eq!(
        run(
            "local ok, code, out = exec('echo hi; echo err >&2; exit 3')\nreturn not ok and code == 3 and out == 'hi\\nerr\\n', out"
        ),
        Ok(())
    );
    assert_eq!(
        run("local ok, code, out = exec('true')\nreturn ok and code == 0 and out == ''"),
        Ok(())
    );
    // Timed out: the whole process group is killed, output so far is kept.
    let start = Instant::now();
    assert_eq!(
        run(
            "local ok, code, out, why = exec('echo started; sleep 30 & sleep 30', {timeout=0.3})\nreturn not ok and code == nil and out == 'started\\n' and why == 'timed out after 300ms', why"
        ),
        Ok(())
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    // Output is bounded.
    assert_eq!(
        run(
            "local ok, code, out = exec('head -c 1000000 /dev/zero')\nreturn ok and #out == 65536, #out"
        ),
        Ok(())
    );
    // SAFETY-free: set a variable for this process only, read it from Lua.
    assert_eq!(
        run("return env('PATH') ~= nil and env('AUTOHEAL_NO_SUCH_VAR') == nil"),
        Ok(())
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("beat");
    std::fs::write(&f, "x").unwrap();
    assert_eq!(
        run(&format!(
            "local a = file_age('{}')\nreturn a >= 0 and a < 10, a",
            f.display()
        )),
        Ok(())
    );
    assert_eq!(
        run(
            "local a, err = file_age('/no/such/file')\nreturn a == nil and err == '/no/such/file: no such file or directory', err"
        ),
        Ok(())
    );
    assert_eq!(
        run("local b = disk_free('/')\nreturn math.type(b) == 'integer' and b > 0, b"),
        Ok(())
    );
    assert_eq!(
        run("return os.time() > 0 and os.clock() >= 0 and os.date('%Y') ~= nil"),
        Ok(())
    );
}

/// The largest regular file (a memfd included) this process has open, in bytes.
fn largest_open_file() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

/// What exec keeps of a command's output is bounded while the command runs (64 KiB kept, the
/// rest read and thrown away), and nothing a command leaves behind can make it grow after exec
/// returned: the output pipe is closed then.
#[test]
fn exec_output_is_bounded_while_and_after_it_runs() {
    // Watch this process's open files while a command writes as fast as it can.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut largest = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                largest = largest.max(largest_open_file());
                std::thread::sleep(Duration::from_millis(10));
            }
            largest
        })
    };
    let start = Instant::now();
    let r = run(
        "local ok, code, out, why = exec('cat /dev/zero', {timeout = 0.5})\n\
         return not ok and code == nil and #out == 65536 and why == 'timed out after 500ms', \
         tostring(#out) .. ' ' .. tostring(why)",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let largest = watcher.join().unwrap();
    assert_eq!(r, Ok(()));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        largest <= 1 << 20,
        "an open file of this process grew to {largest} bytes"
    );
    // A command that exits at once but leaves a writer behind: exec returns at once, and the
    // writer cannot go on writing into anything of ours.
    let world = TestWorld::default();
    let start = Instant::now();
    let r = run_with(
        "local ok, code, out = exec('(sleep 0.3; exec cat /dev/zero) & echo $!')\n\
         return false, out",
        Duration::from_secs(5),
        &world,
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let pid: i32 = r.unwrap_err().trim().parse().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while !gone(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = !gone(pid);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        !survived,
        "the writer exec left behind was still running 5s after it started writing"
    );
}

#[test]
fn endless_loop_is_cut_at_the_time_limit() {
    let start = Instant::now();
    let err = run_with(
        "while true do end",
        Duration::from_millis(300),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(err, "timed out after 300ms");
    assert!(start.elapsed() < Duration::from_secs(3));
    // pcall cannot swallow the timeout for ever, nor can a coroutine escape the hook.
    let start = Instant::now();
    let err = run_with(
        "while true do pcall(function() while true do end end) end",
        Duration::from_millis(300),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(err, "timed out after 300ms");
    let err = run_with(
        "coroutine.wrap(function() while true do end end)()",
        Duration::from_millis(300),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(err, "timed out after 300ms");
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// Runs `src` under `timeout` on a thread of its own, and panics if it is still running after
/// `within`: a chunk that escapes its time limit (a loop in C that the instruction hook cannot
/// interrupt) must fail the test, not hang it. Such a thread is left behind, spinning.
fn run_within(src: &str, timeout: Duration, within: Duration) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = src.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(run_with(&owned, timeout, &TestWorld::default()));
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("still running after {within:?}: {src}"))
}

/// The C library functions whose loop count a chunk chooses without allocating anything
/// (string.rep of an empty string, table.move over an empty range, the table functions on a
/// table whose `__len` / `__index` lie) are bounded: they fail, or run as Lua code the hook
/// stops, instead of looping in C past the time limit.
#[test]
fn c_library_loops_are_bounded() {
    let t = Duration::from_millis(500);
    let within = Duration::from_secs(5);
    assert_eq!(
        run_within("return string.rep('', 1e15) == ''", t, within),
        Ok(())
    );
    assert_eq!(
        run_within("return ('').rep('', 1e15, '') == ''", t, within),
        Ok(())
    );
    assert_eq!(
        run_within("return ('x'):rep(1e15)", t, within),
        Err("conf.yaml:7: web.check: string.rep: result too large (more than 64 MiB)".into())
    );
    assert_eq!(
        run_within("return string.rep('', 1e15, ',')", t, within),
        Err("conf.yaml:7: web.check: string.rep: result too large (more than 64 MiB)".into())
    );
    assert_eq!(
        run_within(
            "return table.move({}, 1, math.maxinteger - 1, 1)",
            t,
            within
        ),
        Err(
            "conf.yaml:7: web.check: table.move: too many elements to move (more than 16777216)"
                .into()
        )
    );
    // A length the chunk chooses (__len), elements and stores made by C functions (no Lua code
    // for the hook to stop in): run as Lua loops, so the time limit holds.
    let liar = "local t = setmetatable({}, {__len = function() return 0x7ffffffe end, \
                __index = tostring, __newindex = rawequal})\n";
    for op in [
        "table.insert(t, 1, 'x')",
        "table.remove(t, 1)",
        "table.sort(t)",
        "table.concat(t)",
        "table.move(t, 1, 1 << 23, 2)",
    ] {
        let err = run_within(&format!("{liar}{op}"), t, within).unwrap_err();
        assert!(
            err == "timed out after 500ms" || err == "memory limit of 64 MiB exceeded",
            "{op}: {err}"
        );
    }
}

/// The bounded versions behave as the C functions on ordinary input, on plain tables and on
/// proxies (tables with metamethods), errors included.
#[test]
fn bounded_library_functions_keep_their_behaviour() {
    let same = r#"
        local function proxy(t)
          return setmetatable({}, {__index = t, __newindex = t, __len = function() return #t end})
        end
        local function run(make)
          local out = {}
          local function show(t, n) local s = {} for i = 1, n do s[i] = tostring(t[i]) end return table.concat(s, ",") end
          local a = make({5, 3, 9, 1})
          table.insert(a, 7)                    out[#out + 1] = show(a, 6)
          table.insert(a, 2, 8)                 out[#out + 1] = show(a, 7)
          out[#out + 1] = tostring(table.remove(a)) .. ":" .. show(a, 7)
          out[#out + 1] = tostring(table.remove(a, 1)) .. ":" .. show(a, 7)
          table.sort(a)                         out[#out + 1] = show(a, 5)
          table.sort(a, function(x, y) return x > y end) out[#out + 1] = show(a, 5)
          table.move(a, 1, 3, 2)                out[#out + 1] = show(a, 6)
          table.move(a, 2, 4, 1)                out[#out + 1] = show(a, 6)
          local b = make({})
          out[#out + 1] = tostring(table.move(a, 1, 3, 1, b) == b) .. show(b, 4)
          out[#out + 1] = table.concat(a, "-") .. "|" .. table.concat(a, "", 2, 3) .. "|" .. table.concat(a, ",", 4, 3)
          out[#out + 1] = table.concat({table.unpack(a)}, " ") .. "|" .. table.concat({table.unpack(a, 2, 3)}, " ")
          for _, bad in ipairs({
            function() table.insert(a, 10, 1) end,
            function() table.insert(a, 1, 2, 3) end,
            function() table.remove(a, 10) end,
            function() table.concat(make({1, {}, 3})) end,
            function() table.sort(make({3, 1, 2}), 1) end,
            function() table.sort(make({3, {}, 2})) end,
            function() table.move(a, 1.5, 2, 1) end,
            function() table.unpack(a, 1, 1e8) end,
          }) do
            local ok, err = pcall(bad)
            out[#out + 1] = tostring(ok) .. " " .. tostring(err):gsub("^[^:]*:%d+: ", "")
          end
          return table.concat(out, "\n")
        end
        local plain, proxied = run(function(t) return t end), run(proxy)
        return plain == proxied, plain .. "\n---\n" .. proxied
    "#;
    assert_eq!(run(same), Ok(()));
    // string.rep as before on ordinary input.
    assert_eq!(
        run(
            "return string.rep('ab', 3, ',') == 'ab,ab,ab' and ('x'):rep(0) == '' \
             and ('x'):rep(-1) == '' and string.rep(12, 2) == '1212' and ('x'):rep(3) == 'xxx'"
        ),
        Ok(())
    );
    // Misuse keeps Lua's messages, at the chunk's line.
    assert_eq!(
        run("local x = 1\nlocal s = string.rep('x', 2.5)"),
        Err("conf.yaml:8: web.check: bad argument #2 to 'rep' (number has no integer representation)".into())
    );
    assert_eq!(
        run("local x = 1\ntable.insert({}, 5, 1)"),
        Err("conf.yaml:8: web.check: bad argument #2 to 'insert' (position out of bounds)".into())
    );
    assert_eq!(
        run("local x = 1\ntable.insert(setmetatable({}, {}), 5, 1)"),
        Err("conf.yaml:8: web.check: bad argument #2 to 'insert' (position out of bounds)".into())
    );
    assert_eq!(
        run(
            "local t = {} for i = 1, 50 do t[i] = i end\ntable.sort(t, function() return true end)"
        ),
        Err("conf.yaml:8: web.check: invalid order function for sorting".into())
    );
    assert_eq!(
        run("local x = 1\nlocal s = table.concat({1, {}})"),
        Err(
            "conf.yaml:8: web.check: invalid value (table) at index 2 in table for 'concat'".into()
        )
    );
    // An error raised by a comparator is the comparator's, at its own line.
    assert_eq!(
        run("table.sort({3, 2, 1}, function(a, b)\nerror('cmp says no')\nend)"),
        Err("conf.yaml:8: web.check: cmp says no".into())
    );
}

/// xpcall's message handler runs after the error unwound, as ordinary Lua code: the hook stops
/// an endless handler (Lua runs a real message handler with hooks off).
#[test]
fn xpcall_handlers_are_under_the_time_limit() {
    let t = Duration::from_millis(300);
    let within = Duration::from_secs(5);
    for src in [
        "xpcall(error, function(m) while true do end end)",
        "xpcall(function() while true do end end, function(m) while true do end end)",
        "while true do xpcall(function() while true do end end, function(m) return m end) end",
    ] {
        assert_eq!(
            run_within(src, t, within),
            Err("timed out after 300ms".into()),
            "{src}"
        );
    }
    // xpcall's return convention is kept.
    assert_eq!(
        run(r#"
            local a, b, c = xpcall(function(x, y) return x + y, "z" end, print, 1, 2)
            local d, e = xpcall(function() error("x", 0) end, function(m) return "h:" .. m, 2 end)
            local n = 0
            local f, g = xpcall(error, function(m) n = n + 1 if n < 3 then error("again") end return n end)
            local h, i = xpcall(error, function(m) error("always") end)
            local ok, msg = pcall(xpcall, print)
            return a == true and b == 3 and c == "z" and d == false and e == "h:x"
               and f == false and g == 3 and h == false and i == "error in error handling"
               and not ok and msg:find("bad argument #2 to 'xpcall'", 1, true) ~= nil,
               table.concat({tostring(a), tostring(b), tostring(c), tostring(d), tostring(e),
                             tostring(g), tostring(i), tostring(msg)}, " ")
        "#),
        Ok(())
    );
}

#[test]
fn finalizers_cannot_hang_the_tick() {
    // A __gc would run when the state is closed, after the deadline and out of the hook's reach.
    let start = Instant::now();
    let err = run_with(
        "setmetatable({}, {__gc = function() while true do end end}) return true",
        Duration::from_millis(300),
        &TestWorld::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "conf.yaml:7: web.check: __gc metamethods are not available in autoheal's sandbox"
    );
    // Adding __gc after setmetatable does not mark the table for finalization (Lua 5.4).
    let r = run_with(
        "local mt = {} setmetatable({}, mt) mt.__gc = function() while true do end end collectgarbage() return true",
        Duration::from_secs(2),
        &TestWorld::default(),
    );
    assert_eq!(r, Ok(()));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// The memory limit itself: each chunk gets a time limit (60 s) that no busy machine reaches
/// before 64 MiB is allocated, so the memory limit is what stops it.
#[test]
fn memory_bomb_hits_the_memory_limit() {
    let run = |src| run_with(src, Duration::from_secs(60), &TestWorld::default());
    let err = run("local t = {} while true do t[#t+1] = string.rep('x', 1e6) end").unwrap_err();
    assert_eq!(err, "memory limit of 64 MiB exceeded");
    let err = run("local s = string.rep('x', 40 << 20)\nreturn s .. s").unwrap_err();
    assert_eq!(err, "memory limit of 64 MiB exceeded");
    // A string.rep larger than the limit is refused before it is built.
    let err = run("local s = string.rep('x', 1e9)").unwrap_err();
    assert_eq!(
        err,
        "conf.yaml:7: web.check: string.rep: result too large (more than 64 MiB)"
    );
}

#[test]
fn deep_recursion_fails_cleanly() {
    // A time limit no busy machine reaches first: this is about the stack and memory limits.
    let run = |src| run_with(src, Duration::from_secs(60), &TestWorld::default());
    let err = run("local function f() return 1 + f() end return f()").unwrap_err();
    assert!(
        err.contains("stack overflow") || err.contains("memory limit"),
        "{err}"
    );
    // Through C (pcall) too.
    let err =
        run("local function f() return pcall(f) end local ok, e = f() return false, tostring(e)")
            .unwrap_err();
    assert!(!err.is_empty());
}

#[test]
fn dangerous_things_are_absent() {
    let err = run("os.exit(1)").unwrap_err();
    assert!(
        err.contains("attempt to call a nil value (field 'exit')"),
        "{err}"
    );
    let err = run("return io.read()").unwrap_err();
    assert!(
        err.contains("attempt to index a nil value (global 'io')"),
        "{err}"
    );
    for absent in [
        "debug",
        "package",
        "dofile",
        "loadfile",
        "io",
        "string.dump",
        "os.execute",
        "os.remove",
    ] {
        assert_eq!(run(&format!("return {absent} == nil")), Ok(()), "{absent}");
    }
    // load works on text, never on bytecode.
    assert_eq!(run("return load('return 1 + 1')() == 2"), Ok(()));
    assert_eq!(
        run("local f, err = load('\\27Lua', 'b', 'b')\nreturn f == nil, err"),
        Ok(())
    );
}

#[test]
fn require_is_limited_to_the_lua_dirs() {
    for name in ["../../etc/passwd", "/etc/passwd", "redis/../../x", "a-b"] {
        let err = run(&format!("return require '{name}'")).unwrap_err();
        assert!(err.contains("bad module name"), "{name}: {err}");
    }
    let err = run("return require 'nosuchmodule'").unwrap_err();
    assert!(
        err.contains("no Lua module `nosuchmodule` (searched: "),
        "{err}"
    );
    // settings.lua_path is searched first, modules run in the sandbox.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.lua"), "local M = {}\nfunction M.ok() return io == nil and tcp_probe ~= nil end\nfunction M.bad() error('module says no') end\nreturn M\n").unwrap();
    let yaml = format!(
        "settings:\n  lua_path: {}\nweb:\n  pname: x\n  script: \"true\"\n  check: site.ok()\n  dep:\n    - name: q\n      lua: |\n        local x = 1\n        local ok = site.bad()\n        return ok\n",
        dir.path().display()
    );
    let config = config::load_str(&yaml, Path::new("conf.yaml")).unwrap();
    assert_eq!(lua::check_config(&config), vec![]);
    let world = TestWorld::default();
    let t = Duration::from_secs(5);
    assert_eq!(
        lua::run_chunk(
            &config,
            config.services[0].check.as_ref().unwrap(),
            t,
            &world
        ),
        Ok(())
    );
    let autoheal::config::Dep::Lua { chunk, .. } = &config.services[0].deps[0] else {
        panic!()
    };
    let err = lua::run_chunk(&config, chunk, t, &world).unwrap_err();
    let site = dir.path().join("site.lua");
    assert_eq!(
        err,
        format!(
            "conf.yaml:11: web.dep[q].lua: {}:3: module says no",
            site.display()
        )
    );
}

#[test]
fn chunks_do_not_share_globals() {
    let world = TestWorld::default();
    let t = Duration::from_secs(1);
    assert_eq!(run_with("leak = 1 return true", t, &world), Ok(()));
    assert_eq!(run_with("return leak == nil", t, &world), Ok(()));
}

/// Four chunks that each sleep 1 s, on four threads: one after the other they would take 4 s.
/// The bound leaves a busy machine room to build four sandboxes.
#[test]
fn chunks_run_in_parallel() {
    let world = TestWorld::default();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                assert_eq!(
                    run_with("sleep(1) return true", Duration::from_secs(10), &world),
                    Ok(())
                )
            });
        }
    });
    assert!(
        start.elapsed() < Duration::from_millis(3500),
        "{:?}",
        start.elapsed()
    );
}

/// The cost figures quoted in docs/lua.md: `cargo test --release --test lua_host cost -- --nocapture`.
#[test]
fn cost() {
    let world = TestWorld::default();
    for (what, src) in [
        ("a trivial chunk", "return 1 + 1 == 2"),
        (
            "a library call (auto-required disk.lua)",
            "disk.free{path='/', min_mb=1}",
        ),
    ] {
        let config = config_with(src);
        let chunk = check_of(&config);
        let n = 200;
        let start = Instant::now();
        for _ in 0..n {
            lua::run_chunk(&config, chunk, Duration::from_secs(1), &world).unwrap();
        }
        let per = start.elapsed() / n;
        println!("{what} in a reused sandbox: {} µs per run", per.as_micros());
    }
}

/// Chunks that run one after another on one thread share a Lua state: nothing one of them
/// changes is seen by the next (globals, library tables, modules, metatables, the collector).
#[test]
fn a_chunk_cannot_change_what_the_next_one_sees() {
    let world = TestWorld::default();
    let t = Duration::from_secs(1);
    let check = "return string.upper('a') == 'A' and ('a'):upper() == 'A' and json ~= nil \
                 and json.encode ~= nil and type(redis.ping) == 'function' \
                 and type(require('redis').ping) == 'function' and tcp_probe ~= nil \
                 and math.floor(1.5) == 1 and table.concat({1, 2}) == '12' and leak == nil \
                 and _G == _ENV and _G.leak == nil and type(load) == 'function' \
                 and type(require('autoheal').alive) == 'function' and alive ~= nil \
                 and os.time ~= nil and collectgarbage('isrunning')";
    assert_eq!(run_with(check, t, &world), Ok(()), "before");
    for bad in [
        "string.upper = nil",
        "rawset(string, 'upper', nil)",
        "string.leak = 1",
        "json = nil",
        "json.encode = nil",
        "redis.ping = nil",
        "require('redis').ping = nil",
        "require('autoheal').alive = nil",
        "alive = nil",
        "math.floor = nil",
        "table.concat = nil",
        "tcp_probe = nil",
        "leak = 1",
        "_G.leak = 1",
        "rawset(_G, 'leak', 1)",
        "load('leak = 1')()",
        "load = nil",
        "os.time = nil",
        "pcall(setmetatable, _G, nil)",
        "pcall(setmetatable, _ENV, {})",
        "pcall(function() getmetatable('').__index = nil end)",
        "pcall(function() getmetatable(_ENV).__index = nil end)",
        "pcall(collectgarbage, 'stop')",
        "local r = require 'redis'; leak = 1; r.extra = 1",
        "require = nil",
        "string = nil table = nil math = nil",
    ] {
        let src = format!("{bad}\nreturn true");
        let r = run_with(&src, t, &world);
        assert!(r.is_ok() || r.is_err(), "{bad}");
        assert_eq!(run_with(check, t, &world), Ok(()), "after `{bad}`: {r:?}");
    }
}

/// What the shared state refuses outright.
#[test]
fn shared_things_are_protected() {
    assert_eq!(run("return getmetatable('') == false"), Ok(()));
    assert_eq!(run("return getmetatable(_ENV) == false"), Ok(()));
    let e = run("collectgarbage('stop') return true").unwrap_err();
    assert!(e.contains("not available"), "{e}");
    let e = run("setmetatable(_ENV, nil) return true").unwrap_err();
    assert!(e.contains("protected metatable"), "{e}");
    // Still allowed.
    assert_eq!(
        run("collectgarbage() return collectgarbage('count') > 0"),
        Ok(())
    );
}

/// A state that hit the time or memory limit is not reused; the next chunk runs normally.
/// The runaways get 200 ms; the normal chunks after them a limit no busy machine reaches.
#[test]
fn a_chunk_after_a_runaway_one_runs_normally() {
    let world = TestWorld::default();
    let t = Duration::from_millis(200);
    let ok = Duration::from_secs(10);
    let e = run_with("while true do end", t, &world).unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert_eq!(run_with("return 1 + 1 == 2", ok, &world), Ok(()));
    let e = run_with(
        "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000) .. i end",
        Duration::from_secs(60),
        &world,
    )
    .unwrap_err();
    assert!(e.contains("memory limit"), "{e}");
    assert_eq!(
        run_with("return ('x'):rep(10) == 'xxxxxxxxxx'", ok, &world),
        Ok(())
    );
    // A caught timeout is still a timeout, and the next run has its own deadline.
    let e = run_with(
        "while not pcall(function() while true do end end) do end return true",
        t,
        &world,
    )
    .unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    // The deadline before this one has long passed: a chunk that sleeps runs to its end.
    assert_eq!(run_with("sleep(0.1) return true", ok, &world), Ok(()));
}
