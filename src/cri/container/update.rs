//! UpdateContainerResources: change a container's CPU, memory and cpuset
//! limits in place with `POST /containers/{id}/update`, then tell the index
//! so ContainerStatus shows the new limits at once.
//!
//! The request is all or nothing. A setting Docker's update cannot apply
//! (see `resources`: a new OOM score adjustment, a per-container hugepage
//! limit, a cgroup file by name, removing a limit), Windows resources, and
//! runtime-specific annotations (dockshim defines none) are refused before
//! dockerd is asked, so nothing changes. This module must not build the
//! update body itself; `resources::update_resources_body` owns that.

use serde::Deserialize;

use super::resources::update_resources_body;
use super::service::{node_has_swap, ContainerError, ContainerService};
use super::ContainerConfigError;
use crate::cri::v1;

/// `POST /containers/{id}/update`'s answer.
#[derive(Debug, Deserialize)]
struct Updated {
    #[serde(rename = "Warnings", default)]
    warnings: Option<Vec<String>>,
}

impl ContainerService {
    /// UpdateContainerResources.
    pub fn update_container_resources(
        &self,
        request: &v1::UpdateContainerResourcesRequest,
    ) -> Result<(), ContainerError> {
        let id = &request.container_id;
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.clone() })?;
        if request.windows.is_some() {
            return Err(ContainerConfigError::invalid(
                "windows",
                "Windows resources do not apply to a Linux container",
            )
            .into());
        }
        if let Some(key) = request.annotations.keys().min() {
            return Err(ContainerConfigError::unsupported(
                format!("annotations[{key:?}]"),
                "dockshim has no runtime-specific update options",
            )
            .into());
        }
        let linux = request
            .linux
            .as_ref()
            .ok_or(ContainerError::Missing("linux"))?;
        let body = update_resources_body(linux, &entry.resources, node_has_swap())?;
        let updated = self
            .docker
            .post_json::<_, Updated>(&format!("/containers/{}/update", entry.id), &body);
        // Refreshed whatever dockerd answered: a failed update may still
        // have changed some cgroup files before it gave up.
        let refreshed = self.index.refresh(&entry.id);
        let updated = updated
            .map_err(|err| ContainerError::docker("update the container's resources", err))?;
        refreshed?;
        for warning in updated.warnings.unwrap_or_default() {
            log::warn!("container {}: dockerd: {warning}", entry.id);
        }
        log::info!("updated the resources of container {}", entry.id);
        Ok(())
    }
}
