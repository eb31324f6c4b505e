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

/// The most bytes a queries or qrels member may have (they are read whole;
/// MS MARCO's largest, the train queries, is 41 MB).
const SMALL_LIMIT: u64 = 256 << 20;

/// A queries or qrels source read whole, with the label errors name.
pub struct Small {
    pub bytes: Vec<u8>,
    pub label: PathBuf,
}

/// What a download is read for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Collection,
    Queries,
    Qrels,
}

/// Reads one download once: a plain or `.gz` file is handed to `visit` as a
/// whole (member `None`); in a `.tar.gz` each wanted member is handed over as
/// the archive reaches it. `visit(i, reader, label)` gets the index into
/// `members`; a wanted member the archive lacks is an error.
fn scan(
    path: &Path,
    members: &[Option<&str>],
    bar: &ProgressBar,
    mut visit: impl FnMut(usize, &mut dyn Read, &Path) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    bar.set_length(file.metadata().map(|m| m.len()).unwrap_or(0));
    bar.set_position(0);
    let counted = ProgressReader::new(file, bar);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut decoded: Box<dyn Read + '_> = if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            counted,
        )))
    } else {
        Box::new(counted)
    };
    if members.iter().all(Option::is_none) {
        return members
            .iter()
            .enumerate()
            .try_for_each(|(i, _)| visit(i, &mut decoded, path));
    }
    let mut found = vec![false; members.len()];
    let mut archive = tar::Archive::new(decoded);
    let entries = archive.entries().map_err(|e| EngineError::io(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| EngineError::io(path, e))?;
        let entry_path = entry
            .path()
            .map_err(|e| EngineError::io(path, e))?
            .into_owned();
        for (i, member) in members.iter().enumerate() {
            let Some(member) = member else { continue };
            let matches = entry_path == Path::new(member)
                || entry_path.file_name().is_some_and(|n| n == *member);
            if matches && !found[i] {
                found[i] = true;
                let label = PathBuf::from(format!("{}!{member}", path.display()));
                visit(i, &mut entry, &label)?;
                break;
            }
        }
        if found.iter().all(|f| *f) {
            return Ok(());
        }
    }
    let missing: Vec<&str> = members
        .iter()
        .zip(&found)
        .filter(|(_, f)| !**f)
        .filter_map(|(m, _)| *m)
        .collect();
    Err(EngineError::Fetch {
        what: path.display().to_string(),
        detail: format!("no member {} in the archive", missing.join(", ")),
    })
}

/// What the shared corpus folder records about its conversion.
#[derive(Serialize, Deserialize)]
struct SharedRecord {
    collection_sha256: String,
    corpus: FileRecord,
}

/// The shared corpus, when it was converted from this very download.
fn converted_before(dir: &Path, collection: &Source) -> Option<FileRecord> {
    let text = std::fs::read_to_string(dir.join(SHARED_RECORD)).ok()?;
    let record: SharedRecord = serde_json::from_str(&text).ok()?;
    let corpus = dir.join("corpus.jsonl.zst");
    let size_matches = std::fs::metadata(corpus).is_ok_and(|m| m.len() == record.corpus.bytes);
    (record.collection_sha256 == collection.sha256 && size_matches).then_some(record.corpus)
}

/// The collection's lines as BEIR corpus rows into `temp`.
fn convert_collection(reader: &mut dyn Read, label: &Path, temp: &Path) -> Result<FileRecord> {
    let mut sink = LineSink::create(temp)?;
    for_each_line(reader, label, |number, line| {
        if line.is_empty() {
            return Ok(());
        }
        let (id, text) = split_id_text(line, label, number)?;
        let row = CorpusRow {
            id,
            title: "",
            text,
        };
        // Serialising plain strings cannot fail.
        sink.push(&serde_json::to_string(&row).expect("serialisable"))
    })?;
    sink.finish()
}

/// The sources of an MS MARCO dataset, read in one pass per download (the
/// collection and dev-small's queries and qrels share one 1 GB archive): the
/// collection streams into `<data>/msmarco-passage/corpus.jsonl.zst` unless
/// it was converted from the same download before; the queries and qrels are
/// read whole. Returns the corpus with its record, the queries and the qrels.
pub fn read_sources(
    data: &Path,
    collection: &Source,
    queries: &Source,
    qrels: &Source,
    bar: &ProgressBar,
) -> Result<(PathBuf, FileRecord, Small, Small)> {
    let dir = data.join(SHARED_CORPUS_DIR);
    let corpus = dir.join("corpus.jsonl.zst");
    let mut record = converted_before(&dir, collection);
    let convert = record.is_none();
    // Named to end in .zst: the sink compresses by the name.
    let temp = dir.join(".converting.corpus.jsonl.zst");
    if convert {
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        // The record goes first, so a corpus being rewritten is never taken for a finished one.
        let _ = std::fs::remove_file(dir.join(SHARED_RECORD));
    }
    let jobs = [
        (Role::Collection, collection),
        (Role::Queries, queries),
        (Role::Qrels, qrels),
    ];
    let mut small: [Option<Small>; 2] = [None, None];
    let mut paths: Vec<&Path> = Vec::new();
    for (_, source) in &jobs {
        if !paths.contains(&source.path) {
            paths.push(source.path);
        }
    }
    for path in paths {
        let group: Vec<(Role, &Source)> = jobs
            .iter()
            .filter(|(_, s)| s.path == path)
            .map(|(r, s)| (*r, *s))
            .collect();
        if !convert && group.iter().all(|(role, _)| *role == Role::Collection) {
            continue; // nothing to read in it: the collection was converted before
        }
        let members: Vec<Option<&str>> = group.iter().map(|(_, s)| s.member).collect();
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        scan(path, &members, bar, |i, reader, label| match group[i].0 {
            Role::Collection if convert => {
                record = Some(convert_collection(reader, label, &temp)?);
                Ok(())
            }
            // Converted before: the archive reads past it.
            Role::Collection => Ok(()),
            role => {
                let mut bytes = Vec::new();
                reader
                    .take(SMALL_LIMIT + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| EngineError::io(label, e))?;
                if bytes.len() as u64 > SMALL_LIMIT {
                    return Err(EngineError::Fetch {
                        what: label.display().to_string(),
                        detail: format!(
                            "larger than {SMALL_LIMIT} bytes: not a queries or qrels file"
                        ),
                    });
                }
                let slot = usize::from(role == Role::Qrels);
                small[slot] = Some(Small {
                    bytes,
                    label: label.to_path_buf(),
                });
                Ok(())
            }
        })?;
    }
    let record = record.expect("scan visits the collection or it was converted before");
    if convert {
        std::fs::rename(&temp, &corpus).map_err(|e| EngineError::io(&corpus, e))?;
        let shared = SharedRecord {
            collection_sha256: collection.sha256.to_string(),
            corpus: record.clone(),
        };
        let text = serde_json::to_string_pretty(&shared).expect("serialisable");
        quarry_fsio::write(&dir.join(SHARED_RECORD), text.as_bytes())?;
    }
    let [queries, qrels] = small;
    Ok((
        corpus,
        record,
        queries.expect("scan visits every member"),
        qrels.expect("scan visits every member"),
    ))
}

/// Parses the qrels (TREC layout).
pub fn judgments(qrels: &Small) -> Result<Judgments> {
    read_trec_qrels(&qrels.bytes[..], &qrels.label)
}

/// Writes `queries.jsonl.zst` with the queries that `judgments` judge (DL19
/// and DL20 publish 200 topics; 43 and 54 are judged), in file order.
/// Returns the record and the judged ids missing from the queries file.
pub fn write_queries(
    queries: &Small,
    judgments: &Judgments,
    target: &Path,
) -> Result<(FileRecord, Vec<String>)> {
    let mut seen = BTreeMap::new();
    let label = &queries.label;
    let mut sink = LineSink::create(target)?;
    for_each_line(&queries.bytes[..], label, |number, line| {
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
    let record = sink.finish()?;
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
