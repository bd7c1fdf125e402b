//! ListContainers and ContainerStatus, answered from the state index; the
//! names of a container's image come from a short-lived cache
//! (`image_names`), so a warm call makes no Docker call. ListContainers'
//! encoded answers are kept while the index does not change
//! (`crate::cri::answers`).

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use super::error::ContainerError;
use super::service::ContainerService;
use super::{container_status, StatusImage};
use crate::api::v1;
use crate::codec::json::object;
use crate::cri::error::NamingError;
use crate::host::Host;
use crate::index::{ContainerFilter, CriState, Entry};

impl ContainerService {
    /// ListContainers' answer, encoded: the one kept for this filter while
    /// the index has not changed since it was built.
    pub fn list_containers_answer(
        &self,
        filter: Option<&v1::ContainerFilter>,
    ) -> Result<Bytes, ContainerError> {
        let generation = self.index.generation();
        self.answers.answer(filter, generation, || {
            let containers = self.list_containers(filter)?;
            Ok(v1::ListContainersResponse { containers })
        })
    }

    /// The kept ListContainers answer for this filter, if the index has not
    /// changed since it was built and neither is being changed or read for
    /// another answer this moment: for a caller that must not wait.
    pub fn list_containers_at_hand(&self, filter: Option<&v1::ContainerFilter>) -> Option<Bytes> {
        let generation = self.index.generation_at_hand()?;
        self.answers.at_hand(filter, generation)
    }

    /// ListContainers.
    pub fn list_containers(
        &self,
        filter: Option<&v1::ContainerFilter>,
    ) -> Result<Vec<v1::Container>, ContainerError> {
        let filter = filter.map(index_filter).unwrap_or_default();
        let entries = self.index.containers(&filter)?;
        // Containers whose Docker name is not a Kubernetes one were not
        // made through the CRI and are left out.
        let containers = entries
            .iter()
            .filter_map(|entry| {
                let status = container_status(entry, &StatusImage::default()).ok()?;
                Some(v1::Container {
                    id: status.id,
                    pod_sandbox_id: entry.sandbox_id.clone(),
                    metadata: status.metadata,
                    image: status.image,
                    image_ref: status.image_ref,
                    state: status.state,
                    created_at: status.created_at,
                    labels: status.labels,
                    annotations: status.annotations,
                    image_id: status.image_id,
                })
            })
            .collect();
        Ok(containers)
    }

    /// ContainerStatus. `verbose` adds the `info` map: the PID, the
    /// sandbox and image, and the container's configuration as dockerd
    /// holds it (`Config` and `HostConfig` of its inspect answer) — the
    /// one case where ContainerStatus asks dockerd.
    pub fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<v1::ContainerStatusResponse, ContainerError> {
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.to_owned() })?;
        let status = self.status_of(&entry)?;
        let info = if verbose {
            let inspect = self
                .docker
                .inspect_container_json(&entry.id)
                .map_err(|err| ContainerError::docker("inspect the container", err))?
                .ok_or_else(|| ContainerError::NotFound { id: id.to_owned() })?;
            let info = object(vec![
                ("pid", Value::from(entry.pid)),
                ("sandboxID", Value::from(entry.sandbox_id.as_str())),
                ("image", Value::from(entry.image.as_str())),
                ("config", Value::from(inspect.get("Config").cloned())),
                (
                    "hostConfig",
                    Value::from(inspect.get("HostConfig").cloned()),
                ),
            ]);
            HashMap::from([("info".to_owned(), info.to_string())])
        } else {
            HashMap::new()
        };
        Ok(v1::ContainerStatusResponse {
            status: Some(status),
            info,
        })
    }

    /// The CRI status of an indexed container, with its image's names.
    pub(crate) fn status_of(&self, entry: &Entry) -> Result<v1::ContainerStatus, NamingError> {
        let names = self.image_names.get(self.docker.as_ref(), &entry.image_id);
        let image = StatusImage {
            tag: &names.tag,
            repo_digest: &names.repo_digest,
        };
        let mut status = container_status(entry, &image)?;
        // An update may have given the processes another OOM score than
        // the one Docker records; the main process's own is the truth.
        if entry.is_running() {
            let live = live_oom_score_adj(self.host.as_ref(), entry.pid);
            let linux = status
                .resources
                .as_mut()
                .and_then(|resources| resources.linux.as_mut());
            if let (Some(live), Some(linux)) = (live, linux) {
                linux.oom_score_adj = live;
            }
        }
        Ok(status)
    }
}

/// The OOM score adjustment of process `pid`, if it can be read.
fn live_oom_score_adj(host: &dyn Host, pid: i64) -> Option<i64> {
    let pid = i32::try_from(pid).ok().filter(|pid| *pid > 0)?;
    host.process_file(pid, "oom_score_adj")?.trim().parse().ok()
}

/// The index filter for a CRI `ContainerFilter`; empty fields filter
/// nothing.
fn index_filter(filter: &v1::ContainerFilter) -> ContainerFilter {
    let non_empty = |text: &str| Some(text.to_owned()).filter(|text| !text.is_empty());
    ContainerFilter {
        id_prefix: non_empty(&filter.id),
        state: filter.state.as_ref().map(|state| cri_state(state.state)),
        sandbox_id: non_empty(&filter.pod_sandbox_id),
        labels: filter.label_selector.clone(),
    }
}

fn cri_state(state: i32) -> CriState {
    match v1::ContainerState::try_from(state) {
        Ok(v1::ContainerState::ContainerCreated) => CriState::Created,
        Ok(v1::ContainerState::ContainerRunning) => CriState::Running,
        Ok(v1::ContainerState::ContainerExited) => CriState::Exited,
        _ => CriState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cri_filter_fields_filter_nothing_and_states_map() {
        let filter = index_filter(&v1::ContainerFilter {
            id: String::new(),
            state: Some(v1::ContainerStateValue {
                state: v1::ContainerState::ContainerRunning as i32,
            }),
            pod_sandbox_id: "abc".to_owned(),
            label_selector: HashMap::from([("app".to_owned(), "web".to_owned())]),
        });
        assert_eq!(filter.id_prefix, None);
        assert_eq!(filter.state, Some(CriState::Running));
        assert_eq!(filter.sandbox_id.as_deref(), Some("abc"));
        assert_eq!(filter.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            cri_state(v1::ContainerState::ContainerExited as i32),
            CriState::Exited
        );
        assert_eq!(cri_state(99), CriState::Unknown);
    }

    #[allow(clippy::unwrap_used, clippy::expect_used)]
    mod handler {
        use crate::cri::testing::ContainerSetup;
        use crate::docker::fake::refused;
        use crate::docker::DockerApi;
        use crate::grpc::{Code, Status};
        use crate::host::RecordingHost;

        fn listed(answer: &bytes::Bytes) -> Vec<crate::api::v1::Container> {
            let response: crate::api::v1::ListContainersResponse =
                prost::Message::decode(answer.clone()).unwrap();
            response.containers
        }

        const CREATED: i32 = crate::api::v1::ContainerState::ContainerCreated as i32;
        const RUNNING: i32 = crate::api::v1::ContainerState::ContainerRunning as i32;

        #[test]
        fn a_repeated_list_is_the_kept_answer_until_a_container_changes() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            let first = setup.service.list_containers_answer(None).unwrap();
            let again = setup.service.list_containers_answer(None).unwrap();
            assert_eq!(again.as_ptr(), first.as_ptr());
            assert_eq!(listed(&first)[0].state, CREATED);

            setup.docker.start_container(&id).unwrap();
            setup.index.refresh(&id).unwrap();
            assert_eq!(setup.service.list_containers_at_hand(None), None);
            let after = setup.service.list_containers_answer(None).unwrap();
            assert_eq!(listed(&after)[0].state, RUNNING);
            let at_hand = setup.service.list_containers_at_hand(None).unwrap();
            assert_eq!(at_hand.as_ptr(), after.as_ptr());
            assert_eq!(listed(&after), setup.service.list_containers(None).unwrap());
        }

        #[test]
        fn verbose_status_of_a_container_dockerd_lost_is_not_found() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            setup.docker.remove_container(&id).unwrap();
            let err = setup.service.container_status(&id, true).unwrap_err();
            assert_eq!(Status::from(err).code, Code::NotFound);
        }

        #[test]
        fn verbose_status_dockerd_cannot_answer_is_unavailable() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            setup.docker.fail("inspect_container_json", refused());
            let err = setup.service.container_status(&id, true).unwrap_err();
            assert_eq!(Status::from(err).code, Code::Unavailable);
        }

        #[test]
        fn plain_status_asks_dockerd_only_for_the_image_names() {
            let setup = ContainerSetup::new();
            let id = setup.running_container();
            let before = setup.docker.calls().len();
            let status = setup.service.container_status(&id, false).unwrap();
            assert!(status.info.is_empty());
            let asked: Vec<String> = setup.docker.calls().split_off(before);
            assert!(
                asked.iter().all(|call| call.starts_with("inspect_image ")),
                "{asked:?}"
            );
        }

        #[test]
        fn a_running_container_reports_its_main_process_s_own_oom_score_adj() {
            let main_pid = i32::try_from(std::process::id()).unwrap();
            let host = RecordingHost::default().with_file(main_pid, "oom_score_adj", "-997\n");
            let setup = ContainerSetup::with_host(host);
            let id = setup.running_container();
            let status = setup.service.container_status(&id, false).unwrap();
            let linux = status.status.unwrap().resources.unwrap().linux.unwrap();
            assert_eq!(linux.oom_score_adj, -997);
        }

        #[test]
        fn a_stopped_container_s_oom_score_adj_is_not_read_from_any_process() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            setup.service.container_status(&id, false).unwrap();
            assert!(setup.host.reads().is_empty());
        }

        fn code(err: crate::cri::container::ContainerError) -> Code {
            Status::from(err).code
        }

        #[test]
        fn the_status_of_an_unknown_or_empty_id_is_refused() {
            let setup = ContainerSetup::new();
            let err = setup.service.container_status("f00d", false).unwrap_err();
            assert_eq!(code(err), Code::NotFound);
            let err = setup.service.container_status("", false).unwrap_err();
            assert_eq!(code(err), Code::InvalidArgument);
        }

        #[test]
        fn a_container_not_made_through_the_cri_has_no_status_and_is_not_listed() {
            let setup = ContainerSetup::new();
            let id = crate::cri::testing::add_container(
                &setup.docker,
                &setup.index,
                "hand-made",
                "container",
                "pod",
            );
            let err = setup.service.container_status(&id, false).unwrap_err();
            assert_eq!(code(err), Code::NotFound);
            assert!(setup.service.list_containers(None).unwrap().is_empty());
        }

        #[test]
        fn a_list_applies_state_sandbox_and_label_filters_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let created = setup.container();
            let running = crate::cri::testing::add_container(
                &setup.docker,
                &setup.index,
                "k8s_db_web_prod_uid-1_0",
                "container",
                "other-pod",
            );
            setup.docker.edit_container(&running, |container| {
                container
                    .config
                    .labels
                    .insert("tier".to_owned(), "db".to_owned());
            });
            setup.docker.start_container(&running).unwrap();
            setup.index.refresh(&running).unwrap();
            let before = setup.docker.calls().len();
            let ids = |filter: Option<&crate::api::v1::ContainerFilter>| -> Vec<String> {
                let mut ids: Vec<String> = setup
                    .service
                    .list_containers(filter)
                    .unwrap()
                    .into_iter()
                    .map(|container| container.id)
                    .collect();
                ids.sort();
                ids
            };
            assert_eq!(ids(None), [created.clone(), running.clone()]);
            let running_only = crate::api::v1::ContainerFilter {
                state: Some(crate::api::v1::ContainerStateValue {
                    state: crate::api::v1::ContainerState::ContainerRunning as i32,
                }),
                ..crate::api::v1::ContainerFilter::default()
            };
            assert_eq!(ids(Some(&running_only)), std::slice::from_ref(&running));
            let of_pod = crate::api::v1::ContainerFilter {
                pod_sandbox_id: "pod".to_owned(),
                ..crate::api::v1::ContainerFilter::default()
            };
            assert_eq!(ids(Some(&of_pod)), [created]);
            let labelled = crate::api::v1::ContainerFilter {
                label_selector: [("tier".to_owned(), "db".to_owned())].into(),
                ..crate::api::v1::ContainerFilter::default()
            };
            assert_eq!(ids(Some(&labelled)), [running]);
            assert_eq!(setup.docker.calls().len(), before);
        }
    }
}
