//! The typed subsets of dockerd's image answers: `GET /images/json`,
//! `GET /images/{name}/json` and `GET /images/{name}/history`.
//!
//! Like `types`, every field has a default and unknown fields are ignored.
//! dockerd writes `null` rather than `[]` or `{}` for empty lists and maps
//! in these answers, so those fields read `null` as empty. What the fields
//! mean to the kubelet is decided in `cri::image`, not here.
//!
//! `RepoTags` and `RepoDigests` are read into one form on every engine:
//! below API 1.43 an untagged image lists the placeholders `<none>:<none>`
//! and `<none>@<none>`, and the containerd image store (Docker 29) lists an
//! image pulled by digest under its `name@digest` in `RepoTags` as well as
//! in `RepoDigests`. Neither is a tag. The image `Id` differs by image
//! store: the configuration digest under a graph driver, the manifest (or
//! index) digest under the containerd store; dockshim passes it on as it
//! is, since a container's `Image` is the same digest on both.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::types::null_as_empty;

/// How dockerd's placeholders for a missing tag or digest begin.
const PLACEHOLDER_PREFIX: &str = "<none>";

/// `RepoTags` without placeholders and without digested names.
fn repo_tags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let mut tags: Vec<String> = null_as_empty(deserializer)?;
    tags.retain(|tag| !tag.starts_with(PLACEHOLDER_PREFIX) && !tag.contains('@'));
    Ok(tags)
}

/// `RepoDigests` without placeholders.
fn repo_digests<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let mut digests: Vec<String> = null_as_empty(deserializer)?;
    digests.retain(|digest| !digest.starts_with(PLACEHOLDER_PREFIX));
    Ok(digests)
}

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ImageSummary {
    /// `sha256:<hex>`: the configuration digest under a graph driver, the
    /// manifest or index digest under the containerd image store.
    #[serde(rename = "Id")]
    pub id: String,
    /// Familiar `name:tag` strings; empty for an untagged image.
    #[serde(rename = "RepoTags", deserialize_with = "repo_tags")]
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` strings.
    #[serde(rename = "RepoDigests", deserialize_with = "repo_digests")]
    pub repo_digests: Vec<String>,
    /// Bytes of all the image's layers, shared ones included; the
    /// containerd image store adds the unpacked snapshots to the packed
    /// content, so its figure is larger than inspect's `Size`.
    #[serde(rename = "Size")]
    pub size: i64,
}

/// `GET /images/{name}/json`, the fields dockshim reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ImageInspect {
    /// As [`ImageSummary::id`].
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "RepoTags", deserialize_with = "repo_tags")]
    pub repo_tags: Vec<String>,
    #[serde(rename = "RepoDigests", deserialize_with = "repo_digests")]
    pub repo_digests: Vec<String>,
    /// RFC 3339 creation time from the image configuration; absent from
    /// API 1.44 when the configuration has none.
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Author")]
    pub author: String,
    #[serde(rename = "Architecture")]
    pub architecture: String,
    #[serde(rename = "Os")]
    pub os: String,
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "Config", deserialize_with = "null_as_empty")]
    pub config: ImageConfig,
    #[serde(rename = "RootFS", deserialize_with = "null_as_empty")]
    pub root_fs: RootFs,
}

/// The run-time defaults an image carries. The field names are the OCI
/// image configuration's, which Docker shares, so the struct serialises
/// back into the OCI form for verbose ImageStatus answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    #[serde(rename = "User")]
    pub user: String,
    /// Keys such as `80/tcp`; the values are empty objects.
    #[serde(rename = "ExposedPorts", deserialize_with = "null_as_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "Env", deserialize_with = "null_as_empty")]
    pub env: Vec<String>,
    #[serde(rename = "Entrypoint", deserialize_with = "null_as_empty")]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Cmd", deserialize_with = "null_as_empty")]
    pub cmd: Vec<String>,
    /// Keys are container paths; the values are empty objects.
    #[serde(rename = "Volumes", deserialize_with = "null_as_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "WorkingDir")]
    pub working_dir: String,
    #[serde(rename = "Labels", deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal")]
    pub stop_signal: String,
}

/// The image's layers, bottom first, as uncompressed-content digests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RootFs {
    /// Always `layers` on Linux.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Diff IDs, `sha256:<hex>`, bottom layer first.
    #[serde(rename = "Layers", deserialize_with = "null_as_empty")]
    pub layers: Vec<String>,
}

/// One entry of `GET /images/{name}/history`, newest first. Entries that
/// made a layer carry that layer's size; the others (`ENV`, `CMD`, ...)
/// have size 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HistoryItem {
    /// Unix seconds.
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
    /// Bytes of the layer this step made.
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "Comment")]
    pub comment: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_nulls_as_empty_lists() -> Result<(), serde_json::Error> {
        let line = r#"{"Containers":-1,"Created":1795432708,"Id":"sha256:c81e","Labels":null,
            "ParentId":"","RepoDigests":["r/p@sha256:2816"],"RepoTags":null,"SharedSize":-1,
            "Size":1984241,"VirtualSize":1984241}"#;
        let summary: ImageSummary = serde_json::from_str(line)?;
        assert_eq!(summary.id, "sha256:c81e");
        assert!(summary.repo_tags.is_empty());
        assert_eq!(summary.repo_digests, ["r/p@sha256:2816"]);
        assert_eq!(summary.size, 1_984_241);
        Ok(())
    }

    #[test]
    fn inspect_reads_config_and_layers() -> Result<(), serde_json::Error> {
        let body = r#"{"Id":"sha256:f6a1","RepoTags":["busybox:latest"],"RepoDigests":null,
            "Created":"2026-11-23T10:45:59.24734303Z","Author":"","Architecture":"amd64",
            "Os":"linux","Size":10,"Config":{"User":"1000:1000","Env":null,"Cmd":["/bin/sh"],
            "Entrypoint":null,"Labels":{"a":"b"},"ExposedPorts":{"80/tcp":{}},"Volumes":null,
            "WorkingDir":"/w","StopSignal":"SIGQUIT","Hostname":""},
            "RootFS":{"Type":"layers","Layers":["sha256:5fea"]},"GraphDriver":{"Name":"overlay2"}}"#;
        let inspect: ImageInspect = serde_json::from_str(body)?;
        assert_eq!(inspect.config.user, "1000:1000");
        assert_eq!(inspect.config.cmd, ["/bin/sh"]);
        assert!(inspect.config.env.is_empty());
        assert_eq!(
            inspect.config.labels.get("a").map(String::as_str),
            Some("b")
        );
        assert!(inspect.config.exposed_ports.contains_key("80/tcp"));
        assert_eq!(inspect.root_fs.layers, ["sha256:5fea"]);
        assert!(inspect.repo_digests.is_empty());
        Ok(())
    }

    #[test]
    fn the_list_reads_alike_from_each_engine() -> Result<(), serde_json::Error> {
        // The test busybox as Docker 27.5.1 (API 1.47, overlay2) and Docker
        // 29.7.2 (API 1.55, containerd image store) list it: the same
        // image, known by its configuration digest on one and by its
        // manifest digest on the other.
        let docker_27 = r#"{"Containers":-1,"Created":1796613731,
            "Id":"sha256:bb3058c627168ca6a647576d1dce62687c8803b7dfc22516734a1e737a1915ca",
            "Labels":null,"ParentId":"",
            "RepoDigests":["127.0.0.1:5000/dockshim-test/busybox@sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b"],
            "RepoTags":["127.0.0.1:5000/dockshim-test/busybox:latest"],"SharedSize":-1,
            "Size":1984241}"#;
        let docker_29 = r#"{"Containers":1,"Created":1796613731,
            "Id":"sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b",
            "Labels":{},"ParentId":"",
            "Descriptor":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
                "digest":"sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b",
                "size":527},
            "RepoDigests":["127.0.0.1:5000/dockshim-test/busybox@sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b"],
            "RepoTags":["127.0.0.1:5000/dockshim-test/busybox:latest"],"SharedSize":-1,
            "Size":3102223}"#;
        let graph: ImageSummary = serde_json::from_str(docker_27)?;
        let containerd: ImageSummary = serde_json::from_str(docker_29)?;
        assert_eq!(graph.repo_tags, containerd.repo_tags);
        assert_eq!(graph.repo_digests, containerd.repo_digests);
        assert!(graph.id.starts_with("sha256:bb3058"));
        assert!(containerd.repo_digests[0].ends_with(&containerd.id));
        Ok(())
    }

    #[test]
    fn placeholders_of_untagged_images_are_dropped() -> Result<(), serde_json::Error> {
        // dockerd 20.10 (API 1.41) for an imported, untagged image.
        let summary: ImageSummary = serde_json::from_str(
            r#"{"Id":"sha256:5ba8","RepoTags":["<none>:<none>"],"RepoDigests":["<none>@<none>"],
                "Size":10,"VirtualSize":10}"#,
        )?;
        assert!(summary.repo_tags.is_empty());
        assert!(summary.repo_digests.is_empty());
        Ok(())
    }

    #[test]
    fn the_containerd_store_lists_its_digest_names_as_digests_only() -> Result<(), serde_json::Error>
    {
        // Docker 29.7.2 (API 1.55) for an image pulled by digest and
        // tagged, trimmed: the ID is the manifest digest.
        let inspect: ImageInspect = serde_json::from_str(
            r#"{"Id":"sha256:e1e9c3ff42175456e85a66c86de4177f42d9c4720c1786ed675deff4fb410879",
                "RepoTags":["127.0.0.1:5000/e2e/app:v1",
                    "127.0.0.1:5000/e2e/app@sha256:e1e9c3ff42175456e85a66c86de4177f42d9c4720c1786ed675deff4fb410879"],
                "RepoDigests":["127.0.0.1:5000/e2e/app@sha256:e1e9c3ff42175456e85a66c86de4177f42d9c4720c1786ed675deff4fb410879"],
                "Config":{"Cmd":["/bin/sh"]},"Architecture":"amd64","Os":"linux","Size":1070607,
                "RootFS":{"Type":"layers","Layers":["sha256:b7b9"]},
                "Descriptor":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
                    "digest":"sha256:e1e9c3ff42175456e85a66c86de4177f42d9c4720c1786ed675deff4fb410879",
                    "size":527},
                "Identity":{"Pull":[{"Repository":"127.0.0.1/e2e/app"}]}}"#,
        )?;
        assert_eq!(inspect.repo_tags, ["127.0.0.1:5000/e2e/app:v1"]);
        assert_eq!(inspect.repo_digests.len(), 1);
        assert!(inspect.created.is_empty());
        assert!(inspect.config.user.is_empty() && inspect.config.env.is_empty());
        Ok(())
    }

    #[test]
    fn inspect_tolerates_a_null_config() -> Result<(), serde_json::Error> {
        let inspect: ImageInspect =
            serde_json::from_str(r#"{"Id":"sha256:1","Config":null,"RootFS":null}"#)?;
        assert_eq!(inspect.config, ImageConfig::default());
        assert!(inspect.root_fs.layers.is_empty());
        Ok(())
    }

    #[test]
    fn config_serialises_with_the_oci_field_names() -> Result<(), serde_json::Error> {
        let config = ImageConfig {
            user: "nobody".to_owned(),
            ..ImageConfig::default()
        };
        let json = serde_json::to_value(&config)?;
        assert_eq!(json["User"], "nobody");
        assert!(json.get("WorkingDir").is_some());
        Ok(())
    }
}
