//! The `/proc`, cgroup and mountinfo parsers behind the stats calls
//! (`stats`).
//!
//! The first byte picks the mode.
//! - 0: texts, each a two-byte length and that many bytes: mountinfo
//!   (`MountLine`, `overlay_upper_dir`, `unescape_octal`),
//!   `/proc/<pid>/net/dev`, a pressure file, and a `CgroupParent` with a
//!   container ID for both cgroup drivers.
//! - 1: a cgroup tree: mountinfo and `/proc/<pid>/cgroup` texts, then the
//!   contents of every file a cgroup reading opens, written into a
//!   scratch tree that the mountinfo's `/CG` mount point is pointed at;
//!   then the container's cgroup is located and read, as the stats calls
//!   do.
//!
//! Asserts, for every input: no panic; a cgroup path built from a
//! `CgroupParent` is absolute and never climbs (`.` or `..`) out of the
//! hierarchy; unescaping text without a backslash changes nothing; a
//! container's cgroup found from the tree lies within a mount point the
//! mountinfo names.
#![cfg_attr(afl, no_main)]

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use dockshim::api::v1::CgroupDriver;
use dockshim::stats::cgroup::{container_cgroup_path, parent_cgroup_path};
use dockshim::stats::mountinfo::{overlay_upper_dir, unescape_octal, MountLine};
use dockshim::stats::{
    network, psi, read_usage, Cgroup, CgroupLocator, CgroupVersion, CpuSampler, Files,
};
use dockshim_fuzz::{scratch_dir, Cursor};

const ID: &str = "16e2248315155803f1cc49c952999bdb5e78695829c353806a689151509ec951";
const PID: u32 = 4242;

/// Every file a cgroup reading may open, v1 and v2.
const CGROUP_FILES: [&str; 17] = [
    "cgroup.controllers",
    "cgroup.procs",
    "cpu.pressure",
    "cpu.stat",
    "cpuacct.stat",
    "cpuacct.usage",
    "io.pressure",
    "memory.current",
    "memory.limit_in_bytes",
    "memory.max",
    "memory.pressure",
    "memory.stat",
    "memory.swap.current",
    "memory.swap.max",
    "memory.usage_in_bytes",
    "pids.current",
    "pids.max",
];

fn text<'a>(cursor: &mut Cursor<'a>) -> String {
    let len = usize::from(cursor.u16());
    String::from_utf8_lossy(cursor.take(len)).into_owned()
}

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    match cursor.u8() % 2 {
        0 => texts(&mut cursor),
        _ => tree(&mut cursor),
    }
}

fn texts(cursor: &mut Cursor<'_>) {
    let mountinfo = text(cursor);
    for line in mountinfo.lines() {
        if let Some(mount) = MountLine::parse(line) {
            for field in [mount.root, mount.mount_point, mount.super_options] {
                let plain = unescape_octal(field);
                if !field.contains('\\') {
                    assert_eq!(plain, field);
                }
            }
        }
    }
    let _ = overlay_upper_dir(&mountinfo, Path::new("/var/lib/docker/overlay2/abc/merged"));
    let _ = network::parse(Path::new("/proc/1/net"), "dev", &text(cursor));
    let _ = psi::parse(Path::new("/sys/fs/cgroup"), "cpu.pressure", &text(cursor));
    let parent = text(cursor);
    let id = text(cursor);
    for driver in [CgroupDriver::Cgroupfs, CgroupDriver::Systemd] {
        for path in [
            parent_cgroup_path(driver, &parent),
            container_cgroup_path(driver, &id, &parent),
            container_cgroup_path(driver, ID, &parent),
        ]
        .into_iter()
        .flatten()
        {
            assert!(path.starts_with('/'), "{path:?}");
            assert!(
                path.split('/').all(|c| c != "." && c != ".."),
                "{path:?} from {parent:?}"
            );
        }
    }
}

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch_dir("stats"))
}

fn tree(cursor: &mut Cursor<'_>) {
    let flags = cursor.u8();
    let version = if flags & 1 == 0 {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    };
    let driver = if flags & 2 == 0 {
        CgroupDriver::Cgroupfs
    } else {
        CgroupDriver::Systemd
    };
    let root = scratch();
    let _ = fs::remove_dir_all(root);
    let mounts = root.join("cg");
    let proc_root = root.join("proc");
    let mountinfo = text(cursor).replace("/CG", &mounts.to_string_lossy());
    let proc_cgroup = text(cursor);
    let leaf = text(cursor);
    // The container's cgroup: wherever its /proc/<pid>/cgroup line and
    // the mountinfo lead, kept inside the scratch tree.
    let dir = mounts.join(leaf.trim_start_matches('/'));
    if !dir.starts_with(&mounts)
        || dir
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return;
    }
    // Best effort: a path no file can have (a NUL, a name over 255 bytes)
    // or a name the input made a directory of is left out of the tree.
    let write = |path: &Path, contents: &str| {
        if let Some(parent) = path.parent() {
            if fs::create_dir_all(parent).is_err() {
                return;
            }
        }
        let _ = fs::write(path, contents);
    };
    write(&proc_root.join(format!("{PID}/cgroup")), &proc_cgroup);
    write(&proc_root.join("self/mountinfo"), &mountinfo);
    for name in CGROUP_FILES {
        if cursor.is_empty() {
            break;
        }
        write(&dir.join(name), &text(cursor));
    }

    let sampler = CpuSampler::new();
    for cgroup in [
        Cgroup::unified(dir.clone()),
        Cgroup::per_controller(dir.clone(), dir.clone(), dir.clone()),
    ] {
        let mut buf = Vec::new();
        let _ = read_usage(&cgroup, &mut Files::unkept(&mut buf), &sampler, ID, 1);
        let _ = read_usage(
            &cgroup,
            &mut Files::unkept(&mut buf),
            &sampler,
            ID,
            2_000_000_001,
        );
    }
    let Ok(locator) = CgroupLocator::discover(&proc_root, driver, version) else {
        return;
    };
    if let Ok(cgroup) = locator.container(ID, "", PID) {
        let mount_points: Vec<PathBuf> = mountinfo
            .lines()
            .filter_map(MountLine::parse)
            .map(|m| PathBuf::from(unescape_octal(m.mount_point)))
            .collect();
        for dir in [cgroup.cpu_dir(), cgroup.memory_dir(), cgroup.pids_dir()] {
            assert!(
                mount_points.iter().any(|m| dir.starts_with(m)),
                "{} is outside every mount point",
                dir.display()
            );
        }
        let _ = read_usage(
            &cgroup,
            &mut Files::unkept(&mut Vec::new()),
            &sampler,
            ID,
            3_000_000_002,
        );
    }
}

dockshim_fuzz::fuzz_target!(run);
