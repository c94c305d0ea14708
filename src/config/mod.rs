//! The configuration model: what `conf.yaml` means, fully typed.
//!
//! `load` (in `load.rs`) is the only way to build a [`Config`]; once it returns `Ok`, nothing
//! downstream validates again: every regex compiles, every port is in range, every local dep
//! names a service of the file, the local graph has no cycle. Errors are collected whole, each
//! with its position (`diag.rs`), from a marked YAML tree (`yaml.rs`). The graph of services
//! (`graph.rs`: who waits on whom, by name or at a `health:` address) is built once, here.
//!
//! The files form layers, lowest first: the parts of a file (`types.rs`), the graph over them,
//! [`Config`] (`model.rs`), the loader. This file only names what the crate uses.

mod cut;
mod diag;
pub mod graph;
mod load;
mod model;
mod types;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use graph::{Addr, By, Graph};
pub use load::{
    Rejected, load, load_partial, load_partial_str, load_str, parse_duration, resolve_path,
    state_dir_hint,
};

pub use model::Config;
pub use types::{Dep, Listen, Liveness, LuaChunk, Pname, Probe, Service, Settings};
