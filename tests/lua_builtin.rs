//! The Lua library is part of the binary: a copy of it in a directory of its own, with no
//! `lua/` anywhere near it, checks and runs a config that uses the library; a module of the
//! same name in `settings.lua_path` overrides the built-in one.

mod support;

use std::net::TcpListener;
use support::*;

/// The binary, copied where no `lua/` directory is: what an install on another machine has.
/// Copied once for the tests of this file, before any of them starts a process: a copy still
/// open for writing (in a child forked meanwhile) could not be executed ("text file busy").
fn installed(_f: &Fixture) -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bin").join("autoheal");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_autoheal"), &exe).unwrap();
        (dir, exe)
    })
    .1
    .clone()
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_library_is_inside_the_binary() {
    let f = Fixture::new();
    let exe = installed(&f);
    let port = closed_port();
    f.config(&format!(
        "web:\n  pname: 'sleep 1000\\.{}1$'\n  dep:\n    - name: cache\n      lua: \
         return redis.ping{{host='127.0.0.1', port={port}}}\n  script: 'true'\n",
        f.tag
    ));
    let run = |args: &[&str]| {
        std::process::Command::new(&exe)
            .args(args)
            .arg("-c")
            .arg(f.path("conf.yaml"))
            .env_remove("AUTOHEAL_CONFIG")
            .current_dir(f.dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["status", "--state-dir", f.state_dir().to_str().unwrap()]);
    assert!(
        stdout(&out).contains(&format!(
            "waiting on cache lua (redis 127.0.0.1:{port}: connection refused)"
        )),
        "{}",
        stdout(&out)
    );
    // A module the library does not have names every place searched.
    f.config("web:\n  pname: x\n  check: return redsi.ping{}\n  script: 'true'\n");
    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no Lua module `redsi` (searched: the library built into autoheal)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_module_in_lua_path_overrides_the_built_in_one() {
    let f = Fixture::new();
    let exe = installed(&f);
    std::fs::create_dir(f.path("site")).unwrap();
    std::fs::write(
        f.path("site/redis.lua"),
        "local M = {}\nfunction M.ping() return false, 'the site redis module' end\nreturn M\n",
    )
    .unwrap();
    f.config(&format!(
        "settings:\n  lua_path: site\nweb:\n  pname: 'sleep 1000\\.{}1$'\n  dep:\n    - name: \
         cache\n      lua: return redis.ping{{}}\n  script: 'true'\n",
        f.tag
    ));
    let out = std::process::Command::new(&exe)
        .args(["status", "-c"])
        .arg(f.path("conf.yaml"))
        .arg("--state-dir")
        .arg(f.state_dir())
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("waiting on cache lua (the site redis module)"),
        "{}",
        stdout(&out)
    );
}
