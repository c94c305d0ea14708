//! The documents generated from the clap definitions ([`crate::cli`]), so that they never drift
//! from the command line: the man pages (`autoheal.1` and one per command, `autoheal-run.1`,
//! ...) and the shell completions. The package's build writes them (`packaging/build-deb`);
//! `autoheal completions SHELL` prints one for a system without the package.

use clap::CommandFactory;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What the main page adds to what clap knows: the files autoheal reads and writes.
const FILES: &str = r#".SH FILES
.TP
\fI/etc/autoheal/conf.yaml\fR
The config, unless \fB\-c\fR or \fBAUTOHEAL_CONFIG\fR names another; root's alone, or root refuses it.
.TP
\fI/var/lib/autoheal/\fR
The state dir (\fBsettings.state_dir\fR): the state file, the lock, \fIautoheal.log\fR (the events) and \fIlogs/\fR (the output of the scripts), mode 0700.
.TP
\fI/etc/cron.d/autoheal\fR
A tick every minute and at boot, as root; what a tick says on standard error goes to \fI/var/log/autoheal.log\fR.
.TP
\fIautoheal.service\fR, \fIautoheal.timer\fR
The alternative to the cron file, shipped disabled: \fBsystemctl enable \-\-now autoheal.timer\fR.
.TP
\fI/etc/logrotate.d/autoheal\fR
Rotates the logs.
.SH SEE ALSO
\fI/usr/share/doc/autoheal/README.md.gz\fR: how a tick works, the config reference, the security model.
"#;

/// Writes the man pages into `dir` (made if missing): `autoheal.1`, then one per visible
/// command. Returns the paths written.
pub fn man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = crate::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    let main = dir.join("autoheal.1");
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut text)?;
    text.extend_from_slice(FILES.as_bytes());
    std::fs::write(&main, text)?;
    written.push(main);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names a subcommand `autoheal-run` once built; its page is `autoheal-run.1`.
        let man = clap_mangen::Man::new(sub.clone());
        written.push(man.generate_to(dir)?);
    }
    Ok(written)
}

/// Writes the completion script for `shell` into `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut crate::cli::Cli::command(), "autoheal", out);
}
