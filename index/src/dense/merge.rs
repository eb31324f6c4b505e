//! Assembling one index from slices built apart (`quarry build --shard I/N`
//! on several machines or processes): each slice is a complete index of its
//! own holding a run of whole shards of the final index, so merging is
//! renaming files, not rewriting them. The merged directory has the same
//! shard files, manifest and checksums as an index written by one writer.
//!
//! The merge is a commit like the writer's: shard files are linked into the
//! index directory under their final names first (a file the manifest does
//! not list is a leftover to readers and is swept by a later writer), then
//! the manifest that lists them is written atomically. A crash before that
//! leaves the slices as they were, and the merge can simply run again.

use std::path::{Path, PathBuf};

use super::manifest::{Manifest, ShardEntry};
use super::verified::VerifiedSet;
use super::writer::{shard_file_name, IndexSpec};
use crate::error::io_err;
use crate::IndexError;

/// The rows `[start, end)` slice `index` of `count` holds in an index of
/// `total` rows cut into shards of `shard_rows`: a run of whole shards,
/// spread as evenly as shard boundaries allow. A slice may be empty when
/// there are fewer shards than slices.
pub fn slice_rows(total: usize, shard_rows: usize, index: usize, count: usize) -> (usize, usize) {
    assert!(index < count && shard_rows > 0, "slice {index} of {count}");
    let shards = total.div_ceil(shard_rows);
    let first = shards * index / count;
    let last = shards * (index + 1) / count;
    (
        (first * shard_rows).min(total),
        (last * shard_rows).min(total),
    )
}

fn spec_of(manifest: &Manifest) -> IndexSpec {
    IndexSpec {
        encoder_fingerprint: manifest.encoder_fingerprint.clone(),
        corpus_checksum: manifest.corpus_checksum.clone(),
        dim: manifest.dim,
        element_type: manifest.element_type,
        shard_rows: manifest.shard_rows as usize,
    }
}

/// Merges the complete slice indexes `slices` (in row order) into `dir`,
/// whose rows must number `total`. Refuses slices that disagree on what they
/// hold (encoder, corpus, dimension, storage type, shard size), an unfinished
/// slice, a slice that would leave a short shard before the last, and a row
/// count other than `total`; `dir` must not hold a complete index already.
pub fn merge_slices(dir: &Path, slices: &[PathBuf], total: u64) -> Result<Manifest, IndexError> {
    let invalid = |file: &Path, detail: String| IndexError::InvalidInput {
        file: file.to_path_buf(),
        detail,
    };
    let mut manifests = Vec::with_capacity(slices.len());
    for slice in slices {
        let manifest = Manifest::load(slice)?.ok_or_else(|| {
            invalid(
                &Manifest::path(slice),
                "no manifest: the slice was never started".into(),
            )
        })?;
        if !manifest.complete {
            return Err(invalid(
                &Manifest::path(slice),
                format!(
                    "the slice is not finished ({} rows so far)",
                    manifest.total_rows()
                ),
            ));
        }
        manifests.push(manifest);
    }
    let Some(first) = manifests.first() else {
        return Err(invalid(dir, "no slices to merge".into()));
    };
    let spec = spec_of(first);
    for (slice, manifest) in slices.iter().zip(&manifests) {
        if spec_of(manifest) != spec {
            return Err(invalid(
                &Manifest::path(slice),
                format!(
                    "the slice holds {:?}, the first slice {spec:?}",
                    spec_of(manifest)
                ),
            ));
        }
    }
    let rows: u64 = manifests.iter().map(Manifest::total_rows).sum();
    if rows != total {
        return Err(invalid(
            dir,
            format!("the slices hold {rows} rows, the corpus has {total}"),
        ));
    }
    if Manifest::load(dir)?.is_some_and(|m| m.complete) {
        return Err(invalid(
            &Manifest::path(dir),
            "the index is complete already".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;

    let mut verified = VerifiedSet::load(dir);
    let mut shards = Vec::new();
    let last_slice_with_rows = manifests.iter().rposition(|m| m.total_rows() > 0);
    for (s, (slice, manifest)) in slices.iter().zip(&manifests).enumerate() {
        let slice_verified = VerifiedSet::load(slice);
        for (k, entry) in manifest.shards.iter().enumerate() {
            let last_shard = Some(s) == last_slice_with_rows && k + 1 == manifest.shards.len();
            if entry.rows != manifest.shard_rows && !last_shard {
                return Err(invalid(
                    &slice.join(&entry.file),
                    format!(
                        "a shard of {} rows before the last one (shards hold {}): the slices were cut differently",
                        entry.rows, manifest.shard_rows
                    ),
                ));
            }
            let file = shard_file_name(shards.len());
            let from = slice.join(&entry.file);
            let to = dir.join(&file);
            link_or_copy(&from, &to)?;
            // A hard link is the very file the slice's writer checksummed.
            if slice_verified.is_verified(slice, &entry.file, &entry.checksum) {
                verified.mark(dir, &file, &entry.checksum);
            }
            shards.push(ShardEntry {
                file,
                ..entry.clone()
            });
        }
    }
    quarry_fsio::sync_dir(dir)?;
    let merged = Manifest {
        shards,
        complete: true,
        hnsw: None,
        ..first.clone()
    };
    // Commit point: the index exists once this manifest names its shards.
    merged.store(dir)?;
    verified.store(dir)?;
    quarry_fsio::sync_dir(dir)?;
    Ok(merged)
}

/// `to` becomes `from`'s file: a hard link where the filesystem allows it
/// (the slices live beside the index), else a copy made durable.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), IndexError> {
    match std::fs::remove_file(to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(to)(e)),
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    quarry_fsio::write_with(to, |out| {
        let mut input = std::fs::File::open(from)?;
        std::io::copy(&mut input, out).map(|_| ())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::{DenseIndex, ElementType, IndexWriter};

    fn spec(shard_rows: usize) -> IndexSpec {
        IndexSpec {
            encoder_fingerprint: "enc".into(),
            corpus_checksum: "corpus".into(),
            dim: 3,
            element_type: ElementType::F32,
            shard_rows,
        }
    }

    fn rows(range: std::ops::Range<usize>) -> (Vec<String>, Vec<f32>) {
        let ids = range.clone().map(|i| format!("d{i}")).collect();
        let vectors = range.flat_map(|i| [i as f32, 1.0, -(i as f32)]).collect();
        (ids, vectors)
    }

    fn write(dir: &Path, range: std::ops::Range<usize>, shard_rows: usize) {
        let mut writer = IndexWriter::create_or_resume(dir, spec(shard_rows)).unwrap();
        let (ids, vectors) = rows(range);
        writer.push_batch(&ids, &vectors).unwrap();
        writer.finish().unwrap();
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && !p.ends_with("verified.json"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn slices_are_runs_of_whole_shards_covering_every_row() {
        for (total, shard_rows, count) in
            [(10, 3, 2), (10, 3, 5), (7, 10, 3), (100, 7, 4), (0, 4, 2)]
        {
            let mut next = 0;
            for index in 0..count {
                let (start, end) = slice_rows(total, shard_rows, index, count);
                assert_eq!(start, next, "{total} {shard_rows} {count}");
                assert!(start == total || start % shard_rows == 0);
                next = end;
            }
            assert_eq!(next, total);
        }
        assert_eq!(slice_rows(10, 3, 0, 2), (0, 6));
        assert_eq!(slice_rows(10, 3, 1, 2), (6, 10));
    }

    #[test]
    fn merged_slices_equal_one_writers_index_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let whole = tmp.path().join("whole");
        write(&whole, 0..11, 3);
        let merged = tmp.path().join("merged");
        let slices: Vec<PathBuf> = (0..3)
            .map(|i| tmp.path().join(format!("slice{i}")))
            .collect();
        for (i, slice) in slices.iter().enumerate() {
            let (start, end) = slice_rows(11, 3, i, 3);
            write(slice, start..end, 3);
        }
        merge_slices(&merged, &slices, 11).unwrap();
        assert_eq!(files(&merged), files(&whole));
        let index = DenseIndex::open(&merged).unwrap();
        assert_eq!(index.doc_id(10).unwrap(), "d10");
        // Merging again is refused: the index is complete.
        let err = merge_slices(&merged, &slices, 11).unwrap_err().to_string();
        assert!(err.contains("complete already"), "{err}");
    }

    #[test]
    fn inconsistent_slices_are_refused_naming_the_slice() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        write(&a, 0..4, 3); // a short shard that is not the last
        write(&b, 4..6, 3);
        let err = merge_slices(&tmp.path().join("m"), &[a.clone(), b], 6).unwrap_err();
        assert!(err.to_string().contains("cut differently"), "{err}");
        let err = merge_slices(&tmp.path().join("m"), std::slice::from_ref(&a), 9).unwrap_err();
        assert!(
            err.to_string().contains("hold 4 rows, the corpus has 9"),
            "{err}"
        );
        let c = tmp.path().join("c");
        let mut writer = IndexWriter::create_or_resume(&c, spec(3)).unwrap();
        let (ids, vectors) = rows(0..2);
        writer.push_batch(&ids, &vectors).unwrap();
        drop(writer);
        let err = merge_slices(&tmp.path().join("m"), &[c], 2).unwrap_err();
        assert!(err.to_string().contains("not finished"), "{err}");
        let d = tmp.path().join("d");
        let mut other = spec(3);
        other.encoder_fingerprint = "other".into();
        let mut writer = IndexWriter::create_or_resume(&d, other).unwrap();
        let (ids, vectors) = rows(6..7);
        writer.push_batch(&ids, &vectors).unwrap();
        writer.finish().unwrap();
        let e = tmp.path().join("e");
        write(&e, 0..6, 3);
        let err = merge_slices(&tmp.path().join("m"), &[e, d.clone()], 7).unwrap_err();
        assert!(err.to_string().contains(&d.display().to_string()), "{err}");
    }
}
