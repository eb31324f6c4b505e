//! The encoder fingerprint: one hash over everything that determines an embedding — weight
//! bytes, tokenizer, prompt template, pooling, normalisation, max length and compute dtype,
//! and the hub commit of a model fetched by hub id.
//! `index` stores it next to embeddings and refuses to search them with a query encoder whose
//! fingerprint differs.
//!
//! Hashing a 1 GB GGUF takes seconds, so a file's sha256 is cached in a sidecar
//! `<file>.sha256` holding `<sha256> <size> <mtime seconds>` (the format
//! `scripts/fetch_models.sh` writes after verifying a download); the cache is trusted only
//! while size and mtime match, and a sidecar that cannot be written is simply not written.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::io_error;
use crate::prompt::PromptTemplate;
use crate::tokenizer::TextTokenizer;
use crate::{EncoderError, EncoderFingerprint};

/// Version of the fingerprint recipe: bump when what goes into it changes.
const RECIPE: &str = "quarry-encoder-fingerprint v1";

fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// (size, mtime in whole seconds) of a file: the cache key of its hash.
fn size_and_mtime(path: &Path) -> Result<(u64, u64), EncoderError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok((meta.len(), mtime))
}

/// Streams a file through sha256 (1 MiB reads). Lowercase hex.
pub fn sha256_file_uncached(path: &Path) -> Result<String, EncoderError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The sha256 of a file, from its `.sha256` sidecar when size and mtime still match,
/// otherwise computed and written to the sidecar (atomically; failures to write are ignored).
pub fn sha256_file(path: &Path) -> Result<String, EncoderError> {
    let (size, mtime) = size_and_mtime(path)?;
    let sidecar = sidecar_path(path);
    if let Ok(cached) = std::fs::read_to_string(&sidecar) {
        let fields: Vec<&str> = cached.split_whitespace().collect();
        if let [sha, cached_size, cached_mtime] = fields[..] {
            let is_hex = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
            if is_hex && cached_size == size.to_string() && cached_mtime == mtime.to_string() {
                return Ok(sha.to_ascii_lowercase());
            }
        }
    }
    let sha = sha256_file_uncached(path)?;
    // The file may have changed while we read it; only cache a hash of a file that stood still.
    if size_and_mtime(path)? == (size, mtime) {
        let _ = quarry_fsio::write(&sidecar, format!("{sha} {size} {mtime}\n").as_bytes());
    }
    Ok(sha)
}

/// Everything that determines an embedding.
#[derive(Debug, Clone)]
pub struct FingerprintInputs<'a> {
    /// Files whose bytes define the model: weight files (all shards) and, for HF folders,
    /// `config.json`. Their paths do not enter the fingerprint, only their contents.
    pub model_files: Vec<PathBuf>,
    /// Files of a LoRA adapter merged into the weights (`adapter_model.safetensors`,
    /// `adapter_config.json`); empty without one. Contents only, like `model_files`.
    pub adapter_files: Vec<PathBuf>,
    pub tokenizer: &'a TextTokenizer,
    pub template: &'a PromptTemplate,
    pub normalize: bool,
    pub max_length: usize,
    /// The compute dtype of the forward pass (e.g. "f32", "bf16").
    pub dtype: &'a str,
    /// The hub commit the model files were resolved to (`--model ORG/NAME[@REV]`);
    /// `None` for a local model, whose fingerprint then stays as it always was.
    pub hub_commit: Option<&'a str>,
}

/// The fingerprint of an encoder: `sha256` of a canonical description listing the hash of
/// each ingredient (the description itself is returned by [`fingerprint_description`]).
pub fn encoder_fingerprint(
    inputs: &FingerprintInputs<'_>,
) -> Result<EncoderFingerprint, EncoderError> {
    let description = fingerprint_description(inputs)?;
    Ok(EncoderFingerprint(hex::encode(Sha256::digest(
        description.as_bytes(),
    ))))
}

/// The canonical text the fingerprint hashes (useful to see why two fingerprints differ).
pub fn fingerprint_description(inputs: &FingerprintInputs<'_>) -> Result<String, EncoderError> {
    let mut text = format!("{RECIPE}\n");
    for path in &inputs.model_files {
        text.push_str(&format!("model_file {}\n", sha256_file(path)?));
    }
    // Only present with an adapter, so fingerprints of plain models stay as they were.
    for path in &inputs.adapter_files {
        text.push_str(&format!("adapter_file {}\n", sha256_file(path)?));
    }
    let tokenizer_json = inputs.tokenizer.canonical_json()?;
    text.push_str(&format!(
        "tokenizer {}\n",
        hex::encode(Sha256::digest(tokenizer_json.as_bytes()))
    ));
    text.push_str(&format!(
        "eos_token_id {:?}\n",
        inputs.tokenizer.eos_token_id()
    ));
    text.push_str(&format!(
        "template {}\n",
        hex::encode(Sha256::digest(inputs.template.canonical_text().as_bytes()))
    ));
    text.push_str(&format!(
        "pooling {}\n",
        inputs.template.pooling().fingerprint_name()
    ));
    text.push_str(&format!("normalize {}\n", inputs.normalize));
    text.push_str(&format!("max_length {}\n", inputs.max_length));
    text.push_str(&format!("dtype {}\n", inputs.dtype));
    // Only present for a model fetched by hub id, so local fingerprints stay as they were.
    if let Some(commit) = inputs.hub_commit {
        text.push_str(&format!("hub_commit {commit}\n"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_is_cached_by_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        std::fs::write(&path, b"abc").unwrap();
        let sha = sha256_file(&path).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let sidecar = std::fs::read_to_string(dir.path().join("w.bin.sha256")).unwrap();
        assert!(sidecar.starts_with(&sha), "{sidecar}");
        // A sidecar whose key still matches is trusted (that is the point of the cache) ...
        let (size, mtime) = size_and_mtime(&path).unwrap();
        let fake = "0".repeat(64);
        std::fs::write(
            dir.path().join("w.bin.sha256"),
            format!("{fake} {size} {mtime}\n"),
        )
        .unwrap();
        assert_eq!(sha256_file(&path).unwrap(), fake);
        // ... and one whose size no longer matches is not.
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
        );
    }
}
