//! The command line and the configuration file: flags and file in, a
//! validated [`Config`] (or help, version, or the configuration printed) out.
//!
//! Parsing has two phases. The first reads the arguments left to right
//! against the flag table in `flags` — names, `--flag value` and
//! `--flag=value`, switches — and stops at the first syntax error, `--help` or
//! `--version`. Then the configuration file (`--config`, by default
//! /etc/dockshim/dockshim.toml) is read with `config_file` and each of its
//! entries becomes a setting as if given by its flag. The second phase turns
//! each value into its typed setting, starting from [`Config::default`], the
//! file's settings first and the flags after them, so a flag overrides the
//! file; when a flag is repeated the last one wins. The same table produces
//! [`help_text`], [`man_page`] and the printed configuration, and every value,
//! from a flag or from the file, goes through the same parser in `values`.
//!
//! The one I/O here is reading the configuration file, and [`parse_with`]
//! takes even that as a function. This module does not touch sockets, look up
//! groups or check that directories exist, and it never exits the process;
//! `main` prints what it returns.

mod config;
pub mod config_file;
mod doc;
mod error;
mod flags;
mod values;

use std::ffi::OsString;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::cri::sandbox::CriDockerdMigration;
pub use crate::network::default_network::DefaultNetwork;
pub use crate::network::hairpin::HairpinMode;
pub use crate::network::NetworkPlugin;
pub use config::Config;
pub use doc::{example_config, help_text, man_page};
pub use error::{CliError, ConfigFileError};

use config_file::Value;
use flags::{FileValue, Flag, FlagId};
use values::Invalid;

/// The most a configuration file may hold; a file with every key set and
/// commented takes a few kilobytes.
const MAX_CONFIG_FILE_LEN: u64 = 1 << 20;

/// What the command line asks for.
// One value per process, moved once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve CRI with this configuration.
    Run(Config),
    /// Print this text (it ends with a newline) to stdout and exit 0.
    Help(String),
    /// Print this text (it ends with a newline) to stdout and exit 0.
    Version(String),
    /// Print this text, the effective configuration in the configuration
    /// file's format (it ends with a newline), to stdout and exit 0.
    PrintConfig(String),
}

impl CliError {
    fn invalid(flag: &'static Flag, value: &str, invalid: Invalid) -> CliError {
        CliError::InvalidValue {
            flag: flag.long,
            kind: invalid.kind,
            value: value.to_owned(),
            reason: invalid.reason,
        }
    }
}

/// Parses the arguments that follow the program name, reading the
/// configuration file they name (or the default one) from the filesystem.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    parse_with(args, read_config_file)
}

/// [`parse`], with the configuration file read by `read_file`; only a
/// `NotFound` error from it means "no file", and only for the default path.
pub fn parse_with(
    args: impl IntoIterator<Item = OsString>,
    read_file: impl FnOnce(&Path) -> io::Result<Vec<u8>>,
) -> Result<Command, CliError> {
    let from_flags = match read_flags(args)? {
        FirstPhase::Help => return Ok(Command::Help(help_text())),
        FirstPhase::Version => return Ok(Command::Version(doc::version_line())),
        FirstPhase::Settings(settings) => settings,
    };
    let (file, print_config) = command_line_only(&from_flags);
    let (path, optional) = match &file {
        ConfigFileChoice::None => (None, false),
        ConfigFileChoice::Default => (Some(Path::new(flags::DEFAULT_CONFIG_FILE)), true),
        ConfigFileChoice::Named(path) => (Some(path.as_path()), false),
    };
    let (config_file, from_file) = match path.map(|path| (path, read_file(path))) {
        None => (None, Vec::new()),
        Some((path, Ok(bytes))) => (Some(path), file_settings(path, &bytes)?),
        Some((_, Err(err))) if optional && err.kind() == io::ErrorKind::NotFound => {
            (None, Vec::new())
        }
        Some((path, Err(err))) => {
            return Err(CliError::UnreadableFile {
                path: path.to_owned(),
                reason: err.to_string(),
            })
        }
    };
    let mut config = build_config(from_file.into_iter().chain(from_flags))?;
    config.config_file = config_file.map(Path::to_owned);
    if print_config {
        return Ok(Command::PrintConfig(doc::config_text(&config)));
    }
    Ok(Command::Run(config))
}

/// Reads the configuration file, refusing one larger than
/// [`MAX_CONFIG_FILE_LEN`] before holding more than that in memory.
fn read_config_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_FILE_LEN + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_FILE_LEN} bytes"),
        ));
    }
    Ok(bytes)
}

/// Which configuration file to read.
#[derive(Debug, Clone)]
enum ConfigFileChoice {
    /// The default path; that it does not exist is no error.
    Default,
    /// A path named by `--config`, which must exist.
    Named(PathBuf),
    /// `--config ''`.
    None,
}

/// The file `--config` names and whether `--print-config` is on; as for
/// every flag, the last one given counts.
fn command_line_only(settings: &[Setting]) -> (ConfigFileChoice, bool) {
    let mut file = ConfigFileChoice::Default;
    let mut print_config = false;
    for setting in settings {
        match (setting.flag.id, &setting.value) {
            (FlagId::Config, RawValue::Text(path)) if path.is_empty() => {
                file = ConfigFileChoice::None;
            }
            (FlagId::Config, RawValue::Text(path)) => {
                file = ConfigFileChoice::Named(PathBuf::from(path));
            }
            (FlagId::PrintConfig, RawValue::Switch(on)) => print_config = *on,
            _ => {}
        }
    }
    (file, print_config)
}

/// The configuration file's entries as settings, each checked to name a
/// flag that may be set there and to have the TOML type its flag takes.
fn file_settings(path: &Path, bytes: &[u8]) -> Result<Vec<Setting>, CliError> {
    let entries = config_file::parse(bytes).map_err(|error| CliError::FileSyntax {
        path: path.to_owned(),
        error,
    })?;
    entries
        .into_iter()
        .map(|entry| {
            let Some(flag) = flags::by_long(&entry.key) else {
                return Err(CliError::UnknownKey {
                    path: path.to_owned(),
                    line: entry.line,
                    suggestion: flags::closest_long(&entry.key)
                        .filter(|&long| flags::by_long(long).is_some_and(Flag::in_file)),
                    key: entry.key,
                });
            };
            let wrong_type = |expected| CliError::WrongType {
                path: path.to_owned(),
                line: entry.line,
                key: flag.long,
                expected,
                found: entry.value.kind(),
            };
            let value = match (flag.file_value(), &entry.value) {
                (FileValue::CommandLineOnly, _) => {
                    return Err(CliError::CommandLineOnlyKey {
                        path: path.to_owned(),
                        line: entry.line,
                        key: flag.long,
                    })
                }
                (FileValue::Boolean, Value::Boolean(on)) => RawValue::Switch(*on),
                (FileValue::Integer, Value::Integer(number)) => RawValue::Text(number.to_string()),
                (FileValue::String, Value::String(text)) => RawValue::Text(text.clone()),
                (FileValue::Strings, Value::Strings(items)) => {
                    RawValue::Text(joined_list(items).map_err(|invalid| {
                        CliError::InvalidFileValue {
                            path: path.to_owned(),
                            line: entry.line,
                            key: flag.long,
                            kind: invalid.kind,
                            value: entry.value.to_string(),
                            reason: invalid.reason,
                        }
                    })?)
                }
                (FileValue::Boolean, _) => return Err(wrong_type("true or false")),
                (FileValue::Integer, _) => return Err(wrong_type("an integer")),
                (FileValue::String, _) => return Err(wrong_type("a string in quotes")),
                (FileValue::Strings, _) => return Err(wrong_type("an array of strings")),
            };
            Ok(Setting {
                flag,
                value,
                origin: Origin::File {
                    path: path.to_owned(),
                    line: entry.line,
                    written: entry.value.to_string(),
                },
            })
        })
        .collect()
}

/// An array's items as the comma-separated list its flag takes; an item
/// that would read as several (or none) is refused rather than split.
fn joined_list(items: &[String]) -> Result<String, Invalid> {
    let refuse = |reason: &str| {
        Err(Invalid {
            kind: "list",
            reason: reason.to_owned(),
        })
    };
    if items.is_empty() {
        return refuse("the list is empty");
    }
    if items.iter().any(|item| item.contains(',')) {
        return refuse("an item contains a comma, which separates items on the command line");
    }
    Ok(items.join(","))
}

/// A flag's value before validation.
#[derive(Debug)]
enum RawValue {
    Switch(bool),
    Text(String),
}

/// One flag's value, from the command line or the configuration file.
#[derive(Debug)]
struct Setting {
    flag: &'static Flag,
    value: RawValue,
    origin: Origin,
}

/// Where a setting was given, for the message when its value is refused.
#[derive(Debug)]
enum Origin {
    CommandLine,
    /// A line of the configuration file, and the value as written there.
    File {
        path: PathBuf,
        line: usize,
        written: String,
    },
}

/// What the first phase found.
#[derive(Debug)]
enum FirstPhase {
    Help,
    Version,
    Settings(Vec<Setting>),
}

fn read_flags(args: impl IntoIterator<Item = OsString>) -> Result<FirstPhase, CliError> {
    let mut args = args.into_iter();
    let mut settings = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        // to_string_lossy borrows exactly when the argument is valid UTF-8.
        let is_utf8 = matches!(text, std::borrow::Cow::Borrowed(_));
        let (flag, inline_value) = flag_of(&text)?;
        if !is_utf8 {
            let value = inline_value.unwrap_or_default();
            return Err(CliError::invalid(flag, value, not_utf8()));
        }

        let value = match (flag.value_name, inline_value) {
            (None, None) => RawValue::Switch(true),
            (None, Some(value)) => RawValue::Switch(
                values::boolean(value).map_err(|e| CliError::invalid(flag, value, e))?,
            ),
            (Some(_), Some(value)) => RawValue::Text(value.to_owned()),
            (Some(value_name), None) => {
                // Like Go's flag package, the next argument is the value even
                // if it starts with '-', so `--sandbox-oom-score-adj -998` works.
                let next = args.next().ok_or(CliError::MissingValue {
                    flag: flag.long,
                    value_name,
                })?;
                let value = next
                    .into_string()
                    .map_err(|bad| CliError::invalid(flag, &bad.to_string_lossy(), not_utf8()))?;
                RawValue::Text(value)
            }
        };
        match (flag.id, &value) {
            (FlagId::Help, RawValue::Switch(true)) => return Ok(FirstPhase::Help),
            (FlagId::Version, RawValue::Switch(true)) => return Ok(FirstPhase::Version),
            _ => settings.push(Setting {
                flag,
                value,
                origin: Origin::CommandLine,
            }),
        }
    }
    Ok(FirstPhase::Settings(settings))
}

/// The flag an argument names, with the value after `=` if there is one.
fn flag_of(text: &str) -> Result<(&'static Flag, Option<&str>), CliError> {
    if let Some(long) = text.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (long, None),
        };
        if name.is_empty() {
            return Err(CliError::UnexpectedArgument {
                argument: text.to_owned(),
            });
        }
        return flags::by_long(name)
            .map(|flag| (flag, value))
            .ok_or_else(|| CliError::UnknownFlag {
                flag: format!("--{name}"),
                suggestion: flags::closest_long(name),
            });
    }
    let Some(short) = text.strip_prefix('-').filter(|short| !short.is_empty()) else {
        return Err(CliError::UnexpectedArgument {
            argument: text.to_owned(),
        });
    };
    let mut chars = short.chars();
    match (chars.next().and_then(flags::by_short), chars.next()) {
        (Some(flag), None) => Ok((flag, None)),
        _ => Err(CliError::UnknownFlag {
            flag: text.to_owned(),
            suggestion: None,
        }),
    }
}

fn not_utf8() -> Invalid {
    Invalid {
        kind: "value",
        reason: "not valid UTF-8".to_owned(),
    }
}

/// The configuration from the defaults and `settings`, in order.
fn build_config(settings: impl IntoIterator<Item = Setting>) -> Result<Config, CliError> {
    let mut config = Config::default();
    for Setting {
        flag,
        value,
        origin,
    } in settings
    {
        match value {
            RawValue::Switch(on) => apply_switch(&mut config, flag.id, on),
            RawValue::Text(text) => {
                apply_value(&mut config, flag.id, &text).map_err(|invalid| match origin {
                    Origin::CommandLine => CliError::invalid(flag, &text, invalid),
                    Origin::File {
                        path,
                        line,
                        written,
                    } => CliError::InvalidFileValue {
                        path,
                        line,
                        key: flag.long,
                        kind: invalid.kind,
                        value: written,
                        reason: invalid.reason,
                    },
                })?;
            }
        }
    }
    Ok(config)
}

fn apply_switch(config: &mut Config, id: FlagId, on: bool) {
    if id == FlagId::Ipv6DualStack {
        config.ipv6_dual_stack = on;
    }
    // The other switches: --help and --version end the first phase when on
    // and mean nothing when off; --print-config is read before this phase.
}

fn apply_value(config: &mut Config, id: FlagId, text: &str) -> Result<(), Invalid> {
    match id {
        FlagId::ContainerRuntimeEndpoint => {
            config.runtime_endpoint = values::runtime_endpoint(text)?
        }
        FlagId::SocketGroup => config.socket_group = Some(values::group(text)?),
        FlagId::DockerEndpoint => config.docker_endpoint = values::unix_endpoint(text)?,
        FlagId::RootDirectory => config.root_directory = values::absolute_path(text)?,
        FlagId::PodInfraContainerImage => config.pod_infra_container_image = values::image(text)?,
        FlagId::SandboxOomScoreAdj => config.sandbox_oom_score_adj = values::oom_score_adj(text)?,
        FlagId::MigrateFromCriDockerd => {
            config.migrate_from_cri_dockerd = cri_dockerd_migration(text)?;
        }
        FlagId::RuntimeCgroups => config.runtime_cgroups = Some(values::cgroup(text)?),
        FlagId::NetworkPlugin => config.network_plugin = values::network_plugin(text)?,
        FlagId::CniBinDir => config.cni_bin_dirs = values::absolute_path_list(text)?,
        FlagId::CniConfDir => config.cni_conf_dir = values::absolute_path(text)?,
        FlagId::CniCacheDir => config.cni_cache_dir = values::absolute_path(text)?,
        FlagId::PodCidr => config.pod_cidr = Some(values::cidrs(text)?),
        FlagId::DefaultNetwork => config.default_network = values::default_network(text)?,
        FlagId::HairpinMode => config.hairpin_mode = values::hairpin_mode(text)?,
        FlagId::StreamingBindAddr => config.streaming_bind_addr = values::bind_addr(text)?,
        FlagId::StreamingConnectionIdleTimeout => {
            config.streaming_connection_idle_timeout = values::duration(text)?;
        }
        FlagId::ImagePullProgressDeadline => {
            config.image_pull_progress_deadline = positive_duration(text)?;
        }
        FlagId::ImagePullTimeout => config.image_pull_timeout = values::duration(text)?,
        FlagId::RuntimeRequestTimeout => config.runtime_request_timeout = positive_duration(text)?,
        FlagId::LogLevel => config.log_level = values::log_level(text)?,
        FlagId::MetricsAddr => config.metrics_addr = Some(values::socket_addr(text)?),
        // Read before this phase: it chooses the file these settings come from.
        FlagId::Config => {}
        // Switches never carry text: the first phase gives them RawValue::Switch.
        FlagId::Ipv6DualStack | FlagId::PrintConfig | FlagId::Help | FlagId::Version => {}
    }
    Ok(())
}

fn cri_dockerd_migration(text: &str) -> Result<CriDockerdMigration, Invalid> {
    match text {
        "auto" => Ok(CriDockerdMigration::Auto),
        "off" => Ok(CriDockerdMigration::Off),
        path => values::absolute_path(path)
            .map(CriDockerdMigration::From)
            .map_err(|invalid| Invalid {
                reason: format!("{}; or auto, or off", invalid.reason),
                ..invalid
            }),
    }
}

fn positive_duration(text: &str) -> Result<Duration, Invalid> {
    match values::duration(text)? {
        Duration::ZERO => Err(Invalid {
            kind: "duration",
            reason: "must be greater than 0".into(),
        }),
        duration => Ok(duration),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// `parse` on a machine without /etc/dockshim/dockshim.toml.
    fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
        parse_with(args, |_| Err(io::ErrorKind::NotFound.into()))
    }

    fn run(args: &[&str]) -> Result<Config, CliError> {
        match parse_args(args.iter().map(OsString::from))? {
            Command::Run(config) => Ok(config),
            other => panic!("expected a config for {args:?}, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        let err = run(args).expect_err("should be refused");
        assert_eq!(err.exit_code(), 2);
        let message = err.to_string();
        assert!(message.starts_with("dockshim: "), "{message}");
        assert!(!message.contains('\n'), "{message}");
        message
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(run(&[]).unwrap(), Config::default());
    }

    #[test]
    fn the_documented_defaults_are_the_config_defaults() {
        let mut args = Vec::new();
        // The default --config names a file, which would then have to exist.
        for flag in flags::FLAGS.iter().filter(|flag| flag.id != FlagId::Config) {
            if let Some(default) = flag.default {
                args.push(format!("--{}={default}", flag.long));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(run(&args).unwrap(), Config::default());
    }

    #[test]
    fn both_value_forms_are_accepted() {
        let spaced = run(&["--log-level", "debug"]).unwrap();
        let joined = run(&["--log-level=debug"]).unwrap();
        assert_eq!(spaced.log_level, log::LevelFilter::Debug);
        assert_eq!(spaced, joined);
    }

    #[test]
    fn a_value_may_start_with_a_dash_or_contain_equals() {
        assert_eq!(
            run(&["--sandbox-oom-score-adj", "-999"])
                .unwrap()
                .sandbox_oom_score_adj,
            -999
        );
        let image = run(&["--pod-infra-container-image=a/b=c"])
            .unwrap()
            .pod_infra_container_image;
        assert_eq!(image, "a/b=c");
    }

    #[test]
    fn the_last_of_a_repeated_flag_wins() {
        let config = run(&["--log-level=debug", "--log-level=error"]).unwrap();
        assert_eq!(config.log_level, log::LevelFilter::Error);
    }

    /// A configuration in which every setting differs from its default.
    fn every_setting_changed() -> Config {
        Config {
            config_file: None,
            runtime_endpoint: "unix:///run/x.sock".to_owned(),
            socket_group: Some("docker".to_owned()),
            docker_endpoint: "unix:///run/docker.sock".to_owned(),
            root_directory: PathBuf::from("/srv/dockshim"),
            network_plugin: NetworkPlugin::None,
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            cni_conf_dir: PathBuf::from("/etc/cni/other"),
            cni_cache_dir: PathBuf::from("/var/cache/cni"),
            pod_infra_container_image: "example.org/pause:1".to_owned(),
            pod_cidr: Some("10.244.0.0/16,fd00::/64".to_owned()),
            default_network: DefaultNetwork::Auto {
                bridge: Some("pods0".to_owned()),
            },
            runtime_cgroups: Some("/system.slice/docker.service".to_owned()),
            hairpin_mode: HairpinMode::PromiscuousBridge,
            streaming_bind_addr: "[::1]:10010".parse().unwrap(),
            streaming_connection_idle_timeout: Duration::ZERO,
            image_pull_progress_deadline: Duration::from_secs(300),
            image_pull_timeout: Duration::from_secs(2 * 60 * 60),
            runtime_request_timeout: Duration::from_millis(3_723_004),
            sandbox_oom_score_adj: -500,
            ipv6_dual_stack: true,
            migrate_from_cri_dockerd: CriDockerdMigration::From(PathBuf::from("/srv/cri-dockerd")),
            log_level: log::LevelFilter::Trace,
            metrics_addr: Some("127.0.0.1:9100".parse().unwrap()),
        }
    }

    #[test]
    fn every_flag_sets_its_field() {
        let config = run(&[
            "--container-runtime-endpoint=/run/x.sock",
            "--socket-group=docker",
            "--docker-endpoint=unix:///run/docker.sock",
            "--root-directory=/srv/dockshim",
            "--pod-infra-container-image=example.org/pause:1",
            "--sandbox-oom-score-adj=-500",
            "--runtime-cgroups=/system.slice/docker.service",
            "--network-plugin=none",
            "--cni-bin-dir=/usr/lib/cni,/opt/cni/bin",
            "--cni-conf-dir=/etc/cni/other",
            "--cni-cache-dir=/var/cache/cni",
            "--pod-cidr=10.244.0.0/16,fd00::/64",
            "--default-network=auto:pods0",
            "--hairpin-mode=promisc-bridge",
            "--ipv6-dual-stack",
            "--streaming-bind-addr=[::1]:10010",
            "--streaming-connection-idle-timeout=0",
            "--image-pull-progress-deadline=5m",
            "--image-pull-timeout=2h",
            "--runtime-request-timeout=1h2m3s4ms",
            "--log-level=trace",
            "--metrics-addr=127.0.0.1:9100",
            "--migrate-from-cri-dockerd=/srv/cri-dockerd",
        ])
        .unwrap();
        let expected = every_setting_changed();
        assert_eq!(config, expected);
    }

    #[test]
    fn socket_activation_is_an_endpoint_without_a_path() {
        let config = run(&["--container-runtime-endpoint", "fd://"]).unwrap();
        assert_eq!(config.runtime_endpoint, "fd://");
    }

    #[test]
    fn switches_accept_explicit_true_and_false() {
        assert!(run(&["--ipv6-dual-stack=true"]).unwrap().ipv6_dual_stack);
        assert!(
            !run(&["--ipv6-dual-stack", "--ipv6-dual-stack=false"])
                .unwrap()
                .ipv6_dual_stack
        );
        assert_eq!(
            error(&["--ipv6-dual-stack=yes"]),
            "dockshim: --ipv6-dual-stack: invalid boolean \"yes\": expected true or false"
        );
    }

    #[test]
    fn a_switch_does_not_take_the_next_argument() {
        assert!(error(&["--ipv6-dual-stack", "true"]).contains("unexpected argument \"true\""));
    }

    #[test]
    fn every_bad_value_is_reported_with_its_flag() {
        let cases = [
            ("container-runtime-endpoint", "tcp://0.0.0.0:1"),
            ("container-runtime-endpoint", "fd://3"),
            ("socket-group", "a b"),
            ("docker-endpoint", "tcp://127.0.0.1:2375"),
            ("root-directory", "relative/dir"),
            ("pod-infra-container-image", ""),
            ("sandbox-oom-score-adj", "-1001"),
            ("runtime-cgroups", "docker"),
            ("network-plugin", "kubenet"),
            ("cni-bin-dir", "/opt/cni/bin,"),
            ("cni-conf-dir", "net.d"),
            ("cni-cache-dir", ""),
            ("pod-cidr", "10.0.0.0/8,10.1.0.0/16"),
            ("default-network", "on"),
            ("hairpin-mode", "on"),
            ("streaming-bind-addr", "localhost:10010"),
            ("streaming-connection-idle-timeout", "4 hours"),
            ("image-pull-progress-deadline", "0"),
            ("runtime-request-timeout", "0s"),
            ("log-level", "verbose"),
            ("metrics-addr", "127.0.0.1"),
            ("migrate-from-cri-dockerd", "var/lib/cri-dockerd"),
        ];
        for (flag, value) in cases {
            for args in [
                vec![format!("--{flag}={value}")],
                vec![format!("--{flag}"), value.into()],
            ] {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let message = error(&args);
                let prefix = format!("dockshim: --{flag}: invalid ");
                assert!(message.starts_with(&prefix), "{message}");
                assert!(message.contains(&format!("{value:?}")), "{message}");
            }
        }
    }

    #[test]
    fn cri_dockerd_migration_is_automatic_unless_turned_off_or_pointed_elsewhere() {
        assert_eq!(
            run(&[]).unwrap().migrate_from_cri_dockerd,
            CriDockerdMigration::Auto
        );
        assert_eq!(
            run(&["--migrate-from-cri-dockerd=off"])
                .unwrap()
                .migrate_from_cri_dockerd,
            CriDockerdMigration::Off
        );
        assert_eq!(
            run(&["--migrate-from-cri-dockerd", "/var/lib/cri-dockerd"])
                .unwrap()
                .migrate_from_cri_dockerd,
            CriDockerdMigration::From(PathBuf::from("/var/lib/cri-dockerd"))
        );
        assert!(error(&["--migrate-from-cri-dockerd=yes"]).ends_with("; or auto, or off"));
    }

    #[test]
    fn invalid_durations_name_the_flag() {
        assert_eq!(
            error(&["--runtime-request-timeout", "x"]),
            "dockshim: --runtime-request-timeout: invalid duration \"x\": \
             expected a number, such as 90s or 1m30s"
        );
        assert_eq!(
            error(&["--image-pull-progress-deadline=6000000h"]),
            "dockshim: --image-pull-progress-deadline: invalid duration \"6000000h\": too large"
        );
        assert_eq!(
            error(&["--runtime-request-timeout=0"]),
            "dockshim: --runtime-request-timeout: invalid duration \"0\": must be greater than 0"
        );
    }

    #[test]
    fn a_value_flag_at_the_end_is_missing_its_value() {
        assert_eq!(
            error(&["--log-level=info", "--docker-endpoint"]),
            "dockshim: --docker-endpoint: missing value ENDPOINT"
        );
    }

    #[test]
    fn unknown_flags_are_named_with_a_suggestion_when_close() {
        assert_eq!(
            error(&["--netwrok-plugin=cni"]),
            "dockshim: unknown flag \"--netwrok-plugin\"; did you mean --network-plugin?"
        );
        assert_eq!(
            error(&["--cri-dockerd-root-directory", "/x"]),
            "dockshim: unknown flag \"--cri-dockerd-root-directory\"; see dockshim --help"
        );
        assert!(error(&["-x"]).contains("unknown flag \"-x\""));
        assert!(error(&["-hV"]).contains("unknown flag \"-hV\""));
    }

    #[test]
    fn positional_arguments_are_refused() {
        assert_eq!(
            error(&["serve"]),
            "dockshim: unexpected argument \"serve\": dockshim takes only flags"
        );
        assert!(error(&["--", "--help"]).contains("unexpected argument \"--\""));
        assert!(error(&["-"]).contains("unexpected argument \"-\""));
    }

    #[test]
    fn values_that_are_not_utf8_are_refused_naming_the_flag() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"/var/lib/\xff".to_vec());
        let err = parse_args([OsString::from("--root-directory"), bad]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("dockshim: --root-directory: invalid value"));
        let bad = OsString::from_vec(b"--root-directory=/\xff".to_vec());
        let err = parse_args([bad]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("dockshim: --root-directory: invalid value"));
        assert!(err.to_string().ends_with("not valid UTF-8"));
    }

    #[test]
    fn help_and_version_win_over_later_arguments() {
        let parse_strs = |args: &[&str]| parse_args(args.iter().map(OsString::from)).unwrap();
        assert_eq!(parse_strs(&["--help"]), Command::Help(help_text()));
        assert_eq!(parse_strs(&["-h", "--bogus"]), Command::Help(help_text()));
        assert_eq!(
            parse_strs(&["--log-level=x", "--help"]),
            Command::Help(help_text())
        );
        let version = format!("dockshim {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(
            parse_strs(&["--version"]),
            Command::Version(version.clone())
        );
        assert_eq!(parse_strs(&["-V"]), Command::Version(version));
        assert!(matches!(parse_strs(&["--help=false"]), Command::Run(_)));
    }

    #[test]
    fn errors_before_help_still_count() {
        assert!(error(&["--bogus", "--help"]).contains("unknown flag \"--bogus\""));
    }

    /// The file text every configuration file test reads, keyed by path.
    fn with_file(args: &[&str], path: &str, text: &str) -> Result<Command, CliError> {
        parse_with(args.iter().map(OsString::from), |asked| {
            if asked == Path::new(path) {
                Ok(text.as_bytes().to_vec())
            } else {
                Err(io::ErrorKind::NotFound.into())
            }
        })
    }

    fn run_with_file(args: &[&str], path: &str, text: &str) -> Result<Config, CliError> {
        match with_file(args, path, text)? {
            Command::Run(config) => Ok(config),
            other => panic!("expected a config for {args:?}, got {other:?}"),
        }
    }

    fn file_error(args: &[&str], path: &str, text: &str) -> String {
        let err = run_with_file(args, path, text).expect_err("should be refused");
        assert_eq!(err.exit_code(), 2);
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message}");
        message
    }

    fn print_config(args: &[&str], path: &str, text: &str) -> String {
        match with_file(args, path, text).unwrap() {
            Command::PrintConfig(text) => text,
            other => panic!("expected the configuration printed, got {other:?}"),
        }
    }

    const DEFAULT_FILE: &str = flags::DEFAULT_CONFIG_FILE;

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
    "/usr/lib/cni",  # Debian's containernetworking-plugins
    "/opt/cni/bin",  # by hand
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
    fn a_missing_default_file_means_no_file() {
        let config = run(&[]).unwrap();
        assert_eq!(config.config_file, None);
        assert_eq!(config, Config::default());
    }

    #[test]
    fn the_default_file_is_read_when_it_exists() {
        let config = run_with_file(&[], DEFAULT_FILE, "log-level = \"debug\"\n").unwrap();
        assert_eq!(config.log_level, log::LevelFilter::Debug);
        assert_eq!(config.config_file, Some(PathBuf::from(DEFAULT_FILE)));
    }

    #[test]
    fn a_file_with_every_key_sets_every_setting() {
        let config = run_with_file(&["--config", "/x/every.toml"], "/x/every.toml", EVERY_KEY);
        let expected = Config {
            config_file: Some(PathBuf::from("/x/every.toml")),
            ..every_setting_changed()
        };
        assert_eq!(config.unwrap(), expected);
    }

    #[test]
    fn every_file_key_is_tested() {
        for flag in flags::FLAGS.iter().filter(|flag| flag.in_file()) {
            assert!(
                EVERY_KEY.contains(&format!("\n{} = ", flag.long)),
                "{}",
                flag.long
            );
        }
    }

    #[test]
    fn a_missing_file_named_with_config_is_an_error() {
        assert_eq!(
            error(&["--config", "/etc/dockshim/other.toml"]),
            "dockshim: cannot read configuration file /etc/dockshim/other.toml: \
             entity not found"
        );
        assert_eq!(
            error(&[&format!("--config={DEFAULT_FILE}")]),
            format!("dockshim: cannot read configuration file {DEFAULT_FILE}: entity not found")
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_even_by_default() {
        let err = parse_with(std::iter::empty(), |_| {
            Err(io::ErrorKind::PermissionDenied.into())
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("dockshim: cannot read configuration file {DEFAULT_FILE}: permission denied")
        );
    }

    #[test]
    fn an_empty_config_path_reads_no_file() {
        for args in [["--config", ""].as_slice(), &["--config="]] {
            let command = parse_with(args.iter().map(OsString::from), |path| {
                panic!("read {path:?}")
            });
            assert_eq!(command.unwrap(), Command::Run(Config::default()));
        }
    }

    #[test]
    fn the_last_config_flag_wins() {
        let config = run_with_file(
            &["--config=/a.toml", "--config", "/b.toml"],
            "/b.toml",
            "log-level = 'warn'",
        );
        assert_eq!(config.unwrap().log_level, log::LevelFilter::Warn);
        let config = run_with_file(&["--config=/b.toml", "--config="], "/b.toml", "x = 1");
        assert_eq!(config.unwrap(), Config::default());
    }

    #[test]
    fn flags_override_the_file_wherever_they_stand() {
        let file = "log-level = \"debug\"\nipv6-dual-stack = true\nsandbox-oom-score-adj = 5\n";
        let config = run_with_file(
            &[
                "--log-level=error",
                "--config",
                "/f.toml",
                "--ipv6-dual-stack=false",
            ],
            "/f.toml",
            file,
        )
        .unwrap();
        assert_eq!(config.log_level, log::LevelFilter::Error);
        assert!(!config.ipv6_dual_stack);
        assert_eq!(config.sandbox_oom_score_adj, 5);
    }

    #[test]
    fn a_bad_value_in_the_file_reads_as_on_the_command_line_with_file_line_and_key() {
        let on_command_line = error(&["--runtime-request-timeout=soon"]);
        let in_file = file_error(
            &[],
            DEFAULT_FILE,
            "log-level = 'info'\nruntime-request-timeout = \"soon\"\n",
        );
        assert_eq!(
            in_file,
            format!("dockshim: {DEFAULT_FILE}:2: runtime-request-timeout: invalid duration \"soon\": expected a number, such as 90s or 1m30s")
        );
        assert_eq!(
            in_file.split_once("invalid").unwrap().1,
            on_command_line.split_once("invalid").unwrap().1
        );
    }

    #[test]
    fn every_bad_value_in_the_file_is_reported_with_its_line_and_key() {
        let cases = [
            ("container-runtime-endpoint", "\"fd://3\""),
            ("socket-group", "\"a b\""),
            ("docker-endpoint", "\"tcp://127.0.0.1:2375\""),
            ("root-directory", "\"relative/dir\""),
            ("pod-infra-container-image", "\"\""),
            ("sandbox-oom-score-adj", "-1001"),
            ("sandbox-oom-score-adj", "4294967296"),
            ("runtime-cgroups", "\"docker\""),
            ("network-plugin", "\"kubenet\""),
            ("cni-bin-dir", "[\"/opt/cni/bin\", \"lib\"]"),
            ("cni-bin-dir", "[\"/opt/cni/bin\", \"\"]"),
            ("cni-conf-dir", "\"net.d\""),
            ("pod-cidr", "\"10.0.0.0/8,10.1.0.0/16\""),
            ("hairpin-mode", "\"on\""),
            ("streaming-bind-addr", "\"localhost:10010\""),
            ("image-pull-progress-deadline", "\"0\""),
            ("log-level", "\"verbose\""),
            ("metrics-addr", "\"127.0.0.1\""),
        ];
        for (key, value) in cases {
            let text = format!("\n\n{key} = {value} # bad\n");
            let message = file_error(&["--config=/c.toml"], "/c.toml", &text);
            let prefix = format!("dockshim: /c.toml:3: {key}: invalid ");
            assert!(message.starts_with(&prefix), "{message}");
            assert!(message.contains(&format!(" {value}: ")), "{message}");
        }
    }

    #[test]
    fn list_keys_refuse_empty_lists_and_items_with_commas() {
        assert_eq!(
            file_error(&[], DEFAULT_FILE, "cni-bin-dir = []"),
            format!("dockshim: {DEFAULT_FILE}:1: cni-bin-dir: invalid list []: the list is empty")
        );
        assert!(
            file_error(&[], DEFAULT_FILE, "cni-bin-dir = ['/a,/b']").contains("contains a comma")
        );
    }

    #[test]
    fn values_of_the_wrong_type_are_refused_naming_the_type() {
        let cases = [
            (
                "log-level = 3",
                "log-level: expected a string in quotes, found an integer",
            ),
            (
                "ipv6-dual-stack = \"true\"",
                "ipv6-dual-stack: expected true or false, found a string",
            ),
            (
                "sandbox-oom-score-adj = \"-998\"",
                "sandbox-oom-score-adj: expected an integer, found a string",
            ),
            (
                "cni-bin-dir = \"/opt/cni/bin,/usr/lib/cni\"",
                "cni-bin-dir: expected an array of strings, found a string",
            ),
            (
                "root-directory = ['/a']",
                "root-directory: expected a string in quotes, found an array",
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(
                file_error(&[], DEFAULT_FILE, line),
                format!("dockshim: {DEFAULT_FILE}:1: {reason}")
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion_when_close() {
        assert_eq!(
            file_error(&[], DEFAULT_FILE, "\nnetwrok-plugin = 'cni'"),
            format!(
                "dockshim: {DEFAULT_FILE}:2: netwrok-plugin: unknown key; \
                 did you mean network-plugin?"
            )
        );
        assert_eq!(
            file_error(&[], DEFAULT_FILE, "kubelet-root = '/var/lib/kubelet'"),
            format!(
                "dockshim: {DEFAULT_FILE}:1: kubelet-root: unknown key; the keys are the \
                 flags of dockshim --help without their leading --"
            )
        );
        // Never a key the file refuses anyway.
        assert!(!file_error(&[], DEFAULT_FILE, "confg = 'x'").contains("did you mean"));
    }

    #[test]
    fn flags_that_act_on_the_command_line_are_refused_in_the_file() {
        for key in ["config", "print-config", "help", "version"] {
            assert_eq!(
                file_error(&[], DEFAULT_FILE, &format!("{key} = true")),
                format!(
                    "dockshim: {DEFAULT_FILE}:1: {key}: accepted only on the command line, \
                     as --{key}"
                )
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_file_line_and_key() {
        assert_eq!(
            file_error(
                &["--config=/c.toml"],
                "/c.toml",
                "log-level = 'info'\nlog-level = debug\n"
            ),
            "dockshim: /c.toml:2: log-level: expected a value: a string in quotes, an \
             integer, true, false or an array of strings; text is quoted, as in \"debug\""
        );
        assert_eq!(
            file_error(&["--config=/c.toml"], "/c.toml", "[dockshim]\n"),
            "dockshim: /c.toml:1: tables are not supported: every key goes at the top level, \
             before any [header]"
        );
        assert_eq!(
            file_error(
                &["--config=/c.toml"],
                "/c.toml",
                "log-level = 'a'\nlog-level = 'b'\n"
            ),
            "dockshim: /c.toml:2: log-level: set twice; first set on line 1"
        );
    }

    #[test]
    fn a_file_error_keeps_a_strange_path_on_one_line() {
        let message = file_error(&["--config=/a\nb"], "/a\nb", "x = 1");
        assert!(
            message.starts_with("dockshim: /a\\nb:1: x: unknown key"),
            "{message}"
        );
    }

    #[test]
    fn file_errors_come_before_print_config() {
        assert!(with_file(&["--print-config"], DEFAULT_FILE, "x = 1").is_err());
        assert!(with_file(&["--print-config", "--log-level=x"], DEFAULT_FILE, "").is_err());
    }

    #[test]
    fn help_and_version_do_not_read_the_file() {
        for args in [["--help"], ["--version"]] {
            let command = parse_with(args.iter().map(OsString::from), |path| {
                panic!("read {path:?}")
            });
            assert!(command.is_ok());
        }
    }

    #[test]
    fn print_config_false_runs() {
        assert!(matches!(
            with_file(&["--print-config", "--print-config=false"], "/none", "").unwrap(),
            Command::Run(_)
        ));
    }

    #[test]
    fn print_config_lists_every_key_and_names_its_sources() {
        let printed = print_config(&["--print-config"], "/none", "");
        let mut lines = printed.lines();
        assert_eq!(
            lines.next(),
            Some("# dockshim's configuration: the defaults, then the command line.")
        );
        for flag in flags::FLAGS {
            let set = format!("\n{} = ", flag.long);
            let unset = format!("\n# {} is not set\n", flag.long);
            assert_eq!(
                printed.contains(&set) || printed.contains(&unset),
                flag.in_file(),
                "{}",
                flag.long
            );
        }
        let printed = print_config(&["--print-config"], DEFAULT_FILE, "");
        assert!(printed.starts_with(&format!(
            "# dockshim's configuration: the defaults, then {DEFAULT_FILE}, then the command \
             line.\n"
        )));
    }

    /// Reads `printed` back as the only configuration and prints it again.
    fn round_trip(printed: &str) -> (Config, String) {
        let config = run_with_file(&["--config=/p.toml"], "/p.toml", printed).unwrap();
        let again = print_config(&["--config=/p.toml", "--print-config"], "/p.toml", printed);
        (config, again)
    }

    #[test]
    fn print_config_of_the_defaults_reads_back_as_the_defaults() {
        let printed = print_config(&["--print-config"], "/none", "");
        let (config, again) = round_trip(&printed);
        assert_eq!(config.config_file, Some(PathBuf::from("/p.toml")));
        assert_eq!(
            Config {
                config_file: None,
                ..config
            },
            Config::default()
        );
        assert_eq!(
            again.lines().skip(1).collect::<Vec<_>>(),
            printed.lines().skip(1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn print_config_of_every_key_set_reads_back_the_same() {
        let printed = print_config(
            &["--print-config", "--config=/e.toml"],
            "/e.toml",
            EVERY_KEY,
        );
        let (config, again) = round_trip(&printed);
        let expected = Config {
            config_file: Some(PathBuf::from("/p.toml")),
            ..every_setting_changed()
        };
        assert_eq!(config, expected);
        assert_eq!(
            again.lines().skip(1).collect::<Vec<_>>(),
            printed.lines().skip(1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn print_config_reads_back_values_that_need_escaping() {
        let config = run(&[
            "--root-directory=/srv/a \"b\" \\c\td",
            "--socket-group=grüppe",
            "--streaming-bind-addr=[fe80::1%2]:7",
            "--runtime-request-timeout=1.5s",
            "--image-pull-timeout=1ns",
            "--sandbox-oom-score-adj=1000",
        ])
        .unwrap();
        let printed = doc::config_text(&config);
        let (read_back, _) = round_trip(&printed);
        assert_eq!(
            Config {
                config_file: None,
                ..read_back
            },
            config
        );
    }
}
