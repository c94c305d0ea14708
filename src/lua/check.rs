//! `autoheal check` for Lua: compile every chunk, resolve every module it names, compile those
//! modules; run nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;

use mlua::{Lua, Value};
use regex::Regex;

use super::sandbox::{self, Ctx, PRIMITIVES};
use crate::config::{Config, Diagnostic, LuaChunk, Severity};

/// Every chunk of the config, in file order.
pub(super) fn chunks(config: &Config) -> Vec<&LuaChunk> {
    let mut out = Vec::new();
    for s in &config.services {
        if let Some(c) = &s.check {
            out.push(c);
        }
        for d in &s.deps {
            if let crate::config::Dep::Lua { chunk, .. } = d {
                out.push(chunk);
            }
        }
    }
    out.sort_by_key(|c| c.line);
    out
}

fn require_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"\brequire\s*\(?\s*(?:"([^"\n]*)"|'([^'\n]*)')"#).expect("valid regex")
    })
}

/// Module names a source requires literally, with the 1-based line of each.
fn literal_requires(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.split("--").next().unwrap_or("");
        for c in require_re().captures_iter(code) {
            let name = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
            out.push((i + 1, name.to_string()));
        }
    }
    out
}

/// In a one-expression chunk, the name it starts with if that is `name.` or `name:` (the
/// one-line form `redis.ping{port=6379}`), with its line.
fn leading_name(source: &str) -> Option<(usize, String)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[.:]").expect("regex"));
    for (i, line) in source.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("--") {
            continue;
        }
        let c = re.captures(t)?;
        return Some((i + 1, c[1].to_string()));
    }
    None
}

struct Checker<'a> {
    config: &'a Config,
    lua: Lua,
    dirs: Vec<PathBuf>,
    /// Module files already compiled.
    seen: HashSet<PathBuf>,
    diags: Vec<Diagnostic>,
}

/// An error at line `lua_line` of `chunk`, placed at its conf.yaml line.
fn chunk_diag(
    file: &Path,
    chunk: &LuaChunk,
    lua_line: usize,
    message: String,
    help: Option<String>,
) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.display().to_string(),
        line: sandbox::file_line(chunk, lua_line),
        col: 0,
        context: chunk.label.clone(),
        message,
        source_line: chunk
            .source
            .lines()
            .nth(sandbox::file_line(chunk, lua_line) - chunk.line)
            .map(str::to_string),
        width: 0,
        help,
    }
}

/// Compiles `chunk`; a syntax error comes back as its diagnostic.
fn syntax_error(lua: &Lua, file: &Path, chunk: &LuaChunk) -> Option<Diagnostic> {
    let (n, msg) = sandbox::compile(lua, chunk, None).err()?;
    let help = "a chunk is one expression (`tcp_probe(\"db\", 5432)`) or a block that ends in \
                `return`; Lua 5.4 syntax";
    Some(chunk_diag(file, chunk, n, msg, Some(help.into())))
}

/// The syntax errors of `chunks`, read from the file at `path` that was rejected for other
/// reasons: compiled only (modules are not resolved, as `lua_path` may be what is wrong).
pub(crate) fn syntax_errors(path: &Path, chunks: &[LuaChunk]) -> Vec<Diagnostic> {
    let lua = Lua::new();
    chunks
        .iter()
        .filter_map(|c| syntax_error(&lua, path, c))
        .collect()
}

impl Checker<'_> {
    fn diag(&mut self, chunk: &LuaChunk, lua_line: usize, message: String, help: Option<String>) {
        let d = chunk_diag(&self.config.path, chunk, lua_line, message, help);
        self.diags.push(d);
    }

    fn chunk(&mut self, chunk: &LuaChunk) {
        if let Some(d) = syntax_error(&self.lua, &self.config.path, chunk) {
            self.diags.push(d);
            return;
        }
        let mut names = literal_requires(&chunk.source);
        if sandbox::is_expression(&self.lua, &chunk.source)
            && let Some((n, name)) = leading_name(&chunk.source)
            && self
                .lua
                .globals()
                .raw_get::<Value>(name.as_str())
                .map_or(true, |v| v.is_nil())
        {
            names.push((n, name));
        }
        for (n, name) in names {
            self.module(chunk, n, &name);
        }
    }

    /// Resolves module `name` named at `lua_line` of `chunk`, compiles it and what it requires.
    fn module(&mut self, chunk: &LuaChunk, lua_line: usize, name: &str) {
        if name == PRIMITIVES {
            return;
        }
        let Some(path) = sandbox::module_path(&self.dirs, name) else {
            let help = self.suggest(name);
            self.diag(chunk, lua_line, sandbox::no_module(name, &self.dirs), help);
            return;
        };
        if !self.seen.insert(path.clone()) {
            return;
        }
        // Judged as `require` judges it before reading it: refused here, it would be refused
        // at every run.
        if let Err(e) = crate::trust::check_if_root(&path) {
            let help =
                "a module runs as root: it and every directory above it must be root's alone";
            self.diag(chunk, lua_line, e.to_string(), Some(help.into()));
            return;
        }
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("cannot read module `{name}` ({}): {e}", path.display());
                self.diag(chunk, lua_line, msg, None);
                return;
            }
        };
        let compiled = self
            .lua
            .load(source.as_str())
            .set_name(format!("@{}", path.display()))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function();
        if let Err(e) = compiled {
            let msg = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            self.diags.push(module_diag(&path, &msg, chunk));
            return;
        }
        for (_, inner) in literal_requires(&source) {
            self.module(chunk, lua_line, &inner);
        }
    }

    /// "did you mean `redis`?" among the modules that exist.
    fn suggest(&self, name: &str) -> Option<String> {
        let mut best: Option<(f64, String)> = None;
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                let Some(stem) = file.strip_suffix(".lua") else {
                    continue;
                };
                let score = strsim::jaro_winkler(name, stem);
                if score > 0.8 && best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, stem.to_string()));
                }
            }
        }
        best.map(|(_, m)| format!("did you mean `{m}`?"))
    }
}

/// A syntax error inside a module file: positioned in that file, named by the chunk using it.
fn module_diag(path: &Path, message: &str, chunk: &LuaChunk) -> Diagnostic {
    let shown = path.display().to_string();
    // Lua shortens a long file name to "...tail" in its messages: take the position from the
    // first ":N: " whatever comes before it.
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?s)^.*?:(\d+): (.*)$").expect("regex"));
    let (line, message) = match re.captures(message) {
        Some(c) => (c[1].parse().unwrap_or(0), c[2].to_string()),
        None => (0, message.to_string()),
    };
    Diagnostic {
        severity: Severity::Error,
        file: shown,
        line,
        col: 0,
        context: chunk.label.clone(),
        message,
        source_line: None,
        width: 0,
        help: Some("fix the module file; every chunk that requires it fails until then".into()),
    }
}

pub(crate) fn check_config(config: &Config) -> Vec<Diagnostic> {
    let chunks = chunks(config);
    if chunks.is_empty() {
        // No Lua in the file: no state to build.
        return Vec::new();
    }
    let ctx = Arc::new(Ctx::new(config, config.settings.lua_timeout));
    let lua = match sandbox::new_state(&ctx) {
        Ok(lua) => lua,
        Err(e) => {
            return vec![Diagnostic {
                severity: Severity::Error,
                file: config.path.display().to_string(),
                line: 0,
                col: 0,
                context: String::new(),
                message: format!("cannot start Lua: {e}"),
                source_line: None,
                width: 0,
                help: None,
            }];
        }
    };
    let mut checker = Checker {
        config,
        lua,
        dirs: ctx.dirs.clone(),
        seen: HashSet::new(),
        diags: Vec::new(),
    };
    for chunk in chunks {
        checker.chunk(chunk);
    }
    checker.diags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_literal_requires() {
        let src = "local r = require \"redis\"\nlocal m = require('memcached') -- require 'x'\n";
        assert_eq!(
            literal_requires(src),
            vec![(1, "redis".to_string()), (2, "memcached".to_string())]
        );
    }

    #[test]
    fn finds_the_leading_name() {
        assert_eq!(
            leading_name("-- c\n  redis.ping{port=1}"),
            Some((2, "redis".to_string()))
        );
        assert_eq!(leading_name("tcp_probe('a', 1)"), None);
    }
}
