//! Hard-negative mining: turns a ranking of a train-split query into a
//! training group ([`TrainGroup`]) whose positives are the query's relevant
//! qrels docs and whose negatives are the highest-ranked docs that nobody
//! judged for it.
//!
//! Place in the data flow: `quarry mine` retrieves `depth` docs per query
//! with any of quarry's retrievers (BM25, a dense index, a hybrid), hands
//! each ranking to [`Miner::group`], and writes the groups with
//! [`crate::train_data::write_train_groups`]; `quarry train` reads them.
//!
//! What is dropped from a ranking before negatives are chosen: every doc the
//! split's qrels judge for the query, relevant or not (MS MARCO's qrels hold
//! only positives, so Tevatron's `build_train_hn.py` drops just those; BEIR
//! qrels may also hold grade-0 judgments, and no judged doc is trained on as
//! a negative here). Then `skip_top` candidates are skipped (unjudged
//! positives cluster at the very top of a ranking), and `negatives` are
//! taken: the top-ranked ones (default, deterministic), or a seeded random
//! sample of the whole window, as `build_train_hn.py` samples 30 of the top
//! 200.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use std::path::Path;

use indicatif::ProgressBar;

use crate::dataset::{Corpus, Document, Qrels, Query};
use crate::error::Result;
use crate::run::{Run, RunHit};
use crate::train_data::{write_train_groups, GroupFormat, TrainGroup, TrainPassage};

/// How negatives are taken from the filtered ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegativeSampling {
    /// The highest-ranked ones, in rank order.
    Top,
    /// A uniform sample of the whole filtered window, in sampled order,
    /// seeded per query from `seed` and the query id (independent of the
    /// order queries are processed in).
    Random { seed: u64 },
}

impl NegativeSampling {
    pub fn name(self) -> String {
        match self {
            NegativeSampling::Top => "top".to_string(),
            NegativeSampling::Random { seed } => format!("random(seed={seed})"),
        }
    }
}

/// Mining settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MineConfig {
    /// Negatives kept per group.
    pub negatives: usize,
    /// Filtered candidates skipped from the top before sampling.
    pub skip_top: usize,
    pub sampling: NegativeSampling,
    /// How the groups are written (passages inline, or by id).
    pub format: GroupFormat,
}

impl Default for MineConfig {
    /// Tevatron's `build_train_hn.py` defaults: 30 negatives.
    fn default() -> Self {
        MineConfig {
            negatives: 30,
            skip_top: 0,
            sampling: NegativeSampling::Top,
            format: GroupFormat::TevatronV1,
        }
    }
}

/// Why a query produced no group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// None of its relevant qrels docs is in the corpus (or it has none).
    NoPositives,
}

/// One query's group, or why it has none, with counts for the summary.
#[derive(Debug)]
pub struct Mined {
    pub group: Result<TrainGroup, Skipped>,
    /// Relevant qrels docs missing from the corpus (left out of positives).
    pub positives_missing: usize,
    /// Ranked docs dropped because the query's qrels judge them.
    pub judged_dropped: usize,
}

/// Builds groups against one corpus.
pub struct Miner<'c> {
    docs: HashMap<&'c str, &'c Document>,
    config: MineConfig,
}

impl<'c> Miner<'c> {
    pub fn new(corpus: &'c Corpus, config: MineConfig) -> Miner<'c> {
        Miner {
            docs: corpus.docs.iter().map(|d| (d.id.as_str(), d)).collect(),
            config,
        }
    }

    pub fn config(&self) -> MineConfig {
        self.config
    }

    /// The group of `query`: positives are its qrels docs with grade > 0
    /// (highest grade first, then by doc id), negatives come from `ranking`
    /// (the retriever's order) without any doc `judged` names.
    pub fn group(&self, query: &Query, judged: &HashMap<String, i32>, ranking: &[RunHit]) -> Mined {
        let mut relevant: Vec<(&str, i32)> = judged
            .iter()
            .filter(|(_, &grade)| grade > 0)
            .map(|(doc, &grade)| (doc.as_str(), grade))
            .collect();
        relevant.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut positives_missing = 0;
        let positives: Vec<TrainPassage> = relevant
            .iter()
            .filter_map(|(id, _)| {
                let doc = self.docs.get(id);
                positives_missing += usize::from(doc.is_none());
                doc.map(|d| TrainPassage::from_document(d))
            })
            .collect();

        let mut judged_dropped = 0;
        let mut seen = std::collections::HashSet::new();
        let candidates: Vec<&Document> = ranking
            .iter()
            .filter(|hit| {
                let is_judged = judged.contains_key(&hit.doc_id);
                judged_dropped += usize::from(is_judged);
                !is_judged && seen.insert(hit.doc_id.as_str())
            })
            .filter_map(|hit| self.docs.get(hit.doc_id.as_str()).copied())
            .skip(self.config.skip_top)
            .collect();
        let chosen = self.sample(&query.id, candidates);
        let negatives = chosen
            .into_iter()
            .map(TrainPassage::from_document)
            .collect();

        Mined {
            group: if positives.is_empty() {
                Err(Skipped::NoPositives)
            } else {
                Ok(TrainGroup {
                    query_id: query.id.clone(),
                    query: query.text.clone(),
                    positives,
                    negatives,
                })
            },
            positives_missing,
            judged_dropped,
        }
    }

    fn sample<'d>(&self, query_id: &str, mut candidates: Vec<&'d Document>) -> Vec<&'d Document> {
        let n = self.config.negatives;
        match self.config.sampling {
            NegativeSampling::Top => {
                candidates.truncate(n);
                candidates
            }
            NegativeSampling::Random { seed } => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(query_seed(seed, query_id));
                candidates.shuffle(&mut rng);
                candidates.truncate(n);
                candidates
            }
        }
    }
}

/// A per-query seed: the first 8 bytes of sha256("seed TAB query id").
fn query_seed(seed: u64, query_id: &str) -> u64 {
    let digest = Sha256::digest(format!("{seed}\t{query_id}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// What mining a split's queries gave (`quarry mine`'s summary).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MineStats {
    pub groups_written: usize,
    /// Skipped: no relevant qrels doc in the corpus.
    pub without_positives: usize,
    /// Skipped: fewer than the minimum of negatives left.
    pub below_min_negatives: usize,
    pub positives: usize,
    pub negatives: usize,
    /// Groups that got fewer negatives than asked (written anyway).
    pub short_of_negatives: usize,
    /// Relevant qrels docs absent from the corpus (left out of positives).
    pub positives_missing: usize,
    /// Retrieved docs dropped because the query's qrels judge them.
    pub judged_dropped: usize,
}

/// Mines one training group per query from its ranking in `run` and writes
/// the groups (Tevatron JSONL, atomically) to `output`; groups with fewer
/// than `min_negatives` negatives are left out. `progress` ticks per query.
pub fn mine_to_file(
    miner: &Miner<'_>,
    queries: &[&Query],
    qrels: &Qrels,
    run: &Run,
    min_negatives: usize,
    output: &Path,
    progress: &ProgressBar,
) -> Result<MineStats> {
    let wanted = miner.config().negatives;
    let mut stats = MineStats::default();
    let empty = Vec::new();
    progress.set_length(queries.len() as u64);
    let groups = progress.wrap_iter(queries.iter()).filter_map(|query| {
        let judged = qrels.by_query.get(&query.id)?;
        let ranking = run.by_query.get(&query.id).unwrap_or(&empty);
        let mined = miner.group(query, judged, ranking);
        stats.positives_missing += mined.positives_missing;
        stats.judged_dropped += mined.judged_dropped;
        match mined.group {
            Err(Skipped::NoPositives) => {
                stats.without_positives += 1;
                None
            }
            Ok(group) if group.negatives.len() < min_negatives => {
                stats.below_min_negatives += 1;
                None
            }
            Ok(group) => {
                stats.positives += group.positives.len();
                stats.negatives += group.negatives.len();
                stats.short_of_negatives += usize::from(group.negatives.len() < wanted);
                Some(group)
            }
        }
    });
    let written = write_train_groups(output, groups, miner.config().format)?;
    stats.groups_written = written;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(ids: &[&str]) -> Corpus {
        Corpus {
            path: "corpus.jsonl".into(),
            docs: ids
                .iter()
                .map(|id| Document {
                    id: id.to_string(),
                    title: format!("T{id}"),
                    text: format!("text of {id}"),
                })
                .collect(),
            sha256: String::new(),
        }
    }

    fn ranking(ids: &[&str]) -> Vec<RunHit> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| RunHit {
                doc_id: id.to_string(),
                score: 100.0 - i as f64,
            })
            .collect()
    }

    fn ids(passages: &[TrainPassage]) -> Vec<&str> {
        passages.iter().map(|p| p.doc_id.as_str()).collect()
    }

    #[test]
    fn positives_and_judged_docs_never_become_negatives() {
        let corpus = corpus(&["a", "b", "c", "d", "e", "f", "g"]);
        let query = Query {
            id: "q".into(),
            text: "query".into(),
        };
        let judged: HashMap<String, i32> = [("b", 2), ("e", 1), ("c", 0), ("zz", 1)]
            .iter()
            .map(|(d, g)| (d.to_string(), *g))
            .collect();
        let hits = ranking(&["b", "a", "c", "missing", "d", "e", "f", "g"]);
        let miner = Miner::new(
            &corpus,
            MineConfig {
                negatives: 3,
                ..MineConfig::default()
            },
        );
        let mined = miner.group(&query, &judged, &hits);
        let group = mined.group.unwrap();
        assert_eq!(ids(&group.positives), vec!["b", "e"]);
        assert_eq!(group.positives[0].title, "Tb");
        assert_eq!(ids(&group.negatives), vec!["a", "d", "f"]);
        assert_eq!(mined.positives_missing, 1);
        assert_eq!(mined.judged_dropped, 3);

        let skipping = Miner::new(
            &corpus,
            MineConfig {
                negatives: 3,
                skip_top: 2,
                ..MineConfig::default()
            },
        );
        let group = skipping.group(&query, &judged, &hits).group.unwrap();
        assert_eq!(ids(&group.negatives), vec!["f", "g"]);
    }

    #[test]
    fn random_sampling_is_seeded_per_query() {
        let names: Vec<String> = (0..50).map(|i| format!("d{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let corpus = corpus(&refs);
        let judged: HashMap<String, i32> = [("d0".to_string(), 1)].into();
        let hits = ranking(&refs);
        let query = Query {
            id: "q".into(),
            text: "t".into(),
        };
        let config = |seed| MineConfig {
            negatives: 5,
            sampling: NegativeSampling::Random { seed },
            ..MineConfig::default()
        };
        let draw = |seed| {
            Miner::new(&corpus, config(seed))
                .group(&query, &judged, &hits)
                .group
                .unwrap()
                .negatives
        };
        let first = draw(7);
        assert_eq!(first.len(), 5);
        assert_eq!(first, draw(7));
        assert_ne!(ids(&first), ids(&draw(8)));
        assert!(!ids(&first).contains(&"d0"));
    }

    #[test]
    fn a_query_without_positives_in_the_corpus_is_skipped() {
        let corpus = corpus(&["a"]);
        let judged: HashMap<String, i32> = [("x".to_string(), 1), ("a".to_string(), 0)].into();
        let query = Query {
            id: "q".into(),
            text: "t".into(),
        };
        let mined =
            Miner::new(&corpus, MineConfig::default()).group(&query, &judged, &ranking(&["a"]));
        assert_eq!(mined.group.unwrap_err(), Skipped::NoPositives);
        assert_eq!(mined.positives_missing, 1);
    }
}
