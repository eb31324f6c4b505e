//! `quarry encode`: texts through an encoder, as `quarry build` would encode them as
//! documents or as queries (same prompts, pooling, normalisation and fingerprint), without
//! an index: vectors for another tool, a quick look, or `quarry index import`.

use std::path::Path;

pub use quarry_encoder::prompt::TextKind;

use crate::build::{EncoderSpec, PreparedEncoder};
use crate::error::Result;
use crate::vector_io::write_matrix;

/// Texts embedded per forward call: bounded memory, and a progress step.
const TEXTS_PER_CALL: usize = 256;

/// Texts to encode: ids, optional titles (documents), texts.
#[derive(Debug, Clone, Default)]
pub struct TextBatch {
    pub ids: Vec<String>,
    pub titles: Option<Vec<String>>,
    pub texts: Vec<String>,
}

/// The encoder's identity and the embeddings, row-major (`ids.len()` x `dim`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Embedded {
    pub fingerprint: String,
    pub dim: usize,
    #[serde(skip)]
    pub vectors: Vec<f32>,
}

/// Encodes `batch` as `kind` (query or passage) with the encoder of `spec`; `progress`
/// hears the number of texts done after each call.
pub fn encode_texts(
    spec: &EncoderSpec,
    kind: TextKind,
    batch: &TextBatch,
    progress: &dyn Fn(usize),
) -> Result<Embedded> {
    let prepared = PreparedEncoder::prepare(spec)?;
    let model = prepared.load()?;
    let mut vectors = Vec::with_capacity(batch.texts.len() * prepared.dim);
    for start in (0..batch.texts.len()).step_by(TEXTS_PER_CALL) {
        let end = (start + TEXTS_PER_CALL).min(batch.texts.len());
        let texts: Vec<&str> = batch.texts[start..end].iter().map(String::as_str).collect();
        let titles: Option<Vec<&str>> = batch
            .titles
            .as_ref()
            .map(|t| t[start..end].iter().map(String::as_str).collect());
        let inputs = prepared.inputs(kind, titles.as_deref(), &texts)?;
        for vector in model.embed(&inputs)? {
            vectors.extend(vector);
        }
        progress(end);
    }
    Ok(Embedded {
        fingerprint: prepared.fingerprint.clone(),
        dim: prepared.dim,
        vectors,
    })
}

/// Writes the embeddings as a `.npy` (f32) and their ids, one per line, both atomically.
pub fn write_embedded(
    embedded: &Embedded,
    ids: &[String],
    npy: &Path,
    ids_file: &Path,
) -> Result<()> {
    let dim = embedded.dim.max(1);
    write_matrix(
        npy,
        ids_file,
        (ids.len(), embedded.dim),
        |row| Ok(embedded.vectors[row * dim..(row + 1) * dim].to_vec()),
        |row| Ok(ids[row].clone()),
    )
}
