//! Loading and validating conf.yaml: marked tree → typed [`Config`], every error at once.

use super::diag::{Diagnostic, Diagnostics, Severity};
use super::graph::{Addr, By, Graph};
use super::model::Config;
use super::types::{Dep, Listen, Liveness, LuaChunk, Pname, Probe, Service, Settings};
use super::yaml::{self, Kind, Node, Pos};
use crate::pattern::PatternSet;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const SERVICE_KEYS: &[&str] = &[
    "pname",
    "pid_file",
    "check",
    "health",
    "dep",
    "script",
    "stop",
    "user",
    "env",
    "process_user",
    "timeout",
    "grace",
    "unhealthy_after",
    "restart_on_dep_restart",
    "check_timeout",
    "listen",
    "warmup",
];
const HEALTH_KEYS: &[&str] = &["host", "port", "url", "timeout"];
const DEP_KEYS: &[&str] = &["name", "host", "port", "url", "lua", "timeout"];
const SETTINGS_KEYS: &[&str] = &[
    "strict",
    "state_dir",
    "converge",
    "lua_path",
    "metrics_file",
    "probe_timeout",
    "script_timeout",
    "grace",
    "lua_timeout",
    "backoff",
    "backoff_max",
    "give_up_after",
    "healthy_after",
    "unhealthy_after",
    "notify",
    "notify_after",
    "hook_timeout",
    "on_event",
    "recheck_max",
    "host",
];

/// The longest value a kind of duration key may have (named in `crate::defaults`), and why, for
/// the help of the error past it. Every duration is bounded, so that no value of a file that
/// loads can overflow the tick's arithmetic (`Instant + Duration`, unix times past year 9999).
struct Bound {
    max: Duration,
    why: &'static str,
}

const PROBE: Bound = Bound {
    max: crate::defaults::MAX_PROBE_TIMEOUT,
    why: "a tick waits for its probes before it acts: a longer timeout holds every service of \
          this host on one host that does not answer",
};
const SCRIPT: Bound = Bound {
    max: crate::defaults::MAX_SCRIPT_TIMEOUT,
    why: "a start script that has not returned by then is hung: give the time the slowest \
          start takes, e.g. 2m",
};
const LUA: Bound = Bound {
    max: crate::defaults::MAX_LUA_TIMEOUT,
    why: "a chunk runs inside the tick's look, as a probe does: a longer limit holds every \
          service of this host on one chunk",
};
const GRACE: Bound = Bound {
    max: crate::defaults::MAX_GRACE,
    why: "a service not alive that long after its start is not starting; a longer grace only \
          puts off the next try",
};
const CONVERGE: Bound = Bound {
    max: crate::defaults::MAX_CONVERGE,
    why: "cron starts a tick every minute, and the next tick carries on where this one stopped",
};
const BACKOFF: Bound = Bound {
    max: crate::defaults::MAX_BACKOFF,
    why: "a longer wait between tries means never: say so with `give_up_after`",
};
const NOTIFY: Bound = Bound {
    max: crate::defaults::MAX_NOTIFY_AFTER,
    why: "an alert that long after the service went down is no alert; 0 alerts at once",
};
const HOOK: Bound = Bound {
    max: crate::defaults::MAX_HOOK_TIMEOUT,
    why: "the tick waits for its alert hooks: a longer limit holds the healing of every service \
          of this host on one hook",
};
const RECHECK: Bound = Bound {
    max: crate::defaults::MAX_RECHECK_MAX,
    why: "a host that looks at a dep less often notices it too late for a tick to wait on it",
};
const HEALTHY: Bound = Bound {
    max: crate::defaults::MAX_HEALTHY_AFTER,
    why: "a service alive that long is healthy by any measure",
};

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    match read(path) {
        Ok(src) => load_str(&src, path),
        Err(d) => Err(Diagnostics(vec![*d])),
    }
}

/// The file's text; a file that is not UTF-8 is an error at its first bad byte.
fn read(path: &Path) -> Result<String, Box<Diagnostic>> {
    let file = path.display().to_string();
    let bytes = read_bounded(path).map_err(|message| {
        Box::new(Diagnostic {
            severity: Severity::Error,
            file: file.clone(),
            line: 0,
            col: 0,
            context: String::new(),
            message,
            source_line: None,
            width: 0,
            help: Some(
                "name the file with -c FILE or $AUTOHEAL_CONFIG (default /etc/autoheal/conf.yaml)"
                    .into(),
            ),
        })
    })?;
    String::from_utf8(bytes).map_err(|e| Box::new(not_utf8(file, e.as_bytes(), e.utf8_error())))
}

/// At most this much of a config file is read: a thousand services take some 100 KiB.
const CONFIG_MAX: u64 = 16 * 1024 * 1024;

/// The bytes of the config file, never blocking (a FIFO put in its place would hang every
/// command, each cron minute one more, before the lock) and bounded: a regular file only, of
/// at most [`CONFIG_MAX`] bytes. The error completes "cannot read the config".
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| format!("cannot read the config: {}", crate::fmt::io_reason(&e));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err("cannot read the config: it is not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(CONFIG_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > CONFIG_MAX {
        return Err(format!(
            "cannot read the config: it is bigger than {} MiB",
            CONFIG_MAX >> 20
        ));
    }
    Ok(bytes)
}

/// Where a file stops being UTF-8: its line (YAML's breaks, as [`yaml::lines`]), the column in
/// characters, and the byte as it is, for an operator who has to find it in an editor.
fn not_utf8(file: String, bytes: &[u8], e: std::str::Utf8Error) -> Diagnostic {
    let at = e.valid_up_to();
    let good = std::str::from_utf8(&bytes[..at]).expect("valid up to there");
    let lines = yaml::lines(good);
    // A break right before the bad byte starts a line `lines` does not list.
    let starts_line = good.ends_with(['\n', '\r']) || good.is_empty();
    let (line, before) = match lines.last() {
        Some(last) if !starts_line => (lines.len(), *last),
        _ => (lines.len() + 1, ""),
    };
    let start = at - before.len();
    let end = bytes[start..]
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')
        .map_or(bytes.len(), |n| start + n);
    Diagnostic {
        severity: Severity::Error,
        file,
        line,
        col: before.chars().count() + 1,
        context: String::new(),
        message: format!(
            "the file is not UTF-8: byte 0x{:02X} at offset {at}",
            bytes[at]
        ),
        source_line: Some(String::from_utf8_lossy(&bytes[start..end]).into_owned()),
        width: 1,
        help: Some(
            "a config file must be UTF-8: convert it (e.g. `iconv -f latin1 -t utf-8`) or fix \
             the character"
                .into(),
        ),
    }
}

/// Validates `src` as if read from `path` (relative paths in it resolve against its directory).
pub fn load_str(src: &str, path: &Path) -> Result<Config, Diagnostics> {
    parse_str(src, path).map_err(|r| r.diagnostics)
}

/// A file rejected by [`load_partial`]: its errors, and the Lua chunks that could be read
/// from it anyway.
#[derive(Debug)]
pub struct Rejected {
    pub diagnostics: Diagnostics,
    pub chunks: Vec<LuaChunk>,
}

/// As [`load`], but a rejected file also gives back the Lua chunks found in it, so that their
/// syntax errors can be reported in the same run as the file's other errors.
/// As [`load_partial`], of a text read elsewhere (the last version of `path` that loaded, kept
/// in the state dir): positions and relative paths are `path`'s.
pub fn load_partial_str(src: &str, path: &Path) -> Result<Config, Rejected> {
    parse_str(src, path)
}

/// Where a file that does not load would keep its state: its `settings.state_dir`, if the
/// YAML parses that far (a misspelt key elsewhere does not hide it). `None` when it cannot be
/// told.
pub fn state_dir_hint(path: &Path) -> Option<PathBuf> {
    let bytes = read_bounded(path).ok()?;
    let src = String::from_utf8_lossy(&bytes);
    let base = path.parent().unwrap_or(Path::new(""));
    let parsed = super::yaml::parse(&src).ok().flatten().and_then(|root| {
        let settings = node_of(&root, "settings")?;
        Some(node_of(settings, "state_dir")?.as_str()?.to_string())
    });
    // A YAML syntax error elsewhere (the likeliest broken edit) must not hide it: then the
    // `state_dir:` line of the top-level `settings:` block, as it is written.
    let dir = parsed.or_else(|| state_dir_line(&src))?;
    Some(resolve_path(base, &dir))
}

/// `state_dir: X` indented under a top-level `settings:` line, read as plain text (quotes and
/// a trailing comment taken off).
fn state_dir_line(src: &str) -> Option<String> {
    let mut in_settings = false;
    for line in yaml::lines(src) {
        if !line.starts_with([' ', '\t']) && !line.trim().is_empty() && !line.starts_with('#') {
            in_settings = line.trim_end().starts_with("settings:");
            continue;
        }
        if let (true, Some(rest)) = (in_settings, line.trim_start().strip_prefix("state_dir:")) {
            let value = rest.split(" #").next().unwrap_or_default().trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            return (!value.is_empty()).then(|| value.to_string());
        }
    }
    None
}

pub fn load_partial(path: &Path) -> Result<Config, Rejected> {
    match read(path) {
        Ok(src) => parse_str(&src, path),
        Err(d) => Err(Rejected {
            diagnostics: Diagnostics(vec![*d]),
            chunks: Vec::new(),
        }),
    }
}

fn parse_str(src: &str, path: &Path) -> Result<Config, Rejected> {
    let mut cx = Cx {
        file: path.display().to_string(),
        source: src.to_string(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        lines: yaml::lines(src),
        errors: Vec::new(),
        warnings: Vec::new(),
        chunks: Vec::new(),
        pnames: Vec::new(),
    };
    let rejected = |errors| Rejected {
        diagnostics: Diagnostics(errors),
        chunks: Vec::new(),
    };
    let root = match yaml::parse(src) {
        Ok(Some(root)) => root,
        Ok(None) => {
            cx.error(
                Pos { line: 1, col: 0 },
                "",
                "the file has no services",
                0,
                Some("describe each service as `name:` with pname or pid_file, dep and script; see examples/conf.yaml".into()),
            );
            return Err(rejected(cx.errors));
        }
        Err(e) => {
            cx.error(e.pos, "", &e.message, e.width, Some(e.help));
            return Err(rejected(cx.errors));
        }
    };
    let config = cx.config(&root, path);
    if cx.errors.is_empty() {
        let mut config = config.expect("no errors means a config");
        config.warnings = cx.warnings;
        Ok(config)
    } else {
        cx.errors.sort_by_key(|d| (d.line, d.col));
        Err(Rejected {
            diagnostics: Diagnostics(cx.errors),
            chunks: cx.chunks,
        })
    }
}

/// Resolves a path from the config against the config file's directory.
pub fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

struct Cx<'a> {
    file: String,
    source: String,
    base: PathBuf,
    lines: Vec<&'a str>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Every Lua chunk read, so that a file rejected for other errors still gets its chunks
    /// compiled (see [`load_partial`]).
    chunks: Vec<LuaChunk>,
    /// Every `pname` of a valid syntax, with its service and node, even of a service rejected
    /// for another error: they are compiled together once all are read (`compile_pnames`), and
    /// one that does not compile is an error at its line whatever else is wrong.
    pnames: Vec<(String, Node)>,
}

impl Cx<'_> {
    fn diag(
        &self,
        sev: Severity,
        pos: Pos,
        context: &str,
        msg: &str,
        width: usize,
        help: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: sev,
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            context: context.to_string(),
            message: msg.to_string(),
            source_line: self
                .lines
                .get(pos.line.wrapping_sub(1))
                .map(|s| s.to_string()),
            width,
            help,
        }
    }

    fn error(&mut self, pos: Pos, context: &str, msg: &str, width: usize, help: Option<String>) {
        let d = self.diag(Severity::Error, pos, context, msg, width, help);
        self.errors.push(d);
    }

    /// An error pointing at `node`, the caret as wide as its text on that line.
    fn error_at(&mut self, node: &Node, context: &str, msg: &str, help: Option<String>) {
        let width = match &node.kind {
            Kind::Scalar {
                value,
                block: false,
                plain,
                ..
            } if !value.contains('\n') => value.chars().count() + if *plain { 0 } else { 2 },
            _ => 1,
        };
        self.error(node.pos, context, msg, width, help);
    }

    /// The entries of a mapping, with unknown and repeated keys reported.
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        context: &str,
        what: &str,
        allowed: &[&str],
    ) -> Option<Vec<(&'n Node, &'n Node)>> {
        let Kind::Map(entries) = &node.kind else {
            self.error_at(
                node,
                context,
                &format!(
                    "expected {what} (a mapping of keys), found {}",
                    node.describe()
                ),
                Some(format!("keys of {what}: {}", allowed.join(", "))),
            );
            return None;
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(key) = k.as_str() else {
                self.error_at(k, context, "a key must be a plain name", None);
                continue;
            };
            if !allowed.contains(&key) {
                let help = match suggest(key, allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("keys of {what}: {}", allowed.join(", ")),
                };
                self.error_at(k, context, &format!("unknown key `{key}`"), Some(help));
                continue;
            }
            if let Some(first) = seen.insert(key, k.pos.line) {
                self.error_at(
                    k,
                    context,
                    &format!("`{key}` is given twice (first on line {first})"),
                    Some("keep one of them".into()),
                );
                continue;
            }
            out.push((k, v));
        }
        Some(out)
    }

    /// A non-empty scalar string.
    fn string(&mut self, node: &Node, context: &str, key: &str) -> Option<String> {
        match &node.kind {
            Kind::Scalar { value, .. } if node.is_null() || value.trim().is_empty() => {
                self.error_at(
                    node,
                    context,
                    &format!("`{key}` is empty"),
                    Some(format!("give `{key}` a value or remove the key")),
                );
                None
            }
            Kind::Scalar { value, .. } => Some(value.clone()),
            _ => {
                self.error_at(
                    node,
                    context,
                    &format!("`{key}` must be a text value, found {}", node.describe()),
                    Some("quote it if it contains `: ` or starts with `[`, `{`, `-`".into()),
                );
                None
            }
        }
    }

    /// A duration of at most `bound.max`.
    fn duration(
        &mut self,
        node: &Node,
        context: &str,
        key: &str,
        bound: &Bound,
    ) -> Option<Duration> {
        let text = self.string(node, context, key)?;
        match parse_duration(&text) {
            Ok(d) if d > bound.max => {
                self.error_at(
                    node,
                    context,
                    &format!("`{key}` must be at most {}", written(bound.max)),
                    Some(bound.why.into()),
                );
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                self.error_at(
                    node,
                    context,
                    &format!("`{key}`: bad duration `{text}` ({why})"),
                    Some(
                        "write a duration like 500ms, 3s, 2m, 1h or a bare number of seconds"
                            .into(),
                    ),
                );
                None
            }
        }
    }

    /// A time limit (`timeout`, `*_timeout`): more than zero, or nothing could ever finish.
    fn limit(&mut self, node: &Node, context: &str, key: &str, bound: &Bound) -> Option<Duration> {
        let d = self.duration(node, context, key, bound)?;
        if d.is_zero() {
            self.error_at(
                node,
                context,
                &format!("`{key}` must be more than 0"),
                Some("with no time a probe is never ready and a script or Lua chunk is stopped as it starts; give a positive duration such as 3s".into()),
            );
            return None;
        }
        Some(d)
    }

    /// A `grace`: at least [`crate::defaults::MIN_GRACE`], or a service is started twice
    /// before it could come alive.
    fn grace(&mut self, node: &Node, context: &str, key: &str) -> Option<Duration> {
        let d = self.duration(node, context, key, &GRACE)?;
        let min = crate::defaults::MIN_GRACE;
        if d < min {
            self.error_at(
                node,
                context,
                &format!("`{key}` must be at least {}", crate::fmt::duration(min)),
                Some("grace is the time a fresh start gets to come alive before it may be started again; give the time the service takes to start, e.g. 30s".into()),
            );
            return None;
        }
        Some(d)
    }

    /// A `hook_timeout`: at least [`crate::defaults::MIN_HOOK_TIMEOUT`], or a hook could not
    /// even connect to its webhook.
    fn hook_timeout(&mut self, node: &Node, context: &str, key: &str) -> Option<Duration> {
        let d = self.duration(node, context, key, &HOOK)?;
        let min = crate::defaults::MIN_HOOK_TIMEOUT;
        if d < min {
            self.error_at(
                node,
                context,
                &format!("`{key}` must be at least {}", crate::fmt::duration(min)),
                Some("an alert hook needs the time to start and post; give e.g. 10s".into()),
            );
            return None;
        }
        Some(d)
    }

    /// A `recheck_max`: at least the schedule's first wait ([`crate::defaults::MIN_RECHECK_MAX`]).
    fn recheck_max(&mut self, node: &Node, context: &str, key: &str) -> Option<Duration> {
        let d = self.duration(node, context, key, &RECHECK)?;
        let min = crate::defaults::MIN_RECHECK_MAX;
        if d < min {
            self.error_at(
                node,
                context,
                &format!("`{key}` must be at least {}", crate::fmt::duration(min)),
                Some(
                    "it is the longest wait between two looks at a remote dep; the first \
                      wait is 250ms already: give e.g. 2s, or more for a large fleet (README: \
                      \"How many hosts\")"
                        .into(),
                ),
            );
            return None;
        }
        Some(d)
    }

    fn count(&mut self, node: &Node, context: &str, key: &str) -> Option<u32> {
        let text = self.string(node, context, key)?;
        match text.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error_at(
                    node,
                    context,
                    &format!("`{key}` must be a whole number, found `{text}`"),
                    None,
                );
                None
            }
        }
    }

    fn chunk(&mut self, node: &Node, context: &str, key: &str, label: String) -> Option<LuaChunk> {
        let source = self.string(node, context, key)?;
        // yaml-rust2 marks a block scalar at its first content line (tested in yaml.rs). A
        // literal block (`|`) keeps the file's lines, leading blank ones as leading newlines:
        // its line 1 stands that many lines higher. Folded (`>`) and multi-line flow scalars
        // join lines, so no line mapping is exact for them: they keep their first line.
        let line = match &node.kind {
            Kind::Scalar {
                value,
                literal: true,
                ..
            } => {
                let blank = value.bytes().take_while(|b| *b == b'\n').count();
                node.pos.line.saturating_sub(blank).max(1)
            }
            _ => node.pos.line,
        };
        let chunk = LuaChunk {
            source,
            line,
            label,
            service: context.to_string(),
        };
        // A chunk YAML cut short is reported as that, not compiled: its Lua errors would be
        // about text the operator never wrote.
        if !self.cut_at_comment(node, context, key) {
            self.chunks.push(chunk.clone());
        }
        Some(chunk)
    }

    /// Reports a one-line plain chunk that YAML ended at a ` #` that Lua needed (see
    /// [`super::cut`]); true if it did.
    fn cut_at_comment(&mut self, node: &Node, context: &str, key: &str) -> bool {
        let Kind::Scalar {
            value, plain: true, ..
        } = &node.kind
        else {
            return false;
        };
        let Some(text) = self.lines.get(node.pos.line.wrapping_sub(1)).copied() else {
            return false;
        };
        // A one-line plain scalar is its source text, from its column (in characters).
        let Some((start, _)) = text.char_indices().nth(node.pos.col.saturating_sub(1)) else {
            return false;
        };
        let Some(rest) = text[start..].strip_prefix(value.as_str()) else {
            return false;
        };
        let comment = rest.trim_start();
        if value.contains('\n') || comment.len() == rest.len() || !comment.starts_with('#') {
            return false;
        }
        let Some(why) = super::cut::cut(value) else {
            return false;
        };
        let lost = comment.trim_end();
        let (message, lua_hash) = match why {
            super::cut::Cut::Operator => (
                format!(
                    "this chunk ends at ` #`, which YAML reads as a comment though the Lua \
                     before it needs what follows: `{lost}` was cut off"
                ),
                "where `#` is Lua's length operator (a comment goes after complete Lua)",
            ),
            super::cut::Cut::InString => (
                format!(
                    "this chunk ends at ` #`, which YAML reads as a comment even inside a Lua \
                     string: `{lost}` was cut off"
                ),
                "where `#` is Lua's",
            ),
        };
        let hash = text.len() - comment.len();
        let pos = Pos {
            line: node.pos.line,
            col: text[..hash].chars().count() + 1,
        };
        let whole = text[start..].trim_end().replace('\'', "''");
        self.error(
            pos,
            context,
            &message,
            lost.chars().count(),
            Some(format!(
                "quote the whole chunk (`{key}: '{whole}'`) or write it as a block (`{key}: |`, \
                 the Lua on the lines below), {lua_hash}"
            )),
        );
        true
    }

    fn config(&mut self, root: &Node, path: &Path) -> Option<Config> {
        let Kind::Map(top) = &root.kind else {
            self.error_at(
                root,
                "",
                &format!(
                    "expected a mapping of service names to services, found {}",
                    root.describe()
                ),
                Some("see examples/conf.yaml".into()),
            );
            return None;
        };
        // Pass 1: names, so that deps can name services defined further down.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut settings_node = None;
        let mut settings_key = None;
        let mut service_nodes = Vec::new();
        for (k, v) in top {
            let Some(name) = k.as_str().map(str::to_string) else {
                self.error_at(k, "", "a service name must be a plain name", None);
                continue;
            };
            if let Some(first) = names.get(&name) {
                let first = *first;
                self.error_at(
                    k,
                    &name,
                    &format!("service `{name}` is defined twice (first on line {first})"),
                    Some("rename one of them or merge them".into()),
                );
                continue;
            }
            names.insert(name.clone(), k.pos.line);
            if name == "settings" {
                settings_node = Some(v);
                settings_key = Some(k.pos);
            } else if looks_like_settings(&name, v) {
                // `setting:` is meant as `settings`: one error, not four about a service.
                self.error_at(
                    k,
                    "",
                    &format!("unknown top-level key `{name}`"),
                    Some(
                        "did you mean `settings`? Its keys are settings, not those of a service"
                            .into(),
                    ),
                );
            } else {
                if let Some(why) = bad_name(&name) {
                    let help = if name.len() > crate::defaults::MAX_SERVICE_NAME {
                        "shorten it".into()
                    } else {
                        "use letters, digits, `_`, `-` and `.`".into()
                    };
                    self.error_at(k, &name, &format!("bad service name: {why}"), Some(help));
                }
                service_nodes.push((name, k, v));
            }
        }
        let settings = match settings_node {
            Some(n) if !n.is_null() => self.settings(n),
            _ => Settings::default(),
        };
        let service_names: HashSet<&str> =
            service_nodes.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut services = Vec::new();
        for (name, k, v) in &service_nodes {
            if let Some(s) = self.service(name, k, v, &settings, &service_names) {
                services.push(s);
            }
        }
        // A file with `settings:` and no service is a placeholder that heals nothing (the
        // packaged /etc/autoheal/conf.yaml, before it is edited): valid, with a warning. One
        // with neither is more likely a truncated or wrong file: an error.
        match (service_nodes.is_empty(), settings_key) {
            (false, _) => {}
            (true, None) => self.error(Pos { line: 1, col: 0 }, "", "the file has no services", 0, Some("describe each service as `name:` with pname or pid_file, dep and script; see examples/conf.yaml".into())),
            (true, Some(pos)) => {
                let d = self.diag(
                    Severity::Warning,
                    pos,
                    "",
                    "the file has no services: it heals nothing",
                    "settings".len(),
                    Some("describe each service as `name:` with pname or pid_file, dep and script; see examples/conf.yaml".into()),
                );
                self.warnings.push(d);
            }
        }
        let graph = Graph::new(&services);
        self.cycles(&graph, &services, &service_nodes);
        let pnames = self.compile_pnames(&mut services);
        Some(Config {
            path: path.to_path_buf(),
            source: self.source.clone(),
            settings,
            services,
            warnings: Vec::new(),
            graph,
            pnames: Arc::new(pnames),
        })
    }

    /// Every `pname` of the file compiled together, as the snapshots of a tick match them
    /// (`procs`): the compile that proves each one valid. A pattern that fits in no set, even
    /// alone, is compiled alone for its error (regex's size limit), at its line.
    fn compile_pnames(&mut self, services: &mut [Service]) -> PatternSet {
        let read = std::mem::take(&mut self.pnames);
        let set = PatternSet::new(read.iter().filter_map(|(_, v)| v.as_str()));
        for (service, v) in &read {
            let Some(source) = v.as_str().filter(|src| !set.covers(src)) else {
                continue;
            };
            match regex::Regex::new(source) {
                Ok(regex) => {
                    if let Some(s) = services.iter_mut().find(|s| s.name == *service) {
                        s.liveness.set_pname(Pname::compiled(regex));
                    }
                }
                Err(e) => self.error_at(
                    v,
                    service,
                    &format!(
                        "`pname` is not a valid regular expression: {}",
                        regex_reason(&e)
                    ),
                    Some(PNAME_HELP.into()),
                ),
            }
        }
        set
    }

    fn settings(&mut self, node: &Node) -> Settings {
        let mut s = Settings::default();
        let cx = "settings";
        let Some(entries) = self.entries(node, cx, "settings", SETTINGS_KEYS) else {
            return s;
        };
        for (k, v) in entries {
            let key = k.as_str().unwrap_or_default();
            match key {
                "state_dir" => {
                    if let Some(p) = self.string(v, cx, key) {
                        s.state_dir = resolve_path(&self.base, &p);
                    }
                }
                "lua_path" => {
                    if let Some(p) = self.string(v, cx, key) {
                        s.lua_path = Some(resolve_path(&self.base, &p));
                    }
                }
                "metrics_file" => {
                    if let Some(p) = self.string(v, cx, key) {
                        s.metrics_file = self.metrics_file(v, cx, &p);
                    }
                }
                "give_up_after" => {
                    if let Some(n) = self.count(v, cx, key) {
                        s.give_up_after = n;
                    }
                }
                "unhealthy_after" => {
                    if let Some(n) = self.positive(v, cx, key) {
                        s.unhealthy_after = n;
                    }
                }
                "strict" => s.strict = self.boolean(v, cx, key).unwrap_or(false),
                "notify" => s.notify = self.string(v, cx, key),
                "on_event" => {
                    s.on_event = self.chunk(v, cx, key, "settings.on_event".into());
                }
                "hook_timeout" => {
                    if let Some(d) = self.hook_timeout(v, cx, key) {
                        s.hook_timeout = d;
                    }
                }
                "recheck_max" => {
                    if let Some(d) = self.recheck_max(v, cx, key) {
                        s.recheck_max = d;
                    }
                }
                "host" => s.host = self.host(v),
                _ => {
                    let d = match key {
                        "probe_timeout" => self.limit(v, cx, key, &PROBE),
                        "script_timeout" => self.limit(v, cx, key, &SCRIPT),
                        "lua_timeout" => self.limit(v, cx, key, &LUA),
                        "grace" => self.grace(v, cx, key),
                        // 0 is meaningful: converge = one pass, backoff = none (grace alone
                        // spaces retries), healthy_after = reset once seen alive and well.
                        "converge" => self.duration(v, cx, key, &CONVERGE),
                        "notify_after" => self.duration(v, cx, key, &NOTIFY),
                        "healthy_after" => self.duration(v, cx, key, &HEALTHY),
                        _ => self.duration(v, cx, key, &BACKOFF),
                    };
                    let Some(d) = d else {
                        continue;
                    };
                    match key {
                        "converge" => s.converge = d,
                        "probe_timeout" => s.probe_timeout = d,
                        "script_timeout" => s.script_timeout = d,
                        "grace" => s.grace = d,
                        "lua_timeout" => s.lua_timeout = d,
                        "backoff" => s.backoff = d,
                        "backoff_max" => s.backoff_max = d,
                        "healthy_after" => s.healthy_after = d,
                        "notify_after" => s.notify_after = d,
                        _ => unreachable!("every settings key is handled"),
                    }
                }
            }
        }
        if s.backoff_max < s.backoff {
            self.error_at(
                node,
                cx,
                "`backoff_max` is shorter than `backoff`",
                Some("make backoff_max at least backoff".into()),
            );
        }
        s
    }

    /// `settings.metrics_file`: a file (not a directory), relative to the config file's
    /// directory. One whose name does not end in `.prom` is kept, with a warning: node_exporter's
    /// textfile collector reads only `*.prom` (another collector may read anything).
    fn metrics_file(&mut self, v: &Node, cx: &str, p: &str) -> Option<PathBuf> {
        if p.ends_with('/') || p.ends_with("/.") || p.ends_with("/..") || p == "." || p == ".." {
            self.error_at(
                v,
                cx,
                "`metrics_file` names a directory, not a file",
                Some("name the file, e.g. /var/lib/prometheus/node-exporter/autoheal.prom".into()),
            );
            return None;
        }
        if !p.ends_with(".prom") {
            let d = self.diag(
                Severity::Warning,
                v.pos,
                cx,
                "`metrics_file` does not end in `.prom`: node_exporter's textfile collector \
                 will not read it",
                p.chars().count(),
                Some("name it like autoheal.prom".into()),
            );
            self.warnings.push(d);
        }
        Some(resolve_path(&self.base, p))
    }

    fn service(
        &mut self,
        name: &str,
        key: &Node,
        node: &Node,
        settings: &Settings,
        services: &HashSet<&str>,
    ) -> Option<Service> {
        let ok_before = self.errors.len();
        let entries = self.entries(node, name, &format!("service `{name}`"), SERVICE_KEYS)?;
        let (mut pname, mut pid_file, mut check, mut script, mut user) =
            (None, None, None, None, None);
        let mut process_user = None;
        let (mut timeout, mut grace) = (settings.script_timeout, settings.grace);
        let mut check_timeout = settings.lua_timeout;
        let (mut health, mut stop, mut follow) = (None, None, false);
        let mut unhealthy_after = settings.unhealthy_after;
        let (mut deps, mut dep_lines) = (Vec::new(), Vec::new());
        let (mut listen, mut warmup) = (Vec::new(), None);
        let mut env = Vec::new();
        for (k, v) in entries {
            let kname = k.as_str().unwrap_or_default();
            match kname {
                "pname" => {
                    if let Some(src) = self.string(v, name, kname) {
                        // The syntax only: the file's patterns are compiled together once
                        // every service is read (`Cx::compile_pnames`). A pattern with groups
                        // is compiled alone as well, now: a set drops the groups, so it may
                        // fit there and not alone, where a restart's judge matches it.
                        match crate::pattern::parse(&src) {
                            Ok(parsed) if parsed.groups => match regex::Regex::new(&src) {
                                Ok(regex) => {
                                    self.pnames.push((name.to_string(), v.clone()));
                                    pname = Some(Pname::compiled(regex));
                                }
                                Err(e) => self.error_at(
                                    v,
                                    name,
                                    &format!(
                                        "`pname` is not a valid regular expression: {}",
                                        regex_reason(&e)
                                    ),
                                    Some(PNAME_HELP.into()),
                                ),
                            },
                            Ok(_) => {
                                self.pnames.push((name.to_string(), v.clone()));
                                pname = Some(Pname::checked(src));
                            }
                            Err(e) => self.error_at(
                                v,
                                name,
                                &format!(
                                    "`pname` is not a valid regular expression: {}",
                                    last_line(&e)
                                ),
                                Some(PNAME_HELP.into()),
                            ),
                        }
                    }
                }
                "pid_file" => {
                    pid_file = self
                        .string(v, name, kname)
                        .map(|p| resolve_path(&self.base, &p))
                }
                "check" => check = self.chunk(v, name, kname, format!("{name}.check")),
                "script" => script = self.string(v, name, kname),
                "user" => user = self.string(v, name, kname),
                "env" => env = self.env(v, name),
                "process_user" => process_user = self.string(v, name, kname),
                "timeout" => timeout = self.limit(v, name, kname, &SCRIPT).unwrap_or(timeout),
                "grace" => grace = self.grace(v, name, kname).unwrap_or(grace),
                "check_timeout" => {
                    check_timeout = self.limit(v, name, kname, &LUA).unwrap_or(check_timeout);
                    if node_of(node, "check").is_none() {
                        self.error_at(
                            k,
                            name,
                            "`check_timeout` without `check`: there is no check to limit",
                            Some(
                                "add `check:` (a Lua health check) or remove `check_timeout`"
                                    .into(),
                            ),
                        );
                    }
                }
                "dep" => (deps, dep_lines) = self.deps(name, v, settings, services),
                "listen" => listen = self.listen(v, name),
                "warmup" => warmup = self.duration(v, name, kname, &GRACE),
                "health" => health = self.health(name, v, settings),
                "stop" => stop = self.string(v, name, kname),
                "unhealthy_after" => {
                    unhealthy_after = self.positive(v, name, kname).unwrap_or(unhealthy_after)
                }
                "restart_on_dep_restart" => follow = self.boolean(v, name, kname).unwrap_or(false),
                _ => unreachable!("every service key is handled"),
            }
        }
        // A misspelt key already said what is missing; do not say it twice.
        let mentioned = |errors: &[Diagnostic], key: &str| {
            let tick = format!("`{key}`");
            errors.iter().any(|d| {
                d.message.contains(&tick) || d.help.as_deref().is_some_and(|h| h.contains(&tick))
            })
        };
        if script.is_none() && !mentioned(&self.errors[ok_before..], "script") {
            self.error_at(
                key,
                name,
                "no `script`: autoheal would not know how to start it",
                Some("add `script: <command that starts it>` (run with /bin/sh -c)".into()),
            );
        }
        let liveness = match (pname, pid_file) {
            (Some(pname), Some(pid_file)) => Some(Liveness::Both { pname, pid_file }),
            (Some(p), None) => Some(Liveness::Pname(p)),
            (None, Some(f)) => Some(Liveness::PidFile(f)),
            (None, None) => {
                if !mentioned(&self.errors[ok_before..], "pname")
                    && !mentioned(&self.errors[ok_before..], "pid_file")
                {
                    self.error_at(key, name, "no liveness check: give `pname` or `pid_file`", Some("pname: a regex over process command lines (pgrep -f); pid_file: a file holding the pid".into()));
                }
                None
            }
        };
        if let Some(u) = &user
            && !user_exists(u)
        {
            let v = node_of(node, "user").unwrap_or(key);
            let d = self.diag(
                Severity::Warning,
                v.pos,
                name,
                &format!(
                    "user `{u}` does not exist on this host; its script will fail until it does"
                ),
                u.len(),
                Some("create the user, or fix `user:`".into()),
            );
            self.warnings.push(d);
        }
        if let Some(u) = &process_user
            && !user_exists(u)
        {
            let v = node_of(node, "process_user").unwrap_or(key);
            let d = self.diag(
                Severity::Warning,
                v.pos,
                name,
                &format!(
                    "process_user `{u}` does not exist on this host; only root's processes make \
                     this service alive until it does"
                ),
                u.len(),
                Some("create the user, or fix `process_user:`".into()),
            );
            self.warnings.push(d);
        }
        if let (None, None, Some(script)) = (&user, &process_user, &script)
            && let Some(how) = switches_account(script)
        {
            let v = node_of(node, "script").unwrap_or(key);
            let (msg, help) = match &how {
                Switch::To(account) => (
                    format!(
                        "its script starts it as `{account}`, but only root's processes make it \
                         alive: it would count as dead and be started again"
                    ),
                    format!("add `process_user: {account}` (or `user: {account}`)"),
                ),
                Switch::Systemd => (
                    "its script starts it through systemd: if the daemon drops privileges to \
                     another account, only root's processes make it alive"
                        .to_string(),
                    "add `process_user: <the account it runs as>` if it is not root".to_string(),
                ),
            };
            let d = self.diag(Severity::Warning, v.pos, name, &msg, 1, Some(help));
            self.warnings.push(d);
        }
        if follow && !deps.iter().any(|d| matches!(d, Dep::Service { .. })) {
            let v = node_of(node, "restart_on_dep_restart").unwrap_or(key);
            let d = self.diag(
                Severity::Warning,
                v.pos,
                name,
                "`restart_on_dep_restart` has no effect: no dep names a service of this file",
                v.as_str().map_or(1, str::len),
                Some("it follows the restarts of deps given by name alone (`- name: db`); add one or remove the key".into()),
            );
            self.warnings.push(d);
        }
        if let (None, Some((key_name, db))) = (&stop, liveness.as_ref().and_then(database)) {
            let v = node_of(node, key_name).unwrap_or(key);
            let d = self.diag(
                Severity::Warning,
                v.pos,
                name,
                &db.warning(key_name),
                v.as_str().map_or(1, str::len),
                Some(db.help()),
            );
            self.warnings.push(d);
        }
        if self.errors.len() > ok_before {
            return None;
        }
        Some(Service {
            name: name.to_string(),
            line: key.pos.line,
            liveness: liveness?,
            check,
            deps,
            dep_lines,
            script: script?,
            user,
            env,
            process_user,
            timeout,
            grace,
            health,
            stop,
            unhealthy_after,
            restart_on_dep_restart: follow,
            check_timeout,
            listen,
            warmup,
        })
    }

    /// One scalar, or a list of them (`host:`, `listen:`): each node with its text.
    fn one_or_list<'n>(&mut self, node: &'n Node, cx: &str, key: &str) -> Vec<(&'n Node, String)> {
        let items: Vec<&Node> = match &node.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() {
            self.error_at(
                node,
                cx,
                &format!("`{key}` is an empty list"),
                Some(format!("give `{key}` a value or remove the key")),
            );
        }
        items
            .into_iter()
            .filter_map(|n| Some((n, self.string(n, cx, key)?.trim().to_string())))
            .collect()
    }

    /// `settings.host`: the addresses (names or IP literals, without a port) this host's
    /// services listen on, one or a list. `127.0.0.1`, `::1` and `localhost` are every host's
    /// own, so they name none.
    fn host(&mut self, node: &Node) -> Vec<String> {
        let cx = "settings";
        let mut out: Vec<String> = Vec::new();
        for (n, text) in self.one_or_list(node, cx, "host") {
            let bare = text
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(&text);
            let why = if text.chars().any(char::is_whitespace) {
                Some((
                    "a host is a name or an address, without spaces".to_string(),
                    None,
                ))
            } else if bare.parse::<std::net::IpAddr>().is_err()
                && let Some((h, p)) = text.rsplit_once(':')
                && p.parse::<u16>().is_ok()
            {
                Some((
                    format!("`{text}` has a port"),
                    Some(format!(
                        "`host` names addresses, without a port (`host: {h}`); give a service's \
                         port with its `listen:` or its `health:`"
                    )),
                ))
            } else if Addr::new(&text, 0) == Addr::new("127.0.0.1", 0)
                || Addr::new(&text, 0) == Addr::new("::1", 0)
            {
                Some((
                    format!("`{text}` is every host's own address"),
                    Some(
                        "name the addresses other hosts reach this one at (e.g. `host: \
                         [10.0.0.5, web1.example.com]`)"
                            .into(),
                    ),
                ))
            } else {
                None
            };
            match why {
                Some((msg, help)) => {
                    let help = help.or(Some("e.g. `host: [10.0.0.5, web1.example.com]`".into()));
                    self.error_at(n, cx, &msg, help)
                }
                None if out.iter().any(|h| Addr::new(h, 0) == Addr::new(&text, 0)) => {
                    self.error_at(
                        n,
                        cx,
                        &format!("`{text}` is given twice in `host`"),
                        Some("keep one of them".into()),
                    );
                }
                None => out.push(text),
            }
        }
        out
    }

    /// `listen:` — where other hosts reach the service: `host:port`, `[v6]:port`, or a port
    /// alone (`8080`, `:8080`, `*:8080`, `0.0.0.0:8080`) for every address of its host; one or
    /// a list.
    fn listen(&mut self, node: &Node, svc: &str) -> Vec<Listen> {
        let mut out: Vec<Listen> = Vec::new();
        for (n, text) in self.one_or_list(node, svc, "listen") {
            match parse_listen(&text) {
                Ok((host, port)) => {
                    let l = Listen {
                        host,
                        port,
                        line: n.pos.line,
                    };
                    if out.iter().any(|o| o.host == l.host && o.port == l.port) {
                        self.error_at(
                            n,
                            svc,
                            &format!("`{text}` is given twice in `listen`"),
                            Some("keep one of them".into()),
                        );
                    } else {
                        out.push(l);
                    }
                }
                Err(why) => self.error_at(
                    n,
                    svc,
                    &format!("bad `listen` address `{text}`: {why}"),
                    Some(
                        "write host:port (`10.0.0.5:8080`, `[2001:db8::5]:8080`) or a port \
                         alone (`8080`: every address of this host)"
                            .into(),
                    ),
                ),
            }
        }
        out
    }

    /// `env:` — a mapping of environment variables (`NAME: value`) added to the clean
    /// environment of the service's script, `stop` and Lua `exec`. `AUTOHEAL_*` is autoheal's.
    fn env(&mut self, node: &Node, svc: &str) -> Vec<(String, String)> {
        let Kind::Map(entries) = &node.kind else {
            self.error_at(
                node,
                svc,
                &format!(
                    "`env` must be a mapping of NAME: value, found {}",
                    node.describe()
                ),
                Some(
                    "write it as `env: {LANG: C.UTF-8, APP_ENV: prod}` or one NAME: value a line"
                        .into(),
                ),
            );
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in entries {
            let Some(name) = k.as_str() else {
                self.error_at(k, svc, "an `env` name must be a plain name", None);
                continue;
            };
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.error_at(
                    k,
                    svc,
                    &format!("bad environment variable name `{name}`"),
                    Some("a name is letters, digits and `_`, not starting with a digit".into()),
                );
                continue;
            }
            if name.starts_with("AUTOHEAL_") {
                self.error_at(
                    k,
                    svc,
                    &format!("`{name}`: AUTOHEAL_* variables are set by autoheal"),
                    Some("give it another name".into()),
                );
                continue;
            }
            if out.iter().any(|(n, _)| n == name) {
                self.error_at(
                    k,
                    svc,
                    &format!("`{name}` is given twice"),
                    Some("keep one of them".into()),
                );
                continue;
            }
            let value = match &v.kind {
                Kind::Scalar { value, .. } if !v.is_null() => value.clone(),
                Kind::Scalar { .. } => String::new(),
                _ => {
                    self.error_at(
                        v,
                        svc,
                        &format!("`env.{name}` must be a text value, found {}", v.describe()),
                        Some("quote it".into()),
                    );
                    continue;
                }
            };
            if value.contains('\0') {
                self.error_at(v, svc, &format!("`env.{name}` holds a NUL character"), None);
                continue;
            }
            out.push((name.to_string(), value));
        }
        out
    }

    /// `health:` — a tcp (`host` + `port`) or http (`url`) probe of the service itself.
    fn health(&mut self, svc: &str, node: &Node, settings: &Settings) -> Option<Probe> {
        let before = self.errors.len();
        let entries = self.entries(node, svc, "`health`", HEALTH_KEYS)?;
        if self.errors.len() > before {
            return None;
        }
        let get = |key: &str| lookup(&entries, key);
        let timeout = get("timeout")
            .and_then(|n| self.limit(n, svc, "timeout", &PROBE))
            .unwrap_or(settings.probe_timeout);
        match (get("url"), get("host"), get("port")) {
            (Some(u), None, None) => {
                let url = self.url(u, svc)?;
                Some(Probe::Http { url, timeout })
            }
            (None, Some(h), Some(p)) => {
                let host = self.string(h, svc, "host");
                let port = self.port(p, svc);
                Some(Probe::Tcp {
                    host: host?,
                    port: port?,
                    timeout,
                })
            }
            _ => {
                self.error_at(node, svc, "`health` is a tcp probe (`host` + `port`) or an http probe (`url`)", Some("e.g. `health: {url: http://127.0.0.1:8080/health}`; for anything else use `check:` (Lua)".into()));
                None
            }
        }
    }

    /// An http(s) url.
    fn url(&mut self, node: &Node, svc: &str) -> Option<String> {
        let url = self.string(node, svc, "url")?;
        match check_url(&url) {
            Ok(()) => Some(url),
            Err(why) => {
                self.error_at(
                    node,
                    svc,
                    &format!("bad url `{url}`: {why}"),
                    Some("write http://host[:port]/path or https://...".into()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, context: &str, key: &str) -> Option<bool> {
        let text = self.string(node, context, key)?;
        match text.trim() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            other => {
                self.error_at(
                    node,
                    context,
                    &format!("`{key}` must be true or false, found `{other}`"),
                    None,
                );
                None
            }
        }
    }

    fn positive(&mut self, node: &Node, context: &str, key: &str) -> Option<u32> {
        match self.count(node, context, key)? {
            0 => {
                self.error_at(node, context, &format!("`{key}` must be at least 1"), None);
                None
            }
            n => Some(n),
        }
    }

    fn deps(
        &mut self,
        svc: &str,
        node: &Node,
        settings: &Settings,
        services: &HashSet<&str>,
    ) -> (Vec<Dep>, Vec<usize>) {
        if node.is_null() {
            return (Vec::new(), Vec::new());
        }
        let Kind::Seq(items) = &node.kind else {
            self.error_at(
                node,
                svc,
                &format!("`dep` must be a list, found {}", node.describe()),
                Some("write each dependency as a list item: `- name: nginx`".into()),
            );
            return (Vec::new(), Vec::new());
        };
        let mut out: Vec<Dep> = Vec::new();
        let mut lines = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for item in items {
            let Some(d) = self.dep(svc, item, settings, services) else {
                continue;
            };
            if let Some(first) = seen.insert(d.name().to_string(), item.pos.line) {
                self.error_at(
                    item,
                    svc,
                    &format!("dep `{}` is listed twice (first on line {first})", d.name()),
                    Some("give each dep its own name".into()),
                );
                continue;
            }
            out.push(d);
            lines.push(item.pos.line);
        }
        (out, lines)
    }

    fn dep(
        &mut self,
        svc: &str,
        node: &Node,
        settings: &Settings,
        services: &HashSet<&str>,
    ) -> Option<Dep> {
        let before = self.errors.len();
        let entries = self.entries(node, svc, "a dep", DEP_KEYS)?;
        if self.errors.len() > before {
            // A misspelt key (`hots`) would make every later complaint about this dep a guess.
            return None;
        }
        let get = |key: &str| lookup(&entries, key);
        let name = get("name").and_then(|n| self.string(n, svc, "name"));
        // A dep's name is shown in every line about what waits on it: one line, always.
        if let (Some(n), Some(node)) = (&name, get("name"))
            && n.chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            self.error_at(
                node,
                svc,
                "a dep's name may not contain a control character (a newline, a tab, an escape)",
                Some("name it with letters, digits and `_.-`".into()),
            );
            return None;
        }
        let host = get("host").and_then(|n| self.string(n, svc, "host"));
        let url = get("url").and_then(|n| self.url(n, svc));
        let port = get("port").and_then(|n| self.port(n, svc));
        let (has_tcp, has_url, has_lua) = (
            get("host").is_some() || get("port").is_some(),
            get("url").is_some(),
            get("lua").is_some(),
        );
        let bound = if has_lua { &LUA } else { &PROBE };
        let timeout = get("timeout").and_then(|n| self.limit(n, svc, "timeout", bound));
        if [has_tcp, has_url, has_lua].iter().filter(|b| **b).count() > 1 {
            self.error_at(
                node,
                svc,
                "a dep is one of tcp (host + port), http (url) or lua, not several",
                Some("split it into several deps, each with its own name".into()),
            );
            return None;
        }
        if has_tcp {
            if get("host").is_none() {
                self.error_at(
                    get("port").unwrap_or(node),
                    svc,
                    "tcp dep without `host`",
                    Some("add `host: <address>` next to `port`".into()),
                );
            }
            if get("port").is_none() {
                self.error_at(
                    get("host").unwrap_or(node),
                    svc,
                    "tcp dep without `port`",
                    Some("add `port: <1-65535>` next to `host`".into()),
                );
            }
            if let Some(h) = &host
                && h.chars().any(char::is_whitespace)
            {
                self.error_at(
                    get("host").unwrap_or(node),
                    svc,
                    &format!("bad host `{h}`"),
                    Some("a host is a name or an address, without spaces".into()),
                );
            }
            if self.errors.len() > before {
                return None;
            }
            let (host, port) = (host?, port?);
            return Some(Dep::Tcp {
                name: name.unwrap_or_else(|| format!("{host}:{port}")),
                host,
                port,
                timeout: timeout.unwrap_or(settings.probe_timeout),
            });
        }
        if has_url {
            let url = url?;
            if self.errors.len() > before {
                return None;
            }
            return Some(Dep::Http {
                name: name.unwrap_or_else(|| url.clone()),
                url,
                timeout: timeout.unwrap_or(settings.probe_timeout),
            });
        }
        let name_node = get("name");
        if has_lua {
            let label = format!(
                "{svc}.dep[{}].lua",
                name.clone().unwrap_or_else(|| "?".into())
            );
            let chunk = self.chunk(get("lua")?, svc, "lua", label)?;
            if self.errors.len() > before {
                return None;
            }
            return Some(Dep::Lua {
                name: name.unwrap_or_else(|| format!("lua@{}", chunk.line)),
                chunk,
                timeout: timeout.unwrap_or(settings.lua_timeout),
            });
        }
        // A name alone: a service of this file.
        let Some(name) = name else {
            if name_node.is_none() {
                self.error_at(node, svc, "a dep needs host + port (tcp), url (http), lua, or the name of a service of this file", Some("e.g. `- name: db` with `host: 127.0.0.1` and `port: 5432`".into()));
            }
            return None;
        };
        if !services.contains(name.as_str()) {
            let names: Vec<&str> = services.iter().copied().collect();
            let help = match suggest(&name, &names) {
                Some(s) => format!(
                    "did you mean the service `{s}`? Otherwise give it host + port, url or lua"
                ),
                None => {
                    "give it host + port (tcp), url (http) or lua, or define a service of that name"
                        .into()
                }
            };
            self.error_at(
                name_node.unwrap_or(node),
                svc,
                &format!("dep `{name}` is neither tcp, http, lua nor a service of this file"),
                Some(help),
            );
            return None;
        }
        if let Some(t) = get("timeout") {
            self.error_at(
                t,
                svc,
                &format!("`timeout` has no meaning on a dep on the local service `{name}`"),
                Some("remove it; set the probe timeouts on that service's own deps".into()),
            );
            return None;
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Dep::Service { name })
    }

    fn port(&mut self, node: &Node, svc: &str) -> Option<u16> {
        let text = self.string(node, svc, "port")?;
        match text.trim().parse::<u64>() {
            Ok(p) if (1..=65535).contains(&p) => Some(p as u16),
            Ok(p) => {
                self.error_at(
                    node,
                    svc,
                    &format!("port {p} is out of range"),
                    Some("a port is 1 to 65535".into()),
                );
                None
            }
            Err(_) => {
                self.error_at(
                    node,
                    svc,
                    &format!("port `{text}` is not a number"),
                    Some("a port is 1 to 65535".into()),
                );
                None
            }
        }
    }

    /// Reports every cycle of the graph once, as `a → b → c → a`, at the first service's key;
    /// the help names the hops that are a dep at another service's `health:` address.
    fn cycles(&mut self, graph: &Graph, services: &[Service], nodes: &[(String, &Node, &Node)]) {
        for cycle in graph.cycles() {
            let mut path: Vec<&str> = cycle
                .services()
                .map(|i| services[i].name.as_str())
                .collect();
            path.push(path[0]);
            let first = path[0];
            let pos = nodes
                .iter()
                .find(|(n, _, _)| n == first)
                .map(|(_, k, _)| k.pos)
                .unwrap_or_default();
            let by_address: Vec<String> = cycle
                .hops
                .iter()
                .filter(|h| h.by == By::Address)
                .map(|h| {
                    let (from, to) = (&services[h.from], &services[h.to]);
                    format!(
                        "{}'s dep `{}` is {}'s `health:` address",
                        from.name,
                        from.deps[h.dep].name(),
                        to.name
                    )
                })
                .collect();
            let why = if by_address.is_empty() {
                String::new()
            } else {
                format!(
                    "{}, and a dep at a service's `health:` address waits on that service; ",
                    by_address.join(" and ")
                )
            };
            self.error(
                pos,
                first,
                &format!("dependency cycle: {}", path.join(" → ")),
                first.chars().count(),
                Some(if cycle.hops.len() == 1 {
                    format!("{why}a service that waits on itself never starts; remove this dep")
                } else {
                    format!(
                        "{why}services that wait on each other never start; remove one of these deps"
                    )
                }),
            );
        }
    }
}

/// A `listen:` entry: its host (`None`: every address of its host) and its port.
fn parse_listen(text: &str) -> Result<(Option<String>, u16), String> {
    let port = |p: &str| match p.parse::<u64>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is out of range (1 to 65535)")),
        Err(_) if p.is_empty() => Err("no port".to_string()),
        Err(_) => Err(format!("port `{p}` is not a number")),
    };
    if text.chars().any(char::is_whitespace) {
        return Err("it has a space".into());
    }
    if !text.contains(':') {
        return port(text).map(|p| (None, p));
    }
    let (host, p) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("no `]` after the IPv6 address")?;
        let p = after.strip_prefix(':').ok_or("no port after the address")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        (host, p)
    } else {
        let (host, p) = text.rsplit_once(':').expect("it has a colon");
        if host.contains(':') {
            return Err("write an IPv6 address in brackets, as `[2001:db8::5]:8080`".into());
        }
        (host, p)
    };
    let p = port(p)?;
    let every = host.is_empty()
        || host == "*"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
    Ok(((!every).then(|| host.to_string()), p))
}

/// The value of `key` among a mapping's entries.
fn lookup<'n>(entries: &[(&'n Node, &'n Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| *v)
}

fn node_of<'n>(map: &'n Node, key: &str) -> Option<&'n Node> {
    match &map.kind {
        Kind::Map(e) => e
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Durations: `500ms`, `3s`, `2m`, `1h 30m`, or a bare number of seconds (`30`, `1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        // Negative, NaN, infinite or past `Duration`: never a panic. The callers bound it.
        return Duration::try_from_secs_f64(secs).map_err(|_| "out of range".into());
    }
    humantime::parse_duration(t).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, .. } => format!("unknown unit `{unit}`"),
        humantime::DurationError::NumberOverflow => "out of range".into(),
        _ => "not a duration".into(),
    })
}

/// A bound as an operator would write it: `10m`, `1h`, `1 day`, `30 days`.
fn written(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s == 0 {
        crate::fmt::duration(d)
    } else if s.is_multiple_of(86_400) {
        let n = s / 86_400;
        format!("{n} day{}", if n == 1 { "" } else { "s" })
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("no scheme (expected http:// or https://)".into());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("scheme `{scheme}` is not http or https"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("no host".into());
    }
    if url.chars().any(char::is_whitespace) {
        return Err("it contains spaces".into());
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']'))
        && port.parse::<u16>().map(|p| p == 0).unwrap_or(true)
    {
        return Err(format!("bad port `{port}`"));
    }
    Ok(())
}

/// A top-level key that is a misspelt `settings`: close to the word, and a mapping of settings
/// keys only. Such a mapping has no `script` (not a settings key), so it could never be a
/// service; a service named `setter` with a `pname` and a `script` stays a service.
fn looks_like_settings(name: &str, value: &Node) -> bool {
    let Kind::Map(entries) = &value.kind else {
        return false;
    };
    suggest(name, &["settings"]).is_some()
        && !entries.is_empty()
        && entries
            .iter()
            .all(|(k, _)| k.as_str().is_some_and(|k| SETTINGS_KEYS.contains(&k)))
}

fn bad_name(name: &str) -> Option<String> {
    let max = crate::defaults::MAX_SERVICE_NAME;
    if name.is_empty() {
        Some("it is empty".into())
    } else if name.starts_with('.') || name.starts_with('-') {
        Some("it starts with `.` or `-`".into())
    } else if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        Some("it contains `/`, a space or a control character".into())
    } else if name.len() > max {
        Some(format!(
            "it is {} bytes long, more than {max}: its script log `logs/<name>.log` would be \
             longer than a file name may be (255 bytes)",
            name.len()
        ))
    } else {
        None
    }
}

fn regex_reason(e: &regex::Error) -> String {
    last_line(&e.to_string())
}

/// The last line of a regex error: the message is several lines with its own caret.
fn last_line(s: &str) -> String {
    let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s);
    last.trim().trim_start_matches("error: ").to_string()
}

/// The help of a `pname` that is not a valid regex.
const PNAME_HELP: &str =
    "pname is a regex over the full command line, as `pgrep -f`; escape special characters with \\";

/// The closest known word, if it is close enough to be what was meant.
fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(word, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// How a script starts its service as another account than autoheal's.
enum Switch {
    /// `sudo -u NAME`, `su NAME -c`, `runuser -u NAME`, `setpriv --reuid NAME`.
    To(String),
    /// `systemctl start` / `restart`: the unit decides the account.
    Systemd,
}

/// Whether `script` visibly starts its service as another account: then, without `user:` or
/// `process_user:`, its processes would not count (only root's do), and `check` warns.
fn switches_account(script: &str) -> Option<Switch> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            // ASCII classes: Unicode `\w`, `\s`, `\b` cost a millisecond to compile, every run.
            r"(?x)
            (?-u:\b)sudo[\ \t]+(?:-[^\ \t]+[\ \t]+)*?-u[\ \t]*(?P<sudo>[A-Za-z_][A-Za-z0-9_.-]*)
            | (?-u:\b)su[\ \t]+(?:-[\ \t]+|-l[\ \t]+|--login[\ \t]+)?(?P<su>[A-Za-z_][A-Za-z0-9_.-]*)[\ \t]+-c(?-u:\b)
            | (?-u:\b)runuser[\ \t]+(?:-[^\ \t]+[\ \t]+)*?-u[\ \t]*(?P<runuser>[A-Za-z_][A-Za-z0-9_.-]*)
            | (?-u:\b)setpriv[\ \t]+.*?--reuid[=\ \t](?P<setpriv>[A-Za-z_][A-Za-z0-9_.-]*)
            | (?-u:\b)(?P<systemd>systemctl[\ \t]+(?:-[^\ \t]+[\ \t]+)*(?:start|restart))(?-u:\b)",
        )
        .expect("a valid regex")
    });
    let c = re.captures(script)?;
    if c.name("systemd").is_some() {
        return Some(Switch::Systemd);
    }
    ["sudo", "su", "runuser", "setpriv"]
        .iter()
        .find_map(|g| c.name(g))
        .map(|m| m.as_str())
        .filter(|name| *name != "root")
        .map(|name| Switch::To(name.to_string()))
}

/// Whether the user exists on this host (through NSS, as the script would need it).
fn user_exists(name: &str) -> bool {
    crate::users::exists(name)
}

/// A database server that SIGTERM, then SIGKILL 5 s later (what autoheal does without `stop:`),
/// does not stop cleanly: postgres takes SIGTERM for a "smart" shutdown that waits for every
/// client, MySQL and MariaDB may need longer than 5 s to flush; the SIGKILL is then a crash.
enum Database {
    /// `pg_ctl -D` takes this data directory, when the pid file names it (postmaster.pid).
    Postgres(Option<PathBuf>),
    Mysql,
}

impl Database {
    fn warning(&self, key: &str) -> String {
        let (what, term, crash) = match self {
            Database::Postgres(_) => (
                "PostgreSQL",
                " (postgres's slow \"smart\" shutdown, which waits for every client)",
                "a crash of the database",
            ),
            Database::Mysql => (
                "MySQL or MariaDB",
                "",
                "a crash of the database if it is still flushing its buffers",
            ),
        };
        format!(
            "`{key}` looks like {what} and there is no `stop:`: a health restart sends it \
             SIGTERM{term}, then SIGKILL after {}s: {crash}",
            crate::defaults::STOP_TIMEOUT.as_secs()
        )
    }

    fn help(&self) -> String {
        match self {
            Database::Postgres(dir) => format!(
                "add `stop: pg_ctl -D {} stop -m fast` (or `pg_ctlcluster VERSION CLUSTER stop -m \
                 fast` on Debian): a fast shutdown is clean and quick",
                dir.as_deref()
                    .map_or("DATA_DIR".into(), |d| d.display().to_string())
            ),
            Database::Mysql => {
                "add `stop: mysqladmin shutdown`: it returns once the server has stopped cleanly"
                    .into()
            }
        }
    }
}

/// Whether a service's `pname` or `pid_file` looks like a PostgreSQL or MySQL/MariaDB server
/// (`postgres`, `postmaster`, `mysqld`, `mariadbd` as a word of the pattern; a pid file named
/// postmaster.pid or mysqld.pid, or in Debian's /run/postgresql or /run/mysqld), and by which key.
fn database(liveness: &Liveness) -> Option<(&'static str, Database)> {
    let by_name = liveness.pname().and_then(|p| {
        let lower = p.source.to_ascii_lowercase();
        let mut words = lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        words.find_map(|w| match w {
            "postgres" | "postmaster" => Some(Database::Postgres(None)),
            "mysqld" | "mariadbd" => Some(Database::Mysql),
            _ => None,
        })
    });
    if let Some(db) = by_name {
        return Some(("pname", db));
    }
    let file = match liveness {
        Liveness::PidFile(f) | Liveness::Both { pid_file: f, .. } => f,
        Liveness::Pname(_) => return None,
    };
    let name = file.file_name()?.to_str()?;
    let dir = file.parent();
    let in_dir = |d: &str| dir.and_then(Path::file_name).is_some_and(|n| n == d);
    match name {
        "postmaster.pid" => Some(Database::Postgres(dir.map(Path::to_path_buf))),
        "mysqld.pid" | "mariadbd.pid" => Some(Database::Mysql),
        _ if in_dir("postgresql") => Some(Database::Postgres(None)),
        _ if in_dir("mysqld") => Some(Database::Mysql),
        _ => None,
    }
    .map(|db| ("pid_file", db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
    }

    /// `settings.host`, `listen:` and `warmup:` in each of their shapes; the lines of deps.
    #[test]
    fn fleet_keys() {
        let src = "settings:\n  host: 10.0.0.5\nweb:\n  pname: w\n  script: s\n  grace: 4s\n  \
                   listen: [8080, '*:81', 0.0.0.0:82, '[::]:83', web1.example.com:84, '[2001:db8::5]:85']\n  \
                   dep:\n    - name: a\n      host: 10.0.0.7\n      port: 1\n\n    - {name: b, url: http://x/}\n\
                   db:\n  pname: d\n  script: s\n  listen: 10.0.0.5:5432\n  warmup: 0\n";
        let cfg = load_str(src, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.settings.host, vec!["10.0.0.5"]);
        let (web, db) = (&cfg.services[0], &cfg.services[1]);
        let listen: Vec<_> = web
            .listen
            .iter()
            .map(|l| (l.host.as_deref(), l.port))
            .collect();
        assert_eq!(
            listen,
            vec![
                (None, 8080),
                (None, 81),
                (None, 82),
                (None, 83),
                (Some("web1.example.com"), 84),
                (Some("2001:db8::5"), 85)
            ]
        );
        assert_eq!(web.dep_lines, vec![9, 13]);
        assert_eq!((web.dep_line(1), web.dep_line(5)), (13, web.line));
        assert_eq!(web.warmup(), Duration::from_secs(4), "grace when no warmup");
        assert_eq!(db.warmup(), Duration::ZERO);
        let two = "settings:\n  host: [10.0.0.5, 'web1.example.com', '[2001:db8::5]']\nw:\n  pname: w\n  script: s\n";
        let cfg = load_str(two, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.settings.host.len(), 3);
        assert!(
            load_str(SVC_ONLY, Path::new("t.yaml"))
                .unwrap()
                .settings
                .host
                .is_empty()
        );
    }

    const SVC_ONLY: &str = "w:\n  pname: w\n  script: s\n";

    /// Each duration key takes its bound and refuses a millisecond more, with the bound named
    /// as it could be written back.
    #[test]
    fn every_duration_key_is_bounded() {
        use crate::defaults as d;
        const SVC: &str = "a:\n  pname: a\n  script: x\n  check: return 1\n";
        let settings = |kv: &str| format!("settings:\n  {kv}\n{SVC}");
        let service = |kv: &str| format!("{SVC}  {kv}\n");
        let dep = |kind: &str| format!("{SVC}  dep:\n    - {{name: d, {kind}, timeout: {{v}}}}\n");
        // (key, the file with `{v}` for its value, its bound)
        let cases = [
            ("converge", settings("converge: {v}"), d::MAX_CONVERGE),
            (
                "probe_timeout",
                settings("probe_timeout: {v}"),
                d::MAX_PROBE_TIMEOUT,
            ),
            (
                "script_timeout",
                settings("script_timeout: {v}"),
                d::MAX_SCRIPT_TIMEOUT,
            ),
            (
                "lua_timeout",
                settings("lua_timeout: {v}"),
                d::MAX_LUA_TIMEOUT,
            ),
            ("grace", settings("grace: {v}"), d::MAX_GRACE),
            // backoff_max must be at least backoff: keep it at its bound.
            (
                "backoff",
                settings("backoff_max: 30 days\n  backoff: {v}"),
                d::MAX_BACKOFF,
            ),
            ("backoff_max", settings("backoff_max: {v}"), d::MAX_BACKOFF),
            (
                "notify_after",
                settings("notify_after: {v}"),
                d::MAX_NOTIFY_AFTER,
            ),
            (
                "hook_timeout",
                settings("hook_timeout: {v}"),
                d::MAX_HOOK_TIMEOUT,
            ),
            (
                "recheck_max",
                settings("recheck_max: {v}"),
                d::MAX_RECHECK_MAX,
            ),
            (
                "healthy_after",
                settings("healthy_after: {v}"),
                d::MAX_HEALTHY_AFTER,
            ),
            ("timeout", service("timeout: {v}"), d::MAX_SCRIPT_TIMEOUT),
            ("grace", service("grace: {v}"), d::MAX_GRACE),
            (
                "check_timeout",
                service("check_timeout: {v}"),
                d::MAX_LUA_TIMEOUT,
            ),
            ("timeout", dep("host: h, port: 1"), d::MAX_PROBE_TIMEOUT),
            ("timeout", dep("url: http://h/"), d::MAX_PROBE_TIMEOUT),
            ("timeout", dep("lua: return 1"), d::MAX_LUA_TIMEOUT),
            (
                "timeout",
                service("health: {url: http://h/, timeout: {v}}"),
                d::MAX_PROBE_TIMEOUT,
            ),
        ];
        for (key, yaml, max) in cases {
            let at = format!("{}ms", max.as_millis());
            let ok = yaml.replace("{v}", &at);
            assert!(
                load_str(&ok, Path::new("b.yaml")).is_ok(),
                "{key} = {at} is accepted:\n{ok}"
            );
            let past = format!("{}ms", max.as_millis() + 1);
            let err = load_str(&yaml.replace("{v}", &past), Path::new("b.yaml")).unwrap_err();
            let want = format!("`{key}` must be at most {}", written(max));
            assert!(
                err.0.len() == 1 && err.0[0].message == want,
                "{key} = {past}: want {want:?}, got {err}"
            );
        }
    }

    #[test]
    fn bounds_are_written_as_an_operator_would() {
        assert_eq!(written(Duration::from_secs(600)), "10m");
        assert_eq!(written(Duration::from_secs(3600)), "1h");
        assert_eq!(written(Duration::from_secs(86_400)), "1 day");
        assert_eq!(written(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(written(Duration::from_secs(90)), "90s");
        assert_eq!(written(Duration::from_millis(1500)), "1.5s");
        // Each parses back to itself.
        for s in [600, 3600, 86_400, 30 * 86_400, 90] {
            let d = Duration::from_secs(s);
            assert_eq!(parse_duration(&written(d)), Ok(d));
        }
    }

    #[test]
    fn a_bare_number_past_a_duration_is_out_of_range_not_a_panic() {
        for t in ["1e300", "inf", "NaN", "-0.5", "18446744073709551616"] {
            assert_eq!(parse_duration(t), Err("out of range".into()), "{t}");
        }
        assert_eq!(
            parse_duration("1e9"),
            Ok(Duration::from_secs(1_000_000_000))
        );
    }

    #[test]
    fn a_misspelt_settings_is_one_error_with_a_suggestion() {
        let err = load_str(
            "setting:\n  converge: 5s\na:\n  pname: a\n  script: x\n",
            Path::new("s.yaml"),
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(
            err.0[0].headline(),
            "s.yaml:1:1: unknown top-level key `setting`"
        );
        assert!(
            err.0[0]
                .help
                .as_deref()
                .unwrap()
                .starts_with("did you mean `settings`?")
        );
        // Close to the word but a service (it has service keys), or far from it: a service.
        let ok = "setter:\n  pname: a\n  script: x\n  grace: 5s\n";
        assert!(load_str(ok, Path::new("s.yaml")).is_ok());
        let err = load_str("foo:\n  converge: 5s\n", Path::new("s.yaml")).unwrap_err();
        assert!(
            err.0
                .iter()
                .any(|d| d.message.contains("unknown key `converge`")),
            "{err}"
        );
    }

    #[test]
    fn a_service_name_fits_in_a_log_file_name() {
        let max = crate::defaults::MAX_SERVICE_NAME;
        assert_eq!(max, 251);
        assert!(bad_name(&"a".repeat(max)).is_none());
        assert!(
            bad_name(&"a".repeat(max + 1))
                .unwrap()
                .contains("252 bytes long")
        );
        // Bytes, not characters: 126 `é` are 252 bytes.
        assert!(
            bad_name(&"é".repeat(126))
                .unwrap()
                .contains("252 bytes long")
        );
    }

    #[test]
    fn urls() {
        assert!(check_url("http://10.0.0.7/check.htm").is_ok());
        assert!(check_url("https://a:8443").is_ok());
        assert!(check_url("ftp://a/").is_err());
        assert!(check_url("10.0.0.7/check").is_err());
        assert!(check_url("http:///x").is_err());
        assert!(check_url("http://a:0/").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("pidfile", SERVICE_KEYS), Some("pid_file"));
        assert_eq!(suggest("scirpt", SERVICE_KEYS), Some("script"));
        assert_eq!(suggest("zzz", SERVICE_KEYS), None);
        assert_eq!(suggest("proces_user", SERVICE_KEYS), Some("process_user"));
        assert_eq!(suggest("process_usr", SERVICE_KEYS), Some("process_user"));
    }
}
