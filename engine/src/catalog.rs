//! The data home: where every index quarry builds lives on disk, keyed by
//! what it was built from, so that a changed corpus never reuses a stale
//! index.
//!
//! Layout:
//! - `<home>/bm25/<dataset>-<first 16 hex digits of the corpus sha256>/`
//! - `<home>/dense/<name>@<dataset>/` (a folder `quarry build` writes; see
//!   [`crate::build`]), or `<home>/dense/<name>/` for an index named exactly.

use std::path::{Path, PathBuf};

use crate::build::BuildInfo;

/// The data home and the index folders inside it.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub home: PathBuf,
}

/// The data home used when neither `--home` nor `QUARRY_HOME` is given: the user's data
/// folder, `$XDG_DATA_HOME/quarry`, else `~/.local/share/quarry` (the XDG default), so that
/// every command finds the same indexes from any directory. Only where neither variable is
/// set, `.quarry` in the current directory.
pub fn default_home() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(data) = var("XDG_DATA_HOME").map(PathBuf::from) {
        // The XDG spec: a relative path is invalid and is ignored.
        if data.is_absolute() {
            return data.join("quarry");
        }
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/quarry"),
        None => PathBuf::from(".quarry"),
    }
}

/// How to point quarry at another data home, for messages about what was not found.
pub const HOME_HINT: &str = "another data home: --home DIR or QUARRY_HOME=DIR";

impl Catalog {
    pub fn new(home: impl Into<PathBuf>) -> Catalog {
        Catalog { home: home.into() }
    }

    pub fn bm25_dir(&self, dataset_name: &str, corpus_sha256: &str) -> PathBuf {
        let prefix = &corpus_sha256[..corpus_sha256.len().min(16)];
        self.home
            .join("bm25")
            .join(format!("{}-{prefix}", safe_name(dataset_name)))
    }

    /// `<home>/dense/<name>@<dataset>`: where `quarry build` writes.
    pub fn dense_dir(&self, name: &str, dataset_name: &str) -> PathBuf {
        self.home
            .join("dense")
            .join(format!("{}@{}", safe_name(name), safe_name(dataset_name)))
    }

    /// Where `dense:NAME` lives for a dataset: `<name>@<dataset>`, else a
    /// folder named exactly `NAME`. `Err` carries the message for a missing
    /// index, with the build command when a sibling index of that name (built
    /// for another dataset) records one.
    pub fn resolve_dense_dir(&self, name: &str, dataset_name: &str) -> Result<PathBuf, String> {
        let dir = self.dense_dir(name, dataset_name);
        if dir.join("manifest.json").exists() {
            return Ok(dir);
        }
        let exact = self.home.join("dense").join(safe_name(name));
        if exact.join("manifest.json").exists() {
            return Ok(exact);
        }
        let prefix = format!("{}@", safe_name(name));
        let sibling = std::fs::read_dir(self.home.join("dense"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .find_map(|e| BuildInfo::load(&e.path()).ok().flatten());
        Err(match sibling {
            Some(info) => format!(
                "no dense index `{name}` for {dataset_name} in the data home {} ({HOME_HINT}); \
                 build it with: {}",
                self.home.display(),
                info.command_for(dataset_name)
            ),
            None => format!(
                "no dense index `{name}` for {dataset_name} in the data home {} ({HOME_HINT}); \
                 build it with: quarry build --model PATH --dataset {dataset_name} --name {name}",
                self.home.display()
            ),
        })
    }
}

/// Keeps a dataset or index name usable as one path component.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Creates the parent folder of an index directory.
pub fn ensure_parent(dir: &Path) -> std::io::Result<()> {
    match dir.parent() {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_dir_is_keyed_by_name_and_checksum() {
        let catalog = Catalog::new("/home/q");
        let dir = catalog.bm25_dir("my data", &"ab".repeat(32));
        assert_eq!(dir, Path::new("/home/q/bm25/my_data-abababababababab"));
        assert_eq!(
            catalog.dense_dir("mini/lm", "nf corpus"),
            Path::new("/home/q/dense/mini_lm@nf_corpus")
        );
    }

    #[test]
    fn a_missing_dense_index_names_the_build_command() {
        let home = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(home.path());
        let err = catalog.resolve_dense_dir("minilm", "nfcorpus").unwrap_err();
        assert!(
            err.contains("quarry build --model PATH --dataset nfcorpus --name minilm"),
            "{err}"
        );
    }
}
