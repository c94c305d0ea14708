//! Whether root may trust a file it is about to read: the config, a Lua directory, a module.
//!
//! autoheal runs as root and runs what these files say, so a file that someone else can change
//! is someone else's code run as root. [`check`] walks a path from `/`, one component at a time
//! (`lstat`, never `stat`), following each symlink itself (at most [`MAX_LINKS`]), and accepts
//! it only if nobody but root or the trusted uid can change what the path ends up naming:
//!
//! - every entry met (each directory on the path, each symlink, the final file or directory) is
//!   owned by root or the trusted uid: an owner can chmod, replace or rename it;
//! - no directory on the path is writable by its group or others, unless it has the sticky bit
//!   (`/tmp`, 1777): there only an entry's owner can rename or remove it, and the entry met next
//!   is itself held to the owner rule;
//! - the final file or directory is not writable by its group or others, sticky or not (a sticky
//!   `lua_path` would still let anyone add a module to it);
//! - a symlink is judged by where it sits (its directory, its owner) and by its target, which
//!   the walk then continues through.
//!
//! The anchors: OpenSSH's `safe_path` (owner root or the user, no group/other write, every
//! directory up to `/`), cron ignoring a crontab that group or others can write, and systemd's
//! `chase()` refusing an "unsafe transition" while it follows symlinks itself.
//!
//! What it must not do: decide when to enforce (the caller does: only when autoheal runs as
//! root, see [`enforced`]), read or open the file, or depend on anything higher in the crate.
//! The verdict is a typed [`Untrusted`] whose Display is the operator's message, with the fix.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// At most this many symlinks are followed on one path (Linux's own limit, MAXSYMLINKS).
pub const MAX_LINKS: usize = 40;

const GROUP_WRITE: u32 = 0o020;
const OTHERS_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// Whether the checks apply: only when autoheal runs as root (effective uid 0). A user running
/// autoheal reads its own files with its own rights, which nobody can raise by writing them.
pub fn enforced() -> bool {
    rustix::process::geteuid().is_root()
}

/// [`check`] as autoheal applies it: when it runs as root ([`enforced`]), with root as the one
/// trusted owner (root is then the effective uid); otherwise nothing is checked.
pub fn check_if_root(path: &Path) -> Result<(), Untrusted> {
    if enforced() { check(path, 0) } else { Ok(()) }
}

/// What the entry at fault is to the path that was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The file or directory the path names in the end (after every symlink).
    Target,
    /// A directory on the way to it.
    Dir,
    /// A symlink on the way to it (or the path itself, when it is one).
    Link,
}

/// One entry that fails the rules: what it is, who owns it, its mode, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The entry, as the walk reached it (symlinks before it resolved).
    pub at: PathBuf,
    /// Whether the entry is the checked path itself (not a directory on it, not a target).
    pub itself: bool,
    pub role: Role,
    /// Whether the entry is a directory (a `lua_path`, or one on the way).
    pub dir: bool,
    pub uid: u32,
    /// The owner's name, else `uid N`.
    pub owner: String,
    /// Permission bits, with setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owned by someone other than root or the trusted uid.
    pub foreign: bool,
    pub group_writable: bool,
    pub others_writable: bool,
}

/// Why a path is refused. Display is the whole message for the operator, fix included.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    /// An entry on the path fails the rules.
    #[error("{}", unsafe_message(.path, .fault))]
    Unsafe { path: PathBuf, fault: Fault },
    /// An entry could not be looked at (missing, not a directory, I/O error).
    #[error("refusing {}: cannot check {}: {}", .path.display(), .at.display(), io_text(.error))]
    Unreadable {
        path: PathBuf,
        at: PathBuf,
        error: std::io::Error,
    },
    /// More than [`MAX_LINKS`] symlinks on the way (a loop, most likely).
    #[error("refusing {}: more than {MAX_LINKS} symbolic links on its path (a loop?)", .path.display())]
    TooManyLinks { path: PathBuf },
}

impl Untrusted {
    /// Whether the path (or a directory on it) does not exist: nothing is there to trust or
    /// to read, and the caller says so in its own words.
    pub fn is_missing(&self) -> bool {
        matches!(self, Untrusted::Unreadable { error, .. }
            if error.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Accepts `path` iff nobody but root and `trusted_uid` can change what it names (see the
/// module doc for the rules). A relative path is taken from the current directory, whose own
/// path is walked as well.
pub fn check(path: &Path, trusted_uid: u32) -> Result<(), Untrusted> {
    walk(path, trusted_uid, |walk, at, meta, role| {
        walk.verdict(at, meta, role)
    })
}

/// Every entry the walk of `path` meets (see [`check`]), in order: each directory on the way
/// (from `/`), each symlink, and last the target, with its `lstat`. For a question other than
/// "may root read it": who could have written a pid file (`observe`).
/// The directories on the way are taken from `dirs` when an earlier walk of the same
/// observation met them (and added to it when not); the target is always read anew.
pub fn entries_with(
    path: &Path,
    dirs: &Dirs,
) -> Result<Vec<(PathBuf, std::fs::Metadata, Role)>, Untrusted> {
    let mut met = Vec::new();
    walk_with(path, 0, Some(dirs), |_, at, meta, role| {
        met.push((at.to_path_buf(), meta.clone(), role));
        Ok(())
    })?;
    Ok(met)
}

/// The directories that the walks of one observation have met, with their `lstat`: the pid
/// files of a host's services sit in a few directories, and each walk from `/` would otherwise
/// read the same ones again (five of the six `lstat`s of `/run/app/web/x.pid`). Kept for one
/// observation only, a few milliseconds: what a directory is may change between two
/// observations, and is read again then.
#[derive(Debug, Default)]
pub struct Dirs(std::cell::RefCell<std::collections::HashMap<PathBuf, std::fs::Metadata>>);

/// A directory of root's that only root may write in.
fn only_root(dir: &std::fs::Metadata) -> bool {
    dir.uid() == 0 && dir.mode() & 0o022 == 0
}

/// The walk itself: `visit` is called for every entry met (see [`entries`]).
fn walk(
    path: &Path,
    trusted_uid: u32,
    visit: impl FnMut(&Walk<'_>, &Path, &std::fs::Metadata, Role) -> Result<(), Untrusted>,
) -> Result<(), Untrusted> {
    walk_with(path, trusted_uid, None, visit)
}

/// [`walk`], the directories on the way from `dirs` when given (see [`Dirs`]).
fn walk_with(
    path: &Path,
    trusted_uid: u32,
    dirs: Option<&Dirs>,
    mut visit: impl FnMut(&Walk<'_>, &Path, &std::fs::Metadata, Role) -> Result<(), Untrusted>,
) -> Result<(), Untrusted> {
    let whole = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|error| Untrusted::Unreadable {
            path: path.to_path_buf(),
            at: PathBuf::from("."),
            error,
        })?;
        cwd.join(path)
    };
    let walk = Walk {
        path,
        whole: &whole,
        trusted_uid,
        dirs,
    };
    // What is left to walk, next component last. A symlink's target is pushed on top of it.
    let mut todo: Vec<OsString> = Vec::new();
    push(&mut todo, &whole);
    let mut cur = PathBuf::from("/");
    let root = walk.lstat_on_the_way(&cur, None)?;
    visit(&walk, &cur, &root, Role::Dir)?;
    // What `cur` is, when every directory from `/` down to it is one nobody but root could
    // replace (and it is known: not after a `..`): only then may an entry in it be kept in
    // `dirs`. One of root's under a directory of another account's could be swapped whole.
    let mut cur_meta = Some(root.clone());
    // Whether `cur` was judged as the target; `..` as the last step leaves a directory that was
    // judged only as one on the way.
    let mut judged = false;
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // `cur` has every symlink resolved, so its parent is the real one, judged already.
            cur.pop();
            cur_meta = None;
            judged = false;
            continue;
        }
        let next = cur.join(&name);
        let meta = if todo.is_empty() {
            walk.lstat(&next)?
        } else {
            walk.lstat_on_the_way(&next, cur_meta.as_ref())?
        };
        if meta.file_type().is_symlink() {
            // Its mode means nothing; its owner does (in a sticky directory, the owner can
            // replace it). Where it sits was judged with `cur`.
            visit(&walk, &next, &meta, Role::Link)?;
            links += 1;
            if links > MAX_LINKS {
                return Err(Untrusted::TooManyLinks {
                    path: path.to_path_buf(),
                });
            }
            let target =
                std::fs::read_link(&next).map_err(|error| walk.unreadable(&next, error))?;
            if target.is_absolute() {
                cur = PathBuf::from("/");
                cur_meta = Some(root.clone());
            }
            push(&mut todo, &target);
            judged = false;
            continue;
        }
        let role = if todo.is_empty() {
            Role::Target
        } else {
            Role::Dir
        };
        visit(&walk, &next, &meta, role)?;
        judged = role == Role::Target;
        cur = next;
        cur_meta = cur_meta.filter(only_root).map(|_| meta);
    }
    if !judged {
        let meta = walk.lstat(&cur)?;
        visit(&walk, &cur, &meta, Role::Target)?;
    }
    Ok(())
}

/// Pushes the components of `p` onto `todo` so that its first one is popped first (`/` and `.`
/// dropped: the caller restarts from `/` for an absolute path).
fn push(todo: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// One walk: the path asked about (as named, for messages; and absolute) and whom to trust.
struct Walk<'a> {
    path: &'a Path,
    whole: &'a Path,
    trusted_uid: u32,
    dirs: Option<&'a Dirs>,
}

impl Walk<'_> {
    fn unreadable(&self, at: &Path, error: std::io::Error) -> Untrusted {
        Untrusted::Unreadable {
            path: self.path.to_path_buf(),
            at: at.to_path_buf(),
            error,
        }
    }

    fn lstat(&self, at: &Path) -> Result<std::fs::Metadata, Untrusted> {
        std::fs::symlink_metadata(at).map_err(|e| self.unreadable(at, e))
    }

    /// The `lstat` of an entry on the way to the target: from [`Dirs`] when a walk of this
    /// observation met that directory already. Only a directory that nobody but root could
    /// replace is kept: `/`, or one in a directory (`parent`) of root's that only root may
    /// write, itself in one such, up to `/` (the walk passes no `parent` otherwise). Anywhere
    /// else (a sticky `/tmp`, a directory of another account's) it could turn into a symlink
    /// between two walks, and is read anew by each.
    fn lstat_on_the_way(
        &self,
        at: &Path,
        parent: Option<&std::fs::Metadata>,
    ) -> Result<std::fs::Metadata, Untrusted> {
        let Some(dirs) = self.dirs else {
            return self.lstat(at);
        };
        if let Some(meta) = dirs.0.borrow().get(at) {
            return Ok(meta.clone());
        }
        let meta = self.lstat(at)?;
        let root_alone = at == Path::new("/") || parent.is_some_and(only_root);
        if meta.is_dir() && root_alone {
            dirs.0.borrow_mut().insert(at.to_path_buf(), meta.clone());
        }
        Ok(meta)
    }

    /// The rules for one entry (see the module doc).
    fn verdict(&self, at: &Path, meta: &std::fs::Metadata, role: Role) -> Result<(), Untrusted> {
        let mode = meta.mode() & 0o7777;
        let uid = meta.uid();
        let foreign = uid != 0 && uid != self.trusted_uid;
        let writable = |bit| {
            role != Role::Link
                && mode & bit != 0
                // A sticky directory on the way may be shared (like /tmp): its entries keep
                // their owners, and the next one is held to the owner rule.
                && !(role == Role::Dir && mode & STICKY != 0)
        };
        let (group_writable, others_writable) = (writable(GROUP_WRITE), writable(OTHERS_WRITE));
        if !(foreign || group_writable || others_writable) {
            return Ok(());
        }
        Err(Untrusted::Unsafe {
            path: self.path.to_path_buf(),
            fault: Fault {
                itself: at == self.whole,
                at: at.to_path_buf(),
                role,
                dir: meta.is_dir(),
                uid,
                owner: user_name(uid).unwrap_or_else(|| format!("uid {uid}")),
                mode,
                foreign,
                group_writable,
                others_writable,
            },
        })
    }
}

/// "refusing P: it is writable by others (owner root, mode 0646); autoheal runs as root and
/// would run what anyone wrote into it. Fix: chmod o-w P".
fn unsafe_message(path: &Path, f: &Fault) -> String {
    let at = f.at.display();
    // The fix is pasted into a shell.
    let quoted = shell_word(&f.at);
    let subject = match f.role {
        Role::Target if f.itself => "it".to_string(),
        Role::Target => format!("its target {at}"),
        Role::Dir => format!("the directory {at} on its path"),
        Role::Link if f.itself => "the symlink itself".to_string(),
        Role::Link => format!("the symlink {at} on its path"),
    };
    let writers = match (f.group_writable, f.others_writable) {
        (true, true) => Some("its group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    };
    let problem = match (f.foreign, writers) {
        (true, Some(w)) => format!("is owned by {} and writable by {w}", f.owner),
        (true, None) => format!("is owned by {}", f.owner),
        (false, Some(w)) => format!("is writable by {w}"),
        // Not made by `check`, which reports only an entry with something wrong.
        (false, None) => "is not trusted".to_string(),
    };
    let who = if f.others_writable {
        "anyone".to_string()
    } else if f.foreign {
        f.owner.clone()
    } else {
        "its group".to_string()
    };
    let what = match f.role {
        Role::Link => format!("would follow it wherever {who} pointed it"),
        _ if f.dir => format!("would run what {who} put in it"),
        _ => format!("would run what {who} wrote into it"),
    };
    let mut fixes = Vec::new();
    if f.foreign {
        let h = if f.role == Role::Link { "-h " } else { "" };
        fixes.push(format!("chown {h}root {quoted}"));
    }
    if let Some(bits) = match (f.group_writable, f.others_writable) {
        (true, true) => Some("go-w"),
        (true, false) => Some("g-w"),
        (false, true) => Some("o-w"),
        (false, false) => None,
    } {
        fixes.push(format!("chmod {bits} {quoted}"));
    }
    // Who owns it and its mode, without saying the owner twice.
    let facts = if !f.foreign {
        format!("owner {}, mode {:04o}", f.owner, f.mode)
    } else if f.owner != format!("uid {}", f.uid) {
        format!("uid {}, mode {:04o}", f.uid, f.mode)
    } else {
        format!("mode {:04o}", f.mode)
    };
    // A chown makes root trust what is there now, which its owner may have put there.
    let caution = if f.foreign {
        let what = if f.role == Role::Link {
            "where it points"
        } else {
            "what is there"
        };
        format!(" (first check {what}: {who} could have changed it)")
    } else {
        String::new()
    };
    format!(
        "refusing {}: {subject} {problem} ({facts}); autoheal runs as root and {what}. Fix: \
         {}{caution}",
        path.display(),
        fixes.join(" && ")
    )
}

/// `p` as one shell word: as it is when it is plain, else in single quotes.
fn shell_word(p: &Path) -> String {
    let s = p.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// "no such file or directory": the I/O error without its "(os error N)".
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The name of `uid`, for the message.
fn user_name(uid: u32) -> Option<String> {
    if uid == 0 {
        return Some("root".into());
    }
    crate::users::name_of(uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, lchown, symlink};

    /// A uid no account has: a stranger's files, made by root with chown.
    const STRANGER: u32 = 3_999_999;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn owner() -> String {
        user_name(me()).unwrap_or_else(|| format!("uid {}", me()))
    }

    /// A private directory under /tmp (1777: sticky, so trusted on the way).
    fn tmp() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("trust")
            .tempdir_in("/tmp")
            .unwrap()
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn file(p: &Path, mode: u32) -> PathBuf {
        std::fs::write(p, "x").unwrap();
        chmod(p, mode);
        p.to_path_buf()
    }

    fn dir(p: &Path, mode: u32) -> PathBuf {
        std::fs::create_dir(p).unwrap();
        chmod(p, mode);
        p.to_path_buf()
    }

    fn fault(r: Result<(), Untrusted>) -> Fault {
        match r {
            Err(Untrusted::Unsafe { fault, .. }) => fault,
            other => panic!("expected a fault, got {other:?}"),
        }
    }

    /// Walks that share their directories see what walks of their own see, and the target
    /// of each is read anew: a pid file chmod'ed between two walks shows its new mode.
    #[test]
    fn walks_that_share_directories_read_each_target_anew() {
        // Under the build's own directory: root's from `/` down, where CI builds as root.
        let t = tempfile::Builder::new()
            .prefix("trust")
            .tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
            .unwrap();
        let d = dir(&t.path().join("run"), 0o755);
        let (a, b) = (file(&d.join("a.pid"), 0o644), file(&d.join("b.pid"), 0o644));
        let shown = |met: Vec<(PathBuf, std::fs::Metadata, Role)>| -> Vec<(PathBuf, u32, Role)> {
            met.into_iter()
                .map(|(p, m, r)| (p, m.mode() & 0o7777, r))
                .collect()
        };
        let dirs = Dirs::default();
        let first = shown(entries_with(&a, &dirs).unwrap());
        assert_eq!(first, shown(entries_with(&a, &Dirs::default()).unwrap()));
        assert_eq!(first.last().unwrap(), &(a.clone(), 0o644, Role::Target));
        // Kept only if nobody but root could replace it: every directory above it is root's
        // and only root may write in it.
        let root_alone = d
            .ancestors()
            .skip(1)
            .all(|a| std::fs::symlink_metadata(a).is_ok_and(|m| only_root(&m)));
        assert_eq!(dirs.0.borrow().contains_key(&d), root_alone);
        chmod(&a, 0o666);
        let again = shown(entries_with(&a, &dirs).unwrap());
        assert_eq!(again.last().unwrap(), &(a.clone(), 0o666, Role::Target));
        let other = shown(entries_with(&b, &dirs).unwrap());
        assert_eq!(other, shown(entries_with(&b, &Dirs::default()).unwrap()));
    }

    /// A directory that another account could replace (here: in a directory anyone may
    /// write) is read anew by each walk: one swapped for a symlink between two walks of one
    /// observation is seen as the link it now is, its owner and target with it.
    #[test]
    fn a_directory_others_could_replace_is_read_anew_by_each_walk() {
        let t = tmp();
        let shared = dir(&t.path().join("shared"), 0o1777);
        let d = dir(&shared.join("d"), 0o755);
        file(&d.join("a.pid"), 0o644);
        file(&d.join("b.pid"), 0o644);
        let elsewhere = dir(&t.path().join("elsewhere"), 0o755);
        file(&elsewhere.join("b.pid"), 0o644);
        let dirs = Dirs::default();
        entries_with(&d.join("a.pid"), &dirs).unwrap();
        assert!(!dirs.0.borrow().contains_key(&d));
        std::fs::rename(&d, shared.join("d.old")).unwrap();
        symlink(&elsewhere, &d).unwrap();
        let met = entries_with(&d.join("b.pid"), &dirs).unwrap();
        assert!(
            met.iter().any(|(p, _, r)| *p == d && *r == Role::Link),
            "{met:?}"
        );
        assert_eq!(met.last().unwrap().0, elsewhere.join("b.pid"));
    }

    /// One of root's inside a directory of another account's could be swapped whole (renamed
    /// away, another of root's put in its place): nothing under it is shared between walks.
    #[test]
    fn nothing_under_another_accounts_directory_is_shared_between_walks() {
        if me() != 0 {
            return;
        }
        let t = tmp();
        let home = dir(&t.path().join("alice"), 0o755);
        lchown(&home, Some(STRANGER), Some(STRANGER)).unwrap();
        let x = dir(&home.join("x"), 0o755);
        dir(&x.join("d"), 0o755);
        file(&x.join("d/a.pid"), 0o644);
        let y = dir(&home.join("y"), 0o755);
        let theirs = dir(&t.path().join("theirs"), 0o755);
        file(&theirs.join("b.pid"), 0o644);
        symlink(&theirs, y.join("d")).unwrap();
        let dirs = Dirs::default();
        entries_with(&x.join("d/a.pid"), &dirs).unwrap();
        assert!(!dirs.0.borrow().contains_key(&x.join("d")));
        std::fs::rename(&x, home.join("x.old")).unwrap();
        std::fs::rename(&y, &x).unwrap();
        let met = entries_with(&x.join("d/b.pid"), &dirs).unwrap();
        assert!(
            met.iter()
                .any(|(p, _, r)| *p == x.join("d") && *r == Role::Link),
            "{met:?}"
        );
        assert_eq!(met.last().unwrap().0, theirs.join("b.pid"));
    }

    #[test]
    fn private_files_and_dirs_are_trusted() {
        let t = tmp();
        let d = dir(&t.path().join("d"), 0o755);
        let f = file(&d.join("f"), 0o644);
        assert!(check(&f, me()).is_ok());
        assert!(check(&d, me()).is_ok());
        assert!(check(Path::new("/"), me()).is_ok());
        // `.` and `..` are walked as the kernel does.
        assert!(check(&d.join("./f"), me()).is_ok());
        assert!(check(&d.join("../d/f"), me()).is_ok());
    }

    #[test]
    fn a_file_others_can_write_is_refused_with_its_fix() {
        let t = tmp();
        let f = file(&t.path().join("conf.yaml"), 0o666);
        let e = check(&f, me()).unwrap_err();
        let f = f.display();
        assert_eq!(
            e.to_string(),
            format!(
                "refusing {f}: it is writable by its group and others (owner {}, mode 0666); \
                 autoheal runs as root and would run what anyone wrote into it. Fix: chmod \
                 go-w {f}",
                owner()
            )
        );
    }

    #[test]
    fn a_file_its_group_can_write_is_refused() {
        let t = tmp();
        let f = file(&t.path().join("conf.yaml"), 0o664);
        let e = check(&f, me()).unwrap_err();
        assert!(
            e.to_string().ends_with(&format!(
                "it is writable by its group (owner {}, mode 0664); autoheal runs as root and \
                 would run what its group wrote into it. Fix: chmod g-w {}",
                owner(),
                f.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn a_directory_on_the_path_others_can_write_is_refused_unless_sticky() {
        let t = tmp();
        let open = dir(&t.path().join("open"), 0o777);
        let f = file(&open.join("conf.yaml"), 0o644);
        let got = fault(check(&f, me()));
        assert_eq!((got.at.as_path(), got.role), (open.as_path(), Role::Dir));
        assert!(got.others_writable && !got.foreign);
        assert!(check(&f, me()).unwrap_err().to_string().contains(&format!(
            "the directory {} on its path is writable by its group and others (owner {}, mode 0777)",
            open.display(),
            owner()
        )),);
        // Sticky, like /tmp: its entries keep their owners, so the way through it is safe...
        chmod(&open, 0o1777);
        assert!(check(&f, me()).is_ok());
        // ... but a sticky directory is never a trusted target: anyone can add to it.
        let got = fault(check(&open, me()));
        assert_eq!(got.role, Role::Target);
        assert!(got.itself && got.others_writable);
        // Also when the path ends on it by `..`.
        let sub = dir(&open.join("sub"), 0o755);
        assert_eq!(fault(check(&sub.join(".."), me())).role, Role::Target);
    }

    #[test]
    fn a_file_or_directory_a_stranger_owns_is_refused() {
        if !enforced() {
            eprintln!("note: chown needs root; ownership cases skipped");
            return;
        }
        let t = tmp();
        let f = file(&t.path().join("conf.yaml"), 0o644);
        std::os::unix::fs::chown(&f, Some(STRANGER), None).unwrap();
        let e = check(&f, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "refusing {f}: it is owned by uid {STRANGER} (mode 0644); \
                 autoheal runs as root and would run what uid {STRANGER} wrote into it. Fix: \
                 chown root {f} (first check what is there: uid {STRANGER} could have changed it)",
                f = f.display()
            )
        );
        // The trusted uid is trusted as root is.
        assert!(check(&f, STRANGER).is_ok());

        let d = dir(&t.path().join("d"), 0o755);
        let g = file(&d.join("conf.yaml"), 0o644);
        std::os::unix::fs::chown(&d, Some(STRANGER), None).unwrap();
        let got = fault(check(&g, 0));
        assert_eq!(
            (got.at, got.role, got.foreign),
            (d.clone(), Role::Dir, true)
        );
        // In a sticky directory, an entry a stranger owns is the stranger's to replace.
        chmod(&d, 0o1777);
        std::os::unix::fs::chown(&d, Some(0), None).unwrap();
        std::os::unix::fs::chown(&g, Some(STRANGER), None).unwrap();
        let got = fault(check(&g, 0));
        assert_eq!((got.role, got.foreign), (Role::Target, true));
        // Both wrong at once: both fixes.
        chmod(&g, 0o646);
        assert!(check(&g, 0).unwrap_err().to_string().contains(&format!(
            "Fix: chown root {g} && chmod o-w {g}",
            g = g.display()
        )));
    }

    #[test]
    fn a_symlink_is_judged_by_where_it_sits_and_by_its_target() {
        let t = tmp();
        let safe = dir(&t.path().join("safe"), 0o755);
        let f = file(&safe.join("conf.yaml"), 0o644);
        // A link in a directory anyone can write: anyone can point it elsewhere.
        let open = dir(&t.path().join("open"), 0o777);
        symlink(&f, open.join("conf.yaml")).unwrap();
        let got = fault(check(&open.join("conf.yaml"), me()));
        assert_eq!((got.at, got.role), (open.clone(), Role::Dir));
        // A trusted link to a file anyone can write: the target is what is read.
        let bad = file(&t.path().join("bad.yaml"), 0o646);
        symlink(&bad, safe.join("link.yaml")).unwrap();
        let e = check(&safe.join("link.yaml"), me()).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "its target {} is writable by others",
                bad.display()
            )),
            "{e}"
        );
        // A relative link, with `..`, through a directory link.
        symlink("../safe/conf.yaml", safe.join("rel.yaml")).unwrap();
        symlink("safe", t.path().join("alias")).unwrap();
        assert!(check(&t.path().join("alias/rel.yaml"), me()).is_ok());
        // A link to a directory anyone can write, then a file in it.
        symlink(&open, safe.join("to-open")).unwrap();
        let inner = file(&open.join("x.lua"), 0o644);
        let got = fault(check(&safe.join("to-open/x.lua"), me()));
        assert_eq!((got.at, got.role), (open.clone(), Role::Dir));
        assert!(inner.exists());
    }

    #[test]
    fn a_symlink_a_stranger_owns_in_a_sticky_directory_is_refused() {
        if !enforced() {
            eprintln!("note: lchown needs root; skipped");
            return;
        }
        let t = tmp();
        let f = file(&t.path().join("conf.yaml"), 0o644);
        let shared = dir(&t.path().join("shared"), 0o1777);
        let link = shared.join("conf.yaml");
        symlink(&f, &link).unwrap();
        assert!(check(&link, 0).is_ok());
        lchown(&link, Some(STRANGER), None).unwrap();
        let e = check(&link, 0).unwrap_err();
        let got = fault(check(&link, 0));
        assert_eq!((got.role, got.itself), (Role::Link, true));
        assert!(
            e.to_string().ends_with(&format!(
                "Fix: chown -h root {} (first check where it points: uid {STRANGER} could \
                     have changed it)",
                link.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn the_fix_is_one_shell_word() {
        let t = tmp();
        let f = file(&t.path().join("my conf's.yaml"), 0o646);
        let e = check(&f, me()).unwrap_err().to_string();
        let dir = t.path().display();
        assert!(
            e.ends_with(&format!("Fix: chmod o-w '{dir}/my conf'\\''s.yaml'")),
            "{e}"
        );
    }

    #[test]
    fn a_symlink_loop_and_a_missing_file_are_refused() {
        let t = tmp();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        assert!(matches!(
            check(&t.path().join("a"), me()),
            Err(Untrusted::TooManyLinks { .. })
        ));
        let e = check(&t.path().join("none/conf.yaml"), me()).unwrap_err();
        assert!(e.is_missing(), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "refusing {}: cannot check {}: no such file or directory",
                t.path().join("none/conf.yaml").display(),
                t.path().join("none").display()
            )
        );
    }
}
