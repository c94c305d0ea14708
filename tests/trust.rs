//! What root reads: as root (these tests run as root, as CI does), a config, a `lua_path` or a
//! module that someone else could change is refused with exit 2, the file, its owner, its mode
//! and the fix, and nothing is started. Real files, the real binary; the stranger is the
//! throwaway account `autoheal-test` (support::test_user).

mod support;

use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{Fixture, stderr, stdout, test_user};

/// A service that is dead, whose script leaves `started` behind: the file proves a start.
/// One pass, so that an accepted run ends at once.
const CONFIG: &str = "settings:\n  converge: 0\nweb:\n  pname: \"nothing-matches-{tag}\"\n  script: touch {dir}/started\n";

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(p: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir(p).unwrap();
    chmod(p, mode);
    p.to_path_buf()
}

/// `autoheal CMD -c CONFIG --state-dir state` for run, status and check (check has no state
/// dir), each as every command loads the config.
fn commands(f: &Fixture, config: &Path) -> Vec<(&'static str, Output)> {
    let c = config.display().to_string();
    let state = f.state_dir().display().to_string();
    vec![
        ("run", f.autoheal(&["run", "-c", &c, "--state-dir", &state])),
        (
            "status",
            f.autoheal(&["status", "-c", &c, "--state-dir", &state]),
        ),
        ("check", f.autoheal(&["check", "-c", &c])),
    ]
}

/// Every command refuses `config` with exit 2 and exactly `message` (after `autoheal: `), and
/// nothing was started.
fn assert_refused(f: &Fixture, config: &Path, message: &str) {
    for (cmd, out) in commands(f, config) {
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("autoheal: {message}\n"), "{cmd}");
        assert!(
            !stdout(&out).contains("ok"),
            "{cmd} said ok: {}",
            stdout(&out)
        );
    }
    assert!(!f.path("started").exists(), "a refused config started web");
}

#[test]
fn a_world_writable_config_is_refused_by_every_command() {
    let f = Fixture::new();
    let conf = f.config(CONFIG);
    chmod(&conf, 0o666);
    let c = conf.display();
    assert_refused(
        &f,
        &conf,
        &format!(
            "refusing {c}: it is writable by its group and others (owner root, mode 0666); \
             autoheal runs as root and would run what anyone wrote into it. Fix: chmod go-w {c}"
        ),
    );
    // order and reset load it as the others do.
    for args in [vec!["order"], vec!["reset", "web"]] {
        let mut a = args.clone();
        a.extend(["-c", "{dir}/conf.yaml"]);
        let out = f.autoheal(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(&format!("autoheal: refusing {c}: ")));
    }
    // `run` said it in the state dir's log (never silent), and kept nothing of the file.
    let log = std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap();
    assert!(
        log.contains(&format!("autoheal: config {c} does not load: refusing {c}")),
        "{log}"
    );
    assert!(
        !f.state_dir().join("last-good.yaml").exists(),
        "a refused config was kept"
    );
}

#[test]
fn a_group_writable_config_is_refused() {
    let f = Fixture::new();
    let conf = f.config(CONFIG);
    chmod(&conf, 0o664);
    let c = conf.display();
    assert_refused(
        &f,
        &conf,
        &format!(
            "refusing {c}: it is writable by its group (owner root, mode 0664); autoheal runs \
             as root and would run what its group wrote into it. Fix: chmod g-w {c}"
        ),
    );
}

#[test]
fn a_config_another_user_owns_is_refused() {
    let (name, uid, gid) = test_user();
    let f = Fixture::new();
    let conf = f.config(CONFIG);
    chown(&conf, Some(uid), Some(gid)).unwrap();
    let c = conf.display();
    assert_refused(
        &f,
        &conf,
        &format!(
            "refusing {c}: it is owned by {name} (uid {uid}, mode 0644); autoheal runs as root \
             and would run what {name} wrote into it. Fix: chown root {c} (first check what is \
             there: {name} could have changed it)"
        ),
    );
}

#[test]
fn a_config_in_a_directory_another_user_owns_is_refused() {
    let (name, uid, gid) = test_user();
    let f = Fixture::new();
    let dir = mkdir(&f.path("etc"), 0o755);
    let conf = dir.join("conf.yaml");
    std::fs::write(&conf, f.expand(CONFIG)).unwrap();
    chown(&dir, Some(uid), Some(gid)).unwrap();
    let (c, d) = (conf.display(), dir.display());
    assert_refused(
        &f,
        &conf,
        &format!(
            "refusing {c}: the directory {d} on its path is owned by {name} (uid {uid}, mode \
             0755); autoheal runs as root and would run what {name} put in it. Fix: chown \
             root {d} (first check what is there: {name} could have changed it)"
        ),
    );
}

#[test]
fn a_symlinked_config_in_a_world_writable_directory_is_refused() {
    let f = Fixture::new();
    let real = f.config(CONFIG);
    // Anyone could point the link elsewhere: its directory is writable by all, not sticky.
    let open = mkdir(&f.path("open"), 0o777);
    let link = open.join("conf.yaml");
    symlink(&real, &link).unwrap();
    let (l, o) = (link.display(), open.display());
    assert_refused(
        &f,
        &link,
        &format!(
            "refusing {l}: the directory {o} on its path is writable by its group and others \
             (owner root, mode 0777); autoheal runs as root and would run what anyone put in \
             it. Fix: chmod go-w {o}"
        ),
    );
}

#[test]
fn a_symlinked_config_whose_target_is_untrusted_is_refused() {
    let f = Fixture::new();
    let real = f.path("real.yaml");
    std::fs::write(&real, f.expand(CONFIG)).unwrap();
    chmod(&real, 0o646);
    let link = f.path("conf.yaml");
    symlink("real.yaml", &link).unwrap();
    let (l, r) = (link.display(), real.display());
    assert_refused(
        &f,
        &link,
        &format!(
            "refusing {l}: its target {r} is writable by others (owner root, mode 0646); \
             autoheal runs as root and would run what anyone wrote into it. Fix: chmod o-w {r}"
        ),
    );
}

#[test]
fn a_config_in_a_private_tempdir_under_tmp_is_accepted() {
    // tempdir: root's, 0700, in /tmp (root's, 1777: sticky, so the way through it is safe).
    let f = Fixture::new();
    assert!(f.dir.path().starts_with("/tmp"));
    let conf = f.config(CONFIG);
    // A symlink to it from a root-owned directory is as good.
    let etc = mkdir(&f.path("etc"), 0o755);
    symlink(&conf, etc.join("conf.yaml")).unwrap();
    let out = f.autoheal(&["check", "-c", "{dir}/etc/conf.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("1 services, 0 deps, ok\n"));
    let out = f.run();
    assert_ne!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(f.path("started").exists(), "web was not started");
}

/// A config with `lua_path: lua` and a dep `lua:` chunk, plus a second service `other` that
/// needs nothing (started: `other-started`).
fn lua_config(f: &Fixture, dep_lua: &str) -> PathBuf {
    f.config(&format!(
        "settings:\n  converge: 0\n  lua_path: lua\nweb:\n  pname: \"nothing-matches-{{tag}}\"\n  \
         script: touch {{dir}}/started\n  dep:\n    - name: site\n      lua: {dep_lua}\nother:\n  \
         pname: \"nothing-either-{{tag}}\"\n  script: touch {{dir}}/other-started\n"
    ))
}

/// A module that, if it ever ran, would leave `lua-ran` behind.
fn module(f: &Fixture) -> String {
    f.expand("exec(\"touch {dir}/lua-ran\")\nreturn { ok = function() return true end }\n")
}

#[test]
fn a_world_writable_lua_path_is_refused() {
    let f = Fixture::new();
    let lua = mkdir(&f.path("lua"), 0o777);
    std::fs::write(lua.join("site.lua"), module(&f)).unwrap();
    let conf = lua_config(&f, "site.ok()");
    let d = lua.display();
    assert_refused(
        &f,
        &conf,
        &format!(
            "refusing {d}: it is writable by its group and others (owner root, mode 0777); \
             autoheal runs as root and would run what anyone put in it. Fix: chmod go-w {d}"
        ),
    );
    assert!(!f.path("other-started").exists());
    assert!(!f.path("lua-ran").exists());
}

#[test]
fn a_module_another_user_owns_is_refused_and_never_runs() {
    let (name, uid, gid) = test_user();
    let f = Fixture::new();
    let lua = mkdir(&f.path("lua"), 0o755);
    let site = lua.join("site.lua");
    std::fs::write(&site, module(&f)).unwrap();
    chown(&site, Some(uid), Some(gid)).unwrap();
    let refusal = format!(
        "refusing {s}: it is owned by {name} (uid {uid}, mode 0644); autoheal runs as root and \
         would run what {name} wrote into it. Fix: chown root {s} (first check what is there: \
         {name} could have changed it)",
        s = site.display()
    );

    // Named in the file: `check` (and so every command) finds it before anything runs.
    lua_config(&f, "site.ok()");
    let out = f.autoheal(&["check", "-c", "{dir}/conf.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("/conf.yaml:9: web.dep[site].lua: {refusal}\n")),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    let out = f.run();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&refusal), "{}", stderr(&out));
    assert!(!f.path("started").exists() && !f.path("other-started").exists());

    // Named only at run time (no literal require for check to see): `require` refuses it
    // right before reading it. That chunk fails; the tick goes on with the rest.
    lua_config(&f, "'local m = \"si\" .. \"te\"; return require(m).ok()'");
    let out = f.autoheal(&["check", "-c", "{dir}/conf.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(f.path("other-started").exists(), "the tick stopped");
    assert!(!f.path("started").exists(), "web started on a refused dep");
    let log = std::fs::read_to_string(f.state_dir().join("autoheal.log")).unwrap();
    assert!(log.contains(&refusal), "{log}");

    assert!(!f.path("lua-ran").exists(), "the refused module ran");
}
