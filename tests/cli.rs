//! The dockshim binary's command line and configuration file as a user meets
//! them: exit statuses, what goes to stdout and what to stderr.

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
        "--config",
        "--print-config",
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

/// A configuration file in a fresh directory, removed with it.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot create a directory for the configuration file: {err}"),
    };
    let path = dir.path().join("dockshim.toml");
    if let Err(err) = std::fs::write(&path, text) {
        panic!("cannot write {}: {err}", path.display());
    }
    (dir, path.to_string_lossy().into_owned())
}

/// `dockshim --print-config` with these arguments, which must succeed.
fn printed_config(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--print-config");
    let output = dockshim(&all);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// The printed configuration without its first line, which names the file.
fn settings(printed: &str) -> Vec<&str> {
    printed.lines().skip(1).collect()
}

const EVERY_KEY: &str = r#"# Every key, each changed from its default.
container-runtime-endpoint = "/run/x.sock"
socket-group = "docker"
docker-endpoint = 'unix:///run/docker.sock'
root-directory = "/srv/dockshim"
pod-infra-container-image = "example.org/pause:1"
sandbox-oom-score-adj = -500
runtime-cgroups = "/system.slice/docker.service"
network-plugin = "none"
cni-bin-dir = [
    "/usr/lib/cni",
    "/opt/cni/bin",
]
cni-conf-dir = "/etc/cni/other"
cni-cache-dir = "/var/cache/cni"
pod-cidr = "10.244.0.0/16,fd00::/64"
default-network = "auto:pods0"
hairpin-mode = "promisc-bridge"
ipv6-dual-stack = true
migrate-from-cri-dockerd = "/srv/cri-dockerd"
streaming-bind-addr = "[::1]:10010"
streaming-connection-idle-timeout = "0"
image-pull-progress-deadline = "5m"
image-pull-timeout = "2h"
runtime-request-timeout = "1h2m3s4ms"
log-level = "trace"
metrics-addr = "127.0.0.1:9100"
"#;

#[test]
fn a_file_with_every_key_is_read() {
    let (_dir, path) = config_file(EVERY_KEY);
    let printed = printed_config(&["--config", &path]);
    assert_eq!(
        printed.lines().next(),
        Some(
            format!(
                "# dockshim's configuration: the defaults, then {path}, then the command line."
            )
            .as_str()
        )
    );
    assert_eq!(
        settings(&printed),
        [
            "container-runtime-endpoint = \"unix:///run/x.sock\"",
            "socket-group = \"docker\"",
            "docker-endpoint = \"unix:///run/docker.sock\"",
            "root-directory = \"/srv/dockshim\"",
            "pod-infra-container-image = \"example.org/pause:1\"",
            "sandbox-oom-score-adj = -500",
            "migrate-from-cri-dockerd = \"/srv/cri-dockerd\"",
            "runtime-cgroups = \"/system.slice/docker.service\"",
            "network-plugin = \"none\"",
            "cni-bin-dir = [\"/usr/lib/cni\", \"/opt/cni/bin\"]",
            "cni-conf-dir = \"/etc/cni/other\"",
            "cni-cache-dir = \"/var/cache/cni\"",
            "pod-cidr = \"10.244.0.0/16,fd00::/64\"",
            "default-network = \"auto:pods0\"",
            "hairpin-mode = \"promiscuous-bridge\"",
            "ipv6-dual-stack = true",
            "streaming-bind-addr = \"[::1]:10010\"",
            "streaming-connection-idle-timeout = \"0\"",
            "image-pull-progress-deadline = \"5m\"",
            "image-pull-timeout = \"2h\"",
            "runtime-request-timeout = \"1h2m3s4ms\"",
            "log-level = \"trace\"",
            "metrics-addr = \"127.0.0.1:9100\"",
        ]
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_file_line_and_key() {
    let (_dir, path) = config_file("log-level = \"info\"\n\nruntime-request-timeout = \"soon\"\n");
    let output = dockshim(&["--config", &path]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        text(&output.stderr),
        format!(
            "dockshim: {path}:3: runtime-request-timeout: invalid duration \"soon\": \
             expected a number, such as 90s or 1m30s\n"
        )
    );

    let (_dir, path) = config_file("[dockshim]\nlog-level = \"info\"\n");
    let output = dockshim(&["--config", &path, "--print-config"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).starts_with(&format!("dockshim: {path}:1: tables are not supported")),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn an_unknown_key_is_refused_naming_it() {
    let (_dir, path) = config_file("# dockshim\nnetwrok-plugin = \"cni\"\n");
    let output = dockshim(&["--config", &path]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        format!("dockshim: {path}:2: netwrok-plugin: unknown key; did you mean network-plugin?\n")
    );
}

#[test]
fn a_missing_file_named_with_config_exits_two() {
    let (dir, _) = config_file("");
    let missing = dir
        .path()
        .join("missing.toml")
        .to_string_lossy()
        .into_owned();
    let output = dockshim(&["--config", &missing]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "dockshim: cannot read configuration file {missing}: "
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn flags_override_the_file() {
    let (_dir, path) = config_file(
        "log-level = \"debug\"\nipv6-dual-stack = true\nmetrics-addr = \"127.0.0.1:9100\"\n",
    );
    let printed = printed_config(&[
        "--log-level=error",
        "--config",
        &path,
        "--ipv6-dual-stack=false",
    ]);
    let settings = settings(&printed);
    assert!(settings.contains(&"log-level = \"error\""), "{printed}");
    assert!(settings.contains(&"ipv6-dual-stack = false"), "{printed}");
    assert!(
        settings.contains(&"metrics-addr = \"127.0.0.1:9100\""),
        "{printed}"
    );
}

#[test]
fn print_config_round_trips_for_the_defaults() {
    let defaults = printed_config(&["--config", ""]);
    assert_eq!(
        defaults.lines().next(),
        Some("# dockshim's configuration: the defaults, then the command line.")
    );
    let (_dir, path) = config_file(&defaults);
    let again = printed_config(&["--config", &path]);
    assert_eq!(settings(&again), settings(&defaults));
}

#[test]
fn print_config_round_trips_for_a_file_with_every_key() {
    let (_dir, path) = config_file(EVERY_KEY);
    let printed = printed_config(&["--config", &path]);
    let (_dir, reprinted_path) = config_file(&printed);
    let again = printed_config(&["--config", &reprinted_path]);
    assert_eq!(settings(&again), settings(&printed));
    assert_ne!(
        settings(&printed),
        settings(&printed_config(&["--config", ""]))
    );
}

#[test]
fn the_packaged_example_file_is_accepted_and_changes_nothing() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/dockshim.toml");
    let printed = printed_config(&["--config", example]);
    assert_eq!(
        settings(&printed),
        settings(&printed_config(&["--config", ""]))
    );
}
