//! The published Qwen2.5 model shapes and their FLOP counts (for MFU).

use quarry_encoder::Qwen2Config;

/// The published Qwen2.5 shapes (config.json of Qwen/Qwen2.5-{0.5B,1.5B,7B}).
pub fn qwen2_5_shape(name: &str) -> Option<Qwen2Config> {
    let (vocab, hidden, inter, layers, heads, kv_heads, tied) = match name {
        "0.5b" => (151_936, 896, 4864, 24, 14, 2, true),
        "1.5b" => (151_936, 1536, 8960, 28, 12, 2, true),
        "7b" => (152_064, 3584, 18944, 28, 28, 4, false),
        _ => return None,
    };
    Some(Qwen2Config {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: inter,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim: hidden / heads,
        max_position_embeddings: 32_768,
        rope_theta: 1e6,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
    })
}

/// Parameters outside the token embedding (and LM head): the ones every token multiplies.
pub fn non_embedding_params(config: &Qwen2Config) -> u64 {
    let h = config.hidden_size as u64;
    let q = (config.num_attention_heads * config.head_dim) as u64;
    let kv = (config.num_key_value_heads * config.head_dim) as u64;
    let inter = config.intermediate_size as u64;
    let attention = h * q + q + 2 * (h * kv + kv) + q * h;
    let mlp = 3 * h * inter;
    let norms = 2 * h;
    config.num_hidden_layers as u64 * (attention + mlp + norms) + h
}

/// Model FLOPs of one sequence of `length` tokens: 2 × params per token plus
/// 4 × layers × length × hidden per token for attention (scores and values).
pub fn sequence_flops(config: &Qwen2Config, length: usize) -> f64 {
    let per_token = 2.0 * non_embedding_params(config) as f64
        + 4.0 * (config.num_hidden_layers * length * config.hidden_size) as f64;
    per_token * length as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Qwen2.5 technical report's non-embedding parameter counts:
    /// 0.36 B, 1.31 B and 6.53 B.
    #[test]
    fn non_embedding_params_match_the_published_counts() {
        let billions =
            |name: &str| non_embedding_params(&qwen2_5_shape(name).unwrap()) as f64 / 1e9;
        assert!((billions("0.5b") - 0.36).abs() < 0.005);
        assert!((billions("1.5b") - 1.31).abs() < 0.005);
        assert!((billions("7b") - 6.53).abs() < 0.005);
    }

    /// The peer numbers measured by benches/encode_peer.py on an H100 (tokens/s and MFU at
    /// 786 TFLOP/s, docs/perf-notes.md)
    /// agree with this FLOP count.
    #[test]
    fn flops_reproduce_the_published_mfu() {
        for (name, tokens_per_s, mfu) in [
            ("0.5b", 350_088.0, 0.34),
            ("1.5b", 138_853.0, 0.48),
            ("7b", 37_946.0, 0.64),
        ] {
            let config = qwen2_5_shape(name).unwrap();
            let per_token = sequence_flops(&config, 512) / 512.0;
            let computed = tokens_per_s * per_token / 786e12;
            assert!((computed - mfu).abs() < 0.005, "{name}: {computed}");
        }
    }
}
