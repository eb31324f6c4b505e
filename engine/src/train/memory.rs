//! Will a training run fit in its device's memory? A plan from the model's shape and the
//! job's settings, checked against the device's free memory before anything is loaded.
//!
//! The plan counts, in bytes:
//! - the base weights in the compute dtype (the LM head is never loaded);
//! - the LoRA state: parameters, gradients and AdamW's two moments, in f32;
//! - one micro-batch's activations kept for the backward pass. Per layer and token, the
//!   tensors the autodiff graph keeps (norm outputs, the q/k/v projections and their
//!   rotary forms, attention output, o-projection, residuals: about 10 hidden-wide and 4
//!   kv-wide vectors; gate, up, their activation and product: 4 intermediate-wide ones)
//!   plus, per sequence and head, the materialised L x L attention scores, probabilities
//!   and mask (3 L^2). Every sequence is counted at its maximum length (`--query-max-len`,
//!   `--passage-max-len`): the worst micro-batch, which on a GPU is every micro-batch, as
//!   shapes are padded there.
//!   That structural count times [`ACTIVATION_FACTOR`] is the estimate. The factor was
//!   measured: peak RSS of `quarry train` on the CPU (f32), Qwen2.5-Coder-0.5B, group 4,
//!   lengths 32/128, one step at micro-batch 1, 2 and 4 (5.05, 7.64, 12.80 GB) grew by
//!   2.58 GB per query, where the structural count gives 1.78 GB: a factor of 1.45. With 1.5
//!   the planned totals exceed those three peaks by 5-8% (docs/training.md, "Memory").
//! - a fixed allowance for the runtime, tokenizer and buffers ([`RUNTIME_BYTES`]).

use quarry_encoder::device_memory::DeviceMemory;
use quarry_encoder::{Precision, Qwen2Config};
use serde::Serialize;

use super::TrainSettings;

/// Measured activations over the structural count (see the module's documentation).
pub const ACTIVATION_FACTOR: f64 = 1.5;
/// Runtime, tokenizer, batches and allocator slack.
pub const RUNTIME_BYTES: u64 = 512 << 20;

/// What a run needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub weights: u64,
    pub adapter_state: u64,
    /// Activations of one micro-batch of `micro_batch` queries.
    pub activations: u64,
    pub runtime: u64,
    pub total: u64,
    /// Activations per query of a micro-batch (each micro-batch query adds this).
    pub per_query: u64,
}

impl MemoryPlan {
    /// The plan of `settings` on a model of `config`'s shape.
    pub fn new(config: &Qwen2Config, settings: &TrainSettings) -> MemoryPlan {
        let h = config.hidden_size as f64;
        let i = config.intermediate_size as f64;
        let kv = (config.num_key_value_heads * config.head_dim) as f64;
        let q_dim = (config.num_attention_heads * config.head_dim) as f64;
        let layers = config.num_hidden_layers as f64;
        let dtype = match settings.precision {
            Precision::F32 => 4.0,
            Precision::BF16 | Precision::F16 => 2.0,
        };
        let per_layer_params = h * q_dim + q_dim       // q_proj (+ bias)
            + 2.0 * (h * kv + kv)                       // k_proj, v_proj (+ biases)
            + q_dim * h                                 // o_proj
            + 3.0 * h * i                               // gate, up, down
            + 2.0 * h; // the two norms
        let params = config.vocab_size as f64 * h + layers * per_layer_params + h;
        let weights = params * dtype;

        let rank = settings.rank as f64;
        let lora_params: f64 = settings
            .target_modules
            .iter()
            .map(|module| {
                let (fan_in, fan_out) = match module.as_str() {
                    "q_proj" => (h, q_dim),
                    "k_proj" | "v_proj" => (h, kv),
                    "o_proj" => (q_dim, h),
                    "gate_proj" | "up_proj" => (h, i),
                    "down_proj" => (i, h),
                    _ => (h, h.max(i)),
                };
                rank * (fan_in + fan_out)
            })
            .sum::<f64>()
            * layers;
        // Parameters, gradients, AdamW's first and second moments.
        let adapter_state = lora_params * 4.0 * 4.0;

        let query_len = settings.query_max_len as f64;
        let passage_len = settings.passage_max_len as f64;
        let group = settings.group_size as f64;
        let tokens = query_len + group * passage_len;
        let heads = config.num_attention_heads as f64;
        let per_token = 10.0 * h + 4.0 * kv + 4.0 * i;
        let attention = 3.0 * heads * (query_len * query_len + group * passage_len * passage_len);
        let per_query = (tokens * per_token + attention) * layers * dtype * ACTIVATION_FACTOR;
        let activations = per_query * settings.micro_batch as f64;

        let total = weights + adapter_state + activations + RUNTIME_BYTES as f64;
        MemoryPlan {
            weights: weights as u64,
            adapter_state: adapter_state as u64,
            activations: activations as u64,
            runtime: RUNTIME_BYTES,
            total: total as u64,
            per_query: per_query as u64,
        }
    }

    /// The largest micro-batch whose plan fits in `free` bytes (0: not even one query).
    pub fn largest_micro_batch(&self, free: u64) -> u64 {
        let fixed = self.weights + self.adapter_state + self.runtime;
        free.saturating_sub(fixed) / self.per_query.max(1)
    }

    /// Why the plan does not fit in `memory`, with what to change; `None` when it fits.
    pub fn misfit(&self, memory: &DeviceMemory, settings: &TrainSettings) -> Option<String> {
        if self.total <= memory.free {
            return None;
        }
        let mut advice = match self.largest_micro_batch(memory.free) {
            0 => format!(
                "even --micro-batch 1 needs {}: use shorter --passage-max-len / \
                 --query-max-len, a smaller --group-size, --dtype bf16 on a GPU, or a device \
                 with more memory",
                gib(self.total - self.activations + self.per_query)
            ),
            fits => format!(
                "--micro-batch {fits} fits (gradients still accumulate up to --batch {})",
                settings.batch_size
            ),
        };
        advice.push_str("; --no-memory-check runs anyway");
        Some(format!(
            "needs about {} ({} weights, {} LoRA state, {} activations of a micro-batch of {} \
             queries x {} passages at lengths {}/{}), but the device has {} free of {}: {advice}",
            gib(self.total),
            gib(self.weights),
            gib(self.adapter_state),
            gib(self.activations),
            settings.micro_batch,
            settings.group_size,
            settings.query_max_len,
            settings.passage_max_len,
            gib(memory.free),
            gib(memory.total),
        ))
    }
}

/// Bytes as GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen05() -> Qwen2Config {
        let json = serde_json::json!({
            "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
            "num_key_value_heads": 2, "max_position_embeddings": 32768,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true
        });
        Qwen2Config::from_hf_json(&json.to_string(), std::path::Path::new("config.json"))
            .expect("config")
    }

    #[test]
    fn half_precision_halves_weights_and_activations() {
        let settings = TrainSettings::default();
        let f32 = MemoryPlan::new(&qwen05(), &settings);
        let bf16 = MemoryPlan::new(
            &qwen05(),
            &TrainSettings {
                precision: Precision::BF16,
                ..settings
            },
        );
        assert_eq!(bf16.weights * 2, f32.weights);
        assert_eq!(bf16.adapter_state, f32.adapter_state);
        assert!(bf16.activations * 2 - f32.activations <= 2);
    }

    #[test]
    fn the_advice_names_a_micro_batch_that_fits() {
        let settings = TrainSettings {
            micro_batch: 8,
            ..TrainSettings::default()
        };
        let plan = MemoryPlan::new(&qwen05(), &settings);
        let free = plan.total - plan.per_query * 5;
        let memory = DeviceMemory { free, total: free };
        let message = plan.misfit(&memory, &settings).expect("does not fit");
        assert!(message.contains("--micro-batch 3 fits"), "{message}");
        let fits = MemoryPlan::new(
            &qwen05(),
            &TrainSettings {
                micro_batch: 3,
                ..settings.clone()
            },
        );
        assert!(fits.misfit(&memory, &settings).is_none());
        let tiny = DeviceMemory {
            free: plan.weights,
            total: plan.weights,
        };
        assert!(plan
            .misfit(&tiny, &settings)
            .unwrap()
            .contains("even --micro-batch 1"));
    }
}
