//! `ContainerConfig` → the `POST /containers/create` body of an
//! application container. Pure: what comes from the node (seccomp
//! profiles, the mount table, whether there is swap, whether dockerd has
//! AppArmor, what the engine can mount) is handed in through
//! [`ContainerOptions`].
//!
//! Every field of a container configuration is applied, checked, or
//! refused; none is dropped unnoticed:
//!
//! - metadata: checked by making the name (`naming::container_name`); the
//!   handler names the container itself. image: the ID or reference the
//!   handler resolved (`ContainerOptions::image`).
//! - command → `Entrypoint`, args → `Cmd`, working_dir (absolute) →
//!   `WorkingDir`; a NUL byte, which `execve` cannot carry, is refused.
//! - envs → `Env` `KEY=value`: a name must be non-empty and hold no `=`,
//!   NUL or newline; a value must hold no NUL. A newline in a value is
//!   kept: Kubernetes allows it (certificates in variables) and Docker
//!   passes it through intact.
//! - mounts and devices: see `mounts`. CDI devices, from `CDI_devices` and
//!   the kubelet's `cdi.k8s.io/` annotations: one `DeviceRequests` entry of
//!   the `cdi` driver, see `cdi`.
//! - runtime: the sandbox's Docker runtime (`ContainerOptions::runtime`),
//!   so that a pod's RuntimeClass holds for all of its containers.
//! - labels, annotations, log path: see `labels`; the handler checks the
//!   log path and passes the host path.
//! - stdin, stdin_once, tty → `OpenStdin`, `StdinOnce`, `Tty`.
//! - stop_signal → `StopSignal` by name (`SIGRTMIN+3` spelling for the
//!   real-time ones); RUNTIME_DEFAULT keeps the image's.
//! - namespaces: network is always the sandbox's (`container:<sandbox>`;
//!   a host-network sandbox is itself in the host's), with
//!   `UTSMode=host` for host networking as the sandbox has; IPC likewise
//!   (`container:<sandbox>`), or a private one for CONTAINER; PID POD →
//!   `container:<sandbox>`, CONTAINER → own, NODE → `host`, TARGET →
//!   `container:<target_id>`. Network POD is whatever the sandbox has, the
//!   host's included; network NODE outside a host-network sandbox, or an
//!   IPC mode that disagrees with the sandbox's, is INVALID_ARGUMENT. User
//!   namespaces with ID mappings are UNIMPLEMENTED, as for sandboxes.
//! - resources: see `resources`; `OomScoreAdj` from `oom_score_adj`,
//!   `PidsLimit` from `unified["pids.max"]`.
//! - security context: user and group, supplemental groups (policy Strict
//!   UNIMPLEMENTED), privileged, read-only root, capabilities (names
//!   upper-cased and given the `CAP_` prefix, `ALL` kept; ambient
//!   capabilities UNIMPLEMENTED: Docker has none), SELinux, seccomp (or the
//!   deprecated `seccomp_profile_path`; neither means unconfined, the CRI's
//!   default for containers), AppArmor (or the deprecated
//!   `apparmor_profile`; neither means the runtime default; a Localhost
//!   profile on a node without AppArmor is FAILED_PRECONDITION, since
//!   Docker would drop it),
//!   `no-new-privileges` when asked, masked and read-only paths. A
//!   privileged container gets no seccomp, AppArmor or path masking: Docker
//!   ignores them there. An empty path list cannot be told apart from an
//!   absent one on the wire, so it keeps Docker's defaults, which match the
//!   kubelet's; unmasking `/proc` (procMount Unmasked) needs a user
//!   namespace, refused above.
//! - cgroup parent: the sandbox's `linux.cgroup_parent`, by the sandbox
//!   rule for dockerd's cgroup driver.
//! - fixed: `ShmSize` 64 MiB, no health check, restart policy `no`.
//! - `windows` does not apply on Linux.

use super::cdi;
use super::mounts::{self, HostMounts};
use super::resources;
use super::ContainerConfigError;
use crate::api::v1;
use crate::api::v1::security_profile::ProfileType;
use crate::cri::error::NamingError;
use crate::cri::labels;
use crate::cri::naming;
use crate::cri::sandbox::security::{self, SeccompProfiles, NO_NEW_PRIVILEGES};
use crate::cri::sandbox::translate::{cgroup_parent, DEFAULT_SHM_SIZE};
use crate::cri::sandbox::{sandbox_namespaces, SandboxNamespaces};
use crate::docker::{ContainerCreate, CreateHostConfig, Engine, HealthConfig, RestartPolicy};

/// Docker's mode value for a host namespace.
const HOST_MODE: &str = "host";
/// Docker's mode value for joining another container's namespace.
const CONTAINER_MODE_PREFIX: &str = "container:";
/// An IPC namespace of the container's own.
const IPC_MODE_PRIVATE: &str = "private";
/// Capability name prefix; Docker accepts names with or without it.
const CAPABILITY_PREFIX: &str = "CAP_";
/// Every capability, in `CapAdd` or `CapDrop`.
const ALL_CAPABILITIES: &str = "ALL";

/// The inputs besides the CRI configuration.
#[derive(Debug, Clone, Copy)]
pub struct ContainerOptions<'a> {
    /// The sandbox container's ID.
    pub sandbox_id: &'a str,
    /// The image ID or reference the handler resolved from
    /// `ContainerConfig.image`.
    pub image: &'a str,
    /// The host path of the container's CRI log file, already checked;
    /// empty for none.
    pub log_path: &'a str,
    /// dockerd's cgroup driver (`GET /info` `CgroupDriver`).
    pub cgroup_driver: v1::CgroupDriver,
    /// Where Localhost seccomp profiles are read from.
    pub seccomp_profiles: &'a dyn SeccompProfiles,
    /// How host mounts propagate.
    pub host_mounts: &'a dyn HostMounts,
    /// What the engine can do: mount kinds, CDI.
    pub engine: &'a Engine,
    /// Whether the node has any swap space (`/proc/swaps`).
    pub node_has_swap: bool,
    /// Whether dockerd confines containers with AppArmor (`GET /info`
    /// `SecurityOptions` holds `name=apparmor`).
    pub node_has_apparmor: bool,
    /// The sandbox container's `HostConfig.Runtime`; empty for dockerd's
    /// default.
    pub runtime: &'a str,
}

/// The create body of the container `config` of the sandbox `sandbox`,
/// after checking every part of it.
pub fn container_create_body(
    config: &v1::ContainerConfig,
    sandbox: &v1::PodSandboxConfig,
    options: &ContainerOptions<'_>,
) -> Result<ContainerCreate, ContainerConfigError> {
    let metadata = config
        .metadata
        .as_ref()
        .ok_or(NamingError::MissingMetadata("ContainerConfig"))?;
    let sandbox_metadata = sandbox
        .metadata
        .as_ref()
        .ok_or(NamingError::MissingMetadata("PodSandboxConfig"))?;
    naming::container_name(metadata, sandbox_metadata)?;
    check_no_nul("command", &config.command)?;
    check_no_nul("args", &config.args)?;
    if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
        return Err(ContainerConfigError::invalid(
            "working_dir",
            format!("{:?} is not an absolute path", config.working_dir),
        ));
    }
    check_no_nul("working_dir", std::slice::from_ref(&config.working_dir))?;

    let default_linux = v1::LinuxContainerConfig::default();
    let linux = config.linux.as_ref().unwrap_or(&default_linux);
    let default_security = v1::LinuxContainerSecurityContext::default();
    let security = linux.security_context.as_ref().unwrap_or(&default_security);
    let sandbox_parent = sandbox
        .linux
        .as_ref()
        .map_or("", |linux| linux.cgroup_parent.as_str());

    let docker_mounts = mounts::docker_mounts(&config.mounts, options.engine, options.host_mounts)?;
    let mut host_config = CreateHostConfig {
        binds: docker_mounts.binds,
        mounts: docker_mounts.mounts,
        devices: mounts::devices(&config.devices)?,
        cgroup_parent: cgroup_parent(sandbox_parent, options.cgroup_driver)?,
        shm_size: Some(DEFAULT_SHM_SIZE),
        restart_policy: Some(RestartPolicy::no()),
        runtime: options.runtime.to_owned(),
        device_requests: cdi::device_requests(config, options.engine)?,
        ..CreateHostConfig::default()
    };
    apply_namespaces(
        security.namespace_options.as_ref(),
        sandbox_namespaces(sandbox)?,
        options.sandbox_id,
        &mut host_config,
    )?;
    if let Some(resources) = &linux.resources {
        apply_resources(resources, options.node_has_swap, &mut host_config)?;
    }
    apply_security_context(security, options, &mut host_config)?;

    Ok(ContainerCreate {
        user: security::user(
            security.run_as_user.map(|uid| uid.value),
            &security.run_as_username,
            security.run_as_group.map(|gid| gid.value),
        )?,
        env: env(&config.envs)?,
        cmd: config.args.clone(),
        entrypoint: config.command.clone(),
        image: options.image.to_owned(),
        labels: labels::container_labels(
            &config.labels,
            &config.annotations,
            options.sandbox_id,
            options.log_path,
        )?,
        working_dir: config.working_dir.clone(),
        open_stdin: config.stdin,
        stdin_once: config.stdin_once,
        tty: config.tty,
        stop_signal: stop_signal(config.stop_signal)?,
        healthcheck: Some(HealthConfig::none()),
        host_config,
        ..ContainerCreate::default()
    })
}

/// `Env` strings for the CRI variables.
pub fn env(envs: &[v1::KeyValue]) -> Result<Vec<String>, ContainerConfigError> {
    envs.iter()
        .enumerate()
        .map(|(index, kv)| {
            if kv.key.is_empty() {
                return Err(ContainerConfigError::invalid(
                    format!("envs[{index}].key"),
                    "empty name",
                ));
            }
            if kv.key.contains(['=', '\0', '\n']) {
                return Err(ContainerConfigError::invalid(
                    format!("envs[{index}].key"),
                    format!("{:?} holds '=', a NUL byte or a newline", kv.key),
                ));
            }
            if kv.value.contains('\0') {
                return Err(ContainerConfigError::invalid(
                    format!("envs[{index}].value"),
                    format!("the value of {:?} holds a NUL byte", kv.key),
                ));
            }
            Ok(format!("{}={}", kv.key, kv.value))
        })
        .collect()
}

/// Docker's `StopSignal` for the CRI signal; empty keeps the image's.
pub fn stop_signal(signal: i32) -> Result<String, ContainerConfigError> {
    let signal = v1::Signal::try_from(signal).map_err(|_| {
        ContainerConfigError::invalid("stop_signal", format!("unknown signal {signal}"))
    })?;
    if signal == v1::Signal::RuntimeDefault {
        return Ok(String::new());
    }
    let name = signal.as_str_name();
    if let Some(n) = name.strip_prefix("SIGRTMINPLUS") {
        return Ok(format!("SIGRTMIN+{n}"));
    }
    if let Some(n) = name.strip_prefix("SIGRTMAXMINUS") {
        return Ok(format!("SIGRTMAX-{n}"));
    }
    Ok(name.to_owned())
}

fn check_no_nul(field: &str, values: &[String]) -> Result<(), ContainerConfigError> {
    match values.iter().position(|value| value.contains('\0')) {
        None => Ok(()),
        Some(index) => Err(ContainerConfigError::invalid(
            format!("{field}[{index}]"),
            "holds a NUL byte",
        )),
    }
}

fn apply_namespaces(
    options: Option<&v1::NamespaceOption>,
    sandbox: SandboxNamespaces,
    sandbox_id: &str,
    host_config: &mut CreateHostConfig,
) -> Result<(), ContainerConfigError> {
    let default_options = v1::NamespaceOption::default();
    let options = options.unwrap_or(&default_options);
    if let Some(userns) = &options.userns_options {
        crate::cri::sandbox::translate::check_user_namespace(userns)?;
    }
    let join_sandbox = format!("{CONTAINER_MODE_PREFIX}{sandbox_id}");
    let network = mode("namespace_options.network", options.network)?;
    match network {
        v1::NamespaceMode::Pod => {}
        v1::NamespaceMode::Node => check_matches_sandbox("network", network, sandbox.host_network)?,
        _ => {
            return Err(ContainerConfigError::invalid(
                "namespace_options.network",
                format!(
                    "{} is not possible: a pod's containers share the sandbox's network",
                    network.as_str_name()
                ),
            ))
        }
    }
    host_config.network_mode = join_sandbox.clone();
    if sandbox.host_network {
        host_config.uts_mode = HOST_MODE.to_owned();
    }
    let ipc = mode("namespace_options.ipc", options.ipc)?;
    host_config.ipc_mode = match ipc {
        v1::NamespaceMode::Pod | v1::NamespaceMode::Node => {
            check_matches_sandbox("ipc", ipc, sandbox.host_ipc)?;
            join_sandbox.clone()
        }
        v1::NamespaceMode::Container => IPC_MODE_PRIVATE.to_owned(),
        v1::NamespaceMode::Target => {
            return Err(ContainerConfigError::invalid(
                "namespace_options.ipc",
                "TARGET is only defined for the PID namespace",
            ))
        }
    };
    host_config.pid_mode = match mode("namespace_options.pid", options.pid)? {
        v1::NamespaceMode::Pod => join_sandbox,
        v1::NamespaceMode::Container => String::new(),
        v1::NamespaceMode::Node => HOST_MODE.to_owned(),
        v1::NamespaceMode::Target => {
            let target = &options.target_id;
            let valid = !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(ContainerConfigError::invalid(
                    "namespace_options.target_id",
                    format!("{target:?} is not a container ID"),
                ));
            }
            format!("{CONTAINER_MODE_PREFIX}{target}")
        }
    };
    Ok(())
}

fn mode(field: &str, mode: i32) -> Result<v1::NamespaceMode, ContainerConfigError> {
    v1::NamespaceMode::try_from(mode)
        .map_err(|_| ContainerConfigError::invalid(field, format!("unknown namespace mode {mode}")))
}

/// A container shares the sandbox's network and IPC namespaces, so it
/// cannot ask for the host's unless the sandbox has them, nor the other
/// way round.
fn check_matches_sandbox(
    namespace: &str,
    mode: v1::NamespaceMode,
    sandbox_is_host: bool,
) -> Result<(), ContainerConfigError> {
    if (mode == v1::NamespaceMode::Node) == sandbox_is_host {
        return Ok(());
    }
    Err(ContainerConfigError::invalid(
        format!("namespace_options.{namespace}"),
        format!(
            "{} disagrees with the sandbox, whose {namespace} namespace is {}",
            mode.as_str_name(),
            if sandbox_is_host {
                "the host's"
            } else {
                "its own"
            }
        ),
    ))
}

fn apply_resources(
    resources: &v1::LinuxContainerResources,
    node_has_swap: bool,
    host_config: &mut CreateHostConfig,
) -> Result<(), ContainerConfigError> {
    host_config.resources = resources::docker_resources(resources, node_has_swap)?;
    host_config.oom_score_adj = Some(resources::oom_score_adj(resources.oom_score_adj)?);
    Ok(())
}

fn apply_security_context(
    security: &v1::LinuxContainerSecurityContext,
    options: &ContainerOptions<'_>,
    host_config: &mut CreateHostConfig,
) -> Result<(), ContainerConfigError> {
    security::supplemental_groups_policy(security.supplemental_groups_policy)?;
    host_config.group_add = security::group_add(&security.supplemental_groups)?;
    host_config.privileged = security.privileged;
    host_config.readonly_rootfs = security.readonly_rootfs;
    if let Some(capabilities) = &security.capabilities {
        if !capabilities.add_ambient_capabilities.is_empty() {
            return Err(ContainerConfigError::unsupported(
                "capabilities.add_ambient_capabilities",
                "Docker has no ambient capabilities",
            ));
        }
        host_config.cap_add = capability_names(
            "capabilities.add_capabilities",
            &capabilities.add_capabilities,
        )?;
        host_config.cap_drop = capability_names(
            "capabilities.drop_capabilities",
            &capabilities.drop_capabilities,
        )?;
    }

    let mut opts = security::selinux_options(security.selinux_options.as_ref())?;
    if !security.privileged {
        opts.extend(security::seccomp_option(
            Some(&seccomp_profile(security)?),
            options.seccomp_profiles,
        )?);
        #[allow(deprecated)]
        let legacy = match &security.apparmor {
            Some(_) => None,
            None => deprecated_apparmor_profile(&security.apparmor_profile)?,
        };
        let apparmor = security.apparmor.as_ref().or(legacy.as_ref());
        opts.extend(security::apparmor_option(apparmor)?);
        security::check_apparmor_on_node(apparmor, options.node_has_apparmor)?;
        host_config.masked_paths = paths("masked_paths", &security.masked_paths)?;
        host_config.readonly_paths = paths("readonly_paths", &security.readonly_paths)?;
    }
    if security.no_new_privs {
        opts.push(NO_NEW_PRIVILEGES.to_owned());
    }
    host_config.security_opt = opts;
    Ok(())
}

/// The seccomp profile to apply: `seccomp`, else the deprecated path,
/// else unconfined, the CRI's default for a container.
fn seccomp_profile(
    security: &v1::LinuxContainerSecurityContext,
) -> Result<v1::SecurityProfile, ContainerConfigError> {
    if let Some(profile) = &security.seccomp {
        return Ok(profile.clone());
    }
    #[allow(deprecated)]
    let legacy = security::deprecated_seccomp_profile(&security.seccomp_profile_path)?;
    Ok(legacy.unwrap_or(v1::SecurityProfile {
        profile_type: ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    }))
}

/// The profile the deprecated `apparmor_profile` string names:
/// `runtime/default` (or empty) → the runtime default, `unconfined`,
/// `localhost/<name>`.
fn deprecated_apparmor_profile(
    name: &str,
) -> Result<Option<v1::SecurityProfile>, ContainerConfigError> {
    let profile = |profile_type: ProfileType, localhost_ref: &str| v1::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.to_owned(),
    };
    match name {
        "" => Ok(None),
        "runtime/default" => Ok(Some(profile(ProfileType::RuntimeDefault, ""))),
        "unconfined" => Ok(Some(profile(ProfileType::Unconfined, ""))),
        _ => match name.strip_prefix("localhost/") {
            Some(profile_name) => Ok(Some(profile(ProfileType::Localhost, profile_name))),
            None => Err(ContainerConfigError::invalid(
                "apparmor_profile",
                format!("{name:?} is none of runtime/default, unconfined, localhost/<profile>"),
            )),
        },
    }
}

/// Capability names as Docker takes them: upper case with the `CAP_`
/// prefix, or `ALL`.
fn capability_names(field: &str, names: &[String]) -> Result<Vec<String>, ContainerConfigError> {
    names
        .iter()
        .map(|name| {
            let upper = name.to_ascii_uppercase();
            if upper == ALL_CAPABILITIES {
                return Ok(upper);
            }
            let bare = upper.strip_prefix(CAPABILITY_PREFIX).unwrap_or(&upper);
            let valid = !bare.is_empty()
                && bare
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(ContainerConfigError::invalid(
                    field,
                    format!("{name:?} is not a capability name"),
                ));
            }
            Ok(format!("{CAPABILITY_PREFIX}{bare}"))
        })
        .collect()
}

/// `None` (Docker's defaults) for an empty list, else the absolute paths.
fn paths(field: &str, paths: &[String]) -> Result<Option<Vec<String>>, ContainerConfigError> {
    if paths.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = paths
        .iter()
        .find(|path| !path.starts_with('/') || path.contains('\0'))
    {
        return Err(ContainerConfigError::invalid(
            field,
            format!("{bad:?} is not an absolute path"),
        ));
    }
    Ok(Some(paths.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use serde_json::{json, Value};

    use super::super::mounts::tests::{docker_20_10, docker_29, FakeMounts};
    use super::super::mounts::HostPropagation;
    use super::*;
    use crate::cri::sandbox::security::tests::FakeProfiles;
    use crate::grpc::Code;

    const UID: &str = "0b7c8a1e-5d3b-4a8e-9f0a-2c3d4e5f6a7b";
    const SANDBOX_ID: &str = "5d1b9c";
    const IMAGE: &str = "sha256:f6a1e70bd9c1";
    const LOG: &str = "/var/log/pods/prod_web-0_x/app/0.log";

    type EditConfig = fn(&mut v1::ContainerConfig);
    type EditSecurity = fn(&mut v1::LinuxContainerSecurityContext);

    struct Node {
        profiles: FakeProfiles,
        mounts: FakeMounts,
        engine: Engine,
    }

    impl Node {
        fn new() -> Node {
            Node {
                profiles: FakeProfiles::with(
                    "/seccomp/p.json",
                    "{\"defaultAction\": \"SCMP_ACT_ERRNO\"}",
                ),
                mounts: FakeMounts(HashMap::from([(
                    PathBuf::from("/shared"),
                    HostPropagation::Shared,
                )])),
                engine: docker_20_10(),
            }
        }

        fn options(&self) -> ContainerOptions<'_> {
            ContainerOptions {
                sandbox_id: SANDBOX_ID,
                image: IMAGE,
                log_path: LOG,
                cgroup_driver: v1::CgroupDriver::Cgroupfs,
                seccomp_profiles: &self.profiles,
                host_mounts: &self.mounts,
                engine: &self.engine,
                node_has_swap: false,
                node_has_apparmor: true,
                runtime: "",
            }
        }
    }

    /// Docker 29.7.2 as it reports itself, CDI on.
    /// An engine with CDI on, as Docker 29 has by default.
    fn engine_with_cdi() -> Engine {
        let info = crate::codec::json::FromJson::from_json(&json!({
            "ServerVersion": "29.7.2",
            "KernelVersion": "6.1.0",
            "Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}},
            "DefaultRuntime": "runc",
            "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]
        }))
        .unwrap();
        Engine::new(crate::docker::ApiVersion::new(1, 55), &info)
    }

    fn sandbox(host_network: bool) -> v1::PodSandboxConfig {
        let network = if host_network {
            v1::NamespaceMode::Node
        } else {
            v1::NamespaceMode::Pod
        };
        v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "web-0".to_owned(),
                uid: UID.to_owned(),
                namespace: "prod".to_owned(),
                attempt: 0,
            }),
            linux: Some(v1::LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{UID}"),
                security_context: Some(v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(v1::NamespaceOption {
                        network: network as i32,
                        ..v1::NamespaceOption::default()
                    }),
                    ..v1::LinuxSandboxSecurityContext::default()
                }),
                ..v1::LinuxPodSandboxConfig::default()
            }),
            ..v1::PodSandboxConfig::default()
        }
    }

    fn config() -> v1::ContainerConfig {
        v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: "app".to_owned(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image: IMAGE.to_owned(),
                ..v1::ImageSpec::default()
            }),
            linux: Some(v1::LinuxContainerConfig {
                resources: None,
                security_context: Some(v1::LinuxContainerSecurityContext {
                    seccomp: Some(v1::SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    ..v1::LinuxContainerSecurityContext::default()
                }),
            }),
            ..v1::ContainerConfig::default()
        }
    }

    fn security(config: &mut v1::ContainerConfig) -> &mut v1::LinuxContainerSecurityContext {
        config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
    }

    fn body_of(config: &v1::ContainerConfig, sandbox: &v1::PodSandboxConfig) -> Value {
        let node = Node::new();
        container_create_body(config, sandbox, &node.options())
            .unwrap()
            .to_json()
    }

    fn refusal(config: &v1::ContainerConfig) -> (Code, String) {
        let node = Node::new();
        let err = container_create_body(config, &sandbox(false), &node.options()).unwrap_err();
        (err.code(), err.to_string())
    }

    /// `key` of the body or of its `HostConfig`.
    fn field(body: &Value, key: &str) -> Option<Value> {
        body.get(key)
            .or_else(|| body["HostConfig"].get(key))
            .cloned()
    }

    #[test]
    fn a_plain_container_gets_the_fixed_settings_and_joins_its_sandbox() {
        let mut config = config();
        config.command = vec!["/bin/sh".to_owned(), "-c".to_owned()];
        config.args = vec!["sleep 1".to_owned()];
        config.working_dir = "/srv".to_owned();
        config.stdin = true;
        config.stdin_once = true;
        config.tty = true;
        config.labels = HashMap::from([("app".to_owned(), "web".to_owned())]);
        config.annotations = HashMap::from([("seen".to_owned(), "now".to_owned())]);
        let body = body_of(&config, &sandbox(false));
        assert_eq!(
            body,
            json!({
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ["sleep 1"],
                "Image": IMAGE,
                "WorkingDir": "/srv",
                "OpenStdin": true,
                "StdinOnce": true,
                "Tty": true,
                "Labels": {
                    "app": "web",
                    "annotation.seen": "now",
                    "io.kubernetes.docker.type": "container",
                    "io.kubernetes.sandbox.id": SANDBOX_ID,
                    "io.kubernetes.container.logpath": LOG
                },
                "Healthcheck": {"Test": ["NONE"]},
                "HostConfig": {
                    "NetworkMode": "container:5d1b9c",
                    "IpcMode": "container:5d1b9c",
                    "PidMode": "container:5d1b9c",
                    "CgroupParent": format!("/kubepods/besteffort/pod{UID}"),
                    "ShmSize": 64 * 1024 * 1024,
                    "RestartPolicy": {"Name": "no"}
                }
            })
        );
    }

    #[test]
    fn environment_variables_become_key_value_strings() {
        let kv = |key: &str, value: &str| v1::KeyValue {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        assert_eq!(
            env(&[
                kv("A", "1"),
                kv("EMPTY", ""),
                kv("PEM", "line1\nline2"),
                kv("EQ", "a=b")
            ])
            .unwrap(),
            ["A=1", "EMPTY=", "PEM=line1\nline2", "EQ=a=b"]
        );
        let cases = [
            (kv("", "x"), "envs[0].key: empty name"),
            (kv("A=B", "x"), "envs[0].key: \"A=B\" holds '='"),
            (kv("A\nB", "x"), "envs[0].key"),
            (kv("A\0", "x"), "envs[0].key"),
            (
                kv("A", "x\0y"),
                "envs[0].value: the value of \"A\" holds a NUL",
            ),
        ];
        for (given, message) in cases {
            let err = env(&[given]).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.to_string().starts_with(message), "{err}");
        }
    }

    #[test]
    fn each_namespace_mode_becomes_a_docker_mode() {
        use v1::NamespaceMode::{Container, Node, Pod, Target};
        // (sandbox host network, network, ipc, pid, target) →
        // (NetworkMode, UTSMode, IpcMode, PidMode)
        let cases = [
            (
                false,
                Pod,
                Pod,
                Pod,
                "",
                [
                    "container:5d1b9c",
                    "",
                    "container:5d1b9c",
                    "container:5d1b9c",
                ],
            ),
            (
                false,
                Pod,
                Pod,
                Container,
                "",
                ["container:5d1b9c", "", "container:5d1b9c", ""],
            ),
            (
                false,
                Pod,
                Pod,
                Node,
                "",
                ["container:5d1b9c", "", "container:5d1b9c", "host"],
            ),
            (
                false,
                Pod,
                Pod,
                Target,
                "abc123",
                [
                    "container:5d1b9c",
                    "",
                    "container:5d1b9c",
                    "container:abc123",
                ],
            ),
            (
                false,
                Pod,
                Container,
                Pod,
                "",
                ["container:5d1b9c", "", "private", "container:5d1b9c"],
            ),
            (
                true,
                Node,
                Pod,
                Pod,
                "",
                [
                    "container:5d1b9c",
                    "host",
                    "container:5d1b9c",
                    "container:5d1b9c",
                ],
            ),
            // POD in a host-network sandbox: the sandbox's network, the
            // host's.
            (
                true,
                Pod,
                Pod,
                Pod,
                "",
                [
                    "container:5d1b9c",
                    "host",
                    "container:5d1b9c",
                    "container:5d1b9c",
                ],
            ),
        ];
        for (host_network, network, ipc, pid, target, expected) in cases {
            let mut config = config();
            security(&mut config).namespace_options = Some(v1::NamespaceOption {
                network: network as i32,
                ipc: ipc as i32,
                pid: pid as i32,
                target_id: target.to_owned(),
                userns_options: None,
            });
            let body = body_of(&config, &sandbox(host_network));
            let host = &body["HostConfig"];
            let mode = |key: &str| {
                host.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            assert_eq!(
                [
                    mode("NetworkMode"),
                    mode("UTSMode"),
                    mode("IpcMode"),
                    mode("PidMode")
                ],
                expected,
                "{network:?} {ipc:?} {pid:?}"
            );
        }
    }

    #[test]
    fn impossible_namespace_modes_are_refused() {
        use v1::NamespaceMode::{Container, Node, Pod, Target};
        let cases = [
            (
                Container,
                Pod,
                Pod,
                "",
                Code::InvalidArgument,
                "namespace_options.network: CONTAINER",
            ),
            (
                Node,
                Pod,
                Pod,
                "",
                Code::InvalidArgument,
                "namespace_options.network: NODE disagrees",
            ),
            (
                Pod,
                Target,
                Pod,
                "x",
                Code::InvalidArgument,
                "namespace_options.ipc: TARGET",
            ),
            (
                Pod,
                Node,
                Pod,
                "",
                Code::InvalidArgument,
                "namespace_options.ipc: NODE disagrees",
            ),
            (
                Pod,
                Pod,
                Target,
                "",
                Code::InvalidArgument,
                "namespace_options.target_id: \"\"",
            ),
            (
                Pod,
                Pod,
                Target,
                "a:b",
                Code::InvalidArgument,
                "namespace_options.target_id",
            ),
        ];
        for (network, ipc, pid, target, code, message) in cases {
            let mut config = config();
            security(&mut config).namespace_options = Some(v1::NamespaceOption {
                network: network as i32,
                ipc: ipc as i32,
                pid: pid as i32,
                target_id: target.to_owned(),
                userns_options: None,
            });
            let (got, text) = refusal(&config);
            assert_eq!(got, code, "{text}");
            assert!(text.starts_with(message), "{text}");
        }
        let mut config = config();
        security(&mut config).namespace_options = Some(v1::NamespaceOption {
            userns_options: Some(v1::UserNamespace {
                mode: Pod as i32,
                uids: vec![v1::IdMapping {
                    host_id: 100_000,
                    container_id: 0,
                    length: 65536,
                }],
                gids: Vec::new(),
            }),
            ..v1::NamespaceOption::default()
        });
        let (code, text) = refusal(&config);
        assert_eq!(code, Code::Unimplemented, "{text}");
        assert!(
            text.starts_with("namespace_options.userns_options"),
            "{text}"
        );
    }

    #[test]
    #[allow(deprecated)]
    fn every_security_context_field_reaches_the_body() {
        let cases: Vec<(EditSecurity, &str, Value)> = vec![
            (
                |s| s.run_as_user = Some(v1::Int64Value { value: 1000 }),
                "User",
                json!("1000"),
            ),
            (
                |s| s.run_as_username = "nobody".to_owned(),
                "User",
                json!("nobody"),
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
            (|s| s.privileged = true, "Privileged", json!(true)),
            (|s| s.readonly_rootfs = true, "ReadonlyRootfs", json!(true)),
            (
                |s| {
                    s.capabilities = Some(v1::Capability {
                        add_capabilities: vec!["NET_ADMIN".to_owned(), "cap_sys_time".to_owned()],
                        drop_capabilities: vec!["ALL".to_owned()],
                        add_ambient_capabilities: Vec::new(),
                    })
                },
                "CapAdd",
                json!(["CAP_NET_ADMIN", "CAP_SYS_TIME"]),
            ),
            (
                |s| {
                    s.capabilities = Some(v1::Capability {
                        drop_capabilities: vec!["all".to_owned(), "CAP_CHOWN".to_owned()],
                        ..v1::Capability::default()
                    })
                },
                "CapDrop",
                json!(["ALL", "CAP_CHOWN"]),
            ),
            (
                |s| s.no_new_privs = true,
                "SecurityOpt",
                json!(["no-new-privileges"]),
            ),
            (
                |s| {
                    s.selinux_options = Some(v1::SeLinuxOption {
                        level: "s0:c1".to_owned(),
                        ..v1::SeLinuxOption::default()
                    })
                },
                "SecurityOpt",
                json!(["label=level:s0:c1"]),
            ),
            (
                |s| {
                    s.seccomp = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Unconfined as i32,
                        localhost_ref: String::new(),
                    })
                },
                "SecurityOpt",
                json!(["seccomp=unconfined"]),
            ),
            (
                |s| s.seccomp = None,
                "SecurityOpt",
                json!(["seccomp=unconfined"]),
            ),
            (
                |s| {
                    s.seccomp = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "/seccomp/p.json".to_owned(),
                    })
                },
                "SecurityOpt",
                json!(["seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}"]),
            ),
            (
                |s| {
                    s.seccomp = None;
                    s.seccomp_profile_path = "runtime/default".to_owned();
                },
                "SecurityOpt",
                Value::Null,
            ),
            (
                |s| {
                    s.apparmor = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "k8s-deny-write".to_owned(),
                    })
                },
                "SecurityOpt",
                json!(["apparmor=k8s-deny-write"]),
            ),
            (
                |s| s.apparmor_profile = "unconfined".to_owned(),
                "SecurityOpt",
                json!(["apparmor=unconfined"]),
            ),
            (
                |s| s.apparmor_profile = "localhost/k8s-ro".to_owned(),
                "SecurityOpt",
                json!(["apparmor=k8s-ro"]),
            ),
            (
                |s| {
                    s.privileged = true;
                    s.seccomp = None;
                    s.apparmor_profile = "unconfined".to_owned();
                    s.masked_paths = vec!["/proc/kcore".to_owned()];
                },
                "SecurityOpt",
                Value::Null,
            ),
            (
                |s| s.masked_paths = vec!["/proc/kcore".to_owned()],
                "MaskedPaths",
                json!(["/proc/kcore"]),
            ),
            (|s| s.masked_paths = Vec::new(), "MaskedPaths", Value::Null),
            (
                |s| {
                    s.privileged = true;
                    s.masked_paths = vec!["/proc/kcore".to_owned()];
                },
                "MaskedPaths",
                Value::Null,
            ),
            (
                |s| s.readonly_paths = vec!["/proc/sys".to_owned()],
                "ReadonlyPaths",
                json!(["/proc/sys"]),
            ),
        ];
        for (edit, key, expected) in cases {
            let mut config = config();
            edit(security(&mut config));
            let body = body_of(&config, &sandbox(false));
            assert_eq!(
                field(&body, key).unwrap_or(Value::Null),
                expected,
                "{key} of {:?}",
                security(&mut config)
            );
        }
    }

    #[test]
    #[allow(deprecated)]
    fn refused_security_settings_say_which_field() {
        let cases: [(EditSecurity, Code, &str); 8] = [
            (
                |s| s.run_as_group = Some(v1::Int64Value { value: 2 }),
                Code::InvalidArgument,
                "run_as_group: a group needs",
            ),
            (
                |s| {
                    s.run_as_user = Some(v1::Int64Value { value: 1 });
                    s.run_as_username = "root".to_owned();
                },
                Code::InvalidArgument,
                "run_as_username",
            ),
            (
                |s| s.supplemental_groups_policy = v1::SupplementalGroupsPolicy::Strict as i32,
                Code::Unimplemented,
                "supplemental_groups_policy",
            ),
            (
                |s| {
                    s.capabilities = Some(v1::Capability {
                        add_ambient_capabilities: vec!["NET_BIND_SERVICE".to_owned()],
                        ..v1::Capability::default()
                    })
                },
                Code::Unimplemented,
                "capabilities.add_ambient_capabilities",
            ),
            (
                |s| {
                    s.capabilities = Some(v1::Capability {
                        add_capabilities: vec!["NET ADMIN".to_owned()],
                        ..v1::Capability::default()
                    })
                },
                Code::InvalidArgument,
                "capabilities.add_capabilities: \"NET ADMIN\"",
            ),
            (
                |s| {
                    s.seccomp = Some(v1::SecurityProfile {
                        profile_type: ProfileType::Localhost as i32,
                        localhost_ref: "/missing.json".to_owned(),
                    })
                },
                Code::FailedPrecondition,
                "seccomp profile \"/missing.json\"",
            ),
            (
                |s| s.apparmor_profile = "strict".to_owned(),
                Code::InvalidArgument,
                "apparmor_profile: \"strict\"",
            ),
            (
                |s| s.masked_paths = vec!["proc/kcore".to_owned()],
                Code::InvalidArgument,
                "masked_paths: \"proc/kcore\"",
            ),
        ];
        for (edit, code, message) in cases {
            let mut config = config();
            edit(security(&mut config));
            let (got, text) = refusal(&config);
            assert_eq!(got, code, "{text}");
            assert!(text.starts_with(message), "{text}");
        }
    }

    #[test]
    #[allow(deprecated)]
    fn a_localhost_apparmor_profile_is_refused_on_a_node_without_apparmor() {
        let node = Node::new();
        let options = ContainerOptions {
            node_has_apparmor: false,
            ..node.options()
        };
        let create = |edit: EditSecurity| {
            let mut config = config();
            edit(security(&mut config));
            container_create_body(&config, &sandbox(false), &options)
        };
        let refused: [EditSecurity; 2] = [
            |s| {
                s.apparmor = Some(v1::SecurityProfile {
                    profile_type: ProfileType::Localhost as i32,
                    localhost_ref: "k8s-deny-write".to_owned(),
                })
            },
            |s| s.apparmor_profile = "localhost/k8s-deny-write".to_owned(),
        ];
        for edit in refused {
            let err = create(edit).unwrap_err();
            assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
            assert_eq!(
                err.to_string(),
                "AppArmor profile \"k8s-deny-write\": AppArmor is not enabled on this node"
            );
        }
        let accepted: [(EditSecurity, Value); 4] = [
            (|_| {}, Value::Null),
            (
                |s| s.apparmor_profile = "runtime/default".to_owned(),
                Value::Null,
            ),
            (
                |s| s.apparmor_profile = "unconfined".to_owned(),
                json!(["apparmor=unconfined"]),
            ),
            (
                |s| {
                    s.privileged = true;
                    s.apparmor_profile = "localhost/k8s-deny-write".to_owned();
                },
                Value::Null,
            ),
        ];
        for (edit, expected) in accepted {
            let body = create(edit).unwrap().to_json();
            assert_eq!(field(&body, "SecurityOpt").unwrap_or(Value::Null), expected);
        }
    }

    #[test]
    fn every_resource_field_reaches_the_body() {
        let mut config = config();
        config.linux.as_mut().unwrap().resources = Some(v1::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            oom_score_adj: 1000,
            cpuset_cpus: "0-1".to_owned(),
            cpuset_mems: "0".to_owned(),
            hugepage_limits: vec![v1::HugepageLimit {
                page_size: "2MB".to_owned(),
                limit: 0,
            }],
            unified: HashMap::from([
                ("memory.swap.max".to_owned(), "0".to_owned()),
                ("pids.max".to_owned(), "100".to_owned()),
            ]),
            memory_swap_limit_in_bytes: 0,
        });
        let body = body_of(&config, &sandbox(false));
        let expected = [
            ("CpuPeriod", json!(100_000)),
            ("CpuQuota", json!(50_000)),
            ("CpuShares", json!(512)),
            ("Memory", json!(64 << 20)),
            ("MemorySwap", json!(64 << 20)),
            ("OomScoreAdj", json!(1000)),
            ("CpusetCpus", json!("0-1")),
            ("CpusetMems", json!("0")),
            ("PidsLimit", json!(100)),
        ];
        for (key, value) in expected {
            assert_eq!(body["HostConfig"][key], value, "{key}");
        }
        config.linux.as_mut().unwrap().resources = Some(v1::LinuxContainerResources {
            oom_score_adj: 1001,
            ..v1::LinuxContainerResources::default()
        });
        assert_eq!(refusal(&config).0, Code::InvalidArgument);
    }

    #[test]
    fn mounts_devices_and_stop_signal_reach_the_body() {
        let mut config = config();
        config.mounts = vec![v1::Mount {
            container_path: "/data".to_owned(),
            host_path: "/shared".to_owned(),
            readonly: true,
            propagation: v1::MountPropagation::PropagationBidirectional as i32,
            ..v1::Mount::default()
        }];
        config.devices = vec![v1::Device {
            container_path: "/dev/fuse".to_owned(),
            host_path: "/dev/fuse".to_owned(),
            permissions: "rwm".to_owned(),
        }];
        config.stop_signal = v1::Signal::Sigrtminplus3 as i32;
        let body = body_of(&config, &sandbox(false));
        assert_eq!(
            field(&body, "Binds"),
            Some(json!(["/shared:/data:ro,rshared"]))
        );
        assert_eq!(
            field(&body, "Devices"),
            Some(json!([{
                "PathOnHost": "/dev/fuse",
                "PathInContainer": "/dev/fuse",
                "CgroupPermissions": "rwm"
            }]))
        );
        assert_eq!(field(&body, "StopSignal"), Some(json!("SIGRTMIN+3")));
    }

    #[test]
    fn read_only_mounts_reach_the_body_as_mounts_where_the_engine_has_the_kinds() {
        let mut config = config();
        config.mounts = vec![
            v1::Mount {
                container_path: "/ro".to_owned(),
                host_path: "/shared".to_owned(),
                readonly: true,
                ..v1::Mount::default()
            },
            v1::Mount {
                container_path: "/rw".to_owned(),
                host_path: "/shared".to_owned(),
                ..v1::Mount::default()
            },
        ];
        let node = Node {
            engine: docker_29(),
            ..Node::new()
        };
        let body = container_create_body(&config, &sandbox(false), &node.options()).unwrap();
        let body = body.to_json();
        assert_eq!(field(&body, "Binds"), Some(json!(["/shared:/rw:rprivate"])));
        assert_eq!(
            field(&body, "Mounts"),
            Some(json!([{
                "Type": "bind",
                "Source": "/shared",
                "Target": "/ro",
                "ReadOnly": true,
                "BindOptions": {
                    "Propagation": "rprivate",
                    "CreateMountpoint": true,
                    "ReadOnlyNonRecursive": true
                }
            }]))
        );
    }

    #[test]
    fn stop_signals_use_dockers_names() {
        let cases = [
            (v1::Signal::RuntimeDefault, ""),
            (v1::Signal::Sigterm, "SIGTERM"),
            (v1::Signal::Sigquit, "SIGQUIT"),
            (v1::Signal::Sigrtmin, "SIGRTMIN"),
            (v1::Signal::Sigrtmaxminus14, "SIGRTMAX-14"),
        ];
        for (signal, expected) in cases {
            assert_eq!(stop_signal(signal as i32).unwrap(), expected);
        }
        assert!(stop_signal(99).is_err());
    }

    #[test]
    fn other_bad_configurations_are_refused_naming_the_field() {
        let cases: [(EditConfig, Code, &str); 6] = [
            (
                |c| c.metadata = None,
                Code::InvalidArgument,
                "ContainerConfig has no metadata",
            ),
            (
                |c| c.metadata.as_mut().unwrap().name = "a_b".to_owned(),
                Code::InvalidArgument,
                "container metadata.name",
            ),
            (
                |c| c.working_dir = "srv".to_owned(),
                Code::InvalidArgument,
                "working_dir",
            ),
            (
                |c| c.args = vec!["a\0b".to_owned()],
                Code::InvalidArgument,
                "args[0]",
            ),
            (
                |c| {
                    c.labels
                        .insert("io.kubernetes.sandbox.id".to_owned(), "x".to_owned());
                },
                Code::InvalidArgument,
                "label \"io.kubernetes.sandbox.id\" is reserved",
            ),
            (|c| c.stop_signal = 99, Code::InvalidArgument, "stop_signal"),
        ];
        for (edit, code, message) in cases {
            let mut config = config();
            edit(&mut config);
            let (got, text) = refusal(&config);
            assert_eq!(got, code, "{text}");
            assert!(text.starts_with(message), "{text}");
        }
    }

    #[test]
    fn a_container_runs_with_its_sandboxs_runtime() {
        let node = Node::new();
        let options = ContainerOptions {
            runtime: "io.containerd.runc.v2",
            ..node.options()
        };
        let body = container_create_body(&config(), &sandbox(false), &options).unwrap();
        assert_eq!(
            body.to_json()["HostConfig"]["Runtime"],
            "io.containerd.runc.v2"
        );
    }

    #[test]
    fn cdi_devices_reach_the_body_as_a_cdi_device_request() {
        let mut config = config();
        config.cdi_devices = vec![v1::CdiDevice {
            name: "vendor.com/gpu=0".to_owned(),
        }];
        config.annotations = HashMap::from([(
            "cdi.k8s.io/vendor.com_gpu".to_owned(),
            "vendor.com/gpu=1".to_owned(),
        )]);
        let node = Node {
            engine: engine_with_cdi(),
            ..Node::new()
        };
        let body = container_create_body(&config, &sandbox(false), &node.options()).unwrap();
        let body = body.to_json();
        assert_eq!(
            field(&body, "DeviceRequests"),
            Some(json!([{"Driver": "cdi", "DeviceIDs": ["vendor.com/gpu=0", "vendor.com/gpu=1"]}]))
        );
    }

    #[test]
    fn the_cgroup_parent_follows_the_sandbox_and_the_cgroup_driver() {
        let node = Node::new();
        let mut sandbox = sandbox(false);
        sandbox.linux.as_mut().unwrap().cgroup_parent =
            "/kubepods.slice/kubepods-pod1.slice".to_owned();
        let options = ContainerOptions {
            cgroup_driver: v1::CgroupDriver::Systemd,
            ..node.options()
        };
        let body = container_create_body(&config(), &sandbox, &options).unwrap();
        assert_eq!(body.host_config.cgroup_parent, "kubepods-pod1.slice");
    }
}
