//! The event log: one line per event (time, service, what, why), to stdout and appended to
//! `<state_dir>/autoheal.log`. Quiet when all is well: a tick that has nothing to do writes
//! nothing.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// Where event lines go.
pub struct Log {
    file: Option<File>,
}

impl Log {
    /// A log that only prints (dry-run).
    pub fn stdout() -> Log {
        Log { file: None }
    }

    /// Prints and appends to `path` (created if missing). If the file cannot be opened the
    /// lines still go to stdout, after a line that says why.
    pub fn to_file(path: &Path) -> Log {
        let mut log = Log::stdout();
        match crate::state::open_log(path) {
            Ok(f) => log.file = Some(f),
            Err(e) => log.event("autoheal", &format!("cannot append to the log: {e}")),
        }
        log
    }

    /// `2026-11-25T14:03:07Z web: started: ...`, always one line: whatever in `who` or
    /// `what` came from outside is escaped ([`super::one_line`]).
    pub fn event(&mut self, who: &str, what: &str) {
        let line = format!(
            "{} {}: {}",
            humantime::format_rfc3339_seconds(SystemTime::now()),
            super::one_line(who),
            super::one_line(what)
        );
        // A closed or full stdout (`run | head -1`) must not stop the tick: the line still
        // goes to the log file.
        let _ = writeln!(std::io::stdout(), "{line}");
        if let Some(f) = &mut self.file {
            // A full disk must not stop the healing; the line is still on stdout.
            let _ = writeln!(f, "{line}");
        }
    }
}
