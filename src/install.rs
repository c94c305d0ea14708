//! The files that start a tick every minute and at boot on a system without the package:
//! `autoheal cron --install` (the cron.d file) and `autoheal systemd --install` (the service and
//! its timer). One source of truth: the package's own files in `packaging/`, included here, with
//! this binary's absolute path in place of the package's `/usr/bin/autoheal`, and a marker line
//! on top that says autoheal wrote them.
//!
//! Written atomically (a temp file in the same directory, fsync, rename, fsync of the
//! directory), never over a file that does not carry the marker: whoever wrote it, an operator
//! or the package, keeps it. Touches nothing but the files it names; enables nothing.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the package installs the binary, as its files name it.
pub const PACKAGED_BIN: &str = "/usr/bin/autoheal";

/// The package's cron.d file (`/etc/cron.d/autoheal`).
pub const CRON_D: &str = include_str!("../packaging/etc/cron.d/autoheal");
/// The package's oneshot service (`autoheal.service`).
pub const SERVICE: &str = include_str!("../packaging/systemd/autoheal.service");
/// The package's timer (`autoheal.timer`), every minute and at boot.
pub const TIMER: &str = include_str!("../packaging/systemd/autoheal.timer");

/// The longest file the install commands read back, to judge whether they wrote it.
const MAX_READ: u64 = 1024 * 1024;

/// Which files an install command writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/etc/cron.d/autoheal`.
    Cron,
    /// `/etc/systemd/system/autoheal.service` and `autoheal.timer`.
    Systemd,
}

impl Kind {
    /// The directory the files go to without `--dir`.
    pub fn default_dir(self) -> &'static Path {
        Path::new(match self {
            Kind::Cron => "/etc/cron.d",
            Kind::Systemd => "/etc/systemd/system",
        })
    }

    /// The command that writes them, as the marker line names it.
    fn command(self) -> &'static str {
        match self {
            Kind::Cron => "autoheal cron --install",
            Kind::Systemd => "autoheal systemd --install",
        }
    }

    /// The first line of every file this command writes; a file without it is not replaced.
    pub fn marker(self) -> String {
        format!("# written by {}", self.command())
    }

    /// The package's files: (name in the directory, text with `/usr/bin/autoheal`).
    fn packaged(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Cron => &[("autoheal", CRON_D)],
            Kind::Systemd => &[("autoheal.service", SERVICE), ("autoheal.timer", TIMER)],
        }
    }
}

/// Why an install command wrote nothing, or not everything.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The binary's path cannot be written into a cron line or a unit file as it is.
    #[error(
        "cannot name {} in {what}: its path has a character other than letters, digits and \
         `/._+-` (cron and systemd would read it otherwise); copy the binary to a plain path, \
         e.g. install -m 0755 {0} /usr/local/bin/autoheal, and run that one",
        exe.display()
    )]
    UnsafePath { exe: PathBuf, what: &'static str },
    /// This binary's own path is not known.
    #[error("cannot tell this binary's path: {0}")]
    CurrentExe(io::Error),
    /// A file is there that this command did not write.
    #[error("refusing to replace {}: {why}", path.display())]
    Foreign { path: PathBuf, why: String },
    /// As root: the binary, or the directory written to, is one another account could change
    /// (or swap for another through a directory on its path): what it names would run as root
    /// every minute, or root's write would go where that account points it.
    #[error(
        "refusing to {what}: {why}; {fix}",
        why = untrusted,
    )]
    Untrusted {
        what: &'static str,
        untrusted: crate::trust::Untrusted,
        fix: &'static str,
    },
    /// Reading, writing or renaming failed.
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written (new, or replacing one this command wrote before).
    Wrote(PathBuf),
    /// Already there, the same text: left as it is.
    Unchanged(PathBuf),
}

/// The files `kind` writes for the binary at `exe`: (name, text), the package's text with `exe`
/// in place of `/usr/bin/autoheal` and the marker line on top.
pub fn render(kind: Kind, exe: &Path) -> Result<Vec<(&'static str, String)>, InstallError> {
    let what = match kind {
        Kind::Cron => "a cron line",
        Kind::Systemd => "a unit file",
    };
    let shown = exe.to_str().filter(|s| {
        s.starts_with('/')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
    });
    let Some(exe) = shown else {
        return Err(InstallError::UnsafePath {
            exe: exe.to_path_buf(),
            what,
        });
    };
    let header = format!(
        "{}, which replaces this file when run again: delete this line to keep your edits.\n",
        kind.marker()
    );
    Ok(kind
        .packaged()
        .iter()
        .map(|(name, text)| {
            (
                *name,
                format!("{header}{}", text.replace(PACKAGED_BIN, exe)),
            )
        })
        .collect())
}

/// The absolute path of this binary, as cron and systemd must run it.
pub fn current_exe() -> Result<PathBuf, InstallError> {
    std::env::current_exe().map_err(InstallError::CurrentExe)
}

/// Writes the files of `kind` for the binary at `exe` into `dir`, each atomically, mode 0644.
/// Every file already there is judged first: if one lacks the marker line, nothing is written.
pub fn install(kind: Kind, dir: &Path, exe: &Path) -> Result<Vec<Written>, InstallError> {
    let files = render(kind, exe)?;
    // As root, both must be root's alone, every directory on their way too: then no other
    // account can replace the binary cron will run, nor turn a directory of the path into a
    // link elsewhere between the checks and the rename below.
    crate::trust::check_if_root(exe).map_err(|untrusted| InstallError::Untrusted {
        what: "schedule this binary as root",
        untrusted,
        fix: "install it where only root can write first (install -m 0755 target/release/autoheal \
              /usr/local/bin/autoheal), and run that one",
    })?;
    // A missing directory is said below, as such.
    match crate::trust::check_if_root(dir) {
        Err(untrusted) if !untrusted.is_missing() => {
            return Err(InstallError::Untrusted {
                what: "write there",
                untrusted,
                fix: "give a directory only root can write (the default is where cron or \
                      systemd reads)",
            });
        }
        _ => {}
    }
    let mut plan = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        let same = match read_existing(&path)? {
            None => false,
            Some(old) if old == text => true,
            Some(old)
                if old
                    .lines()
                    .next()
                    .is_some_and(|l| l.starts_with(&kind.marker())) =>
            {
                false
            }
            Some(old) => {
                let packaged = kind.packaged().iter().any(|(_, t)| *t == old);
                let why = if packaged {
                    format!(
                        "it is the autoheal package's (dpkg -S {}), which already runs {PACKAGED_BIN}: \
                         nothing to install",
                        path.display()
                    )
                } else {
                    format!(
                        "{} did not write it (its first line is not `{}`); move it aside, or \
                         put that line on top of it to let autoheal replace it, then run this again",
                        kind.command(),
                        kind.marker()
                    )
                };
                return Err(InstallError::Foreign { path, why });
            }
        };
        plan.push((path, text, same));
    }
    let mut done = Vec::new();
    for (path, text, same) in plan {
        if same {
            done.push(Written::Unchanged(path));
        } else {
            write_atomically(&path, text.as_bytes())?;
            done.push(Written::Wrote(path));
        }
    }
    Ok(done)
}

/// The text of the file at `path`, if there is one; anything else than a regular file there
/// (a symlink, a directory) is refused: the command replaces only what it wrote.
fn read_existing(path: &Path) -> Result<Option<String>, InstallError> {
    let io = |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !meta.file_type().is_file() {
        return Err(InstallError::Foreign {
            path: path.to_path_buf(),
            why: "it is not a regular file (a symlink or a directory); move it aside, then run this again"
                .into(),
        });
    }
    let mut text = String::new();
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    match file.take(MAX_READ).read_to_string(&mut text) {
        Ok(_) => Ok(Some(text)),
        // Not text: not one of ours.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Some(String::new())),
        Err(e) => Err(io(e)),
    }
}

/// `bytes` into `path` through a temp file in the same directory (hidden and with a dot in its
/// name, so that neither cron nor systemd reads it meanwhile), fsync'd, renamed over `path`,
/// then the directory fsync'd. The temp file is removed if any step fails.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    let io = |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of a killed run of ours (same pid, so an old one) goes first; never followed.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask may have narrowed it; cron and systemd read it as root either way, but the
        // package's mode is 0644.
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_files_name_the_packaged_binary_only_where_it_runs() {
        for (_, text) in Kind::Cron.packaged().iter().chain(Kind::Systemd.packaged()) {
            for line in text.lines().filter(|l| l.contains(PACKAGED_BIN)) {
                assert!(!line.starts_with('#'), "a comment names the binary: {line}");
            }
        }
        let cron: Vec<&str> = CRON_D
            .lines()
            .filter(|l| l.contains(PACKAGED_BIN))
            .collect();
        assert_eq!(cron.len(), 2, "every minute and @reboot: {cron:?}");
        assert!(
            cron.iter()
                .all(|l| l.contains(" root /usr/bin/autoheal run "))
        );
    }

    #[test]
    fn a_path_cron_or_systemd_would_misread_is_refused() {
        for bad in [
            "relative/autoheal",
            "/a b/autoheal",
            "/x%y",
            "/bin/autoheal (deleted)",
        ] {
            assert!(
                matches!(
                    render(Kind::Cron, Path::new(bad)),
                    Err(InstallError::UnsafePath { .. })
                ),
                "{bad}"
            );
        }
        let files = render(Kind::Systemd, Path::new("/opt/ah-1.0/bin/autoheal")).unwrap();
        assert!(
            files[0]
                .1
                .contains("ExecStart=/opt/ah-1.0/bin/autoheal run\n")
        );
        assert!(
            files[0]
                .1
                .starts_with("# written by autoheal systemd --install,")
        );
    }
}
