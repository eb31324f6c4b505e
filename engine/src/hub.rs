//! Models by hub id: `--model ORG/NAME[@REV]` or `hf:ORG/NAME[@REV]` resolved
//! through `hf-hub` into the standard Hugging Face cache, so that a model
//! huggingface_hub already fetched is not fetched again, and one fetched here
//! is seen by Python.
//!
//! - [`ModelSource::parse`]: a `--model` value → a local path or a hub repo
//!   (an existing path wins over a hub id of the same spelling).
//! - [`resolve`]: the repo's revision → its commit (the API's revision
//!   endpoint), the files quarry reads fetched into
//!   `<cache>/models--ORG--NAME/snapshots/<commit>/` (what is there already
//!   is reused), `refs/<revision>` written; the snapshot folder is then read
//!   like any local model folder.
//! - Offline first: with `HF_HUB_OFFLINE=1`, or when the endpoint cannot be
//!   reached, a snapshot already in the cache for the revision is used.
//!
//! Environment, as huggingface_hub reads it: `HF_ENDPOINT`, `HF_HUB_CACHE`,
//! `HF_HOME` (cache `<HF_HOME>/hub`, token file `<HF_HOME>/token`),
//! `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`, or `HF_TOKEN_PATH`'s
//! file), `HF_HUB_OFFLINE`.
//!
//! The commit is recorded with the encoder ([`HubModel`] in `build.json`) and
//! is part of the encoder fingerprint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result, UsageError};

/// The prefix that makes a `--model` value a hub id whatever exists locally.
pub const HUB_PREFIX: &str = "hf:";

/// The default hub endpoint (`HF_ENDPOINT` overrides it).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Files fetched when the repo has them: configuration, tokenizer and the
/// sentence-transformers description. Weights are chosen separately.
const METADATA_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

const SINGLE_WEIGHTS: &str = "model.safetensors";
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A GGUF file or an HF model folder on disk.
    Local(PathBuf),
    /// A Hugging Face model repo; `revision` `None` is the default branch `main`.
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl ModelSource {
    /// A `--model` value: `hf:REPO[@REV]` is always a hub id; otherwise an
    /// existing path is local, `ORG/NAME[@REV]` (two name segments, not a
    /// model file name) is a hub id, and anything else a local path (whose
    /// absence the model reader reports).
    pub fn parse(arg: &str) -> std::result::Result<ModelSource, UsageError> {
        Self::parse_at(arg, Path::new(""))
    }

    /// [`Self::parse`] with relative paths taken from `base` (`""`: the
    /// current folder).
    fn parse_at(arg: &str, base: &Path) -> std::result::Result<ModelSource, UsageError> {
        if let Some(rest) = arg.strip_prefix(HUB_PREFIX) {
            return parse_hub(rest, true).map_err(|why| {
                UsageError(format!(
                    "--model `{arg}`: {why} (expected hf:ORG/NAME or hf:ORG/NAME@REVISION)"
                ))
            });
        }
        let path = Path::new(arg);
        if base.join(path).exists() {
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        let looks_like_file = [".gguf", ".safetensors"]
            .iter()
            .any(|ext| arg.to_ascii_lowercase().ends_with(ext));
        match parse_hub(arg, false) {
            Ok(hub) if !looks_like_file => Ok(hub),
            _ => Ok(ModelSource::Local(path.to_path_buf())),
        }
    }

    /// `hf:ORG/NAME@REV` for a hub repo, the path for a local one.
    pub fn display(&self) -> String {
        match self {
            ModelSource::Local(path) => path.display().to_string(),
            ModelSource::Hub { repo, revision } => match revision {
                Some(rev) => format!("{HUB_PREFIX}{repo}@{rev}"),
                None => format!("{HUB_PREFIX}{repo}"),
            },
        }
    }
}

/// `REPO[@REV]`; `allow_single`: a repo id without an organisation (`gpt2`).
fn parse_hub(text: &str, allow_single: bool) -> std::result::Result<ModelSource, String> {
    let (repo, revision) = match text.split_once('@') {
        Some((repo, rev)) => (repo, Some(rev)),
        None => (text, None),
    };
    let segments: Vec<&str> = repo.split('/').collect();
    let count_ok = segments.len() == 2 || (allow_single && segments.len() == 1);
    if !count_ok {
        return Err(format!("`{repo}` is not a repo id of the form ORG/NAME"));
    }
    for segment in &segments {
        let valid = !segment.is_empty()
            && segment.len() <= 96
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !segment.starts_with(['.', '-'])
            && !segment.ends_with('.')
            && !segment.contains("--")
            && !segment.contains("..");
        if !valid {
            return Err(format!(
                "`{segment}` is not a valid repo name (letters, digits, '-', '_', '.')"
            ));
        }
    }
    if let Some(rev) = revision {
        let valid = !rev.is_empty()
            && !rev.starts_with('/')
            && !rev.ends_with('/')
            && !rev.contains("..")
            && !rev
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\\');
        if !valid {
            return Err(format!("`{rev}` is not a valid revision"));
        }
    }
    Ok(ModelSource::Hub {
        repo: repo.to_string(),
        revision: revision.map(str::to_string),
    })
}

/// A model resolved from the hub, as the encoder records it (`build.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubModel {
    /// `ORG/NAME`.
    pub repo: String,
    /// The revision asked for: a branch, tag or commit (`main` by default).
    pub revision: String,
    /// The commit it resolved to: part of the encoder fingerprint.
    pub commit: String,
}

impl HubModel {
    /// The repo's name without its organisation (the default index name).
    pub fn name(&self) -> &str {
        self.repo.rsplit('/').next().unwrap_or(&self.repo)
    }

    /// `hf:ORG/NAME@COMMIT`: the exact model, as `--model` takes it.
    pub fn pinned(&self) -> String {
        format!("{HUB_PREFIX}{}@{}", self.repo, self.commit)
    }
}

/// Where the hub is and how to talk to it, from the environment.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub endpoint: String,
    /// The hub cache (`…/huggingface/hub`), holding `models--ORG--NAME/`.
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE`: use the cache only.
    pub offline: bool,
}

impl HubSettings {
    /// The settings huggingface_hub would use in this environment.
    pub fn from_env() -> HubSettings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let file = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(file).ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "on" | "yes" | "true"
            )
        });
        HubSettings {
            endpoint: var("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            cache_dir: std::path::absolute(&cache_dir).unwrap_or(cache_dir),
            token,
            offline,
        }
    }
}

/// A `--model` value made local.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The file or folder to open: for a hub model, its snapshot folder.
    pub path: PathBuf,
    /// The hub repo and commit, for a hub model.
    pub hub: Option<HubModel>,
    /// Files fetched now (the rest of the snapshot was in the cache).
    pub downloaded: Vec<String>,
    /// Files the snapshot holds that quarry reads.
    pub files: usize,
    /// Why the cache was used without asking the endpoint (offline, unreachable).
    pub offline_note: Option<String>,
}

impl ResolvedModel {
    /// A local model: the path as it is.
    pub fn local(path: PathBuf) -> ResolvedModel {
        ResolvedModel {
            path,
            hub: None,
            downloaded: Vec::new(),
            files: 0,
            offline_note: None,
        }
    }

    /// One line for the user: which commit, what was fetched, from where.
    pub fn summary(&self) -> Option<String> {
        let hub = self.hub.as_ref()?;
        let fetched = match (&self.offline_note, self.downloaded.len()) {
            (Some(note), _) => format!("from the cache ({note})"),
            (None, 0) => format!("all {} files already in the cache", self.files),
            (None, n) => format!("{n} of {} files downloaded", self.files),
        };
        Some(format!(
            "model hf:{}@{} is commit {}: {fetched}; {}",
            hub.repo,
            hub.revision,
            hub.commit,
            self.path.display()
        ))
    }
}

/// Parses and resolves a `--model` value ([`ModelSource::parse`], [`resolve`]);
/// a hub id written without `hf:` that the hub does not serve also says that
/// no local path of that spelling exists (it may have been meant as one).
pub fn resolve_model(
    arg: &str,
    settings: &HubSettings,
    progress: &ProgressBar,
) -> Result<ResolvedModel> {
    let source = ModelSource::parse(arg)?;
    resolve(&source, settings, progress).map_err(|err| match err {
        EngineError::Hub { repo, detail } if !arg.starts_with(HUB_PREFIX) => EngineError::Hub {
            repo,
            detail: format!("{detail}; nor is `{arg}` a local file or folder"),
        },
        other => other,
    })
}

/// Makes `source` local: a local path as it is; a hub repo's revision
/// resolved to a commit and its files fetched into the cache (what is there
/// reused). `progress` moves over the bytes of each file downloaded.
pub fn resolve(
    source: &ModelSource,
    settings: &HubSettings,
    progress: &ProgressBar,
) -> Result<ResolvedModel> {
    let (repo, revision) = match source {
        ModelSource::Local(path) => return Ok(ResolvedModel::local(path.clone())),
        ModelSource::Hub { repo, revision } => {
            (repo.as_str(), revision.as_deref().unwrap_or("main"))
        }
    };
    let cache = Cache::new(settings.cache_dir.clone());
    let repo_dir = settings.cache_dir.join(repo_folder(repo));
    if settings.offline {
        let note = "HF_HUB_OFFLINE is set".to_string();
        return from_cache(&repo_dir, repo, revision, note.clone()).ok_or_else(|| {
            hub_error(
                repo,
                format!(
                    "{note} and the cache {} has no complete snapshot of revision `{revision}`; \
                     unset HF_HUB_OFFLINE to fetch it",
                    settings.cache_dir.display()
                ),
            )
        });
    }
    let api = ApiBuilder::from_cache(cache)
        .with_endpoint(settings.endpoint.clone())
        .with_token(settings.token.clone())
        .with_progress(false)
        .with_retries(2)
        .build()
        .map_err(|e| hub_error(repo, format!("cannot set up the hub client: {e}")))?;
    let info = match api
        .repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            revision.to_string(),
        ))
        .info()
    {
        Ok(info) => info,
        Err(err) => {
            let status = status_of(&err);
            if status.is_none() {
                // The endpoint cannot be reached: a cached snapshot still serves.
                let note = format!("{} could not be reached: {err}", settings.endpoint);
                if let Some(found) = from_cache(&repo_dir, repo, revision, note.clone()) {
                    return Ok(found);
                }
                return Err(hub_error(
                    repo,
                    format!(
                        "{note}; and the cache {} has no snapshot of revision `{revision}`",
                        settings.cache_dir.display()
                    ),
                ));
            }
            return Err(hub_error(repo, info_failure(&err, revision, settings)));
        }
    };
    let commit = info.sha.trim().to_string();
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(hub_error(
            repo,
            format!(
                "{} answered a revision without a usable commit id (`{commit}`)",
                settings.endpoint
            ),
        ));
    }
    let listing: BTreeSet<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let pinned = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        commit.clone(),
    ));
    let ref_of_commit = repo_dir.join("refs").join(&commit);
    let had_ref_of_commit = ref_of_commit.exists();
    let mut downloaded = Vec::new();
    let mut fetch = |file: &str| -> Result<()> {
        let link = snapshot.join(file);
        if link.is_file() {
            return Ok(());
        }
        if link.symlink_metadata().is_ok() {
            // A link whose blob is gone: hf-hub would keep it and fail.
            std::fs::remove_file(&link).map_err(|e| EngineError::io(&link, e))?;
        }
        let got = pinned
            .download_with_progress(file, BarProgress(progress.clone()))
            .map_err(|err| hub_error(repo, download_failure(&err, file, &commit)))?;
        if got != snapshot.join(file) {
            return Err(hub_error(
                repo,
                format!(
                    "{file} was served for another commit than {commit} (stored as {})",
                    got.display()
                ),
            ));
        }
        downloaded.push(file.to_string());
        Ok(())
    };
    let wanted = select_files(repo, &listing, &snapshot, &mut fetch)?;
    for file in &wanted {
        fetch(file)?;
    }
    // hf-hub records refs/<commit> when fetching by commit; huggingface_hub
    // keeps refs for branch and tag names only.
    if !had_ref_of_commit && revision != commit {
        let _ = std::fs::remove_file(&ref_of_commit);
    }
    if revision != commit {
        write_ref(&repo_dir, revision, &commit)
            .map_err(|e| EngineError::io(repo_dir.join("refs"), e))?;
    }
    Ok(ResolvedModel {
        path: snapshot,
        hub: Some(HubModel {
            repo: repo.to_string(),
            revision: revision.to_string(),
            commit,
        }),
        downloaded,
        files: wanted.len(),
        offline_note: None,
    })
}

/// The files to fetch, from the repo's listing: configuration, tokenizer and
/// sentence-transformers files it has, and the safetensors weights (the
/// single file, or the index, fetched first through `fetch`, and the shards
/// it names). Pickle, ONNX and GGUF files are never fetched.
fn select_files(
    repo: &str,
    listing: &BTreeSet<String>,
    snapshot: &Path,
    fetch: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Vec<String>> {
    for required in ["config.json", "tokenizer.json"] {
        if !listing.contains(required) {
            return Err(hub_error(
                repo,
                format!(
                    "the repository has no {required}; quarry reads transformers model \
                     repos (config.json, tokenizer.json, safetensors weights)"
                ),
            ));
        }
    }
    let mut files: Vec<String> = METADATA_FILES
        .iter()
        .filter(|f| listing.contains(**f))
        .map(|f| f.to_string())
        .collect();
    // sentence-transformers modules: 1_Pooling/config.json, 2_Normalize/…
    files.extend(
        listing
            .iter()
            .filter(|f| is_module_config(f))
            .cloned()
            .collect::<Vec<_>>(),
    );
    if listing.contains(WEIGHTS_INDEX) {
        fetch(WEIGHTS_INDEX)?;
        let index_path = snapshot.join(WEIGHTS_INDEX);
        let shards = index_shards(&index_path)
            .map_err(|detail| hub_error(repo, format!("{WEIGHTS_INDEX}: {detail}")))?;
        for shard in &shards {
            if !listing.contains(shard) {
                return Err(hub_error(
                    repo,
                    format!("{WEIGHTS_INDEX} names the shard {shard}, which the repository does not have"),
                ));
            }
        }
        files.push(WEIGHTS_INDEX.to_string());
        files.extend(shards);
    } else if listing.contains(SINGLE_WEIGHTS) {
        files.push(SINGLE_WEIGHTS.to_string());
    } else {
        let others: Vec<&str> = listing
            .iter()
            .map(String::as_str)
            .filter(|f| {
                let lower = f.to_ascii_lowercase();
                [
                    ".bin",
                    ".pt",
                    ".pth",
                    ".ckpt",
                    ".onnx",
                    ".gguf",
                    ".safetensors",
                    ".h5",
                    ".msgpack",
                ]
                .iter()
                .any(|ext| lower.ends_with(ext))
            })
            .collect();
        let has = if others.is_empty() {
            "no weight files at all".to_string()
        } else {
            format!("only {}", others.join(", "))
        };
        let gguf_hint = if others
            .iter()
            .any(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        {
            "; for a GGUF, download the file and pass its path to --model"
        } else {
            ""
        };
        return Err(hub_error(
            repo,
            format!(
                "the repository has no {SINGLE_WEIGHTS} or {WEIGHTS_INDEX} ({has}); quarry reads \
                 safetensors weights only (pickle checkpoints can execute code){gguf_hint}"
            ),
        ));
    }
    Ok(files)
}

/// `N_Name/config.json`: a sentence-transformers module's configuration.
fn is_module_config(file: &str) -> bool {
    match file.split_once('/') {
        Some((module, "config.json")) => module.split_once('_').is_some_and(|(n, name)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
        }),
        _ => false,
    }
}

/// The shard files an index's `weight_map` names, in order, once each.
fn index_shards(path: &Path) -> std::result::Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let index: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or("no weight_map")?;
    let mut shards: Vec<String> = Vec::new();
    for value in map.values() {
        let shard = value
            .as_str()
            .ok_or("a weight_map value is not a file name")?;
        let safe = !shard.is_empty()
            && Path::new(shard)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(format!("`{shard}` is not a file of the repository"));
        }
        if !shards.iter().any(|s| s == shard) {
            shards.push(shard.to_string());
        }
    }
    if shards.is_empty() {
        return Err("the weight_map is empty".into());
    }
    Ok(shards)
}

/// A cached snapshot of `revision` (a branch or tag through `refs/`, or a
/// commit) that holds config, tokenizer and all weights.
fn from_cache(repo_dir: &Path, repo: &str, revision: &str, note: String) -> Option<ResolvedModel> {
    let snapshots = repo_dir.join("snapshots");
    let commit = if snapshots.join(revision).is_dir() && !revision.contains('/') {
        revision.to_string()
    } else {
        std::fs::read_to_string(repo_dir.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return None;
    }
    let snapshot = snapshots.join(&commit);
    let mut files = 2;
    for required in ["config.json", "tokenizer.json"] {
        if !snapshot.join(required).is_file() {
            return None;
        }
    }
    if snapshot.join(WEIGHTS_INDEX).is_file() {
        let shards = index_shards(&snapshot.join(WEIGHTS_INDEX)).ok()?;
        if !shards.iter().all(|s| snapshot.join(s).is_file()) {
            return None;
        }
        files += shards.len();
    } else if snapshot.join(SINGLE_WEIGHTS).is_file() {
        files += 1;
    } else {
        return None;
    }
    Some(ResolvedModel {
        path: snapshot,
        hub: Some(HubModel {
            repo: repo.to_string(),
            revision: revision.to_string(),
            commit,
        }),
        downloaded: Vec::new(),
        files,
        offline_note: Some(note),
    })
}

/// `models--ORG--NAME`: the repo's folder in the cache.
fn repo_folder(repo: &str) -> String {
    Repo::model(repo.to_string()).folder_name()
}

fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> std::io::Result<()> {
    let path = repo_dir.join("refs").join(revision);
    if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, commit.as_bytes())
}

fn hub_error(repo: &str, detail: String) -> EngineError {
    EngineError::Hub {
        repo: repo.to_string(),
        detail,
    }
}

/// The HTTP status of a failed request; `None` when no answer came.
fn status_of(err: &ApiError) -> Option<u16> {
    match err {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::Status(code, _) => Some(*code),
            ureq::Error::Transport(_) => None,
        },
        ApiError::TooManyRetries(inner) => status_of(inner),
        _ => Some(0),
    }
}

fn info_failure(err: &ApiError, revision: &str, settings: &HubSettings) -> String {
    let token_hint = if settings.token.is_some() {
        " (or the token in use has no access to it)"
    } else {
        " (or it is private or gated: set HF_TOKEN)"
    };
    match status_of(err) {
        Some(401 | 403 | 404) => format!(
            "no such model repository or revision `{revision}` at {}{token_hint}",
            settings.endpoint
        ),
        Some(code) if code != 0 => format!(
            "{} answered HTTP {code} for revision `{revision}`",
            settings.endpoint
        ),
        _ => format!(
            "reading revision `{revision}` from {}: {err}",
            settings.endpoint
        ),
    }
}

fn download_failure(err: &ApiError, file: &str, commit: &str) -> String {
    match status_of(err) {
        Some(404) => {
            format!("the server has no {file} at commit {commit}, though the repository lists it")
        }
        Some(code @ (401 | 403)) => {
            format!("downloading {file}: HTTP {code} (set HF_TOKEN for a gated or private model)")
        }
        Some(code) if code != 0 => format!("downloading {file}: HTTP {code}"),
        _ => format!("downloading {file}: {err}"),
    }
}

/// hf-hub's download progress on one of quarry's bars: the file's bytes.
struct BarProgress(ProgressBar);

impl hf_hub::api::Progress for BarProgress {
    fn init(&mut self, size: usize, filename: &str) {
        self.0.set_length(size as u64);
        self.0.set_position(0);
        self.0.set_message(filename.to_string());
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, revision: Option<&str>) -> ModelSource {
        ModelSource::Hub {
            repo: repo.into(),
            revision: revision.map(Into::into),
        }
    }

    #[test]
    fn model_values_parse_as_hub_ids_or_paths() {
        assert_eq!(
            ModelSource::parse("Qwen/Qwen2.5-7B-Instruct").unwrap(),
            hub("Qwen/Qwen2.5-7B-Instruct", None)
        );
        assert_eq!(
            ModelSource::parse("hf:org/tiny-bert@v1.0").unwrap(),
            hub("org/tiny-bert", Some("v1.0"))
        );
        assert_eq!(
            ModelSource::parse("org/tiny@refs/pr/3").unwrap(),
            hub("org/tiny", Some("refs/pr/3"))
        );
        assert_eq!(ModelSource::parse("hf:gpt2").unwrap(), hub("gpt2", None));
        for local in [
            "model.gguf",
            "models/qwen.gguf",
            "./models/x",
            "/abs/path/model",
            "a/b/c",
            "gpt2",
        ] {
            assert_eq!(
                ModelSource::parse(local).unwrap(),
                ModelSource::Local(local.into()),
                "{local}"
            );
        }
        for bad in [
            "hf:",
            "hf:a/b/c",
            "hf:org/na me",
            "hf:org/x@",
            "hf:../x",
            "hf:org--x/y",
        ] {
            let err = ModelSource::parse(bad).unwrap_err().0;
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn an_existing_path_wins_over_a_hub_id() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ModelSource::parse_at("org/model", dir.path()).unwrap(),
            ModelSource::Hub { .. }
        ));
        std::fs::create_dir_all(dir.path().join("org/model")).unwrap();
        assert_eq!(
            ModelSource::parse_at("org/model", dir.path()).unwrap(),
            ModelSource::Local("org/model".into())
        );
        // The prefix asks for the hub whatever exists.
        assert!(matches!(
            ModelSource::parse_at("hf:org/model", dir.path()).unwrap(),
            ModelSource::Hub { .. }
        ));
    }

    #[test]
    fn module_configs_are_recognised() {
        assert!(is_module_config("1_Pooling/config.json"));
        assert!(is_module_config("2_Normalize/config.json"));
        assert!(!is_module_config("onnx/config.json"));
        assert!(!is_module_config("1_Pooling/other.json"));
        assert!(!is_module_config("config.json"));
    }

    #[test]
    fn offline_resolution_reads_refs_and_checks_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let settings = HubSettings {
            endpoint: "http://127.0.0.1:9".into(),
            cache_dir: dir.path().to_path_buf(),
            token: None,
            offline: true,
        };
        let source = hub("org/tiny", None);
        let progress = ProgressBar::hidden();
        let err = resolve(&source, &settings, &progress)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("org/tiny") && err.contains("HF_HUB_OFFLINE"),
            "{err}"
        );
        let repo_dir = dir.path().join("models--org--tiny");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snapshot = repo_dir.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
        for file in ["config.json", "tokenizer.json"] {
            std::fs::write(snapshot.join(file), "{}").unwrap();
        }
        // Config and tokenizer without weights is not a usable snapshot.
        assert!(resolve(&source, &settings, &progress).is_err());
        std::fs::write(snapshot.join("model.safetensors"), "x").unwrap();
        let found = resolve(&source, &settings, &progress).unwrap();
        assert_eq!(found.path, snapshot);
        let model = found.hub.unwrap();
        assert_eq!(
            (model.revision.as_str(), model.commit.as_str()),
            ("main", commit)
        );
        // A commit asked for directly needs no ref.
        let by_commit = hub("org/tiny", Some(commit));
        assert_eq!(
            resolve(&by_commit, &settings, &progress).unwrap().path,
            snapshot
        );
    }
}
