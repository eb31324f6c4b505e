//! The comparison as a LaTeX `tabular` (booktabs): a `\multicolumn` header
//! per metric, best value per column in bold, $^\uparrow$/$^\downarrow$ for
//! significantly better/worse than the baseline, published values in small
//! type; the legend as a comment-free caption line under the table.

use std::io::Write;

use super::columns::{columns, legend, query_counts, row_label, table_cells, CellStyle};
use super::Comparison;

/// Escapes LaTeX's special characters in a name.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            _ => out.push(ch),
        }
    }
    out
}

pub fn write(out: &mut (impl Write + ?Sized), t: &Comparison) -> std::io::Result<()> {
    let columns = columns(t);
    let per_metric = columns.len() / t.metrics.len().max(1);
    writeln!(out, "% quarry compare; needs \\usepackage{{booktabs}}")?;
    writeln!(
        out,
        "\\begin{{tabular}}{{l{}}}",
        format!(" {}", "r".repeat(per_metric)).repeat(t.metrics.len())
    )?;
    writeln!(out, "\\toprule")?;
    let groups: Vec<String> = t
        .metrics
        .iter()
        .map(|m| format!("\\multicolumn{{{per_metric}}}{{c}}{{{}}}", escape(m)))
        .collect();
    writeln!(out, " & {} \\\\", groups.join(" & "))?;
    let rules: String = (0..t.metrics.len())
        .map(|i| {
            format!(
                "\\cmidrule(lr){{{}-{}}}",
                2 + i * per_metric,
                1 + (i + 1) * per_metric
            )
        })
        .collect();
    writeln!(out, "{rules}")?;
    let labels: Vec<String> = columns.iter().map(|c| escape(&c.label)).collect();
    writeln!(out, "Retriever & {} \\\\", labels.join(" & "))?;
    writeln!(out, "\\midrule")?;
    let style = CellStyle {
        missing: "--",
        bold: |text| format!("\\textbf{{{text}}}"),
        better: "$^{\\uparrow}$",
        worse: "$^{\\downarrow}$",
        published: |text| format!(" {{\\scriptsize({text})}}"),
    };
    let rows = table_cells(t, &columns, &style);
    for (r, (name, cells)) in t.retrievers.iter().zip(rows).enumerate() {
        let label = row_label(t, r, escape(name));
        writeln!(out, "{label} & {} \\\\", cells.join(" & "))?;
    }
    writeln!(out, "\\bottomrule")?;
    writeln!(out, "\\end{{tabular}}")?;
    if let Some(legend) = legend(t) {
        writeln!(out, "% $\\uparrow$/$\\downarrow$: {}.", escape(&legend))?;
    }
    writeln!(out, "% Queries: {}.", escape(&query_counts(t)))?;
    Ok(())
}
