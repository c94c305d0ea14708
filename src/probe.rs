//! Readiness probes: does a tcp port accept, does a URL answer as expected. One implementation,
//! used by the YAML deps through [`probe_all`] and by the Lua host's `tcp_probe`/`http_probe`.
//!
//! Every probe is bounded by its timeout, name resolution included, and reports failure as a
//! short reason an operator can act on ("connection refused", "timed out after 3s",
//! "HTTP 503"), never a Debug dump. Probes only connect and read; they never retry, and a slow
//! host costs one timeout, not one per dependent.
//!
//! HTTP probes ignore `http_proxy`/`https_proxy` from the environment: a readiness check must
//! reach the service itself, and cron environments rarely carry the same proxy settings as a
//! login shell.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::defaults::{HTTP_MAX_BODY, HTTP_MAX_REDIRECTS, PROBE_TIMEOUT};

/// Something a dependency can be waiting on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Ready iff `host:port` accepts a tcp connection.
    Tcp { host: String, port: u16 },
    /// Ready iff a GET answers 2xx, redirects followed.
    Http { url: String },
}

impl std::fmt::Display for Target {
    /// `10.0.0.7:80`, `[::1]:80` or the URL, as shown in "waiting on" chains.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Http { url } => f.write_str(url),
        }
    }
}

/// `Ok(())` = ready; else how it failed, e.g. "connection refused", "timed out after 1s",
/// "HTTP 503", "no address for host".
pub type ProbeResult = Result<(), ProbeError>;

/// How a probe failed: the kind, as data (counted, exported, alerted on), and the phrase an
/// operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    pub how: How,
    /// "connection refused", "timed out after 3s", "HTTP 503, body lacks \"ok\"".
    pub text: String,
}

/// The kinds of probe failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Nothing listens: the connection was refused.
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// The name does not resolve.
    Dns,
    /// An answer with a status out of range (or a body that lacks the expected text).
    Status(u16),
    /// Any other failure to get an answer: reset, unreachable, a bad HTTP answer.
    Failed,
    /// A Lua check said not ready (false or nil).
    LuaFalse,
    /// A Lua check did not answer: an error, its time or memory limit.
    LuaError,
    /// Not probed in this observation.
    NotProbed,
}

impl How {
    /// The word for the metrics and the alert JSON.
    pub fn word(self) -> &'static str {
        match self {
            How::Refused => "refused",
            How::TimedOut => "timed_out",
            How::Dns => "dns",
            How::Status(_) => "http_status",
            How::Failed => "failed",
            How::LuaFalse => "lua_false",
            How::LuaError => "lua_error",
            How::NotProbed => "not_probed",
        }
    }
}

impl ProbeError {
    pub fn new(how: How, text: impl Into<String>) -> Self {
        ProbeError {
            how,
            text: text.into(),
        }
    }

    pub fn not_probed() -> Self {
        ProbeError::new(How::NotProbed, "not probed")
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<ProbeError> for String {
    fn from(e: ProbeError) -> String {
        e.text
    }
}

/// Ready iff a tcp connection to `host:port` can be opened within `timeout`. Every resolved
/// address is tried in turn with what is left of the timeout, name resolution included.
pub fn tcp_probe(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    tcp_check(host, port, timeout).map_err(String::from)
}

/// [`tcp_probe`], its failure as data.
pub fn tcp_check(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    let deadline = crate::fmt::deadline(timeout);
    let addrs = resolve_checked(host, port, timeout)?;
    let mut failures: Vec<(SocketAddr, ProbeError)> = Vec::new();
    for addr in &addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            failures.push((*addr, timed_out(timeout)));
            break;
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                failures.push((*addr, timed_out(timeout)))
            }
            Err(e) => failures.push((*addr, io_reason(&e))),
        }
    }
    // One reason when every address failed alike (the usual case); per address otherwise.
    let Some((_, first)) = failures.first() else {
        return Err(ProbeError::new(How::Dns, "no address for host"));
    };
    if failures.iter().all(|(_, r)| r == first) {
        Err(first.clone())
    } else {
        let text = failures
            .iter()
            .map(|(a, r)| format!("{a}: {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(ProbeError::new(first.how, text))
    }
}

/// Resolves `host`, bounded by `timeout`: getaddrinfo has no timeout of its own, so a name
/// (not an IP literal) is resolved on a helper thread that is abandoned if it is too slow.
pub(crate) fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    resolve_checked(host, port, timeout).map_err(String::from)
}

fn resolve_checked(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ProbeError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("autoheal-resolve".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })
        .map_err(|e| {
            ProbeError::new(
                How::Dns,
                format!("cannot resolve {host}: {}", io_reason(&e).text),
            )
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ProbeError::new(How::Dns, "no address for host")),
        Ok(Err(e)) => Err(io_reason(&e)),
        Err(_) => Err(ProbeError::new(
            How::TimedOut,
            format!("timed out after {} resolving {host}", show(timeout)),
        )),
    }
}

/// Options of one http probe; every field has a default.
#[derive(Debug, Clone, Default)]
pub struct HttpOpts {
    /// Bound on the whole request, redirects and body included; default
    /// [`PROBE_TIMEOUT`](crate::defaults::PROBE_TIMEOUT).
    pub timeout: Option<Duration>,
    /// Inclusive range of statuses that count as ready; default 200..=299.
    pub status: Option<(u16, u16)>,
    /// A substring that must appear in the (bounded) body.
    pub body: Option<String>,
    /// Request method; default GET.
    pub method: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}

/// What an http request got back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status of the final response, after redirects.
    pub status: u16,
    /// At most [`HTTP_MAX_BODY`](crate::defaults::HTTP_MAX_BODY) bytes, invalid utf-8 replaced.
    pub body: String,
    /// Response headers, values lossily decoded.
    pub headers: Vec<(String, String)>,
}

/// One request: redirects followed up to [`HTTP_MAX_REDIRECTS`], the whole request bounded by
/// the timeout, the body read up to [`HTTP_MAX_BODY`] bytes (the rest is left unread, not an
/// error). A non-2xx status is NOT an error here; only failing to get an answer is.
pub fn http_request(url: &str, opts: &HttpOpts) -> Result<HttpResponse, String> {
    send(url, opts, ()).map_err(String::from)
}

/// [`http_request`] with a request body (method default POST; its `Content-Type` is one of
/// `opts.headers`), bounded the same way: Lua's `http_post`.
pub fn http_send(url: &str, opts: &HttpOpts, body: &[u8]) -> Result<HttpResponse, String> {
    let opts = HttpOpts {
        method: Some(opts.method.clone().unwrap_or_else(|| "POST".into())),
        ..opts.clone()
    };
    send(url, &opts, body).map_err(String::from)
}

fn send(
    url: &str,
    opts: &HttpOpts,
    body: impl ureq::AsSendBody,
) -> Result<HttpResponse, ProbeError> {
    let timeout = opts.timeout.unwrap_or(PROBE_TIMEOUT);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(HTTP_MAX_REDIRECTS)
            .max_redirects_will_error(true)
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(concat!("autoheal/", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let method = opts.method.as_deref().unwrap_or("GET");
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in &opts.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body)
        .map_err(|e| ProbeError::new(How::Failed, format!("bad request: {e}")))?;
    let response = agent.run(request).map_err(|e| ureq_reason(&e, timeout))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), v)
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(HTTP_MAX_BODY)
        .read_to_end(&mut body)
        .map_err(|e| body_reason(&e, timeout))?;
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers,
    })
}

/// Ready iff the request gets an answer whose status is in range (default 2xx) and whose body
/// contains `opts.body`, if set.
pub fn http_probe(url: &str, opts: &HttpOpts) -> Result<(), String> {
    http_check(url, opts).map_err(String::from)
}

/// [`http_probe`], its failure as data.
pub fn http_check(url: &str, opts: &HttpOpts) -> ProbeResult {
    let response = send(url, opts, ())?;
    let (low, high) = opts.status.unwrap_or((200, 299));
    let status = How::Status(response.status);
    if !(low..=high).contains(&response.status) {
        return Err(ProbeError::new(status, format!("HTTP {}", response.status)));
    }
    if let Some(want) = &opts.body
        && !response.body.contains(want.as_str())
    {
        let text = format!("HTTP {}, body lacks \"{want}\"", response.status);
        return Err(ProbeError::new(status, text));
    }
    Ok(())
}

/// Probes every distinct target once, in parallel on up to `workers` threads (fewer when the
/// open-file limit leaves less room: [`FdRoom`]), so the whole call takes about as long as the
/// slowest probe when there are no more targets than threads. A target listed more than once
/// is probed once, with the largest of its timeouts.
pub fn probe_all(targets: &[(Target, Duration)], workers: usize) -> HashMap<Target, ProbeResult> {
    let mut distinct: HashMap<&Target, Duration> = HashMap::new();
    for (target, timeout) in targets {
        let t = distinct.entry(target).or_insert(*timeout);
        *t = (*t).max(*timeout);
    }
    let count = distinct.len();
    let queue = Mutex::new(distinct.into_iter().collect::<Vec<_>>());
    let room = FdRoom::enter(workers.min(count));
    // 32 at least, as many as autoheal always ran: a low limit is for the rest of the tick.
    let workers = workers.min(count).min(room.room.max(32)).max(1);
    let results = Mutex::new(HashMap::new());
    let work = || {
        // The queue lock is released as soon as a target is popped. A poisoned lock cannot
        // happen (nothing panics while holding it) and would only end a worker.
        let next = || queue.lock().ok().and_then(|mut q| q.pop());
        while let Some((target, timeout)) = next() {
            let result = probe(target, timeout);
            if let Ok(mut r) = results.lock() {
                r.insert(target.clone(), result);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let started = std::thread::Builder::new()
                .name("autoheal-probe".into())
                .stack_size(crate::defaults::PROBE_STACK)
                .spawn_scoped(scope, work);
            // A host out of threads probes with the workers it got (at least this one).
            if started.is_err() {
                break;
            }
        }
        work();
    });
    drop(room);
    results.into_inner().unwrap_or_default()
}

/// The open-file room of the probes in flight: how many may hold a socket at once. The first
/// [`probe_all`] of the process raises the soft limit toward the hard one when it is short
/// (Debian's soft limit is 1,024), and the last one to finish gives it back, so that the
/// scripts started later inherit the limit autoheal was given (calls overlap: a Lua chunk's
/// `restart()` probes while the observation's own probes run).
struct FdRoom {
    room: usize,
}

/// How many [`probe_all`] calls run, and the limit they found before the first raised it.
static FD_USERS: std::sync::Mutex<(usize, Option<rustix::process::Rlimit>)> =
    std::sync::Mutex::new((0, None));

impl FdRoom {
    fn enter(want: usize) -> FdRoom {
        use rustix::process::{Resource, getrlimit, setrlimit};
        // What else the tick may open meanwhile: its scripts' logs, the state, Lua.
        const RESERVE: u64 = 128;
        // A poisoned lock cannot happen (nothing panics while holding it); should it, the
        // probes run within whatever limit there is.
        let mut users = FD_USERS.lock().unwrap_or_else(|p| p.into_inner());
        let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count()) as u64;
        let need = open + RESERVE + want as u64;
        let now = getrlimit(Resource::Nofile);
        if now.current.is_some_and(|soft| soft < need) {
            let mut more = now;
            more.current = Some(now.maximum.map_or(need, |hard| hard.min(need)));
            if setrlimit(Resource::Nofile, more).is_ok() && users.1.is_none() {
                users.1 = Some(now);
            }
        }
        users.0 += 1;
        let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let room = usize::try_from(soft.saturating_sub(open + RESERVE)).unwrap_or(usize::MAX);
        FdRoom { room }
    }
}

impl Drop for FdRoom {
    fn drop(&mut self) {
        let mut users = FD_USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.0 = users.0.saturating_sub(1);
        if users.0 == 0
            && let Some(before) = users.1.take()
        {
            let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, before);
        }
    }
}

/// One target, with default http options apart from the timeout.
fn probe(target: &Target, timeout: Duration) -> ProbeResult {
    match target {
        Target::Tcp { host, port } => tcp_check(host, *port, timeout),
        Target::Http { url } => http_check(
            url,
            &HttpOpts {
                timeout: Some(timeout),
                ..HttpOpts::default()
            },
        ),
    }
}

/// A ureq error as a short reason.
fn ureq_reason(e: &ureq::Error, timeout: Duration) -> ProbeError {
    use ureq::Error as E;
    let failed = |text: String| ProbeError::new(How::Failed, text);
    match e {
        E::Timeout(_) => timed_out(timeout),
        E::HostNotFound => ProbeError::new(How::Dns, "no address for host"),
        E::Io(io) if io.kind() == io::ErrorKind::TimedOut => timed_out(timeout),
        E::Io(io) => io_reason(io),
        E::ConnectionFailed => failed("connection failed".into()),
        E::TooManyRedirects => failed(format!(
            "too many redirects (more than {HTTP_MAX_REDIRECTS})"
        )),
        E::RedirectFailed => failed("redirect failed".into()),
        E::BadUri(uri) => failed(format!("bad url: {uri}")),
        E::Http(e) => failed(format!("bad request: {e}")),
        E::Protocol(e) => failed(format!("bad HTTP answer: {e}")),
        E::LargeResponseHeader(..) => failed("response headers too large".into()),
        other => failed(other.to_string()),
    }
}

/// An error while reading the body; ureq wraps its own errors (a timeout) in io::Error.
fn body_reason(e: &io::Error, timeout: Duration) -> ProbeError {
    let inner = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        Some(inner) => ureq_reason(inner, timeout),
        None if e.kind() == io::ErrorKind::TimedOut => timed_out(timeout),
        None => io_reason(e),
    };
    ProbeError::new(inner.how, format!("reading body: {}", inner.text))
}

fn timed_out(timeout: Duration) -> ProbeError {
    ProbeError::new(How::TimedOut, format!("timed out after {}", show(timeout)))
}

/// `3s`, `1500ms`: how a duration reads in a reason.
fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn io_reason(e: &io::Error) -> ProbeError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            return ProbeError::new(How::Refused, "connection refused");
        }
        io::ErrorKind::ConnectionReset => return ProbeError::new(How::Failed, "connection reset"),
        io::ErrorKind::UnexpectedEof => {
            return ProbeError::new(How::Failed, "connection closed before an answer");
        }
        _ => {}
    }
    let text = e.to_string();
    // std reports getaddrinfo failures as "failed to lookup address information: <gai_strerror>".
    if let Some(why) = text.strip_prefix("failed to lookup address information: ") {
        return match why {
            "Name or service not known" | "No address associated with hostname" => {
                ProbeError::new(How::Dns, "no address for host")
            }
            other => ProbeError::new(
                How::Dns,
                format!("name lookup failed: {}", other.to_lowercase()),
            ),
        };
    }
    let text = text
        .find(" (os error")
        .map_or(text.as_str(), |i| &text[..i]);
    let mut chars = text.chars();
    let text: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".into(),
    };
    ProbeError::new(How::Failed, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(show(Duration::from_secs(3)), "3s");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn targets_display_as_in_status_lines() {
        let tcp = |h: &str| Target::Tcp {
            host: h.into(),
            port: 80,
        };
        assert_eq!(tcp("10.0.0.7").to_string(), "10.0.0.7:80");
        assert_eq!(tcp("::1").to_string(), "[::1]:80");
        let http = Target::Http {
            url: "http://x/check".into(),
        };
        assert_eq!(http.to_string(), "http://x/check");
    }

    #[test]
    fn io_reasons_are_short() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused).text, "connection refused");
        assert_eq!(io_reason(&refused).how, How::Refused);
        assert_eq!(
            io_reason(&io::Error::from_raw_os_error(101)).text,
            "network is unreachable"
        );
    }
}
