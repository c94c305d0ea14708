//! Which process a health restart may signal: the rules, pure, over facts the observation
//! gathers (who owns the pid file and the directories above it, and with what mode; the
//! process's real uid and command line; whether it is autoheal or one of its ancestors).
//!
//! The rule, after systemd's for a PID file that is not root's (it accepts a PID outside the
//! unit's cgroup only from a root-owned file): a pid is never signalled when it is 1 or
//! autoheal itself or any of its ancestors; a pid found by `pname` is signalled (it matched);
//! a pid read from a pid file is signalled only if
//! - the service has a `pname` and the process matches it (with a `pname`, this is required);
//! - or, without `pname`, root alone could have written the file ([`Writers::Root`]);
//! - or, without `pname`, one account U besides root could have written it
//!   ([`Writers::One`]) and the process runs as U: U could signal it itself, so autoheal gives
//!   U nothing it did not have.
//!
//! What this module must not do: read anything. [`judge`] and [`writers`] are pure; the
//! observation reads the facts, the plan holds the restart with the [`Unsignallable`] reason,
//! and the tick re-checks the process right before it signals it.

use crate::engine::{ForeignPid, Mismatch, Unsignallable};
use crate::pattern::Pattern;
use std::path::{Path, PathBuf};

/// Owner and mode (permission bits and the sticky bit) of a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub mode: u32,
}

impl Meta {
    const GROUP_OR_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;

    fn writable_by_others(&self) -> bool {
        self.mode & Self::GROUP_OR_OTHER_WRITE != 0
    }
}

/// Who could have written a pid file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writers {
    /// Root alone.
    Root,
    /// Root and this one other account.
    One(u32),
    /// Root and these accounts (owners of the file or of directories above it).
    Several(Vec<u32>),
    /// Anyone in a group, or anyone at all: `path` (the file, or a directory above it that is
    /// not sticky) is group- or other-writable.
    Anyone { path: PathBuf, mode: u32 },
    /// It could not be told (a directory above it could not be read).
    Unknown(String),
}

/// Who could have written the file `path` (owner and mode `file`, as read from the open file),
/// given every directory above it, nearest first (`dirs`). The owner of the file and of each
/// directory could (an owner may always chmod); a group- or other-writable file or directory
/// lets anyone in; a sticky directory (`/tmp`) does not, since there only the owner of an entry
/// (counted already) may replace it.
pub fn writers(path: &Path, file: Meta, dirs: &[(PathBuf, Meta)]) -> Writers {
    if file.writable_by_others() {
        return Writers::Anyone {
            path: path.to_path_buf(),
            mode: file.mode,
        };
    }
    let mut accounts = vec![file.uid];
    for (dir, meta) in dirs {
        if meta.writable_by_others() && meta.mode & Meta::STICKY == 0 {
            return Writers::Anyone {
                path: dir.clone(),
                mode: meta.mode,
            };
        }
        accounts.push(meta.uid);
    }
    accounts.retain(|&uid| uid != 0);
    accounts.sort_unstable();
    accounts.dedup();
    match accounts.as_slice() {
        [] => Writers::Root,
        [one] => Writers::One(*one),
        _ => Writers::Several(accounts),
    }
}

/// The pid file a pid came from, and who could have written it.
#[derive(Debug, Clone, PartialEq)]
pub struct FromFile {
    pub path: PathBuf,
    /// The file's own owner and mode.
    pub meta: Meta,
    pub writers: Writers,
}

/// The process a health restart would signal, as observed.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub pid: u32,
    /// As `pname` matching sees it.
    pub cmdline: &'a str,
    /// Its real uid, if it could be read.
    pub uid: Option<u32>,
    /// autoheal itself or one of its ancestors (any session).
    pub ours: bool,
    /// `None` when `pname` found it (so it matches); else the pid file it was read from.
    pub from_file: Option<FromFile>,
    /// The service's `pname`, if it has one.
    pub pname: Option<&'a dyn Pattern>,
}

/// Whether autoheal may signal `c` (see the module doc); `name` gives an account's name for
/// the reason.
pub fn judge(c: &Candidate<'_>, name: &dyn Fn(u32) -> String) -> Result<(), Unsignallable> {
    if c.pid == 1 {
        return Err(Unsignallable::Init);
    }
    if c.ours {
        return Err(Unsignallable::Ours {
            pid: c.pid,
            cmdline: c.cmdline.to_string(),
        });
    }
    let Some(file) = &c.from_file else {
        return Ok(());
    };
    let mismatch = match (c.pname, &file.writers) {
        // A pattern that does not compile alone confirms nothing: the pid is not signalled.
        (Some(re), _) if re.regex().is_some_and(|r| r.is_match(c.cmdline)) => return Ok(()),
        (Some(re), _) => Mismatch::Pname {
            pname: re.text().to_string(),
        },
        (None, Writers::Root) => return Ok(()),
        (None, Writers::One(u)) if c.uid == Some(*u) => return Ok(()),
        (None, w) => Mismatch::Writers {
            writers: describe_writers(w, name),
            runs_as: c.uid.map_or_else(|| "an unknown account".into(), name),
        },
    };
    Err(Unsignallable::NotTheService(Box::new(ForeignPid {
        pid: c.pid,
        file: file.path.clone(),
        owner: name(file.meta.uid),
        mode: file.meta.mode & 0o7777,
        cmdline: c.cmdline.to_string(),
        mismatch,
    })))
}

/// "admin", "admin and bob", "anyone who can write /srv/run (mode 0777)".
fn describe_writers(w: &Writers, name: &dyn Fn(u32) -> String) -> String {
    match w {
        Writers::Root => "root".into(),
        Writers::One(u) => name(*u),
        Writers::Several(us) => us
            .iter()
            .map(|u| name(*u))
            .collect::<Vec<_>>()
            .join(" and "),
        Writers::Anyone { path, mode } => format!(
            "anyone who can write {} (mode {:04o})",
            path.display(),
            mode & 0o7777
        ),
        Writers::Unknown(why) => format!("anyone (autoheal cannot tell who: {why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_DIR: Meta = Meta {
        uid: 0,
        mode: 0o755,
    };
    const TMP: Meta = Meta {
        uid: 0,
        mode: 0o1777,
    };
    const ADMIN: u32 = 1000;
    const BOB: u32 = 1001;

    fn dirs(list: &[(&str, Meta)]) -> Vec<(PathBuf, Meta)> {
        list.iter().map(|(p, m)| (PathBuf::from(p), *m)).collect()
    }

    fn file(uid: u32, mode: u32) -> Meta {
        Meta { uid, mode }
    }

    fn w(f: Meta, d: &[(&str, Meta)]) -> Writers {
        writers(Path::new("/x/web.pid"), f, &dirs(d))
    }

    #[test]
    fn root_alone_when_root_owns_the_file_and_every_directory_above_it() {
        let run = [("/run", ROOT_DIR), ("/", ROOT_DIR)];
        assert_eq!(w(file(0, 0o644), &run), Writers::Root);
        // A sticky, world-writable directory (/tmp, /run/lock) is fine: only the owner of
        // an entry may replace it there.
        assert_eq!(
            w(file(0, 0o644), &[("/tmp", TMP), ("/", ROOT_DIR)]),
            Writers::Root
        );
        // Read-only for everyone but the owner: still the owner's.
        assert_eq!(w(file(0, 0o444), &run), Writers::Root);
    }

    #[test]
    fn one_account_when_it_owns_the_file_or_a_directory_above_it() {
        let run = [("/run", ROOT_DIR), ("/", ROOT_DIR)];
        assert_eq!(w(file(ADMIN, 0o644), &run), Writers::One(ADMIN));
        let home = Meta {
            uid: ADMIN,
            mode: 0o750,
        };
        // Root's file in admin's directory: admin may replace it.
        assert_eq!(
            w(
                file(0, 0o644),
                &[("/home/admin", home), ("/home", ROOT_DIR), ("/", ROOT_DIR)]
            ),
            Writers::One(ADMIN)
        );
        // Or further up: admin may rename the directory below it and put another there.
        assert_eq!(
            w(
                file(0, 0o644),
                &[("/home/admin/run", ROOT_DIR), ("/home/admin", home)]
            ),
            Writers::One(ADMIN)
        );
        // A file in admin's sticky directory is admin's and its owner's.
        let sticky = Meta {
            uid: ADMIN,
            mode: 0o1777,
        };
        assert_eq!(
            w(file(BOB, 0o644), &[("/srv/tmp", sticky)]),
            Writers::Several(vec![ADMIN, BOB])
        );
    }

    #[test]
    fn anyone_when_the_file_or_a_plain_directory_above_it_is_group_or_other_writable() {
        let run = [("/run", ROOT_DIR), ("/", ROOT_DIR)];
        assert_eq!(
            w(file(0, 0o664), &run),
            Writers::Anyone {
                path: "/x/web.pid".into(),
                mode: 0o664
            }
        );
        assert_eq!(
            w(file(0, 0o646), &run),
            Writers::Anyone {
                path: "/x/web.pid".into(),
                mode: 0o646
            }
        );
        let open = Meta {
            uid: 0,
            mode: 0o777,
        };
        assert_eq!(
            w(file(0, 0o644), &[("/srv/run", ROOT_DIR), ("/srv", open)]),
            Writers::Anyone {
                path: "/srv".into(),
                mode: 0o777
            }
        );
    }

    fn name(uid: u32) -> String {
        match uid {
            0 => "root".into(),
            ADMIN => "admin".into(),
            BOB => "bob".into(),
            n => format!("uid {n}"),
        }
    }

    fn from(meta: Meta, writers: Writers) -> Option<FromFile> {
        Some(FromFile {
            path: "/run/web.pid".into(),
            meta,
            writers,
        })
    }

    fn candidate(uid: u32, from_file: Option<FromFile>) -> Candidate<'static> {
        Candidate {
            pid: 812,
            cmdline: "/usr/sbin/sshd -D",
            uid: Some(uid),
            ours: false,
            from_file,
            pname: None,
        }
    }

    #[test]
    fn never_pid_1_nor_autoheal_nor_its_ancestors() {
        let root_file = from(file(0, 0o644), Writers::Root);
        let c = Candidate {
            pid: 1,
            ..candidate(0, root_file.clone())
        };
        assert_eq!(judge(&c, &name), Err(Unsignallable::Init));
        let c = Candidate {
            ours: true,
            ..candidate(0, root_file)
        };
        assert_eq!(
            judge(&c, &name),
            Err(Unsignallable::Ours {
                pid: 812,
                cmdline: "/usr/sbin/sshd -D".into()
            })
        );
        // Found by pname (so it matches): pid 1 is refused all the same.
        let c = Candidate {
            pid: 1,
            ..candidate(0, None)
        };
        assert_eq!(judge(&c, &name), Err(Unsignallable::Init));
        assert_eq!(judge(&candidate(0, None), &name), Ok(()));
    }

    #[test]
    fn a_pid_from_a_file_root_alone_could_write_is_signalled() {
        let c = candidate(0, from(file(0, 0o644), Writers::Root));
        assert_eq!(judge(&c, &name), Ok(()));
        let c = candidate(ADMIN, from(file(0, 0o644), Writers::Root));
        assert_eq!(judge(&c, &name), Ok(()));
    }

    #[test]
    fn a_pid_from_one_accounts_file_only_when_the_process_is_that_accounts() {
        let admins = from(file(ADMIN, 0o644), Writers::One(ADMIN));
        assert_eq!(judge(&candidate(ADMIN, admins.clone()), &name), Ok(()));
        let err = judge(&candidate(0, admins), &name).unwrap_err();
        assert_eq!(
            crate::report::words::unsignallable(&err),
            "pid 812 from /run/web.pid (owned by admin, mode 0644) is not the service: \
             `/usr/sbin/sshd -D` runs as root, and admin could have written the pid file; give \
             the service a pname or make root own the pid file"
        );
        let several = from(file(ADMIN, 0o644), Writers::Several(vec![ADMIN, BOB]));
        let err = judge(&candidate(ADMIN, several), &name).unwrap_err();
        assert!(
            crate::report::words::unsignallable(&err)
                .contains("runs as admin, and admin and bob could have written"),
            "{}",
            crate::report::words::unsignallable(&err)
        );
        let anyone = Writers::Anyone {
            path: "/run/web.pid".into(),
            mode: 0o666,
        };
        let err = judge(&candidate(ADMIN, from(file(ADMIN, 0o666), anyone)), &name).unwrap_err();
        assert!(
            crate::report::words::unsignallable(&err)
                .contains("anyone who can write /run/web.pid (mode 0666) could have written"),
            "{}",
            crate::report::words::unsignallable(&err)
        );
    }

    #[test]
    fn with_a_pname_the_process_must_match_it_whoever_wrote_the_file() {
        let re = regex::Regex::new("^python3 .*app\\.py").unwrap();
        let python = Candidate {
            cmdline: "python3 /srv/app.py",
            pname: Some(&re),
            ..candidate(
                0,
                from(file(ADMIN, 0o666), Writers::Several(vec![ADMIN, BOB])),
            )
        };
        assert_eq!(judge(&python, &name), Ok(()));
        let sshd = Candidate {
            pname: Some(&re),
            ..candidate(0, from(file(0, 0o644), Writers::Root))
        };
        assert_eq!(
            crate::report::words::unsignallable(&judge(&sshd, &name).unwrap_err()),
            "pid 812 from /run/web.pid (owned by root, mode 0644) is not the service: \
             `/usr/sbin/sshd -D` does not match pname \"^python3 .*app\\.py\"; fix the pname, \
             or what writes the pid file"
        );
    }

    /// A pattern that cannot be compiled alone (past regex's size limit, which a set of
    /// patterns, without their groups, may not reach) confirms nothing: not signalled.
    #[test]
    fn a_pname_that_does_not_compile_alone_confirms_no_pid() {
        let huge = crate::config::Pname::checked("^python3 app$|(?:(a)){150000}".into());
        let python = Candidate {
            cmdline: "python3 app",
            pname: Some(&huge),
            ..candidate(0, from(file(0, 0o644), Writers::Root))
        };
        assert!(matches!(
            judge(&python, &name),
            Err(Unsignallable::NotTheService(_))
        ));
    }
}
