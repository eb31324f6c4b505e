//! `quarry encode`: texts to vectors with any encoder `quarry build` takes, prompted and
//! pooled as a build would encode them as queries or as documents
//! (`quarry_engine::embed` does the work).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use quarry_engine::dataset::read_corpus_file;
use quarry_engine::embed::{encode_texts, write_embedded, TextBatch, TextKind};
use quarry_engine::textio::LineReader;

use crate::args::UsageError;
use crate::build::EncoderFlags;
use crate::progress::Progress;
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    /// With the query prompt (what `quarry eval` encodes queries with)
    Query,
    /// With the document prompt, titles included (what `quarry build` encodes a corpus with)
    Passage,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry encode --model models/all-MiniLM-L6-v2 --text 'statins and breast cancer'
  quarry encode --model models/all-MiniLM-L6-v2 --as passage --input corpus.jsonl --output corpus.npy
  quarry encode --model M --input questions.txt --output q.npy     # one query per line; ids 1, 2, ...

With --output, the ids go beside the .npy (FILE.ids.txt): quarry index import takes both.")]
pub struct EncodeArgs {
    #[command(flatten)]
    pub encoder: EncoderFlags,

    /// Encode as queries or as passages (documents)
    #[arg(long = "as", value_enum, default_value = "query")]
    pub side: SideArg,

    /// A text to encode (repeat for several)
    #[arg(long = "text", value_name = "TEXT", required_unless_present = "input")]
    pub texts: Vec<String>,

    /// Texts from a file: BEIR JSONL (`_id`, `text`, optional `title`; corpus.jsonl or
    /// queries.jsonl, .gz/.zst too), else one text per line (ids 1, 2, ...)
    #[arg(long, value_name = "FILE", conflicts_with = "texts")]
    pub input: Option<PathBuf>,

    /// Write the vectors as .npy (f32, one row per text) and their ids to FILE.ids.txt
    /// [default: JSON on stdout]
    #[arg(long, value_name = "FILE.npy")]
    pub output: Option<PathBuf>,
}

/// The texts the flags name.
fn texts(args: &EncodeArgs) -> Result<TextBatch> {
    let Some(path) = &args.input else {
        return Ok(TextBatch {
            ids: (1..=args.texts.len()).map(|i| i.to_string()).collect(),
            titles: None,
            texts: args.texts.clone(),
        });
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.contains(".jsonl") {
        let corpus = read_corpus_file(path)?;
        let titles = corpus.docs.iter().map(|d| d.title.clone()).collect();
        let (ids, texts) = corpus.docs.into_iter().map(|d| (d.id, d.text)).unzip();
        return Ok(TextBatch {
            ids,
            titles: Some(titles),
            texts,
        });
    }
    let mut reader = LineReader::open(path)?;
    let mut batch = TextBatch::default();
    while let Some((_, line)) = reader.next_line()? {
        batch.ids.push((batch.ids.len() + 1).to_string());
        batch.texts.push(line.to_string());
    }
    if batch.texts.is_empty() {
        return Err(UsageError(format!("{}: no texts in the file", path.display())).into());
    }
    Ok(batch)
}

pub fn run(context: &Session, args: EncodeArgs) -> Result<()> {
    let (spec, _) = args
        .encoder
        .spec(&context.registry, &context.catalog.home)?;
    let mut batch = texts(&args)?;
    let kind = match args.side {
        SideArg::Query => {
            batch.titles = None;
            TextKind::Query
        }
        SideArg::Passage => TextKind::Passage,
    };
    let progress = Progress::new("encoding", "texts", args.output.is_none());
    progress.bar().set_length(batch.texts.len() as u64);
    let embedded = encode_texts(&spec, kind, &batch, &|done| {
        progress.bar().set_position(done as u64)
    })
    .with_context(|| format!("encoding with {}", args.encoder.model))?;
    progress.finish();
    let Some(npy) = &args.output else {
        let rows: Vec<serde_json::Value> = batch
            .ids
            .iter()
            .zip(embedded.vectors.chunks(embedded.dim.max(1)))
            .map(|(id, v)| serde_json::json!({"id": id, "vector": v}))
            .collect();
        let report = serde_json::json!({"encoder": embedded.fingerprint, "dim": embedded.dim,
                                        "embeddings": rows});
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&report)?
        )?;
        return Ok(());
    };
    let ids = npy.with_extension("ids.txt");
    write_embedded(&embedded, &batch.ids, npy, &ids)?;
    println!(
        "wrote {} vectors x {} to {} and their ids to {} (encoder {})",
        batch.ids.len(),
        embedded.dim,
        npy.display(),
        ids.display(),
        embedded.fingerprint
    );
    Ok(())
}
