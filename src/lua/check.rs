//! `autoheal check` for Lua: compile every chunk, resolve every module it names, compile those
//! modules, and reject a chunk that reads a global nothing defines; run nothing.
//!
//! A chunk's free names ([`names`]) are judged against what a run has: Lua's standard globals
//! that the sandbox keeps and autoheal's primitives (the state's globals and those of a run's
//! environment, [`sandbox::RUN_GLOBALS`]), every module of the lua dirs (a global that names
//! one loads it), the globals the chunk assigns anywhere, and those the modules it loads assign.
//! Anything else read is an error at its conf.yaml line, with the closest known name.
//! `settings.on_event` also reads `event`, and never `restart` (an alert restarts nothing);
//! no other chunk reads `event`. Fields
//! are not followed (`string.fromat`, `redis.pnig` pass); the library's modules are compiled,
//! not judged for their own free names (they are not chunks).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;

use mlua::{Lua, Value};
use regex::Regex;

use super::ctx::{Ctx, HOOK_GLOBAL, PRIMITIVES};
use super::modules::{Module, ReadError, find_module, module_names, no_module};
use super::names;
use super::sandbox;
use crate::config::{Config, Diagnostic, LuaChunk, Severity};

/// Every chunk of the config, in file order.
pub(super) fn chunks(config: &Config) -> Vec<&LuaChunk> {
    let mut out: Vec<&LuaChunk> = config.settings.on_event.iter().collect();
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

/// The stack of the thread that checks a config's chunks: full_moon's parser and the walk of
/// [`names`] recurse once per level of nesting, up to [`names::MAX_SOURCE`] levels for a long
/// chain of operators; the thread that loads the config (a test's has 2 MiB) may have less.
/// Only the pages used are ever touched.
const STACK: usize = 64 << 20;

struct Checker<'a> {
    config: &'a Config,
    lua: Lua,
    dirs: Vec<PathBuf>,
    /// Every global a run has before its chunk does anything: the state's and those of a run's
    /// environment.
    known: HashSet<String>,
    /// Each module file compiled: the globals it assigns (`None`: it cannot be told) and the
    /// modules it requires literally. A file that failed to resolve or compile is absent.
    modules: HashMap<Module, (Option<HashSet<String>>, Vec<String>)>,
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

    /// Whether `chunk` is `settings.on_event`, which runs with `event` and without `restart`.
    fn is_hook(&self, chunk: &LuaChunk) -> bool {
        self.config
            .settings
            .on_event
            .as_ref()
            .is_some_and(|h| std::ptr::eq(h, chunk))
    }

    /// Whether a run of `chunk` has the global `name` before it does anything.
    fn known(&self, chunk: &LuaChunk, name: &str) -> bool {
        match name {
            HOOK_GLOBAL => self.is_hook(chunk),
            "restart" if self.is_hook(chunk) => false,
            _ => self.known.contains(name),
        }
    }

    fn chunk(&mut self, chunk: &LuaChunk) {
        if let Some(d) = syntax_error(&self.lua, &self.config.path, chunk) {
            self.diags.push(d);
            return;
        }
        let mut modules = literal_requires(&chunk.source);
        let free = free_names(&chunk.source);
        match &free {
            // A global that names a module loads it.
            Some(free) => modules.extend(
                free.reads
                    .iter()
                    .filter(|r| !self.known(chunk, &r.name) && !free.assigned.contains(&r.name))
                    .filter(|r| find_module(&self.dirs, &r.name).is_some())
                    .map(|r| (r.line, r.name.clone())),
            ),
            // Its names cannot be told: at least the module a one-expression chunk starts with.
            None => {
                if sandbox::is_expression(&self.lua, &chunk.source)
                    && let Some((n, name)) = leading_name(&chunk.source)
                    && !self.known(chunk, &name)
                {
                    modules.push((n, name));
                }
            }
        }
        // What the modules it loads assign is there for it too (they run in its environment).
        let mut defined = Some(HashSet::new());
        let mut visited = HashSet::new();
        for (n, name) in &modules {
            self.module(chunk, *n, name, &mut defined, &mut visited);
        }
        if let (Some(free), Some(defined)) = (free, defined) {
            self.unknown_globals(chunk, &free, &defined);
        }
    }

    /// Reports every global `chunk` reads that nothing defines.
    fn unknown_globals(
        &mut self,
        chunk: &LuaChunk,
        free: &names::Names,
        defined: &HashSet<String>,
    ) {
        for read in &free.reads {
            let name = read.name.as_str();
            if self.known(chunk, name)
                || free.assigned.contains(name)
                || defined.contains(name)
                || find_module(&self.dirs, name).is_some()
            {
                continue;
            }
            let near = self.suggest_global(name, free, defined);
            let (message, help) = if name == "restart" && self.is_hook(chunk) {
                let help = "an alert hook reports what happened; the tick does the restarting \
                            (a `check:` or a lua dep may call `restart`)";
                (
                    "`restart` is not available in settings.on_event".to_string(),
                    Some(help.into()),
                )
            } else if read.indexed {
                // `redsi.ping{}`: meant as a module (or `strng.format`, a library table).
                (no_module(name, &self.dirs), near)
            } else if let Some(at) = free.locals.get(name) {
                let help = format!(
                    "`{name}` is a local declared at line {}, out of scope here (its block \
                     has ended); declare it before that block to read it after",
                    sandbox::file_line(chunk, *at)
                );
                (format!("unknown global `{name}`"), Some(help))
            } else {
                let help = near.unwrap_or_else(|| {
                    "a chunk can read Lua's standard globals, autoheal's primitives \
                     (docs/lua.md), a module of the lua dirs by its name, and the globals it \
                     assigns itself; declare anything else with `local`"
                        .into()
                });
                (format!("unknown global `{name}`"), Some(help))
            };
            self.diag(chunk, read.line, message, help);
        }
    }

    /// Resolves module `name` named at `lua_line` of `chunk`, compiles it and what it requires,
    /// adding what each assigns to `defined` (which becomes `None` when that cannot be told).
    fn module(
        &mut self,
        chunk: &LuaChunk,
        lua_line: usize,
        name: &str,
        defined: &mut Option<HashSet<String>>,
        visited: &mut HashSet<Module>,
    ) {
        if name == PRIMITIVES {
            return;
        }
        let Some(module) = find_module(&self.dirs, name) else {
            let help = self.suggest_module(name);
            self.diag(chunk, lua_line, no_module(name, &self.dirs), help);
            *defined = None;
            return;
        };
        if !visited.insert(module.clone()) {
            return;
        }
        if !self.modules.contains_key(&module) {
            let info = self.compile_module(chunk, lua_line, name, &module);
            self.modules.insert(module.clone(), info);
        }
        let (globals, requires) = &self.modules[&module];
        match (defined.as_mut(), globals) {
            (Some(d), Some(g)) => d.extend(g.iter().cloned()),
            _ => *defined = None,
        }
        for inner in requires.clone() {
            self.module(chunk, lua_line, &inner, defined, visited);
        }
    }

    /// Reads and compiles `module`: the globals it assigns and the modules it requires, or an
    /// error at the line of `chunk` that names it (then `(None, [])`).
    fn compile_module(
        &mut self,
        chunk: &LuaChunk,
        lua_line: usize,
        name: &str,
        module: &Module,
    ) -> (Option<HashSet<String>>, Vec<String>) {
        let failed = (None, Vec::new());
        // Judged as `require` judges it before reading it: refused here, it would be refused
        // at every run.
        let source = match module.read() {
            Ok(s) => s,
            Err(ReadError::Untrusted(e)) => {
                let help =
                    "a module runs as root: it and every directory above it must be root's alone";
                self.diag(chunk, lua_line, e.to_string(), Some(help.into()));
                return failed;
            }
            Err(ReadError::Io(e)) => {
                let msg = format!("cannot read module `{name}`: {e}");
                self.diag(chunk, lua_line, msg, None);
                return failed;
            }
        };
        let compiled = self
            .lua
            .load(source.as_ref())
            .set_name(format!("@{}", module.label()))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function();
        if let Err(e) = compiled {
            let msg = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            self.diags.push(module_diag(&module.label(), &msg, chunk));
            return failed;
        }
        let globals = free_names(&source).map(|n| n.assigned);
        let requires = literal_requires(&source)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        (globals, requires)
    }

    /// "did you mean `redis`?" among the modules that exist.
    fn suggest_module(&self, name: &str) -> Option<String> {
        closest(name, self.module_stems().iter().map(String::as_str))
            .map(|m| format!("did you mean `{m}`?"))
    }

    /// "did you mean `tcp_probe`?" with the closest name a chunk could read: a global a run has,
    /// a module, one the chunk or its modules assign.
    fn suggest_global(
        &self,
        name: &str,
        free: &names::Names,
        defined: &HashSet<String>,
    ) -> Option<String> {
        let stems = self.module_stems();
        let candidates = self
            .known
            .iter()
            .chain(&free.assigned)
            .chain(defined)
            .chain(&stems)
            .map(String::as_str);
        closest(name, candidates).map(|n| format!("did you mean `{n}`?"))
    }

    /// The names of the modules there are (`redis` for `redis.lua`).
    fn module_stems(&self) -> Vec<String> {
        module_names(&self.dirs)
    }
}

/// The candidate closest to `name`, if close enough to be what was meant.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .filter(|c| *c != name)
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        // Ties go to the first name in alphabetical order, so the help does not depend on the
        // order of a hash set.
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

/// A syntax error inside a module file: positioned in that file, named by the chunk using it.
fn module_diag(shown: &str, message: &str, chunk: &LuaChunk) -> Diagnostic {
    let shown = shown.to_string();
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
    // On a thread of its own for the stack (see [`STACK`]); where no thread can be started,
    // here.
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("autoheal-check".into())
            .stack_size(STACK)
            .spawn_scoped(s, || check_chunks(config, &chunks));
        match spawned {
            Ok(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(_) => check_chunks(config, &chunks),
        }
    })
}

/// [`names::free_names`], where a panic of the parser (a bug of full_moon's) only means the
/// names cannot be told.
fn free_names(source: &str) -> Option<names::Names> {
    std::panic::catch_unwind(|| names::free_names(source))
        .ok()
        .flatten()
}

fn check_chunks(config: &Config, chunks: &[&LuaChunk]) -> Vec<Diagnostic> {
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
    let mut known: HashSet<String> = sandbox::RUN_GLOBALS
        .iter()
        .chain(&[PRIMITIVES, "_ENV"])
        .map(|s| s.to_string())
        .collect();
    for pair in lua.globals().pairs::<Value, Value>() {
        if let Ok((Value::String(k), _)) = pair
            && let Ok(k) = k.to_str()
        {
            known.insert(k.to_string());
        }
    }
    let mut checker = Checker {
        config,
        lua,
        dirs: ctx.dirs.clone(),
        known,
        modules: HashMap::new(),
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

    fn config_with_check(chunk: &str) -> Config {
        let yaml = format!("web:\n  pname: x\n  script: x\n  check: |\n    {chunk}\n");
        crate::config::load_str(&yaml, Path::new("conf.yaml")).expect("loads")
    }

    /// The deepest nesting Lua compiles and the longest chain of operators under the size
    /// limit are judged without overflowing a stack, whatever thread asks (a test's has 2 MiB).
    #[test]
    fn deep_chunks_do_not_overflow_the_stack() {
        let lua = Lua::new();
        let nested = |n: usize| format!("return {}x{}", "(".repeat(n), ")".repeat(n));
        let deepest = (1..1000)
            .take_while(|n| lua.load(nested(*n)).into_function().is_ok())
            .last()
            .unwrap();
        let diags = check_config(&config_with_check(&nested(deepest)));
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].message, "unknown global `x`");

        let tables = format!("return {}x{}", "{".repeat(deepest), "}".repeat(deepest));
        if lua.load(tables.as_str()).into_function().is_ok() {
            assert_eq!(check_config(&config_with_check(&tables)).len(), 1);
        }
        let chain = format!("return {}x", "1+".repeat(names::MAX_SOURCE / 2 - 8));
        assert!(chain.len() <= names::MAX_SOURCE);
        let diags = check_config(&config_with_check(&chain));
        assert_eq!(diags.len(), 1, "{diags:?}");
        // Past the limit its names are not judged.
        let longer = format!("return {}x", "1+".repeat(names::MAX_SOURCE / 2 + 8));
        assert_eq!(check_config(&config_with_check(&longer)), vec![]);
    }

    /// The library's modules are read for the globals they assign (none, as it happens): a
    /// module whose names could not be told would turn off the check of every chunk using it.
    #[test]
    fn the_library_modules_are_understood() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            let names = names::free_names(&source);
            assert!(names.is_some(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 7);
    }

    #[test]
    fn unknown_globals_are_errors_with_a_suggestion() {
        let diags = check_config(&config_with_check("return tcpprobe('h', 1)"));
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(
            diags[0].headline(),
            "conf.yaml:5: web.check: unknown global `tcpprobe`"
        );
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `tcp_probe`?"));
        let diags = check_config(&config_with_check("return zzqx"));
        assert_eq!(diags[0].message, "unknown global `zzqx`");
        assert!(
            diags[0]
                .help
                .as_deref()
                .unwrap()
                .starts_with("a chunk can read Lua's standard"),
            "{diags:?}"
        );
        // A global the chunk assigns, a module global, a module loaded by require.
        for ok in [
            "n = 1\n    return n",
            "return redis.ping{port=1}",
            "local ok = pcall(function() seen = true end)\n    return seen",
            "return autoheal.tcp_probe('h', 1), _VERSION, _ENV, _G",
        ] {
            assert_eq!(check_config(&config_with_check(ok)), vec![], "{ok}");
        }
    }
}
