//! UpdateContainerResources: change a container's CPU, memory, cpuset and
//! process limits in place with `POST /containers/{id}/update`, then its
//! OOM score adjustment, then tell the index so ContainerStatus shows the
//! new limits at once.
//!
//! Docker's update cannot change the OOM score adjustment, which the
//! kubelet recomputes when it resizes a Burstable pod's memory request in
//! place; so once dockerd applied the rest, the new value is written to
//! `/proc/<pid>/oom_score_adj` of every process of a running container. The
//! processes are those of the container's cgroup (`cgroup.procs`), found
//! from `/proc/<main pid>/cgroup`. That needs nothing but the kernel's
//! files and numbers the processes as dockshim's own PID namespace does,
//! the numbering `/proc` uses; `GET /containers/{id}/top` would instead
//! have dockerd run `ps` on the node and leave dockshim to find the PID
//! column in its output. The cgroup must be the container's own (its last
//! path element holds the container ID), so a main PID the kernel has since
//! given to another process is never written to. Each listed process's own
//! `cgroup` file is checked the same way by [`Host::write_oom_score_adj`],
//! which pins the process with a pidfd and opens both files beneath one
//! handle on `/proc/<pid>` before the pidfd confirms the process still
//! lives, so a PID that changed hands after the list was read is skipped
//! too. The list is read again after writing until it shows no process not
//! yet written (at most `MAX_PASSES` reads), so a process forked from one
//! not yet written is not missed; processes forked later inherit the value
//! from their parent. A process started by a later exec gets the value the
//! container was created with: runc gives every process it starts the value
//! of the container's configuration, which Docker cannot change.
//! ContainerStatus reports the main process's value.
//! Raising the value needs no privilege; lowering it needs
//! CAP_SYS_RESOURCE, and a write the kernel refuses is FAILED_PRECONDITION
//! naming oom_score_adj and the process.
//!
//! The request is all or nothing as far as it can be checked beforehand:
//! a setting Docker cannot apply (see `resources`: a per-container
//! hugepage limit, a cgroup file by name, removing a limit, a new OOM
//! score adjustment for a container that is not running), Windows
//! resources, and runtime-specific annotations (dockshim defines none) are
//! refused before dockerd is asked, so nothing changes. What can only fail
//! afterwards — a limit dockerd dropped with no more than a warning, an
//! OOM score adjustment the kernel refuses — fails the call with the rest
//! left applied. This module must not build the update body itself;
//! `resources::update_resources_body` owns that.

use std::collections::HashSet;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::create::drops_a_limit;
use super::error::ContainerError;
use super::resources::{oom_score_update, update_resources_body, OomScoreUpdate};
use super::service::ContainerService;
use super::ContainerConfigError;
use crate::api::v1;
use crate::host::Host;

/// Reads of a container's process list while giving its processes a new
/// OOM score adjustment; a container that forks faster than that is left
/// to inheritance.
const MAX_PASSES: usize = 4;

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
        let node_has_swap = self.host.has_swap();
        let body = update_resources_body(linux, &entry.resources, node_has_swap)?;
        let main_pid = i32::try_from(entry.pid)
            .ok()
            .filter(|pid| *pid > 0 && entry.is_running());
        let oom_score = oom_score_update(linux, &entry.resources, main_pid.is_some())?;
        let updated = self.docker.update_container(&entry.id, &body);
        // Refreshed whatever dockerd answered: a failed update may still
        // have changed some cgroup files before it gave up.
        let refreshed = self.index.refresh(&entry.id);
        let warnings = updated
            .map_err(|err| ContainerError::docker("update the container's resources", err))?;
        refreshed?;
        for warning in &warnings {
            log::warn!("container {}: dockerd: {warning}", entry.id);
        }
        if let Some(warning) = warnings
            .iter()
            .find(|warning| drops_a_limit(warning, node_has_swap))
        {
            return Err(ContainerError::LimitDroppedAtUpdate {
                id: entry.id.clone(),
                warning: warning.clone(),
            });
        }
        if let (OomScoreUpdate::Write(value), Some(pid)) = (oom_score, main_pid) {
            let written = set_oom_score_adj(self.host.as_ref(), &entry.id, pid, value)?;
            log::info!(
                "container {}: oom_score_adj {value} given to {written} processes",
                entry.id
            );
        }
        log::info!("updated the resources of container {}", entry.id);
        Ok(())
    }
}

/// Gives `value` as OOM score adjustment to every process of container
/// `id`, whose main process is `main_pid`; returns how many processes got
/// it. A container whose main process is gone, or whose main PID now
/// names a process in no cgroup of the container's, has none.
fn set_oom_score_adj(
    host: &dyn Host,
    id: &str,
    main_pid: i32,
    value: i32,
) -> Result<usize, ContainerError> {
    let fail = |process: Option<i32>, source| ContainerError::OomScoreAdj {
        id: id.to_owned(),
        value,
        process: process.and_then(|pid| u32::try_from(pid).ok()),
        source,
    };
    let cgroups = host
        .process_file(main_pid, "cgroup")
        .map(|membership| container_cgroups(&membership, id))
        .unwrap_or_default();
    if cgroups.is_empty() {
        return Ok(0);
    }
    let is_member = |membership: &str| !container_cgroups(membership, id).is_empty();
    let mut seen = HashSet::new();
    let mut written = 0;
    for pass in 0..MAX_PASSES {
        let listed = match cgroups
            .iter()
            .find_map(|cgroup| host.cgroup_procs(cgroup).transpose())
        {
            Some(listed) => listed.map_err(|err| fail(None, err))?,
            // The cgroup goes when the container ends.
            None if pass > 0 => break,
            None => {
                let missing = format!(
                    "none of the container's cgroups {cgroups:?} has a cgroup.procs under the cgroup mount"
                );
                return Err(fail(None, io::Error::new(io::ErrorKind::NotFound, missing)));
            }
        };
        let new: Vec<i32> = listed
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .filter(|pid| seen.insert(*pid))
            .collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            match host.write_oom_score_adj(pid, value, &is_member) {
                Ok(true) => written += 1,
                // The PID changed hands, or the process ended, since the
                // list was read.
                Ok(false) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(fail(Some(pid), err)),
            }
        }
    }
    Ok(written)
}

/// The directories, relative to the cgroup mount root, of the cgroups a
/// process is in as its `/proc/<pid>/cgroup` `membership` lists them
/// (`<hierarchy>:<controllers>:<path>`), keeping only those that are
/// container `id`'s own: their last path element holds the ID (`<id>`
/// with the cgroupfs driver, `docker-<id>.scope` with systemd's). v1
/// hierarchies come first, each under the directory named for its
/// controllers; named ones (`name=systemd`) are skipped, as they carry no
/// controller. A path leading outside dockshim's cgroup namespace (`..`)
/// is skipped too.
fn container_cgroups(membership: &str, id: &str) -> Vec<PathBuf> {
    membership
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let relative = Path::new(path).strip_prefix("/").ok()?;
            let inside = relative
                .components()
                .all(|part| matches!(part, Component::Normal(_)));
            let own = relative
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.contains(id));
            if !inside || !own || controllers.starts_with("name=") {
                return None;
            }
            Some(Path::new(controllers).join(relative))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::{Code, Status};
    use crate::host::RecordingHost;

    const ID: &str = "30e4293a3e95afbe0993a87e604a37de94a47c93bf8b24d4cb46dbcfd0fed268";

    fn v1_membership(id: &str) -> String {
        format!(
            "9:name=systemd:/docker/{id}\n8:pids:/kubepods/pod1/{id}\n\
             2:cpu,cpuacct:/kubepods/pod1/{id}\n0::/docker/{id}\n"
        )
    }

    /// A node whose processes `pids` are container `ID`'s, listed in its
    /// v1 pids cgroup as `listed`.
    fn v1_node(pids: &[i32], listed: &[i32]) -> RecordingHost {
        pids.iter()
            .fold(RecordingHost::default(), |host, pid| {
                host.with_file(*pid, "cgroup", &v1_membership(ID))
            })
            .with_cgroup(&format!("pids/kubepods/pod1/{ID}"), listed)
    }

    #[test]
    fn the_container_s_own_cgroups_are_found_from_the_membership_file() {
        assert_eq!(
            container_cgroups(&v1_membership(ID), ID),
            [
                PathBuf::from(format!("pids/kubepods/pod1/{ID}")),
                PathBuf::from(format!("cpu,cpuacct/kubepods/pod1/{ID}")),
                PathBuf::from(format!("docker/{ID}")),
            ]
        );
        let systemd = format!("0::/kubepods.slice/kubepods-pod1.slice/docker-{ID}.scope\n");
        assert_eq!(
            container_cgroups(&systemd, ID),
            [PathBuf::from(format!(
                "kubepods.slice/kubepods-pod1.slice/docker-{ID}.scope"
            ))]
        );
        let elsewhere = [
            "0::/user.slice/session-1.scope\n".to_owned(),
            format!("4:memory:/../../docker/{ID}\n"),
            format!("4:memory:/docker/{ID}/../other\n"),
            format!("0::/docker/{ID}/child-of-no-one\n"),
            "garbage\n".to_owned(),
        ];
        for membership in elsewhere {
            assert!(
                container_cgroups(&membership, ID).is_empty(),
                "{membership}"
            );
        }
    }

    #[test]
    fn every_process_of_the_container_gets_the_new_oom_score_adj() {
        // 102 is listed but ends before it is written to.
        let host = v1_node(&[100, 101], &[100, 101, 102]);
        assert_eq!(set_oom_score_adj(&host, ID, 100, 500).unwrap(), 2);
        assert_eq!(host.oom_score_adj_writes(), [(100, 500), (101, 500)]);
    }

    #[test]
    fn a_cgroup_v2_container_s_processes_are_found_too() {
        let scope = format!("system.slice/docker-{ID}.scope");
        let host = RecordingHost::default()
            .with_file(7, "cgroup", &format!("0::/{scope}\n"))
            .with_cgroup(&scope, &[7]);
        assert_eq!(set_oom_score_adj(&host, ID, 7, -5).unwrap(), 1);
        assert_eq!(host.oom_score_adj_writes(), [(7, -5)]);
    }

    #[test]
    fn a_main_pid_now_used_by_another_process_is_left_alone() {
        let host = RecordingHost::default()
            .with_file(100, "cgroup", "0::/user.slice/session-1.scope\n")
            .with_cgroup("user.slice/session-1.scope", &[100]);
        assert_eq!(set_oom_score_adj(&host, ID, 100, 500).unwrap(), 0);
        assert_eq!(set_oom_score_adj(&host, ID, 999, 500).unwrap(), 0);
        assert!(host.oom_score_adj_writes().is_empty());
    }

    #[test]
    fn a_listed_pid_given_to_another_process_since_is_left_alone() {
        // 101 was the container's when the list was read; the PID now
        // names a process of the host's.
        let host = v1_node(&[100], &[100, 101]).with_file(
            101,
            "cgroup",
            "0::/user.slice/session-1.scope\n",
        );
        assert_eq!(set_oom_score_adj(&host, ID, 100, 500).unwrap(), 1);
        assert_eq!(host.oom_score_adj_writes(), [(100, 500)]);
    }

    #[test]
    fn a_refused_write_names_oom_score_adj_and_the_process() {
        let mut host = v1_node(&[100, 101], &[100, 101]);
        host.unwritable.insert(101);
        let err = set_oom_score_adj(&host, ID, 100, 500).unwrap_err();
        let status = Status::from(err);
        assert_eq!(status.code, Code::FailedPrecondition);
        assert!(
            status.message.starts_with(&format!(
                "oom_score_adj: cannot give 500 to process 101 of container {ID}"
            )),
            "{}",
            status.message
        );
    }

    #[test]
    fn a_container_cgroup_that_cannot_be_found_is_an_error() {
        let host = RecordingHost::default().with_file(100, "cgroup", &v1_membership(ID));
        let err = set_oom_score_adj(&host, ID, 100, 500).unwrap_err();
        let status = Status::from(err);
        assert_eq!(status.code, Code::FailedPrecondition);
        assert!(
            status.message.starts_with(&format!(
                "oom_score_adj: cannot list the processes of container {ID}"
            )),
            "{}",
            status.message
        );
        assert!(host.oom_score_adj_writes().is_empty());
    }

    #[allow(clippy::unwrap_used, clippy::expect_used)]
    mod handler {
        use super::super::*;
        use crate::cri::testing::ContainerSetup;
        use crate::docker::fake::status;
        use crate::grpc::{Code, Status};

        fn request(id: &str) -> v1::UpdateContainerResourcesRequest {
            v1::UpdateContainerResourcesRequest {
                container_id: id.to_owned(),
                linux: Some(v1::LinuxContainerResources {
                    cpu_shares: 512,
                    ..v1::LinuxContainerResources::default()
                }),
                ..v1::UpdateContainerResourcesRequest::default()
            }
        }

        #[test]
        fn an_update_dockerd_refuses_keeps_its_code() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            setup
                .docker
                .fail("update_container", status(400, "Conflicting options"));
            let err = setup
                .service
                .update_container_resources(&request(&id))
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::InvalidArgument);
        }

        #[test]
        fn updating_an_unknown_container_is_not_found_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let err = setup
                .service
                .update_container_resources(&request("f00d"))
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::NotFound);
            assert!(setup.docker.calls_of("update_container").is_empty());
        }

        #[test]
        fn requests_docker_cannot_apply_are_refused_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            let windows = v1::UpdateContainerResourcesRequest {
                windows: Some(v1::WindowsContainerResources::default()),
                ..request(&id)
            };
            let annotated = v1::UpdateContainerResourcesRequest {
                annotations: [("io.kata.x".to_owned(), "1".to_owned())].into(),
                ..request(&id)
            };
            let no_linux = v1::UpdateContainerResourcesRequest {
                linux: None,
                ..request(&id)
            };
            let cases = [
                (windows, Code::InvalidArgument),
                (annotated, Code::Unimplemented),
                (no_linux, Code::InvalidArgument),
            ];
            for (request, code) in cases {
                let err = setup
                    .service
                    .update_container_resources(&request)
                    .unwrap_err();
                assert_eq!(Status::from(err).code, code, "{request:?}");
            }
            assert!(setup.docker.calls_of("update_container").is_empty());
        }

        #[test]
        fn a_new_oom_score_for_a_stopped_container_is_refused_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            let mut request = request(&id);
            if let Some(linux) = request.linux.as_mut() {
                linux.oom_score_adj = 500;
            }
            let err = setup
                .service
                .update_container_resources(&request)
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::Unimplemented);
            assert!(setup.docker.calls_of("update_container").is_empty());
        }

        #[test]
        fn a_limit_dockerd_dropped_at_update_fails_the_precondition() {
            let setup = ContainerSetup::new();
            let id = setup.running_container();
            setup.docker.set_update_warnings(vec![
                "Your kernel does not support CPU shares or the cgroup is not mounted. \
                 Shares discarded."
                    .to_owned(),
            ]);
            let err = setup
                .service
                .update_container_resources(&request(&id))
                .unwrap_err();
            assert!(
                matches!(err, ContainerError::LimitDroppedAtUpdate { .. }),
                "{err:?}"
            );
            assert_eq!(Status::from(err).code, Code::FailedPrecondition);
        }

        #[test]
        fn an_update_dockerd_cannot_answer_is_unavailable() {
            let setup = ContainerSetup::new();
            let id = setup.running_container();
            setup
                .docker
                .fail("update_container", crate::docker::fake::refused());
            let err = setup
                .service
                .update_container_resources(&request(&id))
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::Unavailable);
        }
    }
}
