//! Arithmetic on finished embeddings: L2 normalisation and cosine similarity.

/// Cosine similarity, accumulated in f64 (0 when a vector is all zeros): how embeddings of
/// two runs are compared (GPU against CPU, quarry against a reference implementation).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-30)
}

/// `v / max(|v|, 1e-12)`, as torch's `F.normalize`.
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|&value| f64::from(value) * f64::from(value))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for value in vector {
        *value = (f64::from(*value) / norm) as f32;
    }
}
