//! `quarry search`: an interactive shell over one dataset's indexes. Type a
//! query, see the top hits with highlighted snippets and where the time went;
//! `:` commands switch dataset, retriever and depth, show documents, and
//! compare how every available retriever ranked a doc.
//!
//! With a terminal on stdin it uses rustyline (line editing, history kept in
//! `<data home>/search_history`); with a pipe it reads one query or command
//! per line and prints no prompt, so it can be scripted.
//!
//! Retrievers: `bm25` (the catalog's BM25 index, built on first use),
//! `dense:NAME` (an index `quarry build` made; its model is loaded once, when
//! the retriever is first chosen, on the CPU for f32 builds) and hybrids of
//! retrievers ([`quarry_engine::fusion`]).

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quarry_encoder::{ComputeDevice, EmbeddingModel, Precision};
use quarry_engine::bm25::open_or_build_bm25;
use quarry_engine::build::{resolve_dense_dir, BuildInfo, PreparedEncoder};
use quarry_engine::dataset::{Corpus, Dataset, Document};
use quarry_engine::fusion::RetrieverSpec;
use quarry_engine::run::RunHit;
use quarry_index::bm25::Bm25Index;
use quarry_index::dense::DenseIndex;

use crate::Session;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Registry name, or a path to any BEIR folder
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: String,

    /// bm25, dense:NAME, hybrid:rrf(A,B), hybrid:rrf(k=60,A,B) or hybrid:interp(ALPHA,A,B)
    #[arg(long, default_value = "bm25", value_name = "SPEC")]
    pub retriever: String,

    /// Hits to show per query
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub k: u32,
}

/// Hits each side of a hybrid contributes before fusion (at least k).
const FUSION_DEPTH: usize = 100;
/// How deep `:rank` looks in each retriever's ranking.
const RANK_DEPTH: usize = 1000;
/// Words shown around the best-matching part of a document.
const SNIPPET_WORDS: usize = 32;

const HELP: &str = "\
type a query to search, or a command:
  :dataset NAME     switch to another dataset (registry name or BEIR folder)
  :retriever SPEC   bm25 | dense:NAME | hybrid:rrf(A,B) | hybrid:rrf(k=60,A,B) | hybrid:interp(0.5,A,B)
  :k N              show N hits per query
  :doc ID           show a document in full
  :rank ID          how each available retriever ranked ID for the last query
  :help             this list
  :quit             leave (also Ctrl-D)";

/// The loaded dataset and its indexes.
struct Loaded {
    dataset: Dataset,
    corpus: Corpus,
    /// doc id -> position in `corpus.docs`.
    positions: std::collections::HashMap<String, usize>,
    bm25: Bm25Index,
    /// Dense indexes opened so far, by name, with their loaded encoders.
    dense: std::collections::BTreeMap<String, DenseSide>,
}

/// A dense index and the model that encodes queries for it.
struct DenseSide {
    index: DenseIndex,
    prepared: PreparedEncoder,
    model: EmbeddingModel,
}

struct Shell<'s> {
    session: &'s Session,
    loaded: Loaded,
    retriever: RetrieverSpec,
    k: usize,
    last_query: Option<String>,
    /// How highlighted terms are marked.
    style: Style,
}

#[derive(Clone, Copy)]
enum Style {
    /// ANSI bold (stdout is a terminal).
    Bold,
    /// `**term**` (stdout is a pipe or file).
    Stars,
}

/// Time spent turning the query into something searchable, and searching.
#[derive(Default)]
struct Latency {
    encode: Duration,
    search: Duration,
}

pub fn run(session: &Session, args: SearchArgs) -> Result<()> {
    let retriever = RetrieverSpec::parse(&args.retriever)
        .map_err(|e| crate::args::UsageError(e.to_string()))?;
    let loaded = load(session, &args.dataset)?;
    let mut shell = Shell {
        session,
        loaded,
        retriever: RetrieverSpec::Bm25,
        k: args.k as usize,
        last_query: None,
        style: if std::io::stdout().is_terminal() {
            Style::Bold
        } else {
            Style::Stars
        },
    };
    shell.check_available(&retriever)?;
    shell.retriever = retriever;

    if std::io::stdin().is_terminal() {
        shell.interactive()
    } else {
        shell.scripted()
    }
}

fn load(session: &Session, name: &str) -> Result<Loaded> {
    let dataset = Dataset::resolve(name, session.registry.as_ref())?;
    let corpus = dataset
        .read_corpus()
        .with_context(|| format!("reading the corpus of {}", dataset.name))?;
    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "building BM25 index {bar:40} {pos}/{len} docs ({elapsed})",
            )
            .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let (bm25, _reused) = open_or_build_bm25(&session.catalog, &dataset, &corpus, &progress)
        .with_context(|| format!("opening the BM25 index of {}", dataset.name))?;
    let positions = corpus
        .docs
        .iter()
        .enumerate()
        .map(|(i, doc)| (doc.id.clone(), i))
        .collect();
    Ok(Loaded {
        dataset,
        corpus,
        positions,
        bm25,
        dense: Default::default(),
    })
}

impl Shell<'_> {
    fn interactive(&mut self) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        let history = self.session.catalog.home.join("search_history");
        // No history yet is normal; a damaged one is not worth stopping for.
        let _ = editor.load_history(&history);
        println!(
            "{} ({} docs), retriever {}, k {} — :help for commands",
            self.loaded.dataset.name,
            self.loaded.corpus.docs.len(),
            self.retriever,
            self.k
        );
        loop {
            let prompt = format!("{}> ", self.loaded.dataset.name);
            match editor.readline(&prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if !self.handle_line(&line)? {
                        break;
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(err) => return Err(err).context("reading a line"),
            }
        }
        if std::fs::create_dir_all(&self.session.catalog.home).is_ok() {
            if let Err(err) = editor.save_history(&history) {
                eprintln!("warning: history not saved to {}: {err}", history.display());
            }
        }
        Ok(())
    }

    fn scripted(&mut self) -> Result<()> {
        let stdin = std::io::stdin().lock();
        for (number, line) in stdin.lines().enumerate() {
            let line = line.with_context(|| format!("reading stdin line {}", number + 1))?;
            if !self.handle_line(&line)? {
                break;
            }
        }
        Ok(())
    }

    /// Runs one line; false when the shell should end. Mistakes in a line
    /// are reported and the shell goes on; only output failures end it.
    fn handle_line(&mut self, line: &str) -> Result<bool> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(true);
        }
        let result = match line.strip_prefix(':') {
            Some(command) => {
                let (name, argument) = match command.split_once(char::is_whitespace) {
                    Some((name, rest)) => (name, rest.trim()),
                    None => (command, ""),
                };
                match name {
                    "q" | "quit" | "exit" => return Ok(false),
                    _ => self.command(name, argument),
                }
            }
            None => self.search(line),
        };
        match result {
            Ok(()) => {}
            Err(err) if crate::is_broken_pipe(&err) => return Err(err),
            Err(err) => eprintln!("error: {err:#}"),
        }
        std::io::stdout().flush().context("writing to stdout")?;
        Ok(true)
    }

    fn command(&mut self, name: &str, argument: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        let needs = |what: &str| -> Result<()> {
            if argument.is_empty() {
                bail!("`:{name}` needs {what}");
            }
            Ok(())
        };
        match name {
            "help" | "h" | "?" => writeln!(out, "{HELP}")?,
            "dataset" => {
                needs("a dataset name or folder")?;
                drop(out);
                let loaded = load(self.session, argument)?;
                let old = std::mem::replace(&mut self.loaded, loaded);
                if let Err(err) = self.check_available(&self.retriever.clone()) {
                    self.loaded = old;
                    return Err(err.context("dataset not switched"));
                }
                self.last_query = None;
                println!(
                    "dataset {} ({} docs)",
                    self.loaded.dataset.name,
                    self.loaded.corpus.docs.len()
                );
            }
            "retriever" => {
                needs("a retriever spec, e.g. bm25 or hybrid:rrf(bm25,dense:NAME)")?;
                let spec = RetrieverSpec::parse(argument)?;
                self.check_available(&spec)?;
                writeln!(out, "retriever {spec}")?;
                self.retriever = spec;
            }
            "k" => {
                needs("a number of hits")?;
                let k: usize = argument
                    .parse()
                    .ok()
                    .filter(|k| (1..=10_000).contains(k))
                    .with_context(|| {
                        format!("`:k {argument}`: give a whole number from 1 to 10000")
                    })?;
                self.k = k;
                writeln!(out, "k {k}")?;
            }
            "doc" => {
                needs("a doc id")?;
                let doc = self.doc(argument)?;
                writeln!(out, "{}", doc.id)?;
                if !doc.title.is_empty() {
                    writeln!(out, "{}", doc.title)?;
                }
                writeln!(out, "{}", doc.text)?;
            }
            "rank" => {
                needs("a doc id")?;
                drop(out);
                self.rank(argument)?;
            }
            other => bail!("unknown command `:{other}`; type :help for the list"),
        }
        Ok(())
    }

    fn doc(&self, id: &str) -> Result<&Document> {
        match self.loaded.positions.get(id) {
            Some(&i) => Ok(&self.loaded.corpus.docs[i]),
            None => bail!("no document `{id}` in {}", self.loaded.dataset.name),
        }
    }

    /// Opens every dense index `spec` names (and loads its model) unless
    /// open already; an index that is missing or stale is an error.
    fn check_available(&mut self, spec: &RetrieverSpec) -> Result<()> {
        for name in spec.dense_names() {
            if self.loaded.dense.contains_key(name) {
                continue;
            }
            let side = open_dense(self.session, &self.loaded, name)
                .with_context(|| format!("dense:{name} on {}", self.loaded.dataset.name))?;
            self.loaded.dense.insert(name.to_string(), side);
        }
        Ok(())
    }

    /// The ranking of `spec` for `query`, `depth` deep.
    fn retrieve(
        &self,
        spec: &RetrieverSpec,
        query: &str,
        depth: usize,
        latency: &mut Latency,
    ) -> Result<Vec<RunHit>> {
        match spec {
            RetrieverSpec::Bm25 => {
                let started = Instant::now();
                let hits = self.loaded.bm25.search(query, depth)?;
                latency.search += started.elapsed();
                Ok(hits
                    .into_iter()
                    .map(|hit| RunHit {
                        doc_id: hit.doc_id,
                        score: f64::from(hit.score),
                    })
                    .collect())
            }
            RetrieverSpec::Dense(name) => {
                let Some(side) = self.loaded.dense.get(name) else {
                    bail!("dense:{name} is not open (choose it with :retriever first)");
                };
                let started = Instant::now();
                let inputs = side.prepared.query_inputs(&[query])?;
                let vectors = side.model.embed(&inputs)?;
                latency.encode += started.elapsed();
                let started = Instant::now();
                let vector = vectors.into_iter().next().unwrap_or_default();
                let lists = side
                    .index
                    .search(&side.prepared.fingerprint, &vector, depth)?;
                let mut hits = Vec::new();
                for hit in lists.into_iter().next().unwrap_or_default() {
                    hits.push(RunHit {
                        doc_id: side.index.doc_id(hit.row)?.to_string(),
                        score: f64::from(hit.score),
                    });
                }
                latency.search += started.elapsed();
                Ok(hits)
            }
            RetrieverSpec::Hybrid {
                fusion,
                first,
                second,
            } => {
                let side_depth = depth.max(FUSION_DEPTH);
                let first = self.retrieve(first, query, side_depth, latency)?;
                let second = self.retrieve(second, query, side_depth, latency)?;
                let started = Instant::now();
                let fused = fusion.fuse(&first, &second, depth);
                latency.search += started.elapsed();
                Ok(fused)
            }
        }
    }

    fn search(&mut self, query: &str) -> Result<()> {
        let mut latency = Latency::default();
        let hits = self.retrieve(&self.retriever, query, self.k, &mut latency)?;
        self.last_query = Some(query.to_string());
        let terms: HashSet<String> = self.loaded.bm25.analyze(query).into_iter().collect();
        let mut out = std::io::stdout().lock();
        if hits.is_empty() {
            writeln!(out, "no hits")?;
        }
        for (rank, hit) in hits.iter().enumerate() {
            let (title, snippet) = match self.doc(&hit.doc_id) {
                Ok(doc) => (
                    self.highlight(&doc.title, &terms, usize::MAX),
                    self.highlight(&doc.text, &terms, SNIPPET_WORDS),
                ),
                Err(_) => (String::new(), "(not in the corpus file)".to_string()),
            };
            writeln!(
                out,
                "{:>3}. {:>10.4}  {}  {title}",
                rank + 1,
                hit.score,
                hit.doc_id
            )?;
            if !snippet.is_empty() {
                writeln!(out, "     {snippet}")?;
            }
        }
        writeln!(
            out,
            "[{} hits, {}, encode {:.2} ms, search {:.2} ms]",
            hits.len(),
            self.retriever,
            latency.encode.as_secs_f64() * 1e3,
            latency.search.as_secs_f64() * 1e3
        )?;
        Ok(())
    }

    /// `:rank ID`: the doc's rank under bm25, every dense index opened in
    /// this session, and the current retriever.
    fn rank(&self, id: &str) -> Result<()> {
        let Some(query) = &self.last_query else {
            bail!("no query yet: search something first, then `:rank {id}`");
        };
        self.doc(id)?;
        let mut retrievers = vec![RetrieverSpec::Bm25];
        retrievers.extend(
            self.loaded
                .dense
                .keys()
                .map(|name| RetrieverSpec::Dense(name.clone())),
        );
        if !retrievers.contains(&self.retriever) {
            retrievers.push(self.retriever.clone());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{id} for `{query}`:")?;
        for spec in retrievers {
            let mut latency = Latency::default();
            let hits = self.retrieve(&spec, query, RANK_DEPTH, &mut latency)?;
            match hits.iter().position(|hit| hit.doc_id == id) {
                Some(i) => writeln!(out, "  {spec}: rank {} (score {:.4})", i + 1, hits[i].score)?,
                None => writeln!(out, "  {spec}: not in the top {RANK_DEPTH}")?,
            }
        }
        Ok(())
    }

    /// `text` with the words that analyse to a query term marked; with a
    /// word limit, the window of that many words holding the most matches.
    fn highlight(&self, text: &str, terms: &HashSet<String>, max_words: usize) -> String {
        let words: Vec<&str> = text.split_whitespace().collect();
        let matched: Vec<bool> = words
            .iter()
            .map(|word| {
                self.loaded
                    .bm25
                    .analyze(word)
                    .iter()
                    .any(|t| terms.contains(t))
            })
            .collect();
        let width = max_words.min(words.len());
        let mut start = 0;
        if width < words.len() {
            let mut in_window: usize = matched[..width].iter().filter(|m| **m).count();
            let mut best = in_window;
            for i in width..words.len() {
                in_window += usize::from(matched[i]);
                in_window -= usize::from(matched[i - width]);
                if in_window > best {
                    best = in_window;
                    start = i + 1 - width;
                }
            }
        }
        let end = start + width;
        let mut parts = Vec::with_capacity(width + 2);
        if start > 0 {
            parts.push("…".to_string());
        }
        for (word, hit) in words[start..end].iter().zip(&matched[start..end]) {
            parts.push(match (hit, self.style) {
                (false, _) => (*word).to_string(),
                (true, Style::Bold) => format!("\x1b[1m{word}\x1b[0m"),
                (true, Style::Stars) => format!("**{word}**"),
            });
        }
        if end < words.len() {
            parts.push("…".to_string());
        }
        parts.join(" ")
    }
}

/// Opens `dense:NAME` for the loaded dataset and loads its encoder, as
/// `quarry eval` does (f32 builds encode queries on the CPU).
fn open_dense(session: &Session, loaded: &Loaded, name: &str) -> Result<DenseSide> {
    let dir = resolve_dense_dir(&session.catalog, name, &loaded.dataset.name)
        .map_err(anyhow::Error::msg)?;
    let info = BuildInfo::load(&dir)?.with_context(|| {
        format!(
            "{} has no build record: its build did not finish",
            dir.display()
        )
    })?;
    let index = DenseIndex::open(&dir)?;
    if !index.manifest().complete {
        bail!(
            "the build of {} did not finish; run `{}` again to resume it",
            dir.display(),
            info.command_for(&loaded.dataset.name)
        );
    }
    if index.manifest().corpus_checksum != loaded.corpus.sha256 {
        bail!(
            "{} was built from another corpus; rebuild it: {}",
            dir.display(),
            info.command_for(&loaded.dataset.name)
        );
    }
    let mut spec = info.encoder.clone();
    if spec.precision == Precision::F32 {
        spec.device = ComputeDevice::Cpu;
    }
    let prepared = PreparedEncoder::prepare(&spec)?;
    if prepared.fingerprint != index.manifest().encoder_fingerprint {
        bail!(
            "the model at {} no longer matches the index's encoder; rebuild: {}",
            spec.model.display(),
            info.command_for(&loaded.dataset.name)
        );
    }
    let model = prepared.load()?;
    Ok(DenseSide {
        index,
        prepared,
        model,
    })
}
