//! [`Config`]: the validated settings of one dockshim process, their
//! documented defaults, and each setting as the configuration file writes
//! it, which `--print-config` and the example file show.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config_file::Value;
use super::flags::{self, FlagId};
use super::values;
use super::{CriDockerdMigration, DefaultNetwork, HairpinMode, NetworkPlugin};

/// The validated settings of one dockshim process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
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
    /// What pods join while `cni_conf_dir` holds no configuration.
    pub default_network: DefaultNetwork,
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

impl Default for Config {
    /// The documented defaults; a test checks them against the flag table.
    fn default() -> Config {
        Config {
            config_file: None,
            runtime_endpoint: flags::DEFAULT_RUNTIME_ENDPOINT.to_owned(),
            socket_group: None,
            docker_endpoint: flags::DEFAULT_DOCKER_ENDPOINT.to_owned(),
            root_directory: PathBuf::from(flags::DEFAULT_ROOT_DIRECTORY),
            network_plugin: NetworkPlugin::Cni,
            cni_bin_dirs: flags::DEFAULT_CNI_BIN_DIR
                .split(',')
                .map(PathBuf::from)
                .collect(),
            cni_conf_dir: PathBuf::from(flags::DEFAULT_CNI_CONF_DIR),
            cni_cache_dir: PathBuf::from(flags::DEFAULT_CNI_CACHE_DIR),
            pod_infra_container_image: flags::DEFAULT_POD_INFRA_CONTAINER_IMAGE.to_owned(),
            pod_cidr: None,
            default_network: DefaultNetwork::Auto { bridge: None },
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

/// A setting of `config` as written in the configuration file; `None` for
/// one that is not set, and for flags that are not settings. The inverse of
/// `apply_value`: applying the value read back gives the same setting.
pub(super) fn file_value(config: &Config, id: FlagId) -> Option<Value> {
    let text = |text: &str| Some(Value::String(text.to_owned()));
    let path = |path: &Path| text(&path.to_string_lossy());
    let duration = |duration: Duration| text(&values::format_duration(duration));
    match id {
        FlagId::ContainerRuntimeEndpoint => text(&config.runtime_endpoint),
        FlagId::SocketGroup => config.socket_group.as_deref().and_then(text),
        FlagId::DockerEndpoint => text(&config.docker_endpoint),
        FlagId::RootDirectory => path(&config.root_directory),
        FlagId::PodInfraContainerImage => text(&config.pod_infra_container_image),
        FlagId::SandboxOomScoreAdj => Some(Value::Integer(config.sandbox_oom_score_adj.into())),
        FlagId::RuntimeCgroups => config.runtime_cgroups.as_deref().and_then(text),
        FlagId::NetworkPlugin => text(config.network_plugin.as_str()),
        FlagId::CniBinDir => Some(Value::Strings(
            config
                .cni_bin_dirs
                .iter()
                .map(|dir| dir.to_string_lossy().into_owned())
                .collect(),
        )),
        FlagId::CniConfDir => path(&config.cni_conf_dir),
        FlagId::CniCacheDir => path(&config.cni_cache_dir),
        FlagId::PodCidr => config.pod_cidr.as_deref().and_then(text),
        FlagId::DefaultNetwork => text(&config.default_network.flag_value()),
        FlagId::MigrateFromCriDockerd => text(&config.migrate_from_cri_dockerd.flag_value()),
        FlagId::HairpinMode => text(config.hairpin_mode.as_str()),
        FlagId::Ipv6DualStack => Some(Value::Boolean(config.ipv6_dual_stack)),
        FlagId::StreamingBindAddr => text(&config.streaming_bind_addr.to_string()),
        FlagId::StreamingConnectionIdleTimeout => {
            duration(config.streaming_connection_idle_timeout)
        }
        FlagId::ImagePullProgressDeadline => duration(config.image_pull_progress_deadline),
        FlagId::ImagePullTimeout => duration(config.image_pull_timeout),
        FlagId::RuntimeRequestTimeout => duration(config.runtime_request_timeout),
        FlagId::LogLevel => text(&config.log_level.as_str().to_ascii_lowercase()),
        FlagId::MetricsAddr => config.metrics_addr.and_then(|addr| text(&addr.to_string())),
        FlagId::Config | FlagId::PrintConfig | FlagId::Help | FlagId::Version => None,
    }
}
