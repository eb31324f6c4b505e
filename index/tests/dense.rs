//! Dense store behaviour: search exactness for every storage type (one shared
//! suite), corruption and bad-input errors, crash-safe resumable writes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use half::{bf16, f16};
use quarry_index::dense::{
    DenseIndex, ElementType, HnswIndex, HnswParams, IndexSpec, IndexWriter, ShardStatus, Verify,
};
use quarry_index::IndexError;

const FP: &str = "test-encoder@1";

#[path = "common/vectors.rs"]
mod vectors;
use vectors::unit_vectors as vectors;

fn spec(dim: usize, et: ElementType, shard_rows: usize) -> IndexSpec {
    IndexSpec {
        encoder_fingerprint: FP.into(),
        corpus_checksum: "corpus-sum".into(),
        dim,
        element_type: et,
        shard_rows,
    }
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("doc{i}")).collect()
}

fn build(dir: &Path, data: &[f32], dim: usize, et: ElementType, shard_rows: usize) {
    let n = data.len() / dim;
    let mut w = IndexWriter::create_or_resume(dir, spec(dim, et, shard_rows)).unwrap();
    w.push_batch(&ids(n), data).unwrap();
    w.finish().unwrap();
}

/// Reference: f64 dot products over the values as stored (after rounding to
/// the storage type), full sort by (score desc, row asc).
fn reference(data: &[f32], dim: usize, et: ElementType, q: &[f32], k: usize) -> Vec<u64> {
    let stored: Vec<f64> = data
        .iter()
        .map(|&x| match et {
            ElementType::F32 => x as f64,
            ElementType::F16 => f16::from_f32(x).to_f64(),
            ElementType::Bf16 => bf16::from_f32(x).to_f64(),
        })
        .collect();
    let mut scored: Vec<(f64, u64)> = stored
        .chunks(dim)
        .enumerate()
        .map(|(i, r)| (r.iter().zip(q).map(|(a, b)| a * *b as f64).sum(), i as u64))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|s| s.1).collect()
}

/// The shared suite, run for every storage type.
fn storage_suite(et: ElementType) {
    // dim 37: exercises the SIMD tail; 1000 rows over shards of 128: a partial last shard.
    for dim in [37usize, 64] {
        let tmp = tempfile::tempdir().unwrap();
        let data = vectors(1000, dim, 7);
        build(tmp.path(), &data, dim, et, 128);
        let index = DenseIndex::open(tmp.path()).unwrap();
        assert_eq!(index.rows(), 1000);
        assert_eq!(index.element_type(), et);
        assert_eq!(index.manifest().shards.len(), 8);
        assert_eq!(index.doc_id(999).unwrap(), "doc999");
        // Batches of 1, 5 and 13 queries must give the same answers as one by one.
        let queries = vectors(13, dim, 99);
        for nq in [1usize, 5, 13] {
            let res = index.search(FP, &queries[..nq * dim], 10).unwrap();
            assert_eq!(res.len(), nq);
            for (qi, hits) in res.iter().enumerate() {
                let want = reference(&data, dim, et, &queries[qi * dim..(qi + 1) * dim], 10);
                let got: Vec<u64> = hits.iter().map(|h| h.row).collect();
                assert_eq!(got, want, "{et} dim {dim} nq {nq} query {qi}");
            }
        }
        // The 8-bit scan + exact rescoring returns the exact answer here
        // (100 candidates out of 1000 rows), with exact scores.
        let exact = index.search(FP, &queries, 10).unwrap();
        let fast = index.search_rescored(FP, &queries, 10, 100).unwrap();
        assert_eq!(fast, exact, "{et} dim {dim}: rescored search differs");
        // A stored row as query finds itself first.
        let row = index.row_vector(321).unwrap();
        let hits = index.search(FP, &row, 3).unwrap();
        assert_eq!(hits[0][0].row, 321);
    }
}

#[test]
fn f32_storage() {
    storage_suite(ElementType::F32);
}
#[test]
fn f16_storage() {
    storage_suite(ElementType::F16);
}
#[test]
fn bf16_storage() {
    storage_suite(ElementType::Bf16);
}

#[test]
fn equal_scores_are_ordered_by_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dim = 8;
    let mut data = vec![0f32; 50 * dim];
    for r in 0..50 {
        data[r * dim] = if r % 2 == 0 { 1.0 } else { 0.5 };
    }
    build(tmp.path(), &data, dim, ElementType::F32, 7);
    let index = DenseIndex::open(tmp.path()).unwrap();
    let mut q = vec![0f32; dim];
    q[0] = 1.0;
    let hits = index.search(FP, &q, 30).unwrap();
    let rows: Vec<u64> = hits[0].iter().map(|h| h.row).collect();
    let mut want: Vec<u64> = (0..50).step_by(2).collect();
    want.extend([1, 3, 5, 7, 9]);
    assert_eq!(rows, want);
}

fn only_shard(dir: &Path) -> std::path::PathBuf {
    dir.join("shard-00000.qvs")
}

fn expect_corruption(dir: &Path, verify: Verify, needle: &str) {
    match DenseIndex::open_with(dir, verify) {
        Err(IndexError::DataCorruption { file, detail }) => {
            assert!(file.ends_with("shard-00000.qvs"), "{file:?}");
            assert!(detail.contains(needle), "{detail}");
        }
        Err(other) => panic!("expected DataCorruption, got {other}"),
        Ok(_) => panic!("expected DataCorruption, open succeeded"),
    }
}

fn small_index(dir: &Path) {
    build(dir, &vectors(20, 16, 1), 16, ElementType::F16, 100);
}

#[test]
fn flipped_byte_is_caught_by_verification() {
    let tmp = tempfile::tempdir().unwrap();
    small_index(tmp.path());
    // Built by the writer: recorded as verified, open is O(1).
    let index = DenseIndex::open(tmp.path()).unwrap();
    assert_eq!(index.shard_status(), &[ShardStatus::VerifiedBefore]);
    drop(index);
    let path = only_shard(tmp.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    // The file changed (mtime/inode), so the next open re-verifies and fails.
    expect_corruption(tmp.path(), Verify::Once, "checksum mismatch");
    expect_corruption(tmp.path(), Verify::Always, "checksum mismatch");
}

#[test]
fn a_failed_full_check_drops_the_verification_stamp() {
    let tmp = tempfile::tempdir().unwrap();
    small_index(tmp.path());
    let path = only_shard(tmp.path());
    // Flip a byte in place and put the mtime back: size, mtime and inode all
    // match the stamp, so an open that trusts it does not notice.
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(100)).unwrap();
        file.write_all(&bytes[100..101]).unwrap();
        file.set_modified(modified).unwrap();
    }
    let index = DenseIndex::open(tmp.path()).unwrap();
    assert_eq!(index.shard_status(), &[ShardStatus::VerifiedBefore]);
    drop(index);
    // `quarry index verify` checks in full and fails; from then on every open
    // re-checks and refuses the shard.
    expect_corruption(tmp.path(), Verify::Always, "checksum mismatch");
    expect_corruption(tmp.path(), Verify::Once, "checksum mismatch");
}

#[test]
fn truncated_shard_wrong_magic_unknown_version() {
    let tmp = tempfile::tempdir().unwrap();
    small_index(tmp.path());
    let path = only_shard(tmp.path());
    let good = std::fs::read(&path).unwrap();

    std::fs::write(&path, &good[..good.len() - 10]).unwrap();
    expect_corruption(tmp.path(), Verify::Never, "truncated");
    std::fs::write(&path, &good[..10]).unwrap();
    expect_corruption(tmp.path(), Verify::Never, "truncated");

    let mut bad = good.clone();
    bad[0] = b'X';
    std::fs::write(&path, &bad).unwrap();
    expect_corruption(tmp.path(), Verify::Never, "wrong magic");

    let mut bad = good.clone();
    bad[8] = 99;
    std::fs::write(&path, &bad).unwrap();
    match DenseIndex::open_with(tmp.path(), Verify::Never) {
        Err(IndexError::UnsupportedVersion { file, found, .. }) => {
            assert!(file.ends_with("shard-00000.qvs"));
            assert_eq!(found, 99);
        }
        other => panic!("expected UnsupportedVersion, got {:?}", other.err()),
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::create_or_resume(tmp.path(), spec(4, ElementType::F32, 10)).unwrap();
    w.push("a", &[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(matches!(
        w.push("b", &[f32::NAN, 0.0, 0.0, 0.0]),
        Err(IndexError::InvalidInput { detail, .. }) if detail.contains("non-finite")
    ));
    assert!(matches!(
        w.push("c", &[f32::INFINITY, 0.0, 0.0, 0.0]),
        Err(IndexError::InvalidInput { .. })
    ));
    assert!(matches!(
        w.push("d", &[1.0, 0.0]),
        Err(IndexError::DimensionMismatch {
            expected: 4,
            found: 2,
            ..
        })
    ));
    assert!(matches!(
        w.push("a", &[0.0, 1.0, 0.0, 0.0]),
        Err(IndexError::InvalidInput { detail, .. }) if detail.contains("duplicate doc id `a`")
    ));
    w.finish().unwrap();
    let index = DenseIndex::open(tmp.path()).unwrap();
    assert!(matches!(
        index.search(FP, &[1.0, 0.0, 0.0], 1),
        Err(IndexError::DimensionMismatch { expected: 4, .. })
    ));
    assert!(matches!(
        index.search(FP, &[f32::NAN, 0.0, 0.0, 0.0], 1),
        Err(IndexError::InvalidInput { .. })
    ));
    match index.search("other-encoder", &[1.0, 0.0, 0.0, 0.0], 1) {
        Err(e @ IndexError::EncoderMismatch { .. }) => {
            assert!(e.to_string().contains("other-encoder") && e.to_string().contains(FP))
        }
        other => panic!("expected EncoderMismatch, got {other:?}"),
    }
    // Resuming with another spec is refused.
    assert!(matches!(
        IndexWriter::create_or_resume(tmp.path(), spec(8, ElementType::F32, 10)),
        Err(IndexError::InvalidInput { .. })
    ));
}

/// Rows of a writer (4 dimensions, shards of 5) dropped after its first shard
/// of `data`'s 10 rows: a "crash" to resume from.
fn crash_after_one_shard(dir: &Path) -> Vec<f32> {
    let data = vectors(10, 4, 3);
    let mut w = IndexWriter::create_or_resume(dir, spec(4, ElementType::F32, 5)).unwrap();
    w.push_batch(&ids(10)[..5], &data[..20]).unwrap();
    drop(w);
    data
}

fn resume_after_one_shard(dir: &Path) -> IndexWriter {
    let w = IndexWriter::create_or_resume(dir, spec(4, ElementType::F32, 5)).unwrap();
    assert_eq!(w.rows_done(), 5);
    w
}

#[test]
fn duplicate_doc_id_across_resume_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let data = crash_after_one_shard(tmp.path());
    let mut w = resume_after_one_shard(tmp.path());
    assert!(matches!(
        w.push("doc3", &data[..4]),
        Err(IndexError::InvalidInput { .. })
    ));
}

#[test]
fn resume_sweeps_leftover_temporaries_of_both_namings() {
    let tmp = tempfile::tempdir().unwrap();
    crash_after_one_shard(tmp.path());
    // quarry_fsio's unique temporaries, and the fixed names of earlier builds.
    let leftovers = [
        ".shard-00001.qvs.a1B2c3.tmp",
        ".manifest.json.Zz9yX8.tmp",
        "shard-00001.qvs.tmp",
        "manifest.json.tmp",
    ];
    for name in leftovers {
        std::fs::write(tmp.path().join(name), b"half").unwrap();
    }
    resume_after_one_shard(tmp.path());
    for name in leftovers {
        assert!(
            !tmp.path().join(name).exists(),
            "{name} survived the resume"
        );
    }
}

// ---- crash safety: SIGKILL a writer at random instants, resume, compare bytes ----

const KILL_ROWS: usize = 3000;
const KILL_DIM: usize = 32;
const KILL_SHARD_ROWS: usize = 100;

/// Writes the deterministic test index into `dir`, resuming after `rows_done`.
fn deterministic_write(dir: &Path) {
    let data = vectors(KILL_ROWS, KILL_DIM, 2024);
    let ids = ids(KILL_ROWS);
    let mut w =
        IndexWriter::create_or_resume(dir, spec(KILL_DIM, ElementType::F16, KILL_SHARD_ROWS))
            .unwrap();
    let done = w.rows_done() as usize;
    for r in done..KILL_ROWS {
        w.push(&ids[r], &data[r * KILL_DIM..(r + 1) * KILL_DIM])
            .unwrap();
    }
    w.finish().unwrap();
}

/// Child mode of this test binary: write the index named by the environment. Ignored so
/// a normal run doesn't count it as a passed test; the parent runs it with `--ignored`.
#[test]
#[ignore = "child process of killed_writer_resumes_to_identical_bytes"]
fn kill_child_writer() {
    let dir = std::env::var("QUARRY_KILL_CHILD_DIR").expect(
        "run by killed_writer_resumes_to_identical_bytes, which sets QUARRY_KILL_CHILD_DIR",
    );
    deterministic_write(Path::new(&dir));
}

/// The index's content files (the verification cache holds mtimes and is excluded).
fn content(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "verified.json")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn killed_writer_resumes_to_identical_bytes() {
    let reference_dir = tempfile::tempdir().unwrap();
    deterministic_write(reference_dir.path());
    let want = content(reference_dir.path());

    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut kills_mid_build = 0;
    let mut child_wrote = 0;
    for round in 0..24 {
        let tmp = tempfile::tempdir().unwrap();
        // Kill 1–3 times at random delays, then let one run finish.
        for _ in 0..3 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let delay_ms = 2 + rng % 60;
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "kill_child_writer",
                    "--ignored",
                    "--test-threads=1",
                    "--quiet",
                ])
                .env("QUARRY_KILL_CHILD_DIR", tmp.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            // SIGKILL: no destructors, no flushing.
            child.kill().unwrap();
            let status = child.wait().unwrap();
            if !status.success() {
                kills_mid_build += 1;
            }
            // Whatever state the kill left must open (or be an empty index) without error.
            if tmp.path().join("manifest.json").exists() {
                child_wrote += 1;
                DenseIndex::open_with(tmp.path(), Verify::Always)
                    .unwrap_or_else(|e| panic!("round {round}: state after kill unreadable: {e}"));
            }
        }
        deterministic_write(tmp.path());
        assert_eq!(
            content(tmp.path()),
            want,
            "round {round}: resumed bytes differ"
        );
    }
    assert!(
        kills_mid_build >= 20,
        "only {kills_mid_build} kills landed mid-build"
    );
    // A child that never ran the writer would make every round trivially pass.
    assert!(
        child_wrote > 0,
        "no killed child left a manifest: the child writer did not run"
    );
}

/// Stores `data` (row-major, `dim` wide) and builds its HNSW graph with
/// parameters `(m, ef_construction)`; checks the recall the build measured.
fn build_with_graph(
    dir: &Path,
    data: &[f32],
    dim: usize,
    et: ElementType,
    shard_rows: usize,
    (m, ef_construction): (usize, usize),
) {
    build(dir, data, dim, et, shard_rows);
    let index = DenseIndex::open(dir).unwrap();
    let params = HnswParams {
        m,
        ef_construction,
        ef_search: 64,
    };
    let report = HnswIndex::build(&index, params, &[], 10).unwrap();
    // Low-dimensional data: the graph must find (almost) all true neighbours.
    assert!(report.entry.recall_at_k >= 0.9, "{:?}", report.entry);
}

#[test]
fn hnsw_builds_persists_and_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    let dim = 16;
    build_with_graph(
        tmp.path(),
        &vectors(2000, dim, 5),
        dim,
        ElementType::F16,
        512,
        (16, 100),
    );

    // Reload from disk (no rebuild) through a fresh open; the manifest records the graph.
    let index = DenseIndex::open(tmp.path()).unwrap();
    assert_eq!(index.manifest().hnsw.as_ref().unwrap().m, 16);
    let graph = HnswIndex::load(&index).unwrap();
    let queries = vectors(50, dim, 77);
    let exact = index.search(FP, &queries, 10).unwrap();
    let approx = graph.search(&index, FP, &queries, 10, Some(128)).unwrap();
    let recall = quarry_index::dense::hnsw::recall_at_k(&exact, &approx, 10);
    assert!(recall >= 0.9, "recall {recall}");
    assert!(matches!(
        graph.search(&index, "other", &queries, 10, None),
        Err(IndexError::EncoderMismatch { .. })
    ));
}

#[test]
fn hnsw_over_f32_rows_and_corrupt_graph_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dim = 24;
    let data = vectors(3000, dim, 9);
    build_with_graph(tmp.path(), &data, dim, ElementType::F32, 1000, (8, 64));
    let index = DenseIndex::open(tmp.path()).unwrap(); // sees the manifest's new graph entry
    let graph = HnswIndex::load(&index).unwrap();
    // Scores are the exact inner products of the stored rows.
    let q = &data[5 * dim..6 * dim];
    let hits = graph.search(&index, FP, q, 5, Some(64)).unwrap();
    assert_eq!(hits[0][0].row, 5);
    let exact = index.search(FP, q, 5).unwrap();
    assert_eq!(hits[0][0].score, exact[0][0].score);
    drop(graph);

    // A flipped byte in the links: caught by the checksum on the next full check.
    let file = tmp.path().join("hnsw/graph.qhg");
    let mut bytes = std::fs::read(&file).unwrap();
    let original = bytes.clone();
    bytes[200] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    match HnswIndex::load(&index) {
        Err(IndexError::DataCorruption { file: f, detail }) => {
            assert_eq!(f, file);
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected DataCorruption, got {:?}", other.err()),
    }
    // Truncated: named, typed.
    std::fs::write(&file, &original[..original.len() - 100]).unwrap();
    match HnswIndex::load(&index) {
        Err(IndexError::DataCorruption { file: f, detail }) => {
            assert_eq!(f, file);
            assert!(detail.contains("truncated"), "{detail}");
        }
        other => panic!("expected DataCorruption, got {:?}", other.err()),
    }
    // Wrong magic.
    let mut bad = original.clone();
    bad[0] = b'X';
    std::fs::write(&file, &bad).unwrap();
    assert!(matches!(
        HnswIndex::load(&index),
        Err(IndexError::DataCorruption { .. })
    ));
    // Restored: loads again (and verify_file passes).
    std::fs::write(&file, &original).unwrap();
    HnswIndex::load(&index).unwrap();
    HnswIndex::verify_file(&index).unwrap();

    // A rebuild sweeps the temporary a killed build left in hnsw/.
    let leftover = tmp.path().join("hnsw/.graph.qhg.Kx81aQ.tmp");
    std::fs::write(&leftover, b"half").unwrap();
    let params = HnswParams {
        m: 8,
        ef_construction: 64,
        ef_search: 64,
    };
    HnswIndex::build(&index, params, &[], 10).unwrap();
    assert!(!leftover.exists());
}

#[test]
fn hnsw_refuses_non_unit_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = vectors(100, 8, 5);
    data.iter_mut().for_each(|x| *x *= 3.0);
    build(tmp.path(), &data, 8, ElementType::F32, 64);
    let index = DenseIndex::open(tmp.path()).unwrap();
    match HnswIndex::build(&index, HnswParams::default(), &[], 10) {
        Err(IndexError::InvalidInput { detail, .. }) => {
            assert!(detail.contains("unit"), "{detail}")
        }
        other => panic!("expected InvalidInput, got {:?}", other.err()),
    }
}
