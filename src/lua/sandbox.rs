//! One sandboxed Lua state: the libraries it has, `require` limited to the `lua/` directories,
//! the time and memory limits, and compiling and running a conf.yaml chunk with its errors
//! mapped back to conf.yaml lines.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use regex::Regex;

use super::ctx::{Ctx, Failure, HOOK_GLOBAL, PRIMITIVES, RunAs, World};
use super::json;
use super::modules::{ReadError, find_module, no_module};
use super::prims;
use crate::config::{Config, LuaChunk};
use crate::defaults::LUA_MEMORY;

/// The deadline hook runs every this many VM instructions (about 10-50 µs of Lua code).
const HOOK_EVERY: u32 = 1000;
/// Registry key of the table of loaded modules of the current run.
const LOADED: &str = "autoheal.loaded";
/// Registry key of the global environment of the current run (modules run in it).
const ENV: &str = "autoheal.env";
/// Registry key of the function that makes a run's environment (see [`PRELUDE`]).
const NEW_ENV: &str = "autoheal.new_env";
/// Registry key of the primitives table that every run's `autoheal` module copies.
const PRIMS: &str = "autoheal.prims";
/// A state that holds more than this after a run is thrown away rather than reused (its garbage
/// would cost more to collect than a new state costs to build).
const KEEP_BELOW: usize = 8 << 20;
/// The most elements `table.move` moves in one call (a loop in C, which the hook cannot stop; see
/// [`PRELUDE`]).
const MAX_ITEMS: i64 = 1 << 24;
/// The globals a run's own environment has (made by [`PRELUDE`]'s last function), on top of the
/// state's globals that its misses read: what `autoheal check` knows a chunk can read, with
/// those (a test keeps this list and the prelude in step).
pub(crate) const RUN_GLOBALS: [&str; 7] =
    ["alive", "restart", "started", "log", "print", "_G", "load"];

/// Run once in every new state, before anything else; returns the function that makes the
/// environment of one run.
///
/// `load` keeps working on source text; bytecode (which can crash the VM) is refused. `pcall`,
/// `xpcall` and `coroutine.resume` re-raise an error caught after the deadline, so a chunk
/// cannot catch its own timeout and carry on; `xpcall` runs its message handler after unwinding,
/// as ordinary code under the hook. `__gc` metamethods are refused: finalizers run when the state
/// is collected or closed, after the chunk, where no deadline hook can stop them. The library
/// functions that loop in C as long as the chunk says (`string.rep`, the `table` functions) are
/// bounded (see docs/lua.md, "Limits").
///
/// A state runs many chunks, one after another, so nothing shared may be changed by a chunk:
/// each run gets its own global table (`_ENV`, `_G`), whose misses read the shared globals;
/// a shared table (`string`, `math`, `json`...) is copied into the run's table on first use; the
/// string metatable is protected (`getmetatable("")` is `false`); `collectgarbage` cannot stop
/// or retune the collector; `math`'s generator is reseeded for each run that uses it; `load`
/// without an environment loads into the run's table; modules are loaded again for each run
/// (the host keeps a table of loaded modules per run).
const PRELUDE: &str = include_str!("prelude.lua");

/// A new sandboxed state: libraries, primitives (those that need no [`World`]), `require`,
/// auto-require of modules on first use of their name, the deadline hook. It runs chunks one
/// after another, each in its own environment (see [`PRELUDE`] and [`Host::run`]).
pub(crate) fn new_state(ctx: &Arc<Ctx>) -> mlua::Result<Lua> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
    let lua = Lua::new_with(libs | StdLib::OS, LuaOptions::new())?;
    let g = lua.globals();

    // os: only what reads the clock and the environment; no exit, execute, remove, rename...
    let full_os: Table = g.get("os")?;
    let os = lua.create_table()?;
    for name in ["time", "clock", "date", "getenv"] {
        os.set(name, full_os.get::<Function>(name)?)?;
    }
    g.set("os", os)?;
    for name in ["dofile", "loadfile"] {
        g.set(name, Value::Nil)?;
    }
    let string: Table = g.get("string")?;
    string.set("dump", Value::Nil)?;
    let timed_out = {
        let ctx = Arc::clone(ctx);
        lua.create_function(move |_, ()| {
            if Instant::now() >= ctx.deadline() {
                ctx.timed_out.store(true, Ordering::Relaxed);
            }
            Ok(ctx.timed_out.load(Ordering::Relaxed))
        })?
    };
    // A global name nobody defined that names a module is that module: `redis.ping{}` works
    // without `local redis = require "redis"`.
    let auto = {
        let ctx = Arc::clone(ctx);
        lua.create_function(move |lua, key: Value| {
            let Value::String(key) = key else {
                return Ok(Value::Nil);
            };
            let Ok(name) = key.to_str().map(|s| s.to_string()) else {
                return Ok(Value::Nil);
            };
            if name != PRIMITIVES && find_module(&ctx.dirs, &name).is_none() {
                return Ok(Value::Nil);
            }
            require(lua, &ctx, &name)
        })?
    };
    let new_env: Function = prelude(&lua)?.call((timed_out, auto, LUA_MEMORY as i64, MAX_ITEMS))?;
    lua.set_named_registry_value(NEW_ENV, new_env)?;

    let primitives = prims::install(&lua, ctx)?;
    lua.set_named_registry_value(PRIMS, primitives)?;

    let require_fn = {
        let ctx = Arc::clone(ctx);
        lua.create_function(move |lua, name: String| require(lua, &ctx, &name))?
    };
    g.set("require", require_fn)?;

    let hook_ctx = Arc::clone(ctx);
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            if Instant::now() >= hook_ctx.deadline() {
                Err(hook_ctx.timeout_error())
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    Ok(lua)
}

/// [`PRELUDE`], compiled once per process: compiling it costs more than the rest of a new state,
/// and loading our own bytecode is quick (a chunk's `load` never takes bytecode).
fn prelude(lua: &Lua) -> mlua::Result<Function> {
    static BYTECODE: OnceLock<Vec<u8>> = OnceLock::new();
    let name = "=autoheal.sandbox";
    let code = match BYTECODE.get() {
        Some(code) => code,
        None => {
            let f = lua.load(PRELUDE).set_name(name).into_function()?;
            BYTECODE.get_or_init(|| f.dump(false))
        }
    };
    lua.load(&code[..])
        .set_name(name)
        .set_mode(mlua::chunk::ChunkMode::Binary)
        .into_function()
}

/// `require(name)`: the run's primitives for "autoheal", else `NAME.lua` from the lua dirs, run
/// once per run in the run's environment and under the same limits. As root, a file that root
/// may not trust ([`crate::trust`]) is refused: the chunk fails with why, and the fix.
fn require(lua: &Lua, ctx: &Ctx, name: &str) -> mlua::Result<Value> {
    let loaded: Table = lua.named_registry_value(LOADED)?;
    match loaded.raw_get::<Value>(name)? {
        Value::Nil => {}
        Value::Boolean(false) => {
            return Err(mlua::Error::runtime(format!(
                "module `{name}` requires itself (a require loop)"
            )));
        }
        v => return Ok(v),
    }
    let Some(module) = find_module(&ctx.dirs, name) else {
        return Err(mlua::Error::runtime(no_module(name, &ctx.dirs)));
    };
    // Right before it is read: a module anyone else can change is their code run as root.
    let source = module.read().map_err(|e| match e {
        ReadError::Untrusted(e) => mlua::Error::runtime(e.to_string()),
        ReadError::Io(e) => mlua::Error::runtime(e),
    })?;
    loaded.raw_set(name, false)?;
    let env: Table = lua.named_registry_value(ENV)?;
    let func = lua
        .load(source.as_ref())
        .set_name(format!("@{}", module.label()))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env)
        .into_function()?;
    let value = match func.call::<Value>(name) {
        Ok(Value::Nil) => Value::Boolean(true),
        Ok(v) => v,
        Err(e) => {
            loaded.raw_set(name, Value::Nil)?;
            return Err(e);
        }
    };
    loaded.raw_set(name, value.clone())?;
    Ok(value)
}

/// A chunk that is one expression (`redis.ping{port=6379}`) is run as `return <expr>`; any
/// other chunk as it is. On a syntax error: the chunk's line and Lua's message without the
/// `label:N:` prefix.
pub(crate) fn compile(
    lua: &Lua,
    chunk: &LuaChunk,
    env: Option<&Table>,
) -> Result<Function, (usize, String)> {
    let name = format!("={}", lua_name(chunk));
    let wrapped = format!("return {}", chunk.source);
    let load = |src: String| {
        let c = lua
            .load(src)
            .set_name(name.clone())
            .set_mode(mlua::chunk::ChunkMode::Text);
        match env {
            Some(env) => c.set_environment(env.clone()),
            None => c,
        }
        .into_function()
    };
    if !starts_a_statement(&chunk.source)
        && let Ok(f) = load(wrapped)
    {
        return Ok(f);
    }
    load(chunk.source.clone()).map_err(|e| {
        let message = match e {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        };
        let (n, message) = split_position(&message, lua_name(chunk)).unwrap_or((1, message));
        (n, file_lines_in(chunk, &message))
    })
}

/// A syntax message with the chunk lines it names (`to close 'if' at line 2`) turned into
/// conf.yaml lines, as its position is.
fn file_lines_in(chunk: &LuaChunk, message: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\bat line (\d+)").expect("regex"));
    re.replace_all(message, |c: &regex::Captures| {
        let lua_line = c[1].parse().unwrap_or(1);
        format!("at line {}", file_line(chunk, lua_line))
    })
    .into_owned()
}

/// The name Lua knows a chunk by, which starts its error messages (`web.check:3: ...`), so
/// that they can be recognised and mapped. Lua cuts names longer than its LUA_IDSIZE (60), so a
/// long label is replaced by "chunk".
fn lua_name(chunk: &LuaChunk) -> &str {
    if chunk.label.len() <= 50 {
        &chunk.label
    } else {
        "chunk"
    }
}

/// Whether `source` is a single expression (so it runs as `return <source>`).
pub(crate) fn is_expression(lua: &Lua, source: &str) -> bool {
    !starts_a_statement(source)
        && lua
            .load(format!("return {source}"))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function()
            .is_ok()
}

/// Whether `source` begins (after blanks and `--` comments) with a keyword no expression can
/// begin with (`return`, `local`, `if`...): then `return <source>` cannot compile, and trying it
/// would only cost a compile, every run.
fn starts_a_statement(source: &str) -> bool {
    const KEYWORDS: [&str; 8] = [
        "return", "local", "if", "for", "while", "repeat", "do", "goto",
    ];
    let mut rest = source.trim_start();
    // Line comments (`--[[ ]]` block comments are rare enough to take the slow path).
    while let Some(after) = rest.strip_prefix("--") {
        if after.starts_with('[') {
            return false;
        }
        rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    let word: &str = rest
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    KEYWORDS.contains(&word)
}

/// `label:N: rest` → (N, rest).
pub(crate) fn split_position(message: &str, label: &str) -> Option<(usize, String)> {
    let rest = message.strip_prefix(label)?.strip_prefix(':')?;
    let (n, rest) = rest.split_once(':')?;
    let n = n.parse().ok()?;
    Some((n, rest.strip_prefix(' ').unwrap_or(rest).to_string()))
}

/// A position in conf.yaml: `file:line: label: message`.
fn at(config: &Config, chunk: &LuaChunk, lua_line: usize, message: &str) -> String {
    format!(
        "{}:{}: {}: {}",
        config.path.display(),
        file_line(chunk, lua_line),
        chunk.label,
        message
    )
}

/// The conf.yaml line of line `lua_line` of `chunk`. Lua puts "near <eof>" one line past a
/// chunk that ends in a newline (as a YAML block scalar does): that is its last line.
pub(crate) fn file_line(chunk: &LuaChunk, lua_line: usize) -> usize {
    let last = chunk.source.lines().count().max(1);
    chunk.line + lua_line.clamp(1, last) - 1
}

/// A sandboxed state and what it was built for, reused for the chunks one thread runs.
pub(crate) struct Host {
    lua: Lua,
    ctx: Arc<Ctx>,
    /// What the state depends on in the config: its path (relative paths) and `lua_path`.
    key: (PathBuf, Option<PathBuf>),
}

thread_local! {
    /// This thread's state, between runs. Taken out for a run and put back only after a run
    /// that left it sound.
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
}

/// Idle states that the threads of one observation share (see [`super::Pool`]).
#[derive(Default)]
pub(crate) struct Pool(Mutex<Vec<Host>>);

fn key(config: &Config) -> (PathBuf, Option<PathBuf>) {
    (config.path.clone(), config.settings.lua_path.clone())
}

impl Host {
    fn new(config: &Config) -> mlua::Result<Host> {
        let ctx = Arc::new(Ctx::new(config, Duration::ZERO));
        let lua = new_state(&ctx)?;
        Ok(Host {
            lua,
            ctx,
            key: key(config),
        })
    }

    /// One run in a fresh environment; with an `event`, a run of `settings.on_event` (see
    /// [`run`]). Returns the result and whether the state may run another chunk: not after a
    /// timeout, the memory limit, an error of the host, or a run that left much memory behind.
    fn run(
        &self,
        config: &Config,
        chunk: &LuaChunk,
        timeout: Duration,
        world: &dyn World,
        event: Option<&serde_json::Value>,
    ) -> (Result<(), Failure>, bool) {
        let lua = &self.lua;
        let ctx = &self.ctx;
        // The limit counts what this run adds to what the state already holds.
        if let Err(e) = lua.set_memory_limit(lua.used_memory() + LUA_MEMORY) {
            return (
                Err(Failure::Error(format!(
                    "{}: cannot start Lua: {e}",
                    chunk.label
                ))),
                false,
            );
        }
        ctx.start(timeout, RunAs::of(config, chunk));
        let result = lua.scope(|scope| {
            let world_fns = prims::world_fns(scope, world, &chunk.label, ctx, event.is_none())?;
            let new_env: Function = lua.named_registry_value(NEW_ENV)?;
            let prims: Table = lua.named_registry_value(PRIMS)?;
            let (env, loaded): (Table, Table) = new_env.call((
                world_fns.alive,
                world_fns.restart,
                world_fns.started,
                world_fns.log,
                world_fns.print,
                prims,
            ))?;
            if let Some(event) = event {
                env.raw_set(HOOK_GLOBAL, json::to_lua(lua, event)?)?;
            }
            lua.set_named_registry_value(LOADED, &loaded)?;
            lua.set_named_registry_value(ENV, &env)?;
            match compile(lua, chunk, Some(&env)) {
                Ok(func) => Ok(Ok(func.call::<MultiValue>(())?)),
                Err((n, msg)) => Ok(Err(at(config, chunk, n, &msg))),
            }
        });
        let reusable = match &result {
            Ok(_) => true,
            Err(e) => recoverable(e) && !ctx.timed_out.load(Ordering::Relaxed),
        };
        let result = match result {
            Ok(Ok(values)) if event.is_some() => hook_verdict(values).map_err(Failure::Falsy),
            Ok(Ok(values)) => verdict(values).map_err(Failure::Falsy),
            Ok(Err(syntax)) => Err(Failure::Error(syntax)),
            Err(e) => {
                if std::env::var_os("AUTOHEAL_LUA_DEBUG").is_some() {
                    use std::io::Write as _;
                    let _ = writeln!(std::io::stderr(), "{e:#?}");
                }
                Err(Failure::Error(describe_error(config, chunk, ctx, &e)))
            }
        };
        let reusable = reusable
            && lua.used_memory() < KEEP_BELOW
            && lua.set_named_registry_value(LOADED, Value::Nil).is_ok()
            && lua.set_named_registry_value(ENV, Value::Nil).is_ok();
        (result, reusable)
    }
}

/// Whether an error leaves the state sound: a plain Lua error raised by the chunk or a
/// primitive (bad argument, runtime error, conversion). Not memory errors, not anything else.
fn recoverable(e: &mlua::Error) -> bool {
    match innermost(e) {
        mlua::Error::RuntimeError(m) => !m.contains("not enough memory"),
        mlua::Error::BadArgument { .. } | mlua::Error::FromLuaConversionError { .. } => true,
        _ => false,
    }
}

/// One run of `chunk` on an idle state of `pool`, or without a pool on this thread's state; a
/// state is built when none is idle (or for another config); see [`super::run_chunk`].
///
/// With an `event`, the run is one of `settings.on_event`: the event is its global `event` (a
/// table, as `json.decode` makes it), `restart` raises an error, and only `false, "why"`
/// fails it (a hook that returns nothing worked).
pub(crate) fn run(
    pool: Option<&Pool>,
    config: &Config,
    chunk: &LuaChunk,
    timeout: Duration,
    world: &dyn World,
    event: Option<&serde_json::Value>,
) -> Result<(), Failure> {
    let k = key(config);
    let host = match pool {
        Some(p) => {
            let mut idle = p.0.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|h| h.key == k);
            idle.pop()
        }
        None => HOST
            .try_with(|h| h.borrow_mut().take())
            .ok()
            .flatten()
            .filter(|h| h.key == k),
    };
    let host = match host {
        Some(h) => h,
        None => Host::new(config)
            .map_err(|e| Failure::Error(format!("{}: cannot start Lua: {e}", chunk.label)))?,
    };
    let (result, reusable) = host.run(config, chunk, timeout, world, event);
    if reusable {
        match pool {
            Some(p) => p.0.lock().unwrap_or_else(|e| e.into_inner()).push(host),
            None => {
                let _ = HOST.try_with(|h| *h.borrow_mut() = Some(host));
            }
        }
    }
    result
}

/// A panic in a run is an error of that run (its state is dropped, never reused).
pub(crate) fn guarded(
    chunk: &LuaChunk,
    run: impl FnOnce() -> Result<(), Failure>,
) -> Result<(), Failure> {
    let run = std::panic::AssertUnwindSafe(run);
    std::panic::catch_unwind(run).unwrap_or_else(|_| {
        Err(Failure::Error(format!(
            "{}: internal error in the Lua host (please report it)",
            chunk.label
        )))
    })
}

/// Truthy → ready; `false, "why"` → "why"; plain false or nil → "returned false/nil".
fn verdict(values: MultiValue) -> Result<(), String> {
    let mut values = values.into_iter();
    let first = values.next().unwrap_or(Value::Nil);
    match first {
        Value::Nil | Value::Boolean(false) => {}
        _ => return Ok(()),
    }
    match values.next() {
        Some(Value::String(s)) => Err(s.to_string_lossy()),
        Some(Value::Integer(n)) => Err(n.to_string()),
        Some(Value::Number(n)) => Err(n.to_string()),
        _ if first == Value::Nil => Err("returned nil".into()),
        _ => Err("returned false".into()),
    }
}

/// An alert hook fails only when it says so, with `false, "why"` or `nil, "why"` (what a
/// failed `http_post` returns); any other result, none included, means it did its work.
fn hook_verdict(values: MultiValue) -> Result<(), String> {
    let mut values = values.into_iter();
    match values.next() {
        Some(Value::Nil | Value::Boolean(false)) => {}
        _ => return Ok(()),
    }
    match values.next() {
        Some(Value::String(s)) => Err(s.to_string_lossy()),
        _ => Ok(()),
    }
}

/// A runtime error as an operator reads it, at its conf.yaml line when it happened in the chunk
/// itself (or, for an error inside a module, at the chunk's line that called into it).
fn describe_error(config: &Config, chunk: &LuaChunk, ctx: &Ctx, e: &mlua::Error) -> String {
    if ctx.timed_out.load(Ordering::Relaxed) {
        return ctx.timeout_message();
    }
    let (message, traceback) = flatten(e);
    if matches!(innermost(e), mlua::Error::MemoryError(_)) || message.contains("not enough memory")
    {
        return format!("memory limit of {} MiB exceeded", LUA_MEMORY >> 20);
    }
    if let Some((n, rest)) = split_position(&message, lua_name(chunk)) {
        return at(config, chunk, n, &rest);
    }
    // An error raised elsewhere (a module, a primitive): find the chunk's frame in the
    // traceback for the line.
    let needle = format!("\t{}:", lua_name(chunk));
    let line = traceback.lines().find_map(|l| {
        let l = format!("\t{}", l.trim_start());
        let rest = l.strip_prefix(&needle)?;
        rest.split(':').next()?.parse::<usize>().ok()
    });
    at(config, chunk, line.unwrap_or(1), &message)
}

fn innermost(e: &mlua::Error) -> &mlua::Error {
    match e {
        mlua::Error::CallbackError { cause, .. } => innermost(cause),
        mlua::Error::WithContext { cause, .. } => innermost(cause),
        other => other,
    }
}

/// The message of an error without its traceback, and the traceback(s) it carries.
fn flatten(e: &mlua::Error) -> (String, String) {
    match e {
        mlua::Error::CallbackError { traceback, cause } => {
            let (message, inner) = flatten(cause);
            (message, format!("{inner}\n{traceback}"))
        }
        mlua::Error::WithContext { cause, .. } => flatten(cause),
        mlua::Error::RuntimeError(s) | mlua::Error::MemoryError(s) => {
            match s.split_once("\nstack traceback:") {
                Some((m, tb)) => (m.to_string(), tb.to_string()),
                None => (s.clone(), String::new()),
            }
        }
        mlua::Error::BadArgument { .. } => (e.to_string(), String::new()),
        other => (other.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// [`RUN_GLOBALS`] lists exactly what a run's environment holds of its own.
    #[test]
    fn run_globals_are_those_of_the_prelude() {
        let config =
            crate::config::load_str("web:\n  pname: x\n  script: x\n", Path::new("conf.yaml"))
                .unwrap();
        let ctx = Arc::new(Ctx::new(&config, Duration::from_secs(1)));
        let lua = new_state(&ctx).unwrap();
        let new_env: Function = lua.named_registry_value(NEW_ENV).unwrap();
        let prims: Table = lua.named_registry_value(PRIMS).unwrap();
        let f = lua.create_function(|_, ()| Ok(())).unwrap();
        let (env, _): (Table, Table) = new_env
            .call((f.clone(), f.clone(), f.clone(), f.clone(), f, prims))
            .unwrap();
        let mut keys: Vec<String> = env.pairs::<String, Value>().map(|p| p.unwrap().0).collect();
        keys.sort();
        let mut want = RUN_GLOBALS.map(str::to_string).to_vec();
        want.sort();
        assert_eq!(keys, want);
        // The shared ones are the state's globals, where `check` finds them.
        for name in ["tcp_probe", "json", "string", "pairs", "require", "os"] {
            assert!(lua.globals().contains_key(name).unwrap(), "{name}");
        }
        for name in ["io", "debug", "package", "dofile", "loadfile", "autoheal"] {
            assert!(!lua.globals().contains_key(name).unwrap(), "{name}");
        }
    }

    #[test]
    fn statements_are_told_from_expressions_by_their_first_word() {
        for src in [
            "return true",
            "  local x = 1\nreturn x",
            "-- note\nif x then return 1 end",
            "for i = 1, 2 do end",
            "do return 1 end",
        ] {
            assert!(starts_a_statement(src), "{src:?}");
        }
        for src in [
            "tcp_probe('db', 5432)",
            "redis.ping{port=6379}",
            "-- note\nalive('db')",
            "returned_value",
            "localhost_ok()",
            "--[[ block ]] return true",
            "",
        ] {
            assert!(!starts_a_statement(src), "{src:?}");
        }
    }
}
