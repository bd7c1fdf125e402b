//! What dockshim keeps on disk under `--root-directory`, so it survives a
//! restart: the pod CIDR last given by UpdateRuntimeConfig here, the pod
//! sandbox checkpoints in `checkpoint`, and the CNI DELs still owed in
//! `owed`.
//!
//! Every file is written atomically (temporary file, fsync, rename, fsync of
//! the directory), so a crash leaves either the old or the new content. This
//! module never interprets Docker state; it only stores what it is given.
//!
//! Nobody but root needs to read what is kept here (network configuration,
//! port mappings, pod names): files are 0600 and every directory dockshim
//! creates is [`STATE_DIR_MODE`] (0700). A directory of dockshim's own
//! (`sandbox/`, `owed-teardown/`, the quarantine) found with a wider mode is
//! tightened to 0700, with a warning. The root directory itself is the
//! administrator's choice of place, which may be shared or a mount point,
//! so a wider mode there is only warned about: what lies in it is 0600
//! or 0700 already.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{fchmod, fstat, Mode};

pub mod checkpoint;
mod error;
pub mod owed;

pub use checkpoint::{CheckpointStore, PodSandboxCheckpoint};
pub use error::{CheckpointError, OwedTeardownError, StoreError};
pub use owed::{OwedTeardown, OwedTeardowns};

/// The file, relative to the root directory, holding the pod CIDR.
const POD_CIDR_FILE: &str = "pod-cidr";

/// Mode of every directory dockshim creates for its state.
pub const STATE_DIR_MODE: u32 = 0o700;

/// What to do about an existing state directory whose mode is wider than
/// [`STATE_DIR_MODE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WiderMode {
    /// A directory of dockshim's own: set it to [`STATE_DIR_MODE`]. A
    /// symlink at its name is refused.
    Tighten,
    /// The administrator's root directory: log a warning only.
    Warn,
}

/// Creates `path` (and any missing parent) with [`STATE_DIR_MODE`], or
/// checks the mode of the directory already there (see [`WiderMode`]).
pub fn state_dir(path: &Path, wider: WiderMode) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(path)?;
    let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if wider == WiderMode::Tighten {
        flags |= OFlag::O_NOFOLLOW;
    }
    let dir = nix::fcntl::open(path, flags, Mode::empty())?;
    let mode = fstat(&dir)?.st_mode & 0o7777;
    if mode & !STATE_DIR_MODE == 0 {
        return Ok(());
    }
    match wider {
        WiderMode::Tighten => {
            fchmod(&dir, Mode::from_bits_truncate(STATE_DIR_MODE))?;
            log::warn!(
                "{} had mode {mode:04o}; set to {STATE_DIR_MODE:04o}",
                path.display()
            );
        }
        WiderMode::Warn => log::warn!(
            "{} has mode {mode:04o}; dockshim keeps its state there and expects {STATE_DIR_MODE:04o}",
            path.display()
        ),
    }
    Ok(())
}

/// Files written here are small; anything larger is not ours.
const MAX_STORED_FILE_BYTES: u64 = 1 << 20;

/// The root directory and the files in it.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed, mode 0700) the root directory.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        state_dir(root, WiderMode::Warn).map_err(|source| StoreError {
            path: root.to_path_buf(),
            action: "create",
            source,
        })?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The pod CIDR saved by the last UpdateRuntimeConfig, if any.
    pub fn load_pod_cidr(&self) -> Result<Option<String>, StoreError> {
        let path = self.root.join(POD_CIDR_FILE);
        match read_small(&path) {
            Ok(text) => {
                let cidr = text.trim();
                Ok((!cidr.is_empty()).then(|| cidr.to_owned()))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError {
                path,
                action: "read",
                source,
            }),
        }
    }

    /// Saves the pod CIDR for the next start.
    pub fn save_pod_cidr(&self, cidr: &str) -> Result<(), StoreError> {
        let path = self.root.join(POD_CIDR_FILE);
        write_atomic(&path, format!("{cidr}\n").as_bytes()).map_err(|source| StoreError {
            path,
            action: "write",
            source,
        })
    }
}

/// Adds `id` to the ascending list `ids`. Listings are kept in order as
/// they are read, so that no sort is compiled for them.
fn insert_in_order(ids: &mut Vec<String>, id: String) {
    let at = ids.partition_point(|known| *known < id);
    ids.insert(at, id);
}

fn read_small(path: &Path) -> io::Result<String> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_STORED_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes is more than the {MAX_STORED_FILE_BYTES} a stored file may hold"),
        ));
    }
    io::read_to_string(file)
}

/// Replaces `path` with `contents` so that a crash at any point leaves
/// either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // The temporary file is ours alone; a failure to remove it only
        // leaves a dot-file the next write replaces.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_in_order_whatever_order_the_names_come_in() {
        let mut ids = Vec::new();
        for id in ["c", "a", "d", "b", "a0"] {
            insert_in_order(&mut ids, id.to_owned());
        }
        assert_eq!(ids, ["a", "a0", "b", "c", "d"]);
    }

    #[test]
    fn pod_cidr_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_pod_cidr().unwrap(), None);
        store.save_pod_cidr("10.88.0.0/16").unwrap();
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(
            reopened.load_pod_cidr().unwrap().as_deref(),
            Some("10.88.0.0/16")
        );
    }

    #[test]
    fn write_atomic_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn oversized_pod_cidr_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(POD_CIDR_FILE), vec![b'1'; 2 << 20]).unwrap();
        let err = Store::open(dir.path())
            .unwrap()
            .load_pod_cidr()
            .unwrap_err();
        assert!(err.to_string().contains("pod-cidr"), "{err}");
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_root_directory_and_its_parents_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("var/lib/dockshim");
        Store::open(&root).unwrap();
        assert_eq!(mode_of(&root), 0o700);
        assert_eq!(mode_of(&dir.path().join("var/lib")), 0o700);
    }

    #[test]
    fn a_wider_root_directory_is_left_as_the_administrator_set_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Store::open(dir.path()).unwrap();
        assert_eq!(mode_of(dir.path()), 0o755);
    }

    #[test]
    fn a_wider_directory_of_dockshim_s_own_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("sandbox");
        fs::create_dir(&own).unwrap();
        fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
        state_dir(&own, WiderMode::Tighten).unwrap();
        assert_eq!(mode_of(&own), 0o700);
    }

    #[test]
    fn a_symlink_in_place_of_a_directory_of_dockshim_s_own_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("sandbox")).unwrap();
        assert!(state_dir(&dir.path().join("sandbox"), WiderMode::Tighten).is_err());
        assert_eq!(mode_of(&elsewhere), 0o755);
    }
}
