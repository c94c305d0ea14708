//! conf.yaml: the original format loads with its meaning; every bad file of tests/bad/ gives
//! exactly the errors written at its end (`# expect: {file}:line:col: service: message`).

use autoheal::config::{self, Dep, Liveness};
use autoheal::pattern::Pattern;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn original_config_loads_with_its_meaning() {
    let cfg =
        config::load(&root().join("tests/good/original.yaml")).expect("the original format loads");
    assert_eq!(cfg.services.len(), 2);

    let nginx = cfg.service("nginx").unwrap();
    match &nginx.liveness {
        Liveness::Pname(p) => {
            assert_eq!(p.source, "nginx");
            assert!(
                p.regex()
                    .unwrap()
                    .is_match("nginx: master process /usr/sbin/nginx")
            );
        }
        other => panic!("nginx is alive by process name, got {other:?}"),
    }
    assert_eq!(
        nginx.script,
        "sudo -u admin /home/admin/cai/bin/nginx-proxy -s restart"
    );
    match &nginx.deps[..] {
        [Dep::Http { name, url, timeout }] => {
            assert_eq!(name, "middleware");
            assert_eq!(url, "http://middleware.host.com/check.htm");
            assert_eq!(*timeout, Duration::from_secs(3));
        }
        other => panic!("one http dep, got {other:?}"),
    }

    let web = cfg.service("web_service").unwrap();
    match &web.liveness {
        Liveness::PidFile(p) => {
            assert_eq!(p, Path::new("/home/admin/web_server/conf/.web_server.pid"))
        }
        other => panic!("web_service is alive by pid file, got {other:?}"),
    }
    // `name: nginx` with host and port is a tcp probe, as the original meant, even though a
    // service of the same name exists in the file.
    match &web.deps[..] {
        [
            Dep::Tcp {
                name, host, port, ..
            },
        ] => {
            assert_eq!(
                (name.as_str(), host.as_str(), *port),
                ("nginx", "127.0.0.1", 80)
            );
        }
        other => panic!("one tcp dep, got {other:?}"),
    }
    assert_eq!(web.timeout, Duration::from_secs(60));
    assert_eq!(web.grace, Duration::from_secs(30));
    assert_eq!(cfg.settings.converge, Duration::from_secs(50));
}

#[test]
fn full_example_loads_every_key() {
    let cfg = config::load(&root().join("examples/full.yaml")).expect("full.yaml is valid");
    let s = &cfg.settings;
    assert_eq!(s.state_dir, PathBuf::from("/var/lib/autoheal"));
    assert_eq!(s.converge, Duration::from_secs(50));
    assert_eq!(s.lua_path, Some(root().join("examples/lua")));
    assert_eq!(s.backoff_max, Duration::from_secs(3600));
    assert_eq!(s.give_up_after, 10);
    assert_eq!(s.healthy_after, Duration::from_secs(300));

    let web = cfg.service("web").unwrap();
    assert!(matches!(web.liveness, Liveness::Both { .. }));
    let check = web.check.as_ref().expect("web has a check");
    assert_eq!(
        check.source.trim(),
        r#"return http_probe("http://127.0.0.1:8080/health")"#
    );
    // The chunk's first line is the line after `check: |`.
    let text = std::fs::read_to_string(root().join("examples/full.yaml")).unwrap();
    assert!(
        text.lines()
            .nth(check.line - 1)
            .unwrap()
            .contains("return http_probe")
    );
    assert_eq!(check.label, "web.check");
    assert_eq!(web.user.as_deref(), Some("root"));
    assert_eq!(web.process_user.as_deref(), Some("nobody"));
    assert_eq!(
        web.health,
        Some(config::Probe::Http {
            url: "http://127.0.0.1:8080/ready".into(),
            timeout: Duration::from_secs(2)
        })
    );
    assert_eq!(web.unhealthy_after, 5);
    assert_eq!(web.stop.as_deref(), Some("/srv/web/bin/stop.sh"));
    assert!(web.restart_on_dep_restart);
    assert_eq!(cfg.settings.unhealthy_after, 3);
    assert!(!cfg.service("cache").unwrap().restart_on_dep_restart);

    let kinds: Vec<&str> = web
        .deps
        .iter()
        .map(|d| match d {
            Dep::Tcp { .. } => "tcp",
            Dep::Http { .. } => "http",
            Dep::Lua { .. } => "lua",
            Dep::Service { .. } => "service",
        })
        .collect();
    assert_eq!(kinds, ["tcp", "http", "lua", "service", "service"]);
    match &web.deps[0] {
        Dep::Tcp { timeout, .. } => assert_eq!(*timeout, Duration::from_secs(1)),
        _ => unreachable!(),
    }
    match &web.deps[2] {
        Dep::Lua { chunk, timeout, .. } => {
            assert_eq!(chunk.source, r#"return tcp_probe("127.0.0.9", 5672)"#);
            assert_eq!(*timeout, Duration::from_secs(2));
            assert_eq!(chunk.label, "web.dep[rabbit].lua");
        }
        _ => unreachable!(),
    }
    let queue = cfg.service("queue").unwrap();
    assert_eq!(queue.timeout, Duration::from_secs(120));
    assert_eq!(queue.grace, Duration::from_secs(60));
    assert_eq!(web.check_timeout, Duration::from_secs(3));
    assert_eq!(queue.check_timeout, cfg.settings.lua_timeout);
}

#[test]
fn example_conf_is_valid() {
    let cfg = config::load(&root().join("examples/conf.yaml")).expect("conf.yaml is valid");
    assert_eq!(cfg.services.len(), 3);
}

#[test]
fn durations_in_every_form() {
    let src = "settings:\n  converge: 0\n  grace: 500ms\n  probe_timeout: 2m\n  script_timeout: 1.5\na:\n  pname: a\n  script: x\n";
    let cfg = config::load_str(src, Path::new("d.yaml")).unwrap();
    assert_eq!(cfg.settings.converge, Duration::ZERO);
    assert_eq!(cfg.services[0].grace, Duration::from_millis(500));
    assert_eq!(cfg.services[0].timeout, Duration::from_millis(1500));
    assert_eq!(cfg.settings.probe_timeout, Duration::from_secs(120));
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let src = "settings:\n  state_dir: state\na:\n  pid_file: run/a.pid\n  script: x\n";
    let cfg = config::load_str(src, Path::new("/etc/autoheal/conf.yaml")).unwrap();
    assert_eq!(cfg.settings.state_dir, PathBuf::from("/etc/autoheal/state"));
    assert_eq!(
        cfg.services[0].liveness.pid_file().unwrap(),
        Path::new("/etc/autoheal/run/a.pid")
    );
}

#[test]
fn missing_user_is_a_warning_not_an_error() {
    let src = "a:\n  pname: a\n  script: x\n  user: no_such_user_autoheal\n";
    let cfg = config::load_str(src, Path::new("u.yaml"))
        .expect("a missing user does not reject the file");
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(
        cfg.warnings[0].headline(),
        "u.yaml:4:9: warning: a: user `no_such_user_autoheal` does not exist on this host; its script will fail until it does"
    );
    let ok = config::load_str(
        "a:\n  pname: a\n  script: x\n  user: root\n",
        Path::new("u.yaml"),
    )
    .unwrap();
    assert!(ok.warnings.is_empty());
}

/// `process_user`: the account a daemon's process runs under when it is not its script's
/// `user` (it drops privileges); a missing one is a warning, like `user`.
#[test]
fn process_user_is_read_and_a_missing_one_is_a_warning() {
    let src = "a:\n  pname: a\n  script: x\n  user: root\n  process_user: no_such_user_autoheal\n";
    let cfg = config::load_str(src, Path::new("u.yaml"))
        .expect("a missing process_user does not reject the file");
    let a = &cfg.services[0];
    assert_eq!(a.process_user.as_deref(), Some("no_such_user_autoheal"));
    assert_eq!(a.account(), Some("no_such_user_autoheal"));
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(
        cfg.warnings[0].headline(),
        "u.yaml:5:17: warning: a: process_user `no_such_user_autoheal` does not exist on this \
         host; only root's processes make this service alive until it does"
    );
    // Without it, the account is the script's `user`, else autoheal's own (none named).
    let cfg = config::load_str(
        "a:\n  pname: a\n  script: x\n  user: root\nb:\n  pname: b\n  script: x\n",
        Path::new("u.yaml"),
    )
    .unwrap();
    assert_eq!(cfg.services[0].account(), Some("root"));
    assert_eq!(cfg.services[1].account(), None);
    // Not a string: a positioned error.
    let err = config::load_str(
        "a:\n  pname: a\n  script: x\n  process_user: [x]\n",
        Path::new("u.yaml"),
    )
    .unwrap_err();
    assert!(err.0[0].headline().starts_with("u.yaml:4:17: a: "), "{err}");
    // Misspelt: a suggestion.
    let err = config::load_str(
        "a:\n  pname: a\n  script: x\n  proces_user: www\n",
        Path::new("u.yaml"),
    )
    .unwrap_err();
    assert_eq!(
        err.0[0].help.as_deref(),
        Some("did you mean `process_user`?"),
        "{err}"
    );
}

/// Every file in tests/bad/ must be rejected with exactly the headlines it lists.
#[test]
fn bad_config_corpus() {
    let dir = root().join("tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let shown = path.display().to_string();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| l.replace("{file}", &shown))
            .collect();
        assert!(!expected.is_empty(), "{shown} lists no `# expect:` line");
        // As every command loads: the file, then its Lua chunks.
        match autoheal::load_config(path) {
            Ok(_) => failures.push(format!("{shown}: accepted, expected {expected:?}")),
            Err(autoheal::LoadError::Refused(e)) => failures.push(format!("{shown}: {e}")),
            Err(autoheal::LoadError::Invalid(diags)) => {
                let got: Vec<String> = diags.0.iter().map(|d| d.headline()).collect();
                if got != expected {
                    failures.push(format!(
                        "{shown}:\n  expected {expected:#?}\n  got {got:#?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn three_errors_are_all_reported() {
    let err = config::load(&root().join("tests/bad/three_errors.yaml")).unwrap_err();
    assert_eq!(err.0.len(), 3);
}

#[test]
fn an_error_is_rendered_with_the_line_a_caret_and_help() {
    let src = "web:\n  pidfile: /run/web.pid\n  script: start\n";
    let err = config::load_str(src, Path::new("conf.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf.yaml:2:3: web: unknown key `pidfile`\n   |\n 2 |   pidfile: /run/web.pid\n   |   ^^^^^^^\n  = help: did you mean `pid_file`?\n\n1 error in conf.yaml; nothing was started or changed."
    );
}

#[test]
fn anchors_and_aliases_work() {
    let src = "a:\n  pname: a\n  script: x\n  dep: &d\n    - name: db\n      host: 127.0.0.1\n      port: 5432\nb:\n  pname: b\n  script: x\n  dep: *d\n";
    let cfg = config::load_str(src, Path::new("y.yaml")).unwrap();
    assert!(matches!(
        &cfg.services[1].deps[..],
        [Dep::Tcp { port: 5432, .. }]
    ));
}

/// A `check: |` chunk's `line` is the file line of its line 1, leading blank lines included,
/// so that a Lua error on the chunk's line N is reported at file line `line + N - 1`.
#[test]
fn a_literal_chunk_starts_at_its_first_line_even_a_blank_one() {
    let src = "web:\n  pname: web\n  check: |\n\n    local x = 1\n    return x\n  script: x\n";
    let cfg = config::load_str(src, Path::new("c.yaml")).unwrap();
    let check = cfg.services[0].check.as_ref().unwrap();
    assert_eq!(check.line, 4, "the blank line after `check: |`");
    let lines: Vec<&str> = src.lines().collect();
    for (n, chunk_line) in check.source.lines().enumerate() {
        assert_eq!(lines[check.line - 1 + n].trim(), chunk_line.trim());
    }
    // Without a blank line, line 1 is the line after `check: |`; a one-line chunk is on its
    // key's line.
    let src = "web:\n  pname: web\n  check: |\n    return 1\n  script: x\n  dep:\n    - {name: q, lua: return 2}\n";
    let cfg = config::load_str(src, Path::new("c.yaml")).unwrap();
    assert_eq!(cfg.services[0].check.as_ref().unwrap().line, 4);
    match &cfg.services[0].deps[0] {
        Dep::Lua { chunk, .. } => assert_eq!(chunk.line, 7),
        other => panic!("a lua dep, got {other:?}"),
    }
}

#[test]
fn check_timeout_defaults_to_lua_timeout() {
    let src = "settings:\n  lua_timeout: 7s\na:\n  pname: a\n  check: return true\n  script: x\nb:\n  pname: b\n  check: return true\n  check_timeout: 250ms\n  script: x\n";
    let cfg = config::load_str(src, Path::new("t.yaml")).unwrap();
    assert_eq!(cfg.services[0].check_timeout, Duration::from_secs(7));
    assert_eq!(cfg.services[1].check_timeout, Duration::from_millis(250));
}

/// Zero is an error for time limits and grace, a meaning for the rest; any positive time limit
/// is accepted.
#[test]
fn zero_durations_that_mean_something_are_accepted() {
    let src = "settings:\n  converge: 0\n  backoff: 0\n  backoff_max: 0\n  healthy_after: 0\n  probe_timeout: 1ms\n  lua_timeout: 1ms\n  script_timeout: 1ms\n  grace: 100ms\na:\n  pname: a\n  script: x\n  timeout: 1ms\n  grace: 1s\n";
    let cfg = config::load_str(src, Path::new("z.yaml")).unwrap();
    let s = &cfg.settings;
    assert_eq!(
        (s.converge, s.backoff, s.backoff_max, s.healthy_after),
        (
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO
        )
    );
    assert_eq!(s.probe_timeout, Duration::from_millis(1));
    assert_eq!(cfg.services[0].timeout, Duration::from_millis(1));
    assert_eq!(cfg.services[0].grace, Duration::from_secs(1));
}

#[test]
fn restart_on_dep_restart_without_a_local_dep_is_a_warning() {
    let src = "a:\n  pname: a\n  script: x\n  restart_on_dep_restart: true\n  dep:\n    - {name: db, host: 127.0.0.1, port: 5432}\n";
    let cfg = config::load_str(src, Path::new("w.yaml")).expect("only a warning");
    let heads: Vec<String> = cfg.warnings.iter().map(|w| w.headline()).collect();
    assert_eq!(
        heads,
        [
            "w.yaml:4:27: warning: a: `restart_on_dep_restart` has no effect: no dep names a service of this file"
        ]
    );
    // With a local dep, or set to false, nothing to say.
    let ok = "db:\n  pname: db\n  script: x\na:\n  pname: a\n  script: x\n  restart_on_dep_restart: true\n  dep: [{name: db}]\nb:\n  pname: b\n  script: x\n  restart_on_dep_restart: false\n";
    let cfg = config::load_str(ok, Path::new("w.yaml")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

/// A service that looks like PostgreSQL or MySQL/MariaDB (by `pname` or `pid_file`) and has no
/// `stop:` is a warning at that key: SIGTERM then SIGKILL after 5 s crashes a database.
#[test]
fn a_database_without_stop_warns() {
    let warn = |keys: &str| {
        let src = format!("db:\n{keys}  script: x\n");
        config::load_str(&src, Path::new("w.yaml"))
            .unwrap()
            .warnings
            .iter()
            .map(|d| (d.headline(), d.help.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let w = warn("  pname: '/usr/lib/postgresql/15/bin/postgres -D /srv/pg'\n");
    assert_eq!(
        w.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        [
            "w.yaml:2:10: warning: db: `pname` looks like PostgreSQL and there is no `stop:`: a health restart sends it SIGTERM (postgres's slow \"smart\" shutdown, which waits for every client), then SIGKILL after 5s: a crash of the database"
        ]
    );
    assert!(
        w[0].1.contains("stop: pg_ctl -D DATA_DIR stop -m fast"),
        "{}",
        w[0].1
    );
    // A postmaster.pid names its data directory.
    let w = warn("  pid_file: /srv/pg/data/postmaster.pid\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].0
            .starts_with("w.yaml:2:13: warning: db: `pid_file` looks like PostgreSQL")
    );
    assert!(
        w[0].1.contains("stop: pg_ctl -D /srv/pg/data stop -m fast"),
        "{}",
        w[0].1
    );
    let w = warn("  pname: mysqld\n");
    assert_eq!(
        w.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        [
            "w.yaml:2:10: warning: db: `pname` looks like MySQL or MariaDB and there is no `stop:`: a health restart sends it SIGTERM, then SIGKILL after 5s: a crash of the database if it is still flushing its buffers"
        ]
    );
    assert!(w[0].1.contains("stop: mysqladmin shutdown"), "{}", w[0].1);
    for keys in [
        "  pname: 'postmaster'\n",
        "  pname: '/usr/sbin/mariadbd --basedir=/usr'\n",
        "  pid_file: /run/mysqld/mysqld.pid\n",
        "  pid_file: /run/postgresql/15-main.pid\n",
    ] {
        assert_eq!(warn(keys).len(), 1, "{keys}");
    }
    // With a `stop:`, or a name that only contains the word, nothing to say.
    for keys in [
        "  pname: postgres\n  stop: pg_ctl -D /srv/pg stop -m fast\n",
        "  pid_file: /run/mysqld/mysqld.pid\n  stop: mysqladmin shutdown\n",
        "  pname: postgres_exporter\n",
        "  pname: 'mysqld-exporter'\n",
        "  pid_file: /run/pgbouncer/pgbouncer.pid\n",
    ] {
        assert!(warn(keys).is_empty(), "{keys}: {:?}", warn(keys));
    }
}

#[test]
fn merge_keys_share_keys_and_explicit_keys_win() {
    let src = "\
web:
  pname: web
  script: /srv/web/start.sh
  timeout: &limits 90s
  dep: &deps
    - {name: db, host: 127.0.0.1, port: 5432}
api: &base
  pname: api
  script: /srv/api/start.sh
  grace: 45s
  dep: *deps
worker:
  <<: *base
  pname: worker
  script: /srv/worker/start.sh
  timeout: *limits
";
    let cfg = config::load_str(src, Path::new("m.yaml")).unwrap();
    let worker = cfg.service("worker").unwrap();
    assert_eq!(worker.liveness.pname().unwrap().source, "worker");
    assert_eq!(worker.script, "/srv/worker/start.sh");
    assert_eq!(worker.grace, Duration::from_secs(45), "merged from api");
    assert_eq!(worker.timeout, Duration::from_secs(90));
    assert!(matches!(&worker.deps[..], [Dep::Tcp { port: 5432, .. }]));
}

#[test]
fn a_second_document_is_not_dropped() {
    let err = config::load_str(
        "a:\n  pname: a\n  script: x\n---\nb:\n  pname: b\n  script: y\n",
        Path::new("d.yaml"),
    )
    .unwrap_err();
    let heads: Vec<String> = err.0.iter().map(|d| d.headline()).collect();
    assert_eq!(
        heads,
        ["d.yaml:4:1: a second YAML document starts here; a config file is one document"]
    );
    // A `---` that opens the only document, or ends it with nothing after, is fine.
    assert!(
        config::load_str(
            "---\na:\n  pname: a\n  script: x\n---\n",
            Path::new("d.yaml")
        )
        .is_ok()
    );
}

/// `env:` is a mapping of variable names to text, in file order; a bad name, one of
/// autoheal's own or a nested value is an error at its position.
#[test]
fn env_is_a_mapping_of_names_to_text() {
    let src = "a:\n  pname: a\n  script: x\n  env:\n    LANG: C.UTF-8\n    N: 3\n    EMPTY:\n";
    let cfg = config::load_str(src, Path::new("e.yaml")).unwrap();
    assert_eq!(
        cfg.services[0].env,
        [
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("N".into(), "3".into()),
            ("EMPTY".into(), String::new())
        ]
    );
    let bad =
        "a:\n  pname: a\n  script: x\n  env:\n    1X: a\n    AUTOHEAL_SERVICE: b\n    L: [c]\n";
    let err = config::load_str(bad, Path::new("e.yaml")).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(|d| d.headline()).collect();
    assert_eq!(
        lines,
        [
            "e.yaml:5:5: a: bad environment variable name `1X`",
            "e.yaml:6:5: a: `AUTOHEAL_SERVICE`: AUTOHEAL_* variables are set by autoheal",
            "e.yaml:7:8: a: `env.L` must be a text value, found a list",
        ]
    );
    let err = config::load_str(
        "a:\n  pname: a\n  script: x\n  env: [A]\n",
        Path::new("e.yaml"),
    )
    .unwrap_err();
    assert!(
        err.0[0]
            .headline()
            .contains("`env` must be a mapping of NAME: value"),
        "{err}"
    );
}

/// The whole rendered error of `src` as `p.yaml`.
fn rendered(src: &str) -> String {
    config::load_str(src, Path::new("p.yaml"))
        .unwrap_err()
        .to_string()
}

/// A tab that indents the next line is reported on that line, under the tab (the parser marks
/// the value before it).
#[test]
fn a_tab_is_reported_where_it_stands() {
    assert_eq!(
        rendered("web:\n  pname: x\n\tscript: y\n"),
        "p.yaml:3:1: YAML syntax error: while scanning a plain scalar, found a tab\n   |\n 3 | \tscript: y\n   | ^\n  = help: fix the YAML syntax (indentation with spaces, `key: value`, `- ` for list items)\n\n1 error in p.yaml; nothing was started or changed."
    );
    // After spaces, the caret stays under the tab.
    assert!(
        rendered("web:\n  pname: x\n  \tscript: y\n").starts_with(
            "p.yaml:3:3: YAML syntax error: while scanning a plain scalar, found a tab\n   |\n 3 |   \tscript: y\n   |   ^\n"
        )
    );
}

/// An empty value is reported after its key's `:`, not where the parser found the next token:
/// the next key, or one line past the end of the file.
#[test]
fn an_empty_value_is_reported_after_its_key() {
    let at_end = "p.yaml:3:10: web: `script` is empty\n   |\n 3 |   script:\n   |          ^\n  = help: give `script` a value or remove the key\n\n1 error in p.yaml; nothing was started or changed.";
    assert_eq!(rendered("web:\n  pname: x\n  script:"), at_end);
    assert_eq!(rendered("web:\n  pname: x\n  script:\n"), at_end);
    assert!(
        rendered("web:\n  script:   # todo\n  pname: x\n").starts_with(
            "p.yaml:2:10: web: `script` is empty\n   |\n 2 |   script:   # todo\n   |          ^\n"
        ),
    );
    // A quoted key, a dep's key.
    assert!(
        rendered("web:\n  pname: x\n  \"script\" :\n")
            .starts_with("p.yaml:3:13: web: `script` is empty")
    );
    assert!(
        rendered("web:\n  pname: x\n  script: y\n  dep:\n    - name: a\n      host:\n")
            .starts_with("p.yaml:6:12: web: `host` is empty\n")
    );
}

/// A lone CR is a line break, as YAML 1.2 has it and as the parser counts: the quoted line and
/// the caret are the line the position names (LF and CRLF files read the same).
#[test]
fn a_lone_cr_is_a_line_break() {
    let want = "p.yaml:3:3: web: unknown key `scirpt`\n   |\n 3 |   scirpt: y\n   |   ^^^^^^\n  = help: did you mean `script`?\n\n1 error in p.yaml; nothing was started or changed.";
    assert_eq!(rendered("web:\r  pname: x\r  scirpt: y\r"), want);
    assert_eq!(rendered("web:\r\n  pname: x\r  scirpt: y\n"), want);
    assert_eq!(rendered("web:\n  pname: x\n  scirpt: y\n"), want);
    // A chunk's lines count the same way.
    let cfg = config::load_str(
        "web:\r  pname: x\r  check: |\r    local a = 1\r    return a\r  script: y\r",
        Path::new("p.yaml"),
    )
    .unwrap();
    let check = cfg.services[0].check.as_ref().unwrap();
    assert_eq!(
        (check.line, check.source.as_str()),
        (4, "local a = 1\nreturn a\n")
    );
}

/// A file that is not UTF-8 is rejected at its first bad byte: line, column, the byte, and
/// that the file must be UTF-8.
#[test]
fn a_file_that_is_not_utf8_names_its_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"web:\n  pname: caf\xe9\n  script: y\n").unwrap();
    let err = config::load(&path).unwrap_err();
    let shown = path.display();
    assert_eq!(
        err.to_string(),
        format!(
            "{shown}:2:13: the file is not UTF-8: byte 0xE9 at offset 17\n   |\n 2 |   pname: caf\u{fffd}\n   |             ^\n  = help: a config file must be UTF-8: convert it (e.g. `iconv -f latin1 -t utf-8`) or fix the character\n\n1 error in {shown}; nothing was started or changed."
        )
    );
    // As every command loads it.
    match autoheal::load_config(&path) {
        Err(autoheal::LoadError::Invalid(d)) => {
            assert_eq!(
                d.0[0].headline(),
                format!("{shown}:2:13: the file is not UTF-8: byte 0xE9 at offset 17")
            )
        }
        other => panic!("invalid, got {other:?}"),
    }
    // At the start of a line, after a lone CR, in the first byte.
    std::fs::write(&path, b"a: 1\r\xc3x\n").unwrap();
    assert!(
        config::load(&path).unwrap_err().0[0]
            .headline()
            .ends_with(":2:1: the file is not UTF-8: byte 0xC3 at offset 5")
    );
    std::fs::write(&path, b"\xff").unwrap();
    assert!(
        config::load(&path).unwrap_err().0[0]
            .headline()
            .ends_with(":1:1: the file is not UTF-8: byte 0xFF at offset 0")
    );
}

/// A script that visibly starts its service as another account, in a service without `user:`
/// or `process_user:`, is a warning at the script: only root's processes would count.
#[test]
fn a_script_that_switches_account_without_process_user_warns() {
    let warn = |script: &str| {
        let src = format!("a:\n  pname: a\n  script: {script}\n");
        config::load_str(&src, Path::new("w.yaml"))
            .unwrap()
            .warnings
            .iter()
            .map(|d| d.headline())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        warn("sudo -u admin /srv/app/start.sh"),
        [
            "w.yaml:3:11: warning: a: its script starts it as `admin`, but only root's processes make it alive: it would count as dead and be started again"
        ]
    );
    for script in [
        "sudo -H -u admin x",
        "su admin -c 'x'",
        "runuser -u admin -- x",
        "setpriv --reuid=admin --regid=admin x",
    ] {
        assert_eq!(warn(script).len(), 1, "{script}");
        assert!(warn(script)[0].contains("as `admin`"), "{script}");
    }
    assert!(warn("systemctl start redis-server")[0].contains("through systemd"));
    for quiet in ["sudo -u root x", "/srv/app/start.sh", "echo sudo"] {
        assert!(warn(quiet).is_empty(), "{quiet}");
    }
    let src = "a:\n  pname: a\n  process_user: admin\n  script: sudo -u admin x\n";
    let cfg = config::load_str(src, Path::new("w.yaml"));
    assert!(cfg.is_ok_and(|c| {
        !c.warnings
            .iter()
            .any(|d| d.headline().contains("starts it as"))
    }));
}

/// `settings.metrics_file`: relative to the config file's directory like every path; a name
/// node_exporter's textfile collector would not read (`*.prom` only) is kept, with a warning.
#[test]
fn metrics_file_is_relative_to_the_config_and_warned_without_prom() {
    let body = "a:\n  pname: a\n  script: x\n";
    let cfg = config::load_str(
        &format!("settings:\n  metrics_file: textfile/autoheal.prom\n{body}"),
        Path::new("/etc/autoheal/conf.yaml"),
    )
    .unwrap();
    assert_eq!(
        cfg.settings.metrics_file.as_deref(),
        Some(Path::new("/etc/autoheal/textfile/autoheal.prom"))
    );
    assert!(cfg.warnings.is_empty());
    let cfg = config::load_str(
        &format!("settings:\n  metrics_file: /srv/metrics.txt\n{body}"),
        Path::new("m.yaml"),
    )
    .unwrap();
    assert_eq!(
        cfg.settings.metrics_file.as_deref(),
        Some(Path::new("/srv/metrics.txt"))
    );
    assert_eq!(
        cfg.warnings[0].headline(),
        "m.yaml:2:17: warning: settings: `metrics_file` does not end in `.prom`: node_exporter's \
         textfile collector will not read it"
    );
    let none = config::load_str(body, Path::new("m.yaml")).unwrap();
    assert_eq!(none.settings.metrics_file, None);
}

/// The alert settings: none by default (no `notify`, no `on_event`), the documented default
/// durations; each key read as written, `on_event` as a chunk at its own line.
#[test]
fn alert_settings_load_with_their_defaults() {
    let body = "a:\n  pname: a\n  script: x\n";
    let none = config::load_str(body, Path::new("n.yaml")).unwrap();
    assert_eq!(none.settings.notify, None);
    assert_eq!(none.settings.notify_after, Duration::from_secs(300));
    assert_eq!(none.settings.hook_timeout, Duration::from_secs(10));
    assert!(none.settings.on_event.is_none());

    let src = format!(
        "settings:\n  notify: /usr/local/bin/page --team ops\n  notify_after: 0\n  \
         hook_timeout: 100ms\n  on_event: |\n    log(event.kind)\n    return true\n{body}"
    );
    let cfg = config::load_str(&src, Path::new("n.yaml")).unwrap();
    let s = &cfg.settings;
    assert_eq!(s.notify.as_deref(), Some("/usr/local/bin/page --team ops"));
    assert_eq!(s.notify_after, Duration::ZERO);
    assert_eq!(s.hook_timeout, Duration::from_millis(100));
    let hook = s.on_event.as_ref().unwrap();
    assert_eq!(hook.source, "log(event.kind)\nreturn true\n");
    assert_eq!((hook.line, hook.label.as_str()), (6, "settings.on_event"));
}

/// A bad `notify_after` is one positioned error, as every duration's is; so are the bounds of
/// both alert durations.
#[test]
fn a_bad_notify_after_is_reported_at_its_line() {
    let body = "a:\n  pname: a\n  script: x\n";
    let first = |settings: &str| {
        let err = config::load_str(&format!("settings:\n{settings}{body}"), Path::new("p.yaml"))
            .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        err.0[0].headline()
    };
    assert_eq!(
        first("  notify_after: soon\n"),
        "p.yaml:2:17: settings: `notify_after`: bad duration `soon` (not a duration)"
    );
    assert_eq!(
        rendered(&format!("settings:\n  notify_after: soon\n{body}")),
        "p.yaml:2:17: settings: `notify_after`: bad duration `soon` (not a duration)\n   |\n 2 |   notify_after: soon\n   |                 ^^^^\n  = help: write a duration like 500ms, 3s, 2m, 1h or a bare number of seconds\n\n1 error in p.yaml; nothing was started or changed."
    );
    assert_eq!(
        first("  notify_after: 2 days\n"),
        "p.yaml:2:17: settings: `notify_after` must be at most 1 day"
    );
    assert_eq!(
        first("  hook_timeout: 11m\n"),
        "p.yaml:2:17: settings: `hook_timeout` must be at most 10m"
    );
    assert_eq!(
        first("  hook_timeout: 0\n"),
        "p.yaml:2:17: settings: `hook_timeout` must be at least 100ms"
    );
    assert_eq!(
        first("  notify: ''\n"),
        "p.yaml:2:11: settings: `notify` is empty"
    );
}

/// `on_event` is compiled and name-checked as every chunk is: a syntax error at its conf.yaml
/// line; `event` is a global there (and only there); `restart` is not.
#[test]
fn an_on_event_chunk_is_checked_at_its_lines() {
    let with = |hook: &str| {
        let src = format!(
            "settings:\n  on_event: |\n{}\nweb:\n  pname: web\n  script: x\n  check: return true\n",
            hook.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let cfg = config::load_str(&src, Path::new("conf.yaml")).unwrap();
        autoheal::lua::check_config(&cfg)
            .iter()
            .map(|d| d.headline())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        with(
            "local body = json.encode(event)\nif event.kind == 'down' then\n  http_post('http://127.0.0.1:9/', body)"
        ),
        ["conf.yaml:5: settings.on_event: 'end' expected (to close 'if' at line 4) near <eof>"]
    );
    assert_eq!(
        with(
            "local r, err = http_post('http://127.0.0.1:9/', json.encode(event))\nlog(event.service)\nreturn r ~= nil, err"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        with("log(event.kind)\nrestart(event.service)"),
        ["conf.yaml:4: settings.on_event: `restart` is not available in settings.on_event"]
    );
    // A check has no event.
    let src = "web:\n  pname: web\n  script: x\n  check: return event ~= nil\n";
    let cfg = config::load_str(src, Path::new("conf.yaml")).unwrap();
    let diags = autoheal::lua::check_config(&cfg);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(
        diags[0].headline(),
        "conf.yaml:4: web.check: unknown global `event`"
    );
}

/// Every example runs as it is without sending a packet off this machine: each tcp and http
/// target it names (deps, `health:`, and the hosts and urls in its Lua chunks and scripts) is
/// a loopback address (127.0.0.0/8, `::1`) or `localhost`.
#[test]
fn every_example_probes_only_loopback() {
    fn loopback(host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
    fn url_host(url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        match hostport.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
            None => hostport.split(':').next().unwrap_or_default().to_string(),
        }
    }
    // Hosts named in free text: urls, IPv4 literals, `host = "..."` and tcp_probe("...", ...).
    let in_text = [
        regex::Regex::new(r#"[a-z]+://([^\s"'\]\)]+)"#).unwrap(),
        regex::Regex::new(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b").unwrap(),
        regex::Regex::new(r#"host\s*=\s*["']([^"']+)["']"#).unwrap(),
        regex::Regex::new(r#"(?:tcp_probe|tcp_exchange)\s*\(\s*["']([^"']+)["']"#).unwrap(),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut seen = 0;
    for file in &files {
        let cfg = config::load(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut hosts: Vec<(String, String)> = Vec::new();
        let mut texts: Vec<(String, String)> = Vec::new();
        if let Some(chunk) = &cfg.settings.on_event {
            texts.push(("settings.on_event".into(), chunk.source.clone()));
        }
        if let Some(notify) = &cfg.settings.notify {
            texts.push(("settings.notify".into(), notify.clone()));
        }
        for svc in &cfg.services {
            let at = |what: &str| format!("{}.{what}", svc.name);
            match &svc.health {
                Some(config::Probe::Tcp { host, .. }) => hosts.push((at("health"), host.clone())),
                Some(config::Probe::Http { url, .. }) => hosts.push((at("health"), url_host(url))),
                None => {}
            }
            for d in &svc.deps {
                let here = at(&format!("dep[{}]", d.name()));
                match d {
                    Dep::Tcp { host, .. } => hosts.push((here, host.clone())),
                    Dep::Http { url, .. } => hosts.push((here, url_host(url))),
                    Dep::Lua { chunk, .. } => texts.push((here, chunk.source.clone())),
                    Dep::Service { .. } => {}
                }
            }
            if let Some(c) = &svc.check {
                texts.push((at("check"), c.source.clone()));
            }
            texts.push((at("script"), svc.script.clone()));
            texts.extend(svc.stop.iter().map(|s| (at("stop"), s.clone())));
        }
        for (what, text) in &texts {
            for (i, re) in in_text.iter().enumerate() {
                for m in re.captures_iter(text) {
                    let host = if i == 0 {
                        url_host(&m[1])
                    } else {
                        m[1].to_string()
                    };
                    hosts.push((what.clone(), host));
                }
            }
        }
        for (what, host) in &hosts {
            assert!(
                loopback(host),
                "{}: {what} names {host}, not a loopback address: an example must run without \
                 sending a packet off this machine",
                file.display()
            );
        }
        seen += hosts.len();
    }
    assert!(seen > 20, "the examples name {seen} hosts");
}

/// The packaged /etc/autoheal/conf.yaml heals nothing until edited, yet is valid (a file with
/// `settings:` and no service is a placeholder, with a warning; one with neither is an error),
/// and its commented example, uncommented, is valid too.
#[test]
fn the_packaged_config_is_a_valid_placeholder_and_its_example_is_valid() {
    let path = root().join("packaging/etc/autoheal/conf.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let cfg = config::load_str(&src, &path).expect("the packaged config loads");
    assert!(cfg.services.is_empty());
    let heads: Vec<String> = cfg.warnings.iter().map(|w| w.headline()).collect();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].ends_with("warning: the file has no services: it heals nothing"),
        "{heads:?}"
    );
    let example: String = src
        .lines()
        .skip_while(|l| !l.starts_with("# app:"))
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix('#')).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = config::load_str(&example, Path::new("example.yaml"))
        .unwrap_or_else(|e| panic!("the commented example loads:\n{example}\n{e:?}"));
    assert_eq!(cfg.services.len(), 2);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let nothing = config::load_str("# nothing\n", Path::new("n.yaml")).unwrap_err();
    assert!(format!("{nothing:?}").contains("the file has no services"));
}
