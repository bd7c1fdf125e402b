//! An indexed container (`index::Entry`) → the CRI `ContainerStatus`.
//! Pure: the image names that live in dockerd's image store are handed in
//! by the caller.
//!
//! - state: as `Entry::cri_state` decides. reason: for an exited container
//!   `OOMKilled` (the kernel killed it for memory), `Completed` (exit code
//!   0) or `Error`; a container that never ran (Docker keeps it `created`
//!   with a non-zero exit code and an error) is `ContainerCannotRun`, with
//!   its start and finish times set to its creation time as cri-dockerd
//!   does. message: Docker's `State.Error`.
//! - times: nanoseconds since the epoch, 0 when unset.
//! - image: the name the caller gives (a tag of the image), else the
//!   image as the container was created with it; image_ref:
//!   `docker-pullable://<repo digest>` when the image has one, else
//!   `docker://<image ID>`; image_id: the image ID.
//! - metadata from the Docker name; labels and annotations split from the
//!   Docker labels; mounts with read-only and propagation; log path;
//!   resources as Docker holds them (`resources::cri_resources`), a
//!   process limit as `unified["pids.max"]`. The OOM score adjustment is
//!   the one the container was created with, which Docker records; the
//!   caller replaces it with the main process's own, since an update gives
//!   the running processes a new one.
//! - not known to dockerd's inspect answer, so left unset: the stop signal
//!   (RUNTIME_DEFAULT) and the user of the first process.

use crate::api::v1;
use crate::cri::error::NamingError;
use crate::cri::labels;
use crate::cri::naming;
use crate::index::{CriState, Entry};

use super::mounts::cri_mounts;
use super::resources::cri_resources;

/// Reason of a container that exited with code 0.
pub const REASON_COMPLETED: &str = "Completed";
/// Reason of a container that exited with another code.
pub const REASON_ERROR: &str = "Error";
/// Reason of a container the kernel killed for running out of memory.
pub const REASON_OOM_KILLED: &str = "OOMKilled";
/// Reason of a container that could not be started.
pub const REASON_CANNOT_RUN: &str = "ContainerCannotRun";

/// The names of a container's image that the image store knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusImage<'a> {
    /// A tag of the image (its first `RepoTags` entry); empty for none.
    pub tag: &'a str,
    /// A repository digest (`repo@sha256:<hex>`, its first `RepoDigests`
    /// entry); empty for none.
    pub repo_digest: &'a str,
}

/// The CRI status of `entry`, which must be a container whose Docker name
/// follows the naming scheme.
pub fn container_status(
    entry: &Entry,
    image: &StatusImage<'_>,
) -> Result<v1::ContainerStatus, NamingError> {
    let name = naming::parse_container_name(&entry.name)?;
    let cri_labels = labels::split_labels(&entry.labels);
    let (state, reason, started_at, finished_at) = match entry.cri_state() {
        CriState::Created => (v1::ContainerState::ContainerCreated, "", 0, 0),
        CriState::Running => (
            v1::ContainerState::ContainerRunning,
            "",
            entry.started_ns,
            0,
        ),
        CriState::Unknown => (
            v1::ContainerState::ContainerUnknown,
            "",
            entry.started_ns,
            entry.finished_ns,
        ),
        CriState::Exited if entry.finished_ns == 0 => (
            v1::ContainerState::ContainerExited,
            REASON_CANNOT_RUN,
            entry.created_ns,
            entry.created_ns,
        ),
        CriState::Exited => (
            v1::ContainerState::ContainerExited,
            if entry.oom_killed {
                REASON_OOM_KILLED
            } else if entry.exit_code == 0 {
                REASON_COMPLETED
            } else {
                REASON_ERROR
            },
            entry.started_ns,
            entry.finished_ns,
        ),
    };
    let image_name = if image.tag.is_empty() {
        entry.image.clone()
    } else {
        image.tag.to_owned()
    };
    let image_ref = if image.repo_digest.is_empty() {
        naming::image_id_ref(&entry.image_id)
    } else {
        naming::pullable_image_ref(image.repo_digest)
    };
    Ok(v1::ContainerStatus {
        id: entry.id.clone(),
        metadata: Some(name.metadata),
        state: state as i32,
        created_at: entry.created_ns,
        started_at,
        finished_at,
        exit_code: saturating_i32(entry.exit_code),
        image: Some(v1::ImageSpec {
            image: image_name,
            ..v1::ImageSpec::default()
        }),
        image_ref,
        reason: reason.to_owned(),
        message: entry.error.clone(),
        labels: cri_labels.labels,
        annotations: cri_labels.annotations,
        mounts: cri_mounts(&entry.mounts),
        log_path: entry.log_path.clone(),
        resources: Some(v1::ContainerResources {
            linux: Some(cri_resources(&entry.resources)),
            windows: None,
        }),
        image_id: entry.image_id.clone(),
        ..v1::ContainerStatus::default()
    })
}

/// Docker exit codes are process exit statuses, well inside `i32`; an
/// impossible one is pinned to the nearest bound rather than wrapped.
fn saturating_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::grpc::Code;
    use crate::index::{Kind, Mount, Resources, State};

    const ID: &str = "78bff5f340a10b19e50dbd85fba6aec984265b7745a57b703e21b79e533002a4";
    const IMAGE_ID: &str =
        "sha256:f6a1e70bd9c172fa1d2bb569f98fc9e8f7bfe699d992fad5ed95eefcc2f996f5";
    const CREATED: i64 = 1_000;
    const STARTED: i64 = 2_000;
    const FINISHED: i64 = 3_000;

    fn entry(state: State) -> Entry {
        Entry {
            id: ID.to_owned(),
            name: "k8s_app_web_prod_7e5a_2".to_owned(),
            kind: Kind::Container,
            labels: BTreeMap::from([
                (
                    "io.kubernetes.docker.type".to_owned(),
                    "container".to_owned(),
                ),
                ("io.kubernetes.sandbox.id".to_owned(), "5d1b".to_owned()),
                (
                    "io.kubernetes.container.logpath".to_owned(),
                    "/var/log/pods/p/app/2.log".to_owned(),
                ),
                ("io.kubernetes.container.name".to_owned(), "app".to_owned()),
                ("annotation.restartCount".to_owned(), "2".to_owned()),
            ]),
            created_ns: CREATED,
            started_ns: 0,
            finished_ns: 0,
            state,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            pid: 0,
            image: "sha256:f6a1".to_owned(),
            image_id: IMAGE_ID.to_owned(),
            sandbox_id: "5d1b".to_owned(),
            log_path: "/var/log/pods/p/app/2.log".to_owned(),
            network_mode: "container:5d1b".to_owned(),
            ipc_mode: "container:5d1b".to_owned(),
            pid_mode: String::new(),
            ip: String::new(),
            ipv6: String::new(),
            mounts: vec![Mount {
                kind: "bind".to_owned(),
                source: "/mnt".to_owned(),
                destination: "/host".to_owned(),
                read_only: true,
                propagation: "rslave".to_owned(),
                ..Mount::default()
            }],
            resources: Resources {
                cpu_shares: 2,
                memory_limit: 1 << 26,
                oom_score_adj: 1000,
                ..Resources::default()
            },
            hostname: String::new(),
            tty: false,
            stdin: false,
            stdin_once: false,
            cgroup_parent: String::new(),
            upper_dir: String::new(),
            layer_driver: String::new(),
            runtime: String::new(),
        }
    }

    /// (state, reason, started_at, finished_at, exit_code, message)
    type Seen = (i32, String, i64, i64, i32, String);

    fn seen(entry: &Entry) -> Seen {
        let status = container_status(entry, &StatusImage::default()).unwrap();
        (
            status.state,
            status.reason,
            status.started_at,
            status.finished_at,
            status.exit_code,
            status.message,
        )
    }

    #[test]
    fn each_state_and_reason_is_reported() {
        use v1::ContainerState::{
            ContainerCreated as Created, ContainerExited as Exited, ContainerRunning as Running,
            ContainerUnknown as Unknown,
        };
        type Edit = fn(&mut Entry);
        let cases: [(Edit, v1::ContainerState, &str, i64, i64, i32, &str); 7] = [
            (|_| {}, Created, "", 0, 0, 0, ""),
            (
                |e| {
                    e.state = State::Running;
                    e.started_ns = STARTED;
                },
                Running,
                "",
                STARTED,
                0,
                0,
                "",
            ),
            (
                |e| {
                    e.state = State::Exited;
                    e.started_ns = STARTED;
                    e.finished_ns = FINISHED;
                },
                Exited,
                REASON_COMPLETED,
                STARTED,
                FINISHED,
                0,
                "",
            ),
            (
                |e| {
                    e.state = State::Exited;
                    e.started_ns = STARTED;
                    e.finished_ns = FINISHED;
                    e.exit_code = 137;
                },
                Exited,
                REASON_ERROR,
                STARTED,
                FINISHED,
                137,
                "",
            ),
            (
                |e| {
                    e.state = State::Exited;
                    e.started_ns = STARTED;
                    e.finished_ns = FINISHED;
                    e.exit_code = 137;
                    e.oom_killed = true;
                },
                Exited,
                REASON_OOM_KILLED,
                STARTED,
                FINISHED,
                137,
                "",
            ),
            (
                |e| {
                    e.exit_code = 128;
                    e.error = "exec: \"nope\": executable file not found in $PATH".to_owned();
                },
                Exited,
                REASON_CANNOT_RUN,
                CREATED,
                CREATED,
                128,
                "exec: \"nope\": executable file not found in $PATH",
            ),
            (|e| e.state = State::Removing, Unknown, "", 0, 0, 0, ""),
        ];
        for (edit, state, reason, started, finished, code, message) in cases {
            let mut entry = entry(State::Created);
            edit(&mut entry);
            assert_eq!(
                seen(&entry),
                (
                    state as i32,
                    reason.to_owned(),
                    started,
                    finished,
                    code,
                    message.to_owned()
                ),
                "{state:?} {reason}"
            );
        }
    }

    #[test]
    fn identity_labels_mounts_log_path_and_resources_are_reported() {
        let status = container_status(&entry(State::Created), &StatusImage::default()).unwrap();
        assert_eq!(status.id, ID);
        assert_eq!(
            status.metadata,
            Some(v1::ContainerMetadata {
                name: "app".to_owned(),
                attempt: 2
            })
        );
        assert_eq!(status.created_at, CREATED);
        assert_eq!(
            status.labels,
            HashMap::from([("io.kubernetes.container.name".to_owned(), "app".to_owned())])
        );
        assert_eq!(
            status.annotations,
            HashMap::from([("restartCount".to_owned(), "2".to_owned())])
        );
        assert_eq!(status.log_path, "/var/log/pods/p/app/2.log");
        assert_eq!(status.mounts.len(), 1);
        assert_eq!(
            (
                status.mounts[0].readonly,
                status.mounts[0].propagation,
                status.mounts[0].host_path.as_str()
            ),
            (
                true,
                v1::MountPropagation::PropagationHostToContainer as i32,
                "/mnt"
            )
        );
        let linux = status.resources.unwrap().linux.unwrap();
        assert_eq!(
            (
                linux.cpu_shares,
                linux.memory_limit_in_bytes,
                linux.oom_score_adj
            ),
            (2, 1 << 26, 1000)
        );
    }

    #[test]
    fn image_names_prefer_the_image_stores_tag_and_digest() {
        let entry = entry(State::Created);
        let bare = container_status(&entry, &StatusImage::default()).unwrap();
        assert_eq!(bare.image.unwrap().image, "sha256:f6a1");
        assert_eq!(bare.image_ref, format!("docker://{IMAGE_ID}"));
        assert_eq!(bare.image_id, IMAGE_ID);
        let named = container_status(
            &entry,
            &StatusImage {
                tag: "busybox:1.36",
                repo_digest: "busybox@sha256:abcd",
            },
        )
        .unwrap();
        assert_eq!(named.image.unwrap().image, "busybox:1.36");
        assert_eq!(named.image_ref, "docker-pullable://busybox@sha256:abcd");
    }

    #[test]
    fn a_container_with_a_foreign_name_is_not_found() {
        let mut entry = entry(State::Running);
        entry.name = "hand-made".to_owned();
        let err = container_status(&entry, &StatusImage::default()).unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
}
