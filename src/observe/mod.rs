//! Observing: reading the world as one tick needs it, and nothing else.
//!
//! Owns the process table ([`procs`]: one `/proc` snapshot per observation, liveness by
//! `pname` or `pid_file`) and the tcp/http readiness probes ([`probe`], bounded, run in
//! parallel); later the running of Lua checks. The same probe functions are reached from the
//! YAML deps and from the Lua host.
//!
//! What it must not do: act. Nothing here restarts, signals or kills a process, runs a
//! service's script, or writes state; it returns facts (with short, operator-readable reasons)
//! for `engine::plan` to decide on.

pub mod probe;
pub mod procs;
