//! Cgroup trees for the unit tests: a `mountinfo`, the hierarchies it
//! names, and a pod with one container, in each of the four layouts (v1 or
//! v2, cgroupfs or systemd), all under a temporary directory.
//!
//! File contents are copied from a busybox container holding 50 MB in
//! `/dev/shm` on a 6.x kernel; the v2 files keep the v1 figures where both
//! have them, so tests can compare the layouts.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::cgroup::{Cgroup, CgroupLocator, CgroupVersion};
use super::files::Files;
use crate::api::v1;

/// The container every tree holds.
pub const ID: &str = "16e2248315155803f1cc49c952999bdb5e78695829c353806a689151509ec951";

/// Every layout, for tests that must hold in all of them.
pub const LAYOUTS: [(CgroupVersion, v1::CgroupDriver); 4] = [
    (CgroupVersion::V1, v1::CgroupDriver::Cgroupfs),
    (CgroupVersion::V1, v1::CgroupDriver::Systemd),
    (CgroupVersion::V2, v1::CgroupDriver::Cgroupfs),
    (CgroupVersion::V2, v1::CgroupDriver::Systemd),
];

/// The kubelet's pod cgroup, as it passes it with each driver.
const CGROUPFS_POD_PARENT: &str = "/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const SYSTEMD_POD_PARENT: &str =
    "kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice";
const SYSTEMD_POD_PATH: &str = "/kubepods.slice/kubepods-besteffort.slice/\
                                kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice";

const V1_MEMORY_STAT: &str = "\
cache 50032640
rss 49152
rss_huge 0
shmem 50003968
mapped_file 24576
dirty 0
writeback 0
workingset_refault_anon 0
workingset_refault_file 7
swap 0
swapcached 0
pgpgin 13080
pgpgout 853
pgfault 1229
pgmajfault 1
inactive_anon 49610752
active_anon 442368
inactive_file 4096
active_file 24576
unevictable 0
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache 50032640
total_rss 49152
total_rss_huge 0
total_shmem 50003968
total_mapped_file 24576
total_dirty 0
total_writeback 0
total_workingset_refault_anon 0
total_workingset_refault_file 7
total_swap 0
total_swapcached 0
total_pgpgin 13080
total_pgpgout 853
total_pgfault 1229
total_pgmajfault 1
total_inactive_anon 49610752
total_active_anon 442368
total_inactive_file 4096
total_active_file 24576
total_unevictable 0
";

const V2_MEMORY_STAT: &str = "\
anon 49152
file 50032640
kernel 163840
kernel_stack 16384
pagetables 32768
sec_pagetables 0
percpu 0
sock 0
vmalloc 0
shmem 50003968
zswap 0
zswapped 0
file_mapped 24576
file_dirty 0
file_writeback 0
swapcached 0
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon 49610752
active_anon 442368
inactive_file 4096
active_file 24576
unevictable 0
slab_reclaimable 61440
slab_unreclaimable 53248
slab 114688
workingset_refault_anon 0
workingset_refault_file 7
workingset_activate_anon 0
workingset_activate_file 0
workingset_restore_anon 0
workingset_restore_file 0
workingset_nodereclaim 0
pgscan 0
pgsteal 0
pgscan_kswapd 0
pgscan_direct 0
pgsteal_kswapd 0
pgsteal_direct 0
pgfault 1229
pgmajfault 1
pgrefill 0
pgactivate 0
pgdeactivate 0
pglazyfree 0
pglazyfreed 0
zswpin 0
zswpout 0
thp_fault_alloc 0
thp_collapse_alloc 0
";

const V2_CPU_STAT: &str = "\
usage_usec 271347
user_usec 238943
system_usec 32403
core_sched.force_idle_usec 0
nr_periods 0
nr_throttled 0
throttled_usec 0
nr_bursts 0
burst_usec 0
";

const QUIET_PRESSURE: &str = "\
some avg10=0.00 avg60=0.00 avg300=0.00 total=0
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
";

/// What a v1 hierarchy directory of the tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Cpu,
    Memory,
    Pids,
    /// `name=systemd` or the hybrid unified mount: mounted, never read.
    Other,
}

/// One tree, removed on drop.
#[derive(Debug)]
pub struct Tree {
    dir: TempDir,
    version: CgroupVersion,
    driver: v1::CgroupDriver,
}

impl Tree {
    pub fn new(version: CgroupVersion, driver: v1::CgroupDriver) -> Tree {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
            version,
            driver,
        };
        fs::create_dir_all(tree.proc_root().join("self")).unwrap();
        fs::write(tree.proc_root().join("self/mountinfo"), tree.mountinfo()).unwrap();
        for (mount, role) in tree.hierarchies() {
            let pod = join(&mount, &tree.pod_path());
            let container = join(&mount, &tree.container_path());
            fs::create_dir_all(&container).unwrap();
            match version {
                CgroupVersion::V1 => {
                    write_v1(&pod, role, 2);
                    write_v1(&container, role, 1);
                }
                CgroupVersion::V2 => {
                    write_v2(&pod, 2);
                    write_v2(&container, 1);
                }
            }
        }
        tree
    }

    pub fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    fn cgroup_root(&self) -> PathBuf {
        self.dir.path().join("sys/fs/cgroup")
    }

    /// The mounted hierarchies, like a hybrid v1 host (controllers apart,
    /// cpu and cpuacct together) or a pure v2 one.
    fn hierarchies(&self) -> Vec<(PathBuf, Role)> {
        let root = self.cgroup_root();
        match self.version {
            CgroupVersion::V1 => vec![
                (root.join("cpu,cpuacct"), Role::Cpu),
                (root.join("memory"), Role::Memory),
                (root.join("pids"), Role::Pids),
                (root.join("systemd"), Role::Other),
                (root.join("unified"), Role::Other),
            ],
            CgroupVersion::V2 => vec![(root, Role::Other)],
        }
    }

    fn mountinfo(&self) -> String {
        let root = self.cgroup_root();
        let root = root.display();
        let mut text = format!(
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
             31 22 0:28 / {root} rw,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
        );
        let v1_lines = [
            ("32", "cpu,cpuacct", "rw,cpu,cpuacct"),
            ("35", "memory", "rw,memory"),
            ("39", "pids", "rw,pids"),
            ("40", "systemd", "rw,xattr,name=systemd"),
        ];
        match self.version {
            CgroupVersion::V1 => {
                for (id, dir, options) in v1_lines {
                    text.push_str(&format!(
                        "{id} 31 0:{id} / {root}/{dir} rw,nosuid,nodev,noexec,relatime shared:{id} - cgroup cgroup {options}\n"
                    ));
                }
                text.push_str(&format!(
                    "41 31 0:41 / {root}/unified rw,nosuid,nodev,noexec,relatime shared:41 - cgroup2 cgroup2 rw,nsdelegate\n"
                ));
            }
            CgroupVersion::V2 => text.push_str(&format!(
                "41 22 0:26 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
            )),
        }
        text
    }

    pub fn locator(&self) -> CgroupLocator {
        CgroupLocator::discover(&self.proc_root(), self.driver, self.version).unwrap()
    }

    /// The pod's `CgroupParent` as the kubelet sets it for this driver.
    pub fn parent(&self) -> &'static str {
        match self.driver {
            v1::CgroupDriver::Cgroupfs => CGROUPFS_POD_PARENT,
            v1::CgroupDriver::Systemd => SYSTEMD_POD_PARENT,
        }
    }

    fn pod_path(&self) -> String {
        match self.driver {
            v1::CgroupDriver::Cgroupfs => CGROUPFS_POD_PARENT.to_owned(),
            v1::CgroupDriver::Systemd => SYSTEMD_POD_PATH.to_owned(),
        }
    }

    pub fn leaf(&self) -> String {
        match self.driver {
            v1::CgroupDriver::Cgroupfs => ID.to_owned(),
            v1::CgroupDriver::Systemd => format!("docker-{ID}.scope"),
        }
    }

    pub fn container_path(&self) -> String {
        format!("{}/{}", self.pod_path(), self.leaf())
    }

    /// The container's cgroup, built here independently of the locator.
    pub fn container_cgroup(&self) -> Cgroup {
        self.cgroup_at(&self.container_path())
    }

    fn cgroup_at(&self, path: &str) -> Cgroup {
        let dirs = self.hierarchies();
        match self.version {
            CgroupVersion::V1 => {
                let dir = |role| {
                    let (mount, _) = dirs.iter().find(|(_, r)| *r == role).unwrap();
                    join(mount, path)
                };
                Cgroup::per_controller(dir(Role::Cpu), dir(Role::Memory), dir(Role::Pids))
            }
            CgroupVersion::V2 => Cgroup::unified(join(&dirs[0].0, path)),
        }
    }

    /// The directory of the container's cgroup that holds `file`.
    fn container_dir_for(&self, file: &str) -> PathBuf {
        let cgroup = self.container_cgroup();
        let dir = if file.starts_with("memory.") {
            cgroup.memory_dir()
        } else if file.starts_with("pids.") || file == "cgroup.procs" {
            cgroup.pids_dir()
        } else {
            cgroup.cpu_dir()
        };
        dir.join(file)
    }

    /// Replaces one of the container's cgroup files.
    pub fn write_container(&self, file: &str, content: &str) {
        fs::write(self.container_dir_for(file), content).unwrap();
    }

    pub fn remove_container(&self, file: &str) {
        fs::remove_file(self.container_dir_for(file)).unwrap();
    }

    /// Moves the container's cgroup under `/<parent>` in every hierarchy,
    /// and returns its new path.
    pub fn move_container_to(&self, parent: &str) -> String {
        let moved = format!("/{parent}/{}", self.leaf());
        for (mount, _) in self.hierarchies() {
            fs::create_dir_all(join(&mount, &format!("/{parent}"))).unwrap();
            fs::rename(join(&mount, &self.container_path()), join(&mount, &moved)).unwrap();
        }
        moved
    }

    /// Writes `/proc/<pid>/cgroup` for a process in cgroup `path`.
    pub fn write_proc_cgroup(&self, pid: u32, path: &str) {
        let text = match self.version {
            CgroupVersion::V1 => format!(
                "12:pids:{path}\n6:memory:{path}\n4:cpu,cpuacct:{path}\n1:name=systemd:{path}\n0::{path}\n"
            ),
            CgroupVersion::V2 => format!("0::{path}\n"),
        };
        let dir = self.proc_root().join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup"), text).unwrap();
    }
}

fn join(mount: &Path, cgroup: &str) -> PathBuf {
    mount.join(cgroup.trim_start_matches('/'))
}

/// A v1 cgroup's files; the pod (`scale` 2) holds twice the container's
/// figures and a memory limit.
fn write_v1(dir: &Path, role: Role, scale: u64) {
    let files: Vec<(&str, String)> = match role {
        Role::Cpu => vec![
            ("cpuacct.usage", format!("{}\n", 271_347_002 * scale)),
            (
                "cpuacct.stat",
                format!("user {}\nsystem {}\n", 23 * scale, 3 * scale),
            ),
            ("cpu.shares", "2\n".to_owned()),
            ("cgroup.procs", "3967\n3990\n".to_owned()),
        ],
        Role::Memory => vec![
            ("memory.usage_in_bytes", format!("{}\n", 50_745_344 * scale)),
            (
                "memory.limit_in_bytes",
                if scale == 1 {
                    "9223372036854771712\n".to_owned()
                } else {
                    "209715200\n".to_owned()
                },
            ),
            ("memory.stat", V1_MEMORY_STAT.to_owned()),
            ("cgroup.procs", "3967\n3990\n".to_owned()),
        ],
        Role::Pids => vec![
            ("pids.current", format!("{}\n", 3 * scale)),
            ("pids.max", "max\n".to_owned()),
            ("cgroup.procs", "3967\n3990\n".to_owned()),
        ],
        Role::Other => vec![("cgroup.procs", "3967\n3990\n".to_owned())],
    };
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// A v2 cgroup's files; the pod (`scale` 2) holds twice the container's
/// figures.
fn write_v2(dir: &Path, scale: u64) {
    let cpu_stat = V2_CPU_STAT.replace(
        "usage_usec 271347",
        &format!("usage_usec {}", 271_347 * scale),
    );
    let files: [(&str, String); 12] = [
        (
            "cgroup.controllers",
            "cpuset cpu io memory pids\n".to_owned(),
        ),
        ("cgroup.procs", "3967\n3990\n".to_owned()),
        ("cpu.stat", cpu_stat),
        ("memory.current", format!("{}\n", 50_896_896 * scale)),
        ("memory.max", format!("{}\n", 104_857_600 * scale)),
        ("memory.stat", V2_MEMORY_STAT.to_owned()),
        ("memory.swap.current", format!("{}\n", 8192 * scale)),
        ("memory.swap.max", "max\n".to_owned()),
        ("pids.current", format!("{}\n", 3 * scale)),
        (
            "cpu.pressure",
            "some avg10=0.12 avg60=0.05 avg300=0.01 total=3521\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=1200\n"
                .to_owned(),
        ),
        ("memory.pressure", QUIET_PRESSURE.to_owned()),
        ("io.pressure", QUIET_PRESSURE.to_owned()),
    ];
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// Runs `read` over files opened and closed as read, as without kept files.
pub fn unkept<R>(read: impl FnOnce(&mut Files<'_>) -> R) -> R {
    read(&mut Files::unkept(&mut Vec::new()))
}
