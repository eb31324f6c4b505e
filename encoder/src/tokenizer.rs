//! Text -> token ids, exactly as transformers' fast tokenizers do it.
//!
//! Two sources: an HF model folder's `tokenizer.json` (BERT WordPiece, Qwen2 byte-level BPE,
//! whatever HF serialised) and the tokenizer embedded in a GGUF file's metadata
//! (`tokenizer.ggml.*`, read by [`TextTokenizer::from_gguf`] in `weights::gguf`, which knows
//! the format). For GGUF we rebuild the same `tokenizers` pipeline transformers builds
//! when it converts a GGUF (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`): byte-level BPE
//! over `tokenizer.ggml.tokens`/`merges`, the Qwen2 split regex, no normaliser, no BOS, and every
//! CONTROL token (special) and USER_DEFINED token (not special) registered as an added token so
//! `<|im_start|>` in a prompt maps to its id. `tests/weights_tokenizer.rs` compares ids with
//! transformers on real text. The prompt builder (`prompt.rs`) sits on top of this.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::EncoderError;

/// A tokenizer plus the special-token ids the prompts need.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    source: PathBuf,
    eos_token_id: Option<u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("eos_token_id", &self.eos_token_id)
            .finish()
    }
}

pub(crate) fn tokenizer_error(file: &Path, detail: impl std::fmt::Display) -> EncoderError {
    EncoderError::Tokenizer {
        file: file.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn read_json(path: &Path) -> Result<Option<Value>, EncoderError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| EncoderError::DataCorruption {
                    file: path.to_path_buf(),
                    detail: format!("invalid JSON: {e}"),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(EncoderError::Io {
            path: path.to_path_buf(),
            error,
        }),
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from an HF model folder. The EOS token comes from
    /// `tokenizer_config.json` (`eos_token`), else `config.json` (`eos_token_id`).
    pub fn from_hf_dir(folder: &Path) -> Result<TextTokenizer, EncoderError> {
        let mut tokenizer = Self::from_tokenizer_json(&folder.join("tokenizer.json"))?;
        let eos_from_tokenizer_config = read_json(&folder.join("tokenizer_config.json"))?
            .and_then(|config| match config.get("eos_token")? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            })
            .and_then(|token| tokenizer.token_id(&token));
        let eos_from_model_config = || -> Result<Option<u32>, EncoderError> {
            Ok(read_json(&folder.join("config.json"))?.and_then(|config| {
                let id = config.get("eos_token_id")?;
                // Some configs list several end tokens; the first is the tokenizer's EOS.
                let id = id.as_array().and_then(|ids| ids.first()).unwrap_or(id);
                id.as_u64().and_then(|v| u32::try_from(v).ok())
            }))
        };
        tokenizer.eos_token_id = match eos_from_tokenizer_config {
            Some(id) => Some(id),
            None => eos_from_model_config()?,
        };
        Ok(tokenizer)
    }

    /// Loads a `tokenizer.json` file. Its own truncation and padding settings are dropped:
    /// truncation is the prompt builder's job (it must cut the text, never the prompt).
    pub fn from_tokenizer_json(path: &Path) -> Result<TextTokenizer, EncoderError> {
        let bytes = std::fs::read(path).map_err(|error| EncoderError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| tokenizer_error(path, e))?;
        Self::from_parts(inner, path)
    }

    /// A tokenizer built elsewhere (e.g. from GGUF metadata, `weights::gguf`), without EOS.
    pub(crate) fn from_parts(
        mut inner: tokenizers::Tokenizer,
        source: &Path,
    ) -> Result<TextTokenizer, EncoderError> {
        inner
            .with_truncation(None)
            .map_err(|e| tokenizer_error(source, e))?
            .with_padding(None);
        Ok(TextTokenizer {
            inner,
            source: source.to_path_buf(),
            eos_token_id: None,
        })
    }

    /// The same tokenizer with `id` as its end-of-sequence token.
    pub(crate) fn with_eos_token_id(mut self, id: Option<u32>) -> Self {
        self.eos_token_id = id;
        self
    }

    /// Token ids of `text`. Added/special tokens written in the text (`<|im_start|>`) map to
    /// their ids. `add_special_tokens` runs the post-processor (BERT's `[CLS] … [SEP]`; nothing
    /// for Qwen2), like transformers' `encode(text, add_special_tokens=...)`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EncoderError> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|e| tokenizer_error(&self.source, e))
    }

    /// Ids of many texts at once (parallel inside `tokenizers`).
    pub fn encode_batch(
        &self,
        texts: &[&str],
        add_special_tokens: bool,
    ) -> Result<Vec<Vec<u32>>, EncoderError> {
        self.inner
            .encode_batch_fast(texts.to_vec(), add_special_tokens)
            .map(|encodings| encodings.iter().map(|e| e.get_ids().to_vec()).collect())
            .map_err(|e| tokenizer_error(&self.source, e))
    }

    /// Text of a sequence of ids (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String, EncoderError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| tokenizer_error(&self.source, e))
    }

    /// The id of a token string (vocabulary or added token).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The end-of-sequence id the model was trained with (`<|im_end|>` for Qwen instruct GGUFs).
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Where the tokenizer came from (tokenizer.json or the GGUF file).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A canonical serialisation of the whole pipeline (for the encoder fingerprint).
    pub fn canonical_json(&self) -> Result<String, EncoderError> {
        self.inner
            .to_string(false)
            .map_err(|e| tokenizer_error(&self.source, e))
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
