//! autoheal: heals the local services of one host, in dependency order, with no coordinator.
//!
//! The tick is a functional core in an imperative shell:
//! `config` (load/validate) → `observe` (process table, probes, Lua) → `engine::plan` (pure)
//! → `exec` (run scripts) and `state` (atomic state file, lock).

pub mod cli;
pub mod config;
pub mod defaults;
pub mod engine;
pub mod exec;
pub mod lua;
pub mod observe;
pub mod report;
pub mod state;
pub mod trust;

/// Loads and validates the config at `path`, then compiles every Lua chunk it holds and
/// resolves the modules they use: a chunk that does not compile makes the file invalid, with
/// its conf.yaml line. A file rejected for other errors still has its chunks compiled, so that
/// one run lists every error. What every command runs first.
pub fn load_config(path: &std::path::Path) -> Result<config::Config, config::Diagnostics> {
    let cfg = match config::load_partial(path) {
        Ok(cfg) => cfg,
        Err(rejected) => {
            let mut errors = rejected.diagnostics.0;
            errors.extend(lua::syntax_errors(path, &rejected.chunks));
            errors.sort_by_key(|d| (d.line, d.col));
            return Err(config::Diagnostics(errors));
        }
    };
    let errors = lua::check_config(&cfg);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(config::Diagnostics(errors))
    }
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every service alive at the end (or, for `check`, the config is valid).
    Ok = 0,
    /// Some service is still down.
    Down = 1,
    /// Bad config or usage.
    Usage = 2,
}
