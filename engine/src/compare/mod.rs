//! `quarry compare`: several retrievers on several datasets under several
//! metrics, each cell a full retrieval scored as trec_eval does, with 95%
//! confidence intervals, paired significance tests against a baseline
//! (corrected for the number of systems tested) and, where the registry
//! holds one, the published value.
//!
//! Tests are paired over the queries each dataset's split scores (every
//! retriever of a dataset is scored on the same queries). A test's family is
//! one dataset and one metric: every other retriever against the baseline.
//!
//! Rendered by [`markdown`], [`latex`], [`csv_table`] and [`plots`];
//! [`report`] writes all of them into a folder.

mod columns;
pub mod csv_table;
pub mod latex;
pub mod markdown;
pub mod plots;
pub mod report;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::dataset::Dataset;
use crate::error::{EngineError, Result};
use crate::metrics::{evaluate, Metric};
use crate::registry::{DatasetKind, PublishedValue, Registry};
use crate::retriever::{RetrieverSpec, Retrievers};
use crate::split::{queries_for_split, read_split};
use crate::stats::{adjust, mean_interval, p_value, Correction, PairedTest};

/// Confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    /// Registry names or BEIR folders.
    pub datasets: Vec<String>,
    pub retrievers: Vec<RetrieverSpec>,
    pub metrics: Vec<Metric>,
    /// Qrels split; `None`: each dataset's default.
    pub split: Option<String>,
    /// Hits retrieved per query.
    pub k: usize,
    /// Significance against a baseline, if asked.
    pub significance: Option<Significance>,
    /// Fill in the registry's published values.
    pub published: bool,
}

/// How cells are tested against the baseline.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Significance {
    /// Index into `retrievers`.
    #[serde(skip)]
    pub baseline: usize,
    #[serde(flatten)]
    pub test: PairedTest,
    pub alpha: f64,
    pub correction: Correction,
}

/// A cell's verdict against the baseline at level alpha (after correction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Better,
    Worse,
    /// Not significantly different.
    Same,
}

impl Verdict {
    /// The name JSON and CSV give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Same => "same",
        }
    }
}

/// One retriever on one dataset under one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Against the baseline (absent for the baseline itself and without a test).
    pub p_value: Option<f64>,
    /// `p_value` after the correction.
    pub p_adjusted: Option<f64>,
    pub verdict: Option<Verdict>,
    /// The registry's published value and where it is from.
    pub published: Option<f64>,
    pub published_source: Option<String>,
    /// One value per query of the row's `query_ids`.
    #[serde(skip)]
    pub per_query: Vec<f64>,
}

/// One dataset: `cells[retriever][metric]`, `None` where the retriever could
/// not run (a dense index not built: see `Comparison::missing`).
#[derive(Debug, Clone, Serialize)]
pub struct DatasetRow {
    pub dataset: String,
    pub split: String,
    /// [`group_label`]: `text`, `code`, `msmarco` or `other`.
    pub group: String,
    pub queries: usize,
    #[serde(skip)]
    pub query_ids: Vec<String>,
    pub cells: Vec<Vec<Option<Cell>>>,
}

/// Means over the datasets of a group: `values[retriever][metric]`, `None`
/// where a dataset of the group lacks the cell.
#[derive(Debug, Clone, Serialize)]
pub struct Average {
    /// A group name, or `all`.
    pub group: String,
    pub datasets: usize,
    pub values: Vec<Vec<Option<f64>>>,
}

/// The whole comparison, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub metrics: Vec<String>,
    pub retrievers: Vec<String>,
    pub baseline: Option<String>,
    pub significance: Option<Significance>,
    pub confidence: f64,
    pub rows: Vec<DatasetRow>,
    pub averages: Vec<Average>,
    /// Cells that could not be computed, with the reason.
    pub missing: Vec<String>,
}

/// The group a dataset's averages are taken over: the registry's `kind`
/// (`text`, `code`: the study's BEIR and CoIR halves), MS MARCO's collections
/// apart (`msmarco`), and `other` for a folder outside the registry.
pub fn group_label(dataset: &Dataset, registry: &Registry) -> &'static str {
    let entry = registry.get(&dataset.name);
    match (dataset.kind, entry.and_then(|e| e.group.as_deref())) {
        (_, Some("msmarco")) => "msmarco",
        (Some(DatasetKind::Code), _) => "code",
        (Some(DatasetKind::Text), _) => "text",
        (None, _) => "other",
    }
}

/// Runs the comparison. A retriever that needs a dense index that is not
/// built leaves its cells empty and is listed in `missing`; any other error
/// stops the comparison.
pub fn compare(
    catalog: &Catalog,
    registry: &Registry,
    request: &CompareRequest,
    build_progress: ProgressBar,
) -> Result<Comparison> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    let names: Vec<String> = request.retrievers.iter().map(RetrieverSpec::name).collect();
    let metric_names: Vec<String> = request.metrics.iter().map(Metric::to_string).collect();
    let published_values = if request.published {
        published_values(registry)?
    } else {
        Vec::new()
    };
    for name in &request.datasets {
        let dataset = Dataset::resolve(name, Some(registry))?;
        let split = request
            .split
            .clone()
            .unwrap_or_else(|| dataset.default_split.clone());
        let (qrels, corpus, queries) = read_split(&dataset, &split)?;
        let (selected, _) = queries_for_split(&queries, &qrels);
        let mut retrievers = Retrievers::new(catalog, &dataset, corpus, build_progress.clone());
        let mut cells = Vec::new();
        let mut query_ids = Vec::new();
        for (spec, retriever_name) in request.retrievers.iter().zip(&names) {
            let retrieved = retrievers
                .open(spec)
                .and_then(|retriever| retrievers.retrieve(&retriever, &selected, request.k));
            let retrieved = match retrieved {
                Ok(retrieved) => retrieved,
                // A dense index (alone or inside a hybrid) may not be built yet.
                Err(err) if !spec.dense_names().is_empty() => {
                    missing.push(format!("{retriever_name} on {}: {err}", dataset.name));
                    cells.push(vec![None; request.metrics.len()]);
                    continue;
                }
                Err(err) => return Err(err),
            };
            let evaluation = evaluate(&qrels, &retrieved.run, &request.metrics);
            query_ids = evaluation.per_query.keys().cloned().collect();
            let row: Vec<Option<Cell>> = (0..request.metrics.len())
                .map(|m| {
                    let per_query: Vec<f64> = evaluation.per_query.values().map(|v| v[m]).collect();
                    let interval = mean_interval(&per_query, CONFIDENCE);
                    let published = published(
                        &published_values,
                        retriever_name,
                        &dataset.name,
                        request.metrics[m],
                    );
                    Some(Cell {
                        mean: interval.mean,
                        ci_low: interval.low,
                        ci_high: interval.high,
                        p_value: None,
                        p_adjusted: None,
                        verdict: None,
                        published: published.as_ref().map(|(v, _)| *v),
                        published_source: published.map(|(_, s)| s),
                        per_query,
                    })
                })
                .collect();
            cells.push(row);
        }
        if let Some(significance) = &request.significance {
            test_against_baseline(&mut cells, significance);
        }
        rows.push(DatasetRow {
            group: group_label(&dataset, registry).to_string(),
            dataset: dataset.name.clone(),
            split,
            queries: query_ids.len(),
            query_ids,
            cells,
        });
    }
    let averages = averages(&rows, names.len(), request.metrics.len());
    Ok(Comparison {
        metrics: metric_names,
        baseline: request
            .significance
            .as_ref()
            .map(|s| names[s.baseline].clone()),
        retrievers: names,
        significance: request.significance,
        confidence: CONFIDENCE,
        rows,
        averages,
        missing,
    })
}

/// The registry's `[[published]]` values with their metrics parsed, all
/// checked before any retrieval: an entry whose metric does not parse is an
/// error naming the registry and the entry.
fn published_values(registry: &Registry) -> Result<Vec<(&PublishedValue, Metric)>> {
    registry
        .published
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let metric = entry.metric.parse().map_err(|err| EngineError::Registry {
                file: registry.file.clone(),
                detail: format!("published #{}: {err}", i + 1),
            })?;
            Ok((entry, metric))
        })
        .collect()
}

/// The published value of one cell and where it is printed.
fn published(
    values: &[(&PublishedValue, Metric)],
    retriever: &str,
    dataset: &str,
    metric: Metric,
) -> Option<(f64, String)> {
    values
        .iter()
        .find(|(e, m)| e.retriever == retriever && e.dataset == dataset && *m == metric)
        .map(|(e, _)| (e.value, e.source.clone()))
}

/// Fills p-values, adjusted p-values and verdicts of one dataset's cells.
fn test_against_baseline(cells: &mut [Vec<Option<Cell>>], significance: &Significance) {
    let base = significance.baseline;
    let metrics = cells.first().map_or(0, Vec::len);
    for m in 0..metrics {
        let Some(baseline) = cells[base][m].as_ref().map(|c| c.per_query.clone()) else {
            continue;
        };
        let raw: Vec<Option<f64>> = cells
            .iter()
            .enumerate()
            .map(|(r, row)| match &row[m] {
                Some(cell) if r != base => p_value(significance.test, &cell.per_query, &baseline),
                _ => None,
            })
            .collect();
        let adjusted = adjust(&raw, significance.correction);
        let baseline_mean = cells[base][m].as_ref().map_or(0.0, |c| c.mean);
        for (r, row) in cells.iter_mut().enumerate() {
            if let Some(cell) = &mut row[m] {
                cell.p_value = raw[r];
                cell.p_adjusted = adjusted[r];
                cell.verdict = adjusted[r].map(|p| {
                    if p > significance.alpha || cell.mean == baseline_mean {
                        Verdict::Same
                    } else if cell.mean > baseline_mean {
                        Verdict::Better
                    } else {
                        Verdict::Worse
                    }
                });
            }
        }
    }
}

/// One average per group holding at least two datasets (when there are
/// several groups), and one over all datasets when there are several.
fn averages(rows: &[DatasetRow], retrievers: usize, metrics: usize) -> Vec<Average> {
    let mut groups: Vec<&str> = Vec::new();
    for row in rows {
        if !groups.contains(&row.group.as_str()) {
            groups.push(&row.group);
        }
    }
    let mut selections: Vec<(String, Vec<&DatasetRow>)> = Vec::new();
    if groups.len() > 1 {
        for group in groups {
            let members: Vec<&DatasetRow> = rows.iter().filter(|r| r.group == group).collect();
            if members.len() > 1 {
                selections.push((group.to_string(), members));
            }
        }
    }
    if rows.len() > 1 {
        selections.push(("all".to_string(), rows.iter().collect()));
    }
    selections
        .into_iter()
        .map(|(group, members)| Average {
            datasets: members.len(),
            values: (0..retrievers)
                .map(|r| {
                    (0..metrics)
                        .map(|m| {
                            let values: Option<Vec<f64>> = members
                                .iter()
                                .map(|row| row.cells[r][m].as_ref().map(|c| c.mean))
                                .collect();
                            values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
                        })
                        .collect()
                })
                .collect(),
            group,
        })
        .collect()
}
