//! The dataset registry, `datasets.toml`: names users type after
//! `--dataset`, mapped to BEIR folders plus what quarry needs to know about
//! them (default split, self-hit removal, the expected corpus checksum).
//!
//! The registry is only a lookup table; [`crate::dataset`] reads the data and
//! [`crate::fetch`] downloads what an entry's `[[dataset.download]]` tables name
//! into the data folder (`<home>/datasets`), where a fetched copy is preferred to
//! the registry's own `path`.
//!
//! A copy of the repository's `datasets.toml` is compiled into the binary
//! ([`Registry::built_in`]): installed elsewhere, quarry still knows every
//! dataset of the study and fetches them by name.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{EngineError, Result};

/// What a dataset holds, for grouping results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    #[default]
    Text,
    Code,
}

/// How an entry's downloads become a BEIR folder (`quarry datasets fetch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// One BEIR zip: `<name>/corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.
    BeirZip,
    /// MS MARCO passage: the collection tsv (in a tar.gz), queries tsv and TREC qrels.
    MsmarcoPassage,
    /// A CoIR task on the Hugging Face hub: the `<task>-queries-corpus` dataset repo
    /// (parquet splits `corpus` and `queries`) and the `<task>-qrels` repo (parquet
    /// splits train/valid/test), whose files are listed through the hub's tree API.
    CoirHub,
}

/// What one download is for, where a format takes several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownloadRole {
    /// The whole dataset in one archive (BEIR zips).
    Archive,
    /// `pid<TAB>passage` lines (MS MARCO's collection.tsv, possibly inside a tar.gz).
    Collection,
    /// `qid<TAB>text` lines.
    Queries,
    /// TREC qrels (`qid 0 docid grade`); for `coir-hub`, the `<task>-qrels` repo.
    Qrels,
    /// For `coir-hub`: the `<task>-queries-corpus` repo.
    QueriesCorpus,
}

/// One `[[dataset.download]]` table: a file to fetch.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadEntry {
    pub url: String,
    pub role: DownloadRole,
    /// sha256 of the file as downloaded; empty when not yet pinned (the fetch
    /// prints and records the one it saw).
    #[serde(default)]
    pub sha256: String,
    /// For a `.tar.gz` download: the member to read (e.g. `collection.tsv`).
    #[serde(default)]
    pub member: Option<String>,
}

/// One `[[dataset]]` table of `datasets.toml`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub name: String,
    /// The BEIR folder shipped with the registry (relative paths are relative
    /// to the registry file); absent when the dataset only comes by fetching.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Default qrels split (`test` unless told).
    #[serde(default = "test_split")]
    pub split: String,
    /// Drop hits whose doc id equals the query id (Pyserini `--remove-query`; BEIR's
    /// ArguAna and Quora need it). Off unless told.
    #[serde(default)]
    pub remove_self: bool,
    /// sha256 of the uncompressed corpus.jsonl; empty (the default) when unknown.
    #[serde(default)]
    pub corpus_sha256: String,
    /// Where a user with internet reads about the data (optional).
    #[serde(default)]
    pub url: String,
    /// `text` unless told (how `compare` groups datasets).
    #[serde(default)]
    pub kind: DatasetKind,
    /// Which `quarry datasets fetch --group` takes it (`beir`, `coir`, `msmarco`).
    #[serde(default)]
    pub group: Option<String>,
    /// Documents the source publishes for the corpus; a fetch whose corpus
    /// has another count fails.
    #[serde(default)]
    pub docs: Option<u64>,
    /// Queries the converted `queries.jsonl.zst` holds (for `coir-hub`: the test
    /// queries judged in the test qrels); a fetch with another count fails.
    #[serde(default)]
    pub queries: Option<u64>,
    /// How the downloads are converted; absent: not fetchable.
    #[serde(default)]
    pub format: Option<SourceFormat>,
    #[serde(default)]
    pub download: Vec<DownloadEntry>,
    /// Where `quarry datasets fetch` puts this dataset (`<data>/<name>`);
    /// set by [`Registry::use_data_folder`].
    #[serde(skip)]
    pub fetch_dir: Option<PathBuf>,
}

/// The file a fetched dataset folder holds once it is complete (written last).
pub const FETCHED_MARKER: &str = "fetched.json";

impl RegistryEntry {
    /// The folder datasets are read from: the fetched copy when complete,
    /// else the registry's own folder, else where a fetch would put it.
    pub fn root(&self) -> PathBuf {
        if let Some(dir) = &self.fetch_dir {
            if dir.join(FETCHED_MARKER).is_file() {
                return dir.clone();
            }
        }
        match (&self.path, &self.fetch_dir) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.clone(),
            (None, None) => PathBuf::from(&self.name),
        }
    }

    pub fn fetchable(&self) -> bool {
        self.format.is_some() && !self.download.is_empty()
    }
}
/// One `[[model]]` table: a checkpoint of the study, by the name users may
/// type after `--model` instead of its hub id.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// Hugging Face hub id (`ORG/NAME`).
    pub hub: String,
    /// The prompt-template family quarry detects for it (encoder/templates.toml).
    pub family: String,
    /// config.json's `model_type`.
    pub architecture: String,
}

/// One `[[published]]` table: a value a paper reports for a retriever on a
/// dataset, printed beside quarry's by `quarry compare --paper`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedValue {
    /// Where the number is printed (e.g. `arXiv:2507.03958 Table 1`).
    pub source: String,
    /// The retriever as `quarry compare --retrievers` names it (`bm25`,
    /// `dense:qwen2.5-7b`).
    pub retriever: String,
    pub dataset: String,
    /// A metric as `--metrics` takes it (`ndcg@10`).
    pub metric: String,
    pub value: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    /// `false`: this file is the whole registry; by default its entries are laid over the
    /// built-in ones (see [`Registry::over_built_in`]).
    #[serde(default = "extends_by_default")]
    extends_built_in: bool,
    #[serde(default)]
    dataset: Vec<RegistryEntry>,
    #[serde(default)]
    model: Vec<ModelEntry>,
    #[serde(default)]
    published: Vec<PublishedValue>,
}

/// `base`'s items that `over` has no item of the same key for, then `over`'s.
fn layered<T, K: PartialEq>(base: Vec<T>, over: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let replaced: Vec<K> = over.iter().map(&key).collect();
    let mut items: Vec<T> = base
        .into_iter()
        .filter(|b| !replaced.contains(&key(b)))
        .collect();
    items.extend(over);
    items
}

fn extends_by_default() -> bool {
    true
}

fn test_split() -> String {
    "test".to_string()
}

/// A parsed `datasets.toml`, with entry paths made absolute.
#[derive(Debug, Clone)]
pub struct Registry {
    pub file: PathBuf,
    /// Whether the file asked to be laid over the built-in registry.
    pub extends_built_in: bool,
    pub entries: Vec<RegistryEntry>,
    /// The study's checkpoints (`[[model]]`).
    pub models: Vec<ModelEntry>,
    /// Published values (`[[published]]`).
    pub published: Vec<PublishedValue>,
    /// Where fetched datasets live, once [`Registry::use_data_folder`] ran.
    pub data_folder: Option<PathBuf>,
}

/// The repository's registry, compiled in.
const BUILT_IN_TEXT: &str = include_str!("../../datasets.toml");

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The downloads an entry's format needs, each with a usable URL and checksum.
fn validate_downloads(entry: &RegistryEntry) -> std::result::Result<(), String> {
    for (i, download) in entry.download.iter().enumerate() {
        let at = format!("download #{} ({})", i + 1, download.url);
        if !(download.url.starts_with("https://") || download.url.starts_with("http://")) {
            return Err(format!("{at}: url must start with https:// or http://"));
        }
        if !download.sha256.is_empty() && !is_hex_sha256(&download.sha256) {
            return Err(format!(
                "{at}: sha256 must be 64 lowercase hex digits or empty"
            ));
        }
    }
    let roles: Vec<DownloadRole> = entry.download.iter().map(|d| d.role).collect();
    let needed: &[DownloadRole] = match entry.format {
        None if roles.is_empty() => return Ok(()),
        None => return Err("[[dataset.download]] tables need a `format`".into()),
        Some(SourceFormat::BeirZip) => &[DownloadRole::Archive],
        Some(SourceFormat::MsmarcoPassage) => &[
            DownloadRole::Collection,
            DownloadRole::Queries,
            DownloadRole::Qrels,
        ],
        Some(SourceFormat::CoirHub) => {
            for (i, download) in entry.download.iter().enumerate() {
                let at = format!("download #{} ({})", i + 1, download.url);
                if crate::fetch::coir::hub_repo(&download.url).is_none() {
                    return Err(format!(
                        "{at}: a coir-hub download names a hub dataset repo, \
                         `https://huggingface.co/datasets/<owner>/<repo>`"
                    ));
                }
                if !download.sha256.is_empty() || download.member.is_some() {
                    return Err(format!(
                        "{at}: a coir-hub download takes no sha256 or member (the hub's \
                         tree lists each file's sha256)"
                    ));
                }
            }
            &[DownloadRole::Qrels, DownloadRole::QueriesCorpus]
        }
    };
    let mut sorted_roles = roles.clone();
    sorted_roles.sort_by_key(|r| *r as u8);
    if sorted_roles != needed {
        return Err(format!(
            "format {:?} takes one download of each role {needed:?}, got {roles:?}",
            entry.format.expect("checked above")
        ));
    }
    Ok(())
}

impl Registry {
    pub const FILE_NAME: &'static str = "datasets.toml";

    /// Reads and validates a registry file.
    pub fn load(file: &Path) -> Result<Registry> {
        let text = std::fs::read_to_string(file).map_err(|e| EngineError::io(file, e))?;
        Self::parse(file, &text)
    }

    /// Parses registry text; `file` is used for messages and to resolve
    /// relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Registry> {
        Self::parse_with_base(file, text, file.parent().unwrap_or(Path::new(".")))
    }

    /// The registry compiled into the binary (the repository's `datasets.toml`).
    /// Its bundled folders are those of the checkout it was built from, where
    /// that still exists; elsewhere only fetched copies are found.
    pub fn built_in() -> Result<Registry> {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let label = Path::new("(built-in datasets.toml)");
        let mut registry = Self::parse_with_base(label, BUILT_IN_TEXT, &checkout)?;
        if !checkout.join(Self::FILE_NAME).is_file() {
            for entry in &mut registry.entries {
                entry.path = None;
            }
        }
        Ok(registry)
    }

    /// Points every entry at its place in the data folder (`<data>/<name>`),
    /// which [`RegistryEntry::root`] prefers once a fetch has completed there.
    pub fn use_data_folder(&mut self, data: &Path) {
        self.data_folder = Some(data.to_path_buf());
        for entry in &mut self.entries {
            entry.fetch_dir = Some(data.join(&entry.name));
        }
    }

    fn parse_with_base(file: &Path, text: &str, base: &Path) -> Result<Registry> {
        let parsed: RegistryFile = toml::from_str(text).map_err(|e| EngineError::Registry {
            file: file.to_path_buf(),
            // toml's message already says where (line, column) and which field.
            detail: e.to_string().trim_end().to_string(),
        })?;
        let mut entries = parsed.dataset;
        for (index, entry) in entries.iter_mut().enumerate() {
            let bad = |detail: String| EngineError::Registry {
                file: file.to_path_buf(),
                detail: format!("dataset #{} (`{}`): {detail}", index + 1, entry.name),
            };
            if entry.name.is_empty()
                || entry.name.contains(['/', '\\'])
                || entry.name.contains(char::is_whitespace)
            {
                return Err(bad(
                    "name must be non-empty, without slashes or spaces".into()
                ));
            }
            if entry.split.is_empty() {
                return Err(bad("split must not be empty".into()));
            }
            let sha = &entry.corpus_sha256;
            if !sha.is_empty() && !is_hex_sha256(sha) {
                return Err(bad(format!(
                    "corpus_sha256 must be 64 lowercase hex digits or empty, got `{sha}`"
                )));
            }
            validate_downloads(entry).map_err(bad)?;
            if let Some(path) = &mut entry.path {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        for (i, entry) in entries.iter().enumerate() {
            if entries[..i].iter().any(|e| e.name == entry.name) {
                return Err(EngineError::Registry {
                    file: file.to_path_buf(),
                    detail: format!("dataset `{}` is listed twice", entry.name),
                });
            }
        }
        let models = parsed.model;
        for (i, model) in models.iter().enumerate() {
            let valid_hub = model.hub.split_once('/').is_some_and(|(org, name)| {
                !org.is_empty() && !name.is_empty() && !name.contains('/')
            });
            if !valid_hub {
                return Err(EngineError::Registry {
                    file: file.to_path_buf(),
                    detail: format!(
                        "model #{} (`{}`): hub must be ORG/NAME, got `{}`",
                        i + 1,
                        model.name,
                        model.hub
                    ),
                });
            }
            if models[..i].iter().any(|m| m.name == model.name) {
                return Err(EngineError::Registry {
                    file: file.to_path_buf(),
                    detail: format!("model `{}` is listed twice", model.name),
                });
            }
        }
        let published = parsed.published;
        for (i, value) in published.iter().enumerate() {
            let bad = |detail: String| EngineError::Registry {
                file: file.to_path_buf(),
                detail: format!("published #{}: {detail}", i + 1),
            };
            // The metric name is checked where it is read (`compare::published`):
            // parsing it here would make the registry depend on the metrics.
            if !value.value.is_finite() {
                return Err(bad(format!("value must be a number, got {}", value.value)));
            }
            if [
                &value.retriever,
                &value.dataset,
                &value.source,
                &value.metric,
            ]
            .iter()
            .any(|field| field.is_empty())
            {
                return Err(bad(
                    "source, retriever, dataset and metric must not be empty".into(),
                ));
            }
        }
        Ok(Registry {
            file: file.to_path_buf(),
            extends_built_in: parsed.extends_built_in,
            entries,
            models,
            published,
            data_folder: None,
        })
    }

    /// A user's registry laid over the built-in one: every built-in dataset and model stays
    /// known, an entry of the same name in the user's file replaces it, and published
    /// values add up (the user's replacing the same source, retriever, dataset and metric).
    /// A file with `extends_built_in = false` is the whole registry.
    pub fn over_built_in(self) -> Result<Registry> {
        Ok(self.over(Registry::built_in()?))
    }

    /// This registry laid over `base` (see [`Registry::over_built_in`]); with
    /// `extends_built_in = false`, this registry alone.
    pub fn over(self, base: Registry) -> Registry {
        if !self.extends_built_in {
            return self;
        }
        let published_key = |p: &PublishedValue| {
            (
                p.source.clone(),
                p.retriever.clone(),
                p.dataset.clone(),
                p.metric.clone(),
            )
        };
        Registry {
            file: self.file,
            extends_built_in: true,
            entries: layered(base.entries, self.entries, |e| e.name.clone()),
            models: layered(base.models, self.models, |m| m.name.clone()),
            published: layered(base.published, self.published, published_key),
            data_folder: self.data_folder,
        }
    }

    /// Appends a `[[dataset]]` entry to the registry `file` (created if absent), atomically
    /// and only if the result still parses (a name given twice is refused).
    pub fn append_entry(
        file: &Path,
        name: &str,
        path: &Path,
        split: &str,
        remove_self: bool,
        kind: DatasetKind,
    ) -> Result<()> {
        let before = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(EngineError::io(file, e)),
        };
        let text = before + &Self::entry_toml(name, path, split, remove_self, kind);
        Self::parse(file, &text)?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        }
        quarry_fsio::write(file, text.as_bytes()).map_err(|e| EngineError::io(file, e.source))
    }

    /// The `[[dataset]]` table of one entry.
    fn entry_toml(
        name: &str,
        path: &Path,
        split: &str,
        remove_self: bool,
        kind: DatasetKind,
    ) -> String {
        let string = |s: &str| toml::Value::String(s.to_string()).to_string();
        let kind = match kind {
            DatasetKind::Text => "text",
            DatasetKind::Code => "code",
        };
        format!(
            "\n[[dataset]]\nname = {}\npath = {}\nsplit = {}\nremove_self = {remove_self}\nkind = \"{kind}\"\n",
            string(name),
            string(&path.to_string_lossy()),
            string(split)
        )
    }

    pub fn get(&self, name: &str) -> Option<&RegistryEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The `[[model]]` entry named `name`.
    pub fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// Finds the registry file to use, in this order:
    /// 1. `explicit` (the `--registry` flag or `QUARRY_REGISTRY`), which must exist;
    /// 2. `datasets.toml` in `start` (the current directory) or its nearest
    ///    ancestor that has one, the way cargo finds `Cargo.toml`;
    ///
    /// Returns `None` when nothing was found and nothing was asked for (then
    /// [`Registry::built_in`] serves).
    pub fn discover(explicit: Option<&Path>, start: &Path) -> Result<Option<PathBuf>> {
        if let Some(path) = explicit {
            if !path.is_file() {
                return Err(EngineError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "registry file not found"),
                ));
            }
            return Ok(Some(path.to_path_buf()));
        }
        for dir in start.ancestors() {
            let candidate = dir.join(Self::FILE_NAME);
            if candidate.is_file() {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"
[[dataset]]
name = "tiny"
path = "data/tiny"
split = "test"
remove_self = true
corpus_sha256 = ""
url = "https://example.org/tiny.zip"
kind = "text"
"#;

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let registry = Registry::parse(Path::new("/repo/datasets.toml"), ENTRY).unwrap();
        let entry = registry.get("tiny").unwrap();
        assert_eq!(entry.path.as_deref(), Some(Path::new("/repo/data/tiny")));
        assert!(entry.remove_self);
        assert_eq!(entry.kind, DatasetKind::Text);
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let text = ENTRY.replace("kind = \"text\"", "kind = \"text\"\ncolour = \"blue\"");
        let err = Registry::parse(Path::new("/repo/datasets.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("datasets.toml"), "{err}");
    }

    #[test]
    fn a_user_entry_needs_only_name_path_split_and_remove_self() {
        let text =
            "[[dataset]]\nname = \"mine\"\npath = \"mine\"\nsplit = \"dev\"\nremove_self = false\n";
        let registry = Registry::parse(Path::new("/r/d.toml"), text).unwrap();
        let entry = registry.get("mine").unwrap();
        assert_eq!(entry.kind, DatasetKind::Text);
        assert!(entry.corpus_sha256.is_empty() && entry.url.is_empty());
        assert_eq!(entry.path.as_deref(), Some(Path::new("/r/mine")));
    }

    #[test]
    fn missing_field_and_bad_checksum_are_errors() {
        // Only the name is required: split defaults to test, remove_self to false.
        let text = ENTRY
            .replace("split = \"test\"\n", "")
            .replace("remove_self = true\n", "");
        let parsed = Registry::parse(Path::new("d.toml"), &text).unwrap();
        assert_eq!(parsed.entries[0].split, "test");
        assert!(!parsed.entries[0].remove_self);
        let text = ENTRY.replace("name = \"tiny\"\n", "");
        let err = Registry::parse(Path::new("d.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("name"), "{err}");
        let text = ENTRY.replace("corpus_sha256 = \"\"", "corpus_sha256 = \"abc\"");
        let err = Registry::parse(Path::new("d.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("corpus_sha256"), "{err}");
    }

    #[test]
    fn downloads_must_fit_their_format() {
        let with = |extra: &str| ENTRY.to_string() + extra;
        let zip = "format = \"beir-zip\"\n[[dataset.download]]\nurl = \"https://h/t.zip\"\nrole = \"archive\"\n";
        let registry = Registry::parse(Path::new("d.toml"), &with(zip)).unwrap();
        assert!(registry.get("tiny").unwrap().fetchable());
        let cases = [
            (
                zip.replace("archive", "qrels"),
                "takes one download of each role",
            ),
            (
                zip.replace("https://h", "ftp://h"),
                "must start with https://",
            ),
            (
                zip.replace("format = \"beir-zip\"\n", ""),
                "need a `format`",
            ),
            (
                zip.replace("role = \"archive\"", "role = \"archive\"\nsha256 = \"xyz\""),
                "sha256 must be 64",
            ),
        ];
        for (text, needle) in cases {
            let err = Registry::parse(Path::new("d.toml"), &with(&text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle) && err.contains("tiny"), "{err}");
        }
    }

    #[test]
    fn a_complete_fetched_copy_is_preferred() {
        let data = tempfile::tempdir().unwrap();
        let mut registry = Registry::parse(Path::new("/repo/datasets.toml"), ENTRY).unwrap();
        registry.use_data_folder(data.path());
        let bundled = Path::new("/repo/data/tiny");
        assert_eq!(registry.get("tiny").unwrap().root(), bundled);
        std::fs::create_dir_all(data.path().join("tiny")).unwrap();
        assert_eq!(
            registry.get("tiny").unwrap().root(),
            bundled,
            "no marker yet"
        );
        std::fs::write(data.path().join("tiny").join(FETCHED_MARKER), "{}").unwrap();
        assert_eq!(
            registry.get("tiny").unwrap().root(),
            data.path().join("tiny")
        );
    }

    #[test]
    fn the_built_in_registry_is_the_repository_one() {
        let built_in = Registry::built_in().unwrap();
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets.toml");
        let repo = Registry::load(&file).unwrap();
        assert_eq!(built_in.names(), repo.names());
        assert!(built_in.get("scifact").unwrap().fetchable());
        assert_eq!(built_in.models.len(), 8, "the study's eight checkpoints");
        let vl = built_in.model("qwen2.5-vl-7b-instruct").unwrap();
        assert_eq!(vl.hub, "Qwen/Qwen2.5-VL-7B-Instruct");
        assert_eq!(vl.architecture, "qwen2_5_vl");
        let family_names = families();
        for model in &built_in.models {
            assert!(
                family_names.contains(&model.family),
                "{}: {}",
                model.name,
                model.family
            );
        }
    }

    fn families() -> Vec<String> {
        quarry_encoder::prompt::PromptTemplate::available().0
    }

    #[test]
    fn the_repository_registry_parses() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets.toml");
        let registry = Registry::load(&file).unwrap();
        assert!(registry.get("nfcorpus").is_some());
        // CoIR: ten tasks, CodeSearchNet and its CCR variant per language (6 each).
        let coir: Vec<&RegistryEntry> = registry
            .entries
            .iter()
            .filter(|e| e.group.as_deref() == Some("coir"))
            .collect();
        assert_eq!(coir.len(), 8 + 2 * 6);
        for e in coir {
            assert_eq!(e.format, Some(SourceFormat::CoirHub), "{}", e.name);
            assert!(e.docs.is_some() && e.queries.is_some(), "{}", e.name);
            assert_eq!(e.kind, DatasetKind::Code, "{}", e.name);
        }
        // The original CoSQA stays beside CoIR's.
        assert!(registry.get("cosqa").unwrap().group.is_none());
    }

    #[test]
    fn coir_hub_downloads_name_repos_without_checksums() {
        let coir = r#"
[[dataset]]
name = "c"
split = "test"
remove_self = false
corpus_sha256 = ""
url = ""
kind = "code"
format = "coir-hub"

[[dataset.download]]
url = "https://huggingface.co/datasets/CoIR-Retrieval/apps-queries-corpus"
role = "queries-corpus"

[[dataset.download]]
url = "https://huggingface.co/datasets/CoIR-Retrieval/apps-qrels"
role = "qrels"
"#;
        Registry::parse(Path::new("d.toml"), coir).unwrap();
        let err = |text: &str| {
            Registry::parse(Path::new("d.toml"), text)
                .unwrap_err()
                .to_string()
        };
        let pinned = coir.replace(
            "role = \"qrels\"",
            &format!("role = \"qrels\"\nsha256 = \"{}\"", "a".repeat(64)),
        );
        assert!(err(&pinned).contains("no sha256"), "{}", err(&pinned));
        let file = coir.replace("apps-qrels\"", "apps-qrels/resolve/main/x.parquet\"");
        assert!(err(&file).contains("hub dataset repo"), "{}", err(&file));
        let one = coir.replace("role = \"qrels\"", "role = \"queries-corpus\"");
        assert!(
            err(&one).contains("one download of each role"),
            "{}",
            err(&one)
        );
    }
}
