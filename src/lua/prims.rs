//! The primitives a chunk calls: thin wrappers over the Rust core (`crate::observe` probes and
//! process table, the engine's [`World`]), each bounded by the chunk's remaining time.
//!
//! Conventions: a check-like primitive returns `true` or `false, reason`; a primitive that
//! fetches something returns the value or `nil, err`; a misuse (wrong argument type, port out of
//! range, unknown service) raises a Lua error, which names the chunk's conf.yaml line.

use crate::fmt::io_reason;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mlua::{Function, Lua, Scope, Table, Value};

use super::ctx::{Ctx, PRIMITIVES, RunAs, World, left, show};
use super::json;
use crate::defaults::PROBE_TIMEOUT;
use crate::probe::{self, HttpOpts};
use crate::procs::{Liveness, ProcTable};

/// Default bound of `tcp_exchange`'s reply and of `exec`'s captured output.
pub(crate) const MAX_REPLY: usize = 64 * 1024;
/// The longest message `log` / `print` writes (in bytes); a longer one is cut, with a marker.
const MAX_LOG_LINE: usize = 2048;
/// The most lines one run writes with `log` and `print`; past it, one line says the rest are
/// dropped.
const MAX_LOG_LINES: usize = 100;
/// The largest body `http_post` sends: an alert or a small API call, not an upload.
const MAX_POST: usize = 1 << 20;
/// Default time limit of `exec` (still cut to what the chunk has left).
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

type Check = (bool, Option<String>);

fn check(r: Result<(), String>) -> Check {
    match r {
        Ok(()) => (true, None),
        Err(reason) => (false, Some(reason)),
    }
}

fn misuse(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

/// `opts.timeout` in seconds (default `default`), cut to the chunk's remaining time.
fn timeout(ctx: &Ctx, opts: Option<&Table>, default: Duration) -> mlua::Result<Duration> {
    let want = match opts
        .map(|o| o.get::<Option<f64>>("timeout"))
        .transpose()?
        .flatten()
    {
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s.min(1e6)),
        Some(s) => {
            return Err(misuse(format!(
                "timeout must be a positive number of seconds, not {s}"
            )));
        }
        None => default,
    };
    ctx.budget(want)
}

fn port(p: i64) -> mlua::Result<u16> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| misuse(format!("port must be 1..65535, not {p}")))
}

/// Installs the primitives that need no [`World`] as globals (and `json`), and returns the
/// table `require "autoheal"` gives.
pub(crate) fn install(lua: &Lua, ctx: &Arc<Ctx>) -> mlua::Result<Table> {
    let ah = lua.create_table()?;

    let c = Arc::clone(ctx);
    ah.set(
        "tcp_probe",
        lua.create_function(move |_, (host, p, opts): (String, i64, Option<Table>)| {
            let t = timeout(&c, opts.as_ref(), PROBE_TIMEOUT)?;
            Ok(check(probe::tcp_probe(&host, port(p)?, t)))
        })?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "http_probe",
        lua.create_function(move |_, (url, opts): (String, Option<Table>)| {
            let o = http_opts(&c, opts.as_ref())?;
            Ok(check(probe::http_probe(&url, &o)))
        })?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "http_get",
        lua.create_function(move |lua, (url, opts): (String, Option<Table>)| {
            let o = http_opts(&c, opts.as_ref())?;
            response(lua, probe::http_request(&url, &o))
        })?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "http_post",
        lua.create_function(
            move |lua, (url, body, opts): (String, mlua::LuaString, Option<Table>)| {
                let body = body.as_bytes();
                if body.len() > MAX_POST {
                    return Err(misuse(format!(
                        "http_post: the body is {} bytes, more than {} MiB",
                        body.len(),
                        MAX_POST >> 20
                    )));
                }
                let mut o = http_opts(&c, opts.as_ref())?;
                let content_type = match &opts {
                    Some(t) => t.get::<Option<String>>("content_type")?,
                    None => None,
                };
                // A `Content-Type` among the headers wins over `content_type`.
                if !o
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    let ct = content_type.unwrap_or_else(|| "application/json".into());
                    o.headers.push(("Content-Type".into(), ct));
                }
                response(lua, probe::http_send(&url, &o, &body))
            },
        )?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "tcp_exchange",
        lua.create_function(
            move |lua, (host, p, request, opts): (String, i64, mlua::LuaString, Option<Table>)| {
                let t = timeout(&c, opts.as_ref(), PROBE_TIMEOUT)?;
                let max = match opts
                    .as_ref()
                    .map(|o| o.get::<Option<i64>>("max"))
                    .transpose()?
                    .flatten()
                {
                    Some(m) if m > 0 => {
                        usize::try_from(m).unwrap_or(usize::MAX).min(MAX_REPLY * 16)
                    }
                    Some(m) => {
                        return Err(misuse(format!(
                            "max must be a positive number of bytes, not {m}"
                        )));
                    }
                    None => MAX_REPLY,
                };
                // `stop` (`until` is a Lua keyword, but `["until"]=` is accepted too).
                let mut until = None;
                let mut done = None;
                if let Some(o) = &opts {
                    for key in ["stop", "until"] {
                        if let Some(s) = o.get::<Option<mlua::LuaString>>(key)? {
                            until = Some(s.as_bytes().to_vec()).filter(|s| !s.is_empty());
                        }
                    }
                    done = match o.get::<Value>("done")? {
                        Value::Nil => None,
                        Value::Function(f) => Some(f),
                        other => {
                            return Err(misuse(format!(
                                "done must be a function, got {}",
                                other.type_name()
                            )));
                        }
                    };
                }
                // `done(reply)` after each read; an error in it stops the reading and is raised.
                let mut failed = None;
                let mut complete = |reply: &[u8]| {
                    let Some(f) = &done else { return false };
                    match lua.create_string(reply).and_then(|s| f.call::<Value>(s)) {
                        Ok(v) => !matches!(v, Value::Nil | Value::Boolean(false)),
                        Err(e) => {
                            failed = Some(e);
                            true
                        }
                    }
                };
                let waits = Wait {
                    until: until.as_deref(),
                    done: done.is_some().then_some(&mut complete as Done),
                };
                let result = exchange(&host, port(p)?, &request.as_bytes(), t, max, waits);
                if let Some(e) = failed {
                    return Err(e);
                }
                match result {
                    Ok(reply) => Ok((Value::String(lua.create_string(reply)?), None)),
                    Err(e) => Ok((Value::Nil, Some(e))),
                }
            },
        )?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "exec",
        lua.create_function(move |lua, (cmd, opts): (String, Option<Table>)| {
            let t = timeout(&c, opts.as_ref(), EXEC_TIMEOUT)?;
            let run = exec(&cmd, t, &c.run_as());
            Ok((
                run.code == Some(0),
                run.code,
                lua.create_string(run.output)?,
                run.failure,
            ))
        })?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "sleep",
        lua.create_function(move |_, secs: f64| {
            if !secs.is_finite() || secs < 0.0 {
                return Err(misuse(format!("sleep takes seconds ≥ 0, not {secs}")));
            }
            let want = Duration::from_secs_f64(secs.min(1e6));
            let t = c.budget(want)?;
            std::thread::sleep(t);
            if t < want {
                return Err(c.timeout_error());
            }
            Ok(())
        })?,
    )?;

    ah.set(
        "env",
        lua.create_function(|_, name: String| Ok(std::env::var(name).ok()))?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "file_age",
        lua.create_function(move |_, path: String| {
            c.check_deadline()?;
            let p = c.path(&path);
            let age = std::fs::metadata(&p).and_then(|m| m.modified()).map(|m| {
                SystemTime::now()
                    .duration_since(m)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0)
            });
            Ok(match age {
                Ok(a) => (Some(a), None),
                Err(e) => (None, Some(format!("{}: {}", p.display(), io_reason(&e)))),
            })
        })?,
    )?;

    let c = Arc::clone(ctx);
    ah.set(
        "disk_free",
        lua.create_function(move |_, path: String| {
            c.check_deadline()?;
            let p = c.path(&path);
            Ok(match rustix::fs::statvfs(&p) {
                Ok(s) => {
                    let bytes = s.f_bavail.saturating_mul(s.f_frsize);
                    (Some(i64::try_from(bytes).unwrap_or(i64::MAX)), None)
                }
                Err(e) => (
                    None,
                    Some(format!("{}: {}", p.display(), io_reason(&e.into()))),
                ),
            })
        })?,
    )?;

    ah.set("json", json::table(lua, ctx)?)?;

    let g = lua.globals();
    for pair in ah.pairs::<String, Value>() {
        let (k, v) = pair?;
        g.set(k, v)?;
    }
    g.set(PRIMITIVES, Value::Nil)?;
    Ok(ah)
}

/// The primitives that reach the engine, for one run.
pub(crate) struct WorldFns {
    pub alive: Function,
    pub restart: Function,
    pub started: Function,
    pub log: Function,
    pub print: Function,
}

/// The primitives that reach the engine, valid for one run only: `alive`, `restart`, `log`,
/// and `print` (as `log`). Without `restarts` (an alert hook), `restart` raises an error.
pub(crate) fn world_fns<'scope>(
    scope: &'scope Scope<'scope, '_>,
    world: &'scope dyn World,
    label: &'scope str,
    ctx: &Arc<Ctx>,
    restarts: bool,
) -> mlua::Result<WorldFns> {
    let c = Arc::clone(ctx);
    let alive = scope.create_function(move |_, spec: Value| -> mlua::Result<Check> {
        match spec {
            Value::String(name) => {
                let name = name.to_str()?.to_string();
                match world.alive(&name) {
                    Ok(true) => Ok((true, None)),
                    Ok(false) => Ok((false, Some(format!("{name} is dead")))),
                    Err(e) => Err(misuse(format!("alive: {e}"))),
                }
            }
            Value::Table(t) => alive_spec(&c, &t),
            other => Err(misuse(format!(
                "alive takes a service name or {{pname=...}} / {{pid_file=...}}, not a {}",
                other.type_name()
            ))),
        }
    })?;
    let r = Arc::clone(ctx);
    let restart = scope.create_function(move |_, name: String| {
        if !restarts {
            return Err(misuse(format!(
                "restart(\"{name}\") is not available in {label}: an alert hook restarts nothing"
            )));
        }
        r.check_deadline()?;
        Ok(check(world.restart(&name, r.deadline())))
    })?;
    let started = scope.create_function(move |_, name: String| match world.started(&name) {
        Ok(Some(t)) => Ok((Some(t), None)),
        Ok(None) => Ok((None, Some(format!("{name} is dead")))),
        Err(e) => Err(misuse(format!("started: {e}"))),
    })?;
    // Lines written by this run, `log` and `print` together.
    let lines = Arc::new(AtomicUsize::new(0));
    let written = Arc::clone(&lines);
    let log = scope.create_function(move |_, msg: Value| {
        if let Some(line) = log_line(&written, std::slice::from_ref(&msg)) {
            world.log(label, &line);
        }
        Ok(())
    })?;
    let print = scope.create_function(move |_, args: mlua::Variadic<Value>| {
        if let Some(line) = log_line(&lines, &args) {
            world.log(label, &line);
        }
        Ok(())
    })?;
    Ok(WorldFns {
        alive,
        restart,
        started,
        log,
        print,
    })
}

/// The line `log` / `print` writes for `values` (joined by tabs), cut at [`MAX_LOG_LINE`]
/// bytes; `None` past [`MAX_LOG_LINES`] lines in this run (`lines` counts them), except for one
/// line that says so.
fn log_line(lines: &AtomicUsize, values: &[Value]) -> Option<String> {
    let n = lines.fetch_add(1, Ordering::Relaxed);
    if n > MAX_LOG_LINES {
        return None;
    }
    if n == MAX_LOG_LINES {
        return Some(format!(
            "more than {MAX_LOG_LINES} log lines in one run; the rest are dropped"
        ));
    }
    let mut line = Capped::default();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push(b"\t");
        }
        match v {
            Value::String(s) => line.push(&s.as_bytes()),
            other => line.push(display(other).as_bytes()),
        }
    }
    Some(line.finish())
}

/// A log line being built: at most [`MAX_LOG_LINE`] bytes kept, never half a UTF-8 character,
/// every byte counted.
#[derive(Default)]
struct Capped {
    kept: Vec<u8>,
    total: usize,
    truncated: bool,
}

impl Capped {
    fn push(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len());
        if self.truncated {
            return;
        }
        let room = MAX_LOG_LINE - self.kept.len();
        if bytes.len() <= room {
            self.kept.extend_from_slice(bytes);
            return;
        }
        let mut cut = room;
        while cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        self.kept.extend_from_slice(&bytes[..cut]);
        self.truncated = true;
    }

    fn finish(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.truncated {
            text.push_str(&format!("… [truncated: {} bytes in all]", self.total));
        }
        text
    }
}

/// A value as `print` shows it.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string_lossy(),
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.type_name().to_string(),
    }
}

/// `{pname=".."}` / `{pid_file=".."}` (both: both must hold) on a fresh process-table snapshot.
fn alive_spec(ctx: &Ctx, t: &Table) -> mlua::Result<Check> {
    let pname: Option<String> = t.get("pname")?;
    let pid_file: Option<String> = t.get("pid_file")?;
    if pname.is_none() && pid_file.is_none() {
        return Err(misuse("alive{} needs pname= or pid_file="));
    }
    let regex = pname
        .map(|p| regex::Regex::new(&p).map_err(|e| misuse(format!("alive: bad pname regex: {e}"))))
        .transpose()?;
    let table = ProcTable::snapshot();
    if let Some(re) = regex
        && let Liveness::Dead { reason } = table.find_pname(&re)
    {
        return Ok((false, Some(reason)));
    }
    if let Some(p) = pid_file
        && let Liveness::Dead { reason } = table.check_pid_file(&ctx.path(&p))
    {
        return Ok((false, Some(reason)));
    }
    Ok((true, None))
}

/// What `http_get` and `http_post` return: `{status=, body=, headers=}` (header names in lower
/// case), or `nil, err` when no answer came.
fn response(
    lua: &Lua,
    r: Result<probe::HttpResponse, String>,
) -> mlua::Result<(Value, Option<String>)> {
    let r = match r {
        Ok(r) => r,
        Err(e) => return Ok((Value::Nil, Some(e))),
    };
    let t = lua.create_table()?;
    t.set("status", r.status)?;
    t.set("body", r.body)?;
    let h = lua.create_table()?;
    for (k, v) in r.headers {
        h.set(k.to_ascii_lowercase(), v)?;
    }
    t.set("headers", h)?;
    Ok((Value::Table(t), None))
}

fn http_opts(ctx: &Ctx, opts: Option<&Table>) -> mlua::Result<HttpOpts> {
    let mut o = HttpOpts {
        timeout: Some(timeout(ctx, opts, PROBE_TIMEOUT)?),
        ..HttpOpts::default()
    };
    let Some(opts) = opts else {
        return Ok(o);
    };
    o.status = match opts.get::<Value>("status")? {
        Value::Nil => None,
        Value::Integer(n) => {
            let n = status(n)?;
            Some((n, n))
        }
        Value::Table(t) => Some((status(t.get(1)?)?, status(t.get(2)?)?)),
        other => {
            return Err(misuse(format!(
                "status must be a code or {{low, high}}, not a {}",
                other.type_name()
            )));
        }
    };
    o.body = opts.get("body")?;
    o.method = opts
        .get::<Option<String>>("method")?
        .map(|m| m.to_ascii_uppercase());
    if let Some(h) = opts.get::<Option<Table>>("headers")? {
        for pair in h.pairs::<String, String>() {
            o.headers.push(pair?);
        }
    }
    Ok(o)
}

fn status(n: i64) -> mlua::Result<u16> {
    u16::try_from(n)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| misuse(format!("status must be an HTTP code, not {n}")))
}

/// `opts.done`: called with the reply so far; true = complete.
type Done<'a> = &'a mut dyn FnMut(&[u8]) -> bool;

/// What `tcp_exchange` waits for, besides EOF and `max` bytes.
struct Wait<'a> {
    /// `opts.stop`: the reply contains this.
    until: Option<&'a [u8]>,
    /// `opts.done`: called with the reply so far after each read; true = complete.
    done: Option<Done<'a>>,
}

/// Connects, sends `request`, and reads the reply until EOF, `max` bytes, `until` (opts.stop)
/// seen, `done` (opts.done) satisfied, or the timeout. Without `until` or `done`, a timeout
/// after some bytes arrived returns them (servers keep connections open); with one, it is an
/// error.
fn exchange(
    host: &str,
    port: u16,
    request: &[u8],
    timeout: Duration,
    max: usize,
    mut wait: Wait,
) -> Result<Vec<u8>, String> {
    let until = wait.until;
    let waits_for_something = until.is_some() || wait.done.is_some();
    let deadline = crate::fmt::deadline(timeout);
    let timed_out = || format!("timed out after {}", show(timeout));
    let mut stream = None;
    let mut last = String::from("no address");
    for addr in crate::probe::resolve(host, port, timeout)? {
        let l = left(deadline);
        if l.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, l) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = timed_out(),
            Err(e) => last = io_reason(&e),
        }
    }
    let mut stream = stream.ok_or(last)?;
    if !request.is_empty() {
        stream
            .set_write_timeout(Some(left(deadline).max(Duration::from_millis(1))))
            .map_err(|e| io_reason(&e))?;
        stream.write_all(request).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            _ => format!("sending: {}", io_reason(&e)),
        })?;
    }
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let l = left(deadline);
        let waited_out = |reply: &Vec<u8>| {
            if !waits_for_something && !reply.is_empty() {
                Ok(())
            } else if reply.is_empty() {
                Err(format!("{} waiting for a reply", timed_out()))
            } else {
                Err(format!(
                    "{} (got {} bytes: {:?})",
                    timed_out(),
                    reply.len(),
                    String::from_utf8_lossy(&reply[..reply.len().min(60)])
                ))
            }
        };
        if l.is_zero() {
            waited_out(&reply)?;
            break;
        }
        stream
            .set_read_timeout(Some(l))
            .map_err(|e| io_reason(&e))?;
        let want = (max - reply.len()).min(buf.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                let from = reply.len().saturating_sub(until.map_or(0, |u| u.len() - 1));
                reply.extend_from_slice(&buf[..n]);
                if reply.len() >= max {
                    break;
                }
                if let Some(u) = until
                    && reply[from..].windows(u.len()).any(|w| w == u)
                {
                    break;
                }
                if let Some(done) = wait.done.as_mut()
                    && done(&reply)
                {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                waited_out(&reply)?;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if reply.is_empty() => return Err(format!("reading: {}", io_reason(&e))),
            Err(_) => break,
        }
    }
    Ok(reply)
}

/// How one `exec` ended.
struct ExecRun {
    /// Exit code; `None` if killed by a signal, timed out, or never started.
    code: Option<i32>,
    /// stdout and stderr interleaved, at most [`MAX_REPLY`] bytes.
    output: Vec<u8>,
    /// Why there is no exit code.
    failure: Option<String>,
}

/// `/bin/sh -c cmd` in its own process group, stdin from /dev/null, stdout and stderr into one
/// pipe. Past the timeout the whole group is killed.
///
/// The pipe is read while the command runs: the first [`MAX_REPLY`] bytes are kept, the rest
/// is read and thrown away (so a chatty command neither blocks nor costs memory). exec waits
/// for the command's exit, not for the pipe's end: a daemon the command leaves behind holding
/// the pipe cannot hang the check. Once the command is gone, what it wrote is read and the pipe
/// closed, so a process left behind that still writes to it gets EPIPE (SIGPIPE) instead of
/// making anything grow.
fn exec(cmd: &str, timeout: Duration, run_as: &RunAs) -> ExecRun {
    let fail = |why: String| ExecRun {
        code: None,
        output: Vec::new(),
        failure: Some(why),
    };
    // A `user:` that cannot be resolved refuses the command: never run it as root instead.
    let user = match &run_as.user {
        Ok(user) => user.as_ref(),
        Err(why) => return fail(format!("not run: {why}")),
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot capture output: {}", io_reason(&e))),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return fail(format!("cannot capture output: {}", io_reason(&e))),
    };
    if let Err(e) = rustix::io::ioctl_fionbio(&reader, true) {
        return fail(format!("cannot capture output: {}", io_reason(&e.into())));
    }
    let start = Instant::now();
    // The Command holds our copies of the pipe's write end: dropped right after the spawn, so
    // that only the command (and what it starts) has them.
    let child = crate::exec::shell_command(cmd, user, &run_as.env, false)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start /bin/sh: {}", io_reason(&e))),
    };
    let pgid = rustix::process::Pid::from_child(&child);
    let mut out = Capture::new(reader);
    let mut pause = Duration::from_millis(2);
    let (code, failure) = loop {
        out.read_some();
        match child.try_wait() {
            Ok(Some(status)) => match (status.code(), status.signal()) {
                (Some(c), _) => break (Some(c), None),
                (None, Some(s)) => break (None, Some(format!("killed by signal {s}"))),
                _ => break (None, Some("ended abnormally".into())),
            },
            Ok(None) => {}
            Err(e) => break (None, Some(format!("cannot wait: {}", io_reason(&e)))),
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            // SIGKILL cannot be caught; reaping is quick unless the process is stuck in the
            // kernel, and then we move on rather than hang.
            let reap_by = Instant::now() + Duration::from_secs(1);
            while Instant::now() < reap_by && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(5));
            }
            break (None, Some(format!("timed out after {}", show(timeout))));
        }
        out.wait(pause.min(timeout - elapsed));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    // What the command wrote before it ended; then the pipe is closed (dropped with `out`).
    out.read_some();
    ExecRun {
        code,
        output: out.kept,
        failure,
    }
}

/// The read end of `exec`'s output pipe (non-blocking) and the first [`MAX_REPLY`] bytes read.
struct Capture {
    pipe: std::io::PipeReader,
    kept: Vec<u8>,
    /// Every write end is closed.
    eof: bool,
}

impl Capture {
    /// At most this many bytes are read in one go (then exec looks at the clock and the child
    /// again).
    const READ_AT_ONCE: usize = 1 << 20;

    fn new(pipe: std::io::PipeReader) -> Capture {
        Capture {
            pipe,
            kept: Vec::new(),
            eof: false,
        }
    }

    /// Reads what the pipe holds, up to [`Self::READ_AT_ONCE`] bytes; keeps what fits.
    fn read_some(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        while !self.eof && read < Self::READ_AT_ONCE {
            match self.pipe.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    read += n;
                    let room = MAX_REPLY - self.kept.len();
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.eof = true,
            }
        }
    }

    /// Waits up to `d` for something to read (sleeps once nothing more can come).
    fn wait(&self, d: Duration) {
        if self.eof {
            std::thread::sleep(d);
            return;
        }
        let mut fds = [libc::pollfd {
            fd: self.pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = d.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: one pollfd, valid for the call; the fd is ours and open.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    }
}
