//! The fault suite: real `quarry` processes disturbed the ways machines
//! disturb them. Each fault must end in one of two ways: the work recovers to
//! the exact bytes or numbers of an undisturbed run, or it is refused with a
//! message naming the damaged file. A silently wrong number is never
//! acceptable.
//!
//! - SIGKILL at 20 seeded points of one build, each rerun resuming: the
//!   final index equals an uninterrupted build byte for byte.
//! - One flipped byte, at seeded offsets, in every file of a dense index
//!   (shards, manifest, HNSW graph, query cache, build record, verification
//!   stamps) and of a BM25 index (tantivy segments, meta, quarry's
//!   manifest), and every file truncated to half: `eval` gives the reference
//!   numbers or exits non-zero naming a path inside the index.
//! - A file-size limit (the full disk a user meets) during a build: a clear
//!   error; the shards written before it are intact, and the build resumes
//!   to the same bytes once there is room.
//!
//! Each test prints what it did (kills, flips, outcomes) for docs/results.md
//! (`cargo test -p quarry-cli --test faults -- --nocapture`).
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{files_below, index_content, quarry_at_home, run, Ran};
use serde_json::Value;
use tiny_fixtures::{index_dir, TinyDense, DENSE};

mod common;
mod tiny_fixtures;

/// xorshift64*: a seeded sequence, the same on every machine.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// quarry in `home` with small shards and chunks, so a build is many commits.
fn small(home: &Path) -> Command {
    let mut command = quarry_at_home(home);
    command
        .env("QUARRY_SHARD_ROWS", "8")
        .env("QUARRY_CHUNK_DOCS", "8");
    command
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, path) in files_below(from) {
        let target = to.join(&rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
    }
}

#[test]
fn twenty_kills_at_seeded_points_resume_to_identical_bytes() {
    let tiny = TinyDense::new(2400);
    let args = tiny.build_args();
    let whole = tiny.path("whole");
    let started = Instant::now();
    run(small(&whole), &args).ok();
    let undisturbed = started.elapsed();
    let expected = index_content(&index_dir(&whole));

    let home = tiny.path("killed");
    let manifest = index_dir(&home).join("manifest.json");
    let stored = || {
        std::fs::read(&manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map_or(0, |m| {
                m["shards"]
                    .as_array()
                    .map_or(0, |s| s.iter().map(|s| s["rows"].as_u64().unwrap()).sum())
            })
    };
    // Each run is killed at a seeded point within a fifteenth of an
    // undisturbed build's time, so twenty kills land inside the work.
    let window = undisturbed.as_millis() as u64 / 15 + 1;
    let mut seeded = Seeded(20_261_207);
    let (mut kills, mut attempts) = (0, 0);
    let mut stored_at_kills = Vec::new();
    while kills < 20 {
        attempts += 1;
        assert!(
            attempts <= 60,
            "only {kills} of 60 runs were still building when killed"
        );
        let mut child = small(&home)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(seeded.below(window)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
            child.wait().unwrap();
            stored_at_kills.push(stored());
        } else {
            child.wait().unwrap();
        }
    }
    run(small(&home), &args)
        .ok()
        .has(common::Stream::Either, &["resumed after"]);
    assert_eq!(
        index_content(&index_dir(&home)),
        expected,
        "the index after {kills} kills differs from an undisturbed build"
    );
    eprintln!(
        "fault suite: 20 SIGKILLs during builds of 2,400 docs (shards of 8 rows), at seeded points \
         within {window} ms of each start; rows stored after each: {stored_at_kills:?}; the final \
         index is byte-identical to an undisturbed build"
    );
}

/// Damage done to one copy of a file.
enum Fault {
    Flip { offset: usize, bit: u8 },
    Truncate,
}

/// What `eval` of `retriever` printed as metrics, or `None` with the run when
/// it failed.
fn metrics(home: &Path, data: &str, retriever: &str) -> Result<Value, Ran> {
    let ran = run(
        small(home),
        &[
            "eval",
            "--dataset",
            data,
            "--retriever",
            retriever,
            "--json",
        ],
    );
    if ran.output.status.success() {
        Ok(ran.json()["metrics"].clone())
    } else {
        Err(ran)
    }
}

#[test]
fn flipped_bytes_and_truncations_are_refused_or_harmless() {
    let tiny = TinyDense::new(120);
    let data = tiny.data();
    let home = tiny.path("home");
    let mut build = tiny.build_args().to_vec();
    build.push("--hnsw");
    run(small(&home), &build).ok();
    let hnsw = DENSE.replacen("dense:", "hnsw:", 1);
    let retrievers = ["bm25", DENSE, hnsw.as_str()];
    let reference: Vec<Value> = retrievers
        .iter()
        .map(|r| metrics(&home, data, r).unwrap_or_else(|ran| panic!("{}", ran.text())))
        .collect();

    // Which retriever reads each file.
    let mut targets: Vec<(PathBuf, usize)> = Vec::new();
    for (rel, _) in files_below(&home.join("bm25")) {
        targets.push((PathBuf::from("bm25").join(rel), 0));
    }
    let dense_dir = index_dir(&home);
    let dense_rel = dense_dir.strip_prefix(&home).unwrap().to_path_buf();
    for (rel, _) in files_below(&dense_dir) {
        let reader = if rel.starts_with("hnsw") { 2 } else { 1 };
        targets.push((dense_rel.join(rel), reader));
    }
    assert!(targets.len() >= 12, "{targets:?}");

    let mut seeded = Seeded(7_011);
    let (mut refused, mut harmless, mut cases) = (0, 0, 0);
    for (i, (rel, reader)) in targets.iter().enumerate() {
        let len = std::fs::metadata(home.join(rel)).unwrap().len();
        // Three flipped bits at seeded offsets, then the file cut to half.
        let mut faults: Vec<Fault> = (0..3)
            .map(|_| Fault::Flip {
                offset: seeded.below(len) as usize,
                bit: seeded.below(8) as u8,
            })
            .collect();
        faults.push(Fault::Truncate);
        for (f, fault) in faults.iter().enumerate() {
            if len == 0 {
                continue;
            }
            let scratch = tiny.path(&format!("scratch-{i}-{f}"));
            copy_dir(&home, &scratch);
            let file = scratch.join(rel);
            let mut bytes = std::fs::read(&file).unwrap();
            match *fault {
                Fault::Flip { offset, bit } => bytes[offset] ^= 1 << bit,
                Fault::Truncate => bytes.truncate(bytes.len() / 2),
            }
            std::fs::write(&file, &bytes).unwrap();
            cases += 1;
            match metrics(&scratch, data, retrievers[*reader]) {
                Ok(values) => {
                    assert_eq!(
                        values,
                        reference[*reader],
                        "{}: fault {f} gave other numbers with exit 0",
                        rel.display()
                    );
                    harmless += 1;
                }
                Err(ran) => {
                    let text = ran.stderr();
                    let index_root = scratch.join(rel.components().next().unwrap());
                    assert!(
                        ran.output.status.code() == Some(1)
                            && text.contains(&index_root.display().to_string()),
                        "{}: fault {f} failed without naming the index\n{}",
                        rel.display(),
                        ran.text()
                    );
                    refused += 1;
                }
            }
            std::fs::remove_dir_all(&scratch).unwrap();
        }
    }
    eprintln!(
        "fault suite: {cases} damaged copies ({} files, 3 flipped bits and a truncation each): \
         {refused} refused naming the index, {harmless} recovered with the reference numbers, \
         0 wrong numbers",
        targets.len()
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_build_resumes_to_the_same_bytes() {
    let tiny = TinyDense::new(600);
    let args = tiny.build_args();
    let whole = tiny.path("whole");
    run(small(&whole), &args).ok();
    let expected = index_content(&index_dir(&whole));

    // A file-size limit of 4 blocks (2 KiB in dash's 512-byte blocks, 4 KiB
    // in bash's): a shard (8 rows of 48 f32, about 1.8 KiB) fits; the
    // manifest, which grows by a line a shard (about 11 KiB for 75 shards),
    // soon does not. SIGXFSZ is ignored, so the write fails with EFBIG as it
    // does on a full disk, instead of killing the process.
    let home = tiny.path("limited");
    let quarry = env!("CARGO_BIN_EXE_quarry");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 4; exec \"$0\" \"$@\"")
        .arg(quarry)
        .arg("--registry")
        .arg(common::registry_arg())
        .args(args)
        .env("QUARRY_HOME", &home)
        .env("QUARRY_SHARD_ROWS", "8")
        .env("QUARRY_CHUNK_DOCS", "8")
        .env_remove("QUARRY_REGISTRY");
    let limited = run(command, &[]);
    let shards_before = files_below(&index_dir(&home))
        .iter()
        .filter(|(rel, _)| rel.starts_with("shard-"))
        .count();
    if limited.output.status.success() {
        panic!(
            "the build fitted under the limit: raise the docs\n{}",
            limited.text()
        );
    }
    assert_eq!(limited.output.status.code(), Some(1), "{}", limited.text());
    let text = limited.stderr();
    assert!(
        text.contains("File too large") || text.contains("No space"),
        "{}",
        limited.text()
    );
    assert!(
        text.contains(&home.display().to_string()),
        "{}",
        limited.text()
    );
    assert!(shards_before > 0, "no shard was written before the limit");
    // Every shard written before the error reads back whole.
    run(small(&home), &args).ok();
    assert_eq!(index_content(&index_dir(&home)), expected);
    eprintln!(
        "fault suite: a 4-block file-size limit stopped the build with `File too large` after \
         {shards_before} shards; the rerun resumed to an index byte-identical to an undisturbed one"
    );
}
