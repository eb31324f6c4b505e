//! `quarry datasets fetch`: a registry entry's downloads, checked and
//! converted into `<data>/<name>/` in quarry's BEIR layout.
//!
//! ```text
//! <data>/downloads/<file>        downloads (<file>.part while in progress)
//! <data>/.<name>.fetching/       a conversion in progress
//! <data>/<name>/                 the dataset: corpus.jsonl.zst, queries.jsonl.zst,
//!                                qrels/<split>.tsv and, written last, fetched.json
//! ```
//!
//! A dataset folder appears whole or not at all: the conversion fills the
//! `.fetching` folder and renames it into place after `fetched.json` is
//! written, so a crash or a failed check leaves the previous state. A cut
//! download resumes from its `.part`. The checks: the download's sha256 and
//! the converted corpus' sha256 where the registry pins them, the corpus
//! count it publishes, and the queries and qrels the registry's own folder
//! ships (the bundled copy), which a download must agree with.

pub mod beir;
pub mod coir;
pub mod convert;
pub mod download;
pub mod msmarco;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use self::convert::FileRecord;
use self::download::{Downloaded, Http};
use crate::dataset::{read_qrels_file, Dataset, Qrels};
use crate::error::{EngineError, Result};
use crate::registry::{DownloadEntry, DownloadRole, RegistryEntry, SourceFormat, FETCHED_MARKER};

/// The folder of downloads inside the data folder.
pub const DOWNLOADS_DIR: &str = "downloads";

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The data folder (`--data`, `QUARRY_DATA`, default `<home>/datasets`).
    pub data: PathBuf,
    /// Base URL that replaces every source's host (`--mirror`, `QUARRY_MIRROR`).
    pub mirror: Option<String>,
    /// A file (or a folder of files, by name) the user already has (`--from`).
    pub from: Option<PathBuf>,
    /// How long a read may stall before the download is abandoned.
    pub stall: Duration,
    /// Convert again even when a complete copy is there.
    pub force: bool,
}

/// What `fetched.json` says of a dataset folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchedRecord {
    pub name: String,
    pub format: SourceFormat,
    pub quarry_version: String,
    /// Seconds since the Unix epoch.
    pub fetched_at: u64,
    pub downloads: Vec<Downloaded>,
    /// Every file of the folder (relative path) with its lines, sha256 and size.
    pub files: BTreeMap<String, FileRecord>,
    /// Documents of the corpus and the sha256 of its uncompressed text.
    pub docs: u64,
    pub corpus_sha256: String,
    /// What was checked, one line each.
    pub checks: Vec<String>,
}

/// The outcome of one dataset's fetch.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    pub name: String,
    pub dir: PathBuf,
    /// False when a complete copy was already there (nothing done).
    pub converted: bool,
    pub record: FetchedRecord,
}

/// A byte counter on a reader, moving a progress bar.
pub struct ProgressReader<'a, R> {
    inner: R,
    bar: &'a ProgressBar,
}

impl<'a, R> ProgressReader<'a, R> {
    pub fn new(inner: R, bar: &'a ProgressBar) -> Self {
        ProgressReader { inner, bar }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Where a dataset stands on disk, for `quarry datasets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum State {
    /// A complete fetched copy in the data folder, with its documents.
    Fetched { docs: u64 },
    /// The registry's own folder has the corpus.
    Bundled,
    /// Not here (or only queries and qrels), but `fetch` can get it.
    Fetchable,
    /// A fetched copy whose files no longer match `fetched.json`.
    Corrupt(String),
    /// Not here and no source to fetch it from.
    Missing,
}

/// Reads `<dir>/fetched.json`.
pub fn read_record(dir: &Path) -> Result<FetchedRecord> {
    let path = dir.join(FETCHED_MARKER);
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| EngineError::DataCorruption {
        file: path.clone(),
        detail: e.to_string(),
    })
}

/// Whether the files `fetched.json` lists are there with their sizes (cheap:
/// no hashing; `deep` also re-hashes the uncompressed text of each).
pub fn check_fetched(dir: &Path, deep: bool) -> std::result::Result<FetchedRecord, String> {
    let record = read_record(dir).map_err(|e| e.to_string())?;
    for (file, expected) in &record.files {
        let path = dir.join(file);
        let bytes = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        if bytes != expected.bytes {
            return Err(format!(
                "{}: {bytes} bytes, fetched.json says {}",
                path.display(),
                expected.bytes
            ));
        }
        if deep {
            let mut reader =
                crate::textio::LineReader::open_hashing(&path).map_err(|e| e.to_string())?;
            while reader.next_line().map_err(|e| e.to_string())?.is_some() {}
            let sha = reader.finish_sha256().map_err(|e| e.to_string())?;
            if sha.as_deref() != Some(expected.sha256.as_str()) {
                return Err(format!(
                    "{}: sha256 of its text is {}, fetched.json says {}",
                    path.display(),
                    sha.unwrap_or_default(),
                    expected.sha256
                ));
            }
        }
    }
    Ok(record)
}

/// Where a registry entry stands; `deep` re-hashes a fetched copy's files.
pub fn state(entry: &RegistryEntry, deep: bool) -> State {
    if let Some(dir) = &entry.fetch_dir {
        if dir.join(FETCHED_MARKER).is_file() {
            return match check_fetched(dir, deep) {
                Ok(record) => State::Fetched { docs: record.docs },
                Err(why) => State::Corrupt(why),
            };
        }
    }
    let bundled = entry
        .path
        .as_ref()
        .is_some_and(|p| crate::textio::find_variant(p, "corpus.jsonl").is_some());
    match (bundled, entry.fetchable()) {
        (true, _) => State::Bundled,
        (false, true) => State::Fetchable,
        (false, false) => State::Missing,
    }
}

/// The URL a download is fetched from, after `--mirror`.
pub fn source_url(download: &DownloadEntry, options: &FetchOptions) -> String {
    match &options.mirror {
        Some(mirror) => download::mirrored(&download.url, mirror),
        None => download.url.clone(),
    }
}

/// Fetches, checks and converts one registry entry.
pub fn fetch(entry: &RegistryEntry, options: &FetchOptions, bar: &ProgressBar) -> Result<Fetched> {
    let format = entry
        .format
        .filter(|_| entry.fetchable())
        .ok_or_else(|| EngineError::Fetch {
            what: entry.name.clone(),
            detail: format!(
                "the registry names no download for it (see {})",
                if entry.url.is_empty() {
                    "its documentation"
                } else {
                    &entry.url
                }
            ),
        })?;
    let dir = options.data.join(&entry.name);
    if !options.force && dir.join(FETCHED_MARKER).is_file() {
        if let Ok(record) = check_fetched(&dir, false) {
            return Ok(Fetched {
                name: entry.name.clone(),
                dir,
                converted: false,
                record,
            });
        }
    }
    let downloads = match format {
        // The hub's file names are listed at fetch time (coir.rs says why).
        SourceFormat::CoirHub => coir::get_files(entry, options, bar)?,
        _ => get_downloads(entry, options, bar)?,
    };
    let staging = options.data.join(format!(".{}.fetching", entry.name));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| EngineError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| EngineError::io(&staging, e))?;
    let result = convert_and_check(entry, format, &downloads, options, &staging, bar);
    let record = match result {
        Ok(record) => record,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(err);
        }
    };
    let text = serde_json::to_string_pretty(&record).expect("serialisable");
    quarry_fsio::write(&staging.join(FETCHED_MARKER), text.as_bytes())?;
    put_in_place(&staging, &dir)?;
    Ok(Fetched {
        name: entry.name.clone(),
        dir,
        converted: true,
        record,
    })
}

/// Deletes the downloads of `fetched` from the data folder's `downloads/`
/// (not files given with `--from`). Called once after every dataset of a
/// command is done, so datasets sharing an archive (MS MARCO's) fetch it once.
pub fn remove_downloads(options: &FetchOptions, fetched: &[Fetched]) {
    let downloads_dir = options.data.join(DOWNLOADS_DIR);
    for d in fetched.iter().flat_map(|f| &f.record.downloads) {
        if d.path.starts_with(&downloads_dir) {
            let _ = std::fs::remove_file(&d.path);
            // A hub repo's files have a folder of their own (coir.rs); gone once empty.
            if let Some(parent) = d.path.parent().filter(|p| *p != downloads_dir) {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Renames the finished `staging` folder to `dir`, replacing what was there.
fn put_in_place(staging: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        let old = dir.with_file_name(format!(
            ".{}.old",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| EngineError::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| EngineError::io(dir, e))?;
        std::fs::rename(staging, dir).map_err(|e| EngineError::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(staging, dir).map_err(|e| EngineError::io(dir, e))?;
    }
    if let Some(parent) = dir.parent() {
        quarry_fsio::sync_dir(parent)?;
    }
    Ok(())
}

/// Each distinct download of the entry, fetched (or found with `--from`).
fn get_downloads(
    entry: &RegistryEntry,
    options: &FetchOptions,
    bar: &ProgressBar,
) -> Result<Vec<Downloaded>> {
    let mut urls: Vec<&DownloadEntry> = Vec::new();
    for d in &entry.download {
        if !urls.iter().any(|u| u.url == d.url) {
            urls.push(d);
        }
    }
    let http = Http::new(options.stall);
    let mut done = Vec::new();
    for d in urls {
        let expected = (!d.sha256.is_empty()).then_some(d.sha256.as_str());
        let name = download::file_name(&d.url);
        let got = match &options.from {
            Some(from) => {
                let path = if from.is_dir() {
                    from.join(name)
                } else if entry.download.iter().all(|o| o.url == d.url) {
                    from.clone()
                } else {
                    return Err(EngineError::Fetch {
                        what: from.display().to_string(),
                        detail: format!(
                            "`{}` takes several downloads: give --from a folder holding them \
                             by name",
                            entry.name
                        ),
                    });
                };
                download::local(&d.url, &path, expected)?
            }
            None => {
                let url = source_url(d, options);
                let dest = options.data.join(DOWNLOADS_DIR).join(name);
                bar.set_message(name.to_string());
                let mut got = download::download(&http, &url, &dest, expected, bar)?;
                got.url = d.url.clone();
                got
            }
        };
        done.push(got);
    }
    Ok(done)
}

fn downloaded<'a>(
    entry: &'a RegistryEntry,
    downloads: &'a [Downloaded],
    role: DownloadRole,
) -> msmarco::Source<'a> {
    let d = entry
        .download
        .iter()
        .find(|d| d.role == role)
        .expect("validated: one download per role");
    let got = downloads
        .iter()
        .find(|g| g.url == d.url)
        .expect("every url was downloaded");
    msmarco::Source {
        path: &got.path,
        member: d.member.as_deref(),
        sha256: &got.sha256,
    }
}

fn convert_and_check(
    entry: &RegistryEntry,
    format: SourceFormat,
    downloads: &[Downloaded],
    options: &FetchOptions,
    staging: &Path,
    bar: &ProgressBar,
) -> Result<FetchedRecord> {
    let mut checks = Vec::new();
    for d in downloads {
        let name = download::file_name(&d.url);
        checks.push(if d.pinned && format == SourceFormat::CoirHub {
            format!("{name}: sha256 {} as the hub's tree lists it", d.sha256)
        } else if d.pinned {
            format!("{name}: sha256 {} as the registry pins", d.sha256)
        } else if format == SourceFormat::CoirHub {
            format!(
                "{name}: sha256 {} (no hub listing to check it against)",
                d.sha256
            )
        } else {
            format!(
                "{name}: sha256 {} (the registry pins none; add `sha256 = \"{}\"` to its \
                 [[dataset.download]] to check it next time)",
                d.sha256, d.sha256
            )
        });
    }
    let files = match format {
        SourceFormat::BeirZip => {
            let archive = downloaded(entry, downloads, DownloadRole::Archive);
            beir::convert(archive.path, staging, bar)?
        }
        SourceFormat::MsmarcoPassage => {
            let mut files = BTreeMap::new();
            let (corpus, record, queries, qrels) = msmarco::read_sources(
                &options.data,
                &downloaded(entry, downloads, DownloadRole::Collection),
                &downloaded(entry, downloads, DownloadRole::Queries),
                &downloaded(entry, downloads, DownloadRole::Qrels),
                bar,
            )?;
            let judgments = msmarco::judgments(&qrels)?;
            files.insert(
                format!("qrels/{}.tsv", entry.split),
                msmarco::write_split(&judgments, staging, &entry.split)?,
            );
            let (queries_record, missing) =
                msmarco::write_queries(&queries, &judgments, &staging.join("queries.jsonl.zst"))?;
            if !missing.is_empty() {
                return Err(EngineError::Fetch {
                    what: queries.label.display().to_string(),
                    detail: format!(
                        "{} judged queries are not in the queries file (e.g. `{}`)",
                        missing.len(),
                        missing[0]
                    ),
                });
            }
            files.insert("queries.jsonl.zst".to_string(), queries_record);
            msmarco::link_corpus(&corpus, staging)?;
            files.insert("corpus.jsonl.zst".to_string(), record);
            files
        }
        SourceFormat::CoirHub => {
            let (files, lines) = coir::convert(entry, downloads, staging, bar)?;
            checks.extend(lines);
            files
        }
    };
    let corpus = files
        .get("corpus.jsonl.zst")
        .cloned()
        .expect("every format writes a corpus");
    if let Some(expected) = entry.docs {
        if corpus.lines != expected {
            return Err(EngineError::Fetch {
                what: entry.name.clone(),
                detail: format!(
                    "the converted corpus has {} documents, the registry says {expected}",
                    corpus.lines
                ),
            });
        }
        checks.push(format!("corpus: {expected} documents as the registry says"));
    }
    if let Some(expected) = entry.queries {
        let got = files.get("queries.jsonl.zst").map_or(0, |r| r.lines);
        if got != expected {
            return Err(EngineError::Fetch {
                what: entry.name.clone(),
                detail: format!(
                    "the converted queries file has {got} queries, the registry says {expected}"
                ),
            });
        }
        checks.push(format!("queries: {expected} as the registry says"));
    }
    if !entry.corpus_sha256.is_empty() {
        if corpus.sha256 != entry.corpus_sha256 {
            return Err(EngineError::ChecksumMismatch {
                file: staging.join("corpus.jsonl.zst"),
                expected: entry.corpus_sha256.clone(),
                actual: corpus.sha256.clone(),
            });
        }
        checks.push("corpus: sha256 as the registry pins".to_string());
    }
    // Every file parses as quarry reads it (errors name the file and line).
    let converted = Dataset::from_folder(staging)?;
    if format == SourceFormat::BeirZip {
        // BEIR corpora fit in memory (Quora's 523k documents, the largest);
        // MS MARCO's was written by us from checked tsv lines.
        converted.read_corpus()?;
    }
    converted.read_queries()?;
    for split in converted.qrels_splits() {
        converted.read_qrels(&split)?;
    }
    checks.extend(compare_with_bundled(entry, format, &converted)?);
    Ok(FetchedRecord {
        name: entry.name.clone(),
        format,
        quarry_version: env!("CARGO_PKG_VERSION").to_string(),
        fetched_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        downloads: downloads.to_vec(),
        files,
        docs: corpus.lines,
        corpus_sha256: corpus.sha256,
        checks,
    })
}

/// The downloaded qrels (and, for MS MARCO, queries) against the copy the
/// registry ships. MS MARCO's must be equal; BEIR's differences are
/// reported (TREC-COVID's BEIR qrels are known to differ from Anserini's).
fn compare_with_bundled(
    entry: &RegistryEntry,
    format: SourceFormat,
    converted: &Dataset,
) -> Result<Vec<String>> {
    let Some(bundled_root) = &entry.path else {
        return Ok(Vec::new());
    };
    let bundled = Dataset::from_folder(bundled_root);
    let Ok(bundled) = bundled else {
        return Ok(Vec::new());
    };
    let strict = format == SourceFormat::MsmarcoPassage;
    let mut lines = Vec::new();
    for split in bundled.qrels_splits() {
        if converted.find_qrels(&split).is_none() {
            continue;
        }
        let ours = converted.read_qrels(&split)?;
        let theirs = read_qrels_file(&bundled.qrels_path(&split)?)?;
        let diff = qrels_difference(&ours, &theirs);
        let line = match diff {
            None => format!(
                "qrels/{split}.tsv: identical to the bundled copy ({} judgments)",
                ours.num_judgments()
            ),
            Some(diff) if strict => {
                return Err(EngineError::Fetch {
                    what: ours.path.display().to_string(),
                    detail: format!(
                        "differs from the bundled reference {}: {diff}",
                        theirs.path.display()
                    ),
                })
            }
            Some(diff) => format!("qrels/{split}.tsv: differs from the bundled copy: {diff}"),
        };
        lines.push(line);
    }
    if strict && bundled.find_queries().is_some() {
        // As sets: the topic files and the bundled copies need not share an order.
        let by_id = |queries: Vec<crate::dataset::Query>| -> BTreeMap<String, String> {
            queries.into_iter().map(|q| (q.id, q.text)).collect()
        };
        let ours = by_id(converted.read_queries()?);
        let theirs = by_id(bundled.read_queries()?);
        if ours != theirs {
            return Err(EngineError::Fetch {
                what: converted.queries_path()?.display().to_string(),
                detail: format!(
                    "{} queries, the bundled reference {} has {} (or their texts differ)",
                    ours.len(),
                    bundled.queries_path()?.display(),
                    theirs.len()
                ),
            });
        }
        lines.push(format!(
            "queries: identical to the bundled copy ({} queries)",
            ours.len()
        ));
    }
    Ok(lines)
}

/// `None` when equal, else counts of what differs.
fn qrels_difference(ours: &Qrels, theirs: &Qrels) -> Option<String> {
    let pairs = |q: &Qrels| -> BTreeMap<(String, String), i32> {
        q.by_query
            .iter()
            .flat_map(|(query, docs)| {
                docs.iter()
                    .map(move |(doc, grade)| ((query.clone(), doc.clone()), *grade))
            })
            .collect()
    };
    let (a, b) = (pairs(ours), pairs(theirs));
    if a == b {
        return None;
    }
    let only_ours = a.keys().filter(|k| !b.contains_key(*k)).count();
    let only_theirs = b.keys().filter(|k| !a.contains_key(*k)).count();
    let regraded = a
        .iter()
        .filter(|(k, g)| b.get(*k).is_some_and(|h| h != *g))
        .count();
    Some(format!(
        "{only_ours} judgments only in the download, {only_theirs} only in the bundled copy, \
         {regraded} with another grade"
    ))
}
