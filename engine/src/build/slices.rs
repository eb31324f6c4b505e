//! Sharded builds (`quarry build --shard I/N`): N processes, on one machine
//! or many sharing a filesystem (a Slurm job array, a Kubernetes Indexed
//! Job), each encode one slice of the corpus into
//! `<index>/slices/I-of-N/`, a complete index of its own. The process that
//! finishes last finds every slice done and merges them into the index
//! (`quarry_index::dense::merge_slices`), which then equals a one-process
//! build byte for byte; it alone encodes the queries. `quarry index merge
//! DIR` does the same merge by hand.
//!
//! Why the bytes are equal: a slice is a run of whole shards of the final
//! index, and every document is encoded in the very chunk (and so the very
//! batch) a one-process build puts it in: a chunk that straddles a slice
//! boundary is encoded by both neighbours, each keeping its own rows.
//!
//! Locks: each slice has its own (`<index>/slices/I-of-N.lock`), so the N
//! workers encode side by side and a rerun of one waits for its twin; the
//! merge takes the index's own lock, as a one-process build does.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use quarry_index::dense::{merge_slices, Manifest};

use super::build_info::{BuildInfo, BUILD_INFO_FILE};
use super::lock;
use crate::error::{EngineError, Result};

/// Slice `index` (from 0) of `count`: what `--shard I/N` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Slice {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Slice, String> {
        let bad = || format!("`{text}` is not I/N with 0 <= I < N (e.g. 0/4 .. 3/4)");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = index.trim().parse().map_err(|_| bad())?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Slice { index, count })
    }
}

impl std::fmt::Display for Slice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where the slices of the index at `dir` are built.
pub fn slices_dir(dir: &Path) -> PathBuf {
    dir.join("slices")
}

/// The folder of one slice: `<index>/slices/I-of-N`.
pub fn slice_dir(dir: &Path, slice: Slice) -> PathBuf {
    slices_dir(dir).join(format!("{}-of-{}", slice.index, slice.count))
}

/// The lock a slice's encoding holds.
pub fn slice_lock(dir: &Path, slice: Slice) -> Result<lock::BuildLock> {
    let folder = slice_dir(dir, slice);
    std::fs::create_dir_all(slices_dir(dir)).map_err(|e| EngineError::io(slices_dir(dir), e))?;
    lock::BuildLock::open(&folder)
}

/// The slices of `count` not finished yet (a slice is finished once its
/// manifest is complete and its build record written).
pub fn unfinished(dir: &Path, count: usize) -> Result<Vec<Slice>> {
    let mut waiting = Vec::new();
    for index in 0..count {
        let slice = Slice { index, count };
        let folder = slice_dir(dir, slice);
        let done = Manifest::load(&folder)?.is_some_and(|m| m.complete)
            && BuildInfo::load(&folder)?.is_some();
        if !done {
            waiting.push(slice);
        }
    }
    Ok(waiting)
}

/// The slice count of the slices under `dir`: one N for every `I-of-N`
/// folder, else an error naming the folder.
pub fn slice_count(dir: &Path) -> Result<usize> {
    let folder = slices_dir(dir);
    let entries = std::fs::read_dir(&folder).map_err(|e| EngineError::io(&folder, e))?;
    let mut counts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(&folder, e))?;
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let count = name
            .split_once("-of-")
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .ok_or_else(|| EngineError::Build {
                path: entry.path(),
                detail: "not a slice folder (I-of-N)".into(),
            })?;
        if !counts.contains(&count) {
            counts.push(count);
        }
    }
    match counts.as_slice() {
        [count] => Ok(*count),
        [] => Err(EngineError::Build {
            path: folder,
            detail: "no slices here".into(),
        }),
        _ => Err(EngineError::Build {
            path: folder,
            detail: format!(
                "slices of different splits ({counts:?} slices): delete the folders of the split you gave up"
            ),
        }),
    }
}

/// Merges the `count` finished slices of the index at `dir` (`rows` rows
/// in all) into it, writes its `build.json` (the first slice's, with the
/// slices' encoding seconds summed) and deletes the slices. The caller holds
/// the index's lock.
pub fn merge(dir: &Path, count: usize, rows: usize) -> Result<Manifest> {
    let folders: Vec<PathBuf> = (0..count)
        .map(|index| slice_dir(dir, Slice { index, count }))
        .collect();
    let mut infos = Vec::with_capacity(count);
    for folder in &folders {
        infos.push(BuildInfo::load(folder)?.ok_or_else(|| EngineError::Build {
            path: folder.join(BUILD_INFO_FILE),
            detail: "the slice has no build record: it is not finished".into(),
        })?);
    }
    let manifest = merge_slices(dir, &folders, rows as u64)?;
    let mut info = infos[0].clone();
    info.encode_seconds = infos.iter().map(|i| i.encode_seconds).sum();
    info.store(dir)?;
    // The index is committed: the slices' files live on as its shards (hard
    // links) and their folders are no longer needed.
    let slices = slices_dir(dir);
    std::fs::remove_dir_all(&slices).map_err(|e| EngineError::io(&slices, e))?;
    Ok(manifest)
}

/// `quarry index merge DIR`: merges the finished slices of the index at
/// `dir` under its lock (a merge by a build in progress is waited for).
/// Returns the merged manifest, or an error saying which slices are not
/// finished. The query cache is left to the first `quarry build` or `eval`
/// with the model (the merge has none).
pub fn merge_by_hand(dir: &Path, progress: &indicatif::ProgressBar) -> Result<Manifest> {
    let mut lock = lock::BuildLock::open(dir)?;
    let _held = lock.acquire(progress)?;
    if let Some(manifest) = Manifest::load(dir)?.filter(|m| m.complete) {
        return Err(EngineError::Build {
            path: dir.to_path_buf(),
            detail: format!(
                "the index is complete already ({} rows)",
                manifest.total_rows()
            ),
        });
    }
    let count = slice_count(dir)?;
    let waiting = unfinished(dir, count)?;
    if !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(Slice::to_string).collect();
        return Err(EngineError::Build {
            path: slices_dir(dir),
            detail: format!(
                "{} of {count} slices are finished; run `quarry build ... --shard I/{count}` for {}",
                count - waiting.len(),
                names.join(", ")
            ),
        });
    }
    let first = slice_dir(dir, Slice { index: 0, count });
    let docs = BuildInfo::load(&first)?
        .ok_or_else(|| EngineError::Build {
            path: first.join(BUILD_INFO_FILE),
            detail: "the first slice has no build record".into(),
        })?
        .docs;
    merge(dir, count, docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_parse_from_zero() {
        assert_eq!("0/4".parse(), Ok(Slice { index: 0, count: 4 }));
        assert_eq!("3/4".parse(), Ok(Slice { index: 3, count: 4 }));
        for bad in ["4/4", "1/0", "a/2", "1", "-1/2", ""] {
            assert!(bad.parse::<Slice>().is_err(), "{bad}");
        }
        assert_eq!(Slice { index: 2, count: 5 }.to_string(), "2/5");
    }
}
