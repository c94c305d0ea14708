//! The alert side of the Lua host against real things on loopback: `http_post` (what reaches a
//! real server: method, body, content type, headers; its time limit), and `settings.on_event`
//! run by `lua::run_event_hook` (the event as a table, its limits, no `restart`, a webhook).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use autoheal::config::{self, Config};
use autoheal::lua::{self, World};

/// A world with nothing in it: `http_post` needs none.
struct NoWorld;

impl World for NoWorld {
    fn alive(&self, service: &str) -> Result<bool, String> {
        Err(format!("no service `{service}`"))
    }
    fn started(&self, service: &str) -> Result<Option<f64>, String> {
        Err(format!("no service `{service}`"))
    }
    fn restart(&self, _: &str, _: Instant) -> Result<(), String> {
        Err("no".into())
    }
    fn log(&self, _: &str, _: &str) {}
}

/// One request as the server read it.
#[derive(Debug)]
struct Request {
    /// `POST /hook HTTP/1.1`
    line: String,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTP server on a free loopback port: reads each request (its body by
/// `Content-Length`), hands it over, answers `200 ok`.
fn server() -> (u16, Receiver<Request>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let mut r = BufReader::new(s);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim_end().split_once(':') {
                    headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = tx.send(Request {
                line: line.trim_end().to_string(),
                headers,
                body,
            });
        }
    });
    (port, rx)
}

/// A loopback port that accepts connections and never answers (a black hole).
fn black_hole() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// `src` as the `check:` of service `web` (at line 4 of conf.yaml).
fn check_config(src: &str) -> Config {
    config::load_str(
        &format!(
            "web:\n  pname: web-nothing\n  script: \"true\"\n  check: |\n{}",
            indent(src)
        ),
        Path::new("conf.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `src` as `settings.on_event` (its first line at line 3 of conf.yaml).
fn hook_config(src: &str) -> Arc<Config> {
    let yaml = format!(
        "settings:\n  on_event: |\n{}web:\n  pname: web-nothing\n  script: \"true\"\n",
        indent(src)
    );
    let config = config::load_str(&yaml, Path::new("conf.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lua::check_config(&config), vec![], "the hook passes check");
    Arc::new(config)
}

fn indent(src: &str) -> String {
    src.lines().map(|l| format!("    {l}\n")).collect()
}

fn run_check(src: &str) -> Result<(), String> {
    let config = check_config(src);
    let chunk = config.services[0].check.as_ref().unwrap();
    lua::run_chunk(&config, chunk, Duration::from_secs(5), &NoWorld)
}

fn event() -> serde_json::Value {
    serde_json::json!({
        "kind": "down",
        "service": "web",
        "reason": "waiting on db (dead)",
        "since": 1700000000,
        "deps": ["db", "cache"],
        "paused": false,
    })
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn http_post_sends_its_body_as_json_by_default() {
    let (port, requests) = server();
    let src = format!(
        "local r, err = http_post('http://127.0.0.1:{port}/hook', '{{\"a\":1}}')\n\
         if not r then return false, err end\n\
         return r.status == 200 and r.body == 'ok' and r.headers['content-length'] == '2', r.body"
    );
    assert_eq!(run_check(&src), Ok(()));
    let req = requests.recv_timeout(WAIT).unwrap();
    assert_eq!(req.line, "POST /hook HTTP/1.1");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.body, br#"{"a":1}"#);
}

#[test]
fn http_post_takes_a_content_type_headers_and_a_method() {
    let (port, requests) = server();
    let src = format!(
        "local r = http_post('http://127.0.0.1:{port}/t', 'hello', \
         {{content_type='text/plain', headers={{['X-Token']='abc'}}, timeout=2}})\n\
         return r and r.status == 200"
    );
    assert_eq!(run_check(&src), Ok(()));
    let req = requests.recv_timeout(WAIT).unwrap();
    assert_eq!(req.header("content-type"), Some("text/plain"));
    assert_eq!(req.header("x-token"), Some("abc"));
    assert_eq!(req.body, b"hello");

    // A Content-Type among the headers wins; `method` makes it a PUT.
    let src = format!(
        "return http_post('http://127.0.0.1:{port}/t', 'x', \
         {{method='put', headers={{['Content-Type']='application/x-ndjson'}}}})"
    );
    assert_eq!(run_check(&src), Ok(()));
    let req = requests.recv_timeout(WAIT).unwrap();
    assert_eq!(req.line, "PUT /t HTTP/1.1");
    assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
}

#[test]
fn http_post_is_bounded_like_http_get() {
    let hole = black_hole();
    let start = Instant::now();
    let src = format!(
        "local r, err = http_post('http://127.0.0.1:{hole}/', '{{}}', {{timeout=0.3}})\n\
         return r == nil and err:find('timed out') ~= nil, err"
    );
    assert_eq!(run_check(&src), Ok(()));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // A bad timeout is a misuse, as for http_get.
    let err = run_check("return http_post('http://127.0.0.1:1/', '', {timeout=-1})").unwrap_err();
    assert!(err.contains("timeout must be a positive number"), "{err}");
    // The body is text, not a table.
    let err = run_check("return http_post('http://127.0.0.1:1/', {})").unwrap_err();
    assert!(err.starts_with("conf.yaml:5: web.check:"), "{err}");
}

#[test]
fn the_event_is_a_table_the_hook_reads() {
    let config = hook_config(
        "log(event.kind .. ' ' .. event.service .. ': ' .. event.reason)\n\
         log(#event.deps .. ' deps, first ' .. event.deps[1])\n\
         log(math.type(event.since) .. ' ' .. tostring(event.paused))",
    );
    assert_eq!(
        lua::run_event_hook(&config, &event(), Duration::from_secs(5)),
        Ok(vec![
            "down web: waiting on db (dead)".to_string(),
            "2 deps, first db".to_string(),
            "integer false".to_string(),
        ])
    );
}

#[test]
fn a_hook_fails_only_when_it_says_so_or_errs() {
    let run = |src: &str| lua::run_event_hook(&hook_config(src), &event(), Duration::from_secs(5));
    assert_eq!(run("local x = 1"), Ok(vec![]));
    assert_eq!(run("return nil"), Ok(vec![]));
    assert_eq!(
        run("return false, 'the pager is down'"),
        Err("the pager is down".into())
    );
    assert_eq!(
        run("local t = nil\nreturn t.x"),
        Err("conf.yaml:4: settings.on_event: attempt to index a nil value (local 't')".into())
    );
    // No file has a hook: nothing to run.
    let none = Arc::new(check_config("return true"));
    assert_eq!(
        lua::run_event_hook(&none, &event(), Duration::from_secs(1)),
        Ok(vec![])
    );
}

#[test]
fn a_hook_cannot_restart() {
    // Read from a field, which `check` does not follow, so that it gets to run.
    let config =
        hook_config("log('before')\nlocal ah = require 'autoheal'\nah.restart(event.service)");
    let err = lua::run_event_hook(&config, &event(), Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        err,
        "conf.yaml:5: settings.on_event: restart(\"web\") is not available in settings.on_event: \
         an alert hook restarts nothing"
    );
}

#[test]
fn a_looping_hook_is_stopped_at_its_limit() {
    let config = hook_config("while true do end");
    let start = Instant::now();
    let r = lua::run_event_hook(&config, &event(), Duration::from_millis(300));
    let took = start.elapsed();
    assert_eq!(r, Err("timed out after 300ms".into()));
    assert!(took < Duration::from_millis(800), "took {took:?}");
}

#[test]
fn a_hook_posting_to_a_black_hole_is_stopped_at_its_limit() {
    let hole = black_hole();
    // No timeout of its own: the post takes the hook's remaining time.
    let config = hook_config(&format!(
        "return http_post('http://127.0.0.1:{hole}/hook', json.encode(event))"
    ));
    let start = Instant::now();
    let err = lua::run_event_hook(&config, &event(), Duration::from_millis(400)).unwrap_err();
    let took = start.elapsed();
    assert!(err.contains("timed out after"), "{err}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
}

#[test]
fn a_webhook_in_three_lines_reaches_a_real_server() {
    let (port, requests) = server();
    let config = hook_config(&format!(
        "local r, err = http_post('http://127.0.0.1:{port}/hook', json.encode(event))\n\
         if not r then return false, err end\n\
         return r.status == 200, 'HTTP ' .. r.status"
    ));
    assert_eq!(
        lua::run_event_hook(&config, &event(), Duration::from_secs(5)),
        Ok(vec![])
    );
    let req = requests.recv_timeout(WAIT).unwrap();
    assert_eq!(req.line, "POST /hook HTTP/1.1");
    assert_eq!(req.header("content-type"), Some("application/json"));
    let got: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(got, event());
}
