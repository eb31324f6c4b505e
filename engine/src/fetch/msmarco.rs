//! MS MARCO passage into quarry's layout. The sources are TREC-style: the
//! collection (`pid<TAB>passage`, inside `collectionandqueries.tar.gz`), a
//! queries tsv (`qid<TAB>text`, in the tar or gzipped alone) and TREC qrels.
//! The 8.8M-passage corpus is converted once into `<data>/msmarco-passage/`
//! and hard-linked into each MS MARCO dataset (dev-small, DL19, DL20); every
//! step streams, so memory stays flat whatever the collection's size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::convert::{
    for_each_line, read_trec_qrels, split_id_text, write_qrels, CorpusRow, FileRecord, Judgments,
    LineSink, QueryRow,
};
use super::ProgressReader;
use crate::error::{EngineError, Result};

/// The folder, under the data folder, of the shared converted collection.
pub const SHARED_CORPUS_DIR: &str = "msmarco-passage";
/// What the shared corpus was converted from (written after the corpus).
const SHARED_RECORD: &str = "corpus.json";

/// A download of one role, and the member to read when it is a tar.gz.
pub struct Source<'a> {
    pub path: &'a Path,
    pub member: Option<&'a str>,
    pub sha256: &'a str,
}

/// Runs `read` on the source's bytes: a tar.gz member, a `.gz` file or a
/// plain file. `label` (for errors) is `file!member` or the file.
fn with_source<T>(
    source: &Source,
    bar: Option<&ProgressBar>,
    read: impl FnOnce(&mut dyn Read, &Path) -> Result<T>,
) -> Result<T> {
    let path = source.path;
    let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if let Some(bar) = bar {
        bar.set_length(length);
        bar.set_position(0);
    }
    let counted: Box<dyn Read> = match bar {
        Some(bar) => Box::new(ProgressReader::new(file, bar)),
        None => Box::new(file),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let gz = name.ends_with(".gz") || name.ends_with(".tgz");
    let decoded: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            counted,
        )))
    } else {
        counted
    };
    let Some(member) = source.member else {
        return read(&mut { decoded }, path);
    };
    let mut archive = tar::Archive::new(decoded);
    let entries = archive.entries().map_err(|e| EngineError::io(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| EngineError::io(path, e))?;
        let entry_path = entry.path().map_err(|e| EngineError::io(path, e))?;
        let matches =
            entry_path == Path::new(member) || entry_path.file_name().is_some_and(|n| n == member);
        if matches {
            let label = PathBuf::from(format!("{}!{member}", path.display()));
            return read(&mut entry, &label);
        }
    }
    Err(EngineError::Fetch {
        what: path.display().to_string(),
        detail: format!("no member `{member}` in the archive"),
    })
}

/// What the shared corpus folder records about its conversion.
#[derive(Serialize, Deserialize)]
struct SharedRecord {
    collection_sha256: String,
    corpus: FileRecord,
}

/// The converted collection at `<data>/msmarco-passage/corpus.jsonl.zst`,
/// converting it unless a conversion of the same download is there.
pub fn shared_corpus(
    data: &Path,
    collection: &Source,
    bar: &ProgressBar,
) -> Result<(PathBuf, FileRecord)> {
    let dir = data.join(SHARED_CORPUS_DIR);
    let corpus = dir.join("corpus.jsonl.zst");
    let record_path = dir.join(SHARED_RECORD);
    if let Ok(text) = std::fs::read_to_string(&record_path) {
        if let Ok(record) = serde_json::from_str::<SharedRecord>(&text) {
            let size_matches =
                std::fs::metadata(&corpus).is_ok_and(|m| m.len() == record.corpus.bytes);
            if record.collection_sha256 == collection.sha256 && size_matches {
                return Ok((corpus, record.corpus));
            }
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
    // The record goes first, so a corpus being rewritten is never taken for a finished one.
    let _ = std::fs::remove_file(&record_path);
    // Named to end in .zst: the sink compresses by the name.
    let temp = dir.join(".converting.corpus.jsonl.zst");
    bar.set_message("collection.tsv → corpus.jsonl.zst");
    let record = with_source(collection, Some(bar), |reader, label| {
        let mut sink = LineSink::create(&temp)?;
        let mut json = String::new();
        for_each_line(reader, label, |number, line| {
            if line.is_empty() {
                return Ok(());
            }
            let (id, text) = split_id_text(line, label, number)?;
            json.clear();
            let row = CorpusRow {
                id,
                title: "",
                text,
            };
            // Writing JSON into a String cannot fail.
            json.push_str(&serde_json::to_string(&row).expect("serialisable"));
            sink.push(&json)
        })?;
        sink.finish()
    })?;
    std::fs::rename(&temp, &corpus).map_err(|e| EngineError::io(&corpus, e))?;
    let shared = SharedRecord {
        collection_sha256: collection.sha256.to_string(),
        corpus: record.clone(),
    };
    let text = serde_json::to_string_pretty(&shared).expect("serialisable");
    quarry_fsio::write(&record_path, text.as_bytes())?;
    Ok((corpus, record))
}

/// Reads the qrels source.
pub fn judgments(qrels: &Source) -> Result<Judgments> {
    with_source(qrels, None, |reader, label| read_trec_qrels(reader, label))
}

/// Writes `queries.jsonl.zst` with the queries that `judgments` judge (DL19
/// and DL20 publish 200 topics; 43 and 54 are judged), in file order.
/// Returns the record and the judged ids missing from the queries file.
pub fn write_queries(
    queries: &Source,
    judgments: &Judgments,
    target: &Path,
) -> Result<(FileRecord, Vec<String>)> {
    let mut seen = BTreeMap::new();
    let record = with_source(queries, None, |reader, label| {
        let mut sink = LineSink::create(target)?;
        for_each_line(reader, label, |number, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            let (id, text) = split_id_text(line, label, number)?;
            if !judgments.contains_key(id) {
                return Ok(());
            }
            if let Some(first) = seen.insert(id.to_string(), number) {
                return Err(EngineError::DataCorruption {
                    file: label.to_path_buf(),
                    detail: format!("line {number}: query `{id}` again (first on line {first})"),
                });
            }
            let row = QueryRow { id, text };
            sink.push(&serde_json::to_string(&row).expect("serialisable"))
        })?;
        sink.finish()
    })?;
    let missing = judgments
        .keys()
        .filter(|id| !seen.contains_key(*id))
        .cloned()
        .collect();
    Ok((record, missing))
}

/// Writes the qrels as `qrels/<split>.tsv`.
pub fn write_split(judgments: &Judgments, out: &Path, split: &str) -> Result<FileRecord> {
    write_qrels(&out.join("qrels").join(format!("{split}.tsv")), judgments)
}

/// Links `corpus` into `out` (a hard link: same data folder, no copy of
/// gigabytes; a copy where the file system has no hard links).
pub fn link_corpus(corpus: &Path, out: &Path) -> Result<()> {
    let target = out.join("corpus.jsonl.zst");
    if std::fs::hard_link(corpus, &target).is_err() {
        std::fs::copy(corpus, &target).map_err(|e| EngineError::io(&target, e))?;
    }
    Ok(())
}
