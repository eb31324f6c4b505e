//! CoIR (Code Information Retrieval benchmark) tasks from the Hugging Face
//! hub into quarry's layout, as the CoIR and MTEB loaders read them:
//!
//! ```text
//! CoIR-Retrieval/<task>-queries-corpus   parquet splits `corpus` (_id, title, text, …)
//!                                        and `queries` (_id, text, partition, …)
//! CoIR-Retrieval/<task>-qrels            parquet splits train / valid / test
//!                                        (query_id, corpus_id, score)
//! ```
//!
//! The registry names the two dataset repos, not their files: the parquet
//! files' names carry a hash the hub chose at upload
//! (`data/corpus-00000-of-00001-279bc28cd351fa67.parquet`), so they are
//! listed at fetch time through the hub's tree API
//! (`GET {endpoint}/api/datasets/{repo}/tree/main?recursive=true`), whose LFS
//! entries give each file's sha256 (`lfs.oid`); every file is then downloaded
//! (resumably) and checked against it. The endpoint is `--mirror` when given,
//! else `HF_ENDPOINT` for huggingface.co repos, else the registry URL's host.
//! With `--from DIR`, `DIR/<repo>/` (a local copy of each repo, e.g.
//! `huggingface-cli download --repo-type dataset --local-dir DIR/<repo>`)
//! is read instead.
//!
//! Converted like CoIR's own loader: the whole `corpus` split, the test
//! qrels, and the queries those qrels judge. Rows stream from the parquet
//! record reader, one row group at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use serde::Deserialize;

use super::convert::{write_qrels, CorpusRow, FileRecord, Judgments, LineSink, QueryRow};
use super::download::{self, Downloaded, Http};
use super::{FetchOptions, DOWNLOADS_DIR};
use crate::error::{EngineError, Result};
use crate::registry::{DownloadRole, RegistryEntry};

/// The host `HF_ENDPOINT` stands in for.
const HUB: &str = "https://huggingface.co";

/// `https://host[/prefix]/datasets/<owner>/<repo>` → (`https://host[/prefix]`,
/// `<owner>/<repo>`).
pub fn hub_repo(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let host_end = rest.find('/')?;
    let at = rest[host_end..].find("/datasets/")? + host_end;
    let base = &rest[..at];
    let id = rest[at + "/datasets/".len()..].trim_end_matches('/');
    let (owner, repo) = id.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    (host_end > 0 && ok(owner) && ok(repo)).then(|| (format!("{scheme}://{base}"), id.into()))
}

/// Where the hub's API and files are fetched from.
fn endpoint(base: &str, options: &FetchOptions) -> String {
    if let Some(mirror) = &options.mirror {
        // As for every download: the mirror's base, then the original's path.
        return download::mirrored(base, mirror);
    }
    if base == HUB {
        if let Ok(hf) = std::env::var("HF_ENDPOINT") {
            if !hf.trim().is_empty() {
                return hf.trim().trim_end_matches('/').to_string();
            }
        }
    }
    base.to_string()
}

/// One file of a hub repo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HubFile {
    /// Path inside the repo.
    path: String,
    /// sha256 as the hub's LFS pointer gives it.
    sha256: Option<String>,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    oid: String,
}

/// Parses one page of the tree API.
fn parse_tree(text: &str, url: &str) -> Result<Vec<HubFile>> {
    let entries: Vec<TreeEntry> = serde_json::from_str(text).map_err(|e| EngineError::Fetch {
        what: url.to_string(),
        detail: format!("not a hub tree listing (a JSON array of entries): {e}"),
    })?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == "file")
        .map(|e| HubFile {
            path: e.path,
            sha256: e
                .lfs
                .map(|l| l.oid.to_ascii_lowercase())
                .filter(|oid| oid.len() == 64 && oid.bytes().all(|b| b.is_ascii_hexdigit())),
        })
        .collect())
}

/// Every file of `id` at `main`, following the API's pages.
fn list_tree(http: &Http, endpoint: &str, id: &str) -> Result<Vec<HubFile>> {
    let mut url = Some(format!(
        "{endpoint}/api/datasets/{id}/tree/main?recursive=true"
    ));
    let mut files = Vec::new();
    let mut pages = 0;
    while let Some(page) = url.take() {
        pages += 1;
        if pages > 1000 {
            return Err(EngineError::Fetch {
                what: page,
                detail: "more than 1000 pages of listing".into(),
            });
        }
        let (text, next) = http.get_text(&page)?;
        files.extend(parse_tree(&text, &page)?);
        url = next;
    }
    Ok(files)
}

/// Every file below `dir` (a local copy of a repo), relative paths with `/`.
fn list_local(dir: &Path) -> Result<Vec<HubFile>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let entries = std::fs::read_dir(&at).map_err(|e| EngineError::io(&at, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::io(&at, e))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                files.push(HubFile {
                    path: parts.join("/"),
                    sha256: None,
                });
            }
        }
    }
    Ok(files)
}

/// The split a parquet file of a `datasets` repo holds: `corpus` of
/// `data/corpus-00000-of-00001-<hash>.parquet`, else its folder's name
/// (`corpus/0000.parquet`). `None` for other files.
fn split_of(path: &str) -> Option<&str> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let stem = name.strip_suffix(".parquet")?;
    if let Some((split, rest)) = stem.split_once('-') {
        let mut parts = rest.split('-');
        let shard = parts
            .next()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
        if shard && parts.next() == Some("of") && !split.is_empty() {
            return Some(split);
        }
    }
    let folder = dir.rsplit('/').next().unwrap_or(dir);
    (!folder.is_empty()).then_some(folder)
}

/// The splits a role takes.
fn wanted_splits(role: DownloadRole, entry: &RegistryEntry) -> Vec<String> {
    match role {
        DownloadRole::QueriesCorpus => vec!["corpus".into(), "queries".into()],
        _ => vec![entry.split.clone()],
    }
}

/// The URL a file is recorded under (the registry's host, not a mirror's).
fn file_url(base: &str, id: &str, path: &str) -> String {
    format!("{base}/datasets/{id}/resolve/main/{path}")
}

/// Lists, downloads and checks the parquet files an entry needs.
pub fn get_files(
    entry: &RegistryEntry,
    options: &FetchOptions,
    bar: &ProgressBar,
) -> Result<Vec<Downloaded>> {
    let http = Http::new(options.stall);
    let mut done = Vec::new();
    for d in &entry.download {
        let (base, id) = hub_repo(&d.url).expect("validated: a hub dataset repo");
        let repo = id.rsplit('/').next().unwrap_or(&id).to_string();
        let endpoint = endpoint(&base, options);
        let files = match &options.from {
            Some(from) => {
                let dir = from.join(&repo);
                if !dir.is_dir() {
                    return Err(EngineError::Fetch {
                        what: dir.display().to_string(),
                        detail: format!(
                            "--from for `{}` takes a folder holding a copy of each hub repo by \
                             name ({repo}/ among them)",
                            entry.name
                        ),
                    });
                }
                list_local(&dir)?
            }
            None => {
                bar.set_message(format!("listing {id}"));
                list_tree(&http, &endpoint, &id)?
            }
        };
        let mut chosen: Vec<&HubFile> = Vec::new();
        for split in wanted_splits(d.role, entry) {
            let mut of_split: Vec<&HubFile> = files
                .iter()
                .filter(|f| split_of(&f.path) == Some(split.as_str()))
                .collect();
            if of_split.is_empty() {
                let parquet: Vec<&str> = files
                    .iter()
                    .map(|f| f.path.as_str())
                    .filter(|p| p.ends_with(".parquet"))
                    .collect();
                return Err(EngineError::Fetch {
                    what: d.url.clone(),
                    detail: format!(
                        "no parquet file of split `{split}` in {id} (its parquet files: {})",
                        if parquet.is_empty() {
                            "none".to_string()
                        } else {
                            parquet.join(", ")
                        }
                    ),
                });
            }
            of_split.sort_by(|a, b| a.path.cmp(&b.path));
            chosen.extend(of_split);
        }
        for file in chosen {
            let url = file_url(&base, &id, &file.path);
            let name = download::file_name(&file.path).to_string();
            let got = match &options.from {
                Some(from) => download::local(&url, &from.join(&repo).join(&file.path), None)?,
                None => {
                    let source = file_url(&endpoint, &id, &file.path);
                    let dest = options.data.join(DOWNLOADS_DIR).join(&repo).join(&name);
                    bar.set_message(format!("{repo}/{name}"));
                    let mut got =
                        download::download(&http, &source, &dest, file.sha256.as_deref(), bar)?;
                    got.url = url;
                    got
                }
            };
            done.push(got);
        }
    }
    Ok(done)
}

/// The downloads of one role's repo with the split each holds, in order.
fn files_of<'a>(
    entry: &RegistryEntry,
    downloads: &'a [Downloaded],
    role: DownloadRole,
    split: &str,
) -> Vec<&'a Path> {
    let d = entry
        .download
        .iter()
        .find(|d| d.role == role)
        .expect("validated: one download per role");
    let (base, id) = hub_repo(&d.url).expect("validated");
    let prefix = file_url(&base, &id, "");
    downloads
        .iter()
        .filter(|g| {
            g.url
                .strip_prefix(&prefix)
                .is_some_and(|path| split_of(path) == Some(split))
        })
        .map(|g| g.path.as_path())
        .collect()
}

fn bad_file(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Fetch {
        what: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Calls `each(row_number, fields)` for every row of a parquet file, with
/// the `columns` asked for (in that order; `None` for an optional one the
/// file lacks). A required column that is missing is an error naming it.
fn for_each_row(
    path: &Path,
    required: &[&str],
    optional: &[&str],
    bar: &ProgressBar,
    mut each: impl FnMut(u64, &[Option<&Field>]) -> Result<()>,
) -> Result<u64> {
    let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| bad_file(path, format!("not a readable parquet file: {e}")))?;
    let metadata = reader.metadata().file_metadata();
    let schema = metadata.schema();
    let fields = schema.get_fields();
    let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
    for column in required {
        if !names.contains(column) {
            return Err(bad_file(
                path,
                format!("no column `{column}` (columns: {})", names.join(", ")),
            ));
        }
    }
    let wanted: Vec<&str> = required.iter().chain(optional).copied().collect();
    // Read only the columns used: CoIR's corpora carry metadata columns too.
    let projection: Vec<Arc<Type>> = fields
        .iter()
        .filter(|f| wanted.contains(&f.name()))
        .cloned()
        .collect();
    let projection = Type::group_type_builder(schema.name())
        .with_fields(projection)
        .build()
        .map_err(|e| bad_file(path, e.to_string()))?;
    // The bar counts bytes (it is the download's bar): rows read are shown as
    // the same share of the file's size.
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let total_rows = metadata.num_rows().max(1) as u64;
    bar.set_length(file_bytes);
    bar.set_position(0);
    bar.set_message(
        path.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    );
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| bad_file(path, e.to_string()))?;
    let mut number = 0u64;
    for row in rows {
        number += 1;
        let row = row.map_err(|e| bad_file(path, format!("row {number}: {e}")))?;
        let mut slots: Vec<Option<&Field>> = vec![None; wanted.len()];
        for (name, field) in row.get_column_iter() {
            if let Some(i) = wanted.iter().position(|w| w == name) {
                slots[i] = Some(field);
            }
        }
        each(number, &slots)?;
        bar.set_position(number.min(total_rows) * file_bytes / total_rows);
    }
    Ok(number)
}

/// A column's value as text: strings, and integers for ids.
fn text_of(
    field: Option<&Field>,
    path: &Path,
    column: &str,
    row: u64,
    ids: bool,
) -> Result<String> {
    match field {
        Some(Field::Str(s)) => Ok(s.clone()),
        Some(Field::Byte(n)) if ids => Ok(n.to_string()),
        Some(Field::Short(n)) if ids => Ok(n.to_string()),
        Some(Field::Int(n)) if ids => Ok(n.to_string()),
        Some(Field::Long(n)) if ids => Ok(n.to_string()),
        Some(Field::UInt(n)) if ids => Ok(n.to_string()),
        Some(Field::ULong(n)) if ids => Ok(n.to_string()),
        other => Err(bad_file(
            path,
            format!(
                "column `{column}`, row {row}: expected {}, found {}",
                if ids {
                    "a string or integer id"
                } else {
                    "a string"
                },
                describe(other)
            ),
        )),
    }
}

/// A grade: an integer, or a float with an integral value.
fn grade_of(field: Option<&Field>, path: &Path, column: &str, row: u64) -> Result<i32> {
    let value: Option<i64> = match field {
        Some(Field::Byte(n)) => Some(i64::from(*n)),
        Some(Field::Short(n)) => Some(i64::from(*n)),
        Some(Field::Int(n)) => Some(i64::from(*n)),
        Some(Field::Long(n)) => Some(*n),
        Some(Field::UByte(n)) => Some(i64::from(*n)),
        Some(Field::UShort(n)) => Some(i64::from(*n)),
        Some(Field::UInt(n)) => Some(i64::from(*n)),
        Some(Field::Float(f)) if f.fract() == 0.0 => Some(*f as i64),
        Some(Field::Double(f)) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    };
    value.and_then(|v| i32::try_from(v).ok()).ok_or_else(|| {
        bad_file(
            path,
            format!(
                "column `{column}`, row {row}: expected an integer grade, found {}",
                describe(field)
            ),
        )
    })
}

fn describe(field: Option<&Field>) -> String {
    match field {
        None | Some(Field::Null) => "null".to_string(),
        Some(Field::Bool(_)) => "a boolean".to_string(),
        Some(Field::Str(_)) => "a string".to_string(),
        Some(Field::Bytes(_)) => "binary data".to_string(),
        Some(Field::Float(_) | Field::Double(_) | Field::Float16(_)) => "a float".to_string(),
        Some(Field::Group(_)) => "a struct".to_string(),
        Some(Field::ListInternal(_)) => "a list".to_string(),
        Some(Field::MapInternal(_)) => "a map".to_string(),
        Some(other) => format!("`{other}`"),
    }
}

/// Reads the judgments of the qrels files.
fn read_judgments(files: &[&Path], bar: &ProgressBar) -> Result<(Judgments, u64)> {
    let mut judgments = Judgments::new();
    let mut repeated = 0u64;
    for path in files {
        for_each_row(
            path,
            &["query_id", "corpus_id", "score"],
            &[],
            bar,
            |row, f| {
                let query = text_of(f[0], path, "query_id", row, true)?;
                let doc = text_of(f[1], path, "corpus_id", row, true)?;
                let grade = grade_of(f[2], path, "score", row)?;
                // CoIR's loaders keep the last grade of a pair given twice.
                if judgments
                    .entry(query)
                    .or_default()
                    .insert(doc, grade)
                    .is_some()
                {
                    repeated += 1;
                }
                Ok(())
            },
        )?;
    }
    Ok((judgments, repeated))
}

/// Converts an entry's downloaded parquet files into `out`. Returns the
/// written files and lines for `fetched.json`'s checks.
pub fn convert(
    entry: &RegistryEntry,
    downloads: &[Downloaded],
    out: &Path,
    bar: &ProgressBar,
) -> Result<(BTreeMap<String, FileRecord>, Vec<String>)> {
    let mut records = BTreeMap::new();
    let mut checks = Vec::new();
    let split = entry.split.as_str();

    let qrels_files = files_of(entry, downloads, DownloadRole::Qrels, split);
    let (judgments, repeated) = read_judgments(&qrels_files, bar)?;
    if judgments.is_empty() {
        return Err(bad_file(
            qrels_files[0],
            format!("no judgments in the `{split}` qrels"),
        ));
    }
    let judged_pairs: usize = judgments.values().map(|d| d.len()).sum();
    checks.push(format!(
        "qrels/{split}.tsv: {judged_pairs} judgments of {} queries{}",
        judgments.len(),
        if repeated > 0 {
            format!(" ({repeated} pairs given twice: the last grade kept, as CoIR's loader does)")
        } else {
            String::new()
        }
    ));
    let qrels_path = PathBuf::from("qrels").join(format!("{split}.tsv"));
    records.insert(
        qrels_path.to_string_lossy().into_owned(),
        write_qrels(&out.join(&qrels_path), &judgments)?,
    );

    // Queries: those the qrels judge, in file order.
    let mut sink = LineSink::create(&out.join("queries.jsonl.zst"))?;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut other_partition = 0u64;
    for path in files_of(entry, downloads, DownloadRole::QueriesCorpus, "queries") {
        for_each_row(path, &["_id", "text"], &["partition"], bar, |row, f| {
            let id = text_of(f[0], path, "_id", row, true)?;
            if !judgments.contains_key(&id) || seen.contains(&id) {
                return Ok(());
            }
            let text = text_of(f[1], path, "text", row, false)?;
            if let Some(Field::Str(partition)) = f[2] {
                if partition != split {
                    other_partition += 1;
                }
            }
            sink.push(
                &serde_json::to_string(&QueryRow {
                    id: &id,
                    text: &text,
                })
                .expect("json"),
            )?;
            seen.insert(id);
            Ok(())
        })?;
    }
    let missing: Vec<&String> = judgments.keys().filter(|q| !seen.contains(*q)).collect();
    if let Some(first) = missing.first() {
        return Err(EngineError::Fetch {
            what: entry.name.clone(),
            detail: format!(
                "{} queries judged in the `{split}` qrels are not in the queries split (e.g. \
                 `{first}`)",
                missing.len()
            ),
        });
    }
    records.insert("queries.jsonl.zst".into(), sink.finish()?);
    checks.push(format!(
        "queries: the {} judged in the `{split}` qrels{}",
        seen.len(),
        if other_partition > 0 {
            format!(" ({other_partition} of them marked with another partition)")
        } else {
            String::new()
        }
    ));

    // Corpus: every row of the corpus split, as CoIR's loader keeps it.
    let mut judged_docs: BTreeSet<&str> = judgments
        .values()
        .flat_map(|docs| docs.keys().map(String::as_str))
        .collect();
    let total_judged = judged_docs.len();
    let mut sink = LineSink::create(&out.join("corpus.jsonl.zst"))?;
    let mut json = String::new();
    for path in files_of(entry, downloads, DownloadRole::QueriesCorpus, "corpus") {
        for_each_row(path, &["_id", "text"], &["title"], bar, |row, f| {
            let id = text_of(f[0], path, "_id", row, true)?;
            let text = text_of(f[1], path, "text", row, false)?;
            let title = match f[2] {
                None | Some(Field::Null) => String::new(),
                field => text_of(field, path, "title", row, false)?,
            };
            judged_docs.remove(id.as_str());
            json.clear();
            json.push_str(
                &serde_json::to_string(&CorpusRow {
                    id: &id,
                    title: &title,
                    text: &text,
                })
                .expect("json"),
            );
            sink.push(&json)
        })?;
    }
    records.insert("corpus.jsonl.zst".into(), sink.finish()?);
    checks.push(if judged_docs.is_empty() {
        format!("corpus: holds all {total_judged} judged documents")
    } else {
        format!(
            "corpus: {} of the {total_judged} judged documents are not in it (e.g. `{}`)",
            judged_docs.len(),
            judged_docs.iter().next().expect("non-empty")
        )
    });
    Ok((records, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_repos_parse() {
        assert_eq!(
            hub_repo("https://huggingface.co/datasets/CoIR-Retrieval/apps-qrels"),
            Some((HUB.to_string(), "CoIR-Retrieval/apps-qrels".to_string()))
        );
        assert_eq!(
            hub_repo("http://127.0.0.1:8/datasets/o/r/").map(|r| r.1),
            Some("o/r".to_string())
        );
        assert_eq!(
            hub_repo("http://127.0.0.1:8/hub/datasets/o/r").map(|r| r.0),
            Some("http://127.0.0.1:8/hub".to_string())
        );
        assert_eq!(hub_repo("https://huggingface.co/CoIR-Retrieval/apps"), None);
        assert_eq!(
            hub_repo("https://huggingface.co/datasets/o/r/x.parquet"),
            None
        );
    }

    #[test]
    fn splits_come_from_file_names_or_folders() {
        let p = "data/corpus-00000-of-00001-279bc28cd351fa67.parquet";
        assert_eq!(split_of(p), Some("corpus"));
        assert_eq!(split_of("data/test-00001-of-00002.parquet"), Some("test"));
        assert_eq!(split_of("queries/0000.parquet"), Some("queries"));
        assert_eq!(split_of("README.md"), None);
    }

    #[test]
    fn tree_listing_gives_lfs_sha256() {
        let oid = "a".repeat(64);
        let text = format!(
            r#"[{{"type":"directory","oid":"x","size":0,"path":"data"}},
               {{"type":"file","oid":"y","size":9,"path":"data/test-00000-of-00001.parquet",
                 "lfs":{{"oid":"{oid}","size":9,"pointerSize":130}}}},
               {{"type":"file","oid":"z","size":3,"path":"README.md"}}]"#
        );
        let files = parse_tree(&text, "u").unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].sha256.as_deref(), Some(oid.as_str()));
        assert_eq!(files[1].sha256, None);
        let err = parse_tree("{}", "https://h/api").unwrap_err().to_string();
        assert!(err.contains("https://h/api"), "{err}");
    }
}
