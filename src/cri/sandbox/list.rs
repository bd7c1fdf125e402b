//! ListPodSandbox, from the state index and the checkpoints (for the
//! runtime handler), plus the sandboxes only a checkpoint remembers (their
//! container was removed behind dockshim's back, or dockshim died before
//! removing the checkpoint): those are listed NOTREADY with the name,
//! namespace and UID the checkpoint holds, as PodSandboxStatus reports
//! them, so the kubelet stops and removes them, which tears their network
//! down.

use std::collections::{BTreeMap, HashSet};

use super::error::SandboxError;
use super::service::SandboxService;
use super::status::{
    annotations_of, checkpoint_metadata, labels_of, metadata_of, runtime_handler_of, sandbox_state,
};
use crate::api::v1;
use crate::index::SandboxFilter;

impl SandboxService {
    /// ListPodSandbox with the CRI `filter`.
    pub fn list_pod_sandbox(
        &self,
        filter: Option<&v1::PodSandboxFilter>,
    ) -> Result<Vec<v1::PodSandbox>, SandboxError> {
        let filter = sandbox_filter(filter);
        let mut items: Vec<v1::PodSandbox> = self
            .index
            .sandboxes(&filter)?
            .iter()
            .filter_map(|entry| {
                Some(v1::PodSandbox {
                    id: entry.id.clone(),
                    metadata: Some(metadata_of(entry)?),
                    state: sandbox_state(entry) as i32,
                    created_at: entry.created_ns,
                    labels: labels_of(entry),
                    annotations: annotations_of(entry),
                    runtime_handler: runtime_handler_of(self.checkpoint_of(&entry.id).as_ref()),
                })
            })
            .collect();
        // A checkpoint-only sandbox has no labels and is never ready.
        if filter.ready != Some(true) && filter.labels.is_empty() {
            items.extend(self.checkpoint_only(filter.id_prefix.as_deref())?);
        }
        Ok(items)
    }

    fn checkpoint_only(
        &self,
        id_prefix: Option<&str>,
    ) -> Result<Vec<v1::PodSandbox>, SandboxError> {
        let known: HashSet<String> = self
            .index
            .sandboxes(&SandboxFilter::default())?
            .iter()
            .map(|entry| entry.id.clone())
            .collect();
        let mut items = Vec::new();
        for id in self.checkpoints.list()? {
            if known.contains(&id) || !id.starts_with(id_prefix.unwrap_or_default()) {
                continue;
            }
            let Some(checkpoint) = self.checkpoint_of(&id) else {
                continue;
            };
            items.push(v1::PodSandbox {
                id,
                metadata: Some(checkpoint_metadata(&checkpoint)),
                state: v1::PodSandboxState::SandboxNotready as i32,
                runtime_handler: runtime_handler_of(Some(&checkpoint)),
                ..v1::PodSandbox::default()
            });
        }
        Ok(items)
    }
}

/// The index filter for a CRI filter; empty fields filter nothing.
fn sandbox_filter(filter: Option<&v1::PodSandboxFilter>) -> SandboxFilter {
    let Some(filter) = filter else {
        return SandboxFilter::default();
    };
    SandboxFilter {
        id_prefix: (!filter.id.is_empty()).then(|| filter.id.clone()),
        ready: filter
            .state
            .as_ref()
            .map(|state| state.state == v1::PodSandboxState::SandboxReady as i32),
        labels: filter
            .label_selector
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cri_filter_fields_filter_nothing() {
        let filter = sandbox_filter(Some(&v1::PodSandboxFilter::default()));
        assert_eq!(filter, SandboxFilter::default());
    }

    #[test]
    fn cri_filter_fields_become_index_filters() {
        let filter = sandbox_filter(Some(&v1::PodSandboxFilter {
            id: "abc".to_owned(),
            state: Some(v1::PodSandboxStateValue {
                state: v1::PodSandboxState::SandboxNotready as i32,
            }),
            label_selector: [("app".to_owned(), "web".to_owned())].into(),
        }));
        assert_eq!(filter.id_prefix.as_deref(), Some("abc"));
        assert_eq!(filter.ready, Some(false));
        assert_eq!(filter.labels.get("app").map(String::as_str), Some("web"));
    }

    #[allow(clippy::unwrap_used, clippy::expect_used)]
    mod handler {
        use crate::api::v1;
        use crate::cri::testing::SandboxSetup;
        use crate::docker::DockerApi;

        fn listed(
            setup: &SandboxSetup,
            filter: Option<&v1::PodSandboxFilter>,
        ) -> Vec<(String, i32)> {
            let mut items: Vec<(String, i32)> = setup
                .service
                .list_pod_sandbox(filter)
                .unwrap()
                .into_iter()
                .map(|item| (item.metadata.unwrap().name, item.state))
                .collect();
            items.sort();
            items
        }

        const READY: i32 = v1::PodSandboxState::SandboxReady as i32;
        const NOTREADY: i32 = v1::PodSandboxState::SandboxNotready as i32;

        /// Sandboxes `web` (running) and `db` (whose container dockerd
        /// lost, so only its checkpoint remembers it); returns their IDs.
        fn web_and_lost_db(setup: &SandboxSetup) -> (String, String) {
            let web = setup.run("web");
            let db = setup.run("db");
            setup.docker.remove_container(&db).unwrap();
            setup.index.refresh(&db).unwrap();
            (web, db)
        }

        #[test]
        fn a_sandbox_only_its_checkpoint_remembers_is_listed_notready() {
            let setup = SandboxSetup::new();
            web_and_lost_db(&setup);
            assert_eq!(
                listed(&setup, None),
                [("db".to_owned(), NOTREADY), ("web".to_owned(), READY)]
            );
        }

        #[test]
        fn a_sandbox_only_its_checkpoint_remembers_is_left_out_where_ready_or_labels_are_asked() {
            let setup = SandboxSetup::new();
            web_and_lost_db(&setup);
            let ready = v1::PodSandboxFilter {
                state: Some(v1::PodSandboxStateValue { state: READY }),
                ..v1::PodSandboxFilter::default()
            };
            assert_eq!(listed(&setup, Some(&ready)), [("web".to_owned(), READY)]);
            let labelled = v1::PodSandboxFilter {
                label_selector: [("app".to_owned(), "db".to_owned())].into(),
                ..v1::PodSandboxFilter::default()
            };
            assert_eq!(listed(&setup, Some(&labelled)), []);
        }

        #[test]
        fn an_id_selects_among_live_and_checkpoint_only_sandboxes() {
            let setup = SandboxSetup::new();
            let (web, db) = web_and_lost_db(&setup);
            for (id, name, state) in [(web, "web", READY), (db, "db", NOTREADY)] {
                let filter = v1::PodSandboxFilter {
                    id,
                    ..v1::PodSandboxFilter::default()
                };
                assert_eq!(listed(&setup, Some(&filter)), [(name.to_owned(), state)]);
            }
        }

        #[test]
        fn a_checkpoint_only_sandbox_whose_checkpoint_is_corrupt_is_left_out() {
            let setup = SandboxSetup::new();
            let (_, db) = web_and_lost_db(&setup);
            std::fs::write(setup.service.checkpoints.dir().join(db), b"{").unwrap();
            assert_eq!(listed(&setup, None), [("web".to_owned(), READY)]);
        }

        #[test]
        fn a_list_makes_no_docker_call() {
            let setup = SandboxSetup::new();
            web_and_lost_db(&setup);
            let before = setup.docker.calls().len();
            listed(&setup, None);
            assert_eq!(setup.docker.calls().len(), before);
        }
    }
}
