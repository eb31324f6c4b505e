//! Shard writing: encoded chunks go to the index writer in corpus order
//! (which publishes whole shards atomically), skipping the rows an
//! interrupted build already stored and, for a slice of a sharded build
//! (`--shard I/N`), the rows outside the slice.

use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use quarry_index::dense::{IndexSpec, IndexWriter};

use crate::dataset::Corpus;
use crate::error::{EngineError, Result};

/// The writer of one build and what it has seen.
pub struct ShardSink<'a> {
    writer: IndexWriter,
    corpus: &'a Corpus,
    progress: &'a ProgressBar,
    /// The corpus rows `[start, end)` this index holds (all of them, or a slice).
    rows: (usize, usize),
    /// Rows stored before this run started.
    done: usize,
    started: Instant,
    tokens: usize,
}

impl<'a> ShardSink<'a> {
    /// Opens (or resumes) the index writer at `dir` for the corpus rows
    /// `[start, end)`.
    pub fn open(
        dir: &Path,
        spec: IndexSpec,
        corpus: &'a Corpus,
        rows: (usize, usize),
        progress: &'a ProgressBar,
    ) -> Result<ShardSink<'a>> {
        let writer = IndexWriter::create_or_resume(dir, spec)?;
        let done = writer.rows_done() as usize;
        let total = rows.1 - rows.0;
        if done > total {
            return Err(EngineError::DataCorruption {
                file: dir.to_path_buf(),
                detail: format!("the index holds {done} rows, it should hold {total} documents"),
            });
        }
        progress.set_length(total as u64);
        progress.set_position(done as u64);
        progress.reset_eta();
        Ok(ShardSink {
            writer,
            corpus,
            progress,
            rows,
            done,
            started: Instant::now(),
            tokens: 0,
        })
    }

    /// Rows already stored when the build started.
    pub fn rows_done(&self) -> usize {
        self.done
    }

    /// Tokens encoded by this run so far.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Appends the vectors of documents `[start, end)` (one per document,
    /// in corpus order), leaving out those stored before and those outside
    /// this index's rows.
    pub fn write_chunk(
        &mut self,
        (start, end): (usize, usize),
        vectors: Vec<Vec<f32>>,
        chunk_tokens: usize,
    ) -> Result<()> {
        let from = start.max(self.rows.0 + self.done);
        let to = end.min(self.rows.1);
        self.tokens += chunk_tokens;
        if from < to {
            let ids: Vec<&str> = self.corpus.docs[from..to]
                .iter()
                .map(|d| d.id.as_str())
                .collect();
            let flat: Vec<f32> = vectors[from - start..to - start]
                .iter()
                .flatten()
                .copied()
                .collect();
            self.writer.push_batch(&ids, &flat)?;
        }
        self.progress
            .set_position(to.saturating_sub(self.rows.0) as u64);
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        self.progress
            .set_message(format!("{:.0} tokens/s", self.tokens as f64 / secs));
        Ok(())
    }

    /// Publishes the last shard and marks the index complete.
    pub fn finish(self) -> Result<()> {
        self.writer.finish()?;
        Ok(())
    }
}
