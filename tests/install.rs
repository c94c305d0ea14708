//! `autoheal cron --install` and `autoheal systemd --install` with real files in a temp dir:
//! written with this binary's path and mode 0644, atomically (no temp file left), never over a
//! file they did not write, over their own; and the generated man pages and completions.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn autoheal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoheal"))
        .args(args)
        .output()
        .expect("run autoheal")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The binary as the files must name it: its absolute path, as the kernel has it.
fn exe() -> String {
    fs::canonicalize(env!("CARGO_BIN_EXE_autoheal"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn cron_install_writes_the_packaged_file_with_this_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = autoheal(&["cron", "--install", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    let file = dir.path().join("autoheal");
    assert!(
        text(&o).contains(&format!("wrote {}", file.display())),
        "{}",
        text(&o)
    );
    assert_eq!(names(dir.path()), ["autoheal"], "a temp file was left");
    assert_eq!(mode(&file), 0o644);
    let written = fs::read_to_string(&file).unwrap();
    let packaged = include_str!("../packaging/etc/cron.d/autoheal");
    assert_eq!(
        written,
        format!(
            "# written by autoheal cron --install, which replaces this file when run again: \
             delete this line to keep your edits.\n{}",
            packaged.replace("/usr/bin/autoheal", &exe())
        )
    );
    let exe = exe();
    assert!(written.contains(&format!(
        "\n* * * * * root {exe} run >/dev/null 2>>/var/log/autoheal.log\n"
    )));
    assert!(written.contains(&format!(
        "\n@reboot   root {exe} run >/dev/null 2>>/var/log/autoheal.log\n"
    )));
    // Printed without --install: the same text, nothing written.
    let shown = autoheal(&["cron"]);
    assert!(shown.status.success());
    assert_eq!(String::from_utf8_lossy(&shown.stdout), written);

    // Run again: up to date, untouched.
    let before = fs::metadata(&file).unwrap().modified().unwrap();
    let o = autoheal(&["cron", "--install", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is up to date"), "{}", text(&o));
    assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), before);
}

#[test]
fn systemd_install_writes_the_service_and_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = autoheal(&["systemd", "--install", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("systemctl enable --now autoheal.timer"),
        "{}",
        text(&o)
    );
    assert_eq!(names(dir.path()), ["autoheal.service", "autoheal.timer"]);
    let service = fs::read_to_string(dir.path().join("autoheal.service")).unwrap();
    assert!(service.starts_with("# written by autoheal systemd --install,"));
    assert!(
        service.contains(&format!("\nExecStart={} run\n", exe())),
        "{service}"
    );
    assert!(service.contains("\nType=oneshot\n"));
    let timer = fs::read_to_string(dir.path().join("autoheal.timer")).unwrap();
    assert!(timer.contains("\nOnCalendar=*-*-* *:*:00\n"), "{timer}");
    assert!(timer.contains("\nOnBootSec="), "{timer}");
    for f in ["autoheal.service", "autoheal.timer"] {
        assert_eq!(mode(&dir.path().join(f)), 0o644);
    }
}

#[test]
fn a_file_they_did_not_write_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // An operator's timer beside no service: nothing is written, not even the service.
    let mine = "[Timer]\nOnCalendar=hourly\n";
    fs::write(dir.path().join("autoheal.timer"), mine).unwrap();
    let o = autoheal(&["systemd", "--install", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "autoheal: refusing to replace {}/autoheal.timer: autoheal systemd --install did not \
             write it (its first line is not `# written by autoheal systemd --install`); move it \
             aside, or put that line on top of it to let autoheal replace it, then run this \
             again\n",
            d
        )
    );
    assert_eq!(names(dir.path()), ["autoheal.timer"]);
    assert_eq!(
        fs::read_to_string(dir.path().join("autoheal.timer")).unwrap(),
        mine
    );

    // The package's own file: it says so.
    let packaged = include_str!("../packaging/etc/cron.d/autoheal");
    fs::write(dir.path().join("autoheal"), packaged).unwrap();
    let o = autoheal(&["cron", "--install", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("it is the autoheal package's (dpkg -S "),
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("autoheal")).unwrap(),
        packaged
    );

    // A symlink is not followed, nor replaced.
    let other = tempfile::tempdir().unwrap();
    fs::remove_file(dir.path().join("autoheal")).unwrap();
    std::os::unix::fs::symlink(other.path().join("x"), dir.path().join("autoheal")).unwrap();
    let o = autoheal(&["cron", "--install", "--dir", d]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("it is not a regular file"),
        "{}",
        text(&o)
    );
    assert!(!other.path().join("x").exists());
}

#[test]
fn their_own_file_is_replaced_even_when_edited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        autoheal(&["cron", "--install", "--dir", d])
            .status
            .success()
    );
    let file = dir.path().join("autoheal");
    let fresh = fs::read_to_string(&file).unwrap();
    let edited = fresh.replace("* * * * *", "*/5 * * * *");
    fs::write(&file, &edited).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let o = autoheal(&["cron", "--install", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fs::read_to_string(&file).unwrap(), fresh);
    assert_eq!(mode(&file), 0o644);
    assert_eq!(names(dir.path()), ["autoheal"], "a temp file was left");
}

#[test]
fn a_missing_directory_is_an_error_and_dir_needs_install() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such");
    let o = autoheal(&["cron", "--install", "--dir", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot write "), "{}", text(&o));
    let o = autoheal(&["cron", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(names(dir.path()).is_empty());
}

#[test]
fn man_pages_and_completions_come_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = autoheal(&["man", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let pages = names(dir.path());
    for p in [
        "autoheal.1",
        "autoheal-run.1",
        "autoheal-check.1",
        "autoheal-cron.1",
    ] {
        assert!(pages.contains(&p.to_string()), "{pages:?}");
    }
    assert!(
        !pages
            .iter()
            .any(|p| p.contains("-man") || p.contains("-help")),
        "{pages:?}"
    );
    let main = fs::read_to_string(dir.path().join("autoheal.1")).unwrap();
    assert!(main.starts_with(".ie \\n(.g .ds Aq"), "not roff: {main}");
    assert!(main.contains(".SH FILES") && main.contains("/etc/cron.d/autoheal"));
    for shell in ["bash", "zsh", "fish"] {
        let o = autoheal(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", text(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            script.contains("systemd") && script.contains("state-dir"),
            "{shell}"
        );
    }
    // The bash one parses.
    let o = autoheal(&["completions", "bash"]);
    let file = dir.path().join("autoheal.bash");
    fs::write(&file, &o.stdout).unwrap();
    let parsed = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(parsed.success());
}

/// As root, a binary another account could replace is never scheduled, and a directory that
/// another account could write (or turn into a link elsewhere) is never written to.
#[test]
fn as_root_what_another_account_controls_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("note: the trust rules apply as root only; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The binary, copied into a directory anyone may write.
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let copy = open.join("autoheal");
    fs::copy(env!("CARGO_BIN_EXE_autoheal"), &copy).unwrap();
    let target = dir.path().join("crond");
    fs::create_dir(&target).unwrap();
    let o = Command::new(&copy)
        .args(["cron", "--install", "--dir", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("refusing to schedule this binary as root"),
        "{}",
        text(&o)
    );
    assert_eq!(names(&target), Vec::<String>::new());
    // This binary, into a directory anyone may write.
    let o = autoheal(&["cron", "--install", "--dir", open.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to write there"), "{}", text(&o));
    assert_eq!(
        names(&open),
        ["autoheal"],
        "nothing written beside the copy"
    );
}
