//! The RuntimeService: the runtime-wide calls Version, Status, RuntimeConfig
//! and UpdateRuntimeConfig here, the pod sandbox calls delegated to
//! `sandbox::SandboxService`, the container calls delegated to
//! `container::ContainerService`, the stats calls delegated to
//! `stats::StatsService` (the metrics calls convert its figures with
//! `metrics`), and Exec, Attach and PortForward checked by
//! `streaming` and answered with a URL on the `StreamingServer`.
//!
//! Status vouches for dockerd from what dockshim already holds while that
//! is fresh, and asks it otherwise: RuntimeReady is true without a Docker
//! call while the state index follows dockerd's event stream and dockerd
//! answered within `STATUS_FRESHNESS` (an event, a call of the index's, or
//! Status's own last ping); else Status pings dockerd with a short timeout.
//! A dockerd that exits closes the stream, so the next Status pings and
//! reports it; one that hangs keeps the stream open but answers nothing
//! more, so RuntimeReady turns false at most `STATUS_FRESHNESS` plus
//! `STATUS_PING_TIMEOUT` after its last answer. Status re-reads the CNI
//! configuration directory on every call, which is cheap and may change at
//! any time. RuntimeReady is also false once a supervised background thread
//! has died (`crate::supervisor`), with a message naming it, until a
//! restart. Its runtime handlers are the default one (`""`) and one per
//! runtime dockerd listed in `/info` when first asked
//! (`DockerClient::engine`), each with the features the engine and that
//! runtime give together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::api::services::{RuntimeService, Sink};
use crate::api::v1;
use crate::codec::json::object;
use crate::cri::container::ContainerService;
use crate::cri::events::EventStreams;
use crate::cri::metrics;
use crate::cri::sandbox::SandboxService;
use crate::cri::stats::StatsService;
use crate::cri::streaming::{
    validate_attach, validate_exec, validate_port_forward, StreamRequestError,
};
use crate::docker::{DockerApi, Engine};
use crate::grpc::{Answer, CallContext, Status};
use crate::network::default_network::validate_pod_cidrs;
use crate::network::NetworkPlugin;
use crate::store::Store;
use crate::streaming::server::StreamingServer;
use crate::supervisor::{Death, Supervisor};

/// Sandboxes, containers, stats or metrics per message of the Stream* calls.
const STREAM_BATCH: usize = 100;

/// The CRI API version string runtimes report in `VersionResponse.version`.
const KUBELET_API_VERSION: &str = "0.1.0";
/// What the kubelet expects in `runtime_name` for a Docker runtime.
const RUNTIME_NAME: &str = "docker";
/// The CRI API this server speaks.
const RUNTIME_API_VERSION: &str = "v1";
/// How long Status waits for dockerd before calling it not ready; short so
/// the answer reflects the daemon's state within the kubelet's 2 s budget.
const STATUS_PING_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long an answer from dockerd vouches for it while the event stream
/// is up: the kubelet's Status period, so the kubelet hears of a hung
/// dockerd at most one Status late, and callers that ask more often cost
/// dockerd one ping per period at most.
const STATUS_FRESHNESS: Duration = Duration::from_secs(5);
/// dockerd's version changes only across a daemon restart; Version is
/// answered from a copy at most this old.
const VERSION_CACHE_TTL: Duration = Duration::from_secs(30);

const RUNTIME_READY: &str = "RuntimeReady";
const NETWORK_READY: &str = "NetworkReady";
/// RuntimeReady's reason when dockerd answers but a background thread died.
const THREAD_DIED: &str = "BackgroundThreadDied";

/// The node-wide settings the runtime-wide calls read besides the
/// sandbox calls' own, which Status reports from `SandboxService`.
#[derive(Debug)]
pub struct RuntimeSettings {
    /// `--docker-endpoint`.
    pub docker_endpoint: String,
    /// `--cni-conf-dir`.
    pub cni_conf_dir: PathBuf,
    /// `--runtime-request-timeout`.
    pub runtime_request_timeout: Duration,
}

/// The state the runtime-wide calls share.
#[derive(Debug)]
pub struct Runtime {
    docker: Arc<dyn DockerApi>,
    settings: RuntimeSettings,
    store: Store,
    /// The pod CIDR from `--pod-cidr` or the last UpdateRuntimeConfig.
    pod_cidr: Mutex<Option<String>>,
    docker_version: Mutex<Option<(Instant, String)>>,
    sandboxes: SandboxService,
    containers: ContainerService,
    stats: StatsService,
    events: EventStreams,
    streaming: StreamingServer,
    supervisor: Supervisor,
}

/// The services a [`Runtime`] delegates to, built by its caller.
#[derive(Debug)]
pub struct RuntimeParts {
    pub sandboxes: SandboxService,
    pub containers: ContainerService,
    pub stats: StatsService,
    pub streaming: StreamingServer,
    /// Whose thread deaths Status reports: the process's own in `main`.
    pub supervisor: Supervisor,
}

impl Runtime {
    pub fn new(
        docker: Arc<dyn DockerApi>,
        settings: RuntimeSettings,
        store: Store,
        pod_cidr: Option<String>,
        parts: RuntimeParts,
    ) -> Runtime {
        Runtime {
            docker,
            settings,
            store,
            pod_cidr: Mutex::new(pod_cidr),
            docker_version: Mutex::new(None),
            sandboxes: parts.sandboxes,
            containers: parts.containers,
            stats: parts.stats,
            events: EventStreams::default(),
            streaming: parts.streaming,
            supervisor: parts.supervisor,
        }
    }

    /// The pod CIDR the network plugin should allocate from, if known.
    pub fn pod_cidr(&self) -> Option<String> {
        lock(&self.pod_cidr).clone()
    }

    fn docker_version(&self) -> Result<String, Status> {
        if let Some((at, version)) = lock(&self.docker_version).as_ref() {
            if at.elapsed() < VERSION_CACHE_TTL {
                return Ok(version.clone());
            }
        }
        self.docker.ensure_negotiated()?;
        let version = self.docker.version()?.version;
        *lock(&self.docker_version) = Some((Instant::now(), version.clone()));
        Ok(version)
    }

    /// RuntimeReady, pinging dockerd unless an answer younger than
    /// `freshness` vouches for it.
    fn runtime_condition(&self, freshness: Duration) -> (v1::RuntimeCondition, Value) {
        let index = self.containers.index();
        let result = if self.docker.api_version().is_some() && index.dockerd_alive_within(freshness)
        {
            Ok(())
        } else {
            self.docker
                .ping(STATUS_PING_TIMEOUT)
                .and_then(|()| self.docker.ensure_negotiated())
                .inspect(|()| index.heard_from_dockerd())
        };
        let endpoint = Value::from(self.settings.docker_endpoint.as_str());
        let (docker, info) = match result {
            Ok(()) => {
                let api_version = self.docker.api_version().map(|v| v.to_string());
                let info = object(vec![
                    ("ready", Value::from(true)),
                    ("endpoint", endpoint),
                    ("apiVersion", Value::from(api_version)),
                ]);
                (condition(RUNTIME_READY, true, "", ""), info)
            }
            Err(err) => {
                let message = format!("docker daemon is not answering: {err}");
                let info = object(vec![
                    ("ready", Value::from(false)),
                    ("endpoint", endpoint),
                    ("error", Value::from(message.as_str())),
                ]);
                (
                    condition(RUNTIME_READY, false, "DockerDaemonNotReady", &message),
                    info,
                )
            }
        };
        (with_dead_threads(docker, &self.supervisor.deaths()), info)
    }

    fn network_condition(&self) -> (v1::RuntimeCondition, Value) {
        let sandbox = &self.sandboxes.settings;
        if sandbox.network_plugin == NetworkPlugin::None {
            let info = object(vec![
                ("plugin", Value::from("none")),
                ("note", Value::from("only host-network pods are supported")),
            ]);
            return (condition(NETWORK_READY, true, "", ""), info);
        }
        let not_ready = |message: String| {
            let info = object(vec![
                ("plugin", Value::from("cni")),
                ("error", Value::from(message.as_str())),
            ]);
            (
                condition(NETWORK_READY, false, "NetworkPluginNotReady", &message),
                info,
            )
        };
        let pod_cidr = self.pod_cidr();
        match sandbox.networks.current(pod_cidr.as_deref()) {
            Err(err) => not_ready(format!("network plugin is not ready: {err}")),
            Ok(network) if network.needs_pod_cidr() && pod_cidr.is_none() => not_ready(format!(
                "network plugin is not ready: {} asks for ipRanges but no pod CIDR is known yet",
                network.origin
            )),
            Ok(network) => {
                let plugins = network
                    .plugins
                    .iter()
                    .map(|p| Value::from(p.plugin_type.as_str()))
                    .collect();
                let info = object(vec![
                    ("plugin", Value::from("cni")),
                    ("source", Value::from(network.origin.to_string())),
                    ("file", Value::from(network.origin.file().map(path_text))),
                    ("name", Value::from(network.name.as_str())),
                    ("cniVersion", Value::from(network.cni_version.as_str())),
                    ("plugins", Value::Array(plugins)),
                ]);
                (condition(NETWORK_READY, true, "", ""), info)
            }
        }
    }

    fn verbose_info(&self, docker: Value, cni: Value) -> HashMap<String, String> {
        let sandbox = &self.sandboxes.settings;
        let bin_dirs = sandbox
            .cni
            .bin_dirs
            .iter()
            .map(|dir| path_text(dir))
            .collect();
        let timeout = self.settings.runtime_request_timeout.as_secs_f64();
        let config = object(vec![
            ("sandboxImage", Value::from(sandbox.image.as_str())),
            (
                "networkPlugin",
                Value::from(sandbox.network_plugin.as_str()),
            ),
            ("cniConfDir", path_text(&self.settings.cni_conf_dir)),
            ("cniBinDirs", Value::Array(bin_dirs)),
            ("rootDirectory", path_text(&sandbox.root_directory)),
            ("runtimeRequestTimeoutSeconds", Value::from(timeout)),
        ]);
        HashMap::from([
            ("config".to_owned(), config.to_string()),
            ("docker".to_owned(), docker.to_string()),
            ("cniConfig".to_owned(), cni.to_string()),
            (
                "podCIDR".to_owned(),
                Value::from(self.pod_cidr()).to_string(),
            ),
        ])
    }
}

impl RuntimeService for Runtime {
    fn version(
        &self,
        _ctx: &CallContext,
        _request: v1::VersionRequest,
    ) -> Result<v1::VersionResponse, Status> {
        Ok(v1::VersionResponse {
            version: KUBELET_API_VERSION.to_owned(),
            runtime_name: RUNTIME_NAME.to_owned(),
            runtime_version: self.docker_version()?,
            runtime_api_version: RUNTIME_API_VERSION.to_owned(),
        })
    }

    fn status(
        &self,
        _ctx: &CallContext,
        request: v1::StatusRequest,
    ) -> Result<v1::StatusResponse, Status> {
        let (runtime, docker_info) = self.runtime_condition(STATUS_FRESHNESS);
        let (network, cni_info) = self.network_condition();
        // Asked only of a daemon that just answered: without one, reading
        // the engine's facts would wait out the Docker call timeout.
        let engine = if runtime.status {
            self.docker
                .engine()
                .map_err(|err| log::warn!("Status: cannot read dockerd's runtimes: {err}"))
                .ok()
        } else {
            None
        };
        let engine = engine.as_deref();
        let info = if request.verbose {
            let mut info = self.verbose_info(docker_info, cni_info);
            info.insert("runtimes".to_owned(), runtimes_info(engine).to_string());
            info
        } else {
            HashMap::new()
        };
        Ok(v1::StatusResponse {
            status: Some(v1::RuntimeStatus {
                conditions: vec![runtime, network],
            }),
            info,
            runtime_handlers: runtime_handlers(engine),
            // Docker has no supplemental groups policy and no per-pod user
            // namespaces, so none with host networking either.
            features: Some(v1::RuntimeFeatures::default()),
        })
    }

    fn run_pod_sandbox(
        &self,
        ctx: &CallContext,
        request: v1::RunPodSandboxRequest,
    ) -> Result<v1::RunPodSandboxResponse, Status> {
        let pod_cidr = self.pod_cidr();
        let pod_sandbox_id = self
            .sandboxes
            .run_pod_sandbox(ctx, &request, pod_cidr.as_deref())?;
        Ok(v1::RunPodSandboxResponse { pod_sandbox_id })
    }

    fn stop_pod_sandbox(
        &self,
        _ctx: &CallContext,
        request: v1::StopPodSandboxRequest,
    ) -> Result<v1::StopPodSandboxResponse, Status> {
        self.sandboxes.stop_pod_sandbox(&request.pod_sandbox_id)?;
        Ok(v1::StopPodSandboxResponse {})
    }

    fn remove_pod_sandbox(
        &self,
        _ctx: &CallContext,
        request: v1::RemovePodSandboxRequest,
    ) -> Result<v1::RemovePodSandboxResponse, Status> {
        self.sandboxes.remove_pod_sandbox(&request.pod_sandbox_id)?;
        Ok(v1::RemovePodSandboxResponse {})
    }

    fn pod_sandbox_status(
        &self,
        _ctx: &CallContext,
        request: v1::PodSandboxStatusRequest,
    ) -> Result<v1::PodSandboxStatusResponse, Status> {
        Ok(self
            .sandboxes
            .pod_sandbox_status(&request.pod_sandbox_id, request.verbose)?)
    }

    fn list_pod_sandbox(
        &self,
        _ctx: &CallContext,
        request: v1::ListPodSandboxRequest,
    ) -> Result<Answer<v1::ListPodSandboxResponse>, Status> {
        let answer = self
            .sandboxes
            .list_pod_sandbox_answer(request.filter.as_ref())?;
        Ok(Answer::Encoded(answer))
    }

    fn list_pod_sandbox_at_hand(&self, request: &v1::ListPodSandboxRequest) -> Option<Bytes> {
        self.sandboxes
            .list_pod_sandbox_at_hand(request.filter.as_ref())
    }

    fn stream_pod_sandboxes(
        &self,
        _ctx: &CallContext,
        request: v1::StreamPodSandboxesRequest,
        sink: &mut Sink<'_, v1::StreamPodSandboxesResponse>,
    ) -> Result<(), Status> {
        let mut sandboxes = self.sandboxes.list_pod_sandbox(request.filter.as_ref())?;
        while !sandboxes.is_empty() {
            let rest = sandboxes.split_off(sandboxes.len().min(STREAM_BATCH));
            sink.send(&v1::StreamPodSandboxesResponse {
                pod_sandboxes: sandboxes,
            })?;
            sandboxes = rest;
        }
        Ok(())
    }

    fn update_pod_sandbox_resources(
        &self,
        _ctx: &CallContext,
        request: v1::UpdatePodSandboxResourcesRequest,
    ) -> Result<v1::UpdatePodSandboxResourcesResponse, Status> {
        // The kubelet has resized the pod cgroup itself before this call;
        // the sandbox container sets no limits of its own, so a Docker
        // runtime has nothing to apply. An unknown sandbox is still refused.
        self.sandboxes
            .pod_sandbox_status(&request.pod_sandbox_id, false)?;
        Ok(v1::UpdatePodSandboxResourcesResponse {})
    }

    fn create_container(
        &self,
        _ctx: &CallContext,
        request: v1::CreateContainerRequest,
    ) -> Result<v1::CreateContainerResponse, Status> {
        let container_id = self.containers.create_container(&request)?;
        Ok(v1::CreateContainerResponse { container_id })
    }

    fn start_container(
        &self,
        _ctx: &CallContext,
        request: v1::StartContainerRequest,
    ) -> Result<v1::StartContainerResponse, Status> {
        self.containers.start_container(&request.container_id)?;
        Ok(v1::StartContainerResponse {})
    }

    fn stop_container(
        &self,
        _ctx: &CallContext,
        request: v1::StopContainerRequest,
    ) -> Result<v1::StopContainerResponse, Status> {
        self.containers
            .stop_container(&request.container_id, request.timeout)?;
        Ok(v1::StopContainerResponse {})
    }

    fn remove_container(
        &self,
        _ctx: &CallContext,
        request: v1::RemoveContainerRequest,
    ) -> Result<v1::RemoveContainerResponse, Status> {
        self.containers.remove_container(&request.container_id)?;
        Ok(v1::RemoveContainerResponse {})
    }

    fn list_containers(
        &self,
        _ctx: &CallContext,
        request: v1::ListContainersRequest,
    ) -> Result<Answer<v1::ListContainersResponse>, Status> {
        let answer = self
            .containers
            .list_containers_answer(request.filter.as_ref())?;
        Ok(Answer::Encoded(answer))
    }

    fn list_containers_at_hand(&self, request: &v1::ListContainersRequest) -> Option<Bytes> {
        self.containers
            .list_containers_at_hand(request.filter.as_ref())
    }

    fn stream_containers(
        &self,
        _ctx: &CallContext,
        request: v1::StreamContainersRequest,
        sink: &mut Sink<'_, v1::StreamContainersResponse>,
    ) -> Result<(), Status> {
        let mut containers = self.containers.list_containers(request.filter.as_ref())?;
        while !containers.is_empty() {
            let rest = containers.split_off(containers.len().min(STREAM_BATCH));
            sink.send(&v1::StreamContainersResponse { containers })?;
            containers = rest;
        }
        Ok(())
    }

    fn container_status(
        &self,
        _ctx: &CallContext,
        request: v1::ContainerStatusRequest,
    ) -> Result<v1::ContainerStatusResponse, Status> {
        Ok(self
            .containers
            .container_status(&request.container_id, request.verbose)?)
    }

    fn update_container_resources(
        &self,
        _ctx: &CallContext,
        request: v1::UpdateContainerResourcesRequest,
    ) -> Result<v1::UpdateContainerResourcesResponse, Status> {
        self.containers.update_container_resources(&request)?;
        Ok(v1::UpdateContainerResourcesResponse {})
    }

    fn reopen_container_log(
        &self,
        _ctx: &CallContext,
        request: v1::ReopenContainerLogRequest,
    ) -> Result<v1::ReopenContainerLogResponse, Status> {
        self.containers
            .reopen_container_log(&request.container_id)?;
        Ok(v1::ReopenContainerLogResponse {})
    }

    fn exec_sync(
        &self,
        ctx: &CallContext,
        request: v1::ExecSyncRequest,
    ) -> Result<v1::ExecSyncResponse, Status> {
        let output =
            self.containers
                .exec_sync(ctx, &request.container_id, &request.cmd, request.timeout)?;
        Ok(v1::ExecSyncResponse {
            stdout: output.stdout,
            stderr: output.stderr,
            exit_code: output.exit_code,
        })
    }

    fn exec(
        &self,
        _ctx: &CallContext,
        request: v1::ExecRequest,
    ) -> Result<v1::ExecResponse, Status> {
        let request = validate_exec(self.containers.index(), request)?;
        Ok(v1::ExecResponse {
            url: self
                .streaming
                .url(request)
                .map_err(StreamRequestError::from)?,
        })
    }

    fn attach(
        &self,
        _ctx: &CallContext,
        request: v1::AttachRequest,
    ) -> Result<v1::AttachResponse, Status> {
        let request = validate_attach(self.containers.index(), request)?;
        Ok(v1::AttachResponse {
            url: self
                .streaming
                .url(request)
                .map_err(StreamRequestError::from)?,
        })
    }

    fn port_forward(
        &self,
        _ctx: &CallContext,
        request: v1::PortForwardRequest,
    ) -> Result<v1::PortForwardResponse, Status> {
        let request = validate_port_forward(self.containers.index(), request)?;
        Ok(v1::PortForwardResponse {
            url: self
                .streaming
                .url(request)
                .map_err(StreamRequestError::from)?,
        })
    }

    fn container_stats(
        &self,
        _ctx: &CallContext,
        request: v1::ContainerStatsRequest,
    ) -> Result<v1::ContainerStatsResponse, Status> {
        let stats = self.stats.container_stats(&request.container_id)?;
        Ok(v1::ContainerStatsResponse { stats: Some(stats) })
    }

    fn list_container_stats(
        &self,
        _ctx: &CallContext,
        request: v1::ListContainerStatsRequest,
    ) -> Result<v1::ListContainerStatsResponse, Status> {
        let stats = self.stats.list_container_stats(request.filter.as_ref())?;
        Ok(v1::ListContainerStatsResponse { stats })
    }

    fn stream_container_stats(
        &self,
        _ctx: &CallContext,
        request: v1::StreamContainerStatsRequest,
        sink: &mut Sink<'_, v1::StreamContainerStatsResponse>,
    ) -> Result<(), Status> {
        let mut stats = self.stats.list_container_stats(request.filter.as_ref())?;
        while !stats.is_empty() {
            let rest = stats.split_off(stats.len().min(STREAM_BATCH));
            sink.send(&v1::StreamContainerStatsResponse {
                container_stats: stats,
            })?;
            stats = rest;
        }
        Ok(())
    }

    fn pod_sandbox_stats(
        &self,
        _ctx: &CallContext,
        request: v1::PodSandboxStatsRequest,
    ) -> Result<v1::PodSandboxStatsResponse, Status> {
        let stats = self.stats.pod_sandbox_stats(&request.pod_sandbox_id)?;
        Ok(v1::PodSandboxStatsResponse { stats: Some(stats) })
    }

    fn list_pod_sandbox_stats(
        &self,
        _ctx: &CallContext,
        request: v1::ListPodSandboxStatsRequest,
    ) -> Result<v1::ListPodSandboxStatsResponse, Status> {
        let stats = self.stats.list_pod_sandbox_stats(request.filter.as_ref())?;
        Ok(v1::ListPodSandboxStatsResponse { stats })
    }

    fn stream_pod_sandbox_stats(
        &self,
        _ctx: &CallContext,
        request: v1::StreamPodSandboxStatsRequest,
        sink: &mut Sink<'_, v1::StreamPodSandboxStatsResponse>,
    ) -> Result<(), Status> {
        let mut stats = self.stats.list_pod_sandbox_stats(request.filter.as_ref())?;
        while !stats.is_empty() {
            let rest = stats.split_off(stats.len().min(STREAM_BATCH));
            sink.send(&v1::StreamPodSandboxStatsResponse {
                pod_sandbox_stats: stats,
            })?;
            stats = rest;
        }
        Ok(())
    }

    fn list_metric_descriptors(
        &self,
        _ctx: &CallContext,
        _request: v1::ListMetricDescriptorsRequest,
    ) -> Result<v1::ListMetricDescriptorsResponse, Status> {
        Ok(v1::ListMetricDescriptorsResponse {
            descriptors: metrics::descriptors(),
        })
    }

    fn list_pod_sandbox_metrics(
        &self,
        _ctx: &CallContext,
        _request: v1::ListPodSandboxMetricsRequest,
    ) -> Result<v1::ListPodSandboxMetricsResponse, Status> {
        let stats = self.stats.list_pod_sandbox_stats(None)?;
        Ok(v1::ListPodSandboxMetricsResponse {
            pod_metrics: stats.iter().map(metrics::pod_sandbox_metrics).collect(),
        })
    }

    fn stream_pod_sandbox_metrics(
        &self,
        _ctx: &CallContext,
        _request: v1::StreamPodSandboxMetricsRequest,
        sink: &mut Sink<'_, v1::StreamPodSandboxMetricsResponse>,
    ) -> Result<(), Status> {
        let stats = self.stats.list_pod_sandbox_stats(None)?;
        for batch in stats.chunks(STREAM_BATCH) {
            sink.send(&v1::StreamPodSandboxMetricsResponse {
                pod_sandbox_metrics: batch.iter().map(metrics::pod_sandbox_metrics).collect(),
            })?;
        }
        Ok(())
    }

    fn checkpoint_container(
        &self,
        _ctx: &CallContext,
        _request: v1::CheckpointContainerRequest,
    ) -> Result<v1::CheckpointContainerResponse, Status> {
        Err(Status::unimplemented(
            "CheckpointContainer: dockerd offers checkpoints only as an experimental \
             feature, in its own format, not the archive the kubelet asks for",
        ))
    }

    fn get_container_events(
        &self,
        ctx: &CallContext,
        _request: v1::GetEventsRequest,
        sink: &mut Sink<'_, v1::ContainerEventResponse>,
    ) -> Result<(), Status> {
        self.events.serve(
            ctx,
            self.containers.index(),
            &self.sandboxes,
            &self.containers,
            sink,
        )
    }

    fn runtime_config(
        &self,
        _ctx: &CallContext,
        _request: v1::RuntimeConfigRequest,
    ) -> Result<v1::RuntimeConfigResponse, Status> {
        // Asked anew on every call: the kubelet asks once, at its start, and
        // must get the driver of the dockerd running now.
        self.docker.ensure_negotiated()?;
        let info = self.docker.info()?;
        let cgroup_driver = if info.is_systemd_cgroup_driver() {
            v1::CgroupDriver::Systemd
        } else {
            v1::CgroupDriver::Cgroupfs
        };
        Ok(v1::RuntimeConfigResponse {
            linux: Some(v1::LinuxRuntimeConfiguration {
                cgroup_driver: cgroup_driver as i32,
            }),
        })
    }

    fn update_runtime_config(
        &self,
        _ctx: &CallContext,
        request: v1::UpdateRuntimeConfigRequest,
    ) -> Result<v1::UpdateRuntimeConfigResponse, Status> {
        let cidr = request
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        // An empty CIDR means "nothing to change", as the kubelet uses it.
        if cidr.is_empty() {
            return Ok(v1::UpdateRuntimeConfigResponse {});
        }
        validate_pod_cidrs(&cidr)
            .map_err(|err| Status::invalid_argument(format!("pod CIDR {cidr:?}: {err}")))?;
        let mut current = lock(&self.pod_cidr);
        if current.as_deref() != Some(cidr.as_str()) {
            self.store.save_pod_cidr(&cidr)?;
            log::info!("pod CIDR is now {cidr}");
            *current = Some(cidr);
        }
        Ok(v1::UpdateRuntimeConfigResponse {})
    }
}

/// The runtime handlers Status lists: the default one, `""`, then one per
/// Docker runtime by name; only the default one, without features, while
/// the engine is unknown. Recursive read-only mounts need the engine, the
/// kernel and the runtime; user namespaces with idmapped mounts are never
/// there, since Docker has no per-pod user namespace.
fn runtime_handlers(engine: Option<&Engine>) -> Vec<v1::RuntimeHandler> {
    let handler = |name: &str| v1::RuntimeHandler {
        name: name.to_owned(),
        features: Some(v1::RuntimeHandlerFeatures {
            recursive_read_only_mounts: engine
                .is_some_and(|engine| engine.runtime_supports_recursive_read_only(name)),
            user_namespaces: false,
        }),
    };
    let mut handlers = vec![handler("")];
    if let Some(engine) = engine {
        handlers.extend(engine.runtimes.keys().map(|name| handler(name)));
    }
    handlers
}

/// Status's verbose `runtimes`: dockerd's default runtime and each
/// runtime's executable or shim; `null` while the engine is unknown.
fn runtimes_info(engine: Option<&Engine>) -> Value {
    match engine {
        Some(engine) => {
            let mut runtimes = serde_json::Map::new();
            for (name, runtime) in &engine.runtimes {
                runtimes.insert(name.clone(), Value::from(runtime.path.as_str()));
            }
            object(vec![
                ("default", Value::from(engine.default_runtime.as_str())),
                ("runtimes", Value::Object(runtimes)),
            ])
        }
        None => Value::Null,
    }
}

/// A path as Status's verbose JSON writes it.
fn path_text(path: &Path) -> Value {
    Value::from(path.to_string_lossy())
}

/// RuntimeReady as dockerd's answer left it, made false by any thread
/// that died: a dockerd problem keeps its reason and the deaths are added
/// to its message.
fn with_dead_threads(docker: v1::RuntimeCondition, deaths: &[Death]) -> v1::RuntimeCondition {
    if deaths.is_empty() {
        return docker;
    }
    let died: Vec<String> = deaths.iter().map(Death::to_string).collect();
    let died = format!("{}; restart dockshim to recover", died.join("; "));
    if docker.status {
        condition(RUNTIME_READY, false, THREAD_DIED, &died)
    } else {
        let message = format!("{}; {died}", docker.message);
        condition(RUNTIME_READY, false, &docker.reason, &message)
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> v1::RuntimeCondition {
    v1::RuntimeCondition {
        r#type: kind.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked:
/// every value guarded here is replaced whole, never left half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cri::testing;
    use crate::docker::fake::{refused, FakeDocker};

    /// Sessions that close every connection unanswered.
    struct NoSessions;

    impl crate::streaming::session::Sessions for NoSessions {
        fn serve(
            &self,
            _request: crate::streaming::session::StreamRequest,
            _handoff: crate::streaming::session::Handoff,
        ) {
        }
    }

    /// A runtime whose dockerd endpoint does not exist, with an empty CNI
    /// configuration directory.
    fn runtime(dir: &Path, network_plugin: NetworkPlugin) -> Runtime {
        supervised_runtime(dir, network_plugin, Supervisor::new())
    }

    /// As [`runtime`], reporting the thread deaths `supervisor` keeps.
    fn supervised_runtime(
        dir: &Path,
        network_plugin: NetworkPlugin,
        supervisor: Supervisor,
    ) -> Runtime {
        let settings = RuntimeSettings {
            docker_endpoint: format!("unix://{}/no-docker.sock", dir.display()),
            cni_conf_dir: dir.join("net.d"),
            runtime_request_timeout: Duration::from_secs(120),
        };
        let mut sandbox = testing::config(dir);
        sandbox.network_plugin = network_plugin;
        std::fs::create_dir_all(&settings.cni_conf_dir).unwrap();
        let docker =
            crate::docker::DockerClient::new(&settings.docker_endpoint, Duration::from_secs(1))
                .unwrap();
        let api: Arc<dyn DockerApi> = Arc::new(docker.clone());
        let store = Store::open(&sandbox.root_directory).unwrap();
        let index = crate::index::Index::start(docker.clone()).unwrap();
        let images = Arc::new(crate::cri::image::Images::new(
            Arc::clone(&api),
            testing::image_settings(),
        ));
        let sandboxes =
            SandboxService::new(Arc::clone(&api), index.clone(), images, sandbox).unwrap();
        let logs = crate::logs::LogManager::start(docker.clone());
        let containers = ContainerService::new(
            Arc::clone(&api),
            index.clone(),
            logs,
            Arc::new(crate::host::Node),
            settings.runtime_request_timeout,
        );
        let stats = StatsService::new(Arc::clone(&api), index);
        let streaming = StreamingServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Duration::ZERO,
            Arc::new(NoSessions),
        )
        .unwrap();
        let parts = RuntimeParts {
            sandboxes,
            containers,
            stats,
            streaming,
            supervisor,
        };
        Runtime::new(api, settings, store, None, parts)
    }

    /// A runtime over the fake `docker`, its index warm, without CNI.
    fn runtime_over(dir: &Path, docker: &Arc<FakeDocker>) -> Runtime {
        let config = testing::config(dir);
        let settings = RuntimeSettings {
            docker_endpoint: format!("unix://{}/no-docker.sock", dir.display()),
            cni_conf_dir: dir.join("net.d"),
            runtime_request_timeout: Duration::from_secs(120),
        };
        let index = testing::index(docker);
        let api: Arc<dyn DockerApi> = Arc::clone(docker) as Arc<dyn DockerApi>;
        let host = Arc::new(crate::host::RecordingHost::default());
        let parts = RuntimeParts {
            sandboxes: testing::sandboxes(docker, &config, Arc::clone(&index)),
            containers: testing::containers(docker, &config, Arc::clone(&index), host),
            stats: StatsService::new(Arc::clone(&api), index),
            streaming: StreamingServer::start(
                "127.0.0.1:0".parse().unwrap(),
                Duration::ZERO,
                Arc::new(NoSessions),
            )
            .unwrap(),
            supervisor: Supervisor::new(),
        };
        let store = Store::open(&config.root_directory).unwrap();
        Runtime::new(api, settings, store, None, parts)
    }

    fn ctx() -> CallContext {
        CallContext::new("/runtime.v1.RuntimeService/Status", None)
    }

    fn conditions(response: &v1::StatusResponse) -> Vec<(String, bool, String)> {
        let status = response.status.as_ref().unwrap();
        status
            .conditions
            .iter()
            .map(|c| (c.r#type.clone(), c.status, c.reason.clone()))
            .collect()
    }

    #[test]
    fn status_reports_a_missing_docker_and_missing_cni_config() {
        let dir = tempfile::tempdir().unwrap();
        let response = runtime(dir.path(), NetworkPlugin::Cni)
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        assert_eq!(
            conditions(&response),
            [
                (
                    RUNTIME_READY.to_owned(),
                    false,
                    "DockerDaemonNotReady".to_owned()
                ),
                (
                    NETWORK_READY.to_owned(),
                    false,
                    "NetworkPluginNotReady".to_owned()
                ),
            ]
        );
        assert!(response.info.is_empty());
    }

    #[test]
    fn a_warm_status_asks_dockerd_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let docker = testing::docker();
        let runtime = runtime_over(dir.path(), &docker);
        let before = docker.calls().len();
        let response = runtime
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        assert_eq!(
            conditions(&response)[0],
            (RUNTIME_READY.to_owned(), true, String::new())
        );
        // The engine's facts are the client's copy, asked of dockerd once.
        assert_eq!(docker.calls()[before..], ["engine "]);
    }

    #[test]
    fn past_the_freshness_bound_status_pings_dockerd_once_and_the_answer_vouches_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let docker = testing::docker();
        let runtime = runtime_over(dir.path(), &docker);
        let (ready, _) = runtime.runtime_condition(Duration::ZERO);
        assert!(ready.status, "{ready:?}");
        assert_eq!(docker.calls_of("ping"), ["ping "]);
        runtime.runtime_condition(STATUS_FRESHNESS);
        assert_eq!(docker.calls_of("ping"), ["ping "]);
    }

    #[test]
    fn a_ping_that_fails_past_the_freshness_bound_makes_the_runtime_not_ready_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let docker = testing::docker();
        let runtime = runtime_over(dir.path(), &docker);
        docker.fail("ping", refused());
        let (ready, info) = runtime.runtime_condition(Duration::ZERO);
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (false, "DockerDaemonNotReady")
        );
        assert!(
            ready
                .message
                .starts_with("docker daemon is not answering: "),
            "{}",
            ready.message
        );
        assert_eq!(info["ready"], false);
    }

    #[test]
    fn a_panicked_background_thread_makes_the_runtime_not_ready_naming_it() {
        use crate::supervisor::{Duty, OnDeath};
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new();
        let duty = Duty {
            name: "layer-sizes",
            on_death: OnDeath::Report,
            loss: "some containers' writable-layer figures are no longer measured",
        };
        supervisor
            .spawn(duty, || panic!("walked into a loop"))
            .unwrap()
            .join()
            .unwrap();
        let response = supervised_runtime(dir.path(), NetworkPlugin::None, supervisor)
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        let runtime = &response.status.unwrap().conditions[0];
        assert_eq!(runtime.r#type, RUNTIME_READY);
        assert!(!runtime.status);
        // No dockerd here: its reason stays, and the death is added.
        assert_eq!(runtime.reason, "DockerDaemonNotReady");
        assert!(
            runtime.message.contains(
                "; thread layer-sizes panicked: walked into a loop; without it, some \
                 containers' writable-layer figures are no longer measured; restart dockshim"
            ),
            "{}",
            runtime.message
        );
    }

    #[test]
    fn a_dead_thread_turns_a_ready_runtime_not_ready_with_its_own_reason() {
        use crate::supervisor::{Cause, Duty, OnDeath};
        let death = Death {
            duty: Duty {
                name: "streaming",
                on_death: OnDeath::Report,
                loss: "Exec, Attach and PortForward URLs are not served",
            },
            cause: Cause::Failed("accept failed".to_owned()),
        };
        let ready = condition(RUNTIME_READY, true, "", "");
        assert_eq!(with_dead_threads(ready.clone(), &[]), ready);
        assert_eq!(
            with_dead_threads(ready, &[death]),
            condition(
                RUNTIME_READY,
                false,
                THREAD_DIED,
                "thread streaming stopped: accept failed; without it, Exec, Attach and \
                 PortForward URLs are not served; restart dockshim to recover"
            )
        );
    }

    #[test]
    fn verbose_status_names_the_built_in_network_while_the_directory_is_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(dir.path(), NetworkPlugin::Cni);
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for plugin in crate::network::default_network::PLUGINS {
            std::fs::write(bin.join(plugin), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(bin.join(plugin), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let response = runtime
            .status(&ctx(), v1::StatusRequest { verbose: true })
            .unwrap();
        assert_eq!(
            conditions(&response)[1],
            (NETWORK_READY.to_owned(), true, String::new())
        );
        let cni: Value = serde_json::from_str(&response.info["cniConfig"]).unwrap();
        assert_eq!(cni["source"], "built-in default (subnet 10.86.0.0/16)");
        assert_eq!(cni["name"], "dockshim0");
        assert_eq!(cni["file"], Value::Null);
    }

    #[test]
    fn host_network_only_mode_is_always_network_ready() {
        let dir = tempfile::tempdir().unwrap();
        let response = runtime(dir.path(), NetworkPlugin::None)
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        assert_eq!(
            conditions(&response)[1],
            (NETWORK_READY.to_owned(), true, String::new())
        );
    }

    #[test]
    fn status_without_docker_lists_only_the_default_handler_without_features() {
        let dir = tempfile::tempdir().unwrap();
        let response = runtime(dir.path(), NetworkPlugin::Cni)
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        assert_eq!(
            response.runtime_handlers,
            [v1::RuntimeHandler {
                name: String::new(),
                features: Some(v1::RuntimeHandlerFeatures::default()),
            }]
        );
    }

    fn engine(api: (u16, u16), kernel: &str) -> Engine {
        let info = crate::codec::json::FromJson::from_json(&json!({
            "ServerVersion": "29.7.2",
            "KernelVersion": kernel,
            "Runtimes": {"runc": {"path": "runc"}, "kata": {"runtimeType": "io.containerd.kata.v2"}},
            "DefaultRuntime": "runc"
        }))
        .unwrap();
        Engine::new(crate::docker::ApiVersion::new(api.0, api.1), &info)
    }

    #[test]
    fn every_docker_runtime_is_a_handler_besides_the_default_one() {
        let engine = engine((1, 55), "6.1.0");
        let handlers = runtime_handlers(Some(&engine));
        let names: Vec<&str> = handlers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["", "kata", "runc"]);
        for handler in &handlers {
            let features = handler.features.as_ref().unwrap();
            assert!(features.recursive_read_only_mounts, "{handler:?}");
            assert!(!features.user_namespaces, "{handler:?}");
        }
    }

    #[test]
    fn a_runtime_that_lists_no_rro_mount_option_has_no_recursive_read_only_mounts() {
        let info = crate::codec::json::FromJson::from_json(&json!({
            "KernelVersion": "6.1.0",
            "DefaultRuntime": "runc",
            "Runtimes": {
                "runc": {"path": "runc"},
                "old": {"path": "runc-1.0", "status": {
                    "org.opencontainers.runtime-spec.features": "{\"mountOptions\":[\"ro\"]}"
                }}
            }
        }))
        .unwrap();
        let engine = Engine::new(crate::docker::ApiVersion::new(1, 47), &info);
        let advertised: Vec<(String, bool)> = runtime_handlers(Some(&engine))
            .into_iter()
            .map(|h| (h.name, h.features.unwrap().recursive_read_only_mounts))
            .collect();
        assert_eq!(
            advertised,
            [
                (String::new(), true),
                ("old".to_owned(), false),
                ("runc".to_owned(), true)
            ]
        );
    }

    #[test]
    fn recursive_read_only_mounts_are_advertised_only_where_the_engine_has_them() {
        for (api, kernel) in [((1, 41), "6.1.0"), ((1, 47), "5.10.0")] {
            let engine = engine(api, kernel);
            for handler in runtime_handlers(Some(&engine)) {
                let features = handler.features.unwrap();
                assert!(!features.recursive_read_only_mounts, "{api:?} {kernel}");
            }
        }
    }

    #[test]
    fn verbose_runtimes_name_each_runtimes_executable_or_shim() {
        let engine = engine((1, 55), "6.1.0");
        assert_eq!(
            runtimes_info(Some(&engine)),
            json!({
                "default": "runc",
                "runtimes": {"kata": "io.containerd.kata.v2", "runc": "runc"}
            })
        );
        assert_eq!(runtimes_info(None), Value::Null);
    }

    #[test]
    fn verbose_status_info_values_are_json() {
        let dir = tempfile::tempdir().unwrap();
        let response = runtime(dir.path(), NetworkPlugin::Cni)
            .status(&ctx(), v1::StatusRequest { verbose: true })
            .unwrap();
        for key in ["config", "docker", "cniConfig", "podCIDR", "runtimes"] {
            let value = response.info.get(key).unwrap();
            serde_json::from_str::<Value>(value).unwrap();
        }
    }

    #[test]
    fn update_runtime_config_keeps_a_valid_cidr_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(dir.path(), NetworkPlugin::Cni);
        let request = |cidr: &str| v1::UpdateRuntimeConfigRequest {
            runtime_config: Some(v1::RuntimeConfig {
                network_config: Some(v1::NetworkConfig {
                    pod_cidr: cidr.to_owned(),
                }),
            }),
        };
        runtime
            .update_runtime_config(&ctx(), request("10.88.0.0/16"))
            .unwrap();
        let err = runtime
            .update_runtime_config(&ctx(), request("10.88.0.0/33"))
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::InvalidArgument);
        runtime.update_runtime_config(&ctx(), request("")).unwrap();
        assert_eq!(runtime.pod_cidr().as_deref(), Some("10.88.0.0/16"));
        let store = Store::open(&dir.path().join("root")).unwrap();
        assert_eq!(
            store.load_pod_cidr().unwrap().as_deref(),
            Some("10.88.0.0/16")
        );
    }

    #[test]
    fn port_forward_to_a_bad_port_is_refused_before_docker_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let request = v1::PortForwardRequest {
            pod_sandbox_id: "pod".to_owned(),
            port: vec![0],
        };
        let err = runtime(dir.path(), NetworkPlugin::Cni)
            .port_forward(&ctx(), request)
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::InvalidArgument, "{err}");
    }

    #[test]
    fn stats_without_docker_are_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(dir.path(), NetworkPlugin::Cni);
        let err = runtime
            .list_container_stats(&ctx(), v1::ListContainerStatsRequest::default())
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Unavailable, "{err}");
        let err = runtime
            .pod_sandbox_stats(
                &ctx(),
                v1::PodSandboxStatsRequest {
                    pod_sandbox_id: "0123abcd".to_owned(),
                },
            )
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Unavailable, "{err}");
    }

    #[test]
    fn version_without_docker_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let err = runtime(dir.path(), NetworkPlugin::Cni)
            .version(&ctx(), v1::VersionRequest::default())
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Unavailable, "{err}");
    }

    /// A runtime whose own calls and sandbox calls go to a fake dockerd,
    /// with the index the sandbox calls read.
    fn faked_with_index(dir: &Path) -> (Arc<FakeDocker>, Arc<crate::index::Index>, Runtime) {
        let docker = testing::docker();
        let mut runtime = runtime(dir, NetworkPlugin::None);
        let index = testing::index(&docker);
        let settings = runtime.sandboxes.settings.clone();
        runtime.sandboxes = testing::sandboxes(&docker, &settings, Arc::clone(&index));
        runtime.docker = Arc::clone(&docker) as Arc<dyn DockerApi>;
        (docker, index, runtime)
    }

    fn faked(dir: &Path) -> (Arc<FakeDocker>, Runtime) {
        let (docker, _, runtime) = faked_with_index(dir);
        (docker, runtime)
    }

    fn pod_cidr(cidr: &str) -> v1::UpdateRuntimeConfigRequest {
        v1::UpdateRuntimeConfigRequest {
            runtime_config: Some(v1::RuntimeConfig {
                network_config: Some(v1::NetworkConfig {
                    pod_cidr: cidr.to_owned(),
                }),
            }),
        }
    }

    #[test]
    fn version_names_dockerd_s_version_and_asks_it_once_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let (docker, runtime) = faked(dir.path());
        for _ in 0..2 {
            let version = runtime
                .version(&ctx(), v1::VersionRequest::default())
                .unwrap();
            assert_eq!(version.runtime_version, "20.10.24");
            assert_eq!(version.runtime_api_version, "v1");
        }
        assert_eq!(docker.calls_of("version").len(), 1);
    }

    #[test]
    fn status_with_dockerd_answering_is_ready_with_its_handlers() {
        let dir = tempfile::tempdir().unwrap();
        let (_docker, runtime) = faked(dir.path());
        let response = runtime
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        assert_eq!(
            conditions(&response),
            [
                (RUNTIME_READY.to_owned(), true, String::new()),
                (NETWORK_READY.to_owned(), true, String::new()),
            ]
        );
        let names: Vec<&str> = response
            .runtime_handlers
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, [""]);
    }

    #[test]
    fn status_whose_ping_fails_is_not_ready_without_asking_for_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let (docker, runtime) = faked(dir.path());
        docker.fail("ping", refused());
        let response = runtime
            .status(&ctx(), v1::StatusRequest { verbose: true })
            .unwrap();
        assert_eq!(
            conditions(&response)[0],
            (
                RUNTIME_READY.to_owned(),
                false,
                "DockerDaemonNotReady".to_owned()
            )
        );
        assert_eq!(docker.calls_of("engine"), Vec::<String>::new());
        assert_eq!(response.info["runtimes"], "null");
    }

    #[test]
    fn status_whose_engine_cannot_be_read_stays_ready_with_the_default_handler() {
        let dir = tempfile::tempdir().unwrap();
        let (docker, runtime) = faked(dir.path());
        docker.fail("engine", crate::docker::fake::status(500, "info failed"));
        let response = runtime
            .status(&ctx(), v1::StatusRequest { verbose: false })
            .unwrap();
        assert!(conditions(&response)[0].1);
        assert_eq!(response.runtime_handlers.len(), 1);
    }

    #[test]
    fn runtime_config_asks_dockerd_for_its_cgroup_driver_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let (docker, runtime) = faked(dir.path());
        for _ in 0..2 {
            let config = runtime
                .runtime_config(&ctx(), v1::RuntimeConfigRequest::default())
                .unwrap();
            assert_eq!(
                config.linux.unwrap().cgroup_driver,
                v1::CgroupDriver::Cgroupfs as i32
            );
        }
        assert_eq!(docker.calls_of("info").len(), 2);
        docker.fail("info", refused());
        let err = runtime
            .runtime_config(&ctx(), v1::RuntimeConfigRequest::default())
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Unavailable, "{err}");
    }

    #[test]
    fn a_changed_pod_cidr_is_kept_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(dir.path(), NetworkPlugin::Cni);
        runtime
            .update_runtime_config(&ctx(), pod_cidr("10.88.0.0/16"))
            .unwrap();
        runtime
            .update_runtime_config(&ctx(), pod_cidr("10.99.0.0/16"))
            .unwrap();
        assert_eq!(runtime.pod_cidr().as_deref(), Some("10.99.0.0/16"));
        let store = Store::open(&dir.path().join("root")).unwrap();
        assert_eq!(
            store.load_pod_cidr().unwrap().as_deref(),
            Some("10.99.0.0/16")
        );
    }

    #[test]
    fn an_unchanged_pod_cidr_is_not_saved_again_and_one_that_cannot_be_saved_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(dir.path(), NetworkPlugin::Cni);
        runtime
            .update_runtime_config(&ctx(), pod_cidr("10.88.0.0/16"))
            .unwrap();
        // A directory where the file goes: no save can succeed now.
        let file = dir.path().join("root/pod-cidr");
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir_all(file.join("taken")).unwrap();
        runtime
            .update_runtime_config(&ctx(), pod_cidr("10.88.0.0/16"))
            .unwrap();
        let err = runtime
            .update_runtime_config(&ctx(), pod_cidr("10.99.0.0/16"))
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Internal, "{err}");
        assert_eq!(runtime.pod_cidr().as_deref(), Some("10.88.0.0/16"));
    }

    #[test]
    fn sandbox_resources_are_left_to_the_kubelet_but_an_unknown_sandbox_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let (docker, index, runtime) = faked_with_index(dir.path());
        let request = |id: &str| v1::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: id.to_owned(),
            ..v1::UpdatePodSandboxResourcesRequest::default()
        };
        let err = runtime
            .update_pod_sandbox_resources(&ctx(), request("f00d"))
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::NotFound, "{err}");
        let pod = testing::add_container(
            &docker,
            &index,
            "k8s_POD_web_prod_uid-1_0",
            "podsandbox",
            "",
        );
        runtime
            .update_pod_sandbox_resources(&ctx(), request(&pod))
            .unwrap();
        assert_eq!(docker.calls_of("update_container"), Vec::<String>::new());
    }

    #[test]
    fn checkpoint_container_is_unimplemented() {
        let dir = tempfile::tempdir().unwrap();
        let err = runtime(dir.path(), NetworkPlugin::None)
            .checkpoint_container(&ctx(), v1::CheckpointContainerRequest::default())
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Unimplemented, "{err}");
    }

    #[test]
    fn metrics_are_described_without_docker_but_not_measured_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime(dir.path(), NetworkPlugin::None);
        let described = runtime
            .list_metric_descriptors(&ctx(), v1::ListMetricDescriptorsRequest::default())
            .unwrap();
        assert!(!described.descriptors.is_empty());
        let err = runtime
            .list_pod_sandbox_metrics(&ctx(), v1::ListPodSandboxMetricsRequest::default())
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Unavailable, "{err}");
    }

    /// A client of a Stream* call that keeps how many items each message
    /// held (`count` reads them), and goes away at message `gone_at`.
    struct Client {
        count: fn(&[u8]) -> usize,
        sizes: Vec<usize>,
        gone_at: Option<usize>,
    }

    impl crate::grpc::MessageSink for Client {
        fn send(&mut self, message: &[u8]) -> Result<(), Status> {
            if Some(self.sizes.len()) == self.gone_at {
                return Err(Status::cancelled("the client went away"));
            }
            self.sizes.push((self.count)(message));
            Ok(())
        }
    }

    fn sandboxes_in(message: &[u8]) -> usize {
        let message: v1::StreamPodSandboxesResponse = prost::Message::decode(message).unwrap();
        message.pod_sandboxes.len()
    }

    /// A runtime over a fake dockerd holding `pods` sandboxes.
    fn with_sandboxes(dir: &Path, pods: usize) -> Runtime {
        let (docker, index, runtime) = faked_with_index(dir);
        for pod in 0..pods {
            testing::add_container(
                &docker,
                &index,
                &format!("k8s_POD_web-{pod}_prod_uid-{pod}_0"),
                "podsandbox",
                "",
            );
        }
        runtime
    }

    #[test]
    fn streamed_sandboxes_come_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = with_sandboxes(dir.path(), STREAM_BATCH + 1);
        let mut client = Client {
            count: sandboxes_in,
            sizes: Vec::new(),
            gone_at: None,
        };
        runtime
            .stream_pod_sandboxes(
                &ctx(),
                v1::StreamPodSandboxesRequest::default(),
                &mut Sink::new(&mut client),
            )
            .unwrap();
        assert_eq!(client.sizes, [STREAM_BATCH, 1]);
    }

    #[test]
    fn a_stream_whose_client_went_away_ends_with_the_client_s_error() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = with_sandboxes(dir.path(), 2 * STREAM_BATCH + 1);
        let mut client = Client {
            count: sandboxes_in,
            sizes: Vec::new(),
            gone_at: Some(1),
        };
        let err = runtime
            .stream_pod_sandboxes(
                &ctx(),
                v1::StreamPodSandboxesRequest::default(),
                &mut Sink::new(&mut client),
            )
            .unwrap_err();
        assert_eq!(err.code, crate::grpc::Code::Cancelled, "{err}");
        assert_eq!(client.sizes, [STREAM_BATCH]);
    }

    /// A runtime whose container calls also go to the fake dockerd.
    fn faked_containers(dir: &Path) -> (Arc<FakeDocker>, Arc<crate::index::Index>, Runtime) {
        let (docker, index, mut runtime) = faked_with_index(dir);
        runtime.containers = testing::containers(
            &docker,
            &runtime.sandboxes.settings,
            Arc::clone(&index),
            Arc::new(crate::host::RecordingHost::default()),
        );
        (docker, index, runtime)
    }

    #[test]
    fn stream_urls_are_issued_only_for_running_containers_and_ready_sandboxes() {
        use crate::grpc::Code;
        let dir = tempfile::tempdir().unwrap();
        let (docker, index, runtime) = faked_containers(dir.path());
        let pod = testing::add_container(
            &docker,
            &index,
            "k8s_POD_web_prod_uid-1_0",
            "podsandbox",
            "",
        );
        let app = testing::add_container(
            &docker,
            &index,
            "k8s_app_web_prod_uid-1_0",
            "container",
            &pod,
        );
        let exec = |id: &str| v1::ExecRequest {
            container_id: id.to_owned(),
            cmd: vec!["sh".to_owned()],
            stdout: true,
            ..v1::ExecRequest::default()
        };
        let attach = |id: &str| v1::AttachRequest {
            container_id: id.to_owned(),
            stdout: true,
            ..v1::AttachRequest::default()
        };
        let forward = |id: &str| v1::PortForwardRequest {
            pod_sandbox_id: id.to_owned(),
            port: vec![80],
        };
        let code = |status: Status| status.code;
        // Created, not running: no URL yet.
        assert_eq!(
            runtime.exec(&ctx(), exec(&app)).map_err(code).unwrap_err(),
            Code::FailedPrecondition
        );
        assert_eq!(
            runtime
                .port_forward(&ctx(), forward(&pod))
                .map_err(code)
                .unwrap_err(),
            Code::FailedPrecondition
        );
        for id in [&pod, &app] {
            docker.start_container(id).unwrap();
            index.refresh(id).unwrap();
        }
        let urls = [
            runtime.exec(&ctx(), exec(&app)).unwrap().url,
            runtime.attach(&ctx(), attach(&app)).unwrap().url,
            runtime.port_forward(&ctx(), forward(&pod)).unwrap().url,
        ];
        for url in &urls {
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        }
        assert_eq!(
            runtime
                .attach(&ctx(), attach("f00d"))
                .map_err(code)
                .unwrap_err(),
            Code::NotFound
        );
        assert_eq!(docker.calls_of("create_exec"), Vec::<String>::new());
    }
}
