//! Datasets in BEIR layout: `corpus.jsonl`, `queries.jsonl` and
//! `qrels/<split>.tsv`, each optionally `.gz`- or `.zst`-compressed.
//!
//! This is where data enters quarry. A [`Dataset`] is resolved from a
//! registry name or a folder path; reading it yields a [`Corpus`] (with the
//! sha256 of its uncompressed bytes, which keys every index built from it),
//! [`Query`]s and [`Qrels`]. Malformed input is an error naming the file and
//! line; nothing is skipped silently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::{EngineError, Result};
use crate::registry::{DatasetKind, Registry, RegistryEntry};
use crate::textio::{find_variant, variant_names, FirstSeen, LineReader, COMPRESSED_SUFFIXES};

/// Default split of a folder given by path (BEIR's evaluation split).
pub const DEFAULT_SPLIT: &str = "test";

/// A dataset folder plus what quarry knows about it.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Registry name, or the folder name for `--dataset path/to/folder`.
    pub name: String,
    pub root: PathBuf,
    pub default_split: String,
    pub remove_self: bool,
    /// From the registry; `None` when unknown.
    pub expected_corpus_sha256: Option<String>,
    pub kind: Option<DatasetKind>,
    /// Whether this came from a registry entry (false for a bare folder).
    pub registered: bool,
    /// Whether `quarry datasets fetch NAME` can download what is missing.
    pub fetchable: bool,
}

/// One corpus row. Extra fields (BEIR's `metadata`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// The whole corpus in memory, in file order.
#[derive(Debug)]
pub struct Corpus {
    pub path: PathBuf,
    pub docs: Vec<Document>,
    /// Lowercase hex sha256 of the uncompressed corpus file.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: String,
    pub text: String,
}

/// Relevance judgments of one split: query id -> doc id -> grade.
/// Grade >= 1 is relevant; 0 is judged non-relevant.
#[derive(Debug, Clone, Default)]
pub struct Qrels {
    pub path: PathBuf,
    pub by_query: BTreeMap<String, HashMap<String, i32>>,
}

/// Qrels doc ids that are not in the corpus (reported, not fatal: the
/// metrics still count them as relevant, so recall cannot reach 1).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MissingQrelsDocs {
    /// Judgments (query, doc) whose doc is missing.
    pub judgments: usize,
    /// Distinct missing doc ids.
    pub distinct_docs: usize,
    /// A few of them, sorted, for the message.
    pub examples: Vec<String>,
}

impl Dataset {
    /// Resolves what the user typed after `--dataset`: a registry name first,
    /// then a path to a BEIR folder. Neither gives an error listing the
    /// registry's names.
    pub fn resolve(spec: &str, registry: Option<&Registry>) -> Result<Dataset> {
        if let Some(entry) = registry.and_then(|r| r.get(spec)) {
            return Ok(Dataset::from_entry(entry));
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Dataset::from_folder(path);
        }
        Err(EngineError::UnknownDataset {
            name: spec.to_string(),
            known: registry.map(Registry::names).unwrap_or_default(),
            registry: registry.map(|r| r.file.clone()),
        })
    }

    pub fn from_entry(entry: &RegistryEntry) -> Dataset {
        Dataset {
            name: entry.name.clone(),
            root: entry.root(),
            default_split: entry.split.clone(),
            remove_self: entry.remove_self,
            expected_corpus_sha256: (!entry.corpus_sha256.is_empty())
                .then(|| entry.corpus_sha256.clone()),
            kind: Some(entry.kind),
            registered: true,
            fetchable: entry.fetchable(),
        }
    }

    /// A folder without a registry entry: split `test`, no self-hit removal,
    /// no checksum to verify.
    pub fn from_folder(path: &Path) -> Result<Dataset> {
        let root = path.canonicalize().map_err(|e| EngineError::io(path, e))?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".to_string());
        Ok(Dataset {
            name,
            root,
            default_split: DEFAULT_SPLIT.to_string(),
            remove_self: false,
            expected_corpus_sha256: None,
            kind: None,
            registered: false,
            fetchable: false,
        })
    }

    pub fn find_corpus(&self) -> Option<PathBuf> {
        find_variant(&self.root, "corpus.jsonl")
    }

    pub fn find_queries(&self) -> Option<PathBuf> {
        find_variant(&self.root, "queries.jsonl")
    }

    pub fn find_qrels(&self, split: &str) -> Option<PathBuf> {
        find_variant(&self.root.join("qrels"), &format!("{split}.tsv"))
    }

    pub fn corpus_path(&self) -> Result<PathBuf> {
        self.find_corpus()
            .ok_or_else(|| self.missing("corpus", &self.root, "corpus.jsonl"))
    }

    pub fn queries_path(&self) -> Result<PathBuf> {
        self.find_queries()
            .ok_or_else(|| self.missing("queries", &self.root, "queries.jsonl"))
    }

    pub fn qrels_path(&self, split: &str) -> Result<PathBuf> {
        self.find_qrels(split).ok_or_else(|| {
            let mut err = self.missing(
                &format!("qrels for split `{split}`"),
                &self.root.join("qrels"),
                &format!("{split}.tsv"),
            );
            if let EngineError::MissingFile { looked_for, .. } = &mut err {
                let splits = self.qrels_splits();
                looked_for.push_str(&format!(
                    "; splits present: {}",
                    if splits.is_empty() {
                        "none".to_string()
                    } else {
                        splits.join(", ")
                    }
                ));
            }
            err
        })
    }

    fn missing(&self, what: &str, dir: &Path, name: &str) -> EngineError {
        let mut looked_for = variant_names(name);
        if self.fetchable {
            looked_for.push_str(&format!(
                "; `quarry datasets fetch {}` downloads it",
                self.name
            ));
        }
        EngineError::MissingFile {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            looked_for,
        }
    }

    /// The qrels splits present (`qrels/<split>.tsv[.gz|.zst]`), sorted.
    pub fn qrels_splits(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("qrels")) else {
            return Vec::new();
        };
        let mut splits: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                std::iter::once("")
                    .chain(COMPRESSED_SUFFIXES)
                    .find_map(|suffix| {
                        name.strip_suffix(&format!(".tsv{suffix}"))
                            .map(str::to_string)
                    })
            })
            .collect();
        splits.sort();
        splits.dedup();
        splits
    }

    /// Reads the corpus, hashing it on the way; a registry checksum that
    /// does not match is an error.
    pub fn read_corpus(&self) -> Result<Corpus> {
        let corpus = read_corpus_file(&self.corpus_path()?)?;
        if let Some(expected) = &self.expected_corpus_sha256 {
            if *expected != corpus.sha256 {
                return Err(EngineError::ChecksumMismatch {
                    file: corpus.path,
                    expected: expected.clone(),
                    actual: corpus.sha256,
                });
            }
        }
        Ok(corpus)
    }

    pub fn read_queries(&self) -> Result<Vec<Query>> {
        read_queries_file(&self.queries_path()?)
    }

    pub fn read_qrels(&self, split: &str) -> Result<Qrels> {
        read_qrels_file(&self.qrels_path(split)?)
    }
}

/// Accepts a string or an integer id (some BEIR exports write numbers).
fn deserialize_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Integer(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(s) => s,
        Id::Integer(i) => i.to_string(),
    })
}

/// `null` reads as an empty string (some exports write it for a missing title).
pub(crate) fn null_as_empty<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct CorpusRow {
    #[serde(rename = "_id", deserialize_with = "deserialize_id")]
    id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    title: String,
    text: String,
}

#[derive(Deserialize)]
struct QueryRow {
    #[serde(rename = "_id", deserialize_with = "deserialize_id")]
    id: String,
    text: String,
}

const CORPUS_ROW: &str =
    r#"a JSON object with string fields "_id" and "text" (and optionally "title")"#;
const QUERY_ROW: &str = r#"a JSON object with string fields "_id" and "text""#;

pub fn read_corpus_file(path: &Path) -> Result<Corpus> {
    let mut reader = LineReader::open_hashing(path)?;
    let docs: Vec<Document> =
        read_json_rows(&mut reader, CORPUS_ROW, "doc id", |row: &CorpusRow| &row.id)?
            .into_iter()
            .map(|row| Document {
                id: row.id,
                title: row.title,
                text: row.text,
            })
            .collect();
    let sha256 = reader.finish_sha256()?.expect("opened with hashing");
    if docs.is_empty() {
        return Err(empty(path, "documents"));
    }
    Ok(Corpus {
        path: path.to_path_buf(),
        docs,
        sha256,
    })
}

pub fn read_queries_file(path: &Path) -> Result<Vec<Query>> {
    let mut reader = LineReader::open(path)?;
    let rows = read_json_rows(&mut reader, QUERY_ROW, "query id", |row: &QueryRow| &row.id)?;
    if rows.is_empty() {
        return Err(empty(path, "queries"));
    }
    Ok(rows
        .into_iter()
        .map(|row| Query {
            id: row.id,
            text: row.text,
        })
        .collect())
}

pub(crate) fn empty(path: &Path, what: &'static str) -> EngineError {
    EngineError::EmptyInput {
        file: path.to_path_buf(),
        what,
    }
}

/// One JSON object a line (`expected` says which, for errors), each with an id that
/// must not repeat (`kind` names it: "doc id", "query id").
fn read_json_rows<R: DeserializeOwned>(
    reader: &mut LineReader,
    expected: &str,
    kind: &str,
    id_of: impl Fn(&R) -> &String,
) -> Result<Vec<R>> {
    let path = reader.path().to_path_buf();
    let mut rows = Vec::new();
    let mut seen = FirstSeen::default();
    while let Some((line_number, line)) = reader.next_nonblank()? {
        let row: R = serde_json::from_str(line)
            .map_err(|e| EngineError::malformed(&path, line_number, format!("{expected}: {e}")))?;
        let id = id_of(&row);
        seen.record(id.clone(), &path, line_number, || format!("{kind} `{id}`"))?;
        rows.push(row);
    }
    Ok(rows)
}

const QRELS_HEADER: [&str; 3] = ["query-id", "corpus-id", "score"];
const QRELS_FIRST_LINE: &str = "the BEIR header `query-id\tcorpus-id\tscore` or a TREC \
     judgment `query-id iteration doc-id grade`";

/// The two qrels layouts quarry reads, told apart by the first line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum QrelsLayout {
    /// BEIR: the header `query-id corpus-id score`, then `query doc grade` a line.
    Beir,
    /// trec_eval's (MS MARCO, TREC DL19/DL20): `query iteration doc grade`, no header.
    Trec,
}

impl QrelsLayout {
    fn fields(self) -> &'static str {
        match self {
            QrelsLayout::Beir => "3 tab-separated fields (query-id, corpus-id, score)",
            QrelsLayout::Trec => "4 fields (query-id, iteration, doc-id, grade)",
        }
    }

    /// The query, the doc and the grade of one judgment line.
    fn judgment<'l>(self, fields: &[&'l str]) -> Option<[&'l str; 3]> {
        match (self, fields) {
            (QrelsLayout::Beir, [query, doc, grade]) => Some([query, doc, grade]),
            (QrelsLayout::Trec, [query, _iteration, doc, grade]) => Some([query, doc, grade]),
            _ => None,
        }
    }
}

/// Reads qrels in BEIR's layout (a header, then tab-separated `query doc grade`) or
/// trec_eval's (`query iteration doc grade`, white space separated, no header); grades
/// are integers and a query-doc pair is judged once.
pub fn read_qrels_file(path: &Path) -> Result<Qrels> {
    let mut reader = LineReader::open(path)?;
    let mut by_query: BTreeMap<String, HashMap<String, i32>> = BTreeMap::new();
    let mut seen = FirstSeen::default();
    let mut layout = None;
    while let Some((line_number, line)) = reader.next_nonblank()? {
        let fields: Vec<&str> = if line.contains('\t') {
            line.split('\t').map(str::trim).collect()
        } else {
            line.split_whitespace().collect()
        };
        let layout = match layout {
            Some(known) => known,
            None if fields == QRELS_HEADER => {
                layout = Some(QrelsLayout::Beir);
                continue;
            }
            None if fields.len() == 4 => *layout.insert(QrelsLayout::Trec),
            None => return Err(EngineError::malformed(path, line_number, QRELS_FIRST_LINE)),
        };
        let Some([query_id, doc_id, grade]) = layout.judgment(&fields) else {
            return Err(EngineError::malformed(
                path,
                line_number,
                format!("{}, found {}", layout.fields(), fields.len()),
            ));
        };
        if query_id.is_empty() || doc_id.is_empty() {
            return Err(EngineError::malformed(
                path,
                line_number,
                "non-empty query and doc ids",
            ));
        }
        let grade: i32 = grade.parse().map_err(|_| {
            EngineError::malformed(
                path,
                line_number,
                format!("an integer relevance grade, found `{grade}`"),
            )
        })?;
        let key = (query_id.to_string(), doc_id.to_string());
        seen.record(key, path, line_number, || {
            format!("query `{query_id}` judges doc `{doc_id}`")
        })?;
        by_query
            .entry(query_id.to_string())
            .or_default()
            .insert(doc_id.to_string(), grade);
    }
    if by_query.is_empty() {
        return Err(empty(path, "judgments"));
    }
    Ok(Qrels {
        path: path.to_path_buf(),
        by_query,
    })
}

impl Corpus {
    pub fn doc_ids(&self) -> HashSet<&str> {
        self.docs.iter().map(|d| d.id.as_str()).collect()
    }
}

impl Qrels {
    pub fn num_judgments(&self) -> usize {
        self.by_query.values().map(HashMap::len).sum()
    }

    /// Queries with at least one judgment of grade >= 1: the ones metrics
    /// are averaged over.
    pub fn queries_with_relevant(&self) -> impl Iterator<Item = &str> {
        self.by_query
            .iter()
            .filter(|(_, docs)| docs.values().any(|&g| g >= 1))
            .map(|(q, _)| q.as_str())
    }

    /// Judged doc ids that are not in `corpus_ids`.
    pub fn missing_docs(&self, corpus_ids: &HashSet<&str>) -> MissingQrelsDocs {
        let mut judgments = 0;
        let mut distinct = std::collections::BTreeSet::new();
        for docs in self.by_query.values() {
            for doc in docs.keys() {
                if !corpus_ids.contains(doc.as_str()) {
                    judgments += 1;
                    distinct.insert(doc.as_str());
                }
            }
        }
        MissingQrelsDocs {
            judgments,
            distinct_docs: distinct.len(),
            examples: distinct.iter().take(5).map(|s| s.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn corpus_title_optional_extra_fields_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "corpus.jsonl",
            "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"x\", \"metadata\": {\"url\": \"u\"}}\n\
             {\"_id\": 7, \"text\": \"y\"}\n{\"_id\": \"d3\", \"title\": null, \"text\": \"\"}\n",
        );
        let corpus = read_corpus_file(&path).unwrap();
        assert_eq!(corpus.docs.len(), 3);
        assert_eq!(corpus.docs[1].id, "7");
        assert_eq!(corpus.docs[1].title, "");
        assert_eq!(corpus.sha256.len(), 64);
    }

    #[test]
    fn malformed_corpus_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "corpus.jsonl",
            "{\"_id\": \"d1\", \"text\": \"x\"}\n{\"_id\": \"d2\"}\n",
        );
        let err = read_corpus_file(&path).unwrap_err().to_string();
        assert!(err.contains("corpus.jsonl:2"), "{err}");
        assert!(err.contains("text"), "{err}");
    }

    #[test]
    fn qrels_need_header_and_integer_grades() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(
            dir.path(),
            "good.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td1\t1\n",
        );
        let qrels = read_qrels_file(&good).unwrap();
        assert_eq!(qrels.num_judgments(), 3);
        assert_eq!(qrels.by_query["q1"]["d1"], 2);

        let no_header = write(dir.path(), "nh.tsv", "q1\td1\t1\n");
        let err = read_qrels_file(&no_header).unwrap_err().to_string();
        assert!(err.contains("nh.tsv:1") && err.contains("header"), "{err}");

        let bad_grade = write(
            dir.path(),
            "bg.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n",
        );
        let err = read_qrels_file(&bad_grade).unwrap_err().to_string();
        assert!(err.contains("bg.tsv:3") && err.contains("integer"), "{err}");

        let short = write(
            dir.path(),
            "short.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\n",
        );
        let err = read_qrels_file(&short).unwrap_err().to_string();
        assert!(
            err.contains("short.tsv:2") && err.contains("3 tab-separated"),
            "{err}"
        );

        let dup = write(
            dir.path(),
            "dup.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n",
        );
        let err = read_qrels_file(&dup).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn trec_qrels_read_like_beir_ones() {
        let dir = tempfile::tempdir().unwrap();
        // trec_eval's layout, as in MS MARCO's and TREC DL's qrels (grades 0-3).
        let trec = write(
            dir.path(),
            "dl.txt",
            "19335 0 1017759 0\n19335 Q0 1082489 3\n\n47923 0 1001 1\n",
        );
        let qrels = read_qrels_file(&trec).unwrap();
        assert_eq!(qrels.num_judgments(), 3);
        assert_eq!(qrels.by_query["19335"]["1082489"], 3);
        assert_eq!(qrels.by_query["47923"]["1001"], 1);

        let mixed = write(dir.path(), "mixed.txt", "q1 0 d1 1\nq1 d2 1\n");
        let err = read_qrels_file(&mixed).unwrap_err().to_string();
        assert!(
            err.contains("mixed.txt:2") && err.contains("4 fields"),
            "{err}"
        );

        let dup = write(dir.path(), "dup.txt", "q1 0 d1 1\nq1 0 d1 2\n");
        let err = read_qrels_file(&dup).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("first on line 1"),
            "{err}"
        );

        // No judgments (nothing, or a header alone) is an error, not a score of 0.
        for (name, text) in [
            ("empty.txt", "\n"),
            ("header.tsv", "query-id\tcorpus-id\tscore\n"),
        ] {
            let empty = write(dir.path(), name, text);
            let err = read_qrels_file(&empty).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("no judgments"), "{err}");
        }
    }

    #[test]
    fn empty_corpus_queries_and_runs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = write(dir.path(), "corpus.jsonl", "\n");
        let err = read_corpus_file(&corpus).unwrap_err().to_string();
        assert!(err.contains("corpus.jsonl: no documents"), "{err}");
        let queries = write(dir.path(), "queries.jsonl", "");
        let err = read_queries_file(&queries).unwrap_err().to_string();
        assert!(err.contains("queries.jsonl: no queries"), "{err}");
        let run = write(dir.path(), "run.trec", "\n\n");
        let err = crate::run::Run::read(&run).unwrap_err().to_string();
        assert!(err.contains("run.trec: no run lines"), "{err}");
    }

    #[test]
    fn resolve_by_folder_and_unknown_name() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "mini/corpus.jsonl",
            "{\"_id\": \"d1\", \"text\": \"x\"}\n",
        );
        write(
            dir.path(),
            "mini/qrels/test.tsv",
            "query-id\tcorpus-id\tscore\n",
        );
        write(dir.path(), "mini/qrels/dev.tsv.zst", "");
        let dataset = Dataset::resolve(dir.path().join("mini").to_str().unwrap(), None).unwrap();
        assert_eq!(dataset.name, "mini");
        assert_eq!(dataset.qrels_splits(), vec!["dev", "test"]);
        let err = dataset.qrels_path("train").unwrap_err().to_string();
        assert!(err.contains("dev, test"), "{err}");

        let registry = Registry::parse(
            &dir.path().join("datasets.toml"),
            "[[dataset]]\nname = \"mini\"\npath = \"mini\"\nsplit = \"test\"\nremove_self = false\n\
             corpus_sha256 = \"\"\nurl = \"\"\nkind = \"text\"\n",
        )
        .unwrap();
        let err = Dataset::resolve("nope", Some(&registry))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown dataset `nope`") && err.contains("mini"),
            "{err}"
        );
    }

    #[test]
    fn checksum_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "mini/corpus.jsonl",
            "{\"_id\": \"d1\", \"text\": \"x\"}\n",
        );
        let mut dataset = Dataset::from_folder(&dir.path().join("mini")).unwrap();
        let actual = dataset.read_corpus().unwrap().sha256;
        dataset.expected_corpus_sha256 = Some("0".repeat(64));
        let err = dataset.read_corpus().unwrap_err().to_string();
        assert!(err.contains(&actual) && err.contains("registry"), "{err}");
    }
}
