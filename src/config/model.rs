//! [`Config`]: a loaded, valid configuration, its parts and the graph built from them.

use super::diag::Diagnostic;
use super::graph::{By, Graph};
use super::types::{Dep, Service, Settings};
use crate::pattern::PatternSet;
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, as the operator named it (used in messages).
    pub path: PathBuf,
    /// Its text: what `run` keeps in the state dir, to heal with should a later edit of the
    /// file not load.
    pub source: String,
    pub settings: Settings,
    /// Services in file order.
    pub services: Vec<Service>,
    /// Problems that do not stop autoheal (e.g. a `user` missing on this host).
    pub warnings: Vec<Diagnostic>,
    /// Who waits on whom among `services`; without cycles (`load` rejects them).
    pub graph: Graph,
    /// Every `pname` of `services`, compiled together: what each process-table snapshot
    /// matches command lines against, in one pass. Every one is covered (`load` refuses a
    /// pattern that fits in no set).
    pub pnames: Arc<PatternSet>,
}

impl Config {
    pub fn service(&self, name: &str) -> Option<&Service> {
        match self.graph.index(name).and_then(|i| self.services.get(i)) {
            Some(s) if s.name == name => Some(s),
            // A list changed after loading: look it up the slow way.
            _ => self.services.iter().find(|s| s.name == name),
        }
    }

    /// The local service `dep` of `svc` waits on, and how it names it: by name, or by probing
    /// that service's `health:` address (see [`Addr`](super::graph::Addr)).
    pub fn local_dep(&self, svc: &Service, dep: &Dep) -> Option<(&Service, By)> {
        let from = self.graph.index(&svc.name)?;
        // A dep's name is unique among its service's deps (`load` checks it).
        let at = svc.deps.iter().position(|d| d.name() == dep.name())?;
        let edge = self.graph.edge(from, at)?;
        Some((self.services.get(edge.to)?, edge.by))
    }

    /// The file's absolute path, for `AUTOHEAL_CONFIG`: scripts run in its directory, where a
    /// relative path as the operator typed it would name another file.
    pub fn absolute_path(&self) -> PathBuf {
        std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone())
    }

    /// Number of deps over all services.
    pub fn dep_count(&self) -> usize {
        self.services.iter().map(|s| s.deps.len()).sum()
    }
}
