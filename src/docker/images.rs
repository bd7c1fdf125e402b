//! The typed subsets of dockerd's image answers: `GET /images/json`,
//! `GET /images/{name}/json` and `GET /images/{name}/history`.
//!
//! Like `types`, a field that is missing or `null` reads as empty (dockerd
//! writes `null` rather than `[]` or `{}` for empty lists and maps in these
//! answers) and unknown fields are ignored. What the fields
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

use serde_json::{json, Value};

use crate::codec::json::{Fields, FromJson};

/// How dockerd's placeholders for a missing tag or digest begin.
const PLACEHOLDER_PREFIX: &str = "<none>";

/// `RepoTags` without placeholders and without digested names.
fn repo_tags(mut tags: Vec<String>) -> Vec<String> {
    tags.retain(|tag| !tag.starts_with(PLACEHOLDER_PREFIX) && !tag.contains('@'));
    tags
}

/// `RepoDigests` without placeholders.
fn repo_digests(mut digests: Vec<String>) -> Vec<String> {
    digests.retain(|digest| !digest.starts_with(PLACEHOLDER_PREFIX));
    digests
}

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSummary {
    /// `sha256:<hex>`: the configuration digest under a graph driver, the
    /// manifest or index digest under the containerd image store.
    pub id: String,
    /// Familiar `name:tag` strings; empty for an untagged image.
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` strings.
    pub repo_digests: Vec<String>,
    /// Bytes of all the image's layers, shared ones included; the
    /// containerd image store adds the unpacked snapshots to the packed
    /// content, so its figure is larger than inspect's `Size`.
    pub size: i64,
}

impl FromJson for ImageSummary {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ImageSummary {
            id: fields.field("Id"),
            repo_tags: repo_tags(fields.field("RepoTags")),
            repo_digests: repo_digests(fields.field("RepoDigests")),
            size: fields.field("Size"),
        })
    }
}

/// `GET /images/{name}/json`, the fields dockshim reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInspect {
    /// As [`ImageSummary::id`].
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// RFC 3339 creation time from the image configuration; absent from
    /// API 1.44 when the configuration has none.
    pub created: String,
    pub author: String,
    pub architecture: String,
    pub os: String,
    pub size: i64,
    pub config: ImageConfig,
    pub root_fs: RootFs,
}

impl FromJson for ImageInspect {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ImageInspect {
            id: fields.field("Id"),
            repo_tags: repo_tags(fields.field("RepoTags")),
            repo_digests: repo_digests(fields.field("RepoDigests")),
            created: fields.field("Created"),
            author: fields.field("Author"),
            architecture: fields.field("Architecture"),
            os: fields.field("Os"),
            size: fields.field("Size"),
            config: fields.field("Config"),
            root_fs: fields.field("RootFS"),
        })
    }
}

/// The run-time defaults an image carries. The field names are the OCI
/// image configuration's, which Docker shares, so [`ImageConfig::to_json`]
/// writes it back in the OCI form for verbose ImageStatus answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    pub user: String,
    /// Keys such as `80/tcp`; the values are empty objects.
    pub exposed_ports: BTreeMap<String, Value>,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Keys are container paths; the values are empty objects.
    pub volumes: BTreeMap<String, Value>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
}

impl FromJson for ImageConfig {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ImageConfig {
            user: fields.field("User"),
            exposed_ports: fields.field("ExposedPorts"),
            env: fields.field("Env"),
            entrypoint: fields.field("Entrypoint"),
            cmd: fields.field("Cmd"),
            volumes: fields.field("Volumes"),
            working_dir: fields.field("WorkingDir"),
            labels: fields.field("Labels"),
            stop_signal: fields.field("StopSignal"),
        })
    }
}

impl ImageConfig {
    /// Every field, empty ones too, under the names it was read from.
    pub fn to_json(&self) -> Value {
        json!({
            "User": self.user,
            "ExposedPorts": self.exposed_ports,
            "Env": self.env,
            "Entrypoint": self.entrypoint,
            "Cmd": self.cmd,
            "Volumes": self.volumes,
            "WorkingDir": self.working_dir,
            "Labels": self.labels,
            "StopSignal": self.stop_signal,
        })
    }
}

/// The image's layers, bottom first, as uncompressed-content digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootFs {
    /// Always `layers` on Linux.
    pub kind: String,
    /// Diff IDs, `sha256:<hex>`, bottom layer first.
    pub layers: Vec<String>,
}

impl FromJson for RootFs {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(RootFs {
            kind: fields.field("Type"),
            layers: fields.field("Layers"),
        })
    }
}

/// One entry of `GET /images/{name}/history`, newest first. Entries that
/// made a layer carry that layer's size; the others (`ENV`, `CMD`, ...)
/// have size 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryItem {
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    /// Bytes of the layer this step made.
    pub size: i64,
    pub comment: String,
}

impl FromJson for HistoryItem {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(HistoryItem {
            created: fields.field("Created"),
            created_by: fields.field("CreatedBy"),
            size: fields.field("Size"),
            comment: fields.field("Comment"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json;

    #[test]
    fn summary_reads_nulls_as_empty_lists() -> Result<(), serde_json::Error> {
        let line = r#"{"Containers":-1,"Created":1795432708,"Id":"sha256:c81e","Labels":null,
            "ParentId":"","RepoDigests":["r/p@sha256:2816"],"RepoTags":null,"SharedSize":-1,
            "Size":1984241,"VirtualSize":1984241}"#;
        let summary: ImageSummary = json::decode(line)?;
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
        let inspect: ImageInspect = json::decode(body)?;
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
        let graph: ImageSummary = json::decode(docker_27)?;
        let containerd: ImageSummary = json::decode(docker_29)?;
        assert_eq!(graph.repo_tags, containerd.repo_tags);
        assert_eq!(graph.repo_digests, containerd.repo_digests);
        assert!(graph.id.starts_with("sha256:bb3058"));
        assert!(containerd.repo_digests[0].ends_with(&containerd.id));
        Ok(())
    }

    #[test]
    fn placeholders_of_untagged_images_are_dropped() -> Result<(), serde_json::Error> {
        // dockerd 20.10 (API 1.41) for an imported, untagged image.
        let summary: ImageSummary = json::decode(
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
        let inspect: ImageInspect = json::decode(
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
            json::decode(r#"{"Id":"sha256:1","Config":null,"RootFS":null}"#)?;
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
        let json = config.to_json();
        assert_eq!(json["User"], "nobody");
        assert!(json.get("WorkingDir").is_some());
        Ok(())
    }
}
