//! `quarry bench encode`: GPU encoding throughput, measured the way
//! `benches/encode_peer.py` measures transformers + PyTorch on the same
//! card, so `benches/encode_gpu.sh` can print both side by side.
//!
//! Two workloads:
//! - fixed shapes: `batch` sequences of `seq` tokens through Qwen2.5
//!   0.5B/1.5B/7B-shaped models with random weights drawn on the GPU;
//! - real documents: a dataset's corpus under the zero-shot prompt, tokenised
//!   and length-bucketed exactly as `quarry build` does, through a real model.
//!
//! Each run reports the first pass (kernel compilation and autotune of every
//! new shape) apart from the steady passes, tokens/s over real tokens, and
//! model FLOP utilisation: tokens/s × (2 × non-embedding parameters +
//! 4 × layers × sequence × hidden) over the bf16 matmul rate measured in the
//! same process. Results and notes go to a [`BenchReport`]; the library
//! prints nothing itself.

#[cfg(feature = "cuda")]
mod gpu;
mod real_docs;
mod shapes;

use std::path::PathBuf;
use std::time::Instant;

pub use quarry_encoder::Qwen2Config;
pub use shapes::{non_embedding_params, qwen2_5_shape, sequence_flops};

use crate::catalog::Catalog;
use crate::dataset::Dataset;
#[cfg(not(feature = "cuda"))]
use crate::error::EngineError;
use crate::error::{Result, UsageError};
use crate::registry::Registry;

/// What `quarry bench encode` measures.
#[derive(Debug, Clone)]
pub struct EncodeBench {
    /// CUDA device index.
    pub device: usize,
    /// Fixed shapes with random weights, by name (`0.5b`, `1.5b`, `7b`).
    pub shapes: Vec<(String, Qwen2Config)>,
    pub batch: usize,
    pub seq: usize,
    pub rounds: usize,
    /// A real model for the real-document run.
    pub model: Option<PathBuf>,
    pub dataset: String,
    /// Documents of the corpus to encode, from its start (0: all).
    pub docs: usize,
    pub passes: usize,
    /// Documents also encoded on the CPU in f32 for a cosine check (0: none).
    pub check: usize,
    /// `auto`, `cublas` or `burn`.
    pub gemm: String,
    /// An attention kernel name, or `best`.
    pub attention: String,
    pub fused: bool,
    /// Engines whose bf16 matmul rate is measured (empty: none).
    pub matmul_rate: Vec<String>,
    /// Where to write the real documents' token ids and batch plan.
    pub dump: Option<PathBuf>,
    /// Only tokenise and write `dump`.
    pub dump_only: bool,
}

/// Where a benchmark's results and progress notes go.
pub trait BenchReport {
    /// One result (also a JSON line in the binary's `--json` file).
    fn result(&mut self, value: serde_json::Value) -> Result<()>;
    /// A line of progress for people.
    fn note(&mut self, line: &str);
}

/// Runs the encode benchmark.
pub fn run_encode(
    catalog: &Catalog,
    registry: Option<&Registry>,
    bench: &EncodeBench,
    report: &mut dyn BenchReport,
) -> Result<()> {
    let process_started = Instant::now();
    // Real documents are tokenised first, so `dump` exists even if the GPU part fails.
    let real = match &bench.model {
        Some(model) => {
            let dataset = Dataset::resolve(&bench.dataset, registry)?;
            Some(real_docs::prepare(bench, &dataset, model, report)?)
        }
        None => None,
    };
    if bench.dump_only {
        return Ok(());
    }
    #[cfg(feature = "cuda")]
    {
        gpu::run(
            bench,
            &bench.shapes,
            real,
            report,
            process_started,
            &catalog.home,
        )
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (real, process_started, catalog);
        Err(EngineError::Usage(UsageError(
            "this quarry was built without GPU support; rebuild with `--features cuda`".into(),
        )))
    }
}

/// The shapes `--shapes` names (comma-separated; `none`: no fixed-shape run).
pub fn parse_shapes(list: &str) -> Result<Vec<(String, Qwen2Config)>, UsageError> {
    if list == "none" {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|name| {
            qwen2_5_shape(name.trim())
                .map(|config| (name.trim().to_string(), config))
                .ok_or_else(|| {
                    UsageError(format!("--shapes: unknown shape `{name}` (0.5b, 1.5b, 7b)"))
                })
        })
        .collect()
}
