//! autoheal: heals the local services of one host, in dependency order, with no coordinator.
//!
//! The tick is a functional core in an imperative shell:
//! `config` (load/validate) → `observe` (process table, probes, Lua) → `engine::plan` (pure)
//! → `exec` (run scripts) and `state` (atomic state file, lock).

pub mod config;
pub mod defaults;
pub mod engine;
pub mod exec;
pub mod lua;
pub mod observe;
pub mod report;
pub mod state;
