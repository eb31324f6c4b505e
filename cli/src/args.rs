//! Flags and values shared by several commands, defined once, the usage
//! error (exit code 2) that a bad value becomes, and the printing of a
//! report as `--json` asks. Each command's own flags live in its module;
//! this module imports none of them.

use std::io::Write as _;
use std::path::PathBuf;

use clap::ValueEnum;
use quarry_engine::device::{self, ComputeDevice, Precision};
use quarry_engine::hub::{HubSettings, ModelSource, ResolvedModel};
pub use quarry_engine::retriever::RetrieverSpec;

/// Hits retrieved per query unless `--k` says otherwise.
pub const DEFAULT_K: usize = 1000;

/// `--retriever` values (see [`RetrieverSpec::parse`]).
pub fn parse_retriever(spec: &str) -> Result<RetrieverSpec, String> {
    RetrieverSpec::parse(spec).map_err(|e| e.to_string())
}

/// One `--retrievers` value: retriever specs separated by commas outside
/// parentheses (see [`RetrieverSpec::parse_list`]).
#[derive(Debug, Clone)]
pub struct RetrieverList(pub Vec<RetrieverSpec>);

/// `--retrievers` values.
pub fn parse_retriever_list(list: &str) -> Result<RetrieverList, String> {
    RetrieverSpec::parse_list(list)
        .map(RetrieverList)
        .map_err(|e| e.to_string())
}

/// A usage mistake found after parsing (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<quarry_engine::UsageError> for UsageError {
    fn from(err: quarry_engine::UsageError) -> Self {
        UsageError(err.0)
    }
}

/// `--dtype`: the compute dtype of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    F32,
    Bf16,
    F16,
}

impl DtypeArg {
    pub fn precision(self) -> Precision {
        match self {
            DtypeArg::F32 => Precision::F32,
            DtypeArg::Bf16 => Precision::BF16,
            DtypeArg::F16 => Precision::F16,
        }
    }
}

/// `--device` and `--dtype` of one model, checked against this build: the
/// devices (`cuda:all` names every visible GPU; the first also encodes the
/// queries) and the compute dtype.
pub fn devices_and_precision(
    device: &str,
    dtype: DtypeArg,
) -> Result<(Vec<ComputeDevice>, Precision), UsageError> {
    let devices = device::parse_devices(device)?;
    let precision = dtype.precision();
    device::check_precision(precision, devices[0])?;
    Ok((devices, precision))
}

/// A `--model` value made local: a path as it is; a hub id (`ORG/NAME[@REV]`,
/// `hf:…`) resolved to a commit and fetched into the Hugging Face cache, with
/// a bar over the downloads and a line on stderr naming the commit.
/// `--model`: a local path, a hub id, or the name of one of the registry's
/// `[[model]]` entries (the study's checkpoints), which stands for its hub id.
pub fn resolve_model(
    arg: &str,
    registry: Option<&quarry_engine::registry::Registry>,
) -> anyhow::Result<ResolvedModel> {
    let named = registry
        .and_then(|r| r.model(arg))
        .filter(|_| !std::path::Path::new(arg).exists())
        .map(|m| format!("hf:{}", m.hub));
    let arg = named.as_deref().unwrap_or(arg);
    let source = ModelSource::parse(arg).map_err(UsageError::from)?;
    if let ModelSource::Local(path) = source {
        return Ok(ResolvedModel::local(path));
    }
    let progress = crate::progress::Progress::bytes("downloading", false);
    let resolved = quarry_engine::hub::resolve_model(arg, &HubSettings::from_env(), progress.bar());
    progress.finish();
    let resolved = resolved?;
    if let Some(line) = resolved.summary() {
        eprintln!("{line}");
    }
    Ok(resolved)
}

/// `--split NAME` names a qrels file of the dataset folder: never empty and
/// never a path.
pub fn check_split(split: &str) -> Result<(), UsageError> {
    if split.is_empty() || split.contains(['/', '\\']) {
        return Err(UsageError(format!("--split `{split}` is not a split name")));
    }
    Ok(())
}

/// Every metric looks no deeper than the `k` hits retrieved (`--k`).
pub fn check_depth(metrics: &[quarry_engine::metrics::Metric], k: usize) -> Result<(), UsageError> {
    match metrics.iter().find(|m| m.depth().is_some_and(|d| d > k)) {
        Some(metric) => Err(UsageError(format!(
            "{metric} looks deeper than the {k} hits retrieved (--k {k}); raise --k or drop the metric"
        ))),
        None => Ok(()),
    }
}

/// `--home`'s default, when neither the flag nor `QUARRY_HOME` is given (the user's data
/// folder; see `quarry_engine::catalog::default_home`).
pub fn default_home() -> PathBuf {
    quarry_engine::catalog::default_home()
}

/// Whether an error is the reader of our output going away (`quarry … | head`):
/// not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `report` to stdout: pretty JSON under `--json`, else as `human` lays it out.
pub fn print_report<T: serde::Serialize>(
    json: bool,
    report: &T,
    human: impl FnOnce(&mut std::io::StdoutLock<'static>, &T) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
    } else {
        human(&mut out, report)?;
    }
    Ok(())
}
