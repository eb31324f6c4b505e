//! The column layout every table format shares: one group of columns per
//! metric (as the study's tables group theirs), inside it one column per
//! dataset and then the group averages; one row per retriever.

use super::{Cell, Comparison, Verdict};

/// What a column shows.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// `Comparison::rows[i]`.
    Dataset(usize),
    /// `Comparison::averages[i]`.
    Average(usize),
}

#[derive(Debug, Clone)]
pub struct Column {
    /// Index into `Comparison::metrics`.
    pub metric: usize,
    pub source: Source,
    /// The dataset name, or `avg` / `avg text` for an average.
    pub label: String,
}

impl Column {
    /// The value of `retriever` in this column and, for a dataset column,
    /// its cell (p-value, verdict, published value).
    pub fn value<'c>(
        &self,
        t: &'c Comparison,
        retriever: usize,
    ) -> (Option<f64>, Option<&'c Cell>) {
        match self.source {
            Source::Dataset(d) => {
                let cell = t.rows[d].cells[retriever][self.metric].as_ref();
                (cell.map(|c| c.mean), cell)
            }
            Source::Average(a) => (t.averages[a].values[retriever][self.metric], None),
        }
    }

    /// The best value in this column (bold in the tables), if any.
    pub fn best(&self, t: &Comparison) -> Option<f64> {
        (0..t.retrievers.len())
            .filter_map(|r| self.value(t, r).0)
            .reduce(f64::max)
    }
}

/// How a table format writes the parts of a cell.
pub struct CellStyle {
    /// The cell of a retriever that could not run.
    pub missing: &'static str,
    /// The best value of a column, given its text.
    pub bold: fn(&str) -> String,
    pub better: &'static str,
    pub worse: &'static str,
    /// The published value after quarry's, given its text.
    pub published: fn(&str) -> String,
}

/// The text of every cell, a row per retriever: each column's best value in
/// bold (when there are several retrievers), the verdict's marker and the
/// published value.
pub fn table_cells(t: &Comparison, columns: &[Column], style: &CellStyle) -> Vec<Vec<String>> {
    let best: Vec<Option<f64>> = columns.iter().map(|c| c.best(t)).collect();
    (0..t.retrievers.len())
        .map(|retriever| {
            columns
                .iter()
                .zip(&best)
                .map(|(column, best)| {
                    let (value, cell) = column.value(t, retriever);
                    let Some(value) = value else {
                        return style.missing.to_string();
                    };
                    let mut text = format!("{value:.4}");
                    if t.retrievers.len() > 1 && Some(value) == *best {
                        text = (style.bold)(&text);
                    }
                    match cell.and_then(|c| c.verdict) {
                        Some(Verdict::Better) => text += style.better,
                        Some(Verdict::Worse) => text += style.worse,
                        _ => {}
                    }
                    if let Some(published) = cell.and_then(|c| c.published) {
                        text += &(style.published)(&format!("{published:.4}"));
                    }
                    text
                })
                .collect()
        })
        .collect()
}

/// A retriever's label, marked when it is the baseline.
pub fn row_label(t: &Comparison, retriever: usize, name: String) -> String {
    if t.baseline.as_deref() == Some(t.retrievers[retriever].as_str()) {
        format!("{name} (baseline)")
    } else {
        name
    }
}

/// Every column, metric-major.
pub fn columns(t: &Comparison) -> Vec<Column> {
    let mut columns = Vec::new();
    for metric in 0..t.metrics.len() {
        for (d, row) in t.rows.iter().enumerate() {
            columns.push(Column {
                metric,
                source: Source::Dataset(d),
                label: row.dataset.clone(),
            });
        }
        for (a, average) in t.averages.iter().enumerate() {
            let label = if average.group == "all" {
                "avg".to_string()
            } else {
                format!("avg {}", average.group)
            };
            columns.push(Column {
                metric,
                source: Source::Average(a),
                label,
            });
        }
    }
    columns
}

/// The sentence under a table saying what the markers mean, or `None`
/// without a test.
pub fn legend(t: &Comparison) -> Option<String> {
    let s = t.significance.as_ref()?;
    let baseline = t.baseline.as_deref().unwrap_or("the baseline");
    let correction = match s.correction {
        crate::stats::Correction::Holm => ", Holm-corrected per dataset and metric",
        crate::stats::Correction::Bonferroni => ", Bonferroni-corrected per dataset and metric",
        crate::stats::Correction::None => ", uncorrected",
    };
    Some(format!(
        "significantly better / worse than {baseline} ({}{correction}, alpha = {})",
        s.test, s.alpha
    ))
}

/// Query counts per dataset, for the note under a table.
pub fn query_counts(t: &Comparison) -> String {
    t.rows
        .iter()
        .map(|r| format!("{} {} ({} split)", r.dataset, r.queries, r.split))
        .collect::<Vec<_>>()
        .join(", ")
}
