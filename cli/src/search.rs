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

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::rc::Rc;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use quarry_engine::dataset::{Dataset, Document};
use quarry_engine::retriever::{Bm25Retriever, Retriever, RetrieverSpec, Retrievers};

use crate::args::is_broken_pipe;
use crate::progress::Progress;
use crate::session::Session;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry search --dataset nfcorpus --retriever bm25
  echo 'statins and breast cancer' | quarry search --dataset nfcorpus --retriever dense:all-minilm-l6-v2 --k 5")]
pub struct SearchArgs {
    /// Registry name, or a path to any BEIR folder
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: String,

    /// bm25, dense:NAME, hnsw:NAME, run:FILE, hybrid:rrf(A,B), hybrid:rrf(k=60,A,B) or
    /// hybrid:interp(ALPHA,A,B)
    #[arg(long, default_value = "bm25", value_name = "SPEC")]
    pub retriever: String,

    /// Hits to show per query
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub k: u32,
}

/// How deep `:rank` looks in each retriever's ranking.
const RANK_DEPTH: usize = 1000;
/// Words shown around the best-matching part of a document.
const SNIPPET_WORDS: usize = 32;

const HELP: &str = "\
type a query to search, or a command:
  :dataset NAME     switch to another dataset (registry name or BEIR folder)
  :retriever SPEC   bm25 | dense:NAME | hnsw:NAME | hybrid:rrf(A,B) | hybrid:rrf(k=60,A,B) | hybrid:interp(0.5,A,B)
  :q ID             run the dataset's query ID, hits marked with their qrels grade
  :k N              show N hits per query
  :doc ID           show a document in full
  :rank ID          how each available retriever ranked ID for the last query
  :help             this list
  :quit, :q         leave (also Ctrl-D)";

struct Shell<'s> {
    session: &'s Session,
    /// The dataset's retrievers (its BM25 index always open: it analyses
    /// queries for highlighting).
    retrievers: Retrievers,
    bm25: Rc<Bm25Retriever>,
    retriever: Retriever,
    k: usize,
    last_query: Option<String>,
    /// How highlighted terms are marked.
    style: Style,
    /// The dataset's queries and the judgments of its default split, read on the first `:q ID`.
    judged: Option<JudgedQueries>,
}

/// What `:q ID` needs: each query's text and its judgments.
struct JudgedQueries {
    texts: HashMap<String, String>,
    qrels: quarry_engine::dataset::Qrels,
    split: String,
}

#[derive(Clone, Copy)]
enum Style {
    /// ANSI bold (stdout is a terminal).
    Bold,
    /// `**term**` (stdout is a pipe or file).
    Stars,
}

pub fn run(session: &Session, args: SearchArgs) -> Result<()> {
    let spec = RetrieverSpec::parse(&args.retriever)
        .map_err(|e| crate::args::UsageError(e.to_string()))?;
    let (mut retrievers, bm25) = load(session, &args.dataset)?;
    let retriever = open(&mut retrievers, &spec)?;
    let mut shell = Shell {
        session,
        retrievers,
        bm25,
        retriever,
        k: args.k as usize,
        last_query: None,
        judged: None,
        style: if std::io::stdout().is_terminal() {
            Style::Bold
        } else {
            Style::Stars
        },
    };
    if std::io::stdin().is_terminal() {
        shell.interactive()
    } else {
        shell.scripted()
    }
}

/// The retrievers of dataset `name`, with its BM25 index open (built first
/// if needed).
fn load(session: &Session, name: &str) -> Result<(Retrievers, Rc<Bm25Retriever>)> {
    let dataset = Dataset::resolve(name, Some(&session.registry))?;
    let corpus = dataset
        .read_corpus()
        .with_context(|| format!("reading the corpus of {}", dataset.name))?;
    let progress = Progress::new(
        "building BM25 index",
        "docs",
        !std::io::stderr().is_terminal(),
    );
    let mut retrievers =
        Retrievers::new(&session.catalog, &dataset, corpus, progress.bar().clone());
    let bm25 = retrievers
        .bm25()
        .with_context(|| format!("opening the BM25 index of {}", dataset.name))?;
    progress.finish();
    Ok((retrievers, bm25))
}

/// Opens `spec` over the loaded dataset; a dense index's query encoder is
/// loaded now, so that the first query is not the slow one.
fn open(retrievers: &mut Retrievers, spec: &RetrieverSpec) -> Result<Retriever> {
    let retriever = retrievers
        .open(spec)
        .with_context(|| format!("{spec} on {}", retrievers.dataset().name))?;
    load_query_encoders(&retriever)
        .with_context(|| format!("{spec} on {}", retrievers.dataset().name))?;
    Ok(retriever)
}

fn load_query_encoders(retriever: &Retriever) -> Result<()> {
    match retriever {
        Retriever::Bm25(_) => Ok(()),
        Retriever::Dense(dense, _) => Ok(dense.load_query_encoder()?),
        // The shell searches free text, which a run file has no ranking for.
        Retriever::RunFile(run) => Err(crate::args::UsageError(format!(
            "run:{} ranks only the queries it holds; the search shell needs bm25, dense:NAME or a hybrid of them",
            run.path().display()
        ))
        .into()),
        Retriever::Hybrid { first, second, .. } => {
            load_query_encoders(first)?;
            load_query_encoders(second)
        }
    }
}

impl Shell<'_> {
    fn interactive(&mut self) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        let history = self.session.catalog.home.join("search_history");
        // No history yet is normal; a damaged one is not worth stopping for.
        let _ = editor.load_history(&history);
        println!(
            "{} ({} docs), retriever {}, k {} — :help for commands",
            self.retrievers.dataset().name,
            self.retrievers.corpus().docs.len(),
            self.retriever.spec(),
            self.k
        );
        loop {
            let prompt = format!("{}> ", self.retrievers.dataset().name);
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
        // Bytes, not `lines()`: a line that is not UTF-8 is a mistake in that
        // line (reported, skipped), not the end of the shell.
        for (number, line) in stdin.split(b'\n').enumerate() {
            let bytes = line.with_context(|| format!("reading stdin line {}", number + 1))?;
            let Ok(line) = std::str::from_utf8(&bytes) else {
                eprintln!("error: stdin line {}: not UTF-8 text; skipped", number + 1);
                continue;
            };
            if !self.handle_line(line.strip_suffix('\r').unwrap_or(line))? {
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
                    "q" | "query" if !argument.is_empty() => self.query_by_id(argument),
                    "q" | "quit" | "exit" => return Ok(false),
                    _ => self.command(name, argument),
                }
            }
            None => self.search(line),
        };
        match result {
            Ok(()) => {}
            Err(err) if is_broken_pipe(&err) => return Err(err),
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
                let (mut retrievers, bm25) = load(self.session, argument)?;
                // The current retriever if the new dataset has it (a dense index is per
                // dataset), else BM25, saying why.
                let spec = self.retriever.spec();
                let retriever = match open(&mut retrievers, &spec) {
                    Ok(retriever) => retriever,
                    Err(err) => {
                        eprintln!("note: {err:#}; using bm25");
                        open(&mut retrievers, &RetrieverSpec::Bm25)?
                    }
                };
                self.retrievers = retrievers;
                self.bm25 = bm25;
                self.retriever = retriever;
                self.last_query = None;
                self.judged = None;
                println!(
                    "dataset {} ({} docs), retriever {}",
                    self.retrievers.dataset().name,
                    self.retrievers.corpus().docs.len(),
                    self.retriever.spec()
                );
            }
            "retriever" => {
                needs("a retriever spec, e.g. bm25 or hybrid:rrf(bm25,dense:NAME)")?;
                let spec = RetrieverSpec::parse(argument)?;
                self.retriever = open(&mut self.retrievers, &spec)?;
                writeln!(out, "retriever {spec}")?;
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
        match self.retrievers.document(id) {
            Some(doc) => Ok(doc),
            None => bail!("no document `{id}` in {}", self.retrievers.dataset().name),
        }
    }

    /// `:q ID`: the dataset's query ID, its hits marked with their grades.
    fn query_by_id(&mut self, id: &str) -> Result<()> {
        if self.judged.is_none() {
            let dataset = self.retrievers.dataset();
            let texts = dataset
                .read_queries()?
                .into_iter()
                .map(|q| (q.id, q.text))
                .collect();
            let split = dataset.default_split.clone();
            let qrels = dataset.read_qrels(&split)?;
            self.judged = Some(JudgedQueries {
                texts,
                qrels,
                split,
            });
        }
        let judged = self.judged.as_ref().expect("read above");
        let Some(text) = judged.texts.get(id).cloned() else {
            bail!(
                "no query `{id}` in {}'s queries",
                self.retrievers.dataset().name
            );
        };
        let grades = judged.qrels.by_query.get(id).cloned().unwrap_or_default();
        let relevant = grades.values().filter(|&&g| g > 0).count();
        println!(
            "query {id}: {text}  [{relevant} relevant in qrels/{}]",
            judged.split
        );
        self.show(&text, Some(&grades))
    }

    fn search(&mut self, query: &str) -> Result<()> {
        self.show(query, None)
    }

    /// Searches `query` and prints its hits; with `grades`, each hit's judgment
    /// (`[rel 2]`, `[judged 0]`, or nothing when unjudged).
    fn show(&mut self, query: &str, grades: Option<&HashMap<String, i32>>) -> Result<()> {
        let ranking = self.retrievers.search(&self.retriever, query, self.k)?;
        self.last_query = Some(query.to_string());
        let terms: HashSet<String> = self.bm25.analyze(query).into_iter().collect();
        let mut out = std::io::stdout().lock();
        if ranking.hits.is_empty() {
            writeln!(out, "no hits")?;
        }
        for (rank, hit) in ranking.hits.iter().enumerate() {
            let (title, snippet) = match hit.document {
                Some(doc) => (
                    self.highlight(&doc.title, &terms, usize::MAX),
                    self.highlight(&doc.text, &terms, SNIPPET_WORDS),
                ),
                None => (String::new(), "(not in the corpus file)".to_string()),
            };
            let mark = match grades.and_then(|g| g.get(&hit.doc_id)) {
                Some(&grade) if grade > 0 => format!(" [rel {grade}]"),
                Some(&grade) => format!(" [judged {grade}]"),
                None => String::new(),
            };
            writeln!(
                out,
                "{:>3}. {:>10.4}  {}{mark}  {title}",
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
            ranking.hits.len(),
            self.retriever.spec(),
            ranking.encode_time.as_secs_f64() * 1e3,
            ranking.search_time.as_secs_f64() * 1e3
        )?;
        Ok(())
    }

    /// `:rank ID`: the doc's rank under bm25, every dense index opened in
    /// this session, and the current retriever.
    fn rank(&mut self, id: &str) -> Result<()> {
        let Some(query) = &self.last_query else {
            bail!("no query yet: search something first, then `:rank {id}`");
        };
        self.doc(id)?;
        let mut retrievers = vec![RetrieverSpec::Bm25];
        retrievers.extend(
            self.retrievers
                .open_dense_names()
                .into_iter()
                .map(RetrieverSpec::Dense),
        );
        let current = self.retriever.spec();
        if !retrievers.contains(&current) {
            retrievers.push(current);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{id} for `{query}`:")?;
        for spec in retrievers {
            let retriever = self.retrievers.open(&spec)?;
            let (hits, _, _) = retriever.search(query, RANK_DEPTH)?;
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
            .map(|word| self.bm25.analyze(word).iter().any(|t| terms.contains(t)))
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
