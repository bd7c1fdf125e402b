//! CreateContainer: check that the sandbox and the image exist, turn the
//! configuration into a Docker create body, create the container under its
//! Kubernetes name and tell the index. Nothing is started here.
//!
//! A container runs with its sandbox's Docker runtime, which the index read
//! from the sandbox container itself (`HostConfig.Runtime`), so the pod's
//! RuntimeClass holds across dockshim restarts without any state of
//! dockshim's own.
//!
//! dockerd answers a create with warnings as well as the ID. Each is
//! logged; and since dockerd drops a limit the kernel cannot enforce (no
//! pids cgroup, no swap accounting, ...) and says so only there, a
//! warning that a limit was dropped ([`drops_a_limit`]) removes the new
//! container again and fails the call with FAILED_PRECONDITION quoting
//! dockerd.

use std::path::Path;

use super::error::ContainerError;
use super::service::{ContainerService, NodeMounts};
use super::{container_create_body, ContainerOptions};
use crate::api::v1;
use crate::cri::sandbox::security::NodeSeccompProfiles;
use crate::cri::{cgroup_driver, naming};
use crate::docker::CreateOutcome;
use crate::failpoint::{self, FailPoint};
use crate::logs::validate_log_path;

/// The word dockerd ends each warning about a setting it dropped with
/// ("... PIDs limit discarded.").
const DISCARDED: &str = "discarded";
/// The one such warning worded otherwise: without swap accounting dockerd
/// gives a memory-limited container unlimited swap and says "Your kernel
/// does not support swap limit capabilities ... Memory limited without
/// swap."
const SWAP_LIMIT_UNSUPPORTED: &str = "swap limit capabilities";

/// Whether a warning of dockerd's (create or update) says that it dropped
/// a limit it was asked for. Dropped swap limits matter only on a node
/// with swap: without any, the container cannot swap anyway.
pub(super) fn drops_a_limit(warning: &str, node_has_swap: bool) -> bool {
    let warning = warning.to_ascii_lowercase();
    warning.contains(DISCARDED) || (node_has_swap && warning.contains(SWAP_LIMIT_UNSUPPORTED))
}

impl ContainerService {
    /// CreateContainer; returns the new container's ID.
    pub fn create_container(
        &self,
        request: &v1::CreateContainerRequest,
    ) -> Result<String, ContainerError> {
        let config = request
            .config
            .as_ref()
            .ok_or(ContainerError::Missing("config"))?;
        let sandbox_config = request
            .sandbox_config
            .as_ref()
            .ok_or(ContainerError::Missing("sandbox_config"))?;
        let metadata = config
            .metadata
            .as_ref()
            .ok_or(ContainerError::Missing("config.metadata"))?;
        let sandbox_metadata = sandbox_config
            .metadata
            .as_ref()
            .ok_or(ContainerError::Missing("sandbox_config.metadata"))?;
        let name = naming::container_name(metadata, sandbox_metadata)?;
        let sandbox = self
            .index
            .sandbox(&request.pod_sandbox_id)?
            .ok_or_else(|| ContainerError::SandboxNotFound {
                id: request.pod_sandbox_id.clone(),
            })?;
        let image = config
            .image
            .as_ref()
            .map(|spec| spec.image.as_str())
            .filter(|image| !image.is_empty())
            .ok_or(ContainerError::Missing("config.image.image"))?;
        self.check_image(image)?;
        let log_path = if sandbox_config.log_directory.is_empty() || config.log_path.is_empty() {
            String::new()
        } else {
            validate_log_path(
                Path::new(&sandbox_config.log_directory),
                Path::new(&config.log_path),
            )?
            .to_string_lossy()
            .into_owned()
        };
        let engine = self.engine()?;
        let node_has_swap = self.host.has_swap();
        let options = ContainerOptions {
            sandbox_id: &sandbox.id,
            image,
            log_path: &log_path,
            cgroup_driver: cgroup_driver(&engine),
            seccomp_profiles: &NodeSeccompProfiles,
            host_mounts: &NodeMounts(self.host.as_ref()),
            node_has_swap,
            node_has_apparmor: engine.apparmor,
            runtime: &sandbox.runtime,
            engine: &engine,
        };
        let body = container_create_body(config, sandbox_config, &options)?;
        let created = match self.docker.create_container(&name, &body) {
            Ok(CreateOutcome::Created(created)) => created,
            Ok(CreateOutcome::NameInUse(err)) | Err(err) => {
                return Err(ContainerError::docker("create the container", err))
            }
        };
        failpoint::reached(FailPoint::CreateContainerCreated);
        for warning in &created.warnings {
            log::warn!("container {}: dockerd: {warning}", created.id);
        }
        if let Some(warning) = created
            .warnings
            .iter()
            .find(|warning| drops_a_limit(warning, node_has_swap))
        {
            return Err(self.remove_after_dropped_limit(&created.id, warning));
        }
        self.index.refresh(&created.id)?;
        failpoint::reached(FailPoint::CreateContainerReady);
        log::info!("created container {} ({name})", created.id);
        Ok(created.id)
    }

    /// Removes the container `id` dockerd just created without a limit it
    /// was asked for, and says so.
    fn remove_after_dropped_limit(&self, id: &str, warning: &str) -> ContainerError {
        let cleanup = self.docker.remove_container(id).err();
        if cleanup.is_none() {
            self.index.forget(id);
        }
        ContainerError::LimitDroppedAtCreate {
            id: id.to_owned(),
            warning: warning.to_owned(),
            cleanup,
        }
    }

    /// NOT_FOUND naming `image` unless dockerd has it.
    fn check_image(&self, image: &str) -> Result<(), ContainerError> {
        match self.docker.inspect_image(image) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ContainerError::ImageNotFound {
                image: image.to_owned(),
            }),
            Err(err) => Err(ContainerError::docker("inspect the container's image", err)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Warnings dockerd 20.10 gives on create and update (API 1.41).
    const DROPPED_LIMITS: [&str; 6] = [
        "Your kernel does not support memory limit capabilities or the cgroup is not mounted. \
         Limitation discarded.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. \
         PIDs limit discarded.",
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        "Your kernel does not support memory swappiness capabilities or the cgroup is not \
         mounted. Memory swappiness discarded.",
    ];
    const SWAP_DROPPED: &str = "Your kernel does not support swap limit capabilities or the \
                                cgroup is not mounted. Memory limited without swap.";
    const HARMLESS: [&str; 2] = [
        "OOM killer is disabled for the container, but no memory limit is set, this can result \
         in the system running out of resources.",
        "IPv4 forwarding is disabled. Networking will not work.",
    ];

    #[test]
    fn warnings_of_a_dropped_limit_are_told_from_harmless_ones() {
        for node_has_swap in [false, true] {
            for warning in DROPPED_LIMITS {
                assert!(drops_a_limit(warning, node_has_swap), "{warning}");
            }
            for warning in HARMLESS {
                assert!(!drops_a_limit(warning, node_has_swap), "{warning}");
            }
        }
    }

    mod handler {
        use std::sync::Arc;

        use super::super::*;
        use crate::cri::testing::{self, add_container, BUSYBOX_IMAGE};
        use crate::docker::fake::{refused, status, FakeDocker};
        use crate::grpc::{Code, Status};
        use crate::host::RecordingHost;
        use crate::index::Index;

        struct Setup {
            docker: Arc<FakeDocker>,
            index: Arc<Index>,
            service: ContainerService,
            sandbox: String,
            _dir: tempfile::TempDir,
        }

        fn setup() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let docker = testing::docker();
            let index = testing::index(&docker);
            let config = testing::config(dir.path());
            let service = testing::containers(
                &docker,
                &config,
                Arc::clone(&index),
                Arc::new(RecordingHost::default()),
            );
            let sandbox = add_container(&docker, &index, "k8s_POD", "podsandbox", "");
            Setup {
                docker,
                index,
                service,
                sandbox,
                _dir: dir,
            }
        }

        fn request(sandbox: &str, image: &str) -> v1::CreateContainerRequest {
            v1::CreateContainerRequest {
                pod_sandbox_id: sandbox.to_owned(),
                config: Some(v1::ContainerConfig {
                    metadata: Some(v1::ContainerMetadata {
                        name: "app".to_owned(),
                        attempt: 0,
                    }),
                    image: Some(v1::ImageSpec {
                        image: image.to_owned(),
                        ..v1::ImageSpec::default()
                    }),
                    ..v1::ContainerConfig::default()
                }),
                sandbox_config: Some(v1::PodSandboxConfig {
                    metadata: Some(v1::PodSandboxMetadata {
                        name: "web".to_owned(),
                        uid: "uid-1".to_owned(),
                        namespace: "prod".to_owned(),
                        attempt: 0,
                    }),
                    ..v1::PodSandboxConfig::default()
                }),
            }
        }

        fn code(err: ContainerError) -> Code {
            Status::from(err).code
        }

        #[test]
        fn a_created_container_is_known_to_the_index_at_once() {
            let setup = setup();
            let id = setup
                .service
                .create_container(&request(&setup.sandbox, BUSYBOX_IMAGE))
                .unwrap();
            let entry = setup.index.container(&id).unwrap().unwrap();
            assert_eq!(entry.sandbox_id, setup.sandbox);
        }

        #[test]
        fn a_failed_create_leaves_nothing_behind() {
            for err in [status(500, "no space left on device"), refused()] {
                let setup = setup();
                setup.docker.fail("create_container", err);
                let request = request(&setup.sandbox, BUSYBOX_IMAGE);
                setup.service.create_container(&request).unwrap_err();
                assert_eq!(
                    setup.docker.container_ids(),
                    std::slice::from_ref(&setup.sandbox)
                );
                assert!(setup
                    .index
                    .containers_of(&setup.sandbox)
                    .unwrap()
                    .is_empty());
            }
        }

        #[test]
        fn a_name_in_use_fails_the_precondition() {
            let setup = setup();
            let request = request(&setup.sandbox, BUSYBOX_IMAGE);
            setup.service.create_container(&request).unwrap();
            let err = setup.service.create_container(&request).unwrap_err();
            assert_eq!(code(err), Code::FailedPrecondition);
        }

        #[test]
        fn a_missing_image_is_not_found_before_any_create() {
            let setup = setup();
            let request = request(&setup.sandbox, "127.0.0.1:5000/none:v1");
            let err = setup.service.create_container(&request).unwrap_err();
            assert_eq!(code(err), Code::NotFound);
            assert_eq!(
                setup.docker.container_ids(),
                std::slice::from_ref(&setup.sandbox)
            );
        }

        #[test]
        fn a_container_created_without_a_limit_is_removed_again() {
            let setup = setup();
            setup
                .docker
                .set_create_warnings(vec![super::DROPPED_LIMITS[1].to_owned()]);
            let request = request(&setup.sandbox, BUSYBOX_IMAGE);
            let err = setup.service.create_container(&request).unwrap_err();
            assert!(
                matches!(
                    err,
                    ContainerError::LimitDroppedAtCreate { cleanup: None, .. }
                ),
                "{err:?}"
            );
            assert_eq!(code(err), Code::FailedPrecondition);
            assert_eq!(
                setup.docker.container_ids(),
                std::slice::from_ref(&setup.sandbox)
            );
        }

        #[test]
        fn a_missing_sandbox_is_not_found_without_a_docker_call() {
            let setup = setup();
            let before = setup.docker.calls().len();
            let err = setup
                .service
                .create_container(&request("f00d", BUSYBOX_IMAGE))
                .unwrap_err();
            assert_eq!(code(err), Code::NotFound);
            assert_eq!(setup.docker.calls().len(), before);
        }
    }

    #[test]
    fn a_dropped_swap_limit_counts_only_on_a_node_with_swap() {
        assert!(drops_a_limit(SWAP_DROPPED, true));
        assert!(!drops_a_limit(SWAP_DROPPED, false));
    }

    mod refusals {
        use super::super::*;
        use crate::cri::testing::{add_container, ContainerSetup, BUSYBOX_IMAGE};
        use crate::docker::fake::{refused, status};
        use crate::grpc::{Code, Status};

        /// A sandbox in `setup` and a request for container `app` in it.
        fn request(setup: &ContainerSetup) -> v1::CreateContainerRequest {
            let sandbox = add_container(
                &setup.docker,
                &setup.index,
                "k8s_POD_web_prod_uid-1_0",
                "podsandbox",
                "",
            );
            v1::CreateContainerRequest {
                pod_sandbox_id: sandbox,
                config: Some(v1::ContainerConfig {
                    metadata: Some(v1::ContainerMetadata {
                        name: "app".to_owned(),
                        attempt: 0,
                    }),
                    image: Some(v1::ImageSpec {
                        image: BUSYBOX_IMAGE.to_owned(),
                        ..v1::ImageSpec::default()
                    }),
                    ..v1::ContainerConfig::default()
                }),
                sandbox_config: Some(v1::PodSandboxConfig {
                    metadata: Some(v1::PodSandboxMetadata {
                        name: "web".to_owned(),
                        uid: "uid-1".to_owned(),
                        namespace: "prod".to_owned(),
                        attempt: 0,
                    }),
                    ..v1::PodSandboxConfig::default()
                }),
            }
        }

        fn code(err: ContainerError) -> Code {
            Status::from(err).code
        }

        #[test]
        fn a_request_missing_a_part_is_an_invalid_argument_without_a_create() {
            let setup = ContainerSetup::new();
            let whole = request(&setup);
            let whole_sandbox = whole.pod_sandbox_id.clone();
            let mut no_config = whole.clone();
            no_config.config = None;
            let mut no_sandbox_config = whole.clone();
            no_sandbox_config.sandbox_config = None;
            let mut no_image = whole;
            if let Some(config) = no_image.config.as_mut() {
                config.image = None;
            }
            for request in [no_config, no_sandbox_config, no_image] {
                let err = setup.service.create_container(&request).unwrap_err();
                assert_eq!(code(err), Code::InvalidArgument, "{request:?}");
            }
            assert_eq!(setup.docker.container_ids(), [whole_sandbox]);
        }

        #[test]
        fn a_log_path_leaving_the_log_directory_is_refused_before_any_create() {
            let setup = ContainerSetup::new();
            let mut request = request(&setup);
            if let Some(config) = request.sandbox_config.as_mut() {
                config.log_directory = "/var/log/pods/prod_web_uid-1".to_owned();
            }
            if let Some(config) = request.config.as_mut() {
                config.log_path = "../../../etc/passwd".to_owned();
            }
            let err = setup.service.create_container(&request).unwrap_err();
            assert_eq!(code(err), Code::InvalidArgument);
            assert_eq!(setup.docker.container_ids(), [request.pod_sandbox_id]);
        }

        #[test]
        fn an_image_check_dockerd_cannot_answer_is_unavailable_without_a_create() {
            let setup = ContainerSetup::new();
            let request = request(&setup);
            setup.docker.fail("inspect_image", refused());
            let err = setup.service.create_container(&request).unwrap_err();
            assert_eq!(code(err), Code::Unavailable);
            assert_eq!(setup.docker.container_ids(), [request.pod_sandbox_id]);
        }

        #[test]
        fn a_container_without_a_limit_that_cannot_be_removed_says_so_and_stays_known() {
            let setup = ContainerSetup::new();
            let request = request(&setup);
            setup
                .docker
                .set_create_warnings(vec![super::DROPPED_LIMITS[0].to_owned()]);
            setup
                .docker
                .fail("remove_container", status(500, "device or resource busy"));
            let err = setup.service.create_container(&request).unwrap_err();
            let ContainerError::LimitDroppedAtCreate {
                id,
                cleanup: Some(_),
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert!(setup.docker.container(id).is_some());
            assert!(err.to_string().contains("device or resource busy"), "{err}");
            assert_eq!(code(err), Code::FailedPrecondition);
        }
    }
}
