//! The command line: flags in, a validated [`Config`] (or help, or version)
//! out.
//!
//! Parsing has two phases. The first reads the arguments left to right
//! against the flag table in `flags` — names, `--flag value` and
//! `--flag=value`, switches — and stops at the first syntax error, `--help` or
//! `--version`. The second turns each value into its typed setting, starting
//! from [`Config::default`]; when a flag is repeated the last one wins. The
//! same table produces [`help_text`] and [`man_page`].
//!
//! This module performs no I/O: it does not touch sockets, look up groups or
//! check that directories exist, and it never exits the process; `main` prints
//! what it returns.

mod doc;
mod flags;
mod values;

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use doc::{help_text, man_page};

/// Checks a pod CIDR list (one CIDR, or an IPv4 and an IPv6 one separated
/// by a comma) the way `--pod-cidr` does, for UpdateRuntimeConfig.
pub fn validate_pod_cidrs(text: &str) -> Result<(), String> {
    values::cidrs(text)
        .map(drop)
        .map_err(|invalid| invalid.reason)
}

use flags::{Flag, FlagId};
use values::Invalid;

/// The exit status for any command-line error.
const USAGE_EXIT_CODE: i32 = 2;

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
}

/// The validated settings of one dockshim process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where CRI gRPC is served: `unix://` followed by an absolute socket
    /// path (a bare path given on the command line is normalised to this
    /// form), or `fd://` for the first socket passed by systemd.
    pub runtime_endpoint: String,
    /// Group owning the created CRI socket, as a name or a numeric ID, not yet
    /// looked up; `None` leaves it to root.
    pub socket_group: Option<String>,
    /// dockerd's API socket: `unix://` followed by an absolute path.
    pub docker_endpoint: String,
    /// Absolute directory for state that survives restarts (checkpoints).
    pub root_directory: PathBuf,
    /// How pod network namespaces are wired.
    pub network_plugin: NetworkPlugin,
    /// Absolute directories searched in order for CNI plugins (`CNI_PATH`).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Absolute directory of the CNI network configuration files.
    pub cni_conf_dir: PathBuf,
    /// Absolute directory where CNI results are cached between ADD and DEL.
    pub cni_cache_dir: PathBuf,
    /// Image of every sandbox container; non-empty, without whitespace.
    pub pod_infra_container_image: String,
    /// Pod CIDR to assume before UpdateRuntimeConfig: one `IP/PREFIX`, or an
    /// IPv4 and an IPv6 one separated by a comma, exactly as given.
    pub pod_cidr: Option<String>,
    /// Absolute cgroup path of the container runtime, exactly as given.
    pub runtime_cgroups: Option<String>,
    /// Who sets hairpin mode on the pod's bridge port.
    pub hairpin_mode: HairpinMode,
    /// Listen address of the streaming server; port 0 picks a free port.
    pub streaming_bind_addr: SocketAddr,
    /// Idle time after which a streaming connection is closed; zero: never.
    pub streaming_connection_idle_timeout: Duration,
    /// Time without progress after which an image pull is cancelled; > 0.
    pub image_pull_progress_deadline: Duration,
    /// Time after which an image pull is cancelled whatever its progress;
    /// zero: never.
    pub image_pull_timeout: Duration,
    /// Bound on each non-streaming Docker API request; > 0.
    pub runtime_request_timeout: Duration,
    /// `oom_score_adj` of sandbox containers, within -1000..=1000.
    pub sandbox_oom_score_adj: i32,
    /// Report both addresses of dual-stack pods.
    pub ipv6_dual_stack: bool,
    /// Whether and from where cri-dockerd's pod sandboxes are adopted at
    /// start.
    pub migrate_from_cri_dockerd: CriDockerdMigration,
    /// Least severe level that is logged.
    pub log_level: log::LevelFilter,
    /// Address of the Prometheus metrics endpoint; `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// The socket path to create, or `None` for `fd://`.
    pub fn runtime_socket_path(&self) -> Option<&Path> {
        self.runtime_endpoint.strip_prefix("unix://").map(Path::new)
    }

    /// The path of dockerd's API socket.
    pub fn docker_socket_path(&self) -> &Path {
        let path = self.docker_endpoint.strip_prefix("unix://");
        Path::new(path.unwrap_or(&self.docker_endpoint))
    }
}

impl Default for Config {
    /// The documented defaults; a test checks them against the flag table.
    fn default() -> Config {
        Config {
            runtime_endpoint: flags::DEFAULT_RUNTIME_ENDPOINT.to_owned(),
            socket_group: None,
            docker_endpoint: flags::DEFAULT_DOCKER_ENDPOINT.to_owned(),
            root_directory: PathBuf::from(flags::DEFAULT_ROOT_DIRECTORY),
            network_plugin: NetworkPlugin::Cni,
            cni_bin_dirs: vec![PathBuf::from(flags::DEFAULT_CNI_BIN_DIR)],
            cni_conf_dir: PathBuf::from(flags::DEFAULT_CNI_CONF_DIR),
            cni_cache_dir: PathBuf::from(flags::DEFAULT_CNI_CACHE_DIR),
            pod_infra_container_image: flags::DEFAULT_POD_INFRA_CONTAINER_IMAGE.to_owned(),
            pod_cidr: None,
            runtime_cgroups: None,
            hairpin_mode: HairpinMode::HairpinVeth,
            streaming_bind_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            streaming_connection_idle_timeout: Duration::from_secs(4 * 60 * 60),
            image_pull_progress_deadline: Duration::from_secs(60),
            image_pull_timeout: Duration::from_secs(30 * 60),
            runtime_request_timeout: Duration::from_secs(2 * 60),
            sandbox_oom_score_adj: -998,
            ipv6_dual_stack: false,
            migrate_from_cri_dockerd: CriDockerdMigration::Auto,
            log_level: log::LevelFilter::Info,
            metrics_addr: None,
        }
    }
}

/// `--network-plugin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPlugin {
    /// Pods get their network from CNI plugins.
    Cni,
    /// Host-network pods only: NetworkReady is always true and other pods
    /// are refused.
    None,
}

impl NetworkPlugin {
    /// The flag value that selects this plugin.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPlugin::Cni => "cni",
            NetworkPlugin::None => "none",
        }
    }
}

/// cri-dockerd's `--cri-dockerd-root-directory` default, which
/// `--migrate-from-cri-dockerd=auto` looks in.
pub const CRI_DOCKERD_ROOT_DIRECTORY: &str = "/var/lib/cri-dockerd";

/// `--migrate-from-cri-dockerd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriDockerdMigration {
    /// From [`CRI_DOCKERD_ROOT_DIRECTORY`], when what is found there shows
    /// that cri-dockerd served this dockerd and has stopped.
    Auto,
    /// Never.
    Off,
    /// From this absolute root directory of cri-dockerd, which must hold a
    /// `sandbox` directory.
    From(PathBuf),
}

/// `--hairpin-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HairpinMode {
    /// dockshim sets `hairpin_mode` on the host end of the pod's veth.
    HairpinVeth,
    /// The bridge is promiscuous; left to the CNI bridge plugin.
    PromiscuousBridge,
    /// Nothing is done.
    None,
}

impl HairpinMode {
    /// The flag value that selects this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            HairpinMode::HairpinVeth => "hairpin-veth",
            HairpinMode::PromiscuousBridge => "promiscuous-bridge",
            HairpinMode::None => "none",
        }
    }
}

/// A command line that cannot be run. Its `Display` is the one line to print
/// on stderr, starting with `dockshim:` and naming the offending flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// A `-x` or `--name` that is not in the flag table.
    UnknownFlag {
        /// As typed, without any `=value`.
        flag: String,
        /// The closest known long name, if it is close.
        suggestion: Option<&'static str>,
    },
    /// A flag that takes a value came last.
    MissingValue {
        flag: &'static str,
        value_name: &'static str,
    },
    /// A value that does not parse or is out of range.
    InvalidValue {
        flag: &'static str,
        kind: &'static str,
        value: String,
        reason: String,
    },
    /// dockshim takes no positional arguments.
    UnexpectedArgument { argument: String },
}

impl CliError {
    /// The process exit status for this error: always 2, a usage error.
    pub fn exit_code(&self) -> i32 {
        USAGE_EXIT_CODE
    }

    fn invalid(flag: &'static Flag, value: &str, invalid: Invalid) -> CliError {
        CliError::InvalidValue {
            flag: flag.long,
            kind: invalid.kind,
            value: value.to_owned(),
            reason: invalid.reason,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are printed with `{:?}` so that quotes, newlines and control
        // characters come out escaped and the message stays on one line.
        match self {
            CliError::UnknownFlag {
                flag,
                suggestion: Some(suggestion),
            } => {
                write!(
                    f,
                    "dockshim: unknown flag {flag:?}; did you mean --{suggestion}?"
                )
            }
            CliError::UnknownFlag {
                flag,
                suggestion: None,
            } => {
                write!(f, "dockshim: unknown flag {flag:?}; see dockshim --help")
            }
            CliError::MissingValue { flag, value_name } => {
                write!(f, "dockshim: --{flag}: missing value {value_name}")
            }
            CliError::InvalidValue {
                flag,
                kind,
                value,
                reason,
            } => {
                write!(f, "dockshim: --{flag}: invalid {kind} {value:?}: {reason}")
            }
            CliError::UnexpectedArgument { argument } => {
                write!(
                    f,
                    "dockshim: unexpected argument {argument:?}: dockshim takes only flags"
                )
            }
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments that follow the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    match read_flags(args)? {
        FirstPhase::Help => Ok(Command::Help(help_text())),
        FirstPhase::Version => Ok(Command::Version(doc::version_line())),
        FirstPhase::Settings(settings) => build_config(settings).map(Command::Run),
    }
}

/// A flag's value before validation.
#[derive(Debug)]
enum RawValue {
    Switch(bool),
    Text(String),
}

/// What the first phase found.
#[derive(Debug)]
enum FirstPhase {
    Help,
    Version,
    Settings(Vec<(&'static Flag, RawValue)>),
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
            _ => settings.push((flag, value)),
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

fn build_config(settings: Vec<(&'static Flag, RawValue)>) -> Result<Config, CliError> {
    let mut config = Config::default();
    for (flag, value) in settings {
        match value {
            RawValue::Switch(on) => apply_switch(&mut config, flag.id, on),
            RawValue::Text(text) => {
                apply_value(&mut config, flag.id, &text)
                    .map_err(|invalid| CliError::invalid(flag, &text, invalid))?;
            }
        }
    }
    Ok(config)
}

fn apply_switch(config: &mut Config, id: FlagId, on: bool) {
    if id == FlagId::Ipv6DualStack {
        config.ipv6_dual_stack = on;
    }
    // The other switches, --help and --version, end the first phase when on
    // and mean nothing when off.
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
        // Switches never carry text: the first phase gives them RawValue::Switch.
        FlagId::Ipv6DualStack | FlagId::Help | FlagId::Version => {}
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

    fn run(args: &[&str]) -> Result<Config, CliError> {
        match parse(args.iter().map(OsString::from))? {
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
        for flag in flags::FLAGS {
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
            "--cni-bin-dir=/opt/cni/bin,/usr/lib/cni",
            "--cni-conf-dir=/etc/cni/other",
            "--cni-cache-dir=/var/cache/cni",
            "--pod-cidr=10.244.0.0/16,fd00::/64",
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
        let expected = Config {
            runtime_endpoint: "unix:///run/x.sock".to_owned(),
            socket_group: Some("docker".to_owned()),
            docker_endpoint: "unix:///run/docker.sock".to_owned(),
            root_directory: PathBuf::from("/srv/dockshim"),
            network_plugin: NetworkPlugin::None,
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cni_conf_dir: PathBuf::from("/etc/cni/other"),
            cni_cache_dir: PathBuf::from("/var/cache/cni"),
            pod_infra_container_image: "example.org/pause:1".to_owned(),
            pod_cidr: Some("10.244.0.0/16,fd00::/64".to_owned()),
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
        };
        assert_eq!(config, expected);
        assert_eq!(config.runtime_socket_path(), Some(Path::new("/run/x.sock")));
        assert_eq!(config.docker_socket_path(), Path::new("/run/docker.sock"));
    }

    #[test]
    fn socket_activation_has_no_socket_path() {
        let config = run(&["--container-runtime-endpoint", "fd://"]).unwrap();
        assert_eq!(config.runtime_endpoint, "fd://");
        assert_eq!(config.runtime_socket_path(), None);
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
            run(&["--migrate-from-cri-dockerd", CRI_DOCKERD_ROOT_DIRECTORY])
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
        let err = parse([OsString::from("--root-directory"), bad]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("dockshim: --root-directory: invalid value"));
        let bad = OsString::from_vec(b"--root-directory=/\xff".to_vec());
        let err = parse([bad]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("dockshim: --root-directory: invalid value"));
        assert!(err.to_string().ends_with("not valid UTF-8"));
    }

    #[test]
    fn help_and_version_win_over_later_arguments() {
        let parse_strs = |args: &[&str]| parse(args.iter().map(OsString::from)).unwrap();
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
}
