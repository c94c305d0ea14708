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
