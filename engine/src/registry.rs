//! The dataset registry, `datasets.toml`: names users type after
//! `--dataset`, mapped to BEIR folders plus what quarry needs to know about
//! them (default split, self-hit removal, the expected corpus checksum).
//!
//! The registry is only a lookup table; [`crate::dataset`] reads the data.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{EngineError, Result};

/// What a dataset holds, for grouping results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Text,
    Code,
}

/// One `[[dataset]]` table of `datasets.toml`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub name: String,
    /// The BEIR folder; relative paths are relative to the registry file.
    pub path: PathBuf,
    /// Default qrels split.
    pub split: String,
    /// Drop hits whose doc id equals the query id (Pyserini `--remove-query`).
    pub remove_self: bool,
    /// sha256 of the uncompressed corpus.jsonl; empty when unknown.
    pub corpus_sha256: String,
    /// Where a user with internet gets the data.
    pub url: String,
    pub kind: DatasetKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    dataset: Vec<RegistryEntry>,
}

/// A parsed `datasets.toml`, with entry paths made absolute.
#[derive(Debug, Clone)]
pub struct Registry {
    pub file: PathBuf,
    pub entries: Vec<RegistryEntry>,
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
        let parsed: RegistryFile = toml::from_str(text).map_err(|e| EngineError::Registry {
            file: file.to_path_buf(),
            // toml's message already says where (line, column) and which field.
            detail: e.to_string().trim_end().to_string(),
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
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
            let is_hex_digest = sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !sha.is_empty() && !is_hex_digest {
                return Err(bad(format!(
                    "corpus_sha256 must be 64 lowercase hex digits or empty, got `{sha}`"
                )));
            }
            if entry.path.is_relative() {
                entry.path = base.join(&entry.path);
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
        Ok(Registry {
            file: file.to_path_buf(),
            entries,
        })
    }

    pub fn get(&self, name: &str) -> Option<&RegistryEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// Finds the registry file to use, in this order:
    /// 1. `explicit` (the `--registry` flag or `QUARRY_REGISTRY`), which must exist;
    /// 2. `datasets.toml` in `start` (the current directory) or its nearest
    ///    ancestor that has one, the way cargo finds `Cargo.toml`;
    /// 3. `fallback` (the checkout the binary was built from), if it exists.
    ///
    /// Returns `None` when nothing was found and nothing was asked for.
    pub fn discover(
        explicit: Option<&Path>,
        start: &Path,
        fallback: Option<&Path>,
    ) -> Result<Option<PathBuf>> {
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
        Ok(fallback.filter(|p| p.is_file()).map(Path::to_path_buf))
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
        assert_eq!(entry.path, Path::new("/repo/data/tiny"));
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
    fn missing_field_and_bad_checksum_are_errors() {
        let text = ENTRY.replace("split = \"test\"\n", "");
        let err = Registry::parse(Path::new("d.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("split"), "{err}");
        let text = ENTRY.replace("corpus_sha256 = \"\"", "corpus_sha256 = \"abc\"");
        let err = Registry::parse(Path::new("d.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("corpus_sha256"), "{err}");
    }

    #[test]
    fn the_repository_registry_parses() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets.toml");
        let registry = Registry::load(&file).unwrap();
        assert!(registry.get("nfcorpus").is_some());
    }
}
