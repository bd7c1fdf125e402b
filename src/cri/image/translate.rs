//! Docker's image JSON turned into CRI `Image` messages and the verbose
//! ImageStatus info map.
//!
//! Pure functions: no I/O, no state. IDs stay Docker's (`sha256:<hex>`:
//! the configuration digest under a graph driver, the manifest digest
//! under the containerd image store; PullImage returns the same string and
//! containers name the same one), and tags and digests stay in Docker's
//! familiar form (`busybox:latest`), as `docker images` shows them.

use std::collections::HashMap;

use serde_json::Value;

use crate::api::v1;
use crate::codec::json::object;
use crate::docker::ImageInspect;

/// The verbose ImageStatus key holding the image's JSON description.
pub const VERBOSE_INFO_KEY: &str = "info";

/// The image's default user, as the CRI wants it: a numeric user (group
/// part dropped) is a UID, anything else a user name; no user is neither,
/// which the kubelet reads as root.
pub fn image_user(config_user: &str) -> (Option<i64>, String) {
    let user = config_user.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

/// What a CRI `Image` is made of.
#[derive(Debug, Clone, Copy)]
pub struct ImageFacts<'a> {
    pub id: &'a str,
    pub repo_tags: &'a [String],
    pub repo_digests: &'a [String],
    /// Bytes, as dockerd reports them (never negative in practice).
    pub size: i64,
    /// The configuration's `User`.
    pub user: &'a str,
    pub pinned: bool,
}

/// The CRI `Image` for one of dockerd's images.
pub fn cri_image(facts: ImageFacts<'_>) -> v1::Image {
    let (uid, username) = image_user(facts.user);
    v1::Image {
        id: facts.id.to_owned(),
        repo_tags: facts.repo_tags.to_vec(),
        repo_digests: facts.repo_digests.to_vec(),
        size: u64::try_from(facts.size).unwrap_or(0),
        uid: uid.map(|value| v1::Int64Value { value }),
        username,
        spec: Some(v1::ImageSpec {
            image: facts.id.to_owned(),
            ..v1::ImageSpec::default()
        }),
        pinned: facts.pinned,
    }
}

/// The verbose ImageStatus map: one key whose value is the image's
/// description and configuration, in the OCI image configuration's field
/// names.
pub fn verbose_info(image: &ImageInspect) -> HashMap<String, String> {
    let rootfs = object(vec![
        ("type", Value::from(image.root_fs.kind.as_str())),
        ("diff_ids", Value::from(image.root_fs.layers.as_slice())),
    ]);
    let spec = object(vec![
        ("created", Value::from(image.created.as_str())),
        ("author", Value::from(image.author.as_str())),
        ("architecture", Value::from(image.architecture.as_str())),
        ("os", Value::from(image.os.as_str())),
        ("config", image.config.to_json()),
        ("rootfs", rootfs),
    ]);
    let description = object(vec![
        ("id", Value::from(image.id.as_str())),
        ("repoTags", Value::from(image.repo_tags.as_slice())),
        ("repoDigests", Value::from(image.repo_digests.as_slice())),
        ("size", Value::from(image.size)),
        ("imageSpec", spec),
    ]);
    HashMap::from([(VERBOSE_INFO_KEY.to_owned(), description.to_string())])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::docker::{ImageConfig, RootFs};

    #[test]
    fn numeric_users_are_uids_and_names_are_usernames() {
        assert_eq!(image_user(""), (None, String::new()));
        assert_eq!(image_user("0"), (Some(0), String::new()));
        assert_eq!(image_user("1000:1000"), (Some(1000), String::new()));
        assert_eq!(image_user("nobody"), (None, "nobody".to_owned()));
        assert_eq!(
            image_user("www-data:www-data"),
            (None, "www-data".to_owned())
        );
        assert_eq!(image_user(":100"), (None, String::new()));
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn image_carries_id_references_user_spec_and_pin() {
        let tags = strings(&["registry.k8s.io/pause:3.10"]);
        let digests = strings(&["registry.k8s.io/pause@sha256:ee6521f2"]);
        let image = cri_image(ImageFacts {
            id: "sha256:873ed751",
            repo_tags: &tags,
            repo_digests: &digests,
            size: 736_000,
            user: "65535:65535",
            pinned: true,
        });
        assert_eq!(image.id, "sha256:873ed751");
        assert_eq!(image.repo_tags, tags);
        assert_eq!(image.repo_digests, digests);
        assert_eq!(image.uid, Some(v1::Int64Value { value: 65535 }));
        assert!(image.username.is_empty());
        assert_eq!(
            image.spec.map(|s| s.image),
            Some("sha256:873ed751".to_owned())
        );
        assert!(image.pinned);
    }

    #[test]
    fn a_negative_size_reads_as_zero() {
        let image = cri_image(ImageFacts {
            id: "sha256:1",
            repo_tags: &[],
            repo_digests: &[],
            size: -1,
            user: "",
            pinned: false,
        });
        assert_eq!(image.size, 0);
    }

    #[test]
    fn verbose_info_is_the_image_configuration_as_json() {
        let image = ImageInspect {
            id: "sha256:1".into(),
            repo_tags: strings(&["app:v1"]),
            created: "2026-01-02T03:04:05Z".into(),
            architecture: "amd64".into(),
            os: "linux".into(),
            config: ImageConfig {
                user: "nobody".into(),
                cmd: strings(&["/bin/sh"]),
                ..ImageConfig::default()
            },
            root_fs: RootFs {
                kind: "layers".into(),
                layers: strings(&["sha256:aa"]),
            },
            ..ImageInspect::default()
        };
        let info = verbose_info(&image);
        let parsed: Value = serde_json::from_str(&info[VERBOSE_INFO_KEY]).unwrap();
        assert_eq!(parsed["id"], "sha256:1");
        assert_eq!(parsed["repoTags"], json!(["app:v1"]));
        assert_eq!(parsed["imageSpec"]["config"]["User"], "nobody");
        assert_eq!(parsed["imageSpec"]["config"]["Cmd"], json!(["/bin/sh"]));
        assert_eq!(
            parsed["imageSpec"]["rootfs"]["diff_ids"],
            json!(["sha256:aa"])
        );
        assert_eq!(parsed["imageSpec"]["os"], "linux");
    }
}
