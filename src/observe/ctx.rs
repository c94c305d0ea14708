//! What an observation is given besides the config, shared by the files of `observe`.

use crate::state::State;
use std::sync::Mutex;

/// What observing may do on behalf of a Lua chunk's `restart()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restarts {
    /// A healing tick: requests go through the engine's gate.
    Allowed,
    /// `run --dry-run`: refused, saying so.
    DryRun,
    /// `status`: refused, saying so.
    Never,
}

/// What an observation needs besides the config.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub restarts: Restarts,
}

/// A lock that a panicked holder does not poison for the others.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
