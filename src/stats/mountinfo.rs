//! Reading `/proc/<pid>/mountinfo`: the escapes of its fields, the size it
//! may reach, and the upper directory of an overlay mount, which is where
//! the containerd image store keeps a running container's writable layer
//! (dockerd names no such directory there, see
//! `vendor-docs/container-storage.md`).
//!
//! It parses text only; the callers read the file.

use std::path::{Path, PathBuf};

/// `/proc/self/mountinfo` of a node with thousands of mounts (a busy
/// Kubernetes node has several per pod).
pub const MOUNTINFO_MAX: u64 = 8 << 20;
/// The filesystem type of an overlay mount, as mountinfo gives it.
const OVERLAY_TYPE: &str = "overlay";
/// The super option naming an overlay's writable directory.
const UPPERDIR_OPTION: &str = "upperdir=";

/// One line of mountinfo, the fields this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountLine<'a> {
    /// Still escaped.
    pub root: &'a str,
    /// Still escaped.
    pub mount_point: &'a str,
    pub fs_type: &'a str,
    /// Still escaped, comma-separated.
    pub super_options: &'a str,
}

impl MountLine<'_> {
    /// `id parent major:minor root mount-point options [optional...] - type source super-options`;
    /// `None` for a line of an unexpected shape.
    pub fn parse(line: &str) -> Option<MountLine<'_>> {
        let (mount, filesystem) = line.split_once(" - ")?;
        let mut mount_fields = mount.split(' ');
        let root = mount_fields.nth(3)?;
        let mount_point = mount_fields.next()?;
        let mut fs_fields = filesystem.split(' ');
        let fs_type = fs_fields.next()?;
        let super_options = fs_fields.nth(1).unwrap_or_default();
        Some(MountLine {
            root,
            mount_point,
            fs_type,
            super_options,
        })
    }
}

/// The upper directory of the overlay mounted at `mount_point`, from the
/// text of a mountinfo file; `None` when nothing, or something other than
/// an overlay with an upper directory, is mounted there. The last mount at
/// that point is the one on top, the one the path shows.
pub fn overlay_upper_dir(mountinfo: &str, mount_point: &Path) -> Option<PathBuf> {
    let top = mountinfo
        .lines()
        .rev()
        .filter_map(MountLine::parse)
        .find(|line| Path::new(&unescape_octal(line.mount_point)) == mount_point)?;
    if top.fs_type != OVERLAY_TYPE {
        return None;
    }
    // The kernel escapes commas inside an option's value, so a plain split
    // keeps each option whole.
    top.super_options
        .split(',')
        .find_map(|option| option.strip_prefix(UPPERDIR_OPTION))
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(unescape_octal(dir)))
}

/// Undoes mountinfo's `\ooo` escapes (of space, tab, newline and backslash
/// in paths, and of commas too in super option values).
pub fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| {
                let text = std::str::from_utf8(digits).ok()?;
                u8::from_str_radix(text, 8).ok()
            });
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SNAPSHOTS: &str =
        "/var/lib/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots";

    /// Docker 29.7.2 with the containerd image store, one running
    /// container, trimmed.
    fn node_mountinfo() -> String {
        format!(
            "\
24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 24 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
51 24 0:40 / /var/lib/docker/rootfs/overlayfs/6608 rw,relatime shared:4 - overlay overlay \
rw,lowerdir={SNAPSHOTS}/2/fs:{SNAPSHOTS}/1/fs,upperdir={SNAPSHOTS}/3/fs,workdir={SNAPSHOTS}/3/work
52 24 0:41 / /var/lib/docker/rootfs/overlayfs/77aa rw,relatime shared:5 - overlay overlay \
rw,lowerdir={SNAPSHOTS}/1/fs,upperdir={SNAPSHOTS}/9/fs,workdir={SNAPSHOTS}/9/work
"
        )
    }

    #[test]
    fn the_upper_dir_of_a_container_s_rootfs_is_found_by_its_mount_point() {
        let mountinfo = node_mountinfo();
        assert_eq!(
            overlay_upper_dir(
                &mountinfo,
                Path::new("/var/lib/docker/rootfs/overlayfs/6608")
            ),
            Some(PathBuf::from(format!("{SNAPSHOTS}/3/fs")))
        );
        assert_eq!(
            overlay_upper_dir(
                &mountinfo,
                Path::new("/var/lib/docker/rootfs/overlayfs/77aa")
            ),
            Some(PathBuf::from(format!("{SNAPSHOTS}/9/fs")))
        );
    }

    #[test]
    fn an_unmounted_rootfs_has_no_upper_dir() {
        let mountinfo = node_mountinfo();
        let stopped = Path::new("/var/lib/docker/rootfs/overlayfs/0bad");
        assert_eq!(overlay_upper_dir(&mountinfo, stopped), None);
        // A prefix of a mount point is not that mount point.
        let prefix = Path::new("/var/lib/docker/rootfs/overlayfs/66");
        assert_eq!(overlay_upper_dir(&mountinfo, prefix), None);
    }

    #[test]
    fn only_an_overlay_with_an_upper_dir_counts() {
        let mountinfo = "\
30 24 8:1 /snapshots/4/fs /mnt/bind rw - ext4 /dev/sda1 rw
31 24 0:50 / /mnt/read-only rw - overlay overlay ro,lowerdir=/a:/b
";
        assert_eq!(overlay_upper_dir(mountinfo, Path::new("/mnt/bind")), None);
        assert_eq!(
            overlay_upper_dir(mountinfo, Path::new("/mnt/read-only")),
            None
        );
    }

    #[test]
    fn the_mount_on_top_is_the_one_that_counts() {
        let mountinfo = "\
40 24 0:50 / /mnt/root rw - overlay overlay rw,lowerdir=/l,upperdir=/under/fs,workdir=/under/work
41 40 8:1 / /mnt/root rw - ext4 /dev/sdb1 rw
42 24 0:51 / /mnt/twice rw - ext4 /dev/sdb2 rw
43 42 0:52 / /mnt/twice rw - overlay overlay rw,lowerdir=/l,upperdir=/over/fs,workdir=/over/work
";
        assert_eq!(overlay_upper_dir(mountinfo, Path::new("/mnt/root")), None);
        assert_eq!(
            overlay_upper_dir(mountinfo, Path::new("/mnt/twice")),
            Some(PathBuf::from("/over/fs"))
        );
    }

    #[test]
    fn escaped_paths_are_read_back() {
        let mountinfo = "\
44 24 0:53 / /run/data\\040root/rootfs/overlayfs/c1 rw shared:9 master:2 - overlay overlay \
rw,lowerdir=/l,upperdir=/run/data\\040root/snap\\054shots/5/fs,workdir=/w
";
        assert_eq!(
            overlay_upper_dir(mountinfo, Path::new("/run/data root/rootfs/overlayfs/c1")),
            Some(PathBuf::from("/run/data root/snap,shots/5/fs"))
        );
        assert_eq!(unescape_octal("a\\134b\\011c\\012"), "a\\b\tc\n");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn lines_of_another_shape_are_skipped() {
        assert_eq!(MountLine::parse("garbage"), None);
        assert_eq!(MountLine::parse("1 2 3 - overlay"), None);
        let line = MountLine::parse("1 2 0:3 / /x rw - tmpfs tmpfs").unwrap();
        assert_eq!(
            (line.mount_point, line.fs_type, line.super_options),
            ("/x", "tmpfs", "")
        );
    }
}
