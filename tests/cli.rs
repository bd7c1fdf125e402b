//! The dockshim binary's command line as a user meets it: exit statuses,
//! what goes to stdout and what to stderr.

use std::process::{Command, Output};

fn dockshim(args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_dockshim"))
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(err) => panic!("cannot run dockshim: {err}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_exits_zero_and_mentions_every_flag() {
    let output = dockshim(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    let help = text(&output.stdout);
    for flag in [
        "--container-runtime-endpoint",
        "--socket-group",
        "--docker-endpoint",
        "--root-directory",
        "--network-plugin",
        "--cni-bin-dir",
        "--cni-conf-dir",
        "--cni-cache-dir",
        "--pod-infra-container-image",
        "--pod-cidr",
        "--runtime-cgroups",
        "--hairpin-mode",
        "--streaming-bind-addr",
        "--streaming-connection-idle-timeout",
        "--image-pull-progress-deadline",
        "--image-pull-timeout",
        "--runtime-request-timeout",
        "--sandbox-oom-score-adj",
        "--ipv6-dual-stack",
        "--log-level",
        "--metrics-addr",
        "-h, --help",
        "-V, --version",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    assert_eq!(dockshim(&["-h"]).stdout, output.stdout);
}

#[test]
fn version_prints_the_program_and_version() {
    let output = dockshim(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        format!("dockshim {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn a_bad_flag_exits_two_with_one_line_naming_it() {
    let output = dockshim(&["--runtime-request-timeout", "soon"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("dockshim: --runtime-request-timeout: invalid duration"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_flag_exits_two_naming_it() {
    let output = dockshim(&["--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn a_positional_argument_exits_two() {
    let output = dockshim(&["start"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("\"start\""));
}
