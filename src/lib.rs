//! autoheal: heals the local services of one host, in dependency order, with no coordinator.
//!
//! The tick is a functional core in an imperative shell:
//! `config` (load/validate) → `observe` (process table, probes, Lua) → `engine::plan` (pure)
//! → `exec` (run scripts) and `state` (atomic state file, lock).

pub mod cli;
pub mod config;
pub mod defaults;
pub mod engine;
pub mod event;
pub mod exec;
pub mod fleet;
pub mod fmt;
pub mod generate;
pub mod install;
pub mod levers;
pub mod lua;
pub mod notify;
pub mod observe;
pub mod pattern;
pub mod probe;
pub mod procs;
pub mod report;
pub mod state;
pub mod tick;
pub mod time;
pub mod trust;
pub mod users;

/// Why a config did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file, or a Lua chunk or module it uses, is invalid: every error, with its position.
    #[error("{0}")]
    Invalid(config::Diagnostics),
    /// autoheal runs as root and may not trust the file, or a Lua directory it uses: anyone
    /// who can change them could have root run their code (see [`trust`]).
    #[error("{0}")]
    Refused(trust::Untrusted),
}

/// Loads and validates the config at `path`, then compiles every Lua chunk it holds and
/// resolves the modules they use: a chunk that does not compile makes the file invalid, with
/// its conf.yaml line. A file rejected for other errors still has its chunks compiled, so that
/// one run lists every error. What every command runs first.
///
/// As root, the file and its Lua directories must be root's alone ([`trust::check`]), or the
/// file is [`LoadError::Refused`] before it is parsed: `lua_path` whenever it is set (the file
/// names it), `/usr/share/autoheal/lua` when the file has Lua. A module file is checked
/// again each time it is read (by `check`'s resolution and by `require`).
pub fn load_config(path: &std::path::Path) -> Result<config::Config, LoadError> {
    // A missing file is reported by the loader, in its words. Should it appear meanwhile, it is
    // judged before it is used.
    let missing = match trust::check_if_root(path) {
        Ok(()) => false,
        Err(e) if e.is_missing() => true,
        Err(e) => return Err(LoadError::Refused(e)),
    };
    let cfg = validated(path, config::load_partial(path))?;
    if missing {
        trust::check_if_root(path).map_err(LoadError::Refused)?;
    }
    checked(cfg)
}

/// As [`load_config`], of the last version of `path` that loaded, as kept in the state dir
/// (`state::kept_config`): a text of root's own, so `path` itself is not judged; its Lua
/// directories and modules are, as always.
pub fn load_kept_config(src: &str, path: &std::path::Path) -> Result<config::Config, LoadError> {
    checked(validated(path, config::load_partial_str(src, path))?)
}

/// A rejected file's errors with those of its Lua chunks, in file order.
fn validated(
    path: &std::path::Path,
    loaded: Result<config::Config, config::Rejected>,
) -> Result<config::Config, LoadError> {
    loaded.map_err(|rejected| {
        let mut errors = rejected.diagnostics.0;
        errors.extend(lua::syntax_errors(path, &rejected.chunks));
        errors.sort_by_key(|d| (d.line, d.col));
        LoadError::Invalid(config::Diagnostics(errors))
    })
}

/// The Lua directories a loaded file uses, judged, and every chunk compiled and resolved.
fn checked(cfg: config::Config) -> Result<config::Config, LoadError> {
    lua::trust_dirs(&cfg).map_err(LoadError::Refused)?;
    let errors = lua::check_config(&cfg);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(LoadError::Invalid(config::Diagnostics(errors)))
    }
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every service alive at the end (or, for `check`, the config is valid).
    Ok = 0,
    /// Some service is still down.
    Down = 1,
    /// Bad config or usage, a refused file (see [`trust`]), or unsaveable state.
    Usage = 2,
}
