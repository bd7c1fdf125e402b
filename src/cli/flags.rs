//! The table of every command-line flag: name, value, default, help line,
//! man-page paragraph and category.
//!
//! The parser, `--help` and the man page all read this one table, so a flag
//! cannot exist in one of them and be missing from the others. This file holds
//! descriptions only: it parses and validates nothing (see `values` and the
//! parent module).

/// Where a flag is listed in `--help` and in the man page, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Endpoints,
    Sandboxes,
    Networking,
    Streaming,
    Timeouts,
    Logging,
    Other,
}

impl Category {
    pub(crate) const ALL: [Category; 7] = [
        Category::Endpoints,
        Category::Sandboxes,
        Category::Networking,
        Category::Streaming,
        Category::Timeouts,
        Category::Logging,
        Category::Other,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Category::Endpoints => "Endpoints",
            Category::Sandboxes => "Sandboxes and state",
            Category::Networking => "Pod networking",
            Category::Streaming => "Streaming (exec, attach, port-forward)",
            Category::Timeouts => "Timeouts",
            Category::Logging => "Logging and metrics",
            Category::Other => "Other",
        }
    }
}

/// Which setting a flag controls; the second parsing phase matches on it
/// exhaustively, so a flag added here cannot be silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagId {
    ContainerRuntimeEndpoint,
    SocketGroup,
    DockerEndpoint,
    RootDirectory,
    PodInfraContainerImage,
    SandboxOomScoreAdj,
    MigrateFromCriDockerd,
    RuntimeCgroups,
    NetworkPlugin,
    CniBinDir,
    CniConfDir,
    CniCacheDir,
    PodCidr,
    DefaultNetwork,
    HairpinMode,
    Ipv6DualStack,
    StreamingBindAddr,
    StreamingConnectionIdleTimeout,
    ImagePullProgressDeadline,
    ImagePullTimeout,
    RuntimeRequestTimeout,
    LogLevel,
    MetricsAddr,
    Config,
    PrintConfig,
    Help,
    Version,
}

/// One flag's description.
#[derive(Debug)]
pub(crate) struct Flag {
    pub(crate) id: FlagId,
    /// Spelled without the leading `--`.
    pub(crate) long: &'static str,
    pub(crate) short: Option<char>,
    /// `None` marks a switch, which takes no separate value argument.
    pub(crate) value_name: Option<&'static str>,
    /// The default as a user would write it; `None` when unset by default.
    pub(crate) default: Option<&'static str>,
    pub(crate) category: Category,
    /// One line for `--help`.
    pub(crate) help: &'static str,
    /// A plain-text paragraph for the man page (escaped when rendered).
    pub(crate) doc: &'static str,
}

pub(crate) const DEFAULT_RUNTIME_ENDPOINT: &str = "unix:///run/dockshim.sock";
pub(crate) const DEFAULT_DOCKER_ENDPOINT: &str = "unix:///var/run/docker.sock";
pub(crate) const DEFAULT_ROOT_DIRECTORY: &str = "/var/lib/dockshim";
pub(crate) const DEFAULT_POD_INFRA_CONTAINER_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Plugins installed by hand or by a network add-on first, then Debian's
/// containernetworking-plugins: a node finds either without a flag.
pub(crate) const DEFAULT_CNI_BIN_DIR: &str = "/opt/cni/bin,/usr/lib/cni";
pub(crate) const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub(crate) const DEFAULT_CNI_CACHE_DIR: &str = "/var/lib/cni/cache";
pub(crate) const DEFAULT_CONFIG_FILE: &str = "/etc/dockshim/dockshim.toml";

/// How a flag's setting is written in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileValue {
    /// `true` or `false`.
    Boolean,
    /// A decimal integer.
    Integer,
    /// A string holding what the flag's value would be.
    String,
    /// An array of strings, one per item of the flag's comma-separated list.
    Strings,
    /// Not a setting: it acts on the command line itself.
    CommandLineOnly,
}

impl Flag {
    pub(crate) fn file_value(&self) -> FileValue {
        match self.id {
            FlagId::Config | FlagId::PrintConfig | FlagId::Help | FlagId::Version => {
                FileValue::CommandLineOnly
            }
            FlagId::SandboxOomScoreAdj => FileValue::Integer,
            FlagId::CniBinDir => FileValue::Strings,
            _ if self.value_name.is_none() => FileValue::Boolean,
            _ => FileValue::String,
        }
    }

    /// Whether the configuration file may set this flag.
    pub(crate) fn in_file(&self) -> bool {
        self.file_value() != FileValue::CommandLineOnly
    }
}

/// Every flag, in the order `--help` and the man page list them.
pub(crate) static FLAGS: &[Flag] = &[
    Flag {
        id: FlagId::ContainerRuntimeEndpoint,
        long: "container-runtime-endpoint",
        short: None,
        value_name: Some("ENDPOINT"),
        default: Some(DEFAULT_RUNTIME_ENDPOINT),
        category: Category::Endpoints,
        help: "Where to serve CRI gRPC: unix://PATH, an absolute PATH, or fd:// (systemd)",
        doc: "Where the kubelet reaches dockshim. unix://PATH, or an absolute PATH, makes \
              dockshim create a unix socket there with mode 0660, owned by root and by the \
              group of --socket-group; the lock file PATH.lock keeps a second dockshim from \
              taking over a live socket, and a stale socket left behind by a crash is \
              replaced. fd:// serves on the socket passed by systemd socket activation \
              (LISTEN_FDS); only the first passed socket is used, its owner and mode are set \
              by the socket unit, and dockshim takes the same PATH.lock for the path it is \
              bound to but never removes or changes it.",
    },
    Flag {
        id: FlagId::SocketGroup,
        long: "socket-group",
        short: None,
        value_name: Some("GROUP"),
        default: None,
        category: Category::Endpoints,
        help: "Group (name or number) owning the CRI socket; unset: root",
        doc: "Name or numeric ID of the group that owns the CRI socket, so that its members \
              may talk to dockshim. Unset, the socket belongs to root:root. The group is \
              looked up when the socket is created.",
    },
    Flag {
        id: FlagId::DockerEndpoint,
        long: "docker-endpoint",
        short: None,
        value_name: Some("ENDPOINT"),
        default: Some(DEFAULT_DOCKER_ENDPOINT),
        category: Category::Endpoints,
        help: "Docker Engine API socket: unix://PATH or an absolute PATH",
        doc: "The unix socket on which dockerd serves the Docker Engine API. dockshim needs \
              API version 1.41 (Docker 20.10) or newer. TCP endpoints are not supported.",
    },
    Flag {
        id: FlagId::RootDirectory,
        long: "root-directory",
        short: None,
        value_name: Some("DIR"),
        default: Some(DEFAULT_ROOT_DIRECTORY),
        category: Category::Sandboxes,
        help: "Absolute path of dockshim's state directory (sandbox checkpoints)",
        doc: "Absolute path of the directory where dockshim keeps what must survive a \
              restart: one checkpoint per pod sandbox, recording its name, namespace, port \
              mappings and network mode.",
    },
    Flag {
        id: FlagId::PodInfraContainerImage,
        long: "pod-infra-container-image",
        short: None,
        value_name: Some("IMAGE"),
        default: Some(DEFAULT_POD_INFRA_CONTAINER_IMAGE),
        category: Category::Sandboxes,
        help: "Image of the sandbox (pause) container holding each pod's namespaces",
        doc: "The image each pod's sandbox container runs. The sandbox container holds the \
              pod's network namespace for the pod's lifetime. The image is reported as \
              pinned, so the kubelet's image garbage collection leaves it alone.",
    },
    Flag {
        id: FlagId::SandboxOomScoreAdj,
        long: "sandbox-oom-score-adj",
        short: None,
        value_name: Some("SCORE"),
        default: Some("-998"),
        category: Category::Sandboxes,
        help: "oom_score_adj of sandbox containers, from -1000 to 1000",
        doc: "The oom_score_adj given to every sandbox container, so that under memory \
              pressure the kernel kills a pod's workloads before the container that holds \
              its namespaces. From -1000 to 1000.",
    },
    Flag {
        id: FlagId::MigrateFromCriDockerd,
        long: "migrate-from-cri-dockerd",
        short: None,
        value_name: Some("DIR|auto|off"),
        default: Some("auto"),
        category: Category::Sandboxes,
        help: "Adopt the pods cri-dockerd left in its root DIR at start (auto, off)",
        doc: "At start, adopt the pod sandboxes cri-dockerd left in DIR (its \
              --cri-dockerd-root-directory), so that a node switches from cri-dockerd to \
              dockshim without restarting a pod. Each checkpoint in DIR/sandbox that dockshim \
              does not have yet is copied into dockshim's root directory with the pod's IP \
              addresses (from the CNI result cache in --cni-cache-dir, else read inside the \
              running sandbox's network namespace) and the CNI network it is attached to, \
              then moved to DIR/sandbox/.migrated-to-dockshim, where cri-dockerd no longer \
              sees it. No container is stopped or started and no CNI plugin runs; the pod's \
              CNI DEL runs once, at its StopPodSandbox, also for a checkpoint whose \
              container is gone. Given a DIR, dockshim refuses to start while a cri-dockerd \
              process runs or when DIR/sandbox does not exist. auto adopts from \
              /var/lib/cri-dockerd when its sandbox directory exists, no cri-dockerd process \
              runs and at least one checkpoint there names a container of this dockerd; it \
              does nothing otherwise. off never adopts.",
    },
    Flag {
        id: FlagId::RuntimeCgroups,
        long: "runtime-cgroups",
        short: None,
        value_name: Some("CGROUP"),
        default: None,
        category: Category::Sandboxes,
        help: "Accepted and checked; dockshim does not use it yet",
        doc: "Absolute path, below the cgroup root, of a cgroup for the container runtime \
              (dockerd and containerd), as cri-dockerd's flag of the same name. dockshim \
              checks the value but never moves the runtime's processes: the runtime's \
              cgroups are left as its service manager made them.",
    },
    Flag {
        id: FlagId::NetworkPlugin,
        long: "network-plugin",
        short: None,
        value_name: Some("PLUGIN"),
        default: Some("cni"),
        category: Category::Networking,
        help: "cni, or none for host-network pods only",
        doc: "cni wires each pod's network namespace with the CNI plugins configured in \
              --cni-conf-dir. none gives dockshim no pod networking: the runtime always \
              reports NetworkReady, and sandboxes that do not use the host network are \
              refused.",
    },
    Flag {
        id: FlagId::CniBinDir,
        long: "cni-bin-dir",
        short: None,
        value_name: Some("DIRS"),
        default: Some(DEFAULT_CNI_BIN_DIR),
        category: Category::Networking,
        help: "Directories of CNI plugin binaries; several may be listed, comma-separated",
        doc: "Absolute paths of the directories searched, in order, for CNI plugin \
              executables; plugins receive them as CNI_PATH. Several directories may be \
              listed, separated by commas. The default searches /opt/cni/bin, where plugins \
              installed by hand or by a network add-on go, before /usr/lib/cni, where \
              Debian's containernetworking-plugins package installs them.",
    },
    Flag {
        id: FlagId::CniConfDir,
        long: "cni-conf-dir",
        short: None,
        value_name: Some("DIR"),
        default: Some(DEFAULT_CNI_CONF_DIR),
        category: Category::Networking,
        help: "Directory holding the CNI network configuration",
        doc: "Absolute path of the directory holding the CNI network configuration: the \
              first .conflist or .conf file in lexical order defines the pod network.",
    },
    Flag {
        id: FlagId::CniCacheDir,
        long: "cni-cache-dir",
        short: None,
        value_name: Some("DIR"),
        default: Some(DEFAULT_CNI_CACHE_DIR),
        category: Category::Networking,
        help: "Directory caching CNI results for later DEL and CHECK",
        doc: "Absolute path of the directory where the result of each CNI ADD is kept, so \
              that the matching DEL and CHECK get the same configuration and result.",
    },
    Flag {
        id: FlagId::PodCidr,
        long: "pod-cidr",
        short: None,
        value_name: Some("CIDRS"),
        default: None,
        category: Category::Networking,
        help: "Pod CIDR as if sent by UpdateRuntimeConfig at start; IPv4,IPv6 for dual stack",
        doc: "The pod CIDR to use until the kubelet sends one with UpdateRuntimeConfig: one \
              CIDR, or an IPv4 and an IPv6 CIDR separated by a comma for dual stack. Meant \
              for running without a kubelet; with CNI, pod addresses normally come from the \
              IPAM plugin's own configuration.",
    },
    Flag {
        id: FlagId::DefaultNetwork,
        long: "default-network",
        short: None,
        value_name: Some("MODE"),
        default: Some("auto"),
        category: Category::Networking,
        help: "auto: a built-in bridge network while --cni-conf-dir is empty; auto:BRIDGE; off",
        doc: "What pods that do not use the host network join while --cni-conf-dir holds no \
              configuration file at all. auto serves a built-in network: the bridge plugin \
              on a bridge named dockshim0 (the pods' gateway, masquerading their traffic to \
              other networks, with hairpin mode), host-local addresses from the pod CIDR \
              (--pod-cidr or UpdateRuntimeConfig, else 10.86.0.0/16), the firewall plugin, \
              so that dockerd's FORWARD policy does not drop the pods' traffic, and portmap \
              for host ports. The plugins are looked up in --cni-bin-dir. auto:BRIDGE names \
              the bridge (and the network) otherwise, for a second dockshim on the same \
              host. The configuration is kept in memory, nothing is written to \
              --cni-conf-dir, and the first configuration file that appears there wins for \
              every later pod; pods started on the built-in network are still torn down \
              by it. off keeps NetworkReady false until a configuration file appears. \
              Status's verbose info says which configuration is in use.",
    },
    Flag {
        id: FlagId::HairpinMode,
        long: "hairpin-mode",
        short: None,
        value_name: Some("MODE"),
        default: Some("hairpin-veth"),
        category: Category::Networking,
        help: "hairpin-veth, promiscuous-bridge or none",
        doc: "How a pod reaches itself through a Service address. hairpin-veth turns on \
              hairpin mode on the host end of the pod's veth \
              (/sys/class/net/VETH/brport/hairpin_mode). promiscuous-bridge (also spelled \
              promisc-bridge) and none leave it to the CNI bridge plugin and its hairpinMode \
              setting.",
    },
    Flag {
        id: FlagId::Ipv6DualStack,
        long: "ipv6-dual-stack",
        short: None,
        value_name: None,
        default: None,
        category: Category::Networking,
        help: "Report both the IPv4 and the IPv6 address of dual-stack pods",
        doc: "Report both the IPv4 and the IPv6 address of a dual-stack pod in its sandbox \
              status; without this switch only the first address is reported. Also \
              accepted as --ipv6-dual-stack=true or --ipv6-dual-stack=false.",
    },
    Flag {
        id: FlagId::StreamingBindAddr,
        long: "streaming-bind-addr",
        short: None,
        value_name: Some("ADDR"),
        default: Some("127.0.0.1:0"),
        category: Category::Streaming,
        help: "Listen address of the streaming server: IP or IP:PORT, IPv6 in brackets",
        doc: "Address of the HTTP server that carries exec, attach and port-forward streams. \
              An IP without a port, or port 0, picks a free port. Write IPv6 addresses in \
              brackets, as in [::1]:10010. The server has no authentication of its own: it \
              hands out single-use URLs that expire. It listens on loopback unless told \
              otherwise, which suffices because the kubelet proxies streams; listen on all \
              interfaces (0.0.0.0 or [::]) only on a trusted network.",
    },
    Flag {
        id: FlagId::StreamingConnectionIdleTimeout,
        long: "streaming-connection-idle-timeout",
        short: None,
        value_name: Some("DURATION"),
        default: Some("4h"),
        category: Category::Streaming,
        help: "Close streaming connections idle this long; 0: never",
        doc: "A streaming connection that carries no data for this long is closed. 0 \
              disables the timeout.",
    },
    Flag {
        id: FlagId::ImagePullProgressDeadline,
        long: "image-pull-progress-deadline",
        short: None,
        value_name: Some("DURATION"),
        default: Some("1m"),
        category: Category::Timeouts,
        help: "Cancel an image pull that makes no progress for this long",
        doc: "An image pull that reports no progress for this long is cancelled. Must be \
              greater than 0.",
    },
    Flag {
        id: FlagId::ImagePullTimeout,
        long: "image-pull-timeout",
        short: None,
        value_name: Some("DURATION"),
        default: Some("30m"),
        category: Category::Timeouts,
        help: "Cancel an image pull still running after this long; 0: never",
        doc: "An image pull still running this long after it started is cancelled, even \
              while it reports progress: a registry that trickles bytes would otherwise \
              hold it, and the kubelet's queue of pulls behind it, forever. The default \
              leaves a multi-gigabyte image room on a slow link. The PullImage call's own \
              deadline applies as well. 0 disables the limit.",
    },
    Flag {
        id: FlagId::RuntimeRequestTimeout,
        long: "runtime-request-timeout",
        short: None,
        value_name: Some("DURATION"),
        default: Some("2m"),
        category: Category::Timeouts,
        help: "Timeout of each Docker API request except streams and image pulls",
        doc: "Upper bound on each request to dockerd, except long-lived streams (exec, \
              attach, logs, events) and image pulls, which --image-pull-progress-deadline \
              and --image-pull-timeout bound instead. Must be greater than 0.",
    },
    Flag {
        id: FlagId::LogLevel,
        long: "log-level",
        short: None,
        value_name: Some("LEVEL"),
        default: Some("info"),
        category: Category::Logging,
        help: "error, warn, info, debug or trace",
        doc: "The least severe level of messages written to standard error: error, warn, \
              info, debug or trace. Under systemd (JOURNAL_STREAM set) each line starts with \
              its syslog priority and carries no timestamp; otherwise each line starts with \
              an RFC 3339 UTC timestamp.",
    },
    Flag {
        id: FlagId::MetricsAddr,
        long: "metrics-addr",
        short: None,
        value_name: Some("ADDR"),
        default: None,
        category: Category::Logging,
        help: "IP:PORT of the Prometheus metrics endpoint; unset: none",
        doc: "Serves Prometheus text metrics at /metrics on this IP:PORT (IPv6 in \
              brackets): CRI calls, errors and latencies, Docker calls and latencies, the \
              state index. Any valid address is accepted, including non-loopback ones, with \
              a warning; the endpoint has no authentication, so prefer a loopback address.",
    },
    Flag {
        id: FlagId::Config,
        long: "config",
        short: None,
        value_name: Some("FILE"),
        default: Some(DEFAULT_CONFIG_FILE),
        category: Category::Other,
        help: "Configuration file to read; '' for none",
        doc: "The configuration file to read before the flags; a flag given on the command \
              line overrides the file's setting. When the default file does not exist, \
              dockshim runs on flags and defaults alone; a file named with --config must \
              exist. An empty FILE (--config '') reads no file. See CONFIGURATION FILE.",
    },
    Flag {
        id: FlagId::PrintConfig,
        long: "print-config",
        short: None,
        value_name: None,
        default: None,
        category: Category::Other,
        help: "Print the configuration from defaults, file and flags, and exit",
        doc: "Print the configuration that results from the defaults, the configuration \
              file and the other flags, every key, in the configuration file's format, and \
              exit with status 0. Read back as a configuration file, the output gives the \
              same configuration. An invalid file or flag is reported as it would be at \
              start.",
    },
    Flag {
        id: FlagId::Help,
        long: "help",
        short: Some('h'),
        value_name: None,
        default: None,
        category: Category::Other,
        help: "Print this help and exit",
        doc: "Print a summary of the flags and exit.",
    },
    Flag {
        id: FlagId::Version,
        long: "version",
        short: Some('V'),
        value_name: None,
        default: None,
        category: Category::Other,
        help: "Print the version and exit",
        doc: "Print the program name and version and exit.",
    },
];

/// The flag spelled `--name` (without the dashes).
pub(crate) fn by_long(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.long == name)
}

/// The flag spelled `-c`.
pub(crate) fn by_short(c: char) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.short == Some(c))
}

/// The long name closest to a mistyped one, if it is within two edits.
pub(crate) fn closest_long(name: &str) -> Option<&'static str> {
    const MAX_SUGGESTION_DISTANCE: usize = 2;
    FLAGS
        .iter()
        .map(|flag| (edit_distance(name, flag.long), flag.long))
        .filter(|&(distance, _)| distance <= MAX_SUGGESTION_DISTANCE)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, long)| long)
}

/// Levenshtein distance over chars, keeping one row of the table.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_exactly_one_flag() {
        for (i, flag) in FLAGS.iter().enumerate() {
            let same_id = FLAGS.iter().filter(|other| other.id == flag.id).count();
            let same_name = FLAGS.iter().filter(|other| other.long == flag.long).count();
            assert_eq!((same_id, same_name), (1, 1), "flag #{i} --{}", flag.long);
        }
    }

    #[test]
    fn switches_have_no_default_and_values_have_a_name() {
        for flag in FLAGS {
            if flag.value_name.is_none() {
                assert_eq!(flag.default, None, "--{}", flag.long);
            }
            assert!(
                !flag.help.is_empty() && !flag.doc.is_empty(),
                "--{}",
                flag.long
            );
            assert!(
                !flag.help.contains('\n') && !flag.doc.contains('\n'),
                "--{}",
                flag.long
            );
        }
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("log-level", "log-level"), 0);
        assert_eq!(edit_distance("log-levl", "log-level"), 1);
        assert_eq!(edit_distance("log-lavel", "log-level"), 1);
        assert_eq!(edit_distance("netwrok-plugin", "network-plugin"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn close_misspellings_get_a_suggestion_and_far_ones_do_not() {
        assert_eq!(closest_long("netwrok-plugin"), Some("network-plugin"));
        assert_eq!(closest_long("docker-endpiont"), Some("docker-endpoint"));
        assert_eq!(closest_long("cri-dockerd-root-directory"), None);
    }
}
