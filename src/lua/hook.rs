//! Running `settings.on_event`, the alert chunk: the event as the global `event`, the usual
//! sandbox and limits, `restart()` refused, and a wait that never outlasts the time limit.

use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::ctx::{Failure, World, show};
use super::sandbox;
use crate::config::Config;

/// How long past its time limit the caller waits for a hook before it abandons it: the limit
/// stops the chunk's Lua code and bounds every primitive it calls, but not a function of the
/// Lua library written in C (see `observe::run_chunks`), nor the building of its state.
const ABANDON_AFTER: Duration = Duration::from_millis(250);

/// What an alert chunk may ask of the tick: nothing but to log. It runs after the tick has
/// decided, on no observation, so a service's liveness is not its to read (`event` says what
/// happened) and a restart is not its to ask.
#[derive(Default)]
struct HookWorld {
    lines: Mutex<Vec<String>>,
}

impl World for HookWorld {
    fn alive(&self, service: &str) -> Result<bool, String> {
        Err(not_here(service))
    }

    fn started(&self, service: &str) -> Result<Option<f64>, String> {
        Err(not_here(service))
    }

    fn restart(&self, _: &str, _: Instant) -> Result<(), String> {
        Err("an alert hook restarts nothing".into())
    }

    fn log(&self, _: &str, msg: &str) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.to_string());
    }
}

fn not_here(service: &str) -> String {
    format!(
        "`{service}` is not known to settings.on_event: read `event` (event.service, \
         event.kind); alive{{pname=...}} still works"
    )
}

/// See [`super::run_event_hook`].
pub(crate) fn run(
    config: &Arc<Config>,
    event: &serde_json::Value,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let Some(chunk) = config.settings.on_event.clone() else {
        return Ok(Vec::new());
    };
    let wait = timeout.saturating_add(ABANDON_AFTER);
    let (tx, rx) = mpsc::channel();
    let config = Arc::clone(config);
    let event = event.clone();
    // On a thread of its own, so that a chunk stuck where the limit cannot reach is abandoned
    // rather than waited for (the thread ends with the process).
    let spawned = std::thread::Builder::new()
        .name("autoheal-on-event".into())
        .spawn(move || {
            let world = HookWorld::default();
            let result = sandbox::guarded(&chunk, || {
                sandbox::run(None, &config, &chunk, timeout, &world, Some(&event))
            });
            let lines = std::mem::take(&mut *world.lines.lock().unwrap_or_else(|e| e.into_inner()));
            let _ = tx.send(result.map(|()| lines).map_err(Failure::reason));
        });
    if let Err(e) = spawned {
        return Err(format!(
            "settings.on_event: cannot start a thread to run it: {e}"
        ));
    }
    rx.recv_timeout(wait).unwrap_or_else(|_| {
        Err(format!(
            "settings.on_event: still running {} past its time limit of {}, in a library \
             function the limit cannot interrupt: abandoned",
            show(ABANDON_AFTER),
            show(timeout)
        ))
    })
}
