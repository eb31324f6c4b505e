//! `quarry compare --report DIR`: the comparison as markdown, CSV, JSON and
//! LaTeX, the per-query scores as CSV, and the SVG pictures, each file
//! written atomically; the markdown shows the pictures.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{csv_table, latex, markdown, plots, Comparison};
use crate::error::{EngineError, Result};

/// A file name for a metric or dataset (`ndcg@10` → `ndcg_at_10`).
fn file_part(text: &str) -> String {
    text.replace('@', "_at_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_file(path: &Path, body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    quarry_fsio::write_with(path, body)?;
    Ok(())
}

/// Writes the report into `dir` (created if needed); returns the files written.
pub fn write(dir: &Path, t: &Comparison) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut written = Vec::new();
    let mut pictures = Vec::new();
    for (m, metric) in t.metrics.iter().enumerate() {
        let name = format!("bars-{}.svg", file_part(metric));
        let svg = plots::bars(t, m);
        write_file(&dir.join(&name), |out| out.write_all(svg.as_bytes()))?;
        pictures.push((format!("{metric}: means with 95% intervals"), name));
    }
    // Per-query differences for the first metric (the table's headline).
    for (d, row) in t.rows.iter().enumerate() {
        if let Some(svg) = plots::differences(t, d, 0) {
            let name = format!(
                "differences-{}-{}.svg",
                file_part(&row.dataset),
                file_part(&t.metrics[0])
            );
            write_file(&dir.join(&name), |out| out.write_all(svg.as_bytes()))?;
            pictures.push((
                format!("{} on {}: per-query differences", t.metrics[0], row.dataset),
                name,
            ));
        }
    }
    write_file(&dir.join("comparison.md"), |out| {
        writeln!(out, "# quarry compare\n")?;
        markdown::write(out, t)?;
        for (title, name) in &pictures {
            writeln!(out, "\n## {title}\n\n![{title}]({name})")?;
        }
        Ok(())
    })?;
    write_file(&dir.join("comparison.tex"), |out| latex::write(out, t))?;
    write_file(&dir.join("comparison.json"), |out| {
        serde_json::to_writer_pretty(&mut *out, t).map_err(std::io::Error::from)?;
        writeln!(out)
    })?;
    write_file(&dir.join("comparison.csv"), |out| {
        csv_table::write(out, t).map_err(std::io::Error::other)
    })?;
    write_file(&dir.join("per_query.csv"), |out| {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(["dataset", "query", "retriever", "metric", "value"])?;
        for row in &t.rows {
            for (r, retriever) in t.retrievers.iter().enumerate() {
                for (m, metric) in t.metrics.iter().enumerate() {
                    let Some(cell) = &row.cells[r][m] else {
                        continue;
                    };
                    for (query, value) in row.query_ids.iter().zip(&cell.per_query) {
                        // Full precision: tests recomputed from this file equal the table's.
                        w.write_record([
                            &row.dataset,
                            query,
                            retriever,
                            metric,
                            &value.to_string(),
                        ])?;
                    }
                }
            }
        }
        w.flush()
    })?;
    for name in [
        "comparison.md",
        "comparison.tex",
        "comparison.json",
        "comparison.csv",
        "per_query.csv",
    ] {
        written.push(dir.join(name));
    }
    written.extend(pictures.into_iter().map(|(_, name)| dir.join(name)));
    Ok(written)
}
