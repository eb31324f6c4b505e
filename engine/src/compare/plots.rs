//! SVG pictures of a comparison (plain SVG 1.1, no scripts, fonts from the
//! viewer): grouped bars with 95% confidence intervals per metric, and
//! per-query differences against the baseline sorted by size.

use std::fmt::Write as _;

use super::{Comparison, Verdict};
use crate::svg;

const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// Grouped bars for metric `m`: one group per dataset and per average, one
/// bar per retriever, 95% intervals as whiskers, ▲/▼ over a bar that is
/// significantly better/worse than the baseline.
pub fn bars(t: &Comparison, m: usize) -> String {
    /// A mean, its interval (datasets only) and its verdict.
    type Bar = (f64, Option<(f64, f64)>, Option<Verdict>);
    struct Group {
        label: String,
        /// One per retriever; `None` where it could not run.
        bars: Vec<Option<Bar>>,
    }
    let mut groups: Vec<Group> = t
        .rows
        .iter()
        .map(|row| Group {
            label: row.dataset.clone(),
            bars: row
                .cells
                .iter()
                .map(|cells| {
                    cells[m]
                        .as_ref()
                        .map(|c| (c.mean, Some((c.ci_low, c.ci_high)), c.verdict))
                })
                .collect(),
        })
        .collect();
    for average in &t.averages {
        groups.push(Group {
            label: if average.group == "all" {
                "average".into()
            } else {
                format!("average {}", average.group)
            },
            bars: average
                .values
                .iter()
                .map(|v| v[m].map(|mean| (mean, None, None)))
                .collect(),
        });
    }
    let n = t.retrievers.len().max(1);
    let bar_w = (180.0 / n as f64).clamp(14.0, 30.0);
    let group_w = bar_w * n as f64 + 36.0;
    let (left, top, plot_h) = (58.0, 48.0, 280.0);
    let longest = t
        .retrievers
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0);
    let width =
        (left + group_w * groups.len() as f64 + 20.0).max(left + 60.0 + 7.0 * longest as f64);
    let legend_h = 18.0 * n as f64;
    let note = super::columns::legend(t).map_or_else(String::new, |l| format!("▲/▼: {l}"));
    // About 6 px a character at font size 10.
    let note_lines = svg::wrap(&note, ((width - left - 16.0) / 6.0) as usize);
    let height = top + plot_h + 46.0 + legend_h + 16.0 + 14.0 * note_lines.len() as f64;
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().flatten())
        .map(|(mean, ci, _)| ci.map_or(*mean, |c| c.1))
        .fold(0.0f64, f64::max);
    let (scale, step) = svg::axis(max.clamp(0.0, 1.0));
    let y = |v: f64| top + plot_h - (v.clamp(0.0, scale) / scale) * plot_h;
    let mut s = svg::open(
        width,
        height,
        &format!("{} (mean and 95% confidence interval)", t.metrics[m]),
    );
    let lines = (scale / step).round() as u32;
    for i in 0..=lines {
        let v = step * f64::from(i);
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e3e3e3\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{v:.2}</text>\n",
            width - 16.0,
            left - 6.0,
            yy + 4.0
        );
    }
    for (g, group) in groups.iter().enumerate() {
        let x0 = left + 18.0 + g as f64 * group_w;
        for (i, bar) in group.bars.iter().enumerate() {
            let x = x0 + i as f64 * bar_w;
            let w = bar_w - 4.0;
            let cx = x + w / 2.0;
            let Some((mean, ci, verdict)) = bar else {
                let _ = writeln!(
                    s,
                    "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\">—</text>",
                    top + plot_h - 4.0
                );
                continue;
            };
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {mean:.4}</title></rect>",
                y(*mean),
                top + plot_h - y(*mean),
                COLORS[i % COLORS.len()],
                svg::xml_escape(&t.retrievers[i])
            );
            let mut label_y = y(*mean) - 4.0;
            if let Some((low, high)) = ci {
                let (yl, yh) = (y(*low), y(*high));
                let _ = writeln!(
                    s,
                    "<path d=\"M{cx:.1},{yl:.1}V{yh:.1}M{:.1},{yl:.1}H{:.1}M{:.1},{yh:.1}H{:.1}\" stroke=\"#222\" stroke-width=\"1.2\" fill=\"none\"/>",
                    cx - 4.0,
                    cx + 4.0,
                    cx - 4.0,
                    cx + 4.0
                );
                label_y = yh - 4.0;
            }
            let marker = match verdict {
                Some(Verdict::Better) => "▲",
                Some(Verdict::Worse) => "▼",
                _ => "",
            };
            let _ = writeln!(
                s,
                "<text x=\"{cx:.1}\" y=\"{label_y:.1}\" text-anchor=\"middle\" font-size=\"9\">{marker}{mean:.3}</text>"
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x0 + bar_w * n as f64 / 2.0 - 2.0,
            top + plot_h + 16.0,
            svg::xml_escape(&group.label)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
        width - 16.0,
        top + plot_h,
        top + plot_h
    );
    for (i, name) in t.retrievers.iter().enumerate() {
        let yy = top + plot_h + 40.0 + 18.0 * i as f64;
        let baseline = if t.baseline.as_deref() == Some(name.as_str()) {
            " (baseline)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{yy:.1}\">{}{baseline}</text>",
            yy - 10.0,
            COLORS[i % COLORS.len()],
            left + 18.0,
            svg::xml_escape(name)
        );
    }
    for (i, line) in note_lines.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">{}</text>",
            top + plot_h + 46.0 + legend_h + 12.0 + 14.0 * i as f64,
            svg::xml_escape(line)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// "= 0.034", or "< 0.001" where three decimals would print zero.
fn p_label(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_string()
    } else {
        format!("= {p:.3}")
    }
}

/// Per-query differences (retriever − reference) on dataset `d` under
/// metric `m`, one panel per other retriever, queries sorted by difference:
/// how many queries gain, tie and lose, and by how much. The reference is
/// the baseline, or the first retriever without one.
pub fn differences(t: &Comparison, d: usize, m: usize) -> Option<String> {
    let row = &t.rows[d];
    let reference = t
        .baseline
        .as_ref()
        .and_then(|b| t.retrievers.iter().position(|r| r == b))
        .unwrap_or(0);
    let base = row.cells[reference][m].as_ref()?;
    let others: Vec<usize> = (0..t.retrievers.len())
        .filter(|&r| r != reference && row.cells[r][m].is_some())
        .collect();
    if others.is_empty() || base.per_query.is_empty() {
        return None;
    }
    let (left, top, panel_h, plot_w) = (58.0, 44.0, 170.0, 640.0);
    let width = left + plot_w + 24.0;
    let height = top + panel_h * others.len() as f64 + 12.0;
    let mut s = svg::open(
        width,
        height,
        &format!(
            "{} on {}: per-query difference against {} ({} queries, sorted)",
            t.metrics[m], row.dataset, t.retrievers[reference], row.queries
        ),
    );
    for (p, &r) in others.iter().enumerate() {
        let cell = row.cells[r][m].as_ref()?;
        let mut diffs: Vec<f64> = cell
            .per_query
            .iter()
            .zip(&base.per_query)
            .map(|(a, b)| a - b)
            .collect();
        diffs.sort_by(|a, b| b.total_cmp(a));
        let span = diffs.iter().fold(0.0f64, |a, d| a.max(d.abs()));
        let span = svg::axis(span.min(1.0)).0;
        let y0 = top + p as f64 * panel_h + 40.0;
        let h = panel_h - 58.0;
        let mid = y0 + h / 2.0;
        let y = |v: f64| mid - v / span * (h / 2.0);
        let (wins, ties, losses) = diffs.iter().fold((0, 0, 0), |(w, t, l), d| {
            if *d > 0.0 {
                (w + 1, t, l)
            } else if *d < 0.0 {
                (w, t, l + 1)
            } else {
                (w, t + 1, l)
            }
        });
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let p_text = match (cell.p_value, cell.p_adjusted) {
            (Some(p), Some(adjusted)) if adjusted != p => {
                format!(", p {} (adjusted {})", p_label(p), p_label(adjusted))
            }
            (Some(p), _) => format!(", p {}", p_label(p)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"bold\">{} − {}</text>\n\
             <text x=\"{left}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\">mean {mean:+.4}{p_text}; \
             better on {wins}, equal on {ties}, worse on {losses} queries</text>",
            y0 - 22.0,
            svg::xml_escape(&t.retrievers[r]),
            svg::xml_escape(&t.retrievers[reference]),
            y0 - 8.0,
        );
        for v in [span, span / 2.0, 0.0, -span / 2.0, -span] {
            let yy = y(v);
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{v:+.2}</text>",
                left + plot_w,
                if v == 0.0 { "#333" } else { "#e3e3e3" },
                left - 6.0,
                yy + 4.0
            );
        }
        let bar_w = plot_w / diffs.len() as f64;
        let mut path_up = String::new();
        let mut path_down = String::new();
        for (i, dv) in diffs.iter().enumerate() {
            if *dv == 0.0 {
                continue;
            }
            let x = left + i as f64 * bar_w;
            let (ya, yb) = (y(*dv).min(mid), y(*dv).max(mid));
            let target = if *dv > 0.0 {
                &mut path_up
            } else {
                &mut path_down
            };
            let _ = write!(
                target,
                "M{x:.2},{ya:.2}h{:.2}v{:.2}h{:.2}z",
                bar_w.max(0.6),
                yb - ya,
                -bar_w.max(0.6)
            );
        }
        let _ = writeln!(
            s,
            "<path d=\"{path_up}\" fill=\"#59a14f\"/>\n<path d=\"{path_down}\" fill=\"#e15759\"/>"
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}
