//! The comparison as a markdown table (`quarry compare`'s default output):
//! best value per column in bold, ▲/▼ for significantly better/worse than
//! the baseline, the published value in parentheses with `--paper`.

use std::io::Write;

use super::columns::{columns, legend, query_counts, row_label, table_cells, CellStyle};
use super::Comparison;

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
    let style = CellStyle {
        missing: "—",
        bold: |text| format!("**{text}**"),
        better: "▲",
        worse: "▼",
        published: |text| format!(" ({text})"),
    };
    let rows = table_cells(t, &columns, &style);
    for (r, (name, cells)) in t.retrievers.iter().zip(rows).enumerate() {
        let label = row_label(t, r, name.clone());
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
