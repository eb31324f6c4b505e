//! `verified.json`: which shard files have had their full checksum checked,
//! keyed by what would change if the file were replaced or rewritten
//! (size, modification time, inode). It lets `open` stay O(1) while every
//! shard is still checksummed once: by the writer as it writes it, or on the
//! first open. It is a cache: deleting it only costs one re-verification.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::IndexError;

pub const VERIFIED_FILE: &str = "verified.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub bytes: u64,
    pub modified_ns: u128,
    pub inode: u64,
    pub checksum: String,
}

impl FileStamp {
    pub fn of(path: &Path, checksum: &str) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        let modified_ns = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            bytes: meta.len(),
            modified_ns,
            inode,
            checksum: checksum.to_string(),
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VerifiedSet {
    pub files: BTreeMap<String, FileStamp>,
}

impl VerifiedSet {
    /// A missing or unreadable record means "nothing verified yet".
    pub fn load(dir: &Path) -> VerifiedSet {
        std::fs::read(dir.join(VERIFIED_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn store(&self, dir: &Path) -> Result<(), IndexError> {
        let json = serde_json::to_vec_pretty(self).expect("serialises");
        quarry_fsio::write(&dir.join(VERIFIED_FILE), &json)?;
        Ok(())
    }

    pub fn is_verified(&self, dir: &Path, file: &str, checksum: &str) -> bool {
        match (
            self.files.get(file),
            FileStamp::of(&dir.join(file), checksum),
        ) {
            (Some(recorded), Some(now)) => *recorded == now,
            _ => false,
        }
    }

    /// Drops `file`'s stamp (after a full check failed); true when it had one.
    pub fn forget(&mut self, file: &str) -> bool {
        self.files.remove(file).is_some()
    }

    pub fn mark(&mut self, dir: &Path, file: &str, checksum: &str) {
        if let Some(stamp) = FileStamp::of(&dir.join(file), checksum) {
            self.files.insert(file.to_string(), stamp);
        }
    }
}
