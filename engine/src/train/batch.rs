//! A micro-batch's texts as the token ids the contrastive loss takes: queries and passages
//! through the supervised prompts, at the lengths the device compiles its kernels for.

use quarry_encoder::contrastive::ContrastiveBatch;
use quarry_encoder::prompt::{PromptBuilder, PromptTemplate, TextKind};
use quarry_encoder::tokenizer::TextTokenizer;
use quarry_encoder::ComputeDevice;

use super::sampling::SampledGroup;
use super::TrainJob;
use crate::error::Result;
use crate::train_data::TrainPassage;

/// The prompts of both sides and the shapes a micro-batch is padded to.
pub(super) struct Prompts {
    query: PromptBuilder,
    passage: PromptBuilder,
    group_size: usize,
    /// Fixed lengths to pad to, or `None` for the encoder's bucketed lengths.
    query_length: Option<usize>,
    passage_length: Option<usize>,
}

impl Prompts {
    pub fn new(
        template: PromptTemplate,
        tokenizer: TextTokenizer,
        job: &TrainJob,
    ) -> Result<Prompts> {
        let settings = &job.settings;
        let query = PromptBuilder::new(
            template.clone(),
            tokenizer.clone(),
            settings.query_max_len,
            None,
        )?;
        let passage = PromptBuilder::new(template, tokenizer, settings.passage_max_len, None)?;
        // On a GPU every new sequence length costs kernel compilation and autotuning (tens of
        // seconds for a forward and backward pass), far more than the padding to the maximum
        // lengths; the CPU has no such cost and keeps the bucketed lengths.
        let fixed_shapes = !matches!(job.device, ComputeDevice::Cpu);
        Ok(Prompts {
            query,
            passage,
            group_size: settings.group_size,
            query_length: fixed_shapes.then_some(settings.query_max_len),
            passage_length: fixed_shapes.then_some(settings.passage_max_len),
        })
    }

    /// The token ids of a micro-batch: its queries, then each query's passages in order.
    pub fn contrastive_batch(&self, chunk: &[SampledGroup<'_>]) -> Result<ContrastiveBatch> {
        let queries: Vec<&str> = chunk.iter().map(|s| s.group.query.as_str()).collect();
        let passages: Vec<&TrainPassage> = chunk
            .iter()
            .flat_map(|s| s.passages.iter().copied())
            .collect();
        let titles: Vec<&str> = passages.iter().map(|p| p.title.as_str()).collect();
        let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
        let ids = |builder: &PromptBuilder, kind, titles, texts: &[&str]| -> Result<_> {
            Ok(builder
                .build_batch(kind, titles, texts)?
                .into_iter()
                .map(|input| input.ids)
                .collect())
        };
        Ok(ContrastiveBatch {
            queries: ids(&self.query, TextKind::Query, None, &queries)?,
            passages: ids(&self.passage, TextKind::Passage, Some(&titles), &texts)?,
            group_size: self.group_size,
            query_length: self.query_length,
            passage_length: self.passage_length,
        })
    }
}
