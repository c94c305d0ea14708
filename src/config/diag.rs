//! Errors an operator can act on: `file:line:col: service: message`, the offending line
//! quoted with a caret under it, and what to do.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The config file as the operator named it.
    pub file: String,
    pub line: usize,
    /// 1-based; 0 when only the line is known (Lua errors).
    pub col: usize,
    /// `web`, `settings`, `web.check`... or empty for the file as a whole.
    pub context: String,
    pub message: String,
    /// The source line, quoted under the message.
    pub source_line: Option<String>,
    /// How wide the caret is.
    pub width: usize,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// The first line alone: `conf.yaml:4:5: web: unknown key `pidfile``.
    pub fn headline(&self) -> String {
        let mut s = self.file.clone();
        if self.line > 0 {
            s.push_str(&format!(":{}", self.line));
        }
        if self.line > 0 && self.col > 0 {
            s.push_str(&format!(":{}", self.col));
        }
        s.push_str(": ");
        if self.severity == Severity::Warning {
            s.push_str("warning: ");
        }
        if !self.context.is_empty() {
            s.push_str(&self.context);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, " {pad} |")?;
            writeln!(f, " {num} | {src}")?;
            if self.col > 0 {
                // Tabs in the quoted line keep the caret aligned only if we echo them.
                let lead: String = src
                    .chars()
                    .take(self.col - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, " {pad} | {lead}{}", "^".repeat(self.width.max(1)))?;
            }
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Every error of a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "{n} error{} in {}; nothing was started or changed.",
            if n == 1 { "" } else { "s" },
            self.0
                .first()
                .map(|d| d.file.as_str())
                .unwrap_or("the config")
        )
    }
}

impl std::error::Error for Diagnostics {}
