//! Running CNI plugins for a pod, per the CNI specification (1.0.0, which
//! also covers configurations of versions 0.3.x and 0.4.0).
//!
//! [`CniRunner`] owns the protocol around each execution: the environment
//! (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`,
//! `CNI_PATH`), the configuration each plugin of a list reads on stdin
//! (`name` and `cniVersion` of the list, `prevResult`, `runtimeConfig` with
//! only the capabilities the plugin declares), ADD in order with results
//! chained, DEL in reverse, CHECK, the loopback network that goes with every
//! pod network, and the result cache between ADD and DEL. Executing a binary
//! sits behind [`PluginExec`] (`exec`); reading pod IPs from a result is
//! `result`; bandwidth annotations are `bandwidth`; the operations are
//! `command`; the errors are `error`.
//!
//! Decisions:
//! - DEL is best effort: every plugin is called even when an earlier one
//!   failed, and the failures are reported together, so one broken plugin
//!   cannot leak another's IP reservation. A failure that says "no such
//!   file or directory" while the namespace path no longer exists is the
//!   namespace being gone, and counts as success.
//! - A failed ADD is rolled back at once: DEL for every plugin of the list
//!   (the spec's advice), then for loopback, and the error names both the
//!   failure and any rollback failure.
//! - The result of a successful ADD is cached in
//!   `<cache dir>/results/<network>-<container id>-<ifname>` in the CNI
//!   library's `cniCacheV1` layout (without its `config` field), so DEL and
//!   CHECK can pass `prevResult` (configurations of version 0.4.0 and up)
//!   even after a restart. The result so far is cached before each plugin
//!   after the first, so the DEL of an ADD that failed, or that dockshim
//!   died in, gets it too. A cache that cannot be written or read only
//!   costs DEL its `prevResult`, which the spec allows.
//!
//! This module does not pick the network configuration (`cni_config`),
//! enter namespaces, or decide when a pod is attached; it never retries.

mod bandwidth;
mod command;
mod error;
mod exec;
mod result;

pub use bandwidth::{Bandwidth, EGRESS_BANDWIDTH_ANNOTATION, INGRESS_BANDWIDTH_ANNOTATION};
pub use command::CniCommand;
pub use error::CniError;
pub use exec::{PluginCall, PluginExec, ProcessExec, DEFAULT_PLUGIN_TIMEOUT};
pub use result::PodIps;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process;

use serde_json::{json, Map, Value};

use super::cni_config::{CniNetwork, CniPlugin, NetworkOrigin};
use crate::failpoint::{self, FailPoint};
use crate::pidfd;
use crate::store::write_atomic;
use result::{parse_result, pod_ips};

/// The pod's interface name, as the kubelet's CNI integrations always use.
pub const POD_IFNAME: &str = "eth0";

/// The network the loopback plugin is run as.
pub const LOOPBACK_NETWORK_NAME: &str = "cni-loopback";

/// A version every loopback plugin since CNI 0.3 accepts.
const LOOPBACK_CNI_VERSION: &str = "0.3.1";

/// Largest cached result file read back.
const MAX_CACHE_FILE_BYTES: u64 = 1 << 20;

/// The `kind` of a result cache file, as the CNI library writes it.
const CACHE_KIND: &str = "cniCacheV1";

/// The burst sent with every rate: effectively unlimited, as the kubelet's
/// CNI integration has always sent it.
const BANDWIDTH_BURST: u64 = i32::MAX as u64;

/// The error text that means a path is gone.
const NO_SUCH_FILE: &str = "no such file or directory";

/// The pod a CNI operation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    /// The sandbox container's ID: `CNI_CONTAINERID` and
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub sandbox_id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pod's network namespace, e.g. `/proc/<pid>/ns/net`. `None` only
    /// for DEL once the sandbox has no process left; plugins then release
    /// what they hold on the host and skip the namespace.
    pub netns: Option<PathBuf>,
}

/// A host port the `portmap` plugin forwards into the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Mappings with a host port of 0 are not sent to plugins.
    pub host_port: i32,
    pub container_port: i32,
    /// `TCP`, `UDP` or `SCTP`, any case.
    pub protocol: String,
    /// Empty for every host address.
    pub host_ip: String,
}

/// The values behind the capabilities plugins may declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeArgs {
    /// `portMappings`.
    pub port_mappings: Vec<PortMapping>,
    /// `bandwidth`.
    pub bandwidth: Option<Bandwidth>,
    /// `ipRanges`: the node's pod CIDRs, one range set each.
    pub pod_cidrs: Vec<String>,
}

/// Where a [`CniRunner`] finds plugins and keeps results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniOptions {
    /// Searched in order for plugins; joined with `:` as `CNI_PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// The `results/` cache lives here.
    pub cache_dir: PathBuf,
    /// Report the second address family of dual-stack pods.
    pub ipv6_dual_stack: bool,
}

/// A pod network attachment the result cache records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAttachment {
    /// The network's name, as its configuration gives it.
    pub network: String,
    /// The pod's addresses in the cached ADD result.
    pub ips: PodIps,
}

/// Attaches pods to and detaches them from a CNI network.
#[derive(Debug)]
pub struct CniRunner {
    exec: Box<dyn PluginExec>,
    options: CniOptions,
}

/// A pod's network namespace held open for one CNI operation. Plugins are
/// given `/proc/<dockshim's PID>/fd/<n>`, which names the namespace that
/// was opened while the sandbox's process was pinned by a pidfd, instead
/// of `/proc/<pid>/ns/net`, which a PID recycled meanwhile would point at
/// another process's namespace.
#[derive(Debug)]
struct HeldNetns {
    held: Option<(File, PathBuf)>,
}

impl HeldNetns {
    /// Holds `netns` if it is a `/proc/<pid>/…` path; any other path (a
    /// namespace bind-mounted to a file) cannot be recycled and is passed
    /// on as it is.
    fn hold(netns: &Path) -> io::Result<HeldNetns> {
        let Some(pid) = pidfd::pid_of_proc_path(netns) else {
            return Ok(HeldNetns { held: None });
        };
        let file = pidfd::open_pinned(pid, netns, File::options().read(true))?;
        let path = PathBuf::from(format!("/proc/{}/fd/{}", process::id(), file.as_raw_fd()));
        Ok(HeldNetns {
            held: Some((file, path)),
        })
    }

    /// As [`HeldNetns::hold`], for DEL: a namespace that is gone is passed
    /// on as it was, for the plugins to release what they hold on the host.
    fn hold_if_there(netns: Option<&Path>) -> HeldNetns {
        match netns.map(HeldNetns::hold) {
            Some(Ok(held)) => held,
            Some(Err(err)) => {
                log::debug!("CNI DEL: the pod's network namespace is not held: {err}");
                HeldNetns { held: None }
            }
            None => HeldNetns { held: None },
        }
    }

    /// `pod`, naming the held namespace.
    fn attachment(&self, pod: &PodAttachment) -> PodAttachment {
        let mut pod = pod.clone();
        if let Some((_, path)) = &self.held {
            pod.netns = Some(path.clone());
        }
        pod
    }
}

impl CniRunner {
    pub fn new(exec: Box<dyn PluginExec>, options: CniOptions) -> CniRunner {
        CniRunner { exec, options }
    }

    /// Runs plugins as processes with [`DEFAULT_PLUGIN_TIMEOUT`].
    pub fn with_processes(options: CniOptions) -> CniRunner {
        CniRunner::new(Box::new(ProcessExec::new(DEFAULT_PLUGIN_TIMEOUT)), options)
    }

    /// Attaches the pod: loopback, then `network`. On failure everything
    /// already done is deleted again before the error is returned.
    pub fn add(
        &self,
        network: &CniNetwork,
        pod: &PodAttachment,
        args: &RuntimeArgs,
    ) -> Result<PodIps, CniError> {
        check_request(network, pod)?;
        let Some(netns) = &pod.netns else {
            return Err(CniError::InvalidArgument(
                "ADD needs the pod's network namespace".to_owned(),
            ));
        };
        let held = HeldNetns::hold(netns).map_err(|source| CniError::NamespaceGone {
            netns: netns.clone(),
            source,
        })?;
        let held_pod = held.attachment(pod);
        let pod = &held_pod;
        let loopback = loopback_network();
        if let Err(cause) = self.add_list(&loopback, pod, args, false) {
            let cleanup = self.delete_all(&[&loopback], pod, args, None).err();
            return Err(CniError::Add {
                network: loopback.name,
                cause: Box::new(cause),
                cleanup: cleanup.map(Box::new),
            });
        }
        let outcome = self.add_list(network, pod, args, true).and_then(|result| {
            let ips = pod_ips(&result, self.options.ipv6_dual_stack)?;
            Ok((ips, result))
        });
        match outcome {
            Ok((ips, result)) => {
                failpoint::reached(FailPoint::RunPodSandboxNetworkPluginsAdded);
                self.save_cached_result(network, pod, &result);
                Ok(ips)
            }
            Err(cause) => {
                let prev_result = self.prev_result_for_del(network, pod);
                let cleanup = self
                    .delete_all(&[network, &loopback], pod, args, prev_result.as_ref())
                    .err();
                if cleanup.is_none() {
                    self.remove_cached_result(network, pod);
                }
                Err(CniError::Add {
                    network: network.name.clone(),
                    cause: Box::new(cause),
                    cleanup: cleanup.map(Box::new),
                })
            }
        }
    }

    /// Detaches the pod: `network` in reverse plugin order, then loopback.
    /// Every plugin is called; the failures are reported together. `args`
    /// must be those of the ADD (the checkpoint's port mappings): `portmap`
    /// removes its rules only when it is given the mappings again.
    pub fn del(
        &self,
        network: &CniNetwork,
        pod: &PodAttachment,
        args: &RuntimeArgs,
    ) -> Result<(), CniError> {
        check_request(network, pod)?;
        let held = HeldNetns::hold_if_there(pod.netns.as_deref());
        let held_pod = held.attachment(pod);
        let prev_result = self.prev_result_for_del(network, pod);
        let loopback = loopback_network();
        self.delete_all(&[network, &loopback], &held_pod, args, prev_result.as_ref())?;
        self.remove_cached_result(network, pod);
        Ok(())
    }

    /// Asks every plugin whether the pod is still attached as ADD left it.
    /// Configurations older than 0.4.0, and lists with `disableCheck`, have
    /// no CHECK: they always pass.
    pub fn check(
        &self,
        network: &CniNetwork,
        pod: &PodAttachment,
        args: &RuntimeArgs,
    ) -> Result<(), CniError> {
        check_request(network, pod)?;
        if !supports_prev_result_on_del(&network.cni_version) || check_disabled(network) {
            return Ok(());
        }
        let wrap = |cause| CniError::Check {
            network: network.name.clone(),
            cause: Box::new(cause),
        };
        let prev_result = self
            .cached_result(network, pod)
            .ok_or_else(|| CniError::NoCachedResult {
                network: network.name.clone(),
                container_id: pod.sandbox_id.clone(),
            })
            .map_err(wrap)?;
        for plugin in plugin_configs(network).map_err(wrap)? {
            self.run(
                CniCommand::Check,
                network,
                &plugin,
                pod,
                args,
                Some(&prev_result),
            )
            .map_err(wrap)?;
        }
        Ok(())
    }

    /// The `prevResult` a DEL of `pod` from `network` gets: the cached one,
    /// for the versions whose DEL takes one.
    fn prev_result_for_del(&self, network: &CniNetwork, pod: &PodAttachment) -> Option<Value> {
        if supports_prev_result_on_del(&network.cni_version) {
            self.cached_result(network, pod)
        } else {
            None
        }
    }

    /// ADD through the list with each result passed on; the last result.
    /// With `cache`, the result so far is cached before each plugin after
    /// the first runs: a DEL after dockshim died half-way through the list
    /// (or after a later plugin failed) then still passes the addresses
    /// the list handed out to the plugins that clean up by them — the
    /// firewall plugin leaves its rules behind on a DEL without them.
    fn add_list(
        &self,
        network: &CniNetwork,
        pod: &PodAttachment,
        args: &RuntimeArgs,
        cache: bool,
    ) -> Result<Value, CniError> {
        let mut prev_result: Option<Value> = None;
        for plugin in plugin_configs(network)? {
            if let Some(result) = prev_result.as_ref().filter(|_| cache) {
                failpoint::reached(FailPoint::RunPodSandboxNetworkFirstPluginAdded);
                self.save_cached_result(network, pod, result);
            }
            let output = self.run(
                CniCommand::Add,
                network,
                &plugin,
                pod,
                args,
                prev_result.as_ref(),
            )?;
            // A plugin that prints nothing passes the previous result on
            // unchanged rather than erasing it.
            if !output.iter().all(u8::is_ascii_whitespace) {
                prev_result = Some(parse_result(&plugin.plugin_type, &output)?);
            }
        }
        Ok(prev_result.unwrap_or_else(|| json!({ "cniVersion": network.cni_version })))
    }

    /// DEL through each network's plugins in reverse, all of them.
    fn delete_all(
        &self,
        networks: &[&CniNetwork],
        pod: &PodAttachment,
        args: &RuntimeArgs,
        prev_result: Option<&Value>,
    ) -> Result<(), CniError> {
        let netns_gone = pod.netns.as_deref().is_none_or(|path| !path.exists());
        let mut failures = Vec::new();
        for (i, network) in networks.iter().enumerate() {
            // The cached result belongs to the first (pod) network only.
            let prev_result = if i == 0 { prev_result } else { None };
            let plugins = match plugin_configs(network) {
                Ok(plugins) => plugins,
                Err(err) => {
                    failures.push((network.name.clone(), err));
                    continue;
                }
            };
            for plugin in plugins.iter().rev() {
                match self.run(CniCommand::Del, network, plugin, pod, args, prev_result) {
                    Ok(_) => {}
                    Err(err)
                        if netns_gone
                            && err.to_string().to_ascii_lowercase().contains(NO_SUCH_FILE) =>
                    {
                        log::debug!(
                            "CNI DEL of {} on {} whose namespace is gone: {err}",
                            pod.sandbox_id,
                            network.name
                        );
                    }
                    Err(err) => failures.push((network.name.clone(), err)),
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(CniError::Del { failures })
        }
    }

    /// Runs one plugin of `network` and returns its stdout.
    fn run(
        &self,
        command: CniCommand,
        network: &CniNetwork,
        plugin: &PluginConfig<'_>,
        pod: &PodAttachment,
        args: &RuntimeArgs,
        prev_result: Option<&Value>,
    ) -> Result<Vec<u8>, CniError> {
        let stdin = plugin_stdin(network, plugin, args, prev_result)?;
        let env = self.environment(command, pod);
        log::debug!(
            "CNI {command} {} ({}) for {}",
            plugin.plugin_type,
            network.name,
            pod.sandbox_id
        );
        self.exec.exec(&PluginCall {
            command,
            plugin_type: &plugin.plugin_type,
            bin_dirs: &self.options.bin_dirs,
            env: &env,
            stdin: &stdin,
        })
    }

    fn environment(&self, command: CniCommand, pod: &PodAttachment) -> Vec<(&'static str, String)> {
        let netns = pod
            .netns
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let path: Vec<String> = self
            .options
            .bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        vec![
            ("CNI_COMMAND", command.as_str().to_owned()),
            ("CNI_CONTAINERID", pod.sandbox_id.clone()),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", POD_IFNAME.to_owned()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                    pod.namespace, pod.name, pod.sandbox_id, pod.uid
                ),
            ),
            ("CNI_PATH", path.join(":")),
        ]
    }

    fn cache_path(&self, network: &CniNetwork, pod: &PodAttachment) -> PathBuf {
        self.options
            .cache_dir
            .join("results")
            .join(format!("{}-{}-{POD_IFNAME}", network.name, pod.sandbox_id))
    }

    fn save_cached_result(&self, network: &CniNetwork, pod: &PodAttachment, result: &Value) {
        let path = self.cache_path(network, pod);
        let entry = json!({
            "kind": CACHE_KIND,
            "containerId": pod.sandbox_id,
            "ifName": POD_IFNAME,
            "networkName": network.name,
            "result": result,
        });
        let written = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| write_atomic(&path, entry.to_string().as_bytes()));
        if let Err(err) = written {
            log::warn!(
                "cannot cache the CNI result in {} (DEL will run without it): {err}",
                path.display()
            );
        }
    }

    /// The cached ADD result, if it is there and of the network's version.
    fn cached_result(&self, network: &CniNetwork, pod: &PodAttachment) -> Option<Value> {
        let path = self.cache_path(network, pod);
        let text = match read_cache_file(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
            Err(err) => {
                log::warn!("cannot read cached CNI result {}: {err}", path.display());
                return None;
            }
        };
        // From bytes, as every JSON read is: one parser is compiled, not two.
        let entry: Value = match serde_json::from_slice(text.as_bytes()) {
            Ok(entry) => entry,
            Err(err) => {
                log::warn!("ignoring cached CNI result {}: {err}", path.display());
                return None;
            }
        };
        let result = entry.get("result").filter(|r| r.is_object())?;
        if result.get("cniVersion").and_then(Value::as_str) != Some(network.cni_version.as_str()) {
            return None;
        }
        Some(result.clone())
    }

    fn remove_cached_result(&self, network: &CniNetwork, pod: &PodAttachment) {
        let path = self.cache_path(network, pod);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => log::warn!("cannot remove cached CNI result {}: {err}", path.display()),
        }
    }
}

impl CniRunner {
    /// The attachment of sandbox `sandbox_id`'s [`POD_IFNAME`] to a pod
    /// network that the result cache records, whoever cached it: dockshim,
    /// or the CNI library another runtime (cri-dockerd) ran ADD through,
    /// which writes the same `cniCacheV1` layout. The network is named by
    /// the entry itself, so it is found also after the configuration
    /// changed; loopback, entries of another kind or interface, and results
    /// without an address for the pod are not attachments. `None` when the
    /// cache holds none; when it holds several, the first file name wins.
    pub fn cached_attachment(&self, sandbox_id: &str) -> Option<CachedAttachment> {
        if !is_cni_name(sandbox_id) {
            return None;
        }
        let dir = self.options.cache_dir.join("results");
        let suffix = format!("-{sandbox_id}-{POD_IFNAME}");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.ends_with(&suffix))
            .collect();
        names.sort();
        names.into_iter().find_map(|name| {
            let path = dir.join(&name);
            let text = read_cache_file(&path).ok()?;
            let attachment = cached_attachment_in(&text, sandbox_id, self.options.ipv6_dual_stack);
            match &attachment {
                Some(found) if name == format!("{}{suffix}", found.network) => attachment,
                _ => {
                    log::debug!("{} records no pod network attachment", path.display());
                    None
                }
            }
        })
    }
}

/// A result cache file's text; one longer than [`MAX_CACHE_FILE_BYTES`] is
/// cut off a byte past it, so it never parses.
fn read_cache_file(path: &Path) -> io::Result<String> {
    io::read_to_string(File::open(path)?.take(MAX_CACHE_FILE_BYTES + 1))
}

/// The attachment a cache entry's text records for `sandbox_id`, if it is
/// one (see [`CniRunner::cached_attachment`]).
fn cached_attachment_in(
    text: &str,
    sandbox_id: &str,
    dual_stack: bool,
) -> Option<CachedAttachment> {
    // From bytes, as every JSON read is: one parser is compiled, not two.
    let entry: Value = serde_json::from_slice(text.as_bytes()).ok()?;
    let field = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
    let network = field("networkName");
    if field("kind") != CACHE_KIND
        || field("containerId") != sandbox_id
        || field("ifName") != POD_IFNAME
        || network.is_empty()
        || network == LOOPBACK_NETWORK_NAME
    {
        return None;
    }
    let ips = pod_ips(entry.get("result")?, dual_stack).ok()?;
    ips.primary.is_some().then(|| CachedAttachment {
        network: network.to_owned(),
        ips,
    })
}

/// Refuses what cannot be passed to plugins safely: IDs and names that
/// would break `CNI_ARGS` or the cache file name.
fn check_request(network: &CniNetwork, pod: &PodAttachment) -> Result<(), CniError> {
    if !is_cni_name(&pod.sandbox_id) {
        return Err(CniError::InvalidArgument(format!(
            "container ID {:?} must be letters, digits, '_', '.' and '-', starting with a letter or digit",
            pod.sandbox_id
        )));
    }
    if !is_cni_name(&network.name) {
        return Err(CniError::InvalidArgument(format!(
            "network name {:?} must be letters, digits, '_', '.' and '-', starting with a letter or digit",
            network.name
        )));
    }
    for (what, value) in [
        ("pod namespace", &pod.namespace),
        ("pod name", &pod.name),
        ("pod UID", &pod.uid),
    ] {
        if value.contains([';', '=']) || value.chars().any(char::is_control) {
            return Err(CniError::InvalidArgument(format!(
                "{what} {value:?} cannot be passed in CNI_ARGS"
            )));
        }
    }
    Ok(())
}

/// The CNI spec's rule for container IDs and network names.
fn is_cni_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The loopback network every pod gets before its own.
fn loopback_network() -> CniNetwork {
    CniNetwork {
        origin: NetworkOrigin::BuiltIn {
            subnets: Vec::new(),
        },
        name: LOOPBACK_NETWORK_NAME.to_owned(),
        cni_version: LOOPBACK_CNI_VERSION.to_owned(),
        plugins: vec![CniPlugin {
            plugin_type: "loopback".to_owned(),
            capabilities: Default::default(),
        }],
        config: json!({
            "cniVersion": LOOPBACK_CNI_VERSION,
            "name": LOOPBACK_NETWORK_NAME,
            "type": "loopback",
        }),
    }
}

/// One plugin's configuration object within a network.
struct PluginConfig<'a> {
    plugin_type: String,
    object: &'a Map<String, Value>,
}

/// The plugin objects of a list, or the single plugin of a `.conf`.
fn plugin_configs(network: &CniNetwork) -> Result<Vec<PluginConfig<'_>>, CniError> {
    let invalid = |why: &str| CniError::InvalidArgument(format!("network {}: {why}", network.name));
    let objects: Vec<&Value> = match network.config.get("plugins") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(_) => return Err(invalid("\"plugins\" is not a list")),
        None => vec![&network.config],
    };
    if objects.is_empty() {
        return Err(invalid("no plugins"));
    }
    objects
        .into_iter()
        .map(|value| {
            let object = value
                .as_object()
                .ok_or_else(|| invalid("a plugin is not an object"))?;
            let plugin_type = object
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid("a plugin has no \"type\""))?;
            Ok(PluginConfig {
                plugin_type: plugin_type.to_owned(),
                object,
            })
        })
        .collect()
}

/// What a plugin reads on stdin: its own object with the list's name and
/// version, `prevResult`, and the declared capabilities' values merged into
/// `runtimeConfig`.
fn plugin_stdin(
    network: &CniNetwork,
    plugin: &PluginConfig<'_>,
    args: &RuntimeArgs,
    prev_result: Option<&Value>,
) -> Result<Vec<u8>, CniError> {
    let mut config = plugin.object.clone();
    config.insert(
        "cniVersion".to_owned(),
        Value::from(network.cni_version.as_str()),
    );
    config.insert("name".to_owned(), Value::from(network.name.as_str()));
    if let Some(prev) = prev_result {
        config.insert("prevResult".to_owned(), prev.clone());
    }
    let capabilities = runtime_config(plugin.object, args);
    if !capabilities.is_empty() {
        match config.get_mut("runtimeConfig") {
            Some(Value::Object(existing)) => existing.extend(capabilities),
            _ => {
                config.insert("runtimeConfig".to_owned(), Value::Object(capabilities));
            }
        }
    }
    serde_json::to_vec(&config).map_err(|e| {
        CniError::InvalidArgument(format!(
            "cannot encode the {} configuration: {e}",
            plugin.plugin_type
        ))
    })
}

/// The `runtimeConfig` entries for the capabilities `plugin` declares.
fn runtime_config(plugin: &Map<String, Value>, args: &RuntimeArgs) -> Map<String, Value> {
    let declared = |name: &str| {
        plugin
            .get("capabilities")
            .and_then(|caps| caps.get(name))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let mut config = Map::new();
    if declared("portMappings") {
        let mappings: Vec<Value> = args
            .port_mappings
            .iter()
            .filter(|m| m.host_port > 0)
            .map(|m| {
                json!({
                    "hostPort": m.host_port,
                    "containerPort": m.container_port,
                    "protocol": m.protocol.to_ascii_lowercase(),
                    "hostIP": m.host_ip,
                })
            })
            .collect();
        config.insert("portMappings".to_owned(), Value::Array(mappings));
    }
    if let Some(bandwidth) = args.bandwidth.filter(|_| declared("bandwidth")) {
        let mut entry = Map::new();
        if let Some(rate) = bandwidth.ingress_bits_per_sec {
            entry.insert("ingressRate".to_owned(), Value::from(rate));
            entry.insert("ingressBurst".to_owned(), Value::from(BANDWIDTH_BURST));
        }
        if let Some(rate) = bandwidth.egress_bits_per_sec {
            entry.insert("egressRate".to_owned(), Value::from(rate));
            entry.insert("egressBurst".to_owned(), Value::from(BANDWIDTH_BURST));
        }
        config.insert("bandwidth".to_owned(), Value::Object(entry));
    }
    if declared("ipRanges") && !args.pod_cidrs.is_empty() {
        let range_sets: Vec<Value> = args
            .pod_cidrs
            .iter()
            .map(|cidr| json!([{ "subnet": cidr }]))
            .collect();
        config.insert("ipRanges".to_owned(), Value::Array(range_sets));
    }
    config
}

/// Parses "MAJOR.MINOR.PATCH"; what does not parse is the oldest version.
fn cni_version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// `prevResult` on DEL, and CHECK itself, came with version 0.4.0.
fn supports_prev_result_on_del(version: &str) -> bool {
    cni_version(version) >= (0, 4, 0)
}

fn check_disabled(network: &CniNetwork) -> bool {
    match network.config.get("disableCheck") {
        Some(Value::Bool(disabled)) => *disabled,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A namespace bind-mounted to a file, as `ip netns` makes them: not
    /// under `/proc`, so passed to plugins as it is.
    const NETNS: &str = "/var/run/netns/pod";
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    /// One execution as the fake saw it.
    #[derive(Debug, Clone)]
    struct Recorded {
        command: CniCommand,
        plugin: String,
        env: HashMap<String, String>,
        stdin: Value,
    }

    /// Answers plugin calls without running anything: ADD echoes
    /// `prevResult` (or gives `first_result` to the first plugin), unless
    /// `failures` names the plugin and command.
    #[derive(Debug, Clone, Default)]
    struct FakeExec {
        calls: Arc<Mutex<Vec<Recorded>>>,
        results: Arc<Mutex<HashMap<String, Value>>>,
        failures: Arc<Mutex<HashMap<(CniCommand, String), String>>>,
    }

    impl FakeExec {
        fn result_for(&self, plugin: &str, result: Value) {
            self.results
                .lock()
                .unwrap()
                .insert(plugin.to_owned(), result);
        }

        fn fail(&self, command: CniCommand, plugin: &str, msg: &str) {
            self.failures
                .lock()
                .unwrap()
                .insert((command, plugin.to_owned()), msg.to_owned());
        }

        fn calls(&self) -> Vec<Recorded> {
            self.calls.lock().unwrap().clone()
        }

        fn sequence(&self) -> Vec<String> {
            self.calls()
                .iter()
                .map(|c| format!("{} {}", c.command, c.plugin))
                .collect()
        }
    }

    impl PluginExec for FakeExec {
        fn exec(&self, call: &PluginCall<'_>) -> Result<Vec<u8>, CniError> {
            let stdin: Value = serde_json::from_slice(call.stdin).unwrap();
            self.calls.lock().unwrap().push(Recorded {
                command: call.command,
                plugin: call.plugin_type.to_owned(),
                env: call
                    .env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
                stdin: stdin.clone(),
            });
            if let Some(msg) = self
                .failures
                .lock()
                .unwrap()
                .get(&(call.command, call.plugin_type.to_owned()))
            {
                return Err(CniError::Plugin {
                    plugin: call.plugin_type.to_owned(),
                    command: call.command,
                    code: 100,
                    msg: msg.clone(),
                    details: String::new(),
                });
            }
            if call.command != CniCommand::Add {
                return Ok(Vec::new());
            }
            let result = match self.results.lock().unwrap().get(call.plugin_type) {
                Some(result) => result.clone(),
                None => stdin
                    .get("prevResult")
                    .cloned()
                    .unwrap_or_else(|| json!({"cniVersion": stdin["cniVersion"]})),
            };
            Ok(result.to_string().into_bytes())
        }
    }

    const SANDBOX: &str = "5f2c9a0e1b3d";

    fn pod(netns: Option<&str>) -> PodAttachment {
        PodAttachment {
            sandbox_id: SANDBOX.to_owned(),
            namespace: "default".to_owned(),
            name: "web".to_owned(),
            uid: "11111111-2222".to_owned(),
            netns: netns.map(PathBuf::from),
        }
    }

    fn network(config: Value) -> CniNetwork {
        CniNetwork {
            origin: NetworkOrigin::File(PathBuf::from("/etc/cni/net.d/10-pods.conflist")),
            name: config["name"].as_str().unwrap().to_owned(),
            cni_version: config["cniVersion"].as_str().unwrap().to_owned(),
            plugins: Vec::new(),
            config,
        }
    }

    fn pods_network() -> CniNetwork {
        network(json!({
            "cniVersion": "1.0.0",
            "name": "pods",
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}},
            ]
        }))
    }

    fn bridge_result() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/proc/42/ns/net"}
            ],
            "ips": [
                {"address": "10.88.0.7/24", "gateway": "10.88.0.1", "interface": 2},
                {"address": "fd00::7/64", "interface": 2}
            ]
        })
    }

    struct Harness {
        _cache: tempfile::TempDir,
        cache_dir: PathBuf,
        exec: FakeExec,
        runner: CniRunner,
    }

    fn harness(dual_stack: bool) -> Harness {
        let cache = tempfile::tempdir().unwrap();
        let exec = FakeExec::default();
        exec.result_for("bridge", bridge_result());
        let options = CniOptions {
            bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cache_dir: cache.path().to_path_buf(),
            ipv6_dual_stack: dual_stack,
        };
        Harness {
            cache_dir: cache.path().to_path_buf(),
            runner: CniRunner::new(Box::new(exec.clone()), options),
            exec,
            _cache: cache,
        }
    }

    #[test]
    fn add_runs_loopback_then_the_list_in_order() {
        let h = harness(false);
        let ips = h
            .runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        assert_eq!(
            h.exec.sequence(),
            ["ADD loopback", "ADD bridge", "ADD portmap", "ADD bandwidth"]
        );
        assert_eq!(ips.primary, Some("10.88.0.7".parse().unwrap()));
        assert!(ips.additional.is_empty());
    }

    #[test]
    fn add_chains_each_result_into_the_next_plugins_prev_result() {
        let h = harness(false);
        h.runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        let calls = h.exec.calls();
        assert!(calls[0].stdin.get("prevResult").is_none());
        assert!(calls[1].stdin.get("prevResult").is_none());
        assert_eq!(calls[2].stdin["prevResult"], bridge_result());
        assert_eq!(calls[3].stdin["prevResult"], bridge_result());
    }

    #[test]
    fn each_plugin_gets_the_lists_name_and_version_and_its_own_keys() {
        let h = harness(false);
        h.runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        let calls = h.exec.calls();
        assert_eq!(
            calls[0].stdin,
            json!({"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"})
        );
        assert_eq!(calls[1].stdin["name"], "pods");
        assert_eq!(calls[1].stdin["cniVersion"], "1.0.0");
        assert_eq!(calls[1].stdin["bridge"], "cni0");
        assert_eq!(calls[1].stdin["ipam"]["type"], "host-local");
    }

    #[test]
    fn environment_follows_the_spec_and_the_kubelet() {
        let h = harness(false);
        h.runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        let env = &h.exec.calls()[1].env;
        assert_eq!(env["CNI_COMMAND"], "ADD");
        assert_eq!(env["CNI_CONTAINERID"], SANDBOX);
        assert_eq!(env["CNI_NETNS"], NETNS);
        assert_eq!(env["CNI_IFNAME"], "eth0");
        assert_eq!(
            env["CNI_ARGS"],
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
                 K8S_POD_INFRA_CONTAINER_ID={SANDBOX};K8S_POD_UID=11111111-2222"
            )
        );
        assert_eq!(env["CNI_PATH"], "/opt/cni/bin:/usr/lib/cni");
    }

    #[test]
    fn a_process_namespace_reaches_plugins_through_a_held_descriptor() {
        let mut child = process::Command::new("sleep").arg("30").spawn().unwrap();
        let netns = format!("/proc/{}/ns/net", child.id());
        let h = harness(false);
        h.runner
            .add(&pods_network(), &pod(Some(&netns)), &RuntimeArgs::default())
            .unwrap();
        let given = PathBuf::from(&h.exec.calls()[1].env["CNI_NETNS"]);
        let prefix = format!("/proc/{}/fd/", process::id());
        assert!(given.starts_with(&prefix), "{}", given.display());
        // Held only for the length of the call.
        assert!(!given.exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn add_into_the_namespace_of_a_process_that_ended_is_a_failed_precondition() {
        let mut child = process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let h = harness(false);
        let err = h
            .runner
            .add(
                &pods_network(),
                &pod(Some(&format!("/proc/{pid}/ns/net"))),
                &RuntimeArgs::default(),
            )
            .unwrap_err();
        assert!(matches!(err, CniError::NamespaceGone { .. }), "{err}");
        assert!(h.exec.calls().is_empty());
    }

    #[test]
    fn runtime_config_holds_only_declared_capabilities() {
        let h = harness(false);
        let args = RuntimeArgs {
            port_mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "TCP".to_owned(),
                    host_ip: "127.0.0.1".to_owned(),
                },
                PortMapping {
                    host_port: 0,
                    container_port: 53,
                    protocol: "UDP".to_owned(),
                    host_ip: String::new(),
                },
            ],
            bandwidth: Some(Bandwidth {
                ingress_bits_per_sec: Some(10_000_000),
                egress_bits_per_sec: None,
            }),
            pod_cidrs: vec!["10.88.0.0/16".to_owned()],
        };
        h.runner
            .add(&pods_network(), &pod(Some(NETNS)), &args)
            .unwrap();
        let calls = h.exec.calls();
        assert!(calls[1].stdin.get("runtimeConfig").is_none());
        assert_eq!(
            calls[2].stdin["runtimeConfig"],
            json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}
            ]})
        );
        assert_eq!(
            calls[3].stdin["runtimeConfig"],
            json!({"bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 2147483647}})
        );
    }

    #[test]
    fn ip_ranges_get_one_range_set_per_pod_cidr() {
        let h = harness(true);
        let net = network(json!({
            "cniVersion": "0.4.0",
            "name": "pods",
            "plugins": [{
                "type": "bridge",
                "capabilities": {"ipRanges": true},
                "runtimeConfig": {"mac": "aa:bb:cc:dd:ee:ff"}
            }]
        }));
        let args = RuntimeArgs {
            pod_cidrs: vec!["10.88.0.0/16".to_owned(), "fd00::/64".to_owned()],
            ..RuntimeArgs::default()
        };
        h.runner.add(&net, &pod(Some(NETNS)), &args).unwrap();
        assert_eq!(
            h.exec.calls()[1].stdin["runtimeConfig"],
            json!({
                "mac": "aa:bb:cc:dd:ee:ff",
                "ipRanges": [[{"subnet": "10.88.0.0/16"}], [{"subnet": "fd00::/64"}]]
            })
        );
    }

    #[test]
    fn ip_ranges_are_left_out_without_a_pod_cidr() {
        let h = harness(false);
        let net = network(json!({
            "cniVersion": "1.0.0", "name": "pods",
            "plugins": [{"type": "bridge", "capabilities": {"ipRanges": true}}]
        }));
        h.runner
            .add(&net, &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        assert!(h.exec.calls()[1].stdin.get("runtimeConfig").is_none());
    }

    #[test]
    fn dual_stack_reports_the_ipv6_address_as_additional() {
        let h = harness(true);
        let ips = h
            .runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        assert_eq!(ips.primary, Some("10.88.0.7".parse().unwrap()));
        assert_eq!(ips.additional, ["fd00::7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn failed_add_deletes_every_plugin_in_reverse_then_loopback() {
        let h = harness(false);
        h.exec.fail(CniCommand::Add, "portmap", "iptables is gone");
        let err = h
            .runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap_err();
        assert_eq!(
            h.exec.sequence(),
            [
                "ADD loopback",
                "ADD bridge",
                "ADD portmap",
                "DEL bandwidth",
                "DEL portmap",
                "DEL bridge",
                "DEL loopback"
            ]
        );
        assert!(matches!(err, CniError::Add { cleanup: None, .. }), "{err}");
        assert!(matches!(
            err.root_cause(),
            CniError::Plugin { code: 100, msg, .. } if msg == "iptables is gone"
        ));
        assert!(
            err.to_string()
                .starts_with("adding pod to CNI network pods: CNI plugin portmap ADD failed"),
            "{err}"
        );
        assert!(!h
            .cache_dir
            .join("results")
            .join(format!("pods-{SANDBOX}-eth0"))
            .exists());
    }

    #[test]
    fn failed_add_reports_a_failed_rollback_too() {
        let h = harness(false);
        h.exec.fail(CniCommand::Add, "bandwidth", "no tc");
        h.exec.fail(CniCommand::Del, "bridge", "bridge busy");
        let err = h
            .runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("no tc")
                && text.contains("cleanup also failed")
                && text.contains("bridge busy"),
            "{text}"
        );
        assert_eq!(h.exec.sequence().last().unwrap(), "DEL loopback");
    }

    /// The DELs `h` saw of the pod network's plugins.
    fn pod_network_dels(h: &Harness) -> Vec<Recorded> {
        h.exec
            .calls()
            .into_iter()
            .filter(|c| c.command == CniCommand::Del && c.plugin != "loopback")
            .collect()
    }

    #[test]
    fn a_failed_adds_rollback_passes_the_result_so_far_to_del() {
        let h = harness(false);
        h.exec.fail(CniCommand::Add, "bandwidth", "no tc");
        h.runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap_err();
        let dels = pod_network_dels(&h);
        assert_eq!(dels.len(), 3);
        for del in &dels {
            assert_eq!(del.stdin["prevResult"], bridge_result(), "{}", del.plugin);
        }
        assert!(!h
            .cache_dir
            .join("results")
            .join(format!("pods-{SANDBOX}-eth0"))
            .exists());
    }

    #[test]
    fn a_failed_rollback_keeps_the_result_so_far_for_the_del_retried_later() {
        let h = harness(false);
        let p = pod(Some(NETNS));
        h.exec.fail(CniCommand::Add, "bandwidth", "no tc");
        h.exec.fail(CniCommand::Del, "bridge", "bridge busy");
        h.runner
            .add(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap_err();
        let rollback = pod_network_dels(&h).len();

        h.exec.failures.lock().unwrap().clear();
        h.runner
            .del(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap();
        let retried = &pod_network_dels(&h)[rollback..];
        assert_eq!(retried.len(), 3);
        for del in retried {
            assert_eq!(del.stdin["prevResult"], bridge_result(), "{}", del.plugin);
        }
    }

    #[test]
    fn add_result_is_cached_and_del_passes_it_as_prev_result() {
        let h = harness(false);
        let p = pod(Some(NETNS));
        h.runner
            .add(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap();
        let cache_file = h
            .cache_dir
            .join("results")
            .join(format!("pods-{SANDBOX}-eth0"));
        let cached: Value = serde_json::from_slice(&fs::read(&cache_file).unwrap()).unwrap();
        assert_eq!(cached["kind"], "cniCacheV1");
        assert_eq!(cached["containerId"], SANDBOX);
        assert_eq!(cached["networkName"], "pods");
        assert_eq!(cached["result"], bridge_result());

        h.runner
            .del(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap();
        let dels: Vec<Recorded> = h
            .exec
            .calls()
            .into_iter()
            .filter(|c| c.command == CniCommand::Del)
            .collect();
        let order: Vec<&str> = dels.iter().map(|c| c.plugin.as_str()).collect();
        assert_eq!(order, ["bandwidth", "portmap", "bridge", "loopback"]);
        for del in &dels[..3] {
            assert_eq!(del.stdin["prevResult"], bridge_result(), "{}", del.plugin);
            assert_eq!(del.env["CNI_COMMAND"], "DEL");
        }
        assert!(dels[3].stdin.get("prevResult").is_none());
        assert!(!cache_file.exists());
    }

    #[test]
    fn del_before_0_4_0_sends_no_prev_result() {
        let h = harness(false);
        let mut config = pods_network().config;
        config["cniVersion"] = json!("0.3.1");
        let net = network(config);
        let p = pod(Some(NETNS));
        h.exec
            .result_for("bridge", json!({"cniVersion": "0.3.1", "ips": []}));
        h.runner.add(&net, &p, &RuntimeArgs::default()).unwrap();
        h.runner.del(&net, &p, &RuntimeArgs::default()).unwrap();
        assert!(h
            .exec
            .calls()
            .iter()
            .filter(|c| c.command == CniCommand::Del)
            .all(|c| c.stdin.get("prevResult").is_none()));
    }

    #[test]
    fn del_calls_every_plugin_and_aggregates_failures() {
        let h = harness(false);
        h.exec.fail(CniCommand::Del, "bandwidth", "tc says no");
        h.exec.fail(CniCommand::Del, "bridge", "link busy");
        let dir = tempfile::tempdir().unwrap();
        let netns = dir.path().join("ns");
        fs::write(&netns, "").unwrap();
        let err = h
            .runner
            .del(
                &pods_network(),
                &pod(Some(netns.to_str().unwrap())),
                &RuntimeArgs::default(),
            )
            .unwrap_err();
        assert_eq!(
            h.exec.sequence(),
            ["DEL bandwidth", "DEL portmap", "DEL bridge", "DEL loopback"]
        );
        let CniError::Del { failures } = &err else {
            panic!("{err}");
        };
        assert_eq!(failures.len(), 2);
        let text = err.to_string();
        assert!(
            text.contains("tc says no") && text.contains("link busy"),
            "{text}"
        );
    }

    #[test]
    fn del_keeps_the_cache_when_it_fails_so_a_retry_has_the_prev_result() {
        let h = harness(false);
        let p = pod(Some(NETNS));
        h.runner
            .add(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap();
        h.exec.fail(CniCommand::Del, "portmap", "try again");
        assert!(h
            .runner
            .del(&pods_network(), &p, &RuntimeArgs::default())
            .is_err());
        assert!(h
            .cache_dir
            .join("results")
            .join(format!("pods-{SANDBOX}-eth0"))
            .exists());
    }

    #[test]
    fn no_such_file_is_success_when_the_namespace_is_gone() {
        let h = harness(false);
        h.exec.fail(
            CniCommand::Del,
            "bridge",
            "failed to Statfs \"/proc/999999/ns/net\": no such file or directory",
        );
        h.runner
            .del(
                &pods_network(),
                &pod(Some("/proc/999999/ns/net")),
                &RuntimeArgs::default(),
            )
            .unwrap();
    }

    #[test]
    fn no_such_file_is_a_failure_while_the_namespace_exists() {
        let h = harness(false);
        h.exec.fail(
            CniCommand::Del,
            "bridge",
            "open /run/x: no such file or directory",
        );
        let err = h
            .runner
            .del(
                &pods_network(),
                &pod(Some("/proc/self/ns/net")),
                &RuntimeArgs::default(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("/run/x"), "{err}");
    }

    #[test]
    fn del_without_a_namespace_passes_an_empty_netns() {
        let h = harness(false);
        h.runner
            .del(&pods_network(), &pod(None), &RuntimeArgs::default())
            .unwrap();
        assert!(h.exec.calls().iter().all(|c| c.env["CNI_NETNS"].is_empty()));
    }

    #[test]
    fn add_without_a_namespace_is_refused() {
        let h = harness(false);
        let err = h
            .runner
            .add(&pods_network(), &pod(None), &RuntimeArgs::default())
            .unwrap_err();
        assert!(matches!(err, CniError::InvalidArgument(_)), "{err}");
        assert!(h.exec.calls().is_empty());
    }

    #[test]
    fn ids_and_names_that_would_break_args_or_paths_are_refused() {
        let h = harness(false);
        let mut p = pod(Some(NETNS));
        p.sandbox_id = "../../etc".to_owned();
        assert!(h
            .runner
            .add(&pods_network(), &p, &RuntimeArgs::default())
            .is_err());
        let mut p = pod(Some(NETNS));
        p.name = "web;K8S_POD_NAMESPACE=kube-system".to_owned();
        assert!(h
            .runner
            .add(&pods_network(), &p, &RuntimeArgs::default())
            .is_err());
        let mut config = pods_network().config;
        config["name"] = json!("a/b");
        let p = pod(Some(NETNS));
        assert!(h
            .runner
            .del(&network(config), &p, &RuntimeArgs::default())
            .is_err());
        assert!(h.exec.calls().is_empty());
    }

    #[test]
    fn check_runs_in_order_with_the_cached_result() {
        let h = harness(false);
        let p = pod(Some(NETNS));
        h.runner
            .add(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap();
        h.runner
            .check(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap();
        let checks: Vec<Recorded> = h
            .exec
            .calls()
            .into_iter()
            .filter(|c| c.command == CniCommand::Check)
            .collect();
        let order: Vec<&str> = checks.iter().map(|c| c.plugin.as_str()).collect();
        assert_eq!(order, ["bridge", "portmap", "bandwidth"]);
        assert!(checks
            .iter()
            .all(|c| c.stdin["prevResult"] == bridge_result()));
    }

    #[test]
    fn check_without_an_add_result_fails_and_disabled_check_passes() {
        let h = harness(false);
        let p = pod(Some(NETNS));
        let err = h
            .runner
            .check(&pods_network(), &p, &RuntimeArgs::default())
            .unwrap_err();
        assert!(
            matches!(err.root_cause(), CniError::NoCachedResult { .. }),
            "{err}"
        );
        let mut config = pods_network().config;
        config["disableCheck"] = json!(true);
        h.runner
            .check(&network(config), &p, &RuntimeArgs::default())
            .unwrap();
        assert!(h.exec.calls().is_empty());
    }

    #[test]
    fn single_plugin_conf_is_run_as_a_list_of_one() {
        let h = harness(false);
        let net = network(json!({
            "cniVersion": "1.0.0", "name": "single", "type": "bridge", "bridge": "cni0"
        }));
        let ips = h
            .runner
            .add(&net, &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        assert_eq!(h.exec.sequence(), ["ADD loopback", "ADD bridge"]);
        assert_eq!(h.exec.calls()[1].stdin["bridge"], "cni0");
        assert!(ips.primary.is_some());
    }

    #[test]
    fn result_with_a_bad_address_fails_the_add_and_rolls_back() {
        let h = harness(false);
        h.exec.result_for(
            "bridge",
            json!({"cniVersion": "1.0.0", "ips": [{"address": "not-an-ip/24"}]}),
        );
        let err = h
            .runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap_err();
        assert!(
            matches!(err.root_cause(), CniError::BadResult { .. }),
            "{err}"
        );
        assert_eq!(h.exec.sequence().last().unwrap(), "DEL loopback");
    }

    /// A result cache entry as the CNI library writes it, `config` and all.
    fn libcni_entry(network: &str, container_id: &str, if_name: &str) -> Value {
        json!({
            "kind": "cniCacheV1",
            "containerId": container_id,
            "config": "eyJjbmlWZXJzaW9uIjoiMS4wLjAifQ==",
            "ifName": if_name,
            "networkName": network,
            "netns": "/proc/42/ns/net",
            "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]],
            "capabilityArgs": {"portMappings": []},
            "result": bridge_result(),
        })
    }

    fn write_cache_entry(h: &Harness, file_name: &str, entry: &Value) {
        let dir = h.cache_dir.join("results");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file_name), entry.to_string()).unwrap();
    }

    #[test]
    fn an_attachment_the_cni_library_cached_names_its_network_and_the_pod_ips() {
        let h = harness(true);
        assert_eq!(h.runner.cached_attachment(SANDBOX), None);
        write_cache_entry(
            &h,
            &format!("cni-loopback-{SANDBOX}-lo"),
            &libcni_entry("cni-loopback", SANDBOX, "lo"),
        );
        write_cache_entry(
            &h,
            &format!("old-pods-{SANDBOX}-eth0"),
            &libcni_entry("old-pods", SANDBOX, "eth0"),
        );
        let found = h.runner.cached_attachment(SANDBOX).unwrap();
        assert_eq!(found.network, "old-pods");
        assert_eq!(found.ips.primary, Some("10.88.0.7".parse().unwrap()));
        assert_eq!(found.ips.additional, ["fd00::7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn cache_entries_of_another_container_kind_or_file_name_are_no_attachment() {
        let h = harness(false);
        let mut other_kind = libcni_entry("pods", SANDBOX, "eth0");
        other_kind["kind"] = json!("cniCacheV2");
        write_cache_entry(&h, &format!("pods-{SANDBOX}-eth0"), &other_kind);
        write_cache_entry(
            &h,
            &format!("renamed-{SANDBOX}-eth0"),
            &libcni_entry("pods", SANDBOX, "eth0"),
        );
        write_cache_entry(
            &h,
            &format!("pods-{SANDBOX}-eth0.bak"),
            &libcni_entry("pods", SANDBOX, "eth0"),
        );
        write_cache_entry(
            &h,
            "pods-0ther-eth0",
            &libcni_entry("pods", "0ther", "eth0"),
        );
        assert_eq!(h.runner.cached_attachment(SANDBOX), None);
        assert_eq!(h.runner.cached_attachment("../results"), None);
    }

    #[test]
    fn a_result_dockshim_cached_is_an_attachment_too() {
        let h = harness(false);
        h.runner
            .add(&pods_network(), &pod(Some(NETNS)), &RuntimeArgs::default())
            .unwrap();
        let found = h.runner.cached_attachment(SANDBOX).unwrap();
        assert_eq!(found.network, "pods");
        assert_eq!(found.ips.primary, Some("10.88.0.7".parse().unwrap()));
    }
}
