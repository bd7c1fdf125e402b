//! Pod sandbox checkpoints: one JSON file per sandbox under
//! `<root-directory>/sandbox/<sandbox id>`, holding what must survive both a
//! dockshim restart and the sandbox container's removal — the pod's name,
//! namespace and UID, its port mappings and host-network flag, the runtime
//! handler it was run with, and how its network was set up (CNI network,
//! namespace path, pod IPs).
//!
//! The file is the one cri-dockerd writes (`version`, `name`, `namespace`,
//! `data.port_mappings`, `data.host_network`, `checksum`), so checkpoints
//! survive a switch between the two in either direction; dockshim's own
//! fields live under a top-level `dockshim` key that cri-dockerd ignores.
//! The checksum is cri-dockerd's: FNV-32a over a go-spew rendering of
//! `data` (see [`checksum`]); it does not cover the `dockshim` key.
//!
//! A file that does not parse or whose checksum does not match is logged,
//! moved to `sandbox/.corrupt/` and reported as [`CheckpointError::Corrupt`];
//! it never stops dockshim. The same store also reads the checkpoint
//! directory cri-dockerd left, without creating it
//! ([`CheckpointStore::open_existing`]), and moves an adopted checkpoint
//! out of cri-dockerd's sight ([`CheckpointStore::set_aside`]). This module
//! validates keys and stores what it is given; it never asks dockerd
//! anything.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{insert_in_order, state_dir, write_atomic, CheckpointError, WiderMode};
use crate::codec::json::{unless_empty, Fields, FromJson, OrderedObject};

/// The directory under the root directory that holds checkpoints.
pub const CHECKPOINT_DIR: &str = "sandbox";

/// The directory under [`CHECKPOINT_DIR`] that corrupt files are moved to.
/// A dot-name: no valid ID can take it, and cri-dockerd's listing skips it.
pub const QUARANTINE_DIR: &str = ".corrupt";

/// The only format version there is.
pub const CHECKPOINT_VERSION: &str = "v1";

/// Longest accepted sandbox ID (cri-dockerd's limit for checkpoint keys).
pub const MAX_ID_LEN: usize = 250;

/// A checkpoint is a few hundred bytes; anything this large is not one.
const MAX_CHECKPOINT_BYTES: u64 = 1 << 20;

/// Quarantined copies of one ID kept side by side before the oldest name
/// is reused.
const MAX_QUARANTINED_COPIES: usize = 100;

/// One port mapping as cri-dockerd stores it; every field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMapping {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: Option<String>,
    pub container_port: Option<i32>,
    pub host_port: Option<i32>,
    pub host_ip: String,
}

impl FromJson for PortMapping {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(PortMapping {
            protocol: fields.opt("protocol"),
            container_port: fields.opt("container_port"),
            host_port: fields.opt("host_port"),
            host_ip: fields.field("host_ip"),
        })
    }
}

impl PortMapping {
    /// The mapping as cri-dockerd writes it: absent fields left out.
    pub fn to_json(&self) -> OrderedObject {
        let mut object = OrderedObject::new();
        object
            .add_some("protocol", self.protocol.as_deref())
            .add_some("container_port", self.container_port)
            .add_some("host_port", self.host_port)
            .add_some("host_ip", unless_empty(self.host_ip.as_str()));
        object
    }
}

/// The checksummed part of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointData {
    /// `None` when the file has no `port_mappings` key; cri-dockerd hashes
    /// an absent list and an empty one differently.
    pub port_mappings: Option<Vec<PortMapping>>,
    pub host_network: bool,
}

impl FromJson for CheckpointData {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(CheckpointData {
            port_mappings: fields.opt("port_mappings"),
            host_network: fields.field("host_network"),
        })
    }
}

impl CheckpointData {
    /// Data as cri-dockerd would write it: no key for no port mappings.
    pub fn new(port_mappings: Vec<PortMapping>, host_network: bool) -> CheckpointData {
        CheckpointData {
            port_mappings: (!port_mappings.is_empty()).then_some(port_mappings),
            host_network,
        }
    }

    /// The port mappings, absent or not.
    pub fn port_mappings(&self) -> &[PortMapping] {
        self.port_mappings.as_deref().unwrap_or_default()
    }

    /// The data as cri-dockerd writes it.
    pub fn to_json(&self) -> OrderedObject {
        let mut object = OrderedObject::new();
        if let Some(mappings) = &self.port_mappings {
            object.add_objects("port_mappings", mappings.iter().map(PortMapping::to_json));
        }
        object.add_some("host_network", unless_empty(self.host_network));
        object
    }
}

/// dockshim's own fields, under the `dockshim` key. Checkpoints written by
/// cri-dockerd have none; every field then takes its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxNetwork {
    /// The pod's UID from the sandbox metadata.
    pub uid: String,
    /// `RunPodSandboxRequest.runtime_handler` as given; files written
    /// before it was recorded read as the default handler, `""`.
    pub runtime_handler: String,
    /// The CNI network the sandbox was (or is being) attached to; empty
    /// for host-network sandboxes and before setup started.
    pub cni_network: String,
    /// The namespace path given to the plugins as `CNI_NETNS`.
    pub netns: String,
    /// The pid whose namespace `netns` names, when it is `/proc/<pid>/ns/net`.
    pub pid: Option<u32>,
    /// The pod's primary IP.
    pub primary_ip: Option<IpAddr>,
    /// The pod's other IPs (the other family on a dual-stack node).
    pub additional_ips: Vec<IpAddr>,
    /// True once CNI ADD completed; false again after DEL.
    pub network_ready: bool,
}

impl FromJson for SandboxNetwork {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(SandboxNetwork {
            uid: fields.field("uid"),
            runtime_handler: fields.field("runtime_handler"),
            cni_network: fields.field("cni_network"),
            netns: fields.field("netns"),
            pid: fields.opt("pid"),
            primary_ip: fields.opt("primary_ip"),
            additional_ips: fields.field("additional_ips"),
            network_ready: fields.field("network_ready"),
        })
    }
}

impl SandboxNetwork {
    /// The record with empty optional fields left out.
    pub fn to_json(&self) -> OrderedObject {
        let additional_ips: Vec<String> =
            self.additional_ips.iter().map(IpAddr::to_string).collect();
        let mut object = OrderedObject::new();
        object
            .add("uid", self.uid.as_str())
            .add_some(
                "runtime_handler",
                unless_empty(self.runtime_handler.as_str()),
            )
            .add_some("cni_network", unless_empty(self.cni_network.as_str()))
            .add_some("netns", unless_empty(self.netns.as_str()))
            .add_some("pid", self.pid)
            .add_some("primary_ip", self.primary_ip.map(|ip| ip.to_string()))
            .add_some("additional_ips", unless_empty(additional_ips))
            .add("network_ready", self.network_ready);
        object
    }
}

/// A sandbox checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandboxCheckpoint {
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    pub data: CheckpointData,
    /// Absent in files cri-dockerd wrote.
    pub dockshim: Option<SandboxNetwork>,
}

impl PodSandboxCheckpoint {
    /// The file's text, keys in the order cri-dockerd writes them.
    fn to_json(&self) -> String {
        let mut file = OrderedObject::new();
        file.add("version", CHECKPOINT_VERSION)
            .add("name", self.name.as_str())
            .add("namespace", self.namespace.as_str())
            .add_object("data", self.data.to_json());
        if let Some(dockshim) = &self.dockshim {
            file.add_object("dockshim", dockshim.to_json());
        }
        file.add("checksum", checksum(&self.data));
        file.into_text()
    }
}

/// The checksum cri-dockerd stores: FNV-32a of `data` rendered the way
/// go-spew's `%#v` renders cri-dockerd's `CheckpointData` struct (with
/// sorted keys and methods disabled). The Go package and type names are
/// part of the hashed text.
pub fn checksum(data: &CheckpointData) -> u64 {
    u64::from(fnv32a(spew(data).as_bytes()))
}

fn spew(data: &CheckpointData) -> String {
    let mut out = String::from("(core.CheckpointData){PortMappings:([]*config.PortMapping)");
    match &data.port_mappings {
        None => out.push_str("<nil>"),
        Some(mappings) => {
            out.push('[');
            for (i, mapping) in mappings.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str("<*>{Protocol:(*config.Protocol)");
                spew_optional(&mut out, mapping.protocol.as_deref());
                out.push_str(" ContainerPort:(*int32)");
                spew_optional(&mut out, mapping.container_port);
                out.push_str(" HostPort:(*int32)");
                spew_optional(&mut out, mapping.host_port);
                out.push_str(" HostIP:(string)");
                out.push_str(&mapping.host_ip);
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push_str(" HostNetwork:(bool)");
    out.push_str(if data.host_network { "true" } else { "false" });
    out.push('}');
    out
}

fn spew_optional(out: &mut String, value: Option<impl fmt::Display>) {
    match value {
        Some(value) => out.push_str(&value.to_string()),
        None => out.push_str("<nil>"),
    }
}

fn fnv32a(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Checks that `id` can name a checkpoint file: cri-dockerd's key rule
/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`, at most [`MAX_ID_LEN`]
/// bytes, and not the quarantine directory's name. The rule also makes it
/// a single path component that is neither `.` nor `..`.
pub fn validate_id(id: &str) -> Result<(), CheckpointError> {
    let invalid = |reason| {
        Err(CheckpointError::InvalidId {
            id: id.chars().take(MAX_ID_LEN).collect(),
            reason,
        })
    };
    let bytes = id.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return invalid("empty");
    };
    if bytes.len() > MAX_ID_LEN {
        return invalid("longer than 250 characters");
    }
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return invalid("must start and end with a letter or digit");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return invalid("may hold only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// The checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// Opens `<root>/sandbox`, creating it if needed.
    pub fn open(root: &Path) -> Result<CheckpointStore, CheckpointError> {
        let dir = root.join(CHECKPOINT_DIR);
        state_dir(&dir, WiderMode::Tighten).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            action: "create",
            source,
        })?;
        Ok(CheckpointStore { dir })
    }

    /// The checkpoint directory of another runtime's root `root` (one
    /// cri-dockerd left), or `None` if it has none; never creates it.
    pub fn open_existing(root: &Path) -> Result<Option<CheckpointStore>, CheckpointError> {
        let dir = root.join(CHECKPOINT_DIR);
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(Some(CheckpointStore { dir })),
            Ok(_) => Err(CheckpointError::Io {
                path: dir,
                action: "open as a directory",
                source: io::Error::from(io::ErrorKind::NotADirectory),
            }),
            Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Io {
                path: dir,
                action: "open",
                source,
            }),
        }
    }

    /// The directory checkpoints are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes (or replaces) the checkpoint of sandbox `id`, atomically.
    pub fn save(&self, id: &str, checkpoint: &PodSandboxCheckpoint) -> Result<(), CheckpointError> {
        validate_id(id)?;
        let path = self.dir.join(id);
        write_atomic(&path, checkpoint.to_json().as_bytes()).map_err(|source| CheckpointError::Io {
            path,
            action: "write",
            source,
        })
    }

    /// The checkpoint of sandbox `id`. A corrupt file is moved aside and
    /// reported as [`CheckpointError::Corrupt`].
    pub fn get(&self, id: &str) -> Result<PodSandboxCheckpoint, CheckpointError> {
        validate_id(id)?;
        let path = self.dir.join(id);
        let bytes = match read_limited(&path) {
            Ok(bytes) => bytes,
            Err(source) if source.kind() == io::ErrorKind::NotFound => {
                return Err(CheckpointError::NotFound { id: id.to_owned() })
            }
            Err(source) if source.kind() == io::ErrorKind::InvalidData => {
                return Err(self.quarantine(id, source.to_string()))
            }
            Err(source) => {
                return Err(CheckpointError::Io {
                    path,
                    action: "read",
                    source,
                })
            }
        };
        decode(&bytes).map_err(|reason| self.quarantine(id, reason))
    }

    /// The IDs of all stored checkpoints, sorted. Dot-files (temporary
    /// files of writes in progress) and directories are not checkpoints.
    pub fn list(&self) -> Result<Vec<String>, CheckpointError> {
        let entries = fs::read_dir(&self.dir).map_err(|source| CheckpointError::Io {
            path: self.dir.clone(),
            action: "list",
            source,
        })?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CheckpointError::Io {
                path: self.dir.clone(),
                action: "list",
                source,
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if validate_id(&name).is_ok() {
                insert_in_order(&mut ids, name);
            }
        }
        Ok(ids)
    }

    /// Every readable checkpoint. Corrupt ones are quarantined, logged and
    /// left out, so one bad file never hides the others.
    pub fn load_all(&self) -> Result<Vec<(String, PodSandboxCheckpoint)>, CheckpointError> {
        let mut checkpoints = Vec::new();
        for id in self.list()? {
            match self.get(&id) {
                Ok(checkpoint) => checkpoints.push((id, checkpoint)),
                Err(CheckpointError::NotFound { .. }) => {}
                Err(err @ CheckpointError::Corrupt { .. }) => log::warn!("{err}"),
                Err(err) => return Err(err),
            }
        }
        Ok(checkpoints)
    }

    /// Removes the checkpoint of sandbox `id`; removing one that does not
    /// exist succeeds.
    pub fn remove(&self, id: &str) -> Result<(), CheckpointError> {
        validate_id(id)?;
        let path = self.dir.join(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CheckpointError::Io {
                path,
                action: "remove",
                source,
            }),
        }
    }

    /// Moves the checkpoint of sandbox `id` into the subdirectory `aside`,
    /// a dot-name that neither [`CheckpointStore::list`] nor cri-dockerd
    /// lists, so that it stops being a checkpoint here while its content is
    /// kept; a copy already there is replaced. The rename is made durable
    /// before this returns.
    pub fn set_aside(&self, id: &str, aside: &str) -> Result<PathBuf, CheckpointError> {
        validate_id(id)?;
        let io_error = |path: &Path, action| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io {
                path,
                action,
                source,
            }
        };
        if !aside.starts_with('.') || aside.contains('/') {
            return Err(CheckpointError::Io {
                path: self.dir.join(aside),
                action: "set a checkpoint aside in",
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
        let target_dir = self.dir.join(aside);
        fs::create_dir_all(&target_dir).map_err(io_error(&target_dir, "create"))?;
        let target = target_dir.join(id);
        fs::rename(self.dir.join(id), &target)
            .map_err(io_error(&target, "move a checkpoint to"))?;
        for dir in [&target_dir, &self.dir] {
            File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error(dir, "sync"))?;
        }
        Ok(target)
    }

    /// Moves the file of `id` into the quarantine directory and builds the
    /// error that says so.
    fn quarantine(&self, id: &str, reason: String) -> CheckpointError {
        let quarantined = self.move_aside(id);
        let err = CheckpointError::Corrupt {
            id: id.to_owned(),
            reason,
            quarantined,
        };
        log::error!("{err}");
        err
    }

    fn move_aside(&self, id: &str) -> Result<PathBuf, String> {
        let quarantine = self.dir.join(QUARANTINE_DIR);
        state_dir(&quarantine, WiderMode::Tighten)
            .map_err(|e| format!("cannot create {}: {e}", quarantine.display()))?;
        // Keep earlier corrupt copies of the same ID: each may be evidence.
        let target = (0..MAX_QUARANTINED_COPIES)
            .map(|n| match n {
                0 => quarantine.join(id),
                n => quarantine.join(format!("{id}.{n}")),
            })
            .find(|candidate| !candidate.exists())
            .unwrap_or_else(|| quarantine.join(id));
        fs::rename(self.dir.join(id), &target)
            .map_err(|e| format!("cannot move to {}: {e}", target.display()))?;
        Ok(target)
    }
}

/// Reads a checkpoint file, refusing one too large to be one
/// (`InvalidData`).
fn read_limited(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MAX_CHECKPOINT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_CHECKPOINT_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Parses and verifies a checkpoint file; the error says why it is corrupt.
fn decode(bytes: &[u8]) -> Result<PodSandboxCheckpoint, String> {
    let (checkpoint, stored) = serde_json::from_slice(bytes)
        .and_then(|file| read_file(&file))
        .map_err(|e| format!("not a checkpoint: {e}"))?;
    let expected = checksum(&checkpoint.data);
    if stored != expected {
        return Err(format!(
            "checksum {stored} does not match its data ({expected})"
        ));
    }
    Ok(checkpoint)
}

/// A checkpoint file's content and the checksum stored with it. Every key
/// but `dockshim` is required, `version` too although only `v1` exists.
fn read_file(file: &Value) -> Result<(PodSandboxCheckpoint, u64), serde_json::Error> {
    let fields = Fields::of(file)?;
    fields.required::<String>("version");
    let checkpoint = PodSandboxCheckpoint {
        name: fields.required("name"),
        namespace: fields.required("namespace"),
        data: fields.required("data"),
        dockshim: fields.opt("dockshim"),
    };
    fields.finish((checkpoint, fields.required("checksum")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one_port() -> CheckpointData {
        CheckpointData::new(
            vec![PortMapping {
                protocol: Some("tcp".to_owned()),
                container_port: Some(80),
                host_port: Some(8080),
                host_ip: "127.0.0.1".to_owned(),
            }],
            false,
        )
    }

    fn checkpoint() -> PodSandboxCheckpoint {
        PodSandboxCheckpoint {
            name: "web".to_owned(),
            namespace: "default".to_owned(),
            data: one_port(),
            dockshim: Some(SandboxNetwork {
                uid: "0d1e2f".to_owned(),
                runtime_handler: "docker".to_owned(),
                cni_network: "pods".to_owned(),
                netns: "/proc/4242/ns/net".to_owned(),
                pid: Some(4242),
                primary_ip: Some("10.88.0.7".parse().unwrap()),
                additional_ips: vec!["fd00::7".parse().unwrap()],
                network_ready: true,
            }),
        }
    }

    const ID: &str = "8f5a2a6a3f1e4b7e9c2d1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d";

    fn store() -> (tempfile::TempDir, CheckpointStore) {
        let root = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(root.path()).unwrap();
        (root, store)
    }

    #[test]
    fn checksums_match_cri_dockerd() {
        assert_eq!(
            checksum(&CheckpointData::new(Vec::new(), false)),
            2305795928
        );
        assert_eq!(checksum(&CheckpointData::new(Vec::new(), true)), 12315789);
        assert_eq!(checksum(&one_port()), 3406953414);
    }

    #[test]
    fn spew_renders_absent_fields_and_several_mappings() {
        let data = CheckpointData::new(
            vec![
                PortMapping {
                    protocol: Some("udp".to_owned()),
                    container_port: Some(53),
                    host_port: None,
                    host_ip: String::new(),
                },
                PortMapping::default(),
            ],
            false,
        );
        assert_eq!(
            spew(&data),
            "(core.CheckpointData){PortMappings:([]*config.PortMapping)[\
             <*>{Protocol:(*config.Protocol)udp ContainerPort:(*int32)53 \
             HostPort:(*int32)<nil> HostIP:(string)} \
             <*>{Protocol:(*config.Protocol)<nil> ContainerPort:(*int32)<nil> \
             HostPort:(*int32)<nil> HostIP:(string)}] HostNetwork:(bool)false}"
        );
    }

    #[test]
    fn empty_but_present_port_list_hashes_as_an_empty_slice() {
        let data = CheckpointData {
            port_mappings: Some(Vec::new()),
            host_network: false,
        };
        assert!(spew(&data).contains("([]*config.PortMapping)[] "));
    }

    #[test]
    fn file_written_by_cri_dockerd_is_read() {
        let (_root, store) = store();
        fs::write(
            store.dir().join(ID),
            r#"{"version":"v1","name":"web","namespace":"default","data":{"port_mappings":[{"protocol":"tcp","container_port":80,"host_port":8080,"host_ip":"127.0.0.1"}]},"checksum":3406953414}"#,
        )
        .unwrap();
        let read = store.get(ID).unwrap();
        assert_eq!(read.name, "web");
        assert_eq!(read.data, one_port());
        assert_eq!(read.dockshim, None);
    }

    #[test]
    fn saved_file_has_cri_dockerds_keys_and_ours_aside() {
        let (_root, store) = store();
        store.save(ID, &checkpoint()).unwrap();
        let json: Value = serde_json::from_slice(&fs::read(store.dir().join(ID)).unwrap()).unwrap();
        assert_eq!(json["version"], "v1");
        assert_eq!(json["name"], "web");
        assert_eq!(json["namespace"], "default");
        assert_eq!(json["checksum"], 3406953414u64);
        assert_eq!(
            json["data"],
            serde_json::json!({"port_mappings":[{"protocol":"tcp","container_port":80,"host_port":8080,"host_ip":"127.0.0.1"}]})
        );
        assert_eq!(json["dockshim"]["uid"], "0d1e2f");
        assert_eq!(json["dockshim"]["runtime_handler"], "docker");
        assert_eq!(json["dockshim"]["primary_ip"], "10.88.0.7");
        assert_eq!(json["dockshim"]["additional_ips"][0], "fd00::7");
    }

    #[test]
    fn save_then_get_round_trips() {
        let (_root, store) = store();
        store.save(ID, &checkpoint()).unwrap();
        assert_eq!(store.get(ID).unwrap(), checkpoint());
    }

    #[test]
    fn runtime_handler_round_trips_and_the_default_one_is_not_written() {
        let (_root, store) = store();
        let mut cp = checkpoint();
        for handler in ["docker", ""] {
            cp.dockshim.as_mut().unwrap().runtime_handler = handler.to_owned();
            store.save(ID, &cp).unwrap();
            assert_eq!(store.get(ID).unwrap(), cp);
        }
        let text = fs::read_to_string(store.dir().join(ID)).unwrap();
        assert!(!text.contains("runtime_handler"), "{text}");
    }

    #[test]
    fn file_without_a_runtime_handler_reads_as_the_default_one() {
        let (_root, store) = store();
        fs::write(
            store.dir().join(ID),
            r#"{"version":"v1","name":"web","namespace":"default","data":{"port_mappings":[{"protocol":"tcp","container_port":80,"host_port":8080,"host_ip":"127.0.0.1"}]},"dockshim":{"uid":"0d1e2f","cni_network":"pods","primary_ip":"10.88.0.7","network_ready":true},"checksum":3406953414}"#,
        )
        .unwrap();
        let record = store.get(ID).unwrap().dockshim.unwrap();
        assert_eq!(record.uid, "0d1e2f");
        assert_eq!(record.runtime_handler, "");
        assert_eq!(record.primary_ip, Some("10.88.0.7".parse().unwrap()));
    }

    #[test]
    fn host_network_without_ports_omits_the_list() {
        let (_root, store) = store();
        let mut cp = checkpoint();
        cp.data = CheckpointData::new(Vec::new(), true);
        store.save(ID, &cp).unwrap();
        let text = fs::read_to_string(store.dir().join(ID)).unwrap();
        assert!(
            text.contains(r#""data":{"host_network":true}"#) && text.contains("12315789"),
            "{text}"
        );
    }

    #[test]
    fn bad_checksum_is_quarantined_and_reported() {
        let (_root, store) = store();
        fs::write(
            store.dir().join(ID),
            r#"{"version":"v1","name":"web","namespace":"default","data":{},"checksum":1}"#,
        )
        .unwrap();
        let err = store.get(ID).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("checksum 1"), "{err}");
        assert!(!store.dir().join(ID).exists());
        assert!(store.dir().join(QUARANTINE_DIR).join(ID).is_file());
        assert!(matches!(
            store.get(ID).unwrap_err(),
            CheckpointError::NotFound { .. }
        ));
    }

    #[test]
    fn bad_json_is_quarantined_and_earlier_copies_are_kept() {
        let (_root, store) = store();
        fs::write(store.dir().join(ID), "{\"version\":").unwrap();
        assert!(store.get(ID).is_err());
        fs::write(store.dir().join(ID), "garbage").unwrap();
        assert!(store.get(ID).is_err());
        let quarantine = store.dir().join(QUARANTINE_DIR);
        assert_eq!(
            fs::read_to_string(quarantine.join(ID)).unwrap(),
            "{\"version\":"
        );
        assert_eq!(
            fs::read_to_string(quarantine.join(format!("{ID}.1"))).unwrap(),
            "garbage"
        );
    }

    #[test]
    fn load_all_skips_corrupt_files_and_keeps_the_rest() {
        let (_root, store) = store();
        store.save("good", &checkpoint()).unwrap();
        fs::write(store.dir().join("bad"), "[]").unwrap();
        let all = store.load_all().unwrap();
        assert_eq!(all, vec![("good".to_owned(), checkpoint())]);
        assert_eq!(store.list().unwrap(), ["good"]);
    }

    #[test]
    fn the_checkpoint_and_quarantine_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(root.path()).unwrap();
        fs::write(store.dir().join("c1"), b"{").unwrap();
        assert!(store.get("c1").is_err());
        for dir in [store.dir().to_owned(), store.dir().join(QUARANTINE_DIR)] {
            let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
    }

    #[test]
    fn list_skips_dot_files_and_the_quarantine() {
        let (_root, store) = store();
        store.save("b", &checkpoint()).unwrap();
        store.save("a", &checkpoint()).unwrap();
        fs::write(store.dir().join(".a.tmp"), "partial").unwrap();
        fs::create_dir(store.dir().join(QUARANTINE_DIR)).unwrap();
        assert_eq!(store.list().unwrap(), ["a", "b"]);
    }

    #[test]
    fn remove_is_idempotent() {
        let (_root, store) = store();
        store.save(ID, &checkpoint()).unwrap();
        store.remove(ID).unwrap();
        store.remove(ID).unwrap();
        assert!(matches!(
            store.get(ID).unwrap_err(),
            CheckpointError::NotFound { .. }
        ));
    }

    #[test]
    fn ids_must_be_single_safe_path_components() {
        for id in ["a", "a.b-c_d", "0", ID] {
            assert!(validate_id(id).is_ok(), "{id}");
        }
        let too_long = "a".repeat(MAX_ID_LEN + 1);
        for id in [
            "", ".", "..", "../x", "a/b", "-a", "a-", ".hidden", "a b", "é", &too_long,
        ] {
            let err = validate_id(id).unwrap_err();
            assert!(matches!(err, CheckpointError::InvalidId { .. }), "{id}");
        }
        let (_root, store) = store();
        assert!(matches!(
            store.save("../escape", &checkpoint()),
            Err(CheckpointError::InvalidId { .. })
        ));
        assert!(matches!(
            store.remove("/etc/passwd"),
            Err(CheckpointError::InvalidId { .. })
        ));
    }

    #[test]
    fn another_runtimes_missing_checkpoint_directory_is_not_created() {
        let root = tempfile::tempdir().unwrap();
        assert!(CheckpointStore::open_existing(root.path())
            .unwrap()
            .is_none());
        assert!(!root.path().join(CHECKPOINT_DIR).exists());
        fs::create_dir(root.path().join(CHECKPOINT_DIR)).unwrap();
        let store = CheckpointStore::open_existing(root.path())
            .unwrap()
            .unwrap();
        assert_eq!(store.dir(), root.path().join(CHECKPOINT_DIR));
    }

    #[test]
    fn a_checkpoint_set_aside_is_kept_but_no_longer_listed() {
        let (_root, store) = store();
        store.save(ID, &checkpoint()).unwrap();
        let moved = store.set_aside(ID, ".migrated").unwrap();
        assert_eq!(moved, store.dir().join(".migrated").join(ID));
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.get(ID).unwrap_err(),
            CheckpointError::NotFound { .. }
        ));
        let kept: Value = serde_json::from_slice(&fs::read(&moved).unwrap()).unwrap();
        assert_eq!(kept["name"], "web");
        assert!(store.set_aside(ID, "visible").is_err());
    }

    #[test]
    fn oversized_file_is_corrupt() {
        let (_root, store) = store();
        fs::write(store.dir().join(ID), vec![b' '; 2 << 20]).unwrap();
        let err = store.get(ID).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn files_keep_the_bytes_cri_dockerd_and_earlier_versions_wrote() {
        let (_root, store) = store();
        let mut full = checkpoint();
        full.data = CheckpointData::new(
            vec![
                one_port().port_mappings()[0].clone(),
                PortMapping {
                    container_port: Some(53),
                    ..PortMapping::default()
                },
            ],
            true,
        );
        let escaped = PodSandboxCheckpoint {
            name: "q\"x\u{e9}\u{1}".to_owned(),
            namespace: "n".to_owned(),
            data: CheckpointData::default(),
            dockshim: Some(SandboxNetwork::default()),
        };
        let bare = PodSandboxCheckpoint {
            name: "w".to_owned(),
            namespace: "n".to_owned(),
            data: CheckpointData::default(),
            dockshim: None,
        };
        let cases = [
            (
                full,
                concat!(
                    r#"{"version":"v1","name":"web","namespace":"default","data":{"port_mappings":["#,
                    r#"{"protocol":"tcp","container_port":80,"host_port":8080,"host_ip":"127.0.0.1"},"#,
                    r#"{"container_port":53}],"host_network":true},"dockshim":{"uid":"0d1e2f","#,
                    r#""runtime_handler":"docker","cni_network":"pods","netns":"/proc/4242/ns/net","#,
                    r#""pid":4242,"primary_ip":"10.88.0.7","additional_ips":["fd00::7"],"#,
                    r#""network_ready":true},"checksum":2178858124}"#
                ),
            ),
            (
                escaped,
                r#"{"version":"v1","name":"q\"xé\u0001","namespace":"n","data":{},"dockshim":{"uid":"","network_ready":false},"checksum":2305795928}"#,
            ),
            (
                bare,
                r#"{"version":"v1","name":"w","namespace":"n","data":{},"checksum":2305795928}"#,
            ),
        ];
        for (checkpoint, bytes) in cases {
            store.save(ID, &checkpoint).unwrap();
            assert_eq!(fs::read_to_string(store.dir().join(ID)).unwrap(), bytes);
            assert_eq!(store.get(ID).unwrap(), checkpoint);
        }
    }

    #[test]
    fn a_file_missing_a_required_key_or_with_a_bad_address_is_corrupt() {
        let (_root, store) = store();
        let empty = checksum(&CheckpointData::default());
        for (text, reason) in [
            (
                format!(r#"{{"version":"v1","namespace":"n","data":{{}},"checksum":{empty}}}"#),
                "missing field `name`",
            ),
            (
                format!(
                    r#"{{"version":"v1","name":"w","namespace":"n","data":{{}},"dockshim":{{"primary_ip":"10.88"}},"checksum":{empty}}}"#
                ),
                "dockshim: primary_ip: invalid IP address syntax",
            ),
        ] {
            fs::write(store.dir().join(ID), text).unwrap();
            match store.get(ID) {
                Err(CheckpointError::Corrupt { reason: got, .. }) => {
                    assert_eq!(got, format!("not a checkpoint: {reason}"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
