//! The comparison as a markdown table (`quarry compare`'s default output):
//! best value per column in bold, ▲/▼ for significantly better/worse than
//! the baseline, the published value in parentheses with `--paper`.

use std::io::Write;

use super::columns::{columns, legend, query_counts};
use super::{Comparison, Verdict};

pub fn write(out: &mut (impl Write + ?Sized), t: &Comparison) -> std::io::Result<()> {
    let columns = columns(t);
    let one_metric = t.metrics.len() == 1;
    let headers: Vec<String> = columns
        .iter()
        .map(|c| {
            if one_metric {
                c.label.clone()
            } else {
                format!("{} {}", t.metrics[c.metric], c.label)
            }
        })
        .collect();
    let corner = if one_metric {
        t.metrics[0].as_str()
    } else {
        "retriever"
    };
    writeln!(out, "| {corner} | {} |", headers.join(" | "))?;
    writeln!(out, "|---|{}", "---:|".repeat(columns.len()))?;
    let best: Vec<Option<f64>> = columns.iter().map(|c| c.best(t)).collect();
    for (r, name) in t.retrievers.iter().enumerate() {
        let label = if t.baseline.as_deref() == Some(name.as_str()) {
            format!("{name} (baseline)")
        } else {
            name.clone()
        };
        let cells: Vec<String> = columns
            .iter()
            .zip(&best)
            .map(|(column, best)| {
                let (value, cell) = column.value(t, r);
                let Some(value) = value else {
                    return "—".to_string();
                };
                let mut text = format!("{value:.4}");
                if t.retrievers.len() > 1 && Some(value) == *best {
                    text = format!("**{text}**");
                }
                match cell.and_then(|c| c.verdict) {
                    Some(Verdict::Better) => text.push('▲'),
                    Some(Verdict::Worse) => text.push('▼'),
                    _ => {}
                }
                if let Some(published) = cell.and_then(|c| c.published) {
                    text += &format!(" ({published:.4})");
                }
                text
            })
            .collect();
        writeln!(out, "| {label} | {} |", cells.join(" | "))?;
    }
    writeln!(out)?;
    if let Some(legend) = legend(t) {
        writeln!(out, "▲/▼: {legend}.")?;
    }
    let sources: Vec<&str> = t
        .rows
        .iter()
        .flat_map(|row| row.cells.iter().flatten().flatten())
        .filter_map(|c| c.published_source.as_deref())
        .collect();
    if let Some(source) = sources.first() {
        writeln!(out, "(x): the published value ({source}).")?;
    }
    writeln!(out, "Queries: {}.", query_counts(t))?;
    Ok(())
}
