//! Reading the small JSON files of an index folder (manifests): absent is
//! not an error, unreadable JSON is data corruption naming the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{corrupt, io_err, IndexError};

/// The bytes of `path`; `Ok(None)` when there is no such file.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, IndexError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// `bytes` (read from `path`) as a `T`; a failure reads "`what`: serde's reason".
pub(crate) fn parse<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<T, IndexError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(path, format!("{what}: {e}")))
}
