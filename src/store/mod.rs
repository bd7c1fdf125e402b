//! What dockshim keeps on disk under `--root-directory`, so it survives a
//! restart: the pod CIDR last given by UpdateRuntimeConfig here, the pod
//! sandbox checkpoints in `checkpoint`, and the CNI DELs still owed in
//! `owed`.
//!
//! Every file is written atomically (temporary file, fsync, rename, fsync of
//! the directory), so a crash leaves either the old or the new content. This
//! module never interprets Docker state; it only stores what it is given.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::grpc::{Code, Status};

pub mod checkpoint;
pub mod owed;

pub use checkpoint::{CheckpointError, CheckpointStore, PodSandboxCheckpoint};
pub use owed::{OwedTeardown, OwedTeardownError, OwedTeardowns};

/// The file, relative to the root directory, holding the pod CIDR.
const POD_CIDR_FILE: &str = "pod-cidr";

/// Files written here are small; anything larger is not ours.
const MAX_STORED_FILE_BYTES: u64 = 1 << 20;

/// A failed read or write of a stored file.
#[derive(Debug)]
pub struct StoreError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: io::Error,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Status {
        Status::new(Code::Internal, err.to_string())
    }
}

/// The root directory and the files in it.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed, mode 0700) the root directory.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(root).map_err(|source| StoreError {
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
}
