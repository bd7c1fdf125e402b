//! Where a container's or a pod's cgroup lives: one directory per
//! controller the readers use (CPU accounting, memory, pids), for cgroup v1
//! (a hierarchy per controller set) and v2 (one unified hierarchy), under
//! dockerd's cgroupfs and systemd drivers.
//!
//! The hierarchies are found in `mountinfo`, not assumed at
//! `/sys/fs/cgroup/<controller>`: v1 controllers are mounted together
//! (`cpu,cpuacct`) on some hosts and apart on others, and a mount may show
//! only part of its hierarchy (a cgroup namespace, a bind mount).
//!
//! A running container's cgroup is read from `/proc/<pid>/cgroup` of its
//! main process: the kernel's own answer, right whatever `--cgroup-parent`
//! dockerd was started with and however the driver spells paths. A pid can
//! be reused once the container exits, so that answer is only taken when
//! its last path element names the container. Otherwise (not running, the
//! process just gone, `/proc` unreadable) the path is computed as dockerd
//! builds it: cgroupfs `<parent>/<id>` with `/docker` as the default
//! parent, systemd `<parent slice, expanded>/docker-<id>.scope` with
//! `system.slice` as the default. A pod's cgroup is its sandbox's
//! `CgroupParent`, which the kubelet sets to the pod-level cgroup; with no
//! parent there is no pod cgroup, only Docker's shared default.
//!
//! What `/proc/<pid>/cgroup` told is remembered by container ID and pid, so
//! a list of stats reads it once per container process, not once per call;
//! a restarted container has a new pid and is looked up again.
//!
//! This module computes paths and reads `mountinfo` and `/proc/<pid>/cgroup`;
//! it reads no figures and never calls dockerd.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::files::{parse_error, read_bounded};
use super::mountinfo::{unescape_octal, MountLine, MOUNTINFO_MAX};
use super::StatsError;
use crate::api::v1;

/// `/proc/<pid>/cgroup`: a line per v1 hierarchy, each a path of a few
/// hundred bytes at most.
const PROC_CGROUP_MAX: u64 = 16 * 1024;
/// Containers whose cgroup found through their pid is remembered; past
/// this the memory is cleared, so a caller that never prunes costs a
/// re-read, not unbounded memory.
pub const MAX_REMEMBERED: usize = 8192;

/// dockerd's parent for containers without a `CgroupParent`, cgroupfs driver.
pub const DEFAULT_CGROUPFS_PARENT: &str = "/docker";
/// dockerd's parent for containers without a `CgroupParent`, systemd driver.
pub const DEFAULT_SYSTEMD_PARENT: &str = "system.slice";

/// The cgroup version dockerd runs containers under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    /// From `GET /info` `CgroupVersion`; dockerd before API 1.40 leaves it
    /// out, and only knew v1.
    pub fn from_docker_info(value: &str) -> Result<CgroupVersion, StatsError> {
        match value {
            "1" | "" => Ok(CgroupVersion::V1),
            "2" => Ok(CgroupVersion::V2),
            other => Err(StatsError::UnsupportedCgroup {
                what: "version",
                value: other.to_owned(),
            }),
        }
    }
}

/// Parses `GET /info` `CgroupDriver`.
pub fn driver_from_docker_info(value: &str) -> Result<v1::CgroupDriver, StatsError> {
    match value {
        "cgroupfs" => Ok(v1::CgroupDriver::Cgroupfs),
        "systemd" => Ok(v1::CgroupDriver::Systemd),
        other => Err(StatsError::UnsupportedCgroup {
            what: "driver",
            value: other.to_owned(),
        }),
    }
}

/// The v1 controllers the readers need, by the name the kernel gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Cpuacct,
    Memory,
    Pids,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    /// The cgroup the mount point shows (mountinfo's root field).
    root: String,
    mount_point: PathBuf,
}

impl Hierarchy {
    /// The directory of `cgroup`, an absolute path within the hierarchy.
    fn dir(&self, cgroup: &str) -> Result<PathBuf, StatsError> {
        let root = self.root.trim_end_matches('/');
        let below = cgroup
            .strip_prefix(root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'));
        match below {
            Some(rest) => Ok(self.mount_point.join(rest.trim_start_matches('/'))),
            None => Err(StatsError::Unreachable {
                cgroup: cgroup.to_owned(),
                mount_root: self.root.clone(),
            }),
        }
    }
}

/// The directories of one cgroup, per controller. Under v2 all three are
/// the same directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    version: CgroupVersion,
    cpu: PathBuf,
    memory: PathBuf,
    pids: PathBuf,
}

impl Cgroup {
    /// A v2 cgroup at `dir`.
    pub fn unified(dir: PathBuf) -> Cgroup {
        Cgroup {
            version: CgroupVersion::V2,
            cpu: dir.clone(),
            memory: dir.clone(),
            pids: dir,
        }
    }

    /// A v1 cgroup: its directory in the cpuacct, memory and pids
    /// hierarchies (the memory one again when pids is not mounted).
    pub fn per_controller(cpuacct: PathBuf, memory: PathBuf, pids: PathBuf) -> Cgroup {
        Cgroup {
            version: CgroupVersion::V1,
            cpu: cpuacct,
            memory,
            pids,
        }
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Holds `cpuacct.*` (v1) or `cpu.stat` (v2).
    pub fn cpu_dir(&self) -> &Path {
        &self.cpu
    }

    /// Holds `memory.*`.
    pub fn memory_dir(&self) -> &Path {
        &self.memory
    }

    /// Holds `pids.current` when the pids controller is there, and
    /// `cgroup.procs` always.
    pub fn pids_dir(&self) -> &Path {
        &self.pids
    }
}

/// Finds cgroups on this host for dockerd's driver and version.
#[derive(Debug)]
pub struct CgroupLocator {
    proc_root: PathBuf,
    driver: v1::CgroupDriver,
    hierarchies: Hierarchies,
    /// By container ID: the pid whose `/proc/<pid>/cgroup` was read, and
    /// the cgroup it named.
    found: Mutex<HashMap<String, (u32, Arc<Cgroup>)>>,
}

#[derive(Debug, Clone)]
enum Hierarchies {
    V1 {
        cpuacct: Hierarchy,
        memory: Hierarchy,
        /// Absent on kernels or hosts without the pids controller.
        pids: Option<Hierarchy>,
    },
    V2(Hierarchy),
}

impl CgroupLocator {
    /// Reads `<proc_root>/self/mountinfo` to find the hierarchies.
    /// `proc_root` is `/proc` outside tests.
    pub fn discover(
        proc_root: &Path,
        driver: v1::CgroupDriver,
        version: CgroupVersion,
    ) -> Result<CgroupLocator, StatsError> {
        let mountinfo = read_bounded(&proc_root.join("self/mountinfo"), MOUNTINFO_MAX)?;
        CgroupLocator::from_mountinfo(&mountinfo, proc_root, driver, version)
    }

    /// Finds the hierarchies in the text of a `mountinfo` file.
    pub fn from_mountinfo(
        mountinfo: &str,
        proc_root: &Path,
        driver: v1::CgroupDriver,
        version: CgroupVersion,
    ) -> Result<CgroupLocator, StatsError> {
        let mounts: Vec<CgroupMount> = mountinfo.lines().filter_map(CgroupMount::parse).collect();
        let hierarchies = match version {
            CgroupVersion::V1 => {
                let find =
                    |controller: Controller| {
                        pick(mounts.iter().filter(|m| {
                            !m.unified && m.options.iter().any(|o| o == controller.name())
                        }))
                    };
                Hierarchies::V1 {
                    cpuacct: find(Controller::Cpuacct).ok_or(StatsError::NoHierarchy {
                        controller: "cpuacct",
                    })?,
                    memory: find(Controller::Memory).ok_or(StatsError::NoHierarchy {
                        controller: "memory",
                    })?,
                    pids: find(Controller::Pids),
                }
            }
            CgroupVersion::V2 => Hierarchies::V2(pick(mounts.iter().filter(|m| m.unified)).ok_or(
                StatsError::NoHierarchy {
                    controller: "cgroup2",
                },
            )?),
        };
        Ok(CgroupLocator {
            proc_root: proc_root.to_owned(),
            driver,
            hierarchies,
            found: Mutex::default(),
        })
    }

    pub fn version(&self) -> CgroupVersion {
        match self.hierarchies {
            Hierarchies::V1 { .. } => CgroupVersion::V1,
            Hierarchies::V2(_) => CgroupVersion::V2,
        }
    }

    /// The cgroup of container `id`, whose main process is `pid` (0 when
    /// not running) and whose inspect `HostConfig.CgroupParent` is
    /// `cgroup_parent`. A running container's is shared with the table
    /// that remembers it, so a list of stats copies no paths.
    pub fn container(
        &self,
        id: &str,
        cgroup_parent: &str,
        pid: u32,
    ) -> Result<Arc<Cgroup>, StatsError> {
        validate_id(id)?;
        if pid != 0 {
            if let Some((_, cgroup)) = self.found().get(id).filter(|(seen, _)| *seen == pid) {
                return Ok(Arc::clone(cgroup));
            }
            match self.container_from_pid(id, pid) {
                Ok(cgroup) => {
                    let cgroup = Arc::new(cgroup);
                    let mut found = self.found();
                    if found.len() >= MAX_REMEMBERED {
                        found.clear();
                    }
                    found.insert(id.to_owned(), (pid, Arc::clone(&cgroup)));
                    return Ok(cgroup);
                }
                Err(err) => log::debug!("cgroup of container {id} from pid {pid}: {err}"),
            }
        }
        let path = container_cgroup_path(self.driver, id, cgroup_parent)?;
        self.at(&path).map(Arc::new)
    }

    /// Forgets where the containers `keep` says are gone were found.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.found().retain(|id, _| keep(id));
    }

    /// How many containers' cgroups are remembered.
    pub fn remembered(&self) -> usize {
        self.found().len()
    }

    /// The table holds whole values replaced at once: a panic elsewhere
    /// cannot leave it half-written.
    fn found(&self) -> MutexGuard<'_, HashMap<String, (u32, Arc<Cgroup>)>> {
        self.found.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pod-level cgroup: the sandbox's `CgroupParent`, or `None` when it
    /// has none (its containers then share dockerd's default parent with
    /// every other container, which is no pod's cgroup).
    pub fn pod(&self, cgroup_parent: &str) -> Result<Option<Cgroup>, StatsError> {
        if cgroup_parent.is_empty() {
            return Ok(None);
        }
        let path = parent_cgroup_path(self.driver, cgroup_parent)?;
        self.at(&path).map(Some)
    }

    /// The cgroup at `path`, absolute within every hierarchy.
    fn at(&self, path: &str) -> Result<Cgroup, StatsError> {
        match &self.hierarchies {
            Hierarchies::V1 {
                cpuacct,
                memory,
                pids,
            } => {
                let memory_dir = memory.dir(path)?;
                let pids_dir = match pids {
                    Some(pids) => pids.dir(path)?,
                    None => memory_dir.clone(),
                };
                Ok(Cgroup::per_controller(
                    cpuacct.dir(path)?,
                    memory_dir,
                    pids_dir,
                ))
            }
            Hierarchies::V2(unified) => Ok(Cgroup::unified(unified.dir(path)?)),
        }
    }

    fn container_from_pid(&self, id: &str, pid: u32) -> Result<Cgroup, StatsError> {
        let path = self.proc_root.join(pid.to_string()).join("cgroup");
        let text = read_bounded(&path, PROC_CGROUP_MAX)?;
        let memberships = ProcCgroups::parse(&path, &text)?;
        let cgroup_of = |controller: Option<Controller>| -> Result<&str, StatsError> {
            let cgroup = memberships.find(controller).ok_or_else(|| {
                let name = controller.map_or("unified", Controller::name);
                parse_error(&path, format!("no {name} line"))
            })?;
            // The pid may have been reused by another process since the
            // container's inspect was read.
            let last = cgroup.rsplit('/').next().unwrap_or_default();
            if last.contains(id) {
                Ok(cgroup)
            } else {
                Err(parse_error(
                    &path,
                    format!("{cgroup} is not container {id}'s cgroup"),
                ))
            }
        };
        match &self.hierarchies {
            Hierarchies::V1 {
                cpuacct,
                memory,
                pids,
            } => {
                let memory_dir = memory.dir(cgroup_of(Some(Controller::Memory))?)?;
                let pids_dir = match pids {
                    Some(pids) => pids.dir(cgroup_of(Some(Controller::Pids))?)?,
                    None => memory_dir.clone(),
                };
                let cpu_dir = cpuacct.dir(cgroup_of(Some(Controller::Cpuacct))?)?;
                Ok(Cgroup::per_controller(cpu_dir, memory_dir, pids_dir))
            }
            Hierarchies::V2(unified) => Ok(Cgroup::unified(unified.dir(cgroup_of(None)?)?)),
        }
    }
}

/// Of the mounts of one hierarchy, the one showing all of it if any.
fn pick<'a>(mut mounts: impl Iterator<Item = &'a CgroupMount> + Clone) -> Option<Hierarchy> {
    let whole = mounts.clone().find(|m| m.root == "/");
    whole.or_else(|| mounts.next()).map(|m| Hierarchy {
        root: m.root.clone(),
        mount_point: m.mount_point.clone(),
    })
}

/// A `cgroup` or `cgroup2` line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    /// `cgroup2` rather than a v1 `cgroup` hierarchy.
    unified: bool,
    /// The superblock options; a v1 mount's controllers are among them.
    options: Vec<String>,
}

impl CgroupMount {
    /// `None` for lines of other filesystems or of an unexpected shape.
    fn parse(line: &str) -> Option<CgroupMount> {
        let line = MountLine::parse(line)?;
        let unified = match line.fs_type {
            "cgroup" => false,
            "cgroup2" => true,
            _ => return None,
        };
        Some(CgroupMount {
            root: unescape_octal(line.root),
            mount_point: PathBuf::from(unescape_octal(line.mount_point)),
            unified,
            options: line.super_options.split(',').map(str::to_owned).collect(),
        })
    }
}

/// The lines of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug)]
struct ProcCgroups<'a> {
    lines: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> ProcCgroups<'a> {
    fn parse(path: &Path, text: &'a str) -> Result<ProcCgroups<'a>, StatsError> {
        let mut lines = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let mut fields = line.splitn(3, ':');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(id), Some(controllers), Some(cgroup)) if cgroup.starts_with('/') => {
                    lines.push((id, controllers, cgroup));
                }
                _ => {
                    return Err(parse_error(
                        path,
                        format!("line {line:?} is not id:controllers:/path"),
                    ))
                }
            }
        }
        Ok(ProcCgroups { lines })
    }

    /// The cgroup in the v1 hierarchy holding `controller`, or with `None`
    /// the v2 one (`0::/path`).
    fn find(&self, controller: Option<Controller>) -> Option<&'a str> {
        self.lines
            .iter()
            .find(|(id, controllers, _)| match controller {
                Some(c) => controllers.split(',').any(|name| name == c.name()),
                None => *id == "0" && controllers.is_empty(),
            })
            .map(|(_, _, cgroup)| *cgroup)
    }
}

/// A container ID must be one path component.
fn validate_id(id: &str) -> Result<(), StatsError> {
    let reason = if id.is_empty() {
        "empty"
    } else if id == "." || id == ".." {
        "a relative path component"
    } else if id.contains(['/', '\0', '\n']) {
        "contains a path separator or control character"
    } else {
        return Ok(());
    };
    Err(StatsError::InvalidId {
        id: id.to_owned(),
        reason,
    })
}

/// The path dockerd gives container `id`'s cgroup within each hierarchy.
pub fn container_cgroup_path(
    driver: v1::CgroupDriver,
    id: &str,
    cgroup_parent: &str,
) -> Result<String, StatsError> {
    validate_id(id)?;
    let (parent, leaf) = match driver {
        v1::CgroupDriver::Cgroupfs => (
            if cgroup_parent.is_empty() {
                DEFAULT_CGROUPFS_PARENT
            } else {
                cgroup_parent
            },
            id.to_owned(),
        ),
        v1::CgroupDriver::Systemd => (
            if cgroup_parent.is_empty() {
                DEFAULT_SYSTEMD_PARENT
            } else {
                cgroup_parent
            },
            format!("docker-{id}.scope"),
        ),
    };
    let parent = parent_cgroup_path(driver, parent)?;
    Ok(format!("{}/{leaf}", parent.trim_end_matches('/')))
}

/// The path within each hierarchy of a `CgroupParent` as dockerd's driver
/// reads it: a path for cgroupfs (relative ones are taken from the root,
/// as dockerd does), a slice name for systemd.
pub fn parent_cgroup_path(
    driver: v1::CgroupDriver,
    cgroup_parent: &str,
) -> Result<String, StatsError> {
    let invalid = |reason: String| StatsError::InvalidCgroupParent {
        parent: cgroup_parent.to_owned(),
        reason,
    };
    match driver {
        v1::CgroupDriver::Cgroupfs => {
            let components: Vec<&str> =
                cgroup_parent.split('/').filter(|c| !c.is_empty()).collect();
            if let Some(bad) = components.iter().find(|c| **c == "." || **c == "..") {
                return Err(invalid(format!("has a {bad:?} component")));
            }
            Ok(format!("/{}", components.join("/")))
        }
        v1::CgroupDriver::Systemd => expand_slice(cgroup_parent).map_err(invalid),
    }
}

/// systemd's path for a slice: each dash adds a level, so
/// `kubepods-besteffort-pod1.slice` lives at
/// `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice`.
pub fn expand_slice(slice: &str) -> Result<String, String> {
    if slice == "-.slice" {
        return Ok("/".to_owned());
    }
    let name = slice.strip_suffix(".slice").ok_or_else(|| {
        "a systemd cgroup parent must be a slice named like name.slice".to_owned()
    })?;
    if name.contains('/') {
        return Err("a slice name has no '/'".to_owned());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if part.is_empty() {
            return Err("a slice name has no empty part between dashes".to_owned());
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::fixture::{self, ID};

    const SYSTEMD: v1::CgroupDriver = v1::CgroupDriver::Systemd;
    const CGROUPFS: v1::CgroupDriver = v1::CgroupDriver::Cgroupfs;

    #[test]
    fn slices_expand_to_their_nested_path() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("kubepods-besteffort-pod0a1b_2c3d.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b_2c3d.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "kubepods",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            ".slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_paths_follow_the_driver_and_default_parent() {
        assert_eq!(
            container_cgroup_path(CGROUPFS, "abc", "").unwrap(),
            "/docker/abc"
        );
        assert_eq!(
            container_cgroup_path(CGROUPFS, "abc", "/kubepods/besteffort/pod1/").unwrap(),
            "/kubepods/besteffort/pod1/abc"
        );
        assert_eq!(
            container_cgroup_path(CGROUPFS, "abc", "kubepods/pod1").unwrap(),
            "/kubepods/pod1/abc"
        );
        assert_eq!(
            container_cgroup_path(SYSTEMD, "abc", "").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            container_cgroup_path(SYSTEMD, "abc", "kubepods-burstable-pod1.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/docker-abc.scope"
        );
    }

    #[test]
    fn parents_and_ids_that_escape_the_hierarchy_are_refused() {
        let err = container_cgroup_path(CGROUPFS, "abc", "/kubepods/../../etc").unwrap_err();
        assert!(
            matches!(err, StatsError::InvalidCgroupParent { .. }),
            "{err}"
        );
        let err = container_cgroup_path(SYSTEMD, "abc", "/kubepods/pod1").unwrap_err();
        assert!(
            matches!(err, StatsError::InvalidCgroupParent { .. }),
            "{err}"
        );
        for id in ["", "..", "a/b"] {
            let err = container_cgroup_path(CGROUPFS, id, "").unwrap_err();
            assert!(matches!(err, StatsError::InvalidId { .. }), "{id:?}: {err}");
        }
    }

    #[test]
    fn mountinfo_finds_comounted_and_separate_v1_hierarchies() {
        let mountinfo = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        let locator = CgroupLocator::from_mountinfo(
            mountinfo,
            Path::new("/proc"),
            CGROUPFS,
            CgroupVersion::V1,
        )
        .unwrap();
        let cgroup = locator.container(ID, "", 0).unwrap();
        let dir =
            |controller: &str| PathBuf::from(format!("/sys/fs/cgroup/{controller}/docker/{ID}"));
        assert_eq!(
            cgroup,
            Arc::new(Cgroup::per_controller(
                dir("cpu,cpuacct"),
                dir("memory"),
                dir("pids")
            ))
        );

        let locator = CgroupLocator::from_mountinfo(
            mountinfo,
            Path::new("/proc"),
            SYSTEMD,
            CgroupVersion::V2,
        )
        .unwrap();
        let cgroup = locator.pod("kubepods-pod1.slice").unwrap().unwrap();
        assert_eq!(
            cgroup,
            Cgroup::unified("/sys/fs/cgroup/unified/kubepods.slice/kubepods-pod1.slice".into())
        );
    }

    #[test]
    fn a_missing_hierarchy_is_reported_and_pids_falls_back_to_memory() {
        let only_cpu = "32 31 0:29 / /cg/cpuacct rw - cgroup cgroup rw,cpuacct\n";
        let err = CgroupLocator::from_mountinfo(
            only_cpu,
            Path::new("/proc"),
            CGROUPFS,
            CgroupVersion::V1,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                StatsError::NoHierarchy {
                    controller: "memory"
                }
            ),
            "{err}"
        );
        let err = CgroupLocator::from_mountinfo(
            only_cpu,
            Path::new("/proc"),
            CGROUPFS,
            CgroupVersion::V2,
        )
        .unwrap_err();
        assert!(matches!(err, StatsError::NoHierarchy { .. }), "{err}");

        let no_pids = "32 31 0:29 / /cg/cpuacct rw - cgroup cgroup rw,cpuacct\n\
                       33 31 0:30 / /cg/memory rw - cgroup cgroup rw,memory\n";
        let locator =
            CgroupLocator::from_mountinfo(no_pids, Path::new("/proc"), CGROUPFS, CgroupVersion::V1)
                .unwrap();
        let cgroup = locator.container("abc", "", 0).unwrap();
        assert_eq!(cgroup.pids_dir(), Path::new("/cg/memory/docker/abc"));
    }

    #[test]
    fn a_partly_mounted_hierarchy_maps_paths_below_its_root() {
        // A mount point with a space, and a bind mount of part of the tree
        // listed before the whole one.
        let mountinfo = "\
50 31 0:38 /kubepods /mnt/part rw - cgroup2 cgroup2 rw
41 31 0:38 / /sys/fs/cgroup\\040v2 rw - cgroup2 cgroup2 rw
";
        let locator = CgroupLocator::from_mountinfo(
            mountinfo,
            Path::new("/proc"),
            CGROUPFS,
            CgroupVersion::V2,
        )
        .unwrap();
        let cgroup = locator.pod("/kubepods/pod1").unwrap().unwrap();
        assert_eq!(
            cgroup.memory_dir(),
            Path::new("/sys/fs/cgroup v2/kubepods/pod1")
        );

        let only_part = "50 31 0:38 /kubepods /mnt/part rw - cgroup2 cgroup2 rw\n";
        let locator = CgroupLocator::from_mountinfo(
            only_part,
            Path::new("/proc"),
            CGROUPFS,
            CgroupVersion::V2,
        )
        .unwrap();
        let cgroup = locator.pod("/kubepods/pod1").unwrap().unwrap();
        assert_eq!(cgroup.cpu_dir(), Path::new("/mnt/part/pod1"));
        let err = locator.container("abc", "", 0).unwrap_err();
        assert!(matches!(err, StatsError::Unreachable { .. }), "{err}");
        // A sibling whose name merely starts with the root is outside it.
        let err = locator.pod("/kubepods-other").unwrap_err();
        assert!(matches!(err, StatsError::Unreachable { .. }), "{err}");
    }

    #[test]
    fn no_parent_means_no_pod_cgroup() {
        let tree = fixture::Tree::new(CgroupVersion::V1, CGROUPFS);
        assert_eq!(tree.locator().pod("").unwrap(), None);
    }

    #[test]
    fn every_layout_locates_the_computed_cgroup() {
        for (version, driver) in fixture::LAYOUTS {
            let tree = fixture::Tree::new(version, driver);
            let cgroup = tree.locator().container(ID, tree.parent(), 0).unwrap();
            assert_eq!(*cgroup, tree.container_cgroup(), "{version:?} {driver:?}");
            assert!(cgroup.memory_dir().is_dir(), "{version:?} {driver:?}");
            let pod = tree.locator().pod(tree.parent()).unwrap().unwrap();
            assert!(pod.cpu_dir().is_dir(), "{version:?} {driver:?}");
            assert_eq!(pod.cpu_dir(), cgroup.cpu_dir().parent().unwrap());
        }
    }

    #[test]
    fn a_running_container_is_located_through_its_pid() {
        for (version, driver) in fixture::LAYOUTS {
            let tree = fixture::Tree::new(version, driver);
            // dockerd was started with another default parent: only
            // /proc/<pid>/cgroup knows where the container went.
            let moved = tree.move_container_to("elsewhere");
            tree.write_proc_cgroup(4242, &moved);
            let cgroup = tree.locator().container(ID, "", 4242).unwrap();
            assert!(
                cgroup.memory_dir().ends_with(&moved[1..]),
                "{version:?} {driver:?}"
            );
            assert!(cgroup.memory_dir().is_dir(), "{version:?} {driver:?}");
        }
    }

    #[test]
    fn a_container_process_is_looked_up_once_and_again_after_a_restart() {
        let tree = fixture::Tree::new(CgroupVersion::V1, CGROUPFS);
        let locator = tree.locator();
        tree.write_proc_cgroup(4242, &tree.container_path());
        assert_eq!(
            *locator.container(ID, "", 4242).unwrap(),
            tree.container_cgroup()
        );
        assert_eq!(locator.remembered(), 1);

        // The same process: its cgroup file is not read again.
        let elsewhere = format!("/elsewhere/{}", tree.leaf());
        tree.write_proc_cgroup(4242, &elsewhere);
        assert_eq!(
            *locator.container(ID, "", 4242).unwrap(),
            tree.container_cgroup()
        );

        // A new process (the container restarted) is looked up.
        tree.write_proc_cgroup(4343, &elsewhere);
        let moved = locator.container(ID, "", 4343).unwrap();
        assert!(moved.memory_dir().ends_with(&elsewhere[1..]));

        locator.retain(|id| id != ID);
        assert_eq!(locator.remembered(), 0);
    }

    #[test]
    fn a_reused_pid_is_not_trusted() {
        let tree = fixture::Tree::new(CgroupVersion::V2, CGROUPFS);
        tree.write_proc_cgroup(4242, "/user.slice/session-1.scope");
        let cgroup = tree.locator().container(ID, tree.parent(), 4242).unwrap();
        assert_eq!(*cgroup, tree.container_cgroup());
    }

    #[test]
    fn an_unreadable_pid_falls_back_to_the_computed_path() {
        let tree = fixture::Tree::new(CgroupVersion::V1, SYSTEMD);
        let cgroup = tree
            .locator()
            .container(ID, tree.parent(), 999_999)
            .unwrap();
        assert_eq!(*cgroup, tree.container_cgroup());
    }

    #[test]
    fn proc_cgroup_lines_are_matched_by_controller() {
        let text = "\
12:pids:/docker/abc
4:cpu,cpuacct:/docker/abc
1:name=systemd:/docker/abc
0::/docker/abc
";
        let lines = ProcCgroups::parse(Path::new("cgroup"), text).unwrap();
        assert_eq!(lines.find(Some(Controller::Cpuacct)), Some("/docker/abc"));
        assert_eq!(lines.find(Some(Controller::Memory)), None);
        assert_eq!(lines.find(None), Some("/docker/abc"));
        assert!(ProcCgroups::parse(Path::new("cgroup"), "garbage\n").is_err());
    }

    #[test]
    fn docker_info_values_are_parsed() {
        assert_eq!(
            CgroupVersion::from_docker_info("2").unwrap(),
            CgroupVersion::V2
        );
        assert_eq!(
            CgroupVersion::from_docker_info("").unwrap(),
            CgroupVersion::V1
        );
        assert!(CgroupVersion::from_docker_info("3").is_err());
        assert_eq!(driver_from_docker_info("systemd").unwrap(), SYSTEMD);
        assert!(driver_from_docker_info("none").is_err());
    }
}
