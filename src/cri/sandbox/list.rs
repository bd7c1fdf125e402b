//! ListPodSandbox, from the state index and the checkpoints (for the
//! runtime handler), plus the sandboxes only a checkpoint remembers (their
//! container was removed behind dockshim's back, or dockshim died before
//! removing the checkpoint): those are listed NOTREADY with the name,
//! namespace and UID the checkpoint holds, as PodSandboxStatus reports
//! them, so the kubelet stops and removes them, which tears their network
//! down.
//!
//! What a list needs of a checkpoint (its runtime handler and pod
//! metadata) is fixed when RunPodSandbox writes it, so each checkpoint is
//! read once and held in memory. The held set is trusted while the checkpoint
//! directory's mtime stays what it was when the directory was last listed:
//! every save, removal or quarantine, by dockshim or behind its back,
//! renames or removes an entry of that directory and so moves its mtime. A
//! warm list thus opens no file; after a change it lists the directory
//! again and reads only the checkpoints it has not read before. A listing
//! taken within [`MTIME_SETTLE`] of the directory's last change is listed
//! again on the next call, since a second change that soon may leave the
//! mtime as it was.
//!
//! The encoded answers are kept while neither the index nor the checkpoint
//! listing has changed (`crate::cri::answers`).

use std::fs;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::error::SandboxError;
use super::service::{lock, ListedCheckpoints, SandboxService};
use super::status::{
    annotations_of, checkpoint_metadata, labels_of, metadata_of, runtime_handler_of, sandbox_state,
};
use crate::api::v1;
use crate::index::{Entry, SandboxFilter};
use crate::store::PodSandboxCheckpoint;

/// How coarse a directory's mtime may be: the kernel stamps it from a
/// clock that moves in ticks, and some filesystems keep whole seconds.
const MTIME_SETTLE: Duration = Duration::from_secs(1);

impl SandboxService {
    /// ListPodSandbox's answer, encoded: the one kept for this filter while
    /// neither the index nor the checkpoints have changed since it was
    /// built.
    pub fn list_pod_sandbox_answer(
        &self,
        filter: Option<&v1::PodSandboxFilter>,
    ) -> Result<Bytes, SandboxError> {
        let index_generation = self.index.generation();
        let listed = self.listed_checkpoints()?;
        let generation = index_generation.map(|index| (index, listed.generation));
        self.answers.answer(filter, generation, || {
            let items = self.sandboxes(filter, &listed)?;
            Ok(v1::ListPodSandboxResponse { items })
        })
    }

    /// The kept ListPodSandbox answer for this filter, if neither the index
    /// nor the checkpoint directory has changed since it was built and
    /// nothing else holds them this moment: for a caller that must not
    /// wait. It costs one `stat` of the checkpoint directory.
    pub fn list_pod_sandbox_at_hand(&self, filter: Option<&v1::PodSandboxFilter>) -> Option<Bytes> {
        let index_generation = self.index.generation_at_hand()?;
        let listed = self.listed.try_lock().ok()?;
        if !self.still_listed(&listed) {
            return None;
        }
        self.answers
            .at_hand(filter, (index_generation, listed.generation))
    }

    /// ListPodSandbox with the CRI `filter`.
    pub fn list_pod_sandbox(
        &self,
        filter: Option<&v1::PodSandboxFilter>,
    ) -> Result<Vec<v1::PodSandbox>, SandboxError> {
        let listed = self.listed_checkpoints()?;
        self.sandboxes(filter, &listed)
    }

    /// The sandboxes matching `filter`, given the checkpoints as listed.
    fn sandboxes(
        &self,
        filter: Option<&v1::PodSandboxFilter>,
        listed: &ListedCheckpoints,
    ) -> Result<Vec<v1::PodSandbox>, SandboxError> {
        let filter = sandbox_filter(filter);
        // Every sandbox under the prefix: those the filter leaves out are
        // still not checkpoint-only.
        let known = self.index.sandboxes(&SandboxFilter {
            id_prefix: filter.id_prefix.clone(),
            ..SandboxFilter::default()
        })?;
        let mut items: Vec<v1::PodSandbox> = known
            .iter()
            .filter(|entry| filter.matches(entry))
            .filter_map(|entry| {
                Some(v1::PodSandbox {
                    id: entry.id.clone(),
                    metadata: Some(metadata_of(entry)?),
                    state: sandbox_state(entry) as i32,
                    created_at: entry.created_ns,
                    labels: labels_of(entry),
                    annotations: annotations_of(entry),
                    runtime_handler: runtime_handler_of(listed.get(&entry.id)),
                })
            })
            .collect();
        // A checkpoint-only sandbox has no labels and is never ready.
        if filter.ready != Some(true) && filter.labels.is_empty() {
            let prefix = filter.id_prefix.as_deref().unwrap_or_default();
            items.extend(listed.only_in_checkpoints(prefix, &known));
        }
        Ok(items)
    }

    /// The checkpoints as the directory holds them now, listed again only
    /// when its mtime moved or the last listing was not to be trusted.
    fn listed_checkpoints(&self) -> Result<MutexGuard<'_, ListedCheckpoints>, SandboxError> {
        let mut listed = lock(&self.listed);
        if self.still_listed(&listed) {
            return Ok(listed);
        }
        // A directory that cannot be read is reported by the listing.
        let modified = self.checkpoints_modified();
        let listing_started = SystemTime::now();
        let ids = self.checkpoints.list()?;
        let count = ids.len();
        // Both listings are in ID order: the old one is walked alongside.
        let mut old = std::mem::take(&mut listed.by_id).into_iter().peekable();
        let mut by_id = Vec::with_capacity(count);
        for id in ids {
            while old.next_if(|(old_id, _)| *old_id < id).is_some() {}
            let checkpoint = match old.next_if(|(old_id, _)| *old_id == id) {
                Some((_, checkpoint)) => Some(checkpoint),
                None => self.checkpoint_of(&id),
            };
            by_id.extend(checkpoint.map(|checkpoint| (id, checkpoint)));
        }
        // A checkpoint that could not be read is tried again next time.
        let settled = modified.filter(|modified| {
            by_id.len() == count
                && listing_started
                    .duration_since(*modified)
                    .is_ok_and(|age| age >= MTIME_SETTLE)
        });
        let generation = listed.generation + 1;
        *listed = ListedCheckpoints {
            settled,
            by_id,
            generation,
        };
        Ok(listed)
    }
}

impl SandboxService {
    /// Whether `listed` is still what the checkpoint directory holds.
    fn still_listed(&self, listed: &ListedCheckpoints) -> bool {
        let modified = self.checkpoints_modified();
        modified.is_some() && listed.settled == modified
    }

    fn checkpoints_modified(&self) -> Option<SystemTime> {
        fs::metadata(self.checkpoints.dir())
            .and_then(|meta| meta.modified())
            .ok()
    }
}

impl ListedCheckpoints {
    fn get(&self, id: &str) -> Option<&PodSandboxCheckpoint> {
        let at = self
            .by_id
            .binary_search_by(|(known, _)| known.as_str().cmp(id))
            .ok()?;
        self.by_id.get(at).map(|(_, checkpoint)| checkpoint)
    }

    /// NOTREADY items for the checkpoints under `prefix` whose sandbox is
    /// not in `known`, index entries in ID order.
    fn only_in_checkpoints<'a>(
        &'a self,
        prefix: &'a str,
        known: &'a [Arc<Entry>],
    ) -> impl Iterator<Item = v1::PodSandbox> + 'a {
        let start = self.by_id.partition_point(|(id, _)| id.as_str() < prefix);
        self.by_id
            .iter()
            .skip(start)
            .take_while(move |(id, _)| id.starts_with(prefix))
            .filter(|(id, _)| {
                known
                    .binary_search_by(|entry| entry.id.as_str().cmp(id))
                    .is_err()
            })
            .map(|(id, checkpoint)| v1::PodSandbox {
                id: id.clone(),
                metadata: Some(checkpoint_metadata(checkpoint)),
                state: v1::PodSandboxState::SandboxNotready as i32,
                runtime_handler: runtime_handler_of(Some(checkpoint)),
                ..v1::PodSandbox::default()
            })
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
        labels: filter.label_selector.clone(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod handler_tests {
    use std::fs::File;
    use std::path::Path;

    use super::*;
    use crate::cri::testing::{add_container, SandboxSetup};
    use crate::docker::DockerApi;
    use crate::store::checkpoint::{CheckpointData, SandboxNetwork};
    use crate::store::{CheckpointStore, PodSandboxCheckpoint};

    fn checkpoint(name: &str, runtime_handler: &str) -> PodSandboxCheckpoint {
        PodSandboxCheckpoint {
            name: name.to_owned(),
            namespace: "prod".to_owned(),
            data: CheckpointData::new(Vec::new(), true),
            dockshim: Some(SandboxNetwork {
                uid: format!("uid-{name}"),
                runtime_handler: runtime_handler.to_owned(),
                ..SandboxNetwork::default()
            }),
        }
    }

    /// Sets the directory's mtime, as if its last change was `ago`.
    fn changed_ago(dir: &Path, ago: Duration) {
        let when = SystemTime::now() - ago;
        File::open(dir).unwrap().set_modified(when).unwrap();
    }

    fn modified(dir: &Path) -> SystemTime {
        fs::metadata(dir).unwrap().modified().unwrap()
    }

    fn store(setup: &SandboxSetup) -> &CheckpointStore {
        &setup.service.checkpoints
    }

    /// A sandbox container, created and started as `name`.
    fn running_sandbox(setup: &SandboxSetup, name: &str) -> String {
        let id = add_container(&setup.docker, &setup.index, name, "podsandbox", "");
        setup.docker.start_container(&id).unwrap();
        setup.index.refresh(&id).unwrap();
        id
    }

    /// (ID, NOTREADY, runtime handler) of each sandbox listed.
    fn list(
        setup: &SandboxSetup,
        state: Option<v1::PodSandboxState>,
    ) -> Vec<(String, bool, String)> {
        let filter = v1::PodSandboxFilter {
            state: state.map(|state| v1::PodSandboxStateValue {
                state: state as i32,
            }),
            ..v1::PodSandboxFilter::default()
        };
        let not_ready = v1::PodSandboxState::SandboxNotready as i32;
        let mut items: Vec<_> = setup
            .service
            .list_pod_sandbox(Some(&filter))
            .unwrap()
            .into_iter()
            .map(|item| (item.id, item.state == not_ready, item.runtime_handler))
            .collect();
        items.sort();
        items
    }

    #[test]
    fn checkpoints_are_not_read_again_while_their_directory_is_unchanged() {
        let setup = SandboxSetup::new();
        let sandbox = running_sandbox(&setup, "k8s_POD_web_prod_uid-web_0");
        store(&setup)
            .save(&sandbox, &checkpoint("web", "kata"))
            .unwrap();
        store(&setup)
            .save("gone", &checkpoint("db", "runc"))
            .unwrap();
        let dir = store(&setup).dir().to_path_buf();
        changed_ago(&dir, Duration::from_secs(10));
        let expected = [
            (sandbox.clone(), false, "kata".to_owned()),
            ("gone".to_owned(), true, "runc".to_owned()),
        ];
        assert_eq!(list(&setup, None), expected);

        // Rewritten in place, the directory's mtime stays: a read would
        // find them corrupt and quarantine them.
        for id in [sandbox.as_str(), "gone"] {
            fs::write(dir.join(id), "not a checkpoint").unwrap();
        }
        assert_eq!(list(&setup, None), expected);
        for id in [sandbox.as_str(), "gone"] {
            assert_eq!(
                fs::read_to_string(dir.join(id)).unwrap(),
                "not a checkpoint"
            );
        }
    }

    #[test]
    fn checkpoints_added_or_removed_behind_dockshims_back_are_listed_at_the_next_call() {
        let setup = SandboxSetup::new();
        let dir = store(&setup).dir().to_path_buf();
        let elsewhere = CheckpointStore::open(dir.parent().unwrap()).unwrap();
        changed_ago(&dir, Duration::from_secs(30));
        assert_eq!(list(&setup, None), []);

        elsewhere.save("late", &checkpoint("db", "")).unwrap();
        changed_ago(&dir, Duration::from_secs(20));
        assert_eq!(
            list(&setup, None),
            [("late".to_owned(), true, String::new())]
        );

        elsewhere.remove("late").unwrap();
        changed_ago(&dir, Duration::from_secs(10));
        assert_eq!(list(&setup, None), []);
    }

    #[test]
    fn a_change_right_after_a_listing_is_seen_even_if_the_mtime_did_not_move() {
        let setup = SandboxSetup::new();
        let dir = store(&setup).dir().to_path_buf();
        store(&setup).save("first", &checkpoint("web", "")).unwrap();
        let first_change = modified(&dir);
        assert_eq!(list(&setup, None).len(), 1);

        store(&setup).save("second", &checkpoint("db", "")).unwrap();
        File::open(&dir)
            .unwrap()
            .set_modified(first_change)
            .unwrap();
        assert_eq!(list(&setup, None).len(), 2);
    }

    /// (ID, NOTREADY) of each sandbox in an encoded answer.
    fn answered(answer: &Bytes) -> Vec<(String, bool)> {
        let response: v1::ListPodSandboxResponse = prost::Message::decode(answer.clone()).unwrap();
        let not_ready = v1::PodSandboxState::SandboxNotready as i32;
        let mut items: Vec<_> = response
            .items
            .into_iter()
            .map(|item| (item.id, item.state == not_ready))
            .collect();
        items.sort();
        items
    }

    #[test]
    fn the_kept_answer_is_given_until_the_index_or_the_checkpoints_change() {
        let setup = SandboxSetup::new();
        let sandbox = running_sandbox(&setup, "k8s_POD_web_prod_uid-web_0");
        store(&setup)
            .save(&sandbox, &checkpoint("web", ""))
            .unwrap();
        let dir = store(&setup).dir().to_path_buf();
        changed_ago(&dir, Duration::from_secs(30));
        let first = setup.service.list_pod_sandbox_answer(None).unwrap();
        let again = setup.service.list_pod_sandbox_answer(None).unwrap();
        assert_eq!(again.as_ptr(), first.as_ptr());
        assert_eq!(answered(&first), [(sandbox.clone(), false)]);

        let elsewhere = CheckpointStore::open(dir.parent().unwrap()).unwrap();
        elsewhere.save("gone", &checkpoint("db", "")).unwrap();
        changed_ago(&dir, Duration::from_secs(20));
        let with_gone = setup.service.list_pod_sandbox_answer(None).unwrap();
        let expected = [(sandbox.clone(), false), ("gone".to_owned(), true)];
        assert_eq!(answered(&with_gone), expected);
        let again = setup.service.list_pod_sandbox_answer(None).unwrap();
        assert_eq!(again.as_ptr(), with_gone.as_ptr());
        let at_hand = setup.service.list_pod_sandbox_at_hand(None).unwrap();
        assert_eq!(at_hand.as_ptr(), with_gone.as_ptr());
        changed_ago(&dir, Duration::from_secs(10));
        assert_eq!(setup.service.list_pod_sandbox_at_hand(None), None);
        setup.service.list_pod_sandbox_answer(None).unwrap();

        setup
            .docker
            .stop_container(&sandbox, Duration::ZERO, None)
            .unwrap();
        setup.index.refresh(&sandbox).unwrap();
        let stopped = setup.service.list_pod_sandbox_answer(None).unwrap();
        assert_eq!(
            answered(&stopped),
            [(sandbox, true), ("gone".to_owned(), true)]
        );
    }

    #[test]
    fn a_state_filter_leaves_a_ready_sandbox_out_of_the_checkpoint_only_ones() {
        let setup = SandboxSetup::new();
        let sandbox = running_sandbox(&setup, "k8s_POD_web_prod_uid-web_0");
        store(&setup)
            .save(&sandbox, &checkpoint("web", ""))
            .unwrap();
        store(&setup).save("gone", &checkpoint("db", "")).unwrap();
        assert_eq!(
            list(&setup, Some(v1::PodSandboxState::SandboxNotready)),
            [("gone".to_owned(), true, String::new())]
        );
        assert_eq!(
            list(&setup, Some(v1::PodSandboxState::SandboxReady)),
            [(sandbox, false, String::new())]
        );
    }
}
