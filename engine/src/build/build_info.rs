//! The build record (`build.json`): how an index was built, so that another
//! dataset's missing index can be named with the command that builds it and
//! new queries can be encoded by the same encoder.

use std::path::Path;

use quarry_index::dense::ElementType;
use serde::{Deserialize, Serialize};

use super::encoder::EncoderSpec;
use crate::error::{EngineError, Result};

/// File of an index directory recording how it was built.
pub const BUILD_INFO_FILE: &str = "build.json";

/// How an index was built (`build.json`): shown by `quarry compare` when an
/// index is missing for another dataset, and used to re-encode new queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildInfo {
    pub name: String,
    pub dataset: String,
    pub encoder: EncoderSpec,
    pub family: String,
    pub template_mode: String,
    pub max_length: usize,
    pub store: ElementType,
    pub fingerprint: String,
    pub fingerprint_description: String,
    pub corpus_sha256: String,
    pub docs: usize,
    pub dim: usize,
    /// The command line that built it (argv), to print for another dataset.
    pub command: Vec<String>,
    pub encode_seconds: f64,
}

impl BuildInfo {
    pub fn load(dir: &Path) -> Result<Option<BuildInfo>> {
        let path = dir.join(BUILD_INFO_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io(&path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| EngineError::DataCorruption {
                file: path,
                detail: format!("not a quarry build record: {e}"),
            })
    }

    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(BUILD_INFO_FILE);
        let json = serde_json::to_vec_pretty(self).expect("serialises");
        quarry_fsio::write_with(&path, |out| {
            out.write_all(&json)?;
            out.write_all(b"\n")
        })?;
        Ok(())
    }

    /// The build command for another dataset: `--dataset`'s value replaced.
    pub fn command_for(&self, dataset: &str) -> String {
        let mut args = self.command.clone();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--dataset" && i + 1 < args.len() {
                args[i + 1] = dataset.to_string();
            } else if let Some(rest) = args[i].strip_prefix("--dataset=") {
                let _ = rest;
                args[i] = format!("--dataset={dataset}");
            }
            i += 1;
        }
        args.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
