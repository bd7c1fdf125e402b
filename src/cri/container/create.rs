//! CreateContainer: check that the sandbox and the image exist, turn the
//! configuration into a Docker create body, create the container under its
//! Kubernetes name and tell the index. Nothing is started here.

use std::path::Path;

use serde::Deserialize;

use super::service::{node_has_swap, ContainerError, ContainerService, NodeMounts};
use super::{container_create_body, ContainerOptions};
use crate::cri::naming;
use crate::cri::sandbox::security::NodeSeccompProfiles;
use crate::cri::v1;
use crate::docker::{path_with_query, ImageInspect};
use crate::logs::validate_log_path;

/// `POST /containers/create`'s answer.
#[derive(Debug, Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
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
        let options = ContainerOptions {
            sandbox_id: &sandbox.id,
            image,
            log_path: &log_path,
            cgroup_driver: self.cgroup_driver()?,
            seccomp_profiles: &NodeSeccompProfiles,
            host_mounts: &NodeMounts,
            node_has_swap: node_has_swap(),
        };
        let body = container_create_body(config, sandbox_config, &options)?;
        let path = path_with_query("/containers/create", &[("name", &name)]);
        let created: Created = self
            .docker
            .post_json(&path, &body)
            .map_err(|err| ContainerError::docker("create the container", err))?;
        self.index.refresh(&created.id)?;
        log::info!("created container {} ({name})", created.id);
        Ok(created.id)
    }

    /// NOT_FOUND naming `image` unless dockerd has it.
    fn check_image(&self, image: &str) -> Result<(), ContainerError> {
        match self
            .docker
            .get_json::<ImageInspect>(&format!("/images/{image}/json"))
        {
            Ok(_) => Ok(()),
            Err(err) if err.api_status() == Some(404) => Err(ContainerError::ImageNotFound {
                image: image.to_owned(),
            }),
            Err(err) => Err(ContainerError::docker("inspect the container's image", err)),
        }
    }
}
