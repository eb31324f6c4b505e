//! `quarry compare`: one metric for several retrievers on several datasets,
//! datasets as rows and retrievers as columns plus an average row, as a
//! markdown table (default), CSV, JSON, and optionally an SVG bar chart.
//! Each cell is a full retrieval + trec_eval-exact evaluation, as `quarry
//! eval` does; a dense index that is not built is named with the command
//! that builds it (and the command exits 1 after printing what it has).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use quarry_engine::dataset::Dataset;
use quarry_engine::metrics::{evaluate, Metric};
use quarry_engine::retriever::Retrievers;
use quarry_engine::split::{queries_for_split, read_split};
use serde::Serialize;

use crate::args::{parse_retriever_list, RetrieverList, RetrieverSpec, UsageError, DEFAULT_K};
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Md,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Comma-separated registry names or BEIR folders (the rows)
    #[arg(long, value_delimiter = ',', required = true)]
    pub datasets: Vec<String>,

    /// Comma-separated retrievers (the columns): bm25, dense:NAME, or a
    /// hybrid such as hybrid:rrf(bm25,dense:NAME) (its commas don't split)
    #[arg(long, required = true, value_parser = parse_retriever_list)]
    pub retrievers: Vec<RetrieverList>,

    /// The metric of every cell (ndcg@K, mrr@K, recall@K, p@K, map)
    #[arg(long, default_value = "ndcg@10")]
    pub metric: String,

    /// Output format
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,

    /// Also write a grouped bar chart to this SVG file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Serialize)]
struct Table {
    metric: String,
    retrievers: Vec<String>,
    rows: Vec<Row>,
    average: Vec<Option<f64>>,
    missing: Vec<String>,
}

#[derive(Serialize)]
struct Row {
    dataset: String,
    split: String,
    queries: usize,
    values: Vec<Option<f64>>,
}

pub fn run(context: &Session, args: CompareArgs) -> Result<()> {
    let metric: Metric = args
        .metric
        .parse()
        .map_err(|e: quarry_engine::EngineError| UsageError(e.to_string()))?;
    if metric.depth().is_some_and(|d| d > DEFAULT_K) {
        return Err(UsageError(format!(
            "{metric} looks deeper than the {DEFAULT_K} hits retrieved"
        ))
        .into());
    }
    let retrievers_wanted: Vec<RetrieverSpec> = args
        .retrievers
        .into_iter()
        .flat_map(|list| list.0)
        .collect();
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for name in &args.datasets {
        let dataset = Dataset::resolve(name, Some(&context.registry))?;
        let split = dataset.default_split.clone();
        let (qrels, corpus, queries) = read_split(&dataset, &split)?;
        let (selected, _) = queries_for_split(&queries, &qrels);
        let mut retrievers =
            Retrievers::new(&context.catalog, &dataset, corpus, ProgressBar::hidden());
        let mut values = Vec::new();
        let mut evaluated = 0;
        for spec in &retrievers_wanted {
            let retrieved = retrievers
                .open(spec)
                .and_then(|retriever| retrievers.retrieve(&retriever, &selected, DEFAULT_K));
            match retrieved {
                Ok(retrieved) => {
                    let evaluation = evaluate(&qrels, &retrieved.run, &[metric]);
                    evaluated = evaluation.num_queries();
                    values.push(evaluation.means.first().copied());
                }
                // A dense index (alone or inside a hybrid) may not be built yet.
                Err(err) if !spec.dense_names().is_empty() => {
                    missing.push(format!("{} on {}: {}", spec.name(), dataset.name, err));
                    values.push(None);
                }
                Err(err) => {
                    return Err(anyhow::Error::new(err).context(format!(
                        "{} on {}",
                        spec.name(),
                        dataset.name
                    )))
                }
            }
        }
        rows.push(Row {
            dataset: dataset.name.clone(),
            split,
            queries: evaluated,
            values,
        });
    }
    let average = (0..retrievers_wanted.len())
        .map(|c| {
            let vals: Vec<f64> = rows.iter().filter_map(|r| r.values[c]).collect();
            (vals.len() == rows.len() && !vals.is_empty())
                .then(|| vals.iter().sum::<f64>() / vals.len() as f64)
        })
        .collect();
    let table = Table {
        metric: metric.to_string(),
        retrievers: retrievers_wanted.iter().map(RetrieverSpec::name).collect(),
        rows,
        average,
        missing,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Md => write_markdown(&mut out, &table)?,
        Format::Csv => write_csv(&mut out, &table)?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&table)?)?,
    }
    if let Some(path) = &args.svg {
        let svg = render_svg(&table);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if !table.missing.is_empty() {
        for line in &table.missing {
            eprintln!("missing: {line}");
        }
        anyhow::bail!(
            "{} cell(s) could not be computed (see `missing` above)",
            table.missing.len()
        );
    }
    Ok(())
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.4}"))
}

fn write_markdown(out: &mut impl Write, t: &Table) -> std::io::Result<()> {
    writeln!(out, "| {} | {} |", t.metric, t.retrievers.join(" | "))?;
    writeln!(out, "|---|{}", "---:|".repeat(t.retrievers.len()))?;
    for row in &t.rows {
        let cells: Vec<String> = row.values.iter().map(|v| cell(*v)).collect();
        writeln!(out, "| {} | {} |", row.dataset, cells.join(" | "))?;
    }
    if t.rows.len() > 1 {
        let cells: Vec<String> = t.average.iter().map(|v| cell(*v)).collect();
        writeln!(out, "| **average** | {} |", cells.join(" | "))?;
    }
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn write_csv(out: &mut impl Write, t: &Table) -> std::io::Result<()> {
    let header: Vec<String> = t.retrievers.iter().map(|r| csv_field(r)).collect();
    writeln!(out, "dataset,{}", header.join(","))?;
    let fmt = |v: &Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for row in &t.rows {
        let cells: Vec<String> = row.values.iter().map(fmt).collect();
        writeln!(out, "{},{}", csv_field(&row.dataset), cells.join(","))?;
    }
    let cells: Vec<String> = t.average.iter().map(fmt).collect();
    writeln!(out, "average,{}", cells.join(","))?;
    Ok(())
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A grouped bar chart: one group per dataset (and the average), one bar per
/// retriever, value labels on the bars, a legend; plain SVG 1.1.
fn render_svg(t: &Table) -> String {
    const COLORS: [&str; 8] = [
        "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
    ];
    let mut groups: Vec<(&str, &[Option<f64>])> = t
        .rows
        .iter()
        .map(|r| (r.dataset.as_str(), r.values.as_slice()))
        .collect();
    if t.rows.len() > 1 {
        groups.push(("average", t.average.as_slice()));
    }
    let n = t.retrievers.len().max(1);
    let bar_w = 28.0;
    let group_w = bar_w * n as f64 + 30.0;
    let (left, top, plot_h) = (60.0, 40.0, 260.0);
    // Wide enough for the bars and for the longest legend entry (~7 px a character).
    let longest = t
        .retrievers
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0);
    let width =
        (left + group_w * groups.len() as f64 + 20.0).max(left + 38.0 + 7.0 * longest as f64);
    let legend_h = 20.0 * n as f64;
    let height = top + plot_h + 50.0 + legend_h;
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let scale_max = if max <= 0.0 {
        1.0
    } else {
        (max * 10.0).ceil() / 10.0
    };
    let y = |v: f64| top + plot_h - v / scale_max * plot_h;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">{}</text>\n",
        xml_escape(&t.metric)
    );
    for i in 0..=5 {
        let v = scale_max * i as f64 / 5.0;
        let yy = y(v);
        s += &format!(
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n",
            width - 20.0,
            left - 6.0,
            yy + 4.0
        );
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let x0 = left + 15.0 + g as f64 * group_w;
        for (i, value) in values.iter().enumerate() {
            let x = x0 + i as f64 * bar_w;
            match value {
                Some(v) => {
                    s += &format!(
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\n\
                         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{v:.3}</text>\n",
                        y(*v),
                        bar_w - 4.0,
                        top + plot_h - y(*v),
                        COLORS[i % COLORS.len()],
                        x + (bar_w - 4.0) / 2.0,
                        y(*v) - 3.0
                    );
                }
                None => {
                    s += &format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">—</text>\n",
                        x + (bar_w - 4.0) / 2.0,
                        top + plot_h - 4.0
                    );
                }
            }
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            x0 + bar_w * n as f64 / 2.0,
            top + plot_h + 16.0,
            xml_escape(label)
        );
    }
    s += &format!(
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n",
        width - 20.0,
        top + plot_h,
        top + plot_h
    );
    for (i, name) in t.retrievers.iter().enumerate() {
        let yy = top + plot_h + 36.0 + 20.0 * i as f64;
        s += &format!(
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            yy - 10.0,
            COLORS[i % COLORS.len()],
            left + 18.0,
            yy,
            xml_escape(name)
        );
    }
    s += "</svg>\n";
    s
}
