//! Probes against real sockets on 127.0.0.1: a std-only HTTP server in a thread serves fixed
//! paths, counts the connections it accepts, and can hold a connection without answering.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use autoheal::defaults::{HTTP_MAX_BODY, PROBE_WORKERS};
use autoheal::probe::{HttpOpts, Target, http_probe, http_request, probe_all, tcp_probe};

/// A tiny HTTP/1.1 server on 127.0.0.1:0, one thread per connection, one answer per connection.
struct Server {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream));
            }
        });
        Server { port, accepted }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return, // a tcp probe: connects and closes
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push(line.trim_end().to_string()),
        }
    }
    let mut request = head[0].split(' ');
    let method = request.next().unwrap_or("").to_string();
    let path = request.next().unwrap_or("").to_string();
    let answer = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let response = match path.split('?').next().unwrap_or("") {
        "/ok" => answer("200 OK", "", "hello, ready"),
        "/unavailable" => answer("503 Service Unavailable", "", "down"),
        "/redirect" => answer("302 Found", "Location: /ok\r\n", ""),
        "/loop" => answer("302 Found", "Location: /loop\r\n", ""),
        "/echo" => {
            let headers = head[1..].join("\n").to_lowercase();
            answer("200 OK", "", &format!("{method} {path}\n{headers}"))
        }
        "/huge" => {
            // 10 MiB announced and sent in chunks; the client stops reading at its limit.
            let size = 10 * 1024 * 1024;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..size / chunk.len() {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
            return;
        }
        p if p.starts_with("/hang") => {
            // Accept, read the request, never answer; the connection stays open.
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        _ => answer("404 Not Found", "", "no such path"),
    };
    let _ = stream.write_all(response.as_bytes());
}

fn opts(timeout: Duration) -> HttpOpts {
    HttpOpts {
        timeout: Some(timeout),
        ..HttpOpts::default()
    }
}

const SHORT: Duration = Duration::from_secs(2);

#[test]
fn tcp_listener_is_ready_and_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(tcp_probe("127.0.0.1", port, SHORT), Ok(()));
    drop(listener);
    assert_eq!(
        tcp_probe("127.0.0.1", port, SHORT),
        Err("connection refused".to_string())
    );
    // Names are resolved too; "localhost" may give ::1 and 127.0.0.1, all refused alike.
    assert_eq!(
        tcp_probe("localhost", port, SHORT),
        Err("connection refused".to_string())
    );
}

#[test]
fn tcp_unknown_host_has_no_address() {
    // .invalid never resolves (RFC 6761); without working DNS the lookup fails or times out.
    let err = tcp_probe("no-such-host.invalid", 80, SHORT).unwrap_err();
    assert!(
        err == "no address for host"
            || err.starts_with("name lookup failed")
            || err.starts_with("timed out after 2s"),
        "{err}"
    );
}

#[test]
fn http_status_decides_readiness() {
    let server = Server::start();
    assert_eq!(http_probe(&server.url("/ok"), &opts(SHORT)), Ok(()));
    assert_eq!(
        http_probe(&server.url("/unavailable"), &opts(SHORT)),
        Err("HTTP 503".to_string())
    );
    // A non-2xx status is an answer, not an error, at the lower level.
    let response = http_request(&server.url("/unavailable"), &opts(SHORT)).unwrap();
    assert_eq!((response.status, response.body.as_str()), (503, "down"));
    assert!(
        response
            .headers
            .iter()
            .any(|(k, v)| k == "content-length" && v == "4")
    );

    let five_hundreds = HttpOpts {
        status: Some((500, 599)),
        ..opts(SHORT)
    };
    assert_eq!(
        http_probe(&server.url("/unavailable"), &five_hundreds),
        Ok(())
    );
    assert_eq!(
        http_probe(&server.url("/ok"), &five_hundreds),
        Err("HTTP 200".to_string())
    );
}

#[test]
fn http_body_substring() {
    let server = Server::start();
    let want = |s: &str| HttpOpts {
        body: Some(s.to_string()),
        ..opts(SHORT)
    };
    assert_eq!(http_probe(&server.url("/ok"), &want("ready")), Ok(()));
    assert_eq!(
        http_probe(&server.url("/ok"), &want("degraded")),
        Err("HTTP 200, body lacks \"degraded\"".to_string())
    );
}

#[test]
fn http_method_and_headers_are_sent() {
    let server = Server::start();
    let o = HttpOpts {
        method: Some("POST".into()),
        headers: vec![("X-Probe".into(), "autoheal".into())],
        ..opts(SHORT)
    };
    let response = http_request(&server.url("/echo"), &o).unwrap();
    assert!(
        response.body.starts_with("POST /echo\n"),
        "{}",
        response.body
    );
    assert!(
        response.body.contains("x-probe: autoheal"),
        "{}",
        response.body
    );
}

#[test]
fn http_redirects_are_followed_but_bounded() {
    let server = Server::start();
    let response = http_request(&server.url("/redirect"), &opts(SHORT)).unwrap();
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "hello, ready")
    );
    assert_eq!(http_probe(&server.url("/redirect"), &opts(SHORT)), Ok(()));

    let err = http_probe(&server.url("/loop"), &opts(SHORT)).unwrap_err();
    assert_eq!(err, "too many redirects (more than 5)");
}

#[test]
fn http_huge_body_is_read_only_up_to_the_limit() {
    let server = Server::start();
    let started = Instant::now();
    let response = http_request(&server.url("/huge"), &opts(SHORT)).unwrap();
    assert_eq!(response.body.len() as u64, HTTP_MAX_BODY);
    assert_eq!(http_probe(&server.url("/huge"), &opts(SHORT)), Ok(()));
    assert!(started.elapsed() < SHORT, "took {:?}", started.elapsed());
}

#[test]
fn http_server_that_never_answers_times_out() {
    let server = Server::start();
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = http_probe(&server.url("/hang"), &opts(timeout)).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, "timed out after 1s");
    assert!(
        elapsed >= timeout && elapsed < timeout * 3,
        "took {elapsed:?}"
    );
}

#[test]
fn http_refused_and_bad_urls_have_short_reasons() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        http_probe(&url, &opts(SHORT)),
        Err("connection refused".to_string())
    );
    let err = http_probe("not a url", &opts(SHORT)).unwrap_err();
    assert!(err.starts_with("bad"), "{err}");
}

#[test]
fn probe_all_probes_each_distinct_target_once() {
    let server = Server::start();
    let ok_a = Target::Http {
        url: server.url("/ok"),
    };
    let ok_b = Target::Http {
        url: server.url("/ok?b"),
    };
    let tcp = Target::Tcp {
        host: "127.0.0.1".into(),
        port: server.port,
    };
    let down = Target::Http {
        url: server.url("/unavailable"),
    };
    let distinct = [&ok_a, &ok_b, &tcp, &down];
    let targets: Vec<(Target, Duration)> = (0..20)
        .map(|i| {
            let timeout = Duration::from_millis(500 + 100 * i as u64);
            (distinct[i % distinct.len()].clone(), timeout)
        })
        .collect();

    let results = probe_all(&targets, PROBE_WORKERS);
    assert_eq!(results.len(), 4);
    assert_eq!(results[&ok_a], Ok(()));
    assert_eq!(results[&ok_b], Ok(()));
    assert_eq!(results[&tcp], Ok(()));
    let e = results[&down].clone().unwrap_err();
    assert_eq!(
        (e.how, e.text.as_str()),
        (autoheal::probe::How::Status(503), "HTTP 503")
    );

    // A tcp probe is done once the kernel completes the handshake, before our accept()
    // counts it: give the accept loop a moment, then expect exactly one connection a target.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.accepted() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.accepted(), 4);
}

#[test]
fn probe_all_runs_in_parallel() {
    let server = Server::start();
    let targets: Vec<(Target, Duration)> = (0..10)
        .map(|i| {
            let url = server.url(&format!("/hang/{i}"));
            (Target::Http { url }, Duration::from_secs(1))
        })
        .collect();
    let started = Instant::now();
    let results = probe_all(&targets, PROBE_WORKERS);
    let elapsed = started.elapsed();
    assert_eq!(results.len(), 10);
    assert!(
        results.values().all(|r| r.as_ref().is_err_and(|e| e.how
            == autoheal::probe::How::TimedOut
            && e.text == "timed out after 1s")),
        "{results:?}"
    );
    // Ten 1 s timeouts one after the other would take 10 s.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn probe_all_with_one_worker_and_nothing_to_do() {
    assert!(probe_all(&[], PROBE_WORKERS).is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = Target::Tcp {
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
    };
    let results = probe_all(&[(tcp.clone(), SHORT), (tcp.clone(), SHORT)], 0);
    assert_eq!(results.len(), 1);
    assert_eq!(results[&tcp], Ok(()));
}

#[test]
fn http_unknown_host_has_no_address() {
    // Same reason as for tcp, although ureq resolves the name itself.
    let err = http_probe("http://no-such-host.invalid/", &opts(SHORT)).unwrap_err();
    assert!(
        err == "no address for host"
            || err.starts_with("name lookup failed")
            || err.starts_with("timed out after 2s"),
        "{err}"
    );
}

/// A thousand distinct targets that never answer (a listener that never accepts) are all
/// probed in the same observation, each to its own timeout: all timed out, none skipped, and
/// the open-file limit the probes may have raised is given back for the scripts that follow.
#[test]
fn a_thousand_black_holes_are_probed_at_once() {
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let targets: Vec<(Target, Duration)> = (0..1000)
        .map(|i| {
            let url = format!("http://127.0.0.1:{port}/p{i}");
            (Target::Http { url }, Duration::from_millis(500))
        })
        .collect();
    let results = probe_all(&targets, PROBE_WORKERS);
    assert_eq!(results.len(), 1000);
    for (target, result) in &results {
        let e = result.as_ref().expect_err("a black hole never answers");
        assert_eq!(e.how, autoheal::probe::How::TimedOut, "{target:?}: {e:?}");
    }
    let after = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    assert_eq!(before.current, after.current);
    drop(hole);
}
