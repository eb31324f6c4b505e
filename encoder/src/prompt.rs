//! Prompts and pooling, as data: turns a query or passage into the token ids the model reads
//! and says which hidden state(s) become the embedding.
//!
//! The templates live in `encoder/templates.toml` (embedded at compile time): one entry per
//! model family (how a user turn and the assistant's opening look) and one per mode
//! (zero-shot PromptReps prompts, supervised RepLLaMA prefixes + EOS, sentence-transformers
//! mean pooling). Sits between the tokenizer (`tokenizer.rs`) and the model's `embed`.
//!
//! Truncation cuts the text only, never the prompt around it: the whole prompt is tokenised
//! once (so token boundaries are those transformers sees for the full string), tokens are
//! classified by their byte offsets as prompt-before-text, text or prompt-after-text, and when
//! the sequence is too long the text tokens are cut and the prompt's tail is appended as
//! tokenised on its own.

use std::collections::BTreeMap;

use serde::Deserialize;
use tokenizers::{Encoding, TruncationDirection};

use crate::tokenizer::TextTokenizer;
use crate::EncoderError;

/// The template data shipped with quarry.
pub const TEMPLATES_TOML: &str = include_str!("../templates.toml");

/// Whether a text is a query or a corpus passage (they get different prompts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Query,
    Passage,
}

/// Which hidden states become the embedding: the encoder's own [`Pooling`], named in the
/// template data as `last`, `mean` or `cls`.
pub use crate::encode::Pooling;

/// Where to pool in one built sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAt {
    /// The hidden state at this position.
    Token(usize),
    /// The mean of the hidden states at all positions.
    Mean,
}

/// One sequence ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInput {
    pub ids: Vec<u32>,
    pub pool: PoolAt,
    /// Whether text tokens were cut to fit the maximum length.
    pub truncated: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilySpec {
    #[allow(dead_code)]
    description: String,
    chat: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeSpec {
    #[allow(dead_code)]
    description: String,
    chat: bool,
    query: String,
    passage: String,
    assistant: String,
    pooling: Pooling,
    append_eos: bool,
    post_processor: bool,
    normalize: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    family: BTreeMap<String, FamilySpec>,
    mode: BTreeMap<String, ModeSpec>,
}

/// A prompt for one kind of text, split around the `{text}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SplitPrompt {
    /// Everything before `{text}`, with `{title}` still to fill.
    before: String,
    after: String,
}

/// The resolved template of one family + mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    family: String,
    mode: String,
    query: SplitPrompt,
    passage: SplitPrompt,
    pooling: Pooling,
    append_eos: bool,
    post_processor: bool,
    default_normalize: bool,
}

fn template_error(template: &str, detail: impl Into<String>) -> EncoderError {
    EncoderError::Template {
        template: template.to_string(),
        detail: detail.into(),
    }
}

/// The entry `key` of a template table, or the error of template `name` listing the known ones.
fn known<'a, T>(
    table: &'a BTreeMap<String, T>,
    key: &str,
    what: &str,
    name: &str,
) -> Result<&'a T, EncoderError> {
    table.get(key).ok_or_else(|| {
        template_error(
            name,
            format!(
                "unknown {what} (known: {:?})",
                table.keys().collect::<Vec<_>>()
            ),
        )
    })
}

impl PromptTemplate {
    /// Names of the families and modes in the shipped template data.
    pub fn available() -> (Vec<String>, Vec<String>) {
        let file: TemplateFile =
            toml::from_str(TEMPLATES_TOML).expect("embedded templates.toml parses (unit-tested)");
        (
            file.family.into_keys().collect(),
            file.mode.into_keys().collect(),
        )
    }

    /// The template for `family` (qwen, qwen-math, deepseek-r1-distill, base, bert) and `mode`
    /// (zero-shot, supervised, sentence-embedding) from the shipped data.
    pub fn load(family: &str, mode: &str) -> Result<PromptTemplate, EncoderError> {
        Self::from_toml(TEMPLATES_TOML, family, mode)
    }

    /// As [`PromptTemplate::load`], from other template data.
    pub fn from_toml(
        toml_text: &str,
        family: &str,
        mode: &str,
    ) -> Result<PromptTemplate, EncoderError> {
        let name = format!("{family}/{mode}");
        let file: TemplateFile = toml::from_str(toml_text)
            .map_err(|e| template_error(&name, format!("template data: {e}")))?;
        let family_spec = known(&file.family, family, "model family", &name)?;
        let mode_spec = known(&file.mode, mode, "mode", &name)?;
        let compose = |user: &str| -> Result<SplitPrompt, EncoderError> {
            let full = if mode_spec.chat {
                if family_spec.chat.matches("{user}").count() != 1
                    || family_spec.chat.matches("{assistant}").count() != 1
                {
                    return Err(template_error(
                        &name,
                        "family chat needs one {user} and one {assistant}",
                    ));
                }
                family_spec.chat.replacen("{user}", user, 1).replacen(
                    "{assistant}",
                    &mode_spec.assistant,
                    1,
                )
            } else {
                format!("{user}{}", mode_spec.assistant)
            };
            let (before, after) = full
                .split_once("{text}")
                .ok_or_else(|| template_error(&name, "prompt has no {text}"))?;
            if after.contains("{text}") || after.contains("{title}") {
                return Err(template_error(
                    &name,
                    "{text} must appear once, after any {title}",
                ));
            }
            Ok(SplitPrompt {
                before: before.to_string(),
                after: after.to_string(),
            })
        };
        Ok(PromptTemplate {
            family: family.to_string(),
            mode: mode.to_string(),
            query: compose(&mode_spec.query)?,
            passage: compose(&mode_spec.passage)?,
            pooling: mode_spec.pooling,
            append_eos: mode_spec.append_eos,
            post_processor: mode_spec.post_processor,
            default_normalize: mode_spec.normalize,
        })
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The template with a user's instruction put right before each text (and its title):
    /// `query: ` / `passage: ` for E5, BGE's query instruction, Qwen3-Embedding's
    /// `Instruct: ...\nQuery: `. Being part of the prompts, they are part of the encoder
    /// fingerprint.
    pub fn with_instructions(
        mut self,
        query: Option<&str>,
        passage: Option<&str>,
    ) -> PromptTemplate {
        fn prepend(prompt: &mut SplitPrompt, instruction: Option<&str>) {
            let Some(instruction) = instruction.filter(|i| !i.is_empty()) else {
                return;
            };
            prompt.before = if prompt.before.contains("{title}") {
                prompt
                    .before
                    .replacen("{title}", &format!("{instruction}{{title}}"), 1)
            } else {
                format!("{}{instruction}", prompt.before)
            };
        }
        prepend(&mut self.query, query);
        prepend(&mut self.passage, passage);
        self
    }

    /// Whether this mode L2-normalises embeddings unless told otherwise.
    pub fn default_normalize(&self) -> bool {
        self.default_normalize
    }

    /// Everything that defines the prompts, as text (for the encoder fingerprint).
    pub fn canonical_text(&self) -> String {
        format!(
            "family={}\nmode={}\nquery.before={:?}\nquery.after={:?}\npassage.before={:?}\npassage.after={:?}\npooling={}\nappend_eos={}\npost_processor={}\n",
            self.family,
            self.mode,
            self.query.before,
            self.query.after,
            self.passage.before,
            self.passage.after,
            self.pooling.fingerprint_name(),
            self.append_eos,
            self.post_processor
        )
    }

    /// The prompt text around `text` (for inspection and tests).
    pub fn render(&self, kind: TextKind, title: Option<&str>, text: &str) -> String {
        let (before, after) = self.parts(kind, title);
        format!("{before}{text}{after}")
    }

    fn parts(&self, kind: TextKind, title: Option<&str>) -> (String, &str) {
        let prompt = match kind {
            TextKind::Query => &self.query,
            TextKind::Passage => &self.passage,
        };
        let title = match title.map(str::trim) {
            Some(t) if !t.is_empty() => format!("{t} "),
            _ => String::new(),
        };
        (prompt.before.replace("{title}", &title), &prompt.after)
    }
}

/// The system turn Qwen2.5-Math's chat template (base and instruct) adds when the conversation
/// has none, as it appears in the Jinja source (`\\boxed` there renders as `\boxed`).
const QWEN_MATH_DEFAULT_SYSTEM: &str =
    "Please reason step by step, and put your final answer within";

/// The template family that fits a model, from its HF-style config (`model_type`) and chat
/// template: BERT models -> `bert`; ChatML (`<|im_start|>`) whose default system turn is
/// Qwen2.5-Math's chain-of-thought instruction -> `qwen-math`; other ChatML -> `qwen`;
/// DeepSeek's `<｜User｜>` turns -> `deepseek-r1-distill`; no chat template -> `base`. None
/// when the chat template is of a format quarry has no template for.
pub fn detect_family(
    config: &serde_json::Value,
    chat_template: Option<&str>,
) -> Option<&'static str> {
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if model_type == "bert" {
        return Some("bert");
    }
    match chat_template {
        None => Some("base"),
        Some(t) if t.contains("<|im_start|>") && t.contains(QWEN_MATH_DEFAULT_SYSTEM) => {
            Some("qwen-math")
        }
        Some(t) if t.contains("<|im_start|>") => Some("qwen"),
        Some(t) if t.contains("<｜User｜>") => Some("deepseek-r1-distill"),
        Some(_) => None,
    }
}

/// Builds model inputs: template + tokenizer + maximum length.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    template: PromptTemplate,
    tokenizer: TextTokenizer,
    max_length: usize,
    normalize: bool,
    eos_token_id: Option<u32>,
    /// Tokens the post-processor adds ([CLS], [SEP]), when the mode uses it.
    post_processor_tokens: usize,
}

impl PromptBuilder {
    /// `max_length` counts every token of the sequence (prompt, text, EOS, [CLS]/[SEP]).
    /// `normalize: None` takes the mode's default.
    pub fn new(
        template: PromptTemplate,
        tokenizer: TextTokenizer,
        max_length: usize,
        normalize: Option<bool>,
    ) -> Result<PromptBuilder, EncoderError> {
        let name = format!("{}/{}", template.family, template.mode);
        let eos_token_id = if template.append_eos {
            Some(tokenizer.eos_token_id().ok_or_else(|| {
                template_error(
                    &name,
                    format!(
                        "appends EOS but {} has no EOS token",
                        tokenizer.source().display()
                    ),
                )
            })?)
        } else {
            None
        };
        let post_processor_tokens = match (
            template.post_processor,
            tokenizer.inner().get_post_processor(),
        ) {
            (true, Some(processor)) => tokenizers::PostProcessor::added_tokens(processor, false),
            _ => 0,
        };
        let builder = PromptBuilder {
            normalize: normalize.unwrap_or(template.default_normalize),
            template,
            tokenizer,
            max_length,
            eos_token_id,
            post_processor_tokens,
        };
        // The prompt alone (empty text) must leave room for at least one text token.
        for kind in [TextKind::Query, TextKind::Passage] {
            let (before, after) = builder.template.parts(kind, None);
            let fixed = builder.tokenizer.encode(&before, false)?.len()
                + builder.tokenizer.encode(after, false)?.len()
                + builder.fixed_extra_tokens();
            if fixed >= max_length {
                return Err(template_error(
                    &name,
                    format!("the prompt takes {fixed} tokens: max length {max_length} leaves no room for text"),
                ));
            }
        }
        Ok(builder)
    }

    fn fixed_extra_tokens(&self) -> usize {
        self.post_processor_tokens + usize::from(self.eos_token_id.is_some())
    }

    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Whether embeddings are L2-normalised.
    pub fn normalize(&self) -> bool {
        self.normalize
    }

    /// Token ids and pooling position for one text. `title` is used by passage prompts that
    /// have a `{title}` (ignored otherwise).
    pub fn build(
        &self,
        kind: TextKind,
        title: Option<&str>,
        text: &str,
    ) -> Result<ModelInput, EncoderError> {
        let (before, after) = self.template.parts(kind, title);
        let full = format!("{before}{text}{after}");
        let tokenize_error = |e: tokenizers::Error| EncoderError::Tokenizer {
            file: self.tokenizer.source().to_path_buf(),
            detail: e.to_string(),
        };
        let inner = self.tokenizer.inner();
        let mut encoding: Encoding = inner.encode(full.as_str(), false).map_err(tokenize_error)?;
        let budget = self.max_length - self.fixed_extra_tokens();
        let mut truncated = false;
        if encoding.len() > budget {
            // Keep every token that starts before the text ends (prompt head + text), cut the text
            // tokens, then append the prompt's tail tokenised on its own.
            let text_end = before.len() + text.len();
            let head_len = encoding
                .get_offsets()
                .iter()
                .position(|&(start, _)| start >= text_end)
                .unwrap_or(encoding.len());
            let tail = inner.encode(after, false).map_err(tokenize_error)?;
            let before_len = encoding
                .get_offsets()
                .iter()
                .position(|&(_, end)| end > before.len())
                .unwrap_or(head_len)
                .min(head_len);
            let keep = budget
                .saturating_sub(tail.len())
                .max(before_len)
                .min(head_len);
            truncated = keep < head_len;
            encoding.truncate(keep, 0, TruncationDirection::Right);
            // Drop the cut-off part: merge_with would otherwise combine overflow pieces.
            drop(encoding.take_overflowing());
            encoding.merge_with(tail, false);
            if encoding.len() > budget {
                return Err(template_error(
                    &format!("{}/{}", self.template.family, self.template.mode),
                    format!(
                        "the prompt alone takes {} tokens, over max length {}",
                        encoding.len(),
                        self.max_length
                    ),
                ));
            }
        }
        if self.template.post_processor {
            encoding = inner
                .post_process(encoding, None, true)
                .map_err(tokenize_error)?;
        }
        let mut ids = encoding.get_ids().to_vec();
        if let Some(eos) = self.eos_token_id {
            ids.push(eos);
        }
        if ids.is_empty() {
            return Err(template_error(
                &format!("{}/{}", self.template.family, self.template.mode),
                "empty token sequence",
            ));
        }
        let pool = match self.template.pooling {
            Pooling::LastToken => PoolAt::Token(ids.len() - 1),
            Pooling::Mean => PoolAt::Mean,
            Pooling::Cls => PoolAt::Token(0),
        };
        Ok(ModelInput {
            ids,
            pool,
            truncated,
        })
    }
}

impl PromptBuilder {
    /// [`PromptBuilder::build`] for many texts of one kind, in parallel; `titles`, when given,
    /// pairs with `texts` one to one.
    pub fn build_batch(
        &self,
        kind: TextKind,
        titles: Option<&[&str]>,
        texts: &[&str],
    ) -> Result<Vec<ModelInput>, EncoderError> {
        use rayon::prelude::*;
        if let Some(titles) = titles {
            if titles.len() != texts.len() {
                return Err(template_error(
                    &format!("{}/{}", self.template.family, self.template.mode),
                    format!("{} titles for {} texts", titles.len(), texts.len()),
                ));
            }
        }
        texts
            .par_iter()
            .enumerate()
            .map(|(i, text)| self.build(kind, titles.map(|t| t[i]), text))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_parse_for_every_family_and_mode() {
        let (families, modes) = PromptTemplate::available();
        assert_eq!(
            families,
            ["base", "bert", "deepseek-r1-distill", "qwen", "qwen-math"]
        );
        assert_eq!(modes, ["sentence-embedding", "supervised", "zero-shot"]);
        for family in &families {
            for mode in &modes {
                PromptTemplate::load(family, mode).unwrap();
            }
        }
    }

    #[test]
    fn qwen_zero_shot_passage_prompt_text() {
        let template = PromptTemplate::load("qwen", "zero-shot").unwrap();
        assert_eq!(
            template.render(TextKind::Passage, None, "Rust is fast."),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nPassage: \"Rust is fast.\". Use one word to represent the passage in a retrieval task. \
             Make sure your word is in lowercase.<|im_end|>\n<|im_start|>assistant\nThe word is: \""
        );
        assert_eq!(
            template.render(TextKind::Query, None, "why"),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nQuery: \"why\". Use one word to represent the query in a retrieval task. \
             Make sure your word is in lowercase.<|im_end|>\n<|im_start|>assistant\nThe word is: \""
        );
    }

    #[test]
    fn instructions_go_right_before_the_text_and_change_the_fingerprint() {
        let plain = PromptTemplate::load("bert", "sentence-embedding").unwrap();
        let e5 = plain
            .clone()
            .with_instructions(Some("query: "), Some("passage: "));
        assert_eq!(e5.render(TextKind::Query, None, "why"), "query: why");
        assert_eq!(
            e5.render(TextKind::Passage, Some("T"), "body"),
            format!(
                "passage: {}",
                plain.render(TextKind::Passage, Some("T"), "body")
            )
        );
        assert_ne!(e5.canonical_text(), plain.canonical_text());
        let unchanged = plain.clone().with_instructions(None, Some(""));
        assert_eq!(unchanged.canonical_text(), plain.canonical_text());
    }

    #[test]
    fn deepseek_and_base_zero_shot_prompt_text() {
        // DeepSeek-R1-Distill's chat template: {{bos_token}}, '<｜User｜>' + content, and for
        // add_generation_prompt '<｜Assistant｜><think>\n'.
        let template = PromptTemplate::load("deepseek-r1-distill", "zero-shot").unwrap();
        assert_eq!(
            template.render(TextKind::Query, None, "x"),
            "<｜begin▁of▁sentence｜><｜User｜>Query: \"x\". Use one word to represent the query in a retrieval task. \
             Make sure your word is in lowercase.<｜Assistant｜><think>\nThe word is: \""
        );
        let template = PromptTemplate::load("base", "zero-shot").unwrap();
        assert_eq!(
            template.render(TextKind::Passage, Some("ignored"), "y"),
            "Passage: \"y\". Use one word to represent the passage in a retrieval task. \
             Make sure your word is in lowercase.\nThe word is: \""
        );
    }

    #[test]
    fn families_are_detected_from_config_and_chat_template() {
        let qwen2 = serde_json::json!({"model_type": "qwen2"});
        assert_eq!(
            detect_family(&serde_json::json!({"model_type": "bert"}), None),
            Some("bert")
        );
        assert_eq!(detect_family(&qwen2, None), Some("base"));
        assert_eq!(
            detect_family(&qwen2, Some("{{'<|im_start|>' + m.role}}")),
            Some("qwen")
        );
        assert_eq!(
            detect_family(&qwen2, Some("{{'<｜User｜>' + c}}")),
            Some("deepseek-r1-distill")
        );
        assert_eq!(detect_family(&qwen2, Some("[INST]")), None);
    }

    /// Distinctive pieces of the chat templates in the published `tokenizer_config.json`s.
    /// Qwen2.5-7B-Instruct: ChatML with the "You are Qwen" default system turn.
    const QWEN2_5_INSTRUCT_TEMPLATE: &str = "{%- if messages[0]['role'] == 'system' %}\
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}\
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful \
        assistant.<|im_end|>\\n' }}{%- endif %}{%- if add_generation_prompt %}\
        {{- '<|im_start|>assistant\\n' }}{%- endif %}";
    /// Qwen2.5-Math-7B-Instruct (and the Qwen2.5-Math base models): the same ChatML, another
    /// default system turn (also in the tools branch, without `<|im_start|>system`).
    const QWEN2_5_MATH_TEMPLATE: &str = "{%- if tools %}{{- '<|im_start|>system\\n' }}\
        {%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}\
        {{- 'Please reason step by step, and put your final answer within \\\\boxed{}.' }}\
        {%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}\
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}\
        {{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within \
        \\\\boxed{}.<|im_end|>\\n' }}{%- endif %}{%- endif %}{%- if add_generation_prompt %}\
        {{- '<|im_start|>assistant\\n' }}{%- endif %}";
    /// DeepSeek-R1-Distill-Qwen-7B/32B: BOS, fullwidth-bar role tokens, `<think>` opener.
    const R1_DISTILL_TEMPLATE: &str = "{% set ns = namespace(is_first=false, is_tool=false, \
        is_output_first=true, system_prompt='') %}{{bos_token}}{{ns.system_prompt}}\
        {%- for message in messages %}{%- if message['role'] == 'user' %}\
        {{'<｜User｜>' + message['content']}}{%- endif %}{%- endfor -%}\
        {% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}\
        {% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";

    #[test]
    fn published_chat_templates_pick_their_family() {
        let qwen2 =
            serde_json::json!({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]});
        assert_eq!(
            detect_family(&qwen2, Some(QWEN2_5_INSTRUCT_TEMPLATE)),
            Some("qwen")
        );
        assert_eq!(
            detect_family(&qwen2, Some(QWEN2_5_MATH_TEMPLATE)),
            Some("qwen-math")
        );
        assert_eq!(
            detect_family(&qwen2, Some(R1_DISTILL_TEMPLATE)),
            Some("deepseek-r1-distill")
        );
        // Qwen2.5-VL-7B-Instruct's template is ChatML too (its default system turn is
        // "You are a helpful assistant."): the `qwen` family.
        let vl = serde_json::json!({"model_type": "qwen2_5_vl"});
        assert_eq!(
            detect_family(
                &vl,
                Some("{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}")
            ),
            Some("qwen")
        );
    }

    #[test]
    fn qwen_math_prompt_is_what_its_chat_template_renders() {
        // apply_chat_template([{"role": "user", "content": U}], add_generation_prompt=True)
        // on Qwen2.5-Math-7B-Instruct renders this; the mode's assistant opener follows.
        let template = PromptTemplate::load("qwen-math", "zero-shot").unwrap();
        assert_eq!(
            template.render(TextKind::Query, None, "1+1"),
            "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n\
             <|im_start|>user\nQuery: \"1+1\". Use one word to represent the query in a retrieval task. \
             Make sure your word is in lowercase.<|im_end|>\n<|im_start|>assistant\nThe word is: \""
        );
    }

    #[test]
    fn supervised_title_is_optional() {
        let template = PromptTemplate::load("base", "supervised").unwrap();
        assert_eq!(
            template.render(TextKind::Passage, Some("T"), "body"),
            "Passage: T body"
        );
        assert_eq!(
            template.render(TextKind::Passage, Some("  "), "body"),
            "Passage: body"
        );
        assert_eq!(
            template.render(TextKind::Passage, None, "body"),
            "Passage: body"
        );
        assert_eq!(template.render(TextKind::Query, Some("T"), "q"), "Query: q");
    }

    #[test]
    fn unknown_names_and_bad_data_are_errors() {
        assert!(matches!(
            PromptTemplate::load("llama", "zero-shot"),
            Err(EncoderError::Template { .. })
        ));
        assert!(matches!(
            PromptTemplate::load("qwen", "few-shot"),
            Err(EncoderError::Template { .. })
        ));
        let no_text = TEMPLATES_TOML.replace("query = \"Query: {text}\"", "query = \"Query:\"");
        assert!(matches!(
            PromptTemplate::from_toml(&no_text, "base", "supervised"),
            Err(EncoderError::Template { .. })
        ));
    }
}
