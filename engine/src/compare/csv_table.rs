//! The comparison as CSV in long form: one line per dataset (or average),
//! retriever and metric, with the interval, p-values, verdict and published
//! value, quoted by the `csv` crate (RFC 4180: commas, quotes, CR and LF).

use std::io::Write;

use super::{Comparison, Verdict};

const HEADER: [&str; 14] = [
    "dataset",
    "split",
    "group",
    "queries",
    "retriever",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "verdict",
    "published",
    "published_source",
];

fn number(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| format!("{v:.6}"))
}

/// p-values keep their magnitude (a t-test's p can be 1e-19).
fn p(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| format!("{v:e}"))
}

pub fn write(out: impl Write, t: &Comparison) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    for row in &t.rows {
        for (r, retriever) in t.retrievers.iter().enumerate() {
            for (m, metric) in t.metrics.iter().enumerate() {
                let cell = row.cells[r][m].as_ref();
                let verdict = cell
                    .and_then(|c| c.verdict)
                    .map_or("", Verdict::as_str)
                    .to_string();
                w.write_record([
                    row.dataset.clone(),
                    row.split.clone(),
                    row.group.clone(),
                    row.queries.to_string(),
                    retriever.clone(),
                    metric.clone(),
                    number(cell.map(|c| c.mean)),
                    number(cell.map(|c| c.ci_low)),
                    number(cell.map(|c| c.ci_high)),
                    p(cell.and_then(|c| c.p_value)),
                    p(cell.and_then(|c| c.p_adjusted)),
                    verdict,
                    number(cell.and_then(|c| c.published)),
                    cell.and_then(|c| c.published_source.clone())
                        .unwrap_or_default(),
                ])?;
            }
        }
    }
    for average in &t.averages {
        for (r, retriever) in t.retrievers.iter().enumerate() {
            for (m, metric) in t.metrics.iter().enumerate() {
                let mut record = vec![String::new(); HEADER.len()];
                record[0] = format!("average {}", average.group);
                record[2] = average.group.clone();
                record[4] = retriever.clone();
                record[5] = metric.clone();
                record[6] = number(average.values[r][m]);
                w.write_record(&record)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
