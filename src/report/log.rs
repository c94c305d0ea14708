//! The event log: one line per event (time, service, what, why), to stdout and appended to
//! `<state_dir>/autoheal.log`. Quiet when all is well: a tick that has nothing to do writes
//! nothing.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::words::Reasons;
use crate::event::Event;

/// Where a tick's events go: each is worded ([`super::words`]) into one line, printed and
/// appended to the log file, and kept, with its line, for the alerts of the end of the tick.
pub struct Log {
    file: Option<File>,
    /// Every event emitted, with its line's text as the log has it (escaped to one line).
    pub emitted: Vec<(Event, String)>,
}

impl Log {
    /// A log that only prints (dry-run).
    pub fn stdout() -> Log {
        Log {
            file: None,
            emitted: Vec::new(),
        }
    }

    /// Prints and appends to `path` (created if missing). If the file cannot be opened the
    /// lines still go to stdout, after a line that says why.
    pub fn to_file(path: &Path) -> Log {
        let mut log = Log::stdout();
        match crate::state::open_log(path) {
            Ok(f) => log.file = Some(f),
            Err(e) => log.emit(
                Event::Trouble {
                    message: format!("cannot append to the log: {e}"),
                },
                None,
            ),
        }
        log
    }

    /// Emits one event: its line (notes of the plan worded with `reasons`), and the event kept.
    pub fn emit(&mut self, e: Event, reasons: Option<&Reasons>) {
        let text = super::words::event(&e, reasons);
        self.line(e.who(), &text);
        // Kept as the line has it: one line, whatever came from outside escaped.
        let text = super::one_line(&text).into_owned();
        self.emitted.push((e, text));
    }

    /// `2026-11-25T14:03:07Z web: started: ...`, always one line: whatever in `who` or
    /// `what` came from outside is escaped ([`super::one_line`]).
    fn line(&mut self, who: &str, what: &str) {
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
