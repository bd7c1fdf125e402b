//! `PodSandboxConfig` → the `POST /containers/create` body of the sandbox
//! ("pause") container, and the namespace modes read back from it.
//!
//! Everything in a sandbox configuration is either applied, checked, or
//! handled elsewhere on purpose; nothing is dropped unnoticed:
//!
//! - runtime handler: the default (`""`, or `docker` as cri-dockerd also
//!   calls it) sends no `Runtime`, so dockerd's `DefaultRuntime` applies;
//!   any other handler names one of the runtimes dockerd lists in `/info`
//!   and becomes `HostConfig.Runtime`, which every container of the pod
//!   then repeats. An unknown handler is NOT_FOUND naming it and the known
//!   ones, as the CRI asks.
//! - metadata: checked to make a valid name (see `naming`); the name itself
//!   is made by `naming::sandbox_name`.
//! - hostname: Docker's `Hostname`, except with host networking, where the
//!   sandbox also shares the host's UTS namespace (`UTSMode=host`) and so
//!   its hostname; Docker refuses a hostname together with that mode.
//! - labels, annotations: see `labels`.
//! - DNS: validated here; `dns::resolv_conf` renders the file the handler
//!   writes after the start. Port mappings: validated here, then used for
//!   the checkpoint and the CNI `portMappings` capability, never given to
//!   Docker (with `NetworkMode=none` Docker's port publishing is inert, with
//!   host networking there is nothing to publish).
//! - namespaces: network NODE → `NetworkMode=host`, else `none` for CNI to
//!   wire (refused as FAILED_PRECONDITION under `--network-plugin=none`);
//!   PID NODE → `PidMode=host`; IPC NODE → `IpcMode=host`, else `shareable`
//!   so containers can join it. POD and CONTAINER both mean the sandbox's
//!   own namespace; TARGET makes no sense for a sandbox. User namespaces
//!   with ID mappings (`hostUsers: false`) are UNIMPLEMENTED: Docker only
//!   has a daemon-wide remapping.
//! - sysctls: see `sysctl`.
//! - cgroup parent: passed on; with dockerd's systemd cgroup driver only the
//!   last path element, which must be a `.slice` (a cgroupfs-style path
//!   means the kubelet and dockerd disagree on the driver: refused with a
//!   message saying so).
//! - security context: user and group, supplemental groups (policy Strict
//!   is UNIMPLEMENTED: Docker always merges the image's groups), read-only
//!   root, privileged, SELinux, seccomp (or the deprecated
//!   `seccomp_profile_path` when `seccomp` is absent) and AppArmor as in
//!   `security`; a privileged sandbox gets no seccomp or AppArmor option,
//!   since privileged means unconfined. `no-new-privileges` always: the
//!   pause process never needs to gain privileges.
//! - resources: `CpuShares=2` and `--sandbox-oom-score-adj`, as
//!   cri-dockerd does. The pod-level `resources` and `overhead` are not
//!   applied to the pause container: the kubelet already sizes the pod's
//!   cgroup, which is the `cgroup_parent` every container of the pod lives
//!   in, and Docker has no cgroup of its own for a pod.
//! - fixed: `ShmSize` 64 MiB, no health check, restart policy `no`.
//! - `log_directory` concerns containers only; `windows` does not apply on
//!   Linux.

use std::net::IpAddr;

use super::security::{self, SeccompProfiles, NO_NEW_PRIVILEGES};
use super::{dns, sysctl, SandboxConfigError};
use crate::api::v1;
use crate::cri::error::NamingError;
use crate::cri::labels;
use crate::cri::naming;
use crate::docker::{ContainerCreate, CreateHostConfig, HealthConfig, Resources, RestartPolicy};
use crate::network::NetworkPlugin;

/// The runtime handler name that, like the empty one, selects Docker.
pub const DEFAULT_RUNTIME_HANDLER: &str = "docker";
/// CPU weight of the pause container: it only sleeps.
pub const SANDBOX_CPU_SHARES: i64 = 2;
/// Size of `/dev/shm`, Docker's own default made explicit.
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

/// Docker's mode value for a host namespace.
const HOST_MODE: &str = "host";
/// A network namespace of its own with only a loopback device, for CNI.
const NETWORK_MODE_NONE: &str = "none";
/// An IPC namespace of its own that other containers may join.
const IPC_MODE_SHAREABLE: &str = "shareable";
/// What a systemd cgroup parent must end with.
const SYSTEMD_SLICE_SUFFIX: &str = ".slice";

/// The node-wide and per-request inputs besides the CRI configuration.
#[derive(Debug, Clone, Copy)]
pub struct SandboxOptions<'a> {
    /// `--pod-infra-container-image`.
    pub image: &'a str,
    /// `--sandbox-oom-score-adj`.
    pub oom_score_adj: i32,
    /// `--network-plugin`.
    pub network_plugin: NetworkPlugin,
    /// dockerd's cgroup driver (`GET /info` `CgroupDriver`).
    pub cgroup_driver: v1::CgroupDriver,
    /// Whether dockerd confines containers with AppArmor (`GET /info`
    /// `SecurityOptions`); a Localhost profile is refused without it.
    pub node_has_apparmor: bool,
    /// `RunPodSandboxRequest.runtime_handler`.
    pub runtime_handler: &'a str,
    /// The runtimes dockerd offers (`GET /info` `Runtimes`), by name.
    pub runtimes: &'a [String],
    /// Where Localhost seccomp profiles are read from.
    pub seccomp_profiles: &'a dyn SeccompProfiles,
}

/// Which of a sandbox's namespaces are the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxNamespaces {
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
}

/// The `HostConfig.Runtime` for the runtime handler `handler`, given the
/// runtimes dockerd offers: empty for the default handler, else the
/// runtime of that name.
pub fn docker_runtime(handler: &str, runtimes: &[String]) -> Result<String, SandboxConfigError> {
    if is_default_runtime_handler(handler) {
        return Ok(String::new());
    }
    if runtimes.iter().any(|runtime| runtime == handler) {
        return Ok(handler.to_owned());
    }
    Err(SandboxConfigError::UnknownRuntimeHandler {
        handler: handler.to_owned(),
        known: runtimes.to_vec(),
    })
}

/// Whether `handler` selects dockerd's default runtime.
pub fn is_default_runtime_handler(handler: &str) -> bool {
    handler.is_empty() || handler == DEFAULT_RUNTIME_HANDLER
}

/// The sandbox's namespace modes, checked.
pub fn sandbox_namespaces(
    config: &v1::PodSandboxConfig,
) -> Result<SandboxNamespaces, SandboxConfigError> {
    let Some(options) = config
        .linux
        .as_ref()
        .and_then(|linux| linux.security_context.as_ref())
        .and_then(|security| security.namespace_options.as_ref())
    else {
        return Ok(SandboxNamespaces::default());
    };
    if let Some(userns) = &options.userns_options {
        check_user_namespace(userns)?;
    }
    Ok(SandboxNamespaces {
        host_network: is_host("namespace_options.network", options.network)?,
        host_pid: is_host("namespace_options.pid", options.pid)?,
        host_ipc: is_host("namespace_options.ipc", options.ipc)?,
    })
}

/// The namespace modes PodSandboxStatus reports for a sandbox container
/// with these `HostConfig` modes. A sandbox's own PID namespace is reported
/// as CONTAINER: POD and CONTAINER look the same from the sandbox.
pub fn sandbox_namespace_options(
    network_mode: &str,
    pid_mode: &str,
    ipc_mode: &str,
) -> v1::NamespaceOption {
    let mode = |docker: &str, own: v1::NamespaceMode| {
        if docker == HOST_MODE {
            v1::NamespaceMode::Node as i32
        } else {
            own as i32
        }
    };
    v1::NamespaceOption {
        network: mode(network_mode, v1::NamespaceMode::Pod),
        pid: mode(pid_mode, v1::NamespaceMode::Container),
        ipc: mode(ipc_mode, v1::NamespaceMode::Pod),
        ..v1::NamespaceOption::default()
    }
}

/// The `CgroupParent` Docker needs for the CRI `cgroup_parent` under
/// dockerd's cgroup driver.
pub fn cgroup_parent(parent: &str, driver: v1::CgroupDriver) -> Result<String, SandboxConfigError> {
    if parent.is_empty() || driver == v1::CgroupDriver::Cgroupfs {
        return Ok(parent.to_owned());
    }
    let slice = parent.rsplit('/').next().unwrap_or(parent);
    if slice.len() > SYSTEMD_SLICE_SUFFIX.len() && slice.ends_with(SYSTEMD_SLICE_SUFFIX) {
        return Ok(slice.to_owned());
    }
    Err(SandboxConfigError::NodeSetup(format!(
        "cgroup parent {parent:?} is not a systemd slice, but dockerd uses the systemd \
         cgroup driver: the kubelet's --cgroup-driver must be systemd too"
    )))
}

/// Checks port mappings before they reach the checkpoint and CNI.
pub fn validate_port_mappings(mappings: &[v1::PortMapping]) -> Result<(), SandboxConfigError> {
    for (index, mapping) in mappings.iter().enumerate() {
        let field = |part: &str| format!("port_mappings[{index}].{part}");
        if v1::Protocol::try_from(mapping.protocol).is_err() {
            return Err(SandboxConfigError::invalid(
                field("protocol"),
                format!("unknown protocol {}", mapping.protocol),
            ));
        }
        if !(1..=i32::from(u16::MAX)).contains(&mapping.container_port) {
            return Err(SandboxConfigError::invalid(
                field("container_port"),
                format!("{} is not a port number", mapping.container_port),
            ));
        }
        if !(0..=i32::from(u16::MAX)).contains(&mapping.host_port) {
            return Err(SandboxConfigError::invalid(
                field("host_port"),
                format!("{} is not a port number", mapping.host_port),
            ));
        }
        if !mapping.host_ip.is_empty() && mapping.host_ip.parse::<IpAddr>().is_err() {
            return Err(SandboxConfigError::invalid(
                field("host_ip"),
                format!("{:?} is not an IP address", mapping.host_ip),
            ));
        }
    }
    Ok(())
}

/// The create body of the sandbox container for `config`, after checking
/// every part of `config` (DNS and port mappings included), so that a
/// refusal comes before anything exists.
pub fn sandbox_create_body(
    config: &v1::PodSandboxConfig,
    options: &SandboxOptions<'_>,
) -> Result<ContainerCreate, SandboxConfigError> {
    let runtime = docker_runtime(options.runtime_handler, options.runtimes)?;
    let metadata = config
        .metadata
        .as_ref()
        .ok_or(NamingError::MissingMetadata("PodSandboxConfig"))?;
    // The handler names the container itself; making the name here too
    // refuses unusable metadata before anything exists.
    naming::sandbox_name(metadata)?;
    let namespaces = sandbox_namespaces(config)?;
    if !namespaces.host_network && options.network_plugin == NetworkPlugin::None {
        return Err(SandboxConfigError::NodeSetup(format!(
            "pod {}/{} needs a pod network, but --network-plugin={} serves host-network \
             pods only",
            metadata.namespace,
            metadata.name,
            NetworkPlugin::None.as_str()
        )));
    }
    if let Some(dns) = &config.dns_config {
        dns::validate(dns)?;
    }
    validate_port_mappings(&config.port_mappings)?;

    let default_linux = v1::LinuxPodSandboxConfig::default();
    let linux = config.linux.as_ref().unwrap_or(&default_linux);
    let default_security = v1::LinuxSandboxSecurityContext::default();
    let security = linux.security_context.as_ref().unwrap_or(&default_security);
    sysctl::validate_sysctls(&linux.sysctls, namespaces.host_network, namespaces.host_ipc)?;

    let mut host_config = CreateHostConfig {
        network_mode: if namespaces.host_network {
            HOST_MODE
        } else {
            NETWORK_MODE_NONE
        }
        .to_owned(),
        ipc_mode: if namespaces.host_ipc {
            HOST_MODE
        } else {
            IPC_MODE_SHAREABLE
        }
        .to_owned(),
        oom_score_adj: Some(options.oom_score_adj),
        cgroup_parent: cgroup_parent(&linux.cgroup_parent, options.cgroup_driver)?,
        shm_size: Some(DEFAULT_SHM_SIZE),
        restart_policy: Some(RestartPolicy::no()),
        resources: Resources {
            cpu_shares: Some(SANDBOX_CPU_SHARES),
            ..Resources::default()
        },
        runtime,
        ..CreateHostConfig::default()
    };
    // Extended, not collected: collecting into a BTreeMap builds a sort for
    // each call site.
    host_config.sysctls.extend(linux.sysctls.clone());
    if namespaces.host_pid {
        host_config.pid_mode = HOST_MODE.to_owned();
    }
    if namespaces.host_network {
        host_config.uts_mode = HOST_MODE.to_owned();
    }
    apply_security_context(security, options, &mut host_config)?;

    Ok(ContainerCreate {
        hostname: if namespaces.host_network {
            String::new()
        } else {
            config.hostname.clone()
        },
        user: security::user(
            security.run_as_user.map(|uid| uid.value),
            "",
            security.run_as_group.map(|gid| gid.value),
        )?,
        image: options.image.to_owned(),
        labels: labels::sandbox_labels(&config.labels, &config.annotations)?,
        healthcheck: Some(HealthConfig::none()),
        host_config,
        ..ContainerCreate::default()
    })
}

/// The `HostConfig` part of the sandbox's security context.
fn apply_security_context(
    security: &v1::LinuxSandboxSecurityContext,
    options: &SandboxOptions<'_>,
    host_config: &mut CreateHostConfig,
) -> Result<(), SandboxConfigError> {
    security::supplemental_groups_policy(security.supplemental_groups_policy)?;
    host_config.group_add = security::group_add(&security.supplemental_groups)?;
    host_config.privileged = security.privileged;
    host_config.readonly_rootfs = security.readonly_rootfs;

    let mut opts = security::selinux_options(security.selinux_options.as_ref())?;
    if !security.privileged {
        #[allow(deprecated)]
        let legacy = match &security.seccomp {
            Some(_) => None,
            None => security::deprecated_seccomp_profile(&security.seccomp_profile_path)?,
        };
        let seccomp = security.seccomp.as_ref().or(legacy.as_ref());
        opts.extend(security::seccomp_option(seccomp, options.seccomp_profiles)?);
        security::check_apparmor_on_node(security.apparmor.as_ref(), options.node_has_apparmor)?;
        opts.extend(security::apparmor_option(security.apparmor.as_ref())?);
    }
    opts.push(NO_NEW_PRIVILEGES.to_owned());
    host_config.security_opt = opts;
    Ok(())
}

/// Whether a sandbox namespace `mode` is the host's; POD and CONTAINER
/// both mean the sandbox's own.
fn is_host(field: &str, mode: i32) -> Result<bool, SandboxConfigError> {
    match v1::NamespaceMode::try_from(mode) {
        Ok(v1::NamespaceMode::Node) => Ok(true),
        Ok(v1::NamespaceMode::Pod | v1::NamespaceMode::Container) => Ok(false),
        Ok(v1::NamespaceMode::Target) => Err(SandboxConfigError::invalid(
            field,
            "TARGET names another container's namespace, which a sandbox cannot join",
        )),
        Err(_) => Err(SandboxConfigError::invalid(
            field,
            format!("unknown namespace mode {mode}"),
        )),
    }
}

/// Accepts the host's user namespace (NODE, or POD without ID mappings);
/// a per-pod user namespace is beyond Docker. Containers share the check.
pub(crate) fn check_user_namespace(userns: &v1::UserNamespace) -> Result<(), SandboxConfigError> {
    const FIELD: &str = "namespace_options.userns_options";
    match v1::NamespaceMode::try_from(userns.mode) {
        Ok(v1::NamespaceMode::Node) => Ok(()),
        Ok(v1::NamespaceMode::Pod) if userns.uids.is_empty() && userns.gids.is_empty() => Ok(()),
        Ok(v1::NamespaceMode::Pod) => Err(SandboxConfigError::unsupported(
            FIELD,
            "Docker cannot give a pod its own user namespace (hostUsers: false); \
             it only remaps users for the whole daemon",
        )),
        Ok(other) => Err(SandboxConfigError::invalid(
            FIELD,
            format!(
                "mode {} is not valid for a user namespace",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(SandboxConfigError::invalid(
            FIELD,
            format!("unknown namespace mode {}", userns.mode),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::super::security::tests::FakeProfiles;
    use super::*;
    use crate::api::v1::security_profile::ProfileType;
    use crate::grpc::{Code, Status};

    const UID: &str = "0b7c8a1e-5d3b-4a8e-9f0a-2c3d4e5f6a7b";
    const PAUSE: &str = "registry.k8s.io/pause:3.10";

    /// Table-test edits of one part of a configuration.
    type EditNamespaces = fn(&mut v1::NamespaceOption);
    type EditSecurity = fn(&mut v1::LinuxSandboxSecurityContext);
    type EditConfig = fn(&mut v1::PodSandboxConfig);

    fn options(profiles: &FakeProfiles) -> SandboxOptions<'_> {
        SandboxOptions {
            image: PAUSE,
            oom_score_adj: 0,
            network_plugin: NetworkPlugin::Cni,
            cgroup_driver: v1::CgroupDriver::Cgroupfs,
            node_has_apparmor: true,
            runtime_handler: "",
            runtimes: &[],
            seccomp_profiles: profiles,
        }
    }

    /// The runtimes Docker 29 lists without any of its own configured.
    fn docker_runtimes() -> Vec<String> {
        vec!["io.containerd.runc.v2".to_owned(), "runc".to_owned()]
    }

    fn config() -> v1::PodSandboxConfig {
        v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "web-0".to_owned(),
                uid: UID.to_owned(),
                namespace: "prod".to_owned(),
                attempt: 1,
            }),
            hostname: "web-0".to_owned(),
            log_directory: format!("/var/log/pods/prod_web-0_{UID}"),
            labels: HashMap::from([("app".to_owned(), "web".to_owned())]),
            annotations: HashMap::from([("seen".to_owned(), "now".to_owned())]),
            linux: Some(v1::LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{UID}"),
                security_context: Some(v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(v1::NamespaceOption {
                        network: v1::NamespaceMode::Pod as i32,
                        pid: v1::NamespaceMode::Container as i32,
                        ipc: v1::NamespaceMode::Pod as i32,
                        ..v1::NamespaceOption::default()
                    }),
                    seccomp: Some(v1::SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    ..v1::LinuxSandboxSecurityContext::default()
                }),
                ..v1::LinuxPodSandboxConfig::default()
            }),
            ..v1::PodSandboxConfig::default()
        }
    }

    fn security(config: &mut v1::PodSandboxConfig) -> &mut v1::LinuxSandboxSecurityContext {
        config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
    }

    fn namespaces(config: &mut v1::PodSandboxConfig) -> &mut v1::NamespaceOption {
        security(config).namespace_options.as_mut().unwrap()
    }

    fn body(config: &v1::PodSandboxConfig) -> serde_json::Value {
        let profiles = FakeProfiles::default();
        sandbox_create_body(config, &options(&profiles))
            .unwrap()
            .to_json()
    }

    fn refusal(config: &v1::PodSandboxConfig, opts: &SandboxOptions<'_>) -> (Code, String) {
        let status = Status::from(sandbox_create_body(config, opts).unwrap_err());
        (status.code, status.message)
    }

    #[test]
    fn a_kubelet_pod_becomes_this_exact_create_body() {
        let mut config = config();
        config.linux.as_mut().unwrap().sysctls = HashMap::from([(
            "net.ipv4.ip_unprivileged_port_start".to_owned(),
            "0".to_owned(),
        )]);
        let expected = json!({
            "Hostname": "web-0",
            "Image": PAUSE,
            "Labels": {
                "app": "web",
                "annotation.seen": "now",
                "io.kubernetes.container.name": "POD",
                "io.kubernetes.docker.type": "podsandbox"
            },
            "Healthcheck": {"Test": ["NONE"]},
            "HostConfig": {
                "NetworkMode": "none",
                "IpcMode": "shareable",
                "SecurityOpt": ["no-new-privileges"],
                "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
                "OomScoreAdj": 0,
                "CgroupParent": format!("/kubepods/besteffort/pod{UID}"),
                "ShmSize": 67108864,
                "RestartPolicy": {"Name": "no"},
                "CpuShares": 2
            }
        });
        assert_eq!(body(&config), expected);
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let config = v1::PodSandboxConfig {
            metadata: config().metadata,
            ..v1::PodSandboxConfig::default()
        };
        let body = body(&config);
        assert_eq!(body["HostConfig"]["NetworkMode"], "none");
        assert_eq!(body["HostConfig"]["IpcMode"], "shareable");
        assert_eq!(
            body["HostConfig"]["SecurityOpt"],
            json!(["no-new-privileges"])
        );
        assert!(body.get("Hostname").is_none());
        assert!(body.get("User").is_none());
    }

    #[test]
    fn host_namespaces_map_to_docker_host_modes() {
        let node = v1::NamespaceMode::Node as i32;
        let cases: [(EditNamespaces, serde_json::Value); 4] = [
            (
                |ns| ns.network = v1::NamespaceMode::Node as i32,
                json!({"NetworkMode": "host", "IpcMode": "shareable", "UTSMode": "host"}),
            ),
            (
                |ns| ns.pid = v1::NamespaceMode::Node as i32,
                json!({"NetworkMode": "none", "IpcMode": "shareable", "PidMode": "host"}),
            ),
            (
                |ns| ns.pid = v1::NamespaceMode::Pod as i32,
                json!({"NetworkMode": "none", "IpcMode": "shareable"}),
            ),
            (
                |ns| ns.ipc = v1::NamespaceMode::Node as i32,
                json!({"NetworkMode": "none", "IpcMode": "host"}),
            ),
        ];
        for (set, expected) in cases {
            let mut config = config();
            set(namespaces(&mut config));
            let host_config = &body(&config)["HostConfig"];
            for key in ["NetworkMode", "IpcMode", "PidMode", "UTSMode"] {
                assert_eq!(
                    host_config.get(key),
                    expected.get(key),
                    "{key} for {expected}"
                );
            }
        }
        let mut config = config();
        namespaces(&mut config).network = node;
        assert!(body(&config).get("Hostname").is_none());
    }

    #[test]
    fn invalid_namespace_modes_are_refused() {
        const TARGET: i32 = v1::NamespaceMode::Target as i32;
        let profiles = FakeProfiles::default();
        let cases: [(EditNamespaces, &str); 4] = [
            (
                |ns| ns.network = TARGET,
                "namespace_options.network: TARGET",
            ),
            (|ns| ns.pid = TARGET, "namespace_options.pid: TARGET"),
            (|ns| ns.ipc = TARGET, "namespace_options.ipc: TARGET"),
            (
                |ns| ns.ipc = 9,
                "namespace_options.ipc: unknown namespace mode 9",
            ),
        ];
        for (set, message) in cases {
            let mut config = config();
            set(namespaces(&mut config));
            let (code, text) = refusal(&config, &options(&profiles));
            assert_eq!(code, Code::InvalidArgument, "{text}");
            assert!(text.starts_with(message), "{text}");
        }
    }

    #[test]
    fn user_namespaces_are_accepted_only_when_they_are_the_hosts() {
        let profiles = FakeProfiles::default();
        let mapping = v1::IdMapping {
            host_id: 100_000,
            container_id: 0,
            length: 65536,
        };
        let cases = [
            (v1::NamespaceMode::Node, vec![], None),
            (v1::NamespaceMode::Pod, vec![], None),
            (
                v1::NamespaceMode::Pod,
                vec![mapping],
                Some(Code::Unimplemented),
            ),
            (
                v1::NamespaceMode::Container,
                vec![],
                Some(Code::InvalidArgument),
            ),
        ];
        for (mode, uids, refused) in cases {
            let mut config = config();
            namespaces(&mut config).userns_options = Some(v1::UserNamespace {
                mode: mode as i32,
                uids: uids.clone(),
                gids: uids,
            });
            let result = sandbox_create_body(&config, &options(&profiles));
            assert_eq!(result.err().map(|e| e.code()), refused, "{mode:?}");
        }
    }

    #[test]
    fn pod_networks_need_the_cni_plugin() {
        let profiles = FakeProfiles::default();
        let opts = SandboxOptions {
            network_plugin: NetworkPlugin::None,
            ..options(&profiles)
        };
        let (code, message) = refusal(&config(), &opts);
        assert_eq!(code, Code::FailedPrecondition);
        assert!(
            message.contains("pod prod/web-0 needs a pod network"),
            "{message}"
        );
        assert!(message.contains("--network-plugin=none"), "{message}");
        let mut host = config();
        namespaces(&mut host).network = v1::NamespaceMode::Node as i32;
        assert!(sandbox_create_body(&host, &opts).is_ok());
    }

    #[test]
    fn the_default_runtime_handler_leaves_the_runtime_to_dockerd() {
        let profiles = FakeProfiles::default();
        let runtimes = docker_runtimes();
        for handler in ["", "docker"] {
            let opts = SandboxOptions {
                runtime_handler: handler,
                runtimes: &runtimes,
                ..options(&profiles)
            };
            let body = sandbox_create_body(&config(), &opts).unwrap();
            assert_eq!(body.host_config.runtime, "", "{handler}");
            let json = body.to_json();
            assert!(json["HostConfig"].get("Runtime").is_none(), "{json}");
        }
    }

    #[test]
    fn a_runtime_handler_selects_the_docker_runtime_of_its_name() {
        let profiles = FakeProfiles::default();
        let runtimes = docker_runtimes();
        let opts = SandboxOptions {
            runtime_handler: "io.containerd.runc.v2",
            runtimes: &runtimes,
            ..options(&profiles)
        };
        let body = sandbox_create_body(&config(), &opts).unwrap();
        assert_eq!(
            body.to_json()["HostConfig"]["Runtime"],
            "io.containerd.runc.v2"
        );
    }

    #[test]
    fn an_unknown_runtime_handler_is_not_found_naming_the_known_ones() {
        let profiles = FakeProfiles::default();
        let runtimes = docker_runtimes();
        let opts = SandboxOptions {
            runtime_handler: "kata",
            runtimes: &runtimes,
            ..options(&profiles)
        };
        let (code, message) = refusal(&config(), &opts);
        assert_eq!(code, Code::NotFound);
        assert_eq!(
            message,
            "runtime handler \"kata\" not found: dockerd offers \"\" (its default runtime), \
             \"io.containerd.runc.v2\", \"runc\""
        );
    }

    #[test]
    fn cgroup_parents_follow_the_docker_cgroup_driver() {
        let systemd = v1::CgroupDriver::Systemd;
        let cgroupfs = v1::CgroupDriver::Cgroupfs;
        let slice = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice";
        let cases = [
            ("", systemd, Ok("")),
            ("", cgroupfs, Ok("")),
            (
                "/kubepods/besteffort/pod1",
                cgroupfs,
                Ok("/kubepods/besteffort/pod1"),
            ),
            (slice, systemd, Ok("kubepods-besteffort-pod1.slice")),
            ("kubepods.slice", systemd, Ok("kubepods.slice")),
            (
                "/kubepods/besteffort/pod1",
                systemd,
                Err(Code::FailedPrecondition),
            ),
            ("/kubepods/.slice", systemd, Err(Code::FailedPrecondition)),
        ];
        for (parent, driver, expected) in cases {
            let result = cgroup_parent(parent, driver).map_err(|err| err.code());
            assert_eq!(
                result.as_deref(),
                expected.as_deref(),
                "{parent} {driver:?}"
            );
        }
        let err = cgroup_parent("/kubepods/pod1", systemd).unwrap_err();
        assert!(
            err.to_string().contains("--cgroup-driver must be systemd"),
            "{err}"
        );
    }

    #[test]
    #[allow(deprecated)]
    fn every_security_context_field_reaches_the_body() {
        let profiles =
            FakeProfiles::with("/seccomp/p.json", "{\"defaultAction\": \"SCMP_ACT_ERRNO\"}");
        let cases: [(EditSecurity, &str, serde_json::Value); 11] = [
            (
                |s| s.run_as_user = Some(v1::Int64Value { value: 65535 }),
                "User",
                json!("65535"),
            ),
            (
                |s| {
                    s.run_as_user = Some(v1::Int64Value { value: 1 });
                    s.run_as_group = Some(v1::Int64Value { value: 2 });
                },
                "User",
                json!("1:2"),
            ),
            (
                |s| s.supplemental_groups = vec![3, 4],
                "GroupAdd",
                json!(["3", "4"]),
            ),
            (|s| s.readonly_rootfs = true, "ReadonlyRootfs", json!(true)),
            (|s| s.privileged = true, "Privileged", json!(true)),
            (
                |s| s.privileged = true,
                "SecurityOpt",
                json!(["no-new-privileges"]),
            ),
            (
                |s| {
                    s.selinux_options = Some(v1::SeLinuxOption {
                        r#type: "spc_t".to_owned(),
                        level: "s0:c1".to_owned(),
                        ..v1::SeLinuxOption::default()
                    })
                },
                "SecurityOpt",
                json!(["label=type:spc_t", "label=level:s0:c1", "no-new-privileges"]),
            ),
            (
                |s| {
                    s.seccomp = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Unconfined as i32,
                        localhost_ref: String::new(),
                    })
                },
                "SecurityOpt",
                json!(["seccomp=unconfined", "no-new-privileges"]),
            ),
            (
                |s| {
                    s.seccomp = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "/seccomp/p.json".to_owned(),
                    })
                },
                "SecurityOpt",
                json!([
                    "seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}",
                    "no-new-privileges"
                ]),
            ),
            (
                |s| {
                    s.seccomp = None;
                    s.seccomp_profile_path = "unconfined".to_owned();
                },
                "SecurityOpt",
                json!(["seccomp=unconfined", "no-new-privileges"]),
            ),
            (
                |s| {
                    s.apparmor = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "k8s-pause".to_owned(),
                    })
                },
                "SecurityOpt",
                json!(["apparmor=k8s-pause", "no-new-privileges"]),
            ),
        ];
        for (set, key, expected) in cases {
            let mut config = config();
            set(security(&mut config));
            let body = sandbox_create_body(&config, &options(&profiles))
                .unwrap()
                .to_json();
            let value = body.get(key).or_else(|| body["HostConfig"].get(key));
            assert_eq!(value, Some(&expected), "{key}");
        }
    }

    #[test]
    fn a_localhost_apparmor_profile_needs_apparmor_on_the_node() {
        let profiles = FakeProfiles::default();
        let mut config = config();
        security(&mut config).apparmor = Some(v1::SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: "k8s-pause".to_owned(),
        });
        let without = SandboxOptions {
            node_has_apparmor: false,
            ..options(&profiles)
        };
        let err = sandbox_create_body(&config, &without).unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(err.to_string().contains("AppArmor is not enabled"), "{err}");
        security(&mut config).apparmor = Some(v1::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        });
        assert!(sandbox_create_body(&config, &without).is_ok());
    }

    #[test]
    #[allow(deprecated)]
    fn refused_security_settings_say_which_field() {
        let profiles = FakeProfiles::default();
        let cases: [(EditSecurity, Code, &str); 5] = [
            (
                |s| s.run_as_group = Some(v1::Int64Value { value: 2 }),
                Code::InvalidArgument,
                "run_as_group: a group needs run_as_user",
            ),
            (
                |s| s.run_as_user = Some(v1::Int64Value { value: -5 }),
                Code::InvalidArgument,
                "run_as_user: -5",
            ),
            (
                |s| s.supplemental_groups_policy = v1::SupplementalGroupsPolicy::Strict as i32,
                Code::Unimplemented,
                "supplemental_groups_policy: not supported with Docker",
            ),
            (
                |s| {
                    s.seccomp = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "/missing.json".to_owned(),
                    })
                },
                Code::FailedPrecondition,
                "seccomp profile \"/missing.json\": cannot read it",
            ),
            (
                |s| {
                    s.seccomp = None;
                    s.seccomp_profile_path = "bogus".to_owned();
                },
                Code::InvalidArgument,
                "seccomp_profile_path: \"bogus\"",
            ),
        ];
        for (set, code, message) in cases {
            let mut config = config();
            set(security(&mut config));
            let (got_code, text) = refusal(&config, &options(&profiles));
            assert_eq!(got_code, code, "{text}");
            assert!(
                text.starts_with(message),
                "{text} does not start with {message}"
            );
        }
    }

    #[test]
    fn oom_score_adj_and_image_come_from_the_options() {
        let profiles = FakeProfiles::default();
        let opts = SandboxOptions {
            image: "pause:local",
            oom_score_adj: -998,
            ..options(&profiles)
        };
        let body = sandbox_create_body(&config(), &opts).unwrap();
        assert_eq!(body.image, "pause:local");
        assert_eq!(body.host_config.oom_score_adj, Some(-998));
    }

    #[test]
    fn bad_metadata_labels_dns_ports_and_sysctls_are_refused_before_anything_exists() {
        let profiles = FakeProfiles::default();
        let cases: [(EditConfig, &str); 8] = [
            (|c| c.metadata = None, "PodSandboxConfig has no metadata"),
            (
                |c| c.metadata.as_mut().unwrap().namespace = "a_b".to_owned(),
                "metadata.namespace \"a_b\"",
            ),
            (
                |c| {
                    c.labels
                        .insert("io.kubernetes.docker.type".to_owned(), "x".to_owned());
                },
                "label \"io.kubernetes.docker.type\" is reserved",
            ),
            (
                |c| {
                    c.dns_config = Some(v1::DnsConfig {
                        servers: vec!["resolver".to_owned()],
                        ..v1::DnsConfig::default()
                    })
                },
                "dns_config.servers: \"resolver\"",
            ),
            (
                |c| {
                    c.port_mappings = vec![v1::PortMapping {
                        container_port: 0,
                        ..v1::PortMapping::default()
                    }]
                },
                "port_mappings[0].container_port: 0",
            ),
            (
                |c| {
                    c.port_mappings = vec![v1::PortMapping {
                        container_port: 80,
                        host_port: 70000,
                        ..v1::PortMapping::default()
                    }]
                },
                "port_mappings[0].host_port: 70000",
            ),
            (
                |c| {
                    c.port_mappings = vec![v1::PortMapping {
                        container_port: 80,
                        host_ip: "localhost".to_owned(),
                        ..v1::PortMapping::default()
                    }]
                },
                "port_mappings[0].host_ip: \"localhost\"",
            ),
            (
                |c| {
                    c.linux
                        .as_mut()
                        .unwrap()
                        .sysctls
                        .insert("vm.swappiness".to_owned(), "1".to_owned());
                },
                "linux.sysctls[\"vm.swappiness\"]",
            ),
        ];
        for (set, message) in cases {
            let mut config = config();
            set(&mut config);
            let (code, text) = refusal(&config, &options(&profiles));
            assert_eq!(code, Code::InvalidArgument, "{text}");
            assert!(
                text.starts_with(message),
                "{text} does not start with {message}"
            );
        }
    }

    #[test]
    fn valid_port_mappings_pass() {
        let mappings = [
            v1::PortMapping {
                protocol: v1::Protocol::Udp as i32,
                container_port: 53,
                host_port: 0,
                host_ip: String::new(),
            },
            v1::PortMapping {
                protocol: v1::Protocol::Sctp as i32,
                container_port: 65535,
                host_port: 65535,
                host_ip: "::1".to_owned(),
            },
        ];
        assert!(validate_port_mappings(&mappings).is_ok());
        let bad_protocol = v1::PortMapping {
            protocol: 3,
            container_port: 1,
            ..v1::PortMapping::default()
        };
        let err = validate_port_mappings(&[bad_protocol]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "port_mappings[0].protocol: unknown protocol 3"
        );
    }

    #[test]
    fn status_namespace_options_come_from_docker_modes() {
        let own = sandbox_namespace_options("none", "", "shareable");
        assert_eq!(
            (own.network, own.pid, own.ipc),
            (
                v1::NamespaceMode::Pod as i32,
                v1::NamespaceMode::Container as i32,
                v1::NamespaceMode::Pod as i32
            )
        );
        let host = sandbox_namespace_options("host", "host", "host");
        let node = v1::NamespaceMode::Node as i32;
        assert_eq!((host.network, host.pid, host.ipc), (node, node, node));
    }
}
