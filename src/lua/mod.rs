//! The embedded Lua host: runs the inline chunks of conf.yaml (`check:`, a dep's `lua:`) and
//! the modules of the `lua/` library in a sandboxed Lua 5.4, on the Rust core's primitives.
//!
//! What it owns:
//! - the sandbox ([`sandbox`]): which standard libraries exist (base, table, string, math, utf8,
//!   coroutine, and an `os` reduced to `time`/`clock`/`date`/`getenv`), a text-only `load`, and a
//!   `require` that only reads `NAME.lua` files from the `lua/` directories
//!   (`settings.lua_path`, then the install prefix's, then the source tree's in development),
//!   and, as root, only files that root may trust ([`crate::trust`], [`trust_dirs`]);
//! - the limits of one run: a deadline checked by an instruction-count hook, a memory limit
//!   ([`crate::defaults::LUA_MEMORY`]), and every blocking primitive bounded by the time the
//!   chunk has left;
//! - the primitives ([`prims`]): thin wrappers over the same probe and process-table functions
//!   the engine uses (`crate::observe`), plus `exec`, `sleep`, `json`, `tcp_exchange`...;
//! - the mapping of a chunk's line to its line in conf.yaml, for syntax and runtime errors;
//! - `autoheal check`'s judgement of a chunk ([`check`]): it compiles, the modules it names
//!   exist and compile, and every global it reads exists ([`names`] finds them statically);
//! - running `settings.on_event`, the alert chunk ([`run_event_hook`]).
//!
//! Its files form layers, lowest first: what they all share (`ctx.rs`: [`World`], [`Failure`],
//! the context of a run) and where modules live (`modules.rs`), then `json`, `prims`, `sandbox`,
//! then `check` and `hook`; this file only names what the crate uses.
//!
//! What it must not do: decide anything about a service (a chunk's verdict goes back to the
//! engine), restart anything by itself (`restart()` goes through [`World::restart`], the
//! engine's gate), panic, or block past a chunk's time limit. A state runs one chunk at a time
//! and is reused for the next (per observation through a [`Pool`], or per thread), each run in
//! its own environment: chunks never see each other's globals or changes (see docs/lua.md,
//! "Isolation"), and run on several threads at once.

mod check;
mod ctx;
mod hook;
mod json;
mod modules;
mod names;
mod prims;
mod sandbox;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Diagnostic, LuaChunk};
use crate::trust::Untrusted;

pub use ctx::{Failure, World};
pub use modules::{BUILTIN, Module, SHARED_DIR, find_module, lua_dirs};

/// Compiles every chunk of the config (checks, dep lua), resolves every module they name
/// (`require "x"` / `require("x")` literally, and every global that names a module), compiling
/// the module files found, and rejects a chunk that reads a global nothing defines (Lua's
/// standard globals, the primitives, the modules, what the chunk or its modules assign), without
/// running anything. Returns every error as a
/// [`Diagnostic`] with its conf.yaml line; empty means every chunk is fine. `autoheal check`
/// calls this.
pub fn check_config(config: &Config) -> Vec<Diagnostic> {
    check::check_config(config)
}

/// Refuses, when autoheal runs as root, a Lua directory that root may not trust (see
/// [`crate::trust`]): `settings.lua_path` whenever it is set (the file names it; a missing one
/// is fine, as nothing can be read from it), and, when the file has any Lua chunk, `/usr/share/autoheal/lua`
/// when it exists ([`lua_dirs`]; the library itself is inside the binary). A file without Lua reads no
/// module, so that directory is not its business. Each module file is judged again
/// when it is read.
pub fn trust_dirs(config: &Config) -> Result<(), Untrusted> {
    let lua_path = config.settings.lua_path.as_ref();
    let dirs = if check::chunks(config).is_empty() {
        lua_path.into_iter().cloned().collect()
    } else {
        lua_dirs(config)
    };
    for dir in &dirs {
        match crate::trust::check_if_root(dir) {
            Err(e) if !e.is_missing() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The syntax errors of the chunks of a file rejected for other errors (`path`, as the
/// operator named it), so that one run of `autoheal check` lists them all.
pub fn syntax_errors(path: &std::path::Path, chunks: &[LuaChunk]) -> Vec<Diagnostic> {
    check::syntax_errors(path, chunks)
}

/// Idle sandboxed states, shared by the threads that run the chunks of one observation: a
/// thread takes one for a run and gives it back after, so a tick builds as many states as it
/// runs chunks at once, not one per chunk. Dropping the pool closes them.
#[derive(Default)]
pub struct Pool(sandbox::Pool);

/// Runs one chunk in a fresh environment of a sandboxed state of this thread (reused from its
/// previous run) under `timeout` and the memory limit. See [`run_chunk_in`].
pub fn run_chunk(
    config: &Config,
    chunk: &LuaChunk,
    timeout: Duration,
    world: &dyn World,
) -> Result<(), String> {
    sandbox::guarded(chunk, || {
        sandbox::run(None, config, chunk, timeout, world, None)
    })
    .map_err(Failure::reason)
}

/// Runs one chunk in a fresh environment of a sandboxed state taken from `pool` (or a new one)
/// under `timeout` and the memory limit.
///
/// `Ok(())` if it returned a truthy value. [`Failure::Falsy`] for a falsy result (`"returned
/// false"`, `"returned nil"`, or the second value of `false, "why"`); [`Failure::Error`] for a
/// runtime error with its conf.yaml line (`"conf.yaml:23: web.check: attempt to index a nil
/// value (global 'resp')"`), a timeout (`"timed out after 5s"`) or the memory limit (`"memory
/// limit of 64 MiB exceeded"`). Never panics.
pub fn run_chunk_in(
    pool: &Pool,
    config: &Config,
    chunk: &LuaChunk,
    timeout: Duration,
    world: &dyn World,
) -> Result<(), Failure> {
    sandbox::guarded(chunk, || {
        sandbox::run(Some(&pool.0), config, chunk, timeout, world, None)
    })
}

/// Runs `settings.on_event` (nothing to do without one) for one event: in the usual sandbox,
/// under `timeout` and the memory limit, with `event` as the global `event` (a table, as
/// `json.decode` makes it). Its primitives are those of any chunk (`http_post`, `http_get`,
/// `tcp_probe`, `json`, `log`...) but `restart`, which raises an error; `alive` and `started`
/// of a service by name are errors too (the event says what happened).
///
/// `Ok` with the lines it logged (`log`, `print`); `Err` with why it failed: a runtime error
/// at its conf.yaml line, its time or memory limit, or `false, "why"` (`nil, "why"`, as a
/// failed `http_post` returns) as its result. Returns within `timeout` and a fraction of a
/// second, whatever the chunk does. Never panics.
pub fn run_event_hook(
    config: &Arc<Config>,
    event: &serde_json::Value,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    hook::run(config, event, timeout)
}
