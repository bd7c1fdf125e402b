//! Decoding what survives a restart (`store`): sandbox checkpoints, in
//! cri-dockerd's format with its checksum, and owed CNI teardowns.
//!
//! The first byte picks what the rest is.
//! - 0: a checkpoint file as found on disk.
//! - 1: a checkpoint file whose `checksum` this target sets right first
//!   (when its `data` decodes), so that mutations reach every field
//!   instead of dying at the checksum.
//! - 2: an owed-teardown record as found on disk.
//!
//! Asserts, for every input: no panic; a checkpoint that loads, saved
//! again and loaded, is the same checkpoint; one that does not load is
//! reported corrupt and moved aside intact, never left in place or lost;
//! an owed teardown that loads, recorded again and loaded, is the same.
#![cfg_attr(afl, no_main)]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use dockshim::codec::json::FromJson;
use dockshim::store::checkpoint::{checksum, CheckpointData, QUARANTINE_DIR};
use dockshim::store::owed::OWED_TEARDOWN_DIR;
use dockshim::store::{CheckpointError, CheckpointStore, OwedTeardowns};
use dockshim_fuzz::{scratch_dir, Cursor};

const ID: &str = "8f5a2a6a3f1e4b7e9c2d1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d";
const AGAIN: &str = "again";

fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| scratch_dir("store"))
}

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    match cursor.u8() % 3 {
        0 => checkpoint(cursor.rest().to_vec()),
        1 => checkpoint(with_checksum(cursor.rest())),
        _ => owed(cursor.rest()),
    }
}

fn with_checksum(bytes: &[u8]) -> Vec<u8> {
    let Ok(mut file) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return bytes.to_vec();
    };
    let data = file
        .get("data")
        .and_then(|data| CheckpointData::from_json(data).ok());
    if let (Some(data), Some(object)) = (data, file.as_object_mut()) {
        object.insert("checksum".to_owned(), checksum(&data).into());
    }
    serde_json::to_vec(&file).unwrap_or_else(|e| panic!("re-encoding a JSON value: {e}"))
}

fn checkpoint(bytes: Vec<u8>) {
    let store = CheckpointStore::open(root())
        .unwrap_or_else(|e| panic!("checkpoint store in {}: {e}", root().display()));
    let quarantine = store.dir().join(QUARANTINE_DIR);
    let _ = fs::remove_dir_all(&quarantine);
    let path = store.dir().join(ID);
    fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match store.get(ID) {
        Ok(checkpoint) => {
            store
                .save(AGAIN, &checkpoint)
                .unwrap_or_else(|e| panic!("saving a checkpoint that loaded: {e}"));
            let again = store
                .get(AGAIN)
                .unwrap_or_else(|e| panic!("loading a checkpoint just saved: {e}"));
            assert_eq!(again, checkpoint);
        }
        Err(CheckpointError::Corrupt { quarantined, .. }) => {
            let moved = quarantined.unwrap_or_else(|e| panic!("not moved aside: {e}"));
            assert!(!path.exists(), "a corrupt checkpoint was left in place");
            let kept = fs::read(&moved).unwrap_or_else(|e| panic!("{}: {e}", moved.display()));
            assert!(kept == bytes, "the quarantined copy differs");
        }
        Err(err) => panic!("reading a checkpoint file: {err}"),
    }
    let _ = store.remove(ID);
    let _ = store.remove(AGAIN);
}

fn owed(bytes: &[u8]) {
    let records = OwedTeardowns::open(root())
        .unwrap_or_else(|e| panic!("owed teardowns in {}: {e}", root().display()));
    let path = root().join(OWED_TEARDOWN_DIR).join(ID);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Ok(Some(owed)) = records.get(ID) {
        records
            .record(AGAIN, &owed)
            .unwrap_or_else(|e| panic!("recording an owed teardown that loaded: {e}"));
        let again = records
            .get(AGAIN)
            .unwrap_or_else(|e| panic!("loading an owed teardown just recorded: {e}"));
        assert_eq!(again.as_ref(), Some(&owed));
    }
    let _ = records.forget(ID);
    let _ = records.forget(AGAIN);
}

dockshim_fuzz::fuzz_target!(run);
