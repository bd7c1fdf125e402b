//! Handler test support: the CRI services over a [`FakeDocker`], with an
//! index that reads the fake's containers, and the images the tests use.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cri::container::ContainerService;
use crate::cri::image::{ImageSettings, Images};
use crate::cri::labels::{CONTAINER_TYPE_LABEL, SANDBOX_ID_LABEL};
use crate::cri::sandbox::{CriDockerdMigration, SandboxService, SandboxSettings};
use crate::docker::fake::FakeDocker;
use crate::docker::{
    ContainerCreate, ContainerInspect, CreateOutcome, DockerApi, DockerClient, DockerError,
    ImageInspect,
};
use crate::host::{Host, RecordingHost};
use crate::index::{EventFeed, Index, IndexConfig, IndexSource, Polled};
use crate::logs::LogManager;
use crate::network::cni::CniOptions;
use crate::network::default_network::DefaultNetwork;
use crate::network::hairpin::HairpinMode;
use crate::network::{NetworkPlugin, NetworkSource};

/// The sandbox image the tests' configuration names.
pub const PAUSE_IMAGE: &str = "127.0.0.1:5000/dockshim-test/pause:3.10";
/// The image the tests' containers run.
pub const BUSYBOX_IMAGE: &str = "127.0.0.1:5000/dockshim-test/busybox:latest";

/// The index's view of a fake dockerd, whose event stream never says
/// anything: handlers refresh the index themselves after each change.
struct FakeSource(Arc<FakeDocker>);

impl IndexSource for FakeSource {
    fn list(&self) -> Result<Vec<String>, DockerError> {
        Ok(self.0.container_ids())
    }

    fn inspect(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError> {
        Ok(self.0.container(id))
    }

    fn follow_events(
        &self,
        _since: SystemTime,
        idle: Duration,
    ) -> Result<Box<dyn EventFeed>, DockerError> {
        Ok(Box::new(Silence(idle)))
    }
}

struct Silence(Duration);

impl EventFeed for Silence {
    fn next_event(&mut self) -> Result<Polled, DockerError> {
        std::thread::sleep(self.0);
        Ok(Polled::Idle)
    }
}

/// An image with ID `sha256:<hex>` (`hex` repeated) and `tags`.
pub fn image(hex: char, tags: &[&str]) -> ImageInspect {
    ImageInspect {
        id: format!("sha256:{}", hex.to_string().repeat(64)),
        repo_tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        ..ImageInspect::default()
    }
}

/// A fake dockerd holding the pause and busybox images.
pub fn docker() -> Arc<FakeDocker> {
    let docker = FakeDocker::new();
    docker.add_image(image('a', &[PAUSE_IMAGE]));
    docker.add_image(image('b', &[BUSYBOX_IMAGE]));
    docker
}

/// The sandbox settings of a node whose files live in `dir`, without CNI.
pub fn config(dir: &Path) -> SandboxSettings {
    SandboxSettings {
        root_directory: dir.join("root"),
        cni: CniOptions {
            bin_dirs: vec![dir.join("bin")],
            cache_dir: dir.join("cache"),
            ipv6_dual_stack: false,
        },
        image: PAUSE_IMAGE.to_owned(),
        oom_score_adj: -998,
        network_plugin: NetworkPlugin::None,
        hairpin_mode: HairpinMode::HairpinVeth,
        networks: NetworkSource::new(
            dir.join("net.d"),
            vec![dir.join("bin")],
            &DefaultNetwork::Auto { bridge: None },
        ),
        migration: CriDockerdMigration::Off,
    }
}

/// The image settings that pin the tests' sandbox image.
pub fn image_settings() -> ImageSettings {
    ImageSettings {
        sandbox_image: PAUSE_IMAGE.to_owned(),
        pull_progress_deadline: Duration::from_secs(60),
        pull_timeout: Duration::from_secs(30 * 60),
    }
}

/// A warm index over `docker`.
pub fn index(docker: &Arc<FakeDocker>) -> Arc<Index> {
    let source = Box::new(FakeSource(Arc::clone(docker)));
    let index = Index::start_with(source, IndexConfig::default()).unwrap();
    assert!(index.wait_warm(Duration::from_secs(5)));
    index
}

/// The container calls over `docker`; the log manager has no dockerd.
pub fn containers(
    docker: &Arc<FakeDocker>,
    config: &SandboxSettings,
    index: Arc<Index>,
    host: Arc<dyn Host>,
) -> ContainerService {
    let endpoint = format!("unix://{}/no-docker.sock", config.root_directory.display());
    let nowhere = DockerClient::new(&endpoint, Duration::from_secs(1)).unwrap();
    let api: Arc<dyn DockerApi> = Arc::clone(docker) as Arc<dyn DockerApi>;
    ContainerService::new(
        api,
        index,
        LogManager::start(nowhere),
        host,
        Duration::from_secs(5),
    )
}

/// The sandbox calls over `docker`.
pub fn sandboxes(
    docker: &Arc<FakeDocker>,
    config: &SandboxSettings,
    index: Arc<Index>,
) -> SandboxService {
    let api: Arc<dyn DockerApi> = Arc::clone(docker) as Arc<dyn DockerApi>;
    let images = Arc::new(Images::new(Arc::clone(&api), image_settings()));
    SandboxService::new(api, index, images, config.clone()).unwrap()
}

/// Makes a container of `kind` (`container` or `podsandbox`) in sandbox
/// `sandbox_id` in dockerd behind the handlers' back, and tells `index`;
/// returns its ID.
pub fn add_container(
    docker: &FakeDocker,
    index: &Index,
    name: &str,
    kind: &str,
    sandbox_id: &str,
) -> String {
    let mut body = ContainerCreate {
        image: BUSYBOX_IMAGE.to_owned(),
        ..ContainerCreate::default()
    };
    body.labels
        .insert(CONTAINER_TYPE_LABEL.to_owned(), kind.to_owned());
    body.labels
        .insert(SANDBOX_ID_LABEL.to_owned(), sandbox_id.to_owned());
    let CreateOutcome::Created(created) = docker.create_container(name, &body).unwrap() else {
        panic!("{name} is taken");
    };
    index.refresh(&created.id).unwrap();
    created.id
}

/// The container calls over a fake dockerd holding the test images.
pub struct ContainerSetup {
    pub docker: Arc<FakeDocker>,
    pub index: Arc<Index>,
    pub service: ContainerService,
    pub host: Arc<RecordingHost>,
    _dir: tempfile::TempDir,
}

impl ContainerSetup {
    pub fn new() -> ContainerSetup {
        ContainerSetup::with_host(RecordingHost::default())
    }

    /// The container calls over a node made of `host`.
    pub fn with_host(host: RecordingHost) -> ContainerSetup {
        let dir = tempfile::tempdir().unwrap();
        let docker = docker();
        let index = index(&docker);
        let host = Arc::new(host);
        let service = containers(
            &docker,
            &config(dir.path()),
            Arc::clone(&index),
            Arc::clone(&host) as Arc<dyn Host>,
        );
        ContainerSetup {
            docker,
            index,
            service,
            host,
            _dir: dir,
        }
    }

    /// A created container of sandbox `pod`.
    pub fn container(&self) -> String {
        add_container(
            &self.docker,
            &self.index,
            "k8s_app_web_prod_uid-1_0",
            "container",
            "pod",
        )
    }

    pub fn running_container(&self) -> String {
        let id = self.container();
        self.docker.start_container(&id).unwrap();
        self.index.refresh(&id).unwrap();
        id
    }
}

/// RunPodSandbox for the host-network pod `name` in namespace `prod`
/// with UID `uid-<name>`, the kind of pod a node without CNI runs.
pub fn host_network_pod(name: &str) -> crate::api::v1::RunPodSandboxRequest {
    use crate::api::v1;
    v1::RunPodSandboxRequest {
        config: Some(v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: name.to_owned(),
                uid: format!("uid-{name}"),
                namespace: "prod".to_owned(),
                attempt: 0,
            }),
            linux: Some(v1::LinuxPodSandboxConfig {
                security_context: Some(v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(v1::NamespaceOption {
                        network: v1::NamespaceMode::Node as i32,
                        ..v1::NamespaceOption::default()
                    }),
                    ..v1::LinuxSandboxSecurityContext::default()
                }),
                ..v1::LinuxPodSandboxConfig::default()
            }),
            ..v1::PodSandboxConfig::default()
        }),
        ..v1::RunPodSandboxRequest::default()
    }
}

/// The sandbox calls over a fake dockerd holding the test images.
pub struct SandboxSetup {
    pub docker: Arc<FakeDocker>,
    pub index: Arc<Index>,
    pub service: SandboxService,
    /// Holds the root directory and the CNI directories of `config`.
    pub dir: tempfile::TempDir,
}

impl SandboxSetup {
    /// On a node without CNI.
    pub fn new() -> SandboxSetup {
        SandboxSetup::with_config(|_| {})
    }

    /// On a node whose configuration [`config`] makes and `edit` changes.
    pub fn with_config(edit: impl FnOnce(&mut SandboxSettings)) -> SandboxSetup {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        edit(&mut config);
        let docker = docker();
        let index = index(&docker);
        let service = sandboxes(&docker, &config, Arc::clone(&index));
        SandboxSetup {
            docker,
            index,
            service,
            dir,
        }
    }

    /// Runs the pod [`host_network_pod`] makes of `name`; returns its ID.
    pub fn run(&self, name: &str) -> String {
        let ctx = crate::grpc::CallContext::new("/runtime.v1.RuntimeService/RunPodSandbox", None);
        self.service
            .run_pod_sandbox(&ctx, &host_network_pod(name), None)
            .unwrap()
    }

    /// A created container `name` of sandbox `sandbox`, started if
    /// `running`; returns its ID.
    pub fn container(&self, sandbox: &str, name: &str, running: bool) -> String {
        let docker_name = format!("k8s_{name}_web_prod_uid-web_0");
        let id = add_container(
            &self.docker,
            &self.index,
            &docker_name,
            "container",
            sandbox,
        );
        if running {
            self.docker.start_container(&id).unwrap();
            self.index.refresh(&id).unwrap();
        }
        id
    }
}
