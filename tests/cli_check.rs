//! The command line of `check`: summary, exit codes, where the config comes from.

use assert_cmd::Command;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn autoheal() -> Command {
    let mut c = Command::cargo_bin("autoheal").unwrap();
    c.env_remove("AUTOHEAL_CONFIG").current_dir(root());
    c
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_valid_prints_a_summary_and_exits_0() {
    let out = autoheal()
        .args(["check", "-c", "tests/good/original.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The original tool's file works unchanged, with a warning where its scripts start a
    // service as `admin` (`sudo -u admin`): only root's processes would count without
    // `process_user: admin`.
    assert_eq!(
        stdout(&out),
        "tests/good/original.yaml: 2 services, 2 deps, ok (2 warnings)\n"
    );
    assert_eq!(
        stderr(&out).matches("add `process_user: admin`").count(),
        2,
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_examples() {
    for (file, summary) in [
        (
            "examples/conf.yaml",
            "examples/conf.yaml: 3 services, 2 deps, ok\n",
        ),
        (
            "examples/full.yaml",
            "examples/full.yaml: 3 services, 5 deps, ok\n",
        ),
        (
            "examples/lua.yaml",
            "examples/lua.yaml: 4 services, 6 deps, ok\n",
        ),
    ] {
        let out = autoheal().args(["check", "-c", file]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        assert_eq!(stdout(&out), summary);
    }
}

#[test]
fn check_invalid_lists_every_error_and_exits_2() {
    let out = autoheal()
        .args(["check", "-c", "tests/bad/three_errors.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("tests/bad/three_errors.yaml:2:3: web: unknown key `pidfile`"),
        "{err}"
    );
    assert!(
        err.contains("tests/bad/three_errors.yaml:6:13: web: port 99999 is out of range"),
        "{err}"
    );
    assert!(
        err.contains(
            "tests/bad/three_errors.yaml:9:10: api: `pname` is not a valid regular expression"
        ),
        "{err}"
    );
    assert!(
        err.contains("3 errors in tests/bad/three_errors.yaml; nothing was started or changed."),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn config_path_from_environment() {
    let out = autoheal()
        .env("AUTOHEAL_CONFIG", "tests/good/original.yaml")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("tests/good/original.yaml: "));
    // -c wins over the environment.
    let out = autoheal()
        .env("AUTOHEAL_CONFIG", "tests/bad/cycle.yaml")
        .args(["check", "-c", "examples/conf.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn missing_config_names_the_default_path() {
    if std::path::Path::new("/etc/autoheal/conf.yaml").exists() {
        return; // this host has a real config; the default path is then not missing
    }
    let out = autoheal().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("/etc/autoheal/conf.yaml: cannot read the config: no such file"),
        "{}",
        stderr(&out)
    );
}

/// `AUTOHEAL_CONFIG=` (set but empty) is as if unset: the default path, not a usage error.
#[test]
fn empty_config_variable_falls_back_to_the_default_path() {
    let out = autoheal()
        .env("AUTOHEAL_CONFIG", "")
        .arg("check")
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(!err.contains("a value is required"), "{err}");
    if std::path::Path::new("/etc/autoheal/conf.yaml").exists() {
        assert!(
            text.starts_with("/etc/autoheal/conf.yaml: ")
                || err.starts_with("/etc/autoheal/conf.yaml:"),
            "{text}{err}"
        );
    } else {
        assert_eq!(out.status.code(), Some(2));
        assert!(
            err.starts_with("/etc/autoheal/conf.yaml: cannot read the config: no such file"),
            "{err}"
        );
    }
    // -c still wins over an empty variable.
    let out = autoheal()
        .env("AUTOHEAL_CONFIG", "")
        .args(["check", "-c", "examples/conf.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let out = autoheal().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = autoheal().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for word in ["run", "check", "status", "reset", "Exit codes"] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
}

#[test]
fn order_prints_the_levels_of_the_recovery() {
    let out = autoheal()
        .args(["order", "-c", "examples/conf.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Recovery order for examples/conf.yaml (3 services, 3 levels): each level starts once the one before is up;\n\
         services of one level start in parallel. Remote deps are waited on as they are.\n\
         level 0  middleware\n\
         level 1  nginx        after: middleware (local, by its health address)\n\
         level 2  web_service  after: nginx (local, by its health address)\n"
    );
    let out = autoheal()
        .args(["order", "-c", "examples/full.yaml"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("(3 services, 2 levels)"), "{text}");
    assert!(text.contains("level 1  web    after: nginx 127.0.0.1:80 (external), middleware http://127.0.0.7/check.htm (external), rabbit (lua check), cache, queue"), "{text}");
    // A bad file is refused as by every command.
    let out = autoheal()
        .args(["order", "-c", "tests/bad/cycle.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn lua_syntax_errors_are_listed_with_the_other_errors() {
    // A structural error (the unknown key) and a chunk that does not compile: one run of
    // `check` lists both, in file order, each at its conf.yaml line.
    let out = autoheal()
        .args(["check", "-c", "tests/bad/lua_and_yaml_errors.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let unknown = "tests/bad/lua_and_yaml_errors.yaml:3:3: web: unknown key `pidfile`";
    let syntax = "tests/bad/lua_and_yaml_errors.yaml:6: web.check: \
                  ')' expected (to close '(' at line 5) near <eof>";
    let (Some(a), Some(b)) = (err.find(unknown), err.find(syntax)) else {
        panic!("both errors expected:\n{err}");
    };
    assert!(a < b, "in file order:\n{err}");
    assert!(
        err.contains("2 errors in tests/bad/lua_and_yaml_errors.yaml"),
        "{err}"
    );
}

/// Every file of examples/ and tests/good/ passes `check`.
#[test]
fn check_accepts_every_example_and_good_file() {
    let mut files = Vec::new();
    for dir in ["examples", "tests/good"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                files.push(format!(
                    "{dir}/{}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let out = autoheal().args(["check", "-c", file]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        // The original tool's file warns (see check_valid_prints_a_summary_and_exits_0).
        let ok = if file == "tests/good/original.yaml" {
            ", ok (2 warnings)\n"
        } else {
            ", ok\n"
        };
        assert!(stdout(&out).ends_with(ok), "{file}: {}", stdout(&out));
    }
    let out = autoheal()
        .args(["check", "-c", "tests/good/lua_globals.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "tests/good/lua_globals.yaml: 1 services, 5 deps, ok\n"
    );
}

/// Lua that cannot work is rejected by `check` (and so by every command's load), at its
/// conf.yaml line, with what to do.
#[test]
fn check_rejects_lua_that_cannot_work() {
    let module = "tests/bad/lua_misspelt_module.yaml";
    let out = autoheal().args(["check", "-c", module]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "{module}:3: web.check: no Lua module `redsi` (searched: "
        )),
        "{err}"
    );
    assert!(
        err.contains(" 3 | return redsi.ping{port=6379}\n  = help: did you mean `redis`?\n"),
        "{err}"
    );

    let global = "tests/bad/lua_unknown_global.yaml";
    let out = autoheal().args(["check", "-c", global]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "{global}:5: web.dep[probe].lua: unknown global `tcpprobe`\n   |\n 5 | tcpprobe(\"127.0.0.1\", 1)\n  = help: did you mean `tcp_probe`?\n"
        )),
        "{err}"
    );
    // A local read outside its loop: the help says so.
    assert!(
        err.contains(&format!(
            "{global}:12: web.dep[queue].lua: unknown global `port`\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "  = help: `port` is a local declared at line 8, out of scope here (its block has \
             ended); declare it before that block to read it after\n"
        ),
        "{err}"
    );
    assert!(err.contains("2 errors in "), "{err}");
    // Every command loads through the same check.
    let out = autoheal().args(["order", "-c", global]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown global `tcpprobe`"),
        "{}",
        stderr(&out)
    );
}

/// A one-line chunk that YAML cut at ` #` where Lua needed it is rejected, saying so; a comment
/// after a complete chunk is not.
#[test]
fn check_rejects_a_chunk_cut_at_a_comment() {
    let cut = "tests/bad/lua_cut_at_comment.yaml";
    let out = autoheal().args(["check", "-c", cut]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let want = format!(
        "{cut}:3:17: web: this chunk ends at ` #`, which YAML reads as a comment though the Lua \
         before it needs what follows: `#exec(\"ls /srv/web/ready\") > 0` was cut off\n   |\n \
         3 |   check: return #exec(\"ls /srv/web/ready\") > 0\n   |                 \
         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  = help: quote the whole chunk (`check: 'return \
         #exec(\"ls /srv/web/ready\") > 0'`) or write it as a block (`check: |`, the Lua on the \
         lines below), where `#` is Lua's length operator (a comment goes after complete Lua)\n"
    );
    assert!(err.starts_with(&want), "{err}");
    // The dep with a comment after its complete chunk (line 6) is not flagged.
    assert!(!err.contains(&format!("{cut}:6")), "{err}");
    assert!(err.contains(&format!("{cut}:8:41: web: ")), "{err}");
    assert!(err.contains("2 errors in "), "{err}");
}
