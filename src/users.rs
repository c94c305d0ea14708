//! The user database (through NSS, as a script will need it): who a name or a uid is, with the
//! groups and the home and shell a script run as that user gets. One place for the lookups
//! that exec (switching user), observe (a process's account), trust and state (naming a
//! file's owner in a message) all need; it depends on nothing else in the crate.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A user to run a script as, resolved before forking (nothing in the child may allocate or
/// read the user database).
#[derive(Debug, Clone, PartialEq)]
pub struct UserIds {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, including `gid`, as `getgrouplist` reports them.
    pub groups: Vec<u32>,
    pub home: PathBuf,
    /// Its login shell (`/bin/sh` when the entry has none), for `SHELL`.
    pub shell: PathBuf,
}

/// Whether `name` is a user of this host.
pub fn exists(name: &str) -> bool {
    by_name(name).is_ok()
}

/// The name of `uid`, if the user database knows it.
pub fn name_of(uid: u32) -> Option<String> {
    by_uid(uid).ok().map(|u| u.name)
}

/// The uid of the user `name`, if it exists.
pub fn uid_of(name: &str) -> Option<u32> {
    by_name(name).ok().map(|u| u.uid)
}

/// The user database's entry of the user `name` (through NSS), with its groups.
pub fn by_name(name: &str) -> Result<UserIds, String> {
    let cname =
        CString::new(name).map_err(|_| format!("user {name:?}: a user name cannot contain NUL"))?;
    passwd(&format!("user {name}"), |pwd, buf, result| {
        // SAFETY: every pointer is valid for the call and `buf.len()` is its real length.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

/// The user database's entry of `uid` (for the environment of a script run as autoheal's own
/// user, and to name the owner of a file in a message).
pub fn by_uid(uid: u32) -> Result<UserIds, String> {
    passwd(&format!("uid {uid}"), |pwd, buf, result| {
        // SAFETY: every pointer is valid for the call and `buf.len()` is its real length.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

/// One `getpw*_r` call (`call(pwd, buf, result)`), its buffer grown as it asks, and the entry
/// it found with its supplementary groups.
fn passwd(
    who: &str,
    call: impl Fn(&mut libc::passwd, &mut [libc::c_char], &mut *mut libc::passwd) -> libc::c_int,
) -> Result<UserIds, String> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids) for getpw*_r to fill.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    loop {
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "{who}: cannot read the user database: {}",
                io::Error::from_raw_os_error(rc)
            ));
        }
        break;
    }
    if result.is_null() {
        return Err(format!("{who} does not exist on this host"));
    }
    // SAFETY: getpw*_r succeeded, so each non-null field points into `buf`, NUL-terminated.
    let text = |p: *const libc::c_char| {
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
    };
    let path = |p| text(p).map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(&b)));
    let name = text(pwd.pw_name).unwrap_or_default();
    let cname = CString::new(name.clone()).unwrap_or_default();
    let (uid, gid) = (pwd.pw_uid, pwd.pw_gid);
    let groups =
        group_list(&cname, gid).map_err(|e| format!("{who}: cannot list its groups: {e}"))?;
    Ok(UserIds {
        name: String::from_utf8_lossy(&name).into_owned(),
        uid,
        gid,
        groups,
        home: path(pwd.pw_dir).unwrap_or_else(|| PathBuf::from("/")),
        shell: path(pwd.pw_shell)
            .filter(|s| !s.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("/bin/sh")),
    })
}

fn group_list(name: &CStr, gid: u32) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..8 {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: `groups` holds `n` writable entries; glibc writes at most `n` and sets `n` to
        // the number it has (or needs, when it returns -1).
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        groups.resize(n.max(groups.len() * 2), 0);
    }
    Err(io::Error::other("getgrouplist kept asking for more room"))
}
