//! Encoder preparation: what encodes the texts ([`EncoderSpec`], everything
//! but the data) turned into a [`PreparedEncoder`] whose identity (the
//! fingerprint the index records) is known before any weight is loaded.

use std::path::{Path, PathBuf};

use quarry_encoder::fingerprint::{
    encoder_fingerprint, fingerprint_description, FingerprintInputs,
};
use quarry_encoder::lora::{LoraAdapter, LoraMergedSource};
use quarry_encoder::prompt::{detect_family, PoolAt, PromptBuilder, PromptTemplate, TextKind};
use quarry_encoder::weights::{open_weights, Weights};
use quarry_encoder::{ComputeDevice, EmbeddingModel, EncodeOptions, ModelConfig, Precision};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::hub::HubModel;

/// Default upper bound on batch size × padded length on the CPU.
pub const CPU_BATCH_TOKENS: usize = 4096;

/// Which prompts and pooling to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildMode {
    /// sentence-embedding for BERT-family models, zero-shot for decoders.
    Auto,
    ZeroShot,
    Supervised,
    SentenceEmbedding,
}

impl BuildMode {
    pub fn template_mode(self, family: &str) -> &'static str {
        match self {
            BuildMode::Auto if family == "bert" => "sentence-embedding",
            BuildMode::Auto | BuildMode::ZeroShot => "zero-shot",
            BuildMode::Supervised => "supervised",
            BuildMode::SentenceEmbedding => "sentence-embedding",
        }
    }
}

/// What encodes the texts: everything but the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// A GGUF file or an HF model folder (for a hub model, its snapshot folder).
    pub model: PathBuf,
    pub mode: BuildMode,
    pub precision: Precision,
    pub device: ComputeDevice,
    /// Maximum sequence length in tokens (prompt included); `None`: the model's
    /// sentence-transformers `max_seq_length`, else 512, capped by its positions.
    pub max_length: Option<usize>,
    /// Upper bound on batch size × padded length; `None`: the encoder's default.
    pub batch_tokens: Option<usize>,
    /// A LoRA adapter folder (PEFT format) merged into the weights at load time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<PathBuf>,
    /// The hub repo and commit `model` (then its snapshot folder in the
    /// Hugging Face cache) was resolved from; `None` for a local model and in
    /// records written before models could come from the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubModel>,
    /// Text put right before each query (E5's `query: `, BGE's or Qwen3-Embedding's
    /// instruction); part of the prompts, so of the fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_instruction: Option<String>,
    /// Text put right before each document (E5's `passage: `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_instruction: Option<String>,
}

impl EncoderSpec {
    /// The `query` and `passage` (else `document`, else `corpus`) prompts of a
    /// sentence-transformers model's `config_sentence_transformers.json`, as the
    /// instructions it was trained with; `None` where the model names none.
    pub fn sentence_transformers_prompts(model: &Path) -> Result<(Option<String>, Option<String>)> {
        let file = model.join("config_sentence_transformers.json");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, None)),
            Err(e) => return Err(EngineError::io(&file, e)),
        };
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| EngineError::DataCorruption {
                file: file.clone(),
                detail: format!("not JSON: {e}"),
            })?;
        let prompt = |names: &[&str]| {
            names.iter().find_map(|name| {
                config["prompts"][name]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
            })
        };
        Ok((
            prompt(&["query"]),
            prompt(&["passage", "document", "corpus"]),
        ))
    }
}

/// Name of the compute dtype as the fingerprint spells it.
pub fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 => "f32",
        Precision::BF16 => "bf16",
        Precision::F16 => "f16",
    }
}

/// An encoder whose identity is known but whose weights are not loaded yet:
/// opening weights (mmap), tokenizer and template and hashing the weight
/// files (cached in sidecars) is cheap; the forward pass needs [`Self::load`].
pub struct PreparedEncoder {
    pub spec: EncoderSpec,
    weights: Weights,
    adapter: Option<LoraAdapter>,
    config: ModelConfig,
    pub builder: PromptBuilder,
    pub options: EncodeOptions,
    pub family: String,
    pub template_mode: String,
    pub fingerprint: String,
    pub fingerprint_description: String,
    pub dim: usize,
}

impl PreparedEncoder {
    pub fn prepare(spec: &EncoderSpec) -> Result<PreparedEncoder> {
        let weights = open_weights(&spec.model)?;
        let config_json = weights.config_json()?;
        let config = ModelConfig::from_hf_json(&config_json.to_string(), &spec.model)?;
        let chat_template = weights.chat_template()?;
        let family = detect_family(&config_json, chat_template.as_deref()).ok_or_else(|| {
            EngineError::Build {
                path: spec.model.clone(),
                detail: "its chat template is of a format quarry has no prompt template for".into(),
            }
        })?;
        let template_mode = spec.mode.template_mode(family);
        let template = PromptTemplate::load(family, template_mode)?.with_instructions(
            spec.query_instruction.as_deref(),
            spec.doc_instruction.as_deref(),
        );
        let positions = config_json
            .get("max_position_embeddings")
            .and_then(|v| v.as_u64())
            .unwrap_or(512) as usize;
        let st_max = if spec.model.is_dir() {
            std::fs::read_to_string(spec.model.join("sentence_bert_config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
                .map(|m| m as usize)
        } else {
            None
        };
        let max_length = spec.max_length.or(st_max).unwrap_or(512).min(positions);
        let tokenizer = weights.tokenizer()?;
        let builder = PromptBuilder::new(template, tokenizer, max_length, None)?;
        let dim = config_json
            .get("hidden_size")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| EngineError::Build {
                path: spec.model.clone(),
                detail: "the model configuration has no hidden_size".into(),
            })? as usize;
        let mut options = EncodeOptions::last_token();
        options.pooling = builder.template().pooling();
        options.normalize = builder.normalize();
        options.precision = spec.precision;
        options.batch.max_batch_tokens = match (spec.batch_tokens, spec.device) {
            (Some(tokens), _) => tokens.max(1),
            // Smaller batches run faster on the CPU backend (less memory traffic and
            // page faulting): MiniLM on 300 nfcorpus docs, 2 cores: 87.6 s at 16,384
            // tokens per batch, 75.4 s at 4,096. The GPU keeps the encoder's default.
            (None, ComputeDevice::Cpu) => CPU_BATCH_TOKENS,
            (None, ComputeDevice::Cuda(_)) => options.batch.max_batch_tokens,
        };
        let adapter = match &spec.lora {
            Some(dir) => Some(LoraAdapter::load(dir)?),
            None => None,
        };
        let inputs = FingerprintInputs {
            model_files: weights.model_files(),
            adapter_files: spec
                .lora
                .as_deref()
                .map(LoraAdapter::files)
                .unwrap_or_default(),
            tokenizer: builder.tokenizer(),
            template: builder.template(),
            normalize: builder.normalize(),
            max_length,
            dtype: precision_name(spec.precision),
            hub_commit: spec.hub.as_ref().map(|hub| hub.commit.as_str()),
        };
        let fingerprint = encoder_fingerprint(&inputs)?.0;
        let fingerprint_description = fingerprint_description(&inputs)?;
        Ok(PreparedEncoder {
            spec: spec.clone(),
            weights,
            adapter,
            config,
            builder,
            options,
            family: family.to_string(),
            template_mode: template_mode.to_string(),
            fingerprint,
            fingerprint_description,
            dim,
        })
    }

    /// The architecture and hyper-parameters read from the model files.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Loads the weights onto the device (the expensive part).
    pub fn load(&self) -> Result<EmbeddingModel> {
        self.load_on(self.spec.device)
    }

    /// Loads the weights onto another device than the spec's (multi-GPU builds).
    pub fn load_on(&self, device: ComputeDevice) -> Result<EmbeddingModel> {
        let base = self.weights.as_source();
        let merged;
        let source: &dyn quarry_encoder::TensorSource = match &self.adapter {
            Some(adapter) => {
                merged = LoraMergedSource::new(base, adapter)?;
                &merged
            }
            None => base,
        };
        Ok(EmbeddingModel::load(
            &self.config,
            source,
            self.options,
            device,
        )?)
    }

    /// Token ids of queries, prompt applied (for callers that encode queries
    /// themselves, e.g. the `quarry search` shell holding a loaded model).
    pub fn query_inputs(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.inputs(TextKind::Query, None, texts)
    }

    /// Token ids for texts of one kind; the template's pooling position
    /// always agrees with the encoder's pooling (last / first token / mean).
    pub(crate) fn inputs(
        &self,
        kind: TextKind,
        titles: Option<&[&str]>,
        texts: &[&str],
    ) -> Result<Vec<Vec<u32>>> {
        let built = self.builder.build_batch(kind, titles, texts)?;
        Ok(built
            .into_iter()
            .map(|input| {
                debug_assert!(matches!(input.pool, PoolAt::Mean | PoolAt::Token(_)));
                input.ids
            })
            .collect())
    }
}

/// Default index name: the model's file or folder name (a hub model's repo
/// name), lowercased, plus the mode when it is not the model's natural one
/// (sentence-embedding for BERT).
pub fn default_index_name(spec: &EncoderSpec, template_mode: &str) -> String {
    let model = &spec.model;
    let stem = match &spec.hub {
        Some(hub) => Some(hub.name().to_ascii_lowercase()),
        None => if model.is_dir() {
            model.file_name()
        } else {
            model.file_stem()
        }
        .map(|s| s.to_string_lossy().to_ascii_lowercase()),
    }
    .unwrap_or_else(|| "model".into());
    if template_mode == "sentence-embedding" {
        stem
    } else {
        format!("{stem}-{template_mode}")
    }
}
