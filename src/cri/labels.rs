//! The Docker labels of sandbox and container containers: how CRI labels,
//! CRI annotations and dockshim's own bookkeeping share one label map.
//!
//! The scheme is cri-dockerd's, so containers it created read back the same:
//!
//! - CRI labels are Docker labels, verbatim;
//! - CRI annotations are Docker labels `annotation.<key>` (Docker has no
//!   annotations);
//! - internal labels, never shown to the CRI: `io.kubernetes.docker.type`
//!   (`podsandbox` or `container`), `io.kubernetes.sandbox.id` and
//!   `io.kubernetes.container.logpath` on containers, and
//!   `io.kubernetes.container.name=POD` on sandboxes (on containers that
//!   label is the kubelet's own and is shown).
//!
//! Where cri-dockerd silently lets an internal label overwrite a CRI label
//! of the same key, or reads a CRI label `annotation.x` back as annotation
//! `x`, dockshim refuses the request instead: a label that cannot round-trip
//! is an INVALID_ARGUMENT naming the key. The kubelet never sends such keys.
//!
//! Pure functions: no I/O.

use std::collections::{BTreeMap, HashMap};

use crate::cri::error::LabelError;
use crate::cri::naming::SANDBOX_CONTAINER_NAME;
use crate::index::ANNOTATION_PREFIX;

/// Says whether a Docker container is a sandbox or a container.
pub const CONTAINER_TYPE_LABEL: &str = "io.kubernetes.docker.type";
/// `CONTAINER_TYPE_LABEL` of a sandbox.
pub const CONTAINER_TYPE_SANDBOX: &str = "podsandbox";
/// `CONTAINER_TYPE_LABEL` of a container.
pub const CONTAINER_TYPE_CONTAINER: &str = "container";
/// The ID of the sandbox a container belongs to.
pub const SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";
/// The host path of a container's CRI log file.
pub const LOG_PATH_LABEL: &str = "io.kubernetes.container.logpath";
/// The kubelet's container-name label; `POD` on sandboxes.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// Labels on every Docker container dockshim creates that are dockshim's.
const INTERNAL_LABELS: [&str; 3] = [CONTAINER_TYPE_LABEL, SANDBOX_ID_LABEL, LOG_PATH_LABEL];

/// What a Docker container is to the CRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Sandbox,
    Container,
}

impl ContainerKind {
    /// The value of `CONTAINER_TYPE_LABEL`.
    pub fn label_value(self) -> &'static str {
        match self {
            ContainerKind::Sandbox => CONTAINER_TYPE_SANDBOX,
            ContainerKind::Container => CONTAINER_TYPE_CONTAINER,
        }
    }

    /// The `label` filter of `GET /containers/json` selecting this kind.
    pub fn label_filter(self) -> String {
        format!("{CONTAINER_TYPE_LABEL}={}", self.label_value())
    }
}

/// The Docker labels of a sandbox.
pub fn sandbox_labels(
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut docker = merged(labels, annotations, &[CONTAINER_NAME_LABEL])?;
    docker.insert(
        CONTAINER_TYPE_LABEL.to_owned(),
        CONTAINER_TYPE_SANDBOX.to_owned(),
    );
    docker.insert(
        CONTAINER_NAME_LABEL.to_owned(),
        SANDBOX_CONTAINER_NAME.to_owned(),
    );
    Ok(docker)
}

/// The Docker labels of a container of sandbox `sandbox_id`, whose CRI log
/// file is `log_path` on the host (empty: none).
pub fn container_labels(
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
    sandbox_id: &str,
    log_path: &str,
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut docker = merged(labels, annotations, &[])?;
    docker.insert(
        CONTAINER_TYPE_LABEL.to_owned(),
        CONTAINER_TYPE_CONTAINER.to_owned(),
    );
    docker.insert(SANDBOX_ID_LABEL.to_owned(), sandbox_id.to_owned());
    if !log_path.is_empty() {
        docker.insert(LOG_PATH_LABEL.to_owned(), log_path.to_owned());
    }
    Ok(docker)
}

/// The CRI view of a Docker container's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriLabels {
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
}

/// Splits Docker labels into CRI labels and annotations, hiding the
/// internal ones.
pub fn split_labels(docker: &BTreeMap<String, String>) -> CriLabels {
    let is_sandbox = container_kind(docker) == Some(ContainerKind::Sandbox);
    let mut cri = CriLabels::default();
    for (key, value) in docker {
        if INTERNAL_LABELS.contains(&key.as_str()) {
            continue;
        }
        if is_sandbox && key == CONTAINER_NAME_LABEL {
            continue;
        }
        match key.strip_prefix(ANNOTATION_PREFIX) {
            Some(annotation) => cri.annotations.insert(annotation.to_owned(), value.clone()),
            None => cri.labels.insert(key.clone(), value.clone()),
        };
    }
    cri
}

/// Whether the labels mark a sandbox or a container; `None` for Docker
/// containers that are neither.
pub fn container_kind(docker: &BTreeMap<String, String>) -> Option<ContainerKind> {
    match docker.get(CONTAINER_TYPE_LABEL).map(String::as_str) {
        Some(CONTAINER_TYPE_SANDBOX) => Some(ContainerKind::Sandbox),
        Some(CONTAINER_TYPE_CONTAINER) => Some(ContainerKind::Container),
        _ => None,
    }
}

/// The sandbox a container belongs to.
pub fn sandbox_id(docker: &BTreeMap<String, String>) -> Option<&str> {
    docker.get(SANDBOX_ID_LABEL).map(String::as_str)
}

/// The host path of a container's CRI log file.
pub fn log_path(docker: &BTreeMap<String, String>) -> Option<&str> {
    docker.get(LOG_PATH_LABEL).map(String::as_str)
}

/// CRI labels and prefixed annotations in one map, after refusing labels
/// that collide with internal ones (`also_reserved` adds to those).
fn merged(
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
    also_reserved: &[&str],
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut docker = BTreeMap::new();
    for (key, value) in labels {
        if INTERNAL_LABELS.contains(&key.as_str()) || also_reserved.contains(&key.as_str()) {
            return Err(LabelError::Internal(key.clone()));
        }
        if key.starts_with(ANNOTATION_PREFIX) {
            return Err(LabelError::AnnotationPrefix(key.clone()));
        }
        docker.insert(key.clone(), value.clone());
    }
    for (key, value) in annotations {
        docker.insert(format!("{ANNOTATION_PREFIX}{key}"), value.clone());
    }
    Ok(docker)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::grpc::{Code, Status};

    use super::*;

    fn map<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const UID: &str = "0b7c8a1e-5d3b-4a8e-9f0a-2c3d4e5f6a7b";

    #[test]
    fn sandbox_labels_round_trip_with_annotations() {
        let labels: HashMap<_, _> = map(&[
            ("app", "nginx"),
            ("io.kubernetes.pod.name", "nginx"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", UID),
        ]);
        let annotations: HashMap<_, _> = map(&[
            ("kubernetes.io/config.source", "api"),
            ("annotation.nested", "x"),
            ("", "empty key"),
        ]);
        let docker = sandbox_labels(&labels, &annotations).unwrap();
        assert_eq!(docker["io.kubernetes.docker.type"], "podsandbox");
        assert_eq!(docker["io.kubernetes.container.name"], "POD");
        assert_eq!(docker["annotation.kubernetes.io/config.source"], "api");
        assert_eq!(docker["annotation.annotation.nested"], "x");
        assert_eq!(container_kind(&docker), Some(ContainerKind::Sandbox));
        assert_eq!(
            split_labels(&docker),
            CriLabels {
                labels,
                annotations
            }
        );
    }

    #[test]
    fn container_labels_round_trip_and_keep_the_kubelet_container_name() {
        let labels: HashMap<_, _> = map(&[
            ("io.kubernetes.container.name", "app"),
            ("io.kubernetes.pod.name", "web"),
        ]);
        let annotations: HashMap<_, _> = map(&[("io.kubernetes.container.restartCount", "2")]);
        let docker =
            container_labels(&labels, &annotations, "abc123", "/var/log/pods/x/app/0.log").unwrap();
        assert_eq!(container_kind(&docker), Some(ContainerKind::Container));
        assert_eq!(sandbox_id(&docker), Some("abc123"));
        assert_eq!(log_path(&docker), Some("/var/log/pods/x/app/0.log"));
        assert_eq!(
            split_labels(&docker),
            CriLabels {
                labels,
                annotations
            }
        );
        let without_log = container_labels(&HashMap::new(), &HashMap::new(), "abc", "").unwrap();
        assert_eq!(log_path(&without_log), None);
    }

    #[test]
    fn labels_written_by_cri_dockerd_read_back() {
        let sandbox: BTreeMap<_, _> = map(&[
            (
                "annotation.kubernetes.io/config.seen",
                "2024-12-12T10:00:00Z",
            ),
            ("app", "nginx"),
            ("io.kubernetes.container.name", "POD"),
            ("io.kubernetes.docker.type", "podsandbox"),
            ("io.kubernetes.pod.name", "nginx"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", UID),
        ]);
        let cri = split_labels(&sandbox);
        assert_eq!(
            cri.labels,
            map(&[
                ("app", "nginx"),
                ("io.kubernetes.pod.name", "nginx"),
                ("io.kubernetes.pod.namespace", "default"),
                ("io.kubernetes.pod.uid", UID),
            ])
        );
        assert_eq!(
            cri.annotations,
            map(&[("kubernetes.io/config.seen", "2024-12-12T10:00:00Z")])
        );

        let container: BTreeMap<_, _> = map(&[
            ("annotation.io.kubernetes.container.hash", "8e1b6ad5"),
            (
                "annotation.io.kubernetes.container.terminationMessagePath",
                "/dev/termination-log",
            ),
            (
                "io.kubernetes.container.logpath",
                "/var/log/pods/default_nginx_u/nginx/0.log",
            ),
            ("io.kubernetes.container.name", "nginx"),
            ("io.kubernetes.docker.type", "container"),
            ("io.kubernetes.pod.name", "nginx"),
            ("io.kubernetes.sandbox.id", "4f1c"),
        ]);
        let cri = split_labels(&container);
        assert_eq!(
            cri.labels,
            map(&[
                ("io.kubernetes.container.name", "nginx"),
                ("io.kubernetes.pod.name", "nginx"),
            ])
        );
        assert_eq!(
            cri.annotations,
            map(&[
                ("io.kubernetes.container.hash", "8e1b6ad5"),
                (
                    "io.kubernetes.container.terminationMessagePath",
                    "/dev/termination-log"
                ),
            ])
        );
        assert_eq!(sandbox_id(&container), Some("4f1c"));
    }

    #[test]
    fn labels_that_cannot_round_trip_are_refused() {
        let none = HashMap::new();
        let refused = [
            "io.kubernetes.docker.type",
            "io.kubernetes.sandbox.id",
            "io.kubernetes.container.logpath",
            "io.kubernetes.container.name",
            "annotation.team",
        ];
        for key in refused {
            let labels: HashMap<_, _> = map(&[(key, "x")]);
            let err = sandbox_labels(&labels, &none).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
            assert_eq!(Status::from(err).code, Code::InvalidArgument);
        }
        for key in ["io.kubernetes.sandbox.id", "annotation.team"] {
            let labels: HashMap<_, _> = map(&[(key, "x")]);
            assert!(container_labels(&labels, &none, "id", "").is_err(), "{key}");
        }
    }

    #[test]
    fn foreign_containers_have_no_kind_and_kinds_have_filters() {
        let docker: BTreeMap<_, _> = map(&[("io.kubernetes.docker.type", "other")]);
        assert_eq!(container_kind(&docker), None);
        assert_eq!(container_kind(&BTreeMap::new()), None);
        assert_eq!(
            ContainerKind::Sandbox.label_filter(),
            "io.kubernetes.docker.type=podsandbox"
        );
        assert_eq!(
            ContainerKind::Container.label_filter(),
            "io.kubernetes.docker.type=container"
        );
    }
}
