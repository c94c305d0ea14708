//! The shipped `lua/` library against real servers: redis-server, memcached, PostgreSQL and
//! MariaDB from Debian's packages (started here on free loopback ports, stopped by pid; a test
//! whose server is missing skips with a note, and fails under CI: `support::require_server`),
//! and tiny loopback listeners for the rest.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoheal::config::{self, Config};
use autoheal::lua::{self, World};

struct NoWorld;

impl World for NoWorld {
    fn alive(&self, service: &str) -> Result<bool, String> {
        Err(format!("no service `{service}`"))
    }
    fn started(&self, service: &str) -> Result<Option<f64>, String> {
        Err(format!("no service `{service}`"))
    }
    fn restart(&self, _: &str, _: Instant) -> Result<(), String> {
        Err("not in this test".into())
    }
    fn log(&self, _: &str, _: &str) {}
}

/// A config whose service `web` has `check: <src>` (one line, as an operator writes it).
fn config_with(src: &str) -> Config {
    let yaml = format!("web:\n  pname: web-nothing\n  script: \"true\"\n  check: '{src}'\n");
    config::load_str(&yaml, Path::new("conf.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Validates like `autoheal check`, then runs the chunk.
fn check(src: &str) -> Result<(), String> {
    let config = config_with(src);
    let diags = lua::check_config(&config);
    assert!(diags.is_empty(), "{src}: {diags:?}");
    let chunk = config.services[0].check.as_ref().unwrap();
    lua::run_chunk(&config, chunk, Duration::from_secs(5), &NoWorld)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A child process stopped (by its pid) and reaped when the test ends, pass or fail: first
/// with its own signal (postgres wants SIGINT, a fast shutdown that takes its children along),
/// SIGKILL if it is still there after 5 s.
struct Server(Child, i32);

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, self.1) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program` started with `args`, or `None` (with a note; a panic under CI) when it is missing.
fn start(program: &str, args: &[&str]) -> Option<Server> {
    let path = support::require_server(program)?;
    match Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Some(Server(c, libc::SIGKILL)),
        Err(e) => support::cannot_run(&format!("cannot start {}: {e}", path.display())),
    }
}

/// A loopback listener that answers every connection with `reply` (after reading what comes).
fn answering(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(reply);
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let _ = s.read(&mut [0u8; 1024]);
        }
    });
    port
}

/// A loopback listener that greets every connection with `greeting` and then keeps it open,
/// saying nothing more, as a MySQL or MariaDB server does while it waits for the client's
/// handshake response (10 s here, longer than any check waits).
fn greeting_then_silence(greeting: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.write_all(greeting);
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = s.read(&mut [0u8; 1024]);
            });
        }
    });
    port
}

#[test]
fn redis_ping_against_redis_server() {
    let port = free_port();
    let p = port.to_string();
    let Some(server) = start(
        "redis-server",
        &[
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    ) else {
        return;
    };
    assert!(
        wait_port(port, Duration::from_secs(5)),
        "redis-server did not start"
    );
    assert_eq!(check(&format!("redis.ping{{port={port}}}")), Ok(()));
    drop(server);
    let err = check(&format!("redis.ping{{port={port}}}")).unwrap_err();
    assert_eq!(err, format!("redis 127.0.0.1:{port}: connection refused"));
    // Something else on the port: a clear reason.
    let other = answering(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    let err = check(&format!("redis.ping{{port={other}}}")).unwrap_err();
    assert_eq!(
        err,
        format!("redis 127.0.0.1:{other}: HTTP/1.0 400 Bad Request")
    );
}

#[test]
fn memcached_version_against_memcached() {
    let port = free_port();
    let p = port.to_string();
    let Some(_server) = start(
        "memcached",
        &["-l", "127.0.0.1", "-p", &p, "-U", "0", "-u", "nobody"],
    ) else {
        return;
    };
    assert!(
        wait_port(port, Duration::from_secs(5)),
        "memcached did not start"
    );
    assert_eq!(check(&format!("memcached.version{{port={port}}}")), Ok(()));
    // The version is the second value.
    assert_eq!(
        check(&format!(
            "(function() local ok, v = memcached.version{{port={port}}} return ok and v:match(\"^%d+%.%d+\") ~= nil, v end)()"
        )),
        Ok(())
    );
    let other = answering(b"+PONG\r\n");
    let err = check(&format!("memcached.version{{port={other}}}")).unwrap_err();
    assert!(err.contains("unexpected reply"), "{err}");
}

/// The postgres binary of the newest installed Debian PostgreSQL, if any.
fn postgres_bin() -> Option<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").is_file() && b.join("initdb").is_file())
        .collect();
    bins.sort();
    bins.pop()
}

/// initdb + postgres in a temp dir, as the `postgres` user when we are root; `None` (with a
/// note; a panic under CI) when PostgreSQL is missing or does not start.
fn start_postgres(dir: &Path, port: u16) -> Option<Server> {
    let Some(bin) = postgres_bin() else {
        return support::cannot_run(
            "no PostgreSQL in /usr/lib/postgresql/*/bin (apt-get install postgresql)",
        );
    };
    let as_root = rustix::process::geteuid().is_root();
    let data = dir.join("data");
    // As root, run as `postgres` directly (not through runuser, so the child we stop at the
    // end is the postmaster itself).
    let ids = if as_root {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        match (id("-u"), id("-g")) {
            (Some(u), Some(g)) => Some((u, g)),
            _ => {
                return support::cannot_run(
                    "no `postgres` user to run postgres as (apt-get install postgresql)",
                );
            }
        }
    } else {
        None
    };
    let run = |program: PathBuf, args: Vec<String>| {
        let mut c = Command::new(program);
        c.args(args);
        if let Some((uid, gid)) = ids {
            c.uid(uid).gid(gid).env("HOME", dir);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    if as_root {
        let ok = Command::new("chown")
            .args(["postgres", &dir.display().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return support::cannot_run(&format!("cannot chown {} to postgres", dir.display()));
        }
    }
    let init = run(
        bin.join("initdb"),
        vec![
            "-D".into(),
            data.display().to_string(),
            "-A".into(),
            "trust".into(),
            "-U".into(),
            "postgres".into(),
            "--no-sync".into(),
        ],
    )
    .status();
    if !init.as_ref().is_ok_and(|s| s.success()) {
        return support::cannot_run(&format!("{}: initdb failed: {init:?}", bin.display()));
    }
    // Two roles that must give a password (SCRAM, md5), ahead of initdb's trust lines: a ping
    // as either reads an authentication request that waits for it.
    let hba = data.join("pg_hba.conf");
    let lines = "host all scram_user 127.0.0.1/32 scram-sha-256\n\
                 host all md5_user 127.0.0.1/32 md5\n";
    let written = std::fs::read_to_string(&hba)
        .and_then(|trust| std::fs::write(&hba, format!("{lines}{trust}")));
    if let Err(e) = written {
        return support::cannot_run(&format!("{}: {e}", hba.display()));
    }
    let log = match std::fs::File::create(dir.join("postgres.log")) {
        Ok(f) => f,
        Err(e) => return support::cannot_run(&format!("cannot create postgres.log: {e}")),
    };
    let child = run(
        bin.join("postgres"),
        vec![
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            dir.display().to_string(),
            "-h".into(),
            "127.0.0.1".into(),
            "-F".into(),
        ],
    )
    // What the server logs (connections it saw end badly), for the test to read.
    .stderr(log)
    .spawn();
    match child {
        Ok(child) => Some(Server(child, libc::SIGINT)),
        Err(e) => support::cannot_run(&format!("cannot start {}/postgres: {e}", bin.display())),
    }
}

#[test]
fn postgres_ping() {
    // Whatever else: a listener that is not postgres gives false with a clear reason.
    let other = answering(b"+PONG\r\n");
    let err = check(&format!("postgres.ping{{port={other}}}")).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "postgres 127.0.0.1:{other}: not a PostgreSQL reply"
        )),
        "{err}"
    );
    let closed = free_port();
    assert_eq!(
        check(&format!("postgres.ping{{port={closed}}}")).unwrap_err(),
        format!("postgres 127.0.0.1:{closed}: connection refused")
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(server) = start_postgres(dir.path(), port) else {
        return;
    };
    let up = wait_port(port, Duration::from_secs(8));
    // Poll as an operator's check would: ready once the server accepts connections.
    let until = Instant::now() + Duration::from_secs(8);
    let mut last = Err("never probed".to_string());
    while up && Instant::now() < until {
        last = check(&format!("postgres.ping{{port={port}}}"));
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "postgres did not start");
    assert_eq!(last, Ok(()));
    // An unknown role is an error reply from a running server: still ready (as pg_isready says).
    assert_eq!(
        check(&format!(
            "postgres.ping{{port={port}, user=\"nobody_here\"}}"
        )),
        Ok(())
    );
    // A role that must give a password: the server asks for it, and waits. Ready.
    for user in ["scram_user", "md5_user"] {
        assert_eq!(
            check(&format!("postgres.ping{{port={port}, user=\"{user}\"}}")),
            Ok(()),
            "{user}"
        );
    }
    // A ping leaves nothing in the server's log, as pg_isready does not: every connection
    // ends cleanly (no reset, no EOF in the middle of a message), whatever the server asked.
    for _ in 0..10 {
        for user in ["postgres", "scram_user", "md5_user"] {
            let ping = format!("postgres.ping{{port={port}, user=\"{user}\"}}");
            assert_eq!(check(&ping), Ok(()), "{user}");
        }
    }
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("postgres.log")).unwrap();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("could not receive data") || l.contains("unexpected EOF"))
        .collect();
    assert!(
        bad.is_empty(),
        "{}\n--- the whole log\n{log}",
        bad.join("\n")
    );
}

#[test]
fn mysql_ping_reads_the_greeting() {
    // A MariaDB 10.11 greeting as captured on the wire (header, protocol 10, version, ...).
    static GREETING: &[u8] = b"\x2a\x00\x00\x00\x0a10.11.6-MariaDB\x00\x05\x00\x00\x00abcdefgh\x00\xfe\xf7\x08\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x0f\x00\x00\x00";
    // A real server keeps the connection open after its greeting: the check returns as soon as
    // the greeting packet is complete (the check's time limit is 5 s; the bounds below leave a
    // busy machine room and still tell the two apart).
    let port = greeting_then_silence(GREETING);
    let start = Instant::now();
    assert_eq!(check(&format!("mysql.ping{{port={port}}}")), Ok(()));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // The version is the second value.
    assert_eq!(
        check(&format!(
            "local ok, v = mysql.ping{{port={port}}} return false, tostring(ok) .. \" \" .. v"
        )),
        Err("true 10.11.6-MariaDB".into())
    );
    static REFUSED: &[u8] = b"\x17\x00\x00\x00\xff\x10\x04Too many connections";
    let port = answering(REFUSED);
    assert_eq!(
        check(&format!("mysql.ping{{port={port}}}")).unwrap_err(),
        format!("mysql 127.0.0.1:{port}: error 1040: Too many connections")
    );
    // Not MySQL, and the connection stays open: no need to wait for more either.
    let port = greeting_then_silence(b"SSH-2.0-OpenSSH_9.2\r\n");
    let start = Instant::now();
    let err = check(&format!("mysql.ping{{port={port}}}")).unwrap_err();
    assert!(err.contains("not a MySQL greeting"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // A greeting cut short by a server that then says nothing: the check's timeout.
    let port = greeting_then_silence(&GREETING[..20]);
    let config = config_with(&format!("mysql.ping{{port={port}, timeout=0.3}}"));
    let chunk = config.services[0].check.as_ref().unwrap();
    let err = lua::run_chunk(&config, chunk, Duration::from_secs(5), &NoWorld).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "mysql 127.0.0.1:{port}: timed out after 300ms (got 20 bytes"
        )),
        "{err}"
    );
}

/// mariadb-install-db + mariadbd in `dir`, listening on loopback `port` only; `None` (with a
/// note; a panic under CI) when MariaDB is not installed.
fn start_mariadb(dir: &Path, port: u16) -> Option<Server> {
    let install = support::require_server("mariadb-install-db")?;
    let mariadbd = support::require_server("mariadbd")?;
    let data = dir.join("data");
    let user: &[&str] = if rustix::process::geteuid().is_root() {
        &["--user=root"]
    } else {
        &[]
    };
    let ok = Command::new(&install)
        .args(user)
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return support::cannot_run(&format!("{}: failed", install.display()));
    }
    let child = Command::new(&mariadbd)
        .arg("--no-defaults")
        .args(user)
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("sock").display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(child) => Some(Server(child, libc::SIGTERM)),
        Err(e) => support::cannot_run(&format!("cannot start {}: {e}", mariadbd.display())),
    }
}

/// Against a real MariaDB (when installed): it keeps the connection open after its greeting,
/// and the check still returns at once.
#[test]
fn mysql_ping_against_mariadb() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(_server) = start_mariadb(dir.path(), port) else {
        return;
    };
    assert!(
        wait_port(port, Duration::from_secs(20)),
        "mariadbd did not listen"
    );
    let start = Instant::now();
    let shown = check(&format!(
        "local ok, v = mysql.ping{{port={port}}} return false, tostring(ok) .. \" \" .. tostring(v)"
    ))
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(
        shown.starts_with("true ") && shown.contains("MariaDB"),
        "{shown}"
    );
}

#[test]
fn httpjson_field() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let _ = s.read(&mut [0u8; 2048]);
            let body =
                r#"{"status":"UP","components":{"db":{"status":"DOWN"}},"checks":[{"ok":true}]}"#;
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/health");
    assert_eq!(
        check(&format!(
            "httpjson.field{{url=\"{url}\", path=\"status\", equals=\"UP\"}}"
        )),
        Ok(())
    );
    assert_eq!(
        check(&format!(
            "httpjson.field{{url=\"{url}\", path=\"checks.1.ok\"}}"
        )),
        Ok(())
    );
    assert_eq!(
        check(&format!(
            "httpjson.field{{url=\"{url}\", path=\"components.db.status\", equals=\"UP\"}}"
        )),
        Err(format!("{url}: components.db.status is DOWN, want UP"))
    );
}

#[test]
fn file_fresh_and_disk_free() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("heartbeat");
    std::fs::write(&f, "x").unwrap();
    let path = f.display();
    assert_eq!(
        check(&format!("file.fresh{{path=\"{path}\", max_age=60}}")),
        Ok(())
    );
    let old = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&f)
        .status()
        .unwrap();
    assert!(old.success());
    let err = check(&format!("file.fresh{{path=\"{path}\", max_age=60}}")).unwrap_err();
    assert!(
        err.starts_with(&format!("{path} is 72")) && err.ends_with("s old (max 60s)"),
        "{err}"
    );
    let err = check("file.fresh{path=\"/no/such/heartbeat\"}").unwrap_err();
    assert_eq!(err, "/no/such/heartbeat: no such file or directory");
    assert_eq!(check("disk.free{path=\"/\", min_mb=1}"), Ok(()));
    let err = check("disk.free{path=\"/\", min_mb=1000000000}").unwrap_err();
    assert!(
        err.starts_with("/ has ") && err.ends_with(" MB free (min 1000000000 MB)"),
        "{err}"
    );
}

#[test]
fn example_config_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lua.yaml");
    let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lua::check_config(&config), vec![]);
}
