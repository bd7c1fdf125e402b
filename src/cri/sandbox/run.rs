//! RunPodSandbox: check the whole request first, then bring the sandbox up
//! step by step — sandbox image, container, checkpoint, start, resolv.conf,
//! CNI ADD, hairpin, pod IPs — and undo every step already taken when a
//! later one fails.
//!
//! The checkpoint is written before the start and says that a CNI DEL is
//! owed before the ADD runs, so that a dockshim killed at any point leaves
//! enough on disk for StopPodSandbox to tear the network down later. A
//! rollback whose DEL fails records it as owed (`owed`) before the
//! checkpoint goes, and every call first retries the DELs owed so far.
//! A call repeated while the first is under way (same Docker name, so same
//! pod name, namespace, UID and attempt) waits for it and answers the same.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use super::error::SandboxError;
use super::security::NodeSeccompProfiles;
use super::service::{lock, Flight, SandboxService};
use super::translate::is_default_runtime_handler;
use super::{dns, sandbox_create_body, sandbox_namespaces, SandboxOptions};
use crate::api::v1;
use crate::cri::{cgroup_driver, naming};
use crate::docker::{ContainerCreate, CreateOutcome};
use crate::failpoint::{self, FailPoint};
use crate::grpc::{CallContext, Code, Status};
use crate::host::netns_path;
use crate::network::cni::{self, Bandwidth, CniError, POD_IFNAME};
use crate::network::{CniNetwork, PodAttachment, RuntimeArgs};
use crate::store::checkpoint::{self, CheckpointData, SandboxNetwork};
use crate::store::{CheckpointError, PodSandboxCheckpoint};

/// Everything RunPodSandbox will do, worked out before anything exists.
struct Plan {
    name: String,
    metadata: v1::PodSandboxMetadata,
    body: ContainerCreate,
    resolv_conf: Option<String>,
    /// The CNI network to attach to; `None` for host networking.
    network: Option<CniNetwork>,
    args: RuntimeArgs,
    checkpoint: PodSandboxCheckpoint,
}

/// What has been done so far, for the rollback.
struct Progress {
    id: String,
    /// The pod attached by a successful ADD, or by one whose own cleanup
    /// failed, to DEL on rollback.
    attached: Option<PodAttachment>,
}

/// Ends a flight however the leader leaves, panics included.
struct FlightGuard<'a> {
    service: &'a SandboxService,
    name: &'a str,
    flight: Arc<Flight>,
    outcome: Option<Result<String, Status>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.service.in_flight).remove(self.name);
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(Status::new(
                Code::Internal,
                "the RunPodSandbox call this one waited for ended without an answer",
            ))
        });
        self.flight.finish(outcome);
    }
}

impl SandboxService {
    /// RunPodSandbox; `pod_cidr` is the node's pod CIDR, if known.
    pub fn run_pod_sandbox(
        &self,
        ctx: &CallContext,
        request: &v1::RunPodSandboxRequest,
        pod_cidr: Option<&str>,
    ) -> Result<String, Status> {
        let config = request
            .config
            .as_ref()
            .ok_or(SandboxError::Missing("config"))?;
        let plan = self.plan(config, &request.runtime_handler, pod_cidr)?;

        let (flight, leader) = {
            let mut in_flight = lock(&self.in_flight);
            match in_flight.get(&plan.name) {
                Some(flight) => (Arc::clone(flight), false),
                None => {
                    let flight = Arc::new(Flight::default());
                    in_flight.insert(plan.name.clone(), Arc::clone(&flight));
                    (flight, true)
                }
            }
        };
        if !leader {
            log::info!("RunPodSandbox for {} already under way; waiting", plan.name);
            return flight.wait();
        }
        let mut guard = FlightGuard {
            service: self,
            name: &plan.name,
            flight,
            outcome: None,
        };
        // The kubelet never learns the ID of a sandbox whose RunPodSandbox
        // failed, so no Stop retries what its rollback owes; its retry of
        // RunPodSandbox does.
        self.settle_owed_teardowns();
        let outcome = self.run_planned(ctx, &plan).map_err(|err| {
            log::warn!("{err}");
            Status::from(err)
        });
        guard.outcome = Some(outcome.clone());
        outcome
    }

    /// Checks the request and works out every input of the later steps.
    fn plan(
        &self,
        config: &v1::PodSandboxConfig,
        runtime_handler: &str,
        pod_cidr: Option<&str>,
    ) -> Result<Plan, SandboxError> {
        let engine = self.engine()?;
        let runtimes = self.runtimes_for(runtime_handler)?;
        let body = sandbox_create_body(
            config,
            &SandboxOptions {
                image: &self.settings.image,
                oom_score_adj: self.settings.oom_score_adj,
                network_plugin: self.settings.network_plugin,
                cgroup_driver: cgroup_driver(&engine),
                node_has_apparmor: engine.apparmor,
                runtime_handler,
                runtimes: &runtimes,
                seccomp_profiles: &NodeSeccompProfiles,
            },
        )?;
        let metadata = config
            .metadata
            .clone()
            .ok_or(SandboxError::Missing("config.metadata"))?;
        let name = naming::sandbox_name(&metadata).map_err(super::SandboxConfigError::from)?;
        let resolv_conf = match &config.dns_config {
            Some(dns) => dns::resolv_conf(dns)?,
            None => None,
        };
        let host_network = sandbox_namespaces(config)?.host_network;
        let data = CheckpointData::new(
            config.port_mappings.iter().map(checkpoint_port).collect(),
            host_network,
        );
        let (network, bandwidth) = if host_network {
            (None, None)
        } else {
            let network = self
                .settings
                .networks
                .current(pod_cidr)
                .map_err(SandboxError::CniConfig)?;
            (
                Some(network),
                Bandwidth::from_annotations(&config.annotations)?,
            )
        };
        let args = runtime_args(&data, bandwidth, pod_cidr);
        let checkpoint = PodSandboxCheckpoint {
            name: metadata.name.clone(),
            namespace: metadata.namespace.clone(),
            data,
            dockshim: Some(SandboxNetwork {
                uid: metadata.uid.clone(),
                runtime_handler: runtime_handler.to_owned(),
                ..SandboxNetwork::default()
            }),
        };
        Ok(Plan {
            name,
            metadata,
            body,
            resolv_conf,
            network,
            args,
            checkpoint,
        })
    }

    /// The names of dockerd's runtimes, to find `handler` among: those the
    /// engine listed when first asked, or, when `handler` is not one of
    /// them, those `/info` lists now, since a daemon reload (SIGHUP) adds
    /// runtimes without a restart.
    fn runtimes_for(&self, handler: &str) -> Result<Vec<String>, SandboxError> {
        let engine = self
            .docker
            .engine()
            .map_err(|err| SandboxError::docker("read dockerd's runtimes", err))?;
        if is_default_runtime_handler(handler) || engine.has_runtime(handler) {
            return Ok(engine.runtimes.keys().cloned().collect());
        }
        let info = self
            .docker
            .info()
            .map_err(|err| SandboxError::docker("read dockerd's runtimes", err))?;
        let mut names: Vec<&str> = info.runtimes.keys().map(String::as_str).collect();
        names.sort_unstable();
        Ok(names.into_iter().map(str::to_owned).collect())
    }

    fn run_planned(&self, ctx: &CallContext, plan: &Plan) -> Result<String, SandboxError> {
        self.ensure_sandbox_image(ctx)?;
        let id = match self.create(plan)? {
            Creation::Reused(id) => return Ok(id),
            Creation::New(id) => id,
        };
        failpoint::reached(FailPoint::RunPodSandboxContainerCreated);
        let mut progress = Progress {
            id: id.clone(),
            attached: None,
        };
        match self.bring_up(plan, &mut progress) {
            Ok(()) => {
                log::info!("pod sandbox {} is {id}", plan.name);
                Ok(id)
            }
            Err((step, cause)) => Err(self.roll_back(plan, progress, step, cause)),
        }
    }

    /// Makes sure the sandbox image is present, pulling it if needed.
    fn ensure_sandbox_image(&self, ctx: &CallContext) -> Result<(), SandboxError> {
        let spec = v1::ImageSpec {
            image: self.settings.image.clone(),
            ..v1::ImageSpec::default()
        };
        let failed = |source: Status| SandboxError::Image {
            image: self.settings.image.clone(),
            source,
        };
        let status = self
            .images
            .image_status(
                ctx,
                v1::ImageStatusRequest {
                    image: Some(spec.clone()),
                    verbose: false,
                },
            )
            .map_err(failed)?;
        if status.image.is_some() {
            return Ok(());
        }
        log::info!("pulling the sandbox image {}", self.settings.image);
        self.images
            .pull_image(
                ctx,
                v1::PullImageRequest {
                    image: Some(spec),
                    auth: None,
                    sandbox_config: None,
                },
            )
            .map(drop)
            .map_err(failed)
    }

    /// Creates the sandbox container. A container left with the same name
    /// is this very sandbox when it runs with the same checkpoint (a retry
    /// after a lost answer); otherwise it is removed, once, and the create
    /// retried.
    fn create(&self, plan: &Plan) -> Result<Creation, SandboxError> {
        let failed = |err| SandboxError::docker("create the sandbox container", err);
        let err = match self.docker.create_container(&plan.name, &plan.body) {
            Ok(CreateOutcome::Created(created)) => return Ok(Creation::New(created.id)),
            Ok(CreateOutcome::NameInUse(err)) => err,
            Err(err) => return Err(failed(err)),
        };
        let Ok(Some(existing)) = self.docker.inspect_container(&plan.name) else {
            return Err(failed(err));
        };
        if existing.state.running && self.is_same_sandbox(&existing.id, plan) {
            log::info!(
                "pod sandbox {} exists already as {}",
                plan.name,
                existing.id
            );
            return Ok(Creation::Reused(existing.id));
        }
        log::warn!(
            "removing the stale container {} that holds the name {}",
            existing.id,
            plan.name
        );
        self.remove_pod_sandbox(&existing.id)?;
        match self.docker.create_container(&plan.name, &plan.body) {
            Ok(CreateOutcome::Created(created)) => Ok(Creation::New(created.id)),
            Ok(CreateOutcome::NameInUse(err)) | Err(err) => Err(failed(err)),
        }
    }

    /// Whether the running sandbox `id` was set up completely from a
    /// configuration with the same checkpointed data as `plan`.
    fn is_same_sandbox(&self, id: &str, plan: &Plan) -> bool {
        let Ok(checkpoint) = self.checkpoints.get(id) else {
            return false;
        };
        let network_done = checkpoint.data.host_network
            || checkpoint
                .dockshim
                .as_ref()
                .is_some_and(|network| network.network_ready);
        checkpoint.data == plan.checkpoint.data && network_done
    }

    fn bring_up(
        &self,
        plan: &Plan,
        progress: &mut Progress,
    ) -> Result<(), (&'static str, SandboxError)> {
        let id = progress.id.clone();
        // Known to the index before its checkpoint exists, so ListPodSandbox
        // never shows the checkpoint alone as a vanished sandbox.
        self.index
            .refresh(&id)
            .map_err(|err| ("record the new container", err.into()))?;
        let mut checkpoint = plan.checkpoint.clone();
        self.checkpoints
            .save(&id, &checkpoint)
            .map_err(|err| ("write the checkpoint", err.into()))?;
        failpoint::reached(FailPoint::RunPodSandboxCheckpointWritten);
        self.docker.start_container(&id).map_err(|err| {
            (
                "start the sandbox container",
                SandboxError::docker("start the sandbox container", err),
            )
        })?;
        failpoint::reached(FailPoint::RunPodSandboxContainerStarted);
        let inspect = match self.docker.inspect_container(&id) {
            Ok(Some(inspect)) => inspect,
            Ok(None) => {
                let gone = SandboxError::NoProcess { id: id.clone() };
                return Err(("inspect the sandbox container", gone));
            }
            Err(err) => {
                let err = SandboxError::docker("inspect the started sandbox container", err);
                return Err(("inspect the sandbox container", err));
            }
        };
        if let Some(text) = &plan.resolv_conf {
            fs::write(&inspect.resolv_conf_path, text).map_err(|source| {
                (
                    "write resolv.conf",
                    SandboxError::ResolvConf {
                        path: inspect.resolv_conf_path.clone(),
                        source,
                    },
                )
            })?;
            failpoint::reached(FailPoint::RunPodSandboxResolvConfWritten);
        }
        if let Some(network) = &plan.network {
            let pid = u32::try_from(inspect.state.pid)
                .ok()
                .filter(|pid| *pid > 0)
                .ok_or_else(|| {
                    (
                        "find the sandbox's network namespace",
                        SandboxError::NoProcess { id: id.clone() },
                    )
                })?;
            let netns = netns_path(pid.into());
            let mut record = checkpoint.dockshim.take().unwrap_or_default();
            record.cni_network = network.name.clone();
            record.netns = netns.display().to_string();
            record.pid = Some(pid);
            checkpoint.dockshim = Some(record.clone());
            self.checkpoints
                .save(&id, &checkpoint)
                .map_err(|err| ("record the network setup", err.into()))?;
            failpoint::reached(FailPoint::RunPodSandboxNetworkRecorded);
            let pod = PodAttachment {
                sandbox_id: id.clone(),
                namespace: plan.metadata.namespace.clone(),
                name: plan.metadata.name.clone(),
                uid: plan.metadata.uid.clone(),
                netns: Some(netns.clone()),
            };
            let ips = self.cni.add(network, &pod, &plan.args).map_err(|err| {
                if matches!(
                    err,
                    CniError::Add {
                        cleanup: Some(_),
                        ..
                    }
                ) {
                    progress.attached = Some(pod.clone());
                }
                ("set up the pod network", err.into())
            })?;
            progress.attached = Some(pod);
            failpoint::reached(FailPoint::RunPodSandboxNetworkAdded);
            self.hairpin
                .configure(self.settings.hairpin_mode, &netns, POD_IFNAME)
                .map_err(|err| ("set hairpin mode", SandboxError::Hairpin(err)))?;
            failpoint::reached(FailPoint::RunPodSandboxHairpinSet);
            record.primary_ip = ips.primary;
            record.additional_ips = ips.additional;
            record.network_ready = true;
            checkpoint.dockshim = Some(record);
            self.checkpoints
                .save(&id, &checkpoint)
                .map_err(|err| ("record the pod IPs", err.into()))?;
            failpoint::reached(FailPoint::RunPodSandboxIpsRecorded);
        }
        self.index
            .refresh(&id)
            .map_err(|err| ("record the started container", err.into()))?;
        failpoint::reached(FailPoint::RunPodSandboxReady);
        Ok(())
    }

    /// Undoes `progress` after `step` failed with `cause`.
    fn roll_back(
        &self,
        plan: &Plan,
        progress: Progress,
        step: &'static str,
        cause: SandboxError,
    ) -> SandboxError {
        let mut cleanup = Vec::new();
        let mut keep_checkpoint = false;
        if let (Some(pod), Some(network)) = (&progress.attached, &plan.network) {
            if let Err(err) = self.cni.del(network, pod, &plan.args) {
                cleanup.push(err.into());
                // Without the record the checkpoint keeps the debt: the
                // sandbox is listed NOTREADY until the kubelet removes it,
                // and that removal runs the DEL.
                if let Err(err) = self.owe_teardown(pod, network, &plan.checkpoint.data) {
                    keep_checkpoint = true;
                    cleanup.push(err);
                }
            }
        }
        if let Err(err) = self.remove_container(&progress.id) {
            cleanup.push(err);
        }
        if !keep_checkpoint {
            match self.checkpoints.remove(&progress.id) {
                Ok(()) | Err(CheckpointError::NotFound { .. }) => {}
                Err(err) => cleanup.push(err.into()),
            }
        }
        SandboxError::RunFailed {
            step,
            cause: Box::new(cause),
            cleanup,
        }
    }
}

enum Creation {
    New(String),
    /// The sandbox exists and is up already.
    Reused(String),
}

/// A CRI port mapping as the checkpoint stores it.
fn checkpoint_port(mapping: &v1::PortMapping) -> checkpoint::PortMapping {
    let protocol = v1::Protocol::try_from(mapping.protocol)
        .unwrap_or(v1::Protocol::Tcp)
        .as_str_name()
        .to_ascii_lowercase();
    checkpoint::PortMapping {
        protocol: Some(protocol),
        container_port: Some(mapping.container_port),
        host_port: Some(mapping.host_port),
        host_ip: mapping.host_ip.clone(),
    }
}

/// The CNI capability arguments for a sandbox: port mappings from its
/// checkpoint, so that ADD and every later DEL get the same ones.
pub(super) fn runtime_args(
    data: &CheckpointData,
    bandwidth: Option<Bandwidth>,
    pod_cidr: Option<&str>,
) -> RuntimeArgs {
    RuntimeArgs {
        port_mappings: data
            .port_mappings()
            .iter()
            .map(|mapping| cni::PortMapping {
                host_port: mapping.host_port.unwrap_or(0),
                container_port: mapping.container_port.unwrap_or(0),
                protocol: mapping.protocol.clone().unwrap_or_default(),
                host_ip: mapping.host_ip.clone(),
            })
            .collect(),
        bandwidth,
        pod_cidrs: pod_cidr
            .into_iter()
            .flat_map(|cidrs| cidrs.split(','))
            .map(str::trim)
            .filter(|cidr| !cidr.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

/// The CRI annotations of a sandbox entry, for the bandwidth capability.
pub(super) fn annotation_map<'a>(
    annotations: impl Iterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, String> {
    annotations
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checkpointed_ports_become_the_same_cni_mappings() {
        let mapping = v1::PortMapping {
            protocol: v1::Protocol::Udp as i32,
            container_port: 53,
            host_port: 5353,
            host_ip: "127.0.0.1".to_owned(),
        };
        let data = CheckpointData::new(vec![checkpoint_port(&mapping)], false);
        let args = runtime_args(&data, None, Some("10.1.0.0/16, fd00::/64"));
        assert_eq!(
            args.port_mappings,
            [cni::PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: "udp".to_owned(),
                host_ip: "127.0.0.1".to_owned(),
            }]
        );
        assert_eq!(args.pod_cidrs, ["10.1.0.0/16", "fd00::/64"]);
    }

    #[test]
    fn no_pod_cidr_sends_no_ranges() {
        let args = runtime_args(&CheckpointData::default(), None, None);
        assert!(args.pod_cidrs.is_empty());
        assert!(args.port_mappings.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod handler_tests {
    use std::sync::Arc;

    use crate::api::v1;
    use crate::cri::sandbox::SandboxService;
    use crate::cri::testing::{self, add_container};
    use crate::docker::fake::{status, FakeDocker};
    use crate::docker::DockerApi;
    use crate::grpc::{CallContext, Code, Status};
    use crate::index::Index;
    use crate::store::CheckpointError;

    struct Setup {
        docker: Arc<FakeDocker>,
        index: Arc<Index>,
        service: SandboxService,
        _dir: tempfile::TempDir,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let docker = testing::docker();
        let index = testing::index(&docker);
        let config = testing::config(dir.path());
        let service = testing::sandboxes(&docker, &config, Arc::clone(&index));
        Setup {
            docker,
            index,
            service,
            _dir: dir,
        }
    }

    impl Setup {
        fn run(&self) -> Result<String, Status> {
            let ctx = CallContext::new("/runtime.v1.RuntimeService/RunPodSandbox", None);
            self.service
                .run_pod_sandbox(&ctx, &testing::host_network_pod("web"), None)
        }

        fn created_ids(&self) -> Vec<String> {
            let starts = self.docker.calls_of("start_container");
            starts
                .iter()
                .map(|call| call["start_container ".len()..].to_owned())
                .collect()
        }

        fn has_checkpoint(&self, id: &str) -> bool {
            !matches!(
                self.service.checkpoints.get(id),
                Err(CheckpointError::NotFound { .. })
            )
        }
    }

    #[test]
    fn a_sandbox_runs_with_a_checkpoint() {
        let setup = setup();
        let id = setup.run().unwrap();
        assert!(setup.docker.container(&id).unwrap().state.running);
        assert!(setup.has_checkpoint(&id));
        assert!(setup.index.sandbox(&id).unwrap().unwrap().is_running());
    }

    #[test]
    fn a_failed_create_leaves_nothing_behind() {
        let setup = setup();
        setup
            .docker
            .fail("create_container", status(500, "no space left on device"));
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::Unknown, "{err:?}");
        assert!(setup.docker.container_ids().is_empty());
    }

    #[test]
    fn a_sandbox_that_fails_to_start_is_removed_with_its_checkpoint() {
        let setup = setup();
        setup
            .docker
            .fail("start_container", status(500, "OCI runtime create failed"));
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::Unknown, "{err:?}");
        assert!(err.message.contains("OCI runtime create failed"), "{err:?}");
        let [id] = setup.created_ids().try_into().unwrap();
        assert!(setup.docker.container(&id).is_none());
        assert!(!setup.has_checkpoint(&id));
        assert!(setup.index.sandbox(&id).unwrap().is_none());
    }

    /// Writes an executable CNI plugin `name` into `dir`: `script` runs
    /// for ADD, every other command succeeds with nothing to say.
    fn plugin(dir: &std::path::Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        let text =
            format!("#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n{script}\n");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_sandbox_whose_network_fails_is_removed_with_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = testing::config(dir.path());
        config.network_plugin = crate::network::NetworkPlugin::Cni;
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let conf_dir = dir.path().join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        plugin(&bin, "loopback", r#"echo '{"cniVersion":"0.3.1"}'"#);
        plugin(
            &bin,
            "no-ips",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no IP addresses available"}'; exit 1"#,
        );
        std::fs::write(
            conf_dir.join("10-pods.conflist"),
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"no-ips"}]}"#,
        )
        .unwrap();
        let docker = testing::docker();
        let index = testing::index(&docker);
        let service = testing::sandboxes(&docker, &config, Arc::clone(&index));
        let mut request = testing::host_network_pod("web");
        request.config.as_mut().unwrap().linux = None;
        let ctx = CallContext::new("/runtime.v1.RuntimeService/RunPodSandbox", None);
        let err = service.run_pod_sandbox(&ctx, &request, None).unwrap_err();
        assert!(err.message.contains("no IP addresses available"), "{err:?}");
        let starts = docker.calls_of("start_container");
        let [id] = starts.try_into().unwrap();
        let id = id["start_container ".len()..].to_owned();
        assert!(docker.container(&id).is_none(), "{:?}", docker.calls());
        assert!(matches!(
            service.checkpoints.get(&id),
            Err(CheckpointError::NotFound { .. })
        ));
    }

    #[test]
    fn a_rollback_that_cannot_remove_the_container_says_so() {
        let setup = setup();
        setup
            .docker
            .fail("start_container", status(500, "OCI runtime create failed"));
        setup
            .docker
            .fail("remove_container", status(500, "device or resource busy"));
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::Unknown, "{err:?}");
        assert!(err.message.contains("device or resource busy"), "{err:?}");
    }

    #[test]
    fn a_repeated_run_of_a_running_sandbox_answers_with_it() {
        let setup = setup();
        let first = setup.run().unwrap();
        let second = setup.run().unwrap();
        assert_eq!(first, second);
        assert_eq!(setup.created_ids(), [first]);
    }

    #[test]
    fn a_stopped_sandbox_holding_the_name_is_replaced() {
        let setup = setup();
        let stale = setup.run().unwrap();
        setup.service.stop_pod_sandbox(&stale).unwrap();
        let fresh = setup.run().unwrap();
        assert_ne!(stale, fresh);
        assert!(setup.docker.container(&stale).is_none());
        assert!(!setup.has_checkpoint(&stale));
    }

    #[test]
    fn stopping_or_removing_an_unknown_sandbox_is_ok() {
        let setup = setup();
        setup.service.stop_pod_sandbox("f00d").unwrap();
        setup.service.remove_pod_sandbox("f00d").unwrap();
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn stopping_a_sandbox_twice_is_ok() {
        let setup = setup();
        let id = setup.run().unwrap();
        setup.service.stop_pod_sandbox(&id).unwrap();
        setup.service.stop_pod_sandbox(&id).unwrap();
        assert!(!setup.docker.container(&id).unwrap().state.running);
    }

    #[test]
    fn stopping_a_sandbox_stops_its_running_containers_first() {
        let setup = setup();
        let id = setup.run().unwrap();
        let app = add_container(&setup.docker, &setup.index, "k8s_app", "container", &id);
        setup.docker.start_container(&app).unwrap();
        setup.index.refresh(&app).unwrap();
        setup.service.stop_pod_sandbox(&id).unwrap();
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            [
                format!("stop_container {app}"),
                format!("stop_container {id}")
            ]
        );
    }

    #[test]
    fn a_stop_dockerd_fails_fails_the_call_with_its_code() {
        let setup = setup();
        let id = setup.run().unwrap();
        setup
            .docker
            .fail("stop_container", status(500, "cannot kill"));
        let err = setup.service.stop_pod_sandbox(&id).unwrap_err();
        assert_eq!(Status::from(err).code, Code::Unknown);
    }

    #[test]
    fn removing_a_sandbox_twice_removes_its_containers_and_checkpoint_once() {
        let setup = setup();
        let id = setup.run().unwrap();
        let app = add_container(&setup.docker, &setup.index, "k8s_app", "container", &id);
        setup.service.remove_pod_sandbox(&id).unwrap();
        setup.service.remove_pod_sandbox(&id).unwrap();
        assert!(setup.docker.container_ids().is_empty());
        assert!(!setup.has_checkpoint(&id));
        assert_eq!(
            setup.docker.calls_of("remove_container"),
            [
                format!("remove_container {app}"),
                format!("remove_container {id}")
            ]
        );
    }

    #[test]
    fn removing_a_sandbox_dockerd_lost_is_ok_and_drops_its_checkpoint() {
        let setup = setup();
        let id = setup.run().unwrap();
        setup.docker.remove_container(&id).unwrap();
        setup.service.remove_pod_sandbox(&id).unwrap();
        assert!(!setup.has_checkpoint(&id));
    }

    fn run_with(setup: &Setup, request: &v1::RunPodSandboxRequest) -> Result<String, Status> {
        let ctx = CallContext::new("/runtime.v1.RuntimeService/RunPodSandbox", None);
        setup.service.run_pod_sandbox(&ctx, request, None)
    }

    #[test]
    fn a_request_without_a_config_is_an_invalid_argument_without_a_docker_call() {
        let setup = setup();
        let err = run_with(&setup, &v1::RunPodSandboxRequest::default()).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument, "{err:?}");
        assert_eq!(setup.docker.calls(), Vec::<String>::new());
    }

    #[test]
    fn a_sandbox_dockerd_cannot_describe_itself_for_is_not_created() {
        let setup = setup();
        setup.docker.fail("engine", crate::docker::fake::refused());
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
        assert_eq!(
            setup.docker.calls_of("create_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_unknown_runtime_handler_is_refused_before_anything_is_created() {
        let setup = setup();
        let mut request = testing::host_network_pod("web");
        request.runtime_handler = "kata".to_owned();
        let err = run_with(&setup, &request).unwrap_err();
        assert_eq!(err.code, Code::NotFound, "{err:?}");
        assert!(err.message.contains("kata"), "{err:?}");
        // Asked anew: a reloaded dockerd may have gained the runtime.
        assert_eq!(setup.docker.calls_of("info").len(), 1);
        assert_eq!(
            setup.docker.calls_of("create_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_missing_sandbox_image_is_pulled_and_one_that_cannot_be_creates_nothing() {
        let setup = setup();
        setup.docker.remove_image(testing::PAUSE_IMAGE).unwrap();
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::NotFound, "{err:?}");
        assert_eq!(
            setup.docker.calls_of("pull_image"),
            ["pull_image 127.0.0.1:5000/dockshim-test/pause:3.10"]
        );
        assert_eq!(
            setup.docker.calls_of("create_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_stale_sandbox_that_cannot_be_removed_fails_the_run_and_stays() {
        let setup = setup();
        let stale = setup.run().unwrap();
        setup.service.stop_pod_sandbox(&stale).unwrap();
        setup
            .docker
            .fail("remove_container", status(500, "device or resource busy"));
        let err = setup.run().unwrap_err();
        assert!(err.message.contains("device or resource busy"), "{err:?}");
        assert_eq!(setup.docker.container_ids(), [stale]);
    }

    #[test]
    fn a_sandbox_whose_checkpoint_cannot_be_written_is_removed() {
        let setup = setup();
        // A file where the checkpoint directory was: no checkpoint can be written.
        let dir = setup.service.checkpoints.dir().to_owned();
        std::fs::remove_dir(&dir).unwrap();
        std::fs::write(&dir, "").unwrap();
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::Internal, "{err:?}");
        assert!(err.message.contains("write the checkpoint"), "{err:?}");
        assert!(setup.docker.container_ids().is_empty());
        assert_eq!(
            setup.docker.calls_of("start_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_sandbox_dockerd_cannot_describe_once_started_is_removed_with_its_checkpoint() {
        let setup = setup();
        setup
            .docker
            .fail("inspect_container", crate::docker::fake::refused());
        let err = setup.run().unwrap_err();
        assert_eq!(err.code, Code::Unavailable, "{err:?}");
        let [id] = setup.created_ids().try_into().unwrap();
        assert!(setup.docker.container(&id).is_none());
        assert!(!setup.has_checkpoint(&id));
    }

    #[test]
    fn a_sandbox_whose_resolv_conf_cannot_be_written_is_removed_with_its_checkpoint() {
        let setup = setup();
        let mut request = testing::host_network_pod("web");
        if let Some(config) = request.config.as_mut() {
            config.dns_config = Some(v1::DnsConfig {
                servers: vec!["10.96.0.10".to_owned()],
                ..v1::DnsConfig::default()
            });
        }
        // The fake's containers have no resolv.conf path to write to.
        let err = run_with(&setup, &request).unwrap_err();
        assert!(err.message.contains("resolv.conf"), "{err:?}");
        let [id] = setup.created_ids().try_into().unwrap();
        assert!(setup.docker.container(&id).is_none());
        assert!(!setup.has_checkpoint(&id));
    }

    /// A node whose CNI network `pods` is one plugin (and loopback) that
    /// logs each command to the file `calls` in `dir`; ADD fails while the
    /// file `add-fails` exists and DEL while `del-fails` does; a good ADD
    /// gives the pod 10.88.0.5.
    fn cni_setup(dir: &std::path::Path) -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let mut config = testing::config(dir);
        config.network_plugin = crate::network::NetworkPlugin::Cni;
        config.hairpin_mode = crate::network::hairpin::HairpinMode::None;
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let conf_dir = dir.join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let script = format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >>{dir}/calls\n\
             fail() {{ echo '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"'\"$1\"'\"}}'; exit 1; }}\n\
             case \"$CNI_COMMAND\" in\n\
             ADD) [ -e {dir}/add-fails ] && fail 'no IP addresses available'\n\
             echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.88.0.5/16\"}}]}}' ;;\n\
             DEL) [ -e {dir}/del-fails ] && fail 'cannot release'; exit 0 ;;\n\
             esac\n",
            dir = dir.display(),
        );
        for plugin in ["loopback", "pods-plugin"] {
            std::fs::write(bin.join(plugin), &script).unwrap();
            std::fs::set_permissions(bin.join(plugin), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::write(
            conf_dir.join("10-pods.conflist"),
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"pods-plugin"}]}"#,
        )
        .unwrap();
        let docker = testing::docker();
        let index = testing::index(&docker);
        let service = testing::sandboxes(&docker, &config, Arc::clone(&index));
        Setup {
            docker,
            index,
            service,
            // The node's files are in `dir`, which the caller holds.
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The pod of [`request`] on the pod network.
    fn pod_network_request() -> v1::RunPodSandboxRequest {
        let mut request = testing::host_network_pod("web");
        if let Some(config) = request.config.as_mut() {
            config.linux = None;
        }
        request
    }

    fn cni_commands(dir: &std::path::Path) -> Vec<String> {
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
        calls.lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_sandbox_on_the_pod_network_records_the_ip_cni_gave_it() {
        let dir = tempfile::tempdir().unwrap();
        let setup = cni_setup(dir.path());
        let id = run_with(&setup, &pod_network_request()).unwrap();
        let status = setup.service.pod_sandbox_status(&id, false).unwrap();
        assert_eq!(status.status.unwrap().network.unwrap().ip, "10.88.0.5");
        assert!(setup.docker.container(&id).unwrap().state.running);
    }

    #[test]
    fn a_rollback_whose_teardown_fails_leaves_it_owed_and_the_next_run_settles_it() {
        let dir = tempfile::tempdir().unwrap();
        let setup = cni_setup(dir.path());
        std::fs::write(dir.path().join("add-fails"), "").unwrap();
        std::fs::write(dir.path().join("del-fails"), "").unwrap();
        let err = run_with(&setup, &pod_network_request()).unwrap_err();
        assert!(err.message.contains("no IP addresses available"), "{err:?}");
        assert!(err.message.contains("cannot release"), "{err:?}");
        let [failed] = setup.created_ids().try_into().unwrap();
        assert!(setup.docker.container(&failed).is_none());
        assert_eq!(
            setup.service.owed.ids().unwrap(),
            std::slice::from_ref(&failed)
        );

        std::fs::remove_file(dir.path().join("add-fails")).unwrap();
        std::fs::remove_file(dir.path().join("del-fails")).unwrap();
        let dels_before = cni_commands(dir.path())
            .iter()
            .filter(|c| *c == "DEL")
            .count();
        let id = run_with(&setup, &pod_network_request()).unwrap();
        assert_ne!(id, failed);
        assert!(setup.service.owed.ids().unwrap().is_empty());
        let dels = cni_commands(dir.path())
            .iter()
            .filter(|c| *c == "DEL")
            .count();
        assert!(
            dels > dels_before,
            "the owed DEL ran: {:?}",
            cni_commands(dir.path())
        );
    }
}
