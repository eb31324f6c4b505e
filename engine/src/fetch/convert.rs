//! The pieces every converter shares: reading the lines of an archive
//! member, and writing quarry's files (`corpus.jsonl.zst`,
//! `queries.jsonl.zst`, `qrels/<split>.tsv`) with the sha256 and count of
//! what they hold. Everything streams: memory does not grow with the corpus.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// zstd level of converted files: zstd's default, ~3x on BEIR text at a
/// few hundred MB/s (level 6 halved the MS MARCO conversion's speed for ~8% less disk).
const ZSTD_LEVEL: i32 = 3;

/// Calls `each(line_number, line)` for every line of `reader`, line endings
/// (`\n`, `\r\n`) removed. `label` names the source in errors
/// (`archive.zip!member`).
pub fn for_each_line(
    reader: impl Read,
    label: &Path,
    mut each: impl FnMut(u64, &str) -> Result<()>,
) -> Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buffer = String::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        number += 1;
        match reader.read_line(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(EngineError::malformed(label, number, "UTF-8 text"))
            }
            Err(e) => return Err(EngineError::io(label, e)),
        }
        let line = buffer.strip_suffix('\n').unwrap_or(&buffer);
        let line = line.strip_suffix('\r').unwrap_or(line);
        each(number, line)?;
    }
}

/// What a written file holds, recorded in `fetched.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    /// Lines written (records; blank lines are not written).
    pub lines: u64,
    /// sha256 of the uncompressed text.
    pub sha256: String,
    /// Size on disk.
    pub bytes: u64,
}

/// A text file written line by line, zstd-compressed when its name ends in
/// `.zst`, hashing the uncompressed bytes.
pub struct LineSink {
    path: PathBuf,
    out: Out,
    hasher: Sha256,
    lines: u64,
}

impl LineSink {
    pub fn create(path: &Path) -> Result<LineSink> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        }
        let file = BufWriter::with_capacity(
            1 << 20,
            File::create(path).map_err(|e| EngineError::io(path, e))?,
        );
        let out = if path.extension().is_some_and(|e| e == "zst") {
            let mut encoder =
                zstd::Encoder::new(file, ZSTD_LEVEL).map_err(|e| EngineError::io(path, e))?;
            // One worker compresses while this thread parses (zstd's own threads).
            encoder
                .multithread(1)
                .map_err(|e| EngineError::io(path, e))?;
            Out::Zstd(encoder)
        } else {
            Out::Plain(file)
        };
        Ok(LineSink {
            path: path.to_path_buf(),
            out,
            hasher: Sha256::new(),
            lines: 0,
        })
    }

    /// Writes `line` and a `\n`.
    pub fn push(&mut self, line: &str) -> Result<()> {
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        let out: &mut dyn Write = match &mut self.out {
            Out::Plain(w) => w,
            Out::Zstd(w) => w,
        };
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| EngineError::io(&self.path, e))?;
        self.lines += 1;
        Ok(())
    }

    /// Writes a line that is not a record (a header): hashed, not counted.
    pub fn push_header(&mut self, line: &str) -> Result<()> {
        self.push(line)?;
        self.lines -= 1;
        Ok(())
    }

    /// Flushes, fsyncs and reports what was written.
    pub fn finish(self) -> Result<FileRecord> {
        let at = |e| EngineError::io(&self.path, e);
        // The zstd frame's end and the last buffer can each fail (a full
        // disk): both are errors here, never lost in a drop.
        let buffered = match self.out {
            Out::Plain(w) => w,
            Out::Zstd(w) => w.finish().map_err(at)?,
        };
        let file = buffered.into_inner().map_err(|e| at(e.into_error()))?;
        file.sync_all().map_err(at)?;
        let bytes = file
            .metadata()
            .map_err(|e| EngineError::io(&self.path, e))?
            .len();
        Ok(FileRecord {
            lines: self.lines,
            sha256: hex::encode(self.hasher.finalize()),
            bytes,
        })
    }
}

enum Out {
    Plain(BufWriter<File>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
}

/// One BEIR corpus row, as BEIR writes it.
#[derive(Serialize)]
pub struct CorpusRow<'a> {
    #[serde(rename = "_id")]
    pub id: &'a str,
    pub title: &'a str,
    pub text: &'a str,
}

/// One BEIR query row.
#[derive(Serialize)]
pub struct QueryRow<'a> {
    #[serde(rename = "_id")]
    pub id: &'a str,
    pub text: &'a str,
}

/// Judgments of one split, query → doc → grade, as a TREC qrels file or a
/// BEIR tsv gives them.
pub type Judgments = BTreeMap<String, BTreeMap<String, i32>>;

/// Writes `qrels/<split>.tsv` in BEIR's layout.
pub fn write_qrels(path: &Path, judgments: &Judgments) -> Result<FileRecord> {
    let mut sink = LineSink::create(path)?;
    sink.push_header("query-id\tcorpus-id\tscore")?;
    for (query, docs) in judgments {
        for (doc, grade) in docs {
            sink.push(&format!("{query}\t{doc}\t{grade}"))?;
        }
    }
    sink.finish()
}

/// Parses TREC qrels lines (`qid iter docid grade`, white-space separated).
pub fn read_trec_qrels(reader: impl Read, label: &Path) -> Result<Judgments> {
    let mut judgments = Judgments::new();
    for_each_line(reader, label, |number, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let grade = match fields.as_slice() {
            [_, _, _, grade] => grade.parse::<i32>().ok(),
            _ => None,
        };
        let Some(grade) = grade else {
            return Err(EngineError::malformed(
                label,
                number,
                "`query-id iteration doc-id grade` (TREC qrels)",
            ));
        };
        let previous = judgments
            .entry(fields[0].to_string())
            .or_default()
            .insert(fields[2].to_string(), grade);
        if previous.is_some() {
            return Err(EngineError::DataCorruption {
                file: label.to_path_buf(),
                detail: format!(
                    "line {number}: query `{}` judges doc `{}` again",
                    fields[0], fields[2]
                ),
            });
        }
        Ok(())
    })?;
    Ok(judgments)
}

/// `id<TAB>text` lines (MS MARCO's collection and queries).
pub fn split_id_text<'a>(line: &'a str, label: &Path, number: u64) -> Result<(&'a str, &'a str)> {
    match line.split_once('\t') {
        Some((id, text)) if !id.is_empty() => Ok((id, text)),
        _ => Err(EngineError::malformed(label, number, "`id<TAB>text`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_hashes_what_a_reader_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl.zst");
        let mut sink = LineSink::create(&path).unwrap();
        sink.push("{\"_id\":\"1\"}").unwrap();
        sink.push("{\"_id\":\"2\"}").unwrap();
        let record = sink.finish().unwrap();
        assert_eq!(record.lines, 2);
        let mut reader = crate::textio::LineReader::open_hashing(&path).unwrap();
        while reader.next_line().unwrap().is_some() {}
        assert_eq!(reader.finish_sha256().unwrap().unwrap(), record.sha256);
    }

    #[test]
    fn trec_qrels_errors_name_the_line() {
        let text = "1 0 d1 1\n1 0 d2\n";
        let err = read_trec_qrels(text.as_bytes(), Path::new("q.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("q.txt:2"), "{err}");
        let text = "1 0 d1 1\n1 0 d1 2\n";
        let err = read_trec_qrels(text.as_bytes(), Path::new("q.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("again"), "{err}");
    }
}
