//! Docker container names of sandboxes and containers, and the prefixes of
//! `ContainerStatus.image_ref`.
//!
//! The name is where CRI metadata lives: nothing else records a sandbox's
//! pod name, namespace, UID and attempt, or a container's name and attempt.
//! The scheme is the one every Docker-based Kubernetes runtime has used, so
//! containers made by cri-dockerd read back unchanged:
//!
//! - sandbox: `k8s_POD_<pod>_<namespace>_<uid>_<attempt>`
//! - container: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`
//!
//! optionally followed by `_<8 lowercase hex digits>`, the suffix
//! cri-dockerd appends when a stale container still holds the name. Docker
//! reports names with a leading `/`, which parsing ignores.
//!
//! `_` separates the parts, so a name is only unambiguous if no part holds
//! one. Kubernetes never sends such parts (pod names are DNS subdomains,
//! namespaces and container names DNS labels, UIDs UUIDs), and creating a
//! name refuses them, together with any other character Docker does not
//! allow in names. Parsing is strict in the same way: a sandbox name must
//! say `POD`, a container name must not (container names are lowercase).
//!
//! Pure functions: no I/O, no randomness (the caller supplies the suffix).

use crate::api::v1;
use crate::cri::error::NamingError;

/// First part of every name dockshim (or cri-dockerd) gives a container.
pub const NAME_PREFIX: &str = "k8s";
/// The container-name part of a sandbox's name.
pub const SANDBOX_CONTAINER_NAME: &str = "POD";
/// `ContainerStatus.image_ref` of an image known by its ID only.
pub const IMAGE_ID_PREFIX: &str = "docker://";
/// `ContainerStatus.image_ref` of an image known by a repository digest.
pub const PULLABLE_IMAGE_PREFIX: &str = "docker-pullable://";

const DELIMITER: &str = "_";
/// Parts of a name without the conflict suffix.
const NAME_PARTS: usize = 6;
/// Hex digits of the conflict suffix.
const CONFLICT_SUFFIX_DIGITS: usize = 8;

/// The Docker name of a sandbox.
pub fn sandbox_name(metadata: &v1::PodSandboxMetadata) -> Result<String, NamingError> {
    Ok(join([
        NAME_PREFIX,
        SANDBOX_CONTAINER_NAME,
        checked_part("metadata.name", &metadata.name)?,
        checked_part("metadata.namespace", &metadata.namespace)?,
        checked_part("metadata.uid", &metadata.uid)?,
        &metadata.attempt.to_string(),
    ]))
}

/// The Docker name of a container of the sandbox described by `sandbox`.
pub fn container_name(
    container: &v1::ContainerMetadata,
    sandbox: &v1::PodSandboxMetadata,
) -> Result<String, NamingError> {
    Ok(join([
        NAME_PREFIX,
        checked_part("container metadata.name", &container.name)?,
        checked_part("sandbox metadata.name", &sandbox.name)?,
        checked_part("sandbox metadata.namespace", &sandbox.namespace)?,
        checked_part("sandbox metadata.uid", &sandbox.uid)?,
        &container.attempt.to_string(),
    ]))
}

/// The sandbox metadata a Docker name records.
pub fn parse_sandbox_name(name: &str) -> Result<v1::PodSandboxMetadata, NamingError> {
    let parts = split_name(name)?;
    if parts[1] != SANDBOX_CONTAINER_NAME {
        return Err(not_kubernetes(
            name,
            "the second part of a sandbox name must be POD",
        ));
    }
    Ok(v1::PodSandboxMetadata {
        name: parts[2].to_owned(),
        namespace: parts[3].to_owned(),
        uid: parts[4].to_owned(),
        attempt: parse_attempt(name, parts[5])?,
    })
}

/// What a container's Docker name records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName {
    /// The container's name and attempt.
    pub metadata: v1::ContainerMetadata,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
}

/// The container metadata and pod identity a Docker name records.
pub fn parse_container_name(name: &str) -> Result<ContainerName, NamingError> {
    let parts = split_name(name)?;
    if parts[1] == SANDBOX_CONTAINER_NAME {
        return Err(not_kubernetes(name, "POD names a sandbox, not a container"));
    }
    Ok(ContainerName {
        metadata: v1::ContainerMetadata {
            name: parts[1].to_owned(),
            attempt: parse_attempt(name, parts[5])?,
        },
        pod_name: parts[2].to_owned(),
        pod_namespace: parts[3].to_owned(),
        pod_uid: parts[4].to_owned(),
    })
}

/// `image_ref` for an image known only by its ID (`sha256:<hex>`).
pub fn image_id_ref(image_id: &str) -> String {
    format!("{IMAGE_ID_PREFIX}{image_id}")
}

/// `image_ref` for an image known by a repository digest
/// (`repo@sha256:<hex>`).
pub fn pullable_image_ref(repo_digest: &str) -> String {
    format!("{PULLABLE_IMAGE_PREFIX}{repo_digest}")
}

/// `reference` without an `image_ref` prefix, for callers that hand an
/// `image_ref` back as an image.
pub fn strip_image_ref_prefix(reference: &str) -> &str {
    reference
        .strip_prefix(PULLABLE_IMAGE_PREFIX)
        .or_else(|| reference.strip_prefix(IMAGE_ID_PREFIX))
        .unwrap_or(reference)
}

fn join(parts: [&str; NAME_PARTS]) -> String {
    parts.join(DELIMITER)
}

/// `value`, if it can be a part of a name: Docker allows `[a-zA-Z0-9_.-]`
/// after the first character (which is always the `k` of `k8s`), minus
/// our delimiter.
fn checked_part<'a>(field: &'static str, value: &'a str) -> Result<&'a str, NamingError> {
    if value.is_empty() {
        return Err(NamingError::EmptyField(field));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    if !value.chars().all(allowed) {
        return Err(NamingError::InvalidField {
            field,
            value: value.to_owned(),
        });
    }
    Ok(value)
}

/// The six parts of a name, after checking the prefix and the optional
/// conflict suffix.
fn split_name(name: &str) -> Result<[&str; NAME_PARTS], NamingError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let parts: Vec<&str> = bare.split(DELIMITER).collect();
    let (main, suffix) = match parts.len() {
        NAME_PARTS => (&parts[..], None),
        n if n == NAME_PARTS + 1 => (&parts[..NAME_PARTS], Some(parts[NAME_PARTS])),
        _ => return Err(not_kubernetes(name, "it does not have 6 or 7 parts")),
    };
    if main[0] != NAME_PREFIX {
        return Err(not_kubernetes(name, "it does not start with k8s_"));
    }
    if main.iter().any(|part| part.is_empty()) {
        return Err(not_kubernetes(name, "a part is empty"));
    }
    if let Some(suffix) = suffix {
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if suffix.len() != CONFLICT_SUFFIX_DIGITS || !suffix.chars().all(hex) {
            return Err(not_kubernetes(
                name,
                "the seventh part is not 8 lowercase hex digits",
            ));
        }
    }
    let mut six = [""; NAME_PARTS];
    six.copy_from_slice(main);
    Ok(six)
}

/// A decimal attempt number; unlike `u32::from_str`, no sign is accepted.
fn parse_attempt(name: &str, text: &str) -> Result<u32, NamingError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_kubernetes(name, "the attempt is not a decimal number"));
    }
    text.parse()
        .map_err(|_| not_kubernetes(name, "the attempt does not fit 32 bits"))
}

fn not_kubernetes(name: &str, reason: &'static str) -> NamingError {
    NamingError::NotKubernetes {
        name: name.to_owned(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::{Code, Status};

    fn pod(name: &str, namespace: &str, uid: &str, attempt: u32) -> v1::PodSandboxMetadata {
        v1::PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: namespace.to_owned(),
            attempt,
        }
    }

    fn container(name: &str, attempt: u32) -> v1::ContainerMetadata {
        v1::ContainerMetadata {
            name: name.to_owned(),
            attempt,
        }
    }

    const UID: &str = "0b7c8a1e-5d3b-4a8e-9f0a-2c3d4e5f6a7b";

    #[test]
    fn sandbox_names_follow_the_scheme_and_round_trip() {
        let cases = [
            pod("nginx", "default", UID, 0),
            pod("web-7c5ddbdf54-x2kq9", "kube-system", UID, 3),
            pod("a.b.c", "ns", "f00d", u32::MAX),
        ];
        for metadata in cases {
            let name = sandbox_name(&metadata).unwrap();
            assert!(name.starts_with("k8s_POD_"), "{name}");
            assert_eq!(parse_sandbox_name(&name).unwrap(), metadata, "{name}");
        }
        assert_eq!(
            sandbox_name(&pod("nginx", "default", UID, 2)).unwrap(),
            format!("k8s_POD_nginx_default_{UID}_2")
        );
    }

    #[test]
    fn container_names_follow_the_scheme_and_round_trip() {
        let sandbox = pod("web-0", "prod", UID, 1);
        let name = container_name(&container("app", 4), &sandbox).unwrap();
        assert_eq!(name, format!("k8s_app_web-0_prod_{UID}_4"));
        assert_eq!(
            parse_container_name(&name).unwrap(),
            ContainerName {
                metadata: container("app", 4),
                pod_name: "web-0".to_owned(),
                pod_namespace: "prod".to_owned(),
                pod_uid: UID.to_owned(),
            }
        );
    }

    #[test]
    fn names_as_docker_reports_them_with_a_slash_and_conflict_suffix_parse() {
        let sandbox = format!("/k8s_POD_coredns-5d78c9869d-abcde_kube-system_{UID}_0_1a2b3c4d");
        assert_eq!(
            parse_sandbox_name(&sandbox).unwrap(),
            pod("coredns-5d78c9869d-abcde", "kube-system", UID, 0)
        );
        let parsed = parse_container_name(&format!("/k8s_coredns_coredns_kube-system_{UID}_7"));
        assert_eq!(parsed.unwrap().metadata, container("coredns", 7));
        // cri-dockerd appends a random suffix when the name is taken.
        let suffixed = format!("k8s_c_p_n_{UID}_1_0000beef");
        assert_eq!(
            parse_container_name(&suffixed).unwrap().metadata,
            container("c", 1)
        );
    }

    #[test]
    fn foreign_and_malformed_names_are_not_kubernetes_names() {
        let bad = [
            "/nginx",
            "/k8s_POD_a_b_c",
            "/k8s_POD_a_b_c_0_deadbeef_x",
            "/k9s_POD_a_b_c_0",
            "/k8s_POD__b_c_0",
            "/k8s_POD_a_b_c_-1",
            "/k8s_POD_a_b_c_+1",
            "/k8s_POD_a_b_c_4294967296",
            "/k8s_POD_a_b_c_0_DEADBEEF",
            "/k8s_POD_a_b_c_0_beef",
            "/k8s_app_a_b_c_0",
        ];
        for name in bad {
            let err = parse_sandbox_name(name).unwrap_err();
            assert!(matches!(err, NamingError::NotKubernetes { .. }), "{name}");
            assert_eq!(Status::from(err).code, Code::NotFound);
        }
        assert!(parse_container_name("/k8s_POD_a_b_c_0").is_err());
    }

    #[test]
    fn parts_that_would_make_names_ambiguous_or_invalid_are_refused() {
        let cases = [
            (pod("a_b", "ns", UID, 0), "metadata.name"),
            (pod("a", "n_s", UID, 0), "metadata.namespace"),
            (pod("a", "ns", "u_id", 0), "metadata.uid"),
            (pod("a/b", "ns", UID, 0), "metadata.name"),
            (pod("a b", "ns", UID, 0), "metadata.name"),
            (pod("", "ns", UID, 0), "metadata.name"),
            (pod("a", "", UID, 0), "metadata.namespace"),
        ];
        for (metadata, field) in cases {
            let err = sandbox_name(&metadata).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
            assert_eq!(Status::from(err).code, Code::InvalidArgument);
        }
        let err = container_name(&container("my_app", 0), &pod("a", "b", UID, 0)).unwrap_err();
        assert!(err.to_string().contains("\"my_app\""), "{err}");
    }

    #[test]
    fn image_refs_carry_and_lose_their_prefixes() {
        let id = "sha256:0123";
        assert_eq!(image_id_ref(id), "docker://sha256:0123");
        assert_eq!(
            pullable_image_ref("busybox@sha256:0123"),
            "docker-pullable://busybox@sha256:0123"
        );
        assert_eq!(strip_image_ref_prefix("docker://sha256:0123"), id);
        assert_eq!(
            strip_image_ref_prefix("docker-pullable://busybox@sha256:0123"),
            "busybox@sha256:0123"
        );
        assert_eq!(strip_image_ref_prefix("busybox"), "busybox");
    }
}
