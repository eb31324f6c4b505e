//! Training data for contrastive fine-tuning: query groups with positive and
//! hard-negative passages, read from and written to the Tevatron/RepLLaMA
//! JSONL format, and read from MS MARCO's text triples.
//!
//! Place in the data flow: `quarry mine` ([`crate::mine`]) turns a BEIR
//! train split into [`TrainGroup`]s and writes them with
//! [`write_train_groups`]; `quarry train` reads them back with
//! [`load_train_groups`] (or [`load_train_groups_with_corpus`]) and feeds
//! them to the loss.
//!
//! Formats read (one JSON object a line, `.gz`/`.zst` allowed, blank lines
//! skipped, unknown fields ignored):
//! - Tevatron v1 / RepLLaMA (`Tevatron/msmarco-passage-aug`, Tevatron's
//!   `hn_mining.py` output): `{"query_id", "query", "positive_passages":
//!   [{"docid", "title", "text"}], "negative_passages": [...]}`; `title` is
//!   optional (Tevatron joins `title + " " + text` only when present).
//! - Tevatron v2 (`query_id`, `query_text`, `positive_document_ids`,
//!   `negative_document_ids`): passages by id, resolved against a corpus, so
//!   only [`load_train_groups_with_corpus`] reads it.
//!
//! Ids may be JSON strings or integers (both occur in published files).
//! Bad input is an error naming the file and line: a missing field, a field
//! of the wrong type, a group without positives, a doc id the corpus lacks
//! (when one is given). A query id may appear on several lines (Tevatron's
//! miner concatenates the original and the mined groups); each line is a
//! group of its own.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::{null_as_empty, Corpus, Document};
use crate::error::{EngineError, Result};
use crate::textio::LineReader;

/// One training query with its passages (Tevatron/RepLLaMA group).
///
/// Serialises as a Tevatron v1 line (`query_id`, `query`,
/// `positive_passages`, `negative_passages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainGroup {
    pub query_id: String,
    pub query: String,
    #[serde(rename = "positive_passages")]
    pub positives: Vec<TrainPassage>,
    #[serde(rename = "negative_passages")]
    pub negatives: Vec<TrainPassage>,
}

/// A passage of a training group; `title` is empty when the source has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainPassage {
    #[serde(rename = "docid")]
    pub doc_id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
}

impl TrainPassage {
    pub fn from_document(doc: &Document) -> TrainPassage {
        TrainPassage {
            doc_id: doc.id.clone(),
            title: doc.title.clone(),
            text: doc.text.clone(),
        }
    }
}

/// Reads a Tevatron v1 training file. Lines in the v2 id format are an
/// error here (they need a corpus: [`load_train_groups_with_corpus`]).
pub fn load_train_groups(path: &Path) -> Result<Vec<TrainGroup>, EngineError> {
    TrainGroupReader::open(path, None)?.collect()
}

/// Reads a Tevatron v1 or v2 training file, checking every doc id against
/// `corpus` (v1 passages keep the text written in the file; v2 ids take
/// title and text from the corpus).
pub fn load_train_groups_with_corpus(
    path: &Path,
    corpus: &Corpus,
) -> Result<Vec<TrainGroup>, EngineError> {
    TrainGroupReader::open(path, Some(corpus))?.collect()
}

/// Streams the groups of a training file, one line at a time.
pub struct TrainGroupReader<'c> {
    path: PathBuf,
    lines: LineReader,
    corpus: Option<(&'c Path, HashMap<&'c str, &'c Document>)>,
}

impl<'c> TrainGroupReader<'c> {
    pub fn open(path: &Path, corpus: Option<&'c Corpus>) -> Result<TrainGroupReader<'c>> {
        Ok(TrainGroupReader {
            path: path.to_path_buf(),
            lines: LineReader::open(path)?,
            corpus: corpus.map(|c| {
                (
                    c.path.as_path(),
                    c.docs.iter().map(|d| (d.id.as_str(), d)).collect(),
                )
            }),
        })
    }

    /// The next group and its line number; `None` at the end of the file.
    pub fn next_group(&mut self) -> Result<Option<(u64, TrainGroup)>> {
        let Some((line_number, line)) = self.lines.next_nonblank()? else {
            return Ok(None);
        };
        let file = self.path.as_path();
        let row: GroupRow = serde_json::from_str(line)
            .map_err(|e| EngineError::malformed(file, line_number, format!("{GROUP}: {e}")))?;
        let group = row.into_group(file, line_number, self.corpus.as_ref())?;
        Ok(Some((line_number, group)))
    }
}

impl Iterator for TrainGroupReader<'_> {
    type Item = Result<TrainGroup>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_group().transpose().map(|r| r.map(|(_, g)| g))
    }
}

const GROUP: &str = "a Tevatron training group {\"query_id\", \"query\", \
     \"positive_passages\": [{\"docid\", \"title\", \"text\"}], \"negative_passages\": [...]}";

/// A JSON id: a string, or an integer written as its decimal text.
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or integer id")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

#[derive(Deserialize)]
struct PassageRow {
    docid: Id,
    #[serde(default, deserialize_with = "null_as_empty")]
    title: String,
    text: String,
}

/// Both Tevatron layouts; which fields are present decides which one a line is.
#[derive(Deserialize)]
struct GroupRow {
    query_id: Id,
    /// v1 `query`, v2 `query_text`.
    #[serde(alias = "query_text")]
    query: Option<String>,
    positive_passages: Option<Vec<PassageRow>>,
    negative_passages: Option<Vec<PassageRow>>,
    positive_document_ids: Option<Vec<Id>>,
    negative_document_ids: Option<Vec<Id>>,
}

type CorpusLookup<'c> = (&'c Path, HashMap<&'c str, &'c Document>);

impl GroupRow {
    fn into_group(
        self,
        file: &Path,
        line: u64,
        corpus: Option<&CorpusLookup<'_>>,
    ) -> Result<TrainGroup> {
        let missing = |field: &str| {
            EngineError::malformed(file, line, format!("{GROUP}: missing field `{field}`"))
        };
        let query_id = self.query_id.0;
        let query = self.query.ok_or_else(|| missing("query"))?;
        let (positives, negatives) = match (self.positive_passages, self.positive_document_ids) {
            (Some(positives), None) => {
                let negatives = self
                    .negative_passages
                    .ok_or_else(|| missing("negative_passages"))?;
                let check = |rows: Vec<PassageRow>| -> Result<Vec<TrainPassage>> {
                    rows.into_iter()
                        .map(|row| {
                            if let Some((corpus_file, docs)) = corpus {
                                if !docs.contains_key(row.docid.0.as_str()) {
                                    return Err(unknown_doc(file, line, &row.docid.0, corpus_file));
                                }
                            }
                            Ok(TrainPassage {
                                doc_id: row.docid.0,
                                title: row.title,
                                text: row.text,
                            })
                        })
                        .collect()
                };
                (check(positives)?, check(negatives)?)
            }
            (None, Some(positive_ids)) => {
                let negative_ids = self
                    .negative_document_ids
                    .ok_or_else(|| missing("negative_document_ids"))?;
                let Some((corpus_file, docs)) = corpus else {
                    return Err(EngineError::malformed(
                        file,
                        line,
                        "passages with their text (\"positive_passages\"); this line gives only \
                         doc ids (Tevatron v2 \"positive_document_ids\"), which need a corpus to \
                         resolve them",
                    ));
                };
                let resolve = |ids: Vec<Id>| -> Result<Vec<TrainPassage>> {
                    ids.into_iter()
                        .map(|id| match docs.get(id.0.as_str()) {
                            Some(doc) => Ok(TrainPassage::from_document(doc)),
                            None => Err(unknown_doc(file, line, &id.0, corpus_file)),
                        })
                        .collect()
                };
                (resolve(positive_ids)?, resolve(negative_ids)?)
            }
            (Some(_), Some(_)) => {
                return Err(EngineError::malformed(
                    file,
                    line,
                    "one of \"positive_passages\" (Tevatron v1) or \"positive_document_ids\" \
                     (Tevatron v2), not both",
                ))
            }
            (None, None) => return Err(missing("positive_passages")),
        };
        if positives.is_empty() {
            return Err(EngineError::NoPositives {
                file: file.to_path_buf(),
                line,
                query_id,
            });
        }
        Ok(TrainGroup {
            query_id,
            query,
            positives,
            negatives,
        })
    }
}

fn unknown_doc(file: &Path, line: u64, doc_id: &str, corpus: &Path) -> EngineError {
    EngineError::UnknownDocId {
        file: file.to_path_buf(),
        line,
        doc_id: doc_id.to_string(),
        corpus: corpus.to_path_buf(),
    }
}

/// Reads MS MARCO's text triples (`triples.train.small.tsv`: `query TAB
/// positive passage TAB negative passage`, no ids) into groups: lines with
/// the same query text form one group, in order of first appearance, with
/// their positives and negatives deduplicated by text.
///
/// The triples carry no ids, so ids are derived from the text: `q` or `p`
/// followed by the first 16 hex digits of its sha256 (stable across runs
/// and files, equal texts get equal ids). Titles are empty.
pub fn load_msmarco_triples(path: &Path) -> Result<Vec<TrainGroup>, EngineError> {
    let mut reader = LineReader::open(path)?;
    let mut groups: Vec<TrainGroup> = Vec::new();
    let mut group_of_query: HashMap<String, usize> = HashMap::new();
    while let Some((line_number, line)) = reader.next_nonblank()? {
        let fields: Vec<&str> = line.split('\t').collect();
        let [query, positive, negative] = fields[..] else {
            return Err(EngineError::malformed(
                path,
                line_number,
                format!(
                    "3 tab-separated fields (query, positive passage, negative passage), found {}",
                    fields.len()
                ),
            ));
        };
        if [query, positive, negative]
            .iter()
            .any(|f| f.trim().is_empty())
        {
            return Err(EngineError::malformed(
                path,
                line_number,
                "non-empty query, positive and negative texts",
            ));
        }
        let index = *group_of_query.entry(query.to_string()).or_insert_with(|| {
            groups.push(TrainGroup {
                query_id: text_id('q', query),
                query: query.to_string(),
                positives: Vec::new(),
                negatives: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[index];
        for (text, list) in [
            (positive, &mut group.positives),
            (negative, &mut group.negatives),
        ] {
            let doc_id = text_id('p', text);
            if !list.iter().any(|p| p.doc_id == doc_id) {
                list.push(TrainPassage {
                    doc_id,
                    title: String::new(),
                    text: text.to_string(),
                });
            }
        }
    }
    Ok(groups)
}

/// `prefix` + the first 16 hex digits of sha256(`text`).
fn text_id(prefix: char, text: &str) -> String {
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    format!("{prefix}{}", &hash[..16])
}

/// Writes groups as Tevatron v1 JSONL, atomically (temp file, fsync,
/// rename): an interrupted write leaves no partial file. Groups are pulled
/// one at a time, so a large file is never held in memory whole. Returns
/// how many were written.
pub fn write_train_groups(
    path: &Path,
    groups: impl IntoIterator<Item = TrainGroup>,
    format: GroupFormat,
) -> Result<usize> {
    let mut count = 0;
    quarry_fsio::write_with(path, |out| {
        for group in groups {
            match format {
                GroupFormat::TevatronV1 => serde_json::to_writer(&mut *out, &group)?,
                GroupFormat::TevatronV2 => {
                    let ids = |passages: &[TrainPassage]| -> Vec<String> {
                        passages.iter().map(|p| p.doc_id.clone()).collect()
                    };
                    let line = serde_json::json!({
                        "query_id": group.query_id,
                        "query_text": group.query,
                        "positive_document_ids": ids(&group.positives),
                        "negative_document_ids": ids(&group.negatives),
                    });
                    serde_json::to_writer(&mut *out, &line)?
                }
            }
            out.write_all(b"\n")?;
            count += 1;
        }
        Ok(())
    })?;
    Ok(count)
}

/// How training groups are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupFormat {
    /// Tevatron v1 / RepLLaMA: passages inline (`positive_passages` with docid, title,
    /// text); self-contained.
    #[default]
    TevatronV1,
    /// Tevatron v2: passages by id (`positive_document_ids`); a fraction of the size, read
    /// back against the corpus (`quarry train --corpus FILE`).
    TevatronV2,
}

/// Lowercase hex sha256 of a file's bytes (as written, not decompressed).
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| EngineError::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::read_corpus_file;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    const GOOD: &str = r#"{"query_id": "3", "query": "what is rust", "positive_passages": [{"docid": "d1", "title": "Rust", "text": "a language"}], "negative_passages": [{"docid": "d2", "title": "", "text": "a fungus"}, {"docid": 7, "text": "no title"}]}

{"query_id": 3, "query": "what is rust", "positive_passages": [{"docid": "d1", "title": null, "text": "again"}], "negative_passages": [], "answer": null}
"#;

    #[test]
    fn reads_tevatron_v1_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "train.jsonl", GOOD);
        let groups = load_train_groups(&path).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0],
            TrainGroup {
                query_id: "3".into(),
                query: "what is rust".into(),
                positives: vec![TrainPassage {
                    doc_id: "d1".into(),
                    title: "Rust".into(),
                    text: "a language".into()
                }],
                negatives: vec![
                    TrainPassage {
                        doc_id: "d2".into(),
                        title: "".into(),
                        text: "a fungus".into()
                    },
                    TrainPassage {
                        doc_id: "7".into(),
                        title: "".into(),
                        text: "no title".into()
                    }
                ],
            }
        );
        assert_eq!(groups[1].query_id, "3");
        assert!(groups[1].negatives.is_empty());
        // Compressed input reads the same.
        let zst = dir.path().join("train.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(GOOD.as_bytes(), 3).unwrap()).unwrap();
        assert_eq!(load_train_groups(&zst).unwrap(), groups);
    }

    #[test]
    fn written_groups_read_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let groups = load_train_groups(&write(dir.path(), "in.jsonl", GOOD)).unwrap();
        let out = dir.path().join("out.jsonl");
        assert_eq!(
            write_train_groups(&out, groups.clone(), GroupFormat::TevatronV1).unwrap(),
            2
        );
        assert_eq!(load_train_groups(&out).unwrap(), groups);
        let first_line = std::fs::read_to_string(&out).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(first_line.lines().next().unwrap()).unwrap();
        assert_eq!(first["positive_passages"][0]["docid"], "d1");
        assert_eq!(first["negative_passages"][1]["title"], "");
    }

    fn error_of(content: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.jsonl", content);
        load_train_groups(&path).unwrap_err().to_string()
    }

    const LINE1: &str = r#"{"query_id": "1", "query": "q", "positive_passages": [{"docid": "a", "text": "t"}], "negative_passages": []}"#;

    #[test]
    fn bad_lines_name_file_line_and_problem() {
        let cases = [
            (
                r#"{"query_id": "2", "positive_passages": [{"docid": "a", "text": "t"}], "negative_passages": []}"#,
                "missing field `query`",
            ),
            (
                r#"{"query": "q", "positive_passages": [{"docid": "a", "text": "t"}], "negative_passages": []}"#,
                "missing field `query_id`",
            ),
            (
                r#"{"query_id": "2", "query": "q", "positive_passages": [{"docid": "a", "text": "t"}]}"#,
                "missing field `negative_passages`",
            ),
            (
                r#"{"query_id": "2", "query": "q", "negative_passages": []}"#,
                "missing field `positive_passages`",
            ),
            (
                r#"{"query_id": "2", "query": "q", "positive_passages": [{"docid": "a"}], "negative_passages": []}"#,
                "missing field `text`",
            ),
            (
                r#"{"query_id": "2", "query": 5, "positive_passages": [{"docid": "a", "text": "t"}], "negative_passages": []}"#,
                "invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"query_id": 2.5, "query": "q", "positive_passages": [{"docid": "a", "text": "t"}], "negative_passages": []}"#,
                "expected a string or integer id",
            ),
            (
                r#"{"query_id": "2", "query": "q", "positive_passages": {"docid": "a"}, "negative_passages": []}"#,
                "expected a sequence",
            ),
            (
                r#"{"query_id": "2", "query": "q", "positive_passages": [], "negative_passages": []}"#,
                "query `2` has no positive passage",
            ),
            (r#"{"query_id": "2", "query": "q""#, "EOF while parsing"),
            (
                r#"{"query_id": "2", "query_text": "q", "positive_document_ids": ["a"], "negative_document_ids": []}"#,
                "need a corpus",
            ),
        ];
        for (line, expected) in cases {
            let err = error_of(&format!("{LINE1}\n{line}\n"));
            assert!(err.contains("bad.jsonl:2:"), "{line}\n{err}");
            assert!(err.contains(expected), "{line}\n{err}");
        }
    }

    #[test]
    fn corpus_resolves_v2_ids_and_rejects_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = read_corpus_file(&write(
            dir.path(),
            "corpus.jsonl",
            "{\"_id\": \"a\", \"title\": \"A\", \"text\": \"alpha\"}\n\
             {\"_id\": \"b\", \"text\": \"beta\"}\n",
        ))
        .unwrap();
        let v2 = write(
            dir.path(),
            "v2.jsonl",
            r#"{"query_id": "1", "query_text": "q", "query_image": null, "positive_document_ids": ["a"], "negative_document_ids": ["b"], "source": "x"}"#,
        );
        let groups = load_train_groups_with_corpus(&v2, &corpus).unwrap();
        assert_eq!(groups[0].positives[0].title, "A");
        assert_eq!(groups[0].negatives[0].text, "beta");

        let unknown = write(
            dir.path(),
            "unknown.jsonl",
            &format!(
                "{LINE1}\n{}\n",
                r#"{"query_id": "1", "query": "q", "positive_passages": [{"docid": "a", "text": "t"}], "negative_passages": [{"docid": "zz", "text": "t"}]}"#
            ),
        );
        let err = load_train_groups_with_corpus(&unknown, &corpus).unwrap_err();
        assert!(
            matches!(&err, EngineError::UnknownDocId { line: 2, doc_id, .. } if doc_id == "zz"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("unknown.jsonl:2:"), "{message}");
        assert!(
            message.contains("`zz`") && message.contains("corpus.jsonl"),
            "{message}"
        );
        // Without a corpus the same file reads (ids are not checked).
        assert_eq!(load_train_groups(&unknown).unwrap().len(), 2);
    }

    #[test]
    fn msmarco_triples_group_by_query() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "triples.tsv",
            "what is a\tA is a letter.\tB is a letter.\n\
             who is b\tB is a bee.\tC.\n\
             what is a\tA is a letter.\tD is not.\n",
        );
        let groups = load_msmarco_triples(&path).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].query, "what is a");
        assert_eq!(groups[0].positives.len(), 1);
        assert_eq!(groups[0].negatives.len(), 2);
        assert_eq!(groups[0].query_id, text_id('q', "what is a"));
        assert_eq!(groups[0].positives[0].doc_id.len(), 17);

        let bad = write(dir.path(), "bad.tsv", "q\tp\tn\nq\tp\n");
        let err = load_msmarco_triples(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.tsv:2:") && err.contains("3 tab-separated"),
            "{err}"
        );
        let empty = write(dir.path(), "empty.tsv", "q\t\tn\n");
        let err = load_msmarco_triples(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.tsv:1:") && err.contains("non-empty"),
            "{err}"
        );
    }

    /// The real sample of MS MARCO `triples.train.small` carried in `data/`.
    #[test]
    fn reads_the_real_msmarco_triples_sample() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/msmarco-train-triples-sample/triples.tsv.zst");
        let groups = load_msmarco_triples(&path).unwrap();
        assert_eq!(groups.len(), 100);
        assert!(groups
            .iter()
            .all(|g| g.positives.len() == 1 && g.negatives.len() == 1));
        assert_eq!(groups[0].query, "is a little caffeine ok during pregnancy");
    }
}
