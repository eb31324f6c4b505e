//! The dense retriever: a built index (`quarry build`) searched exactly
//! (flat scan of the shards) or through its HNSW graph, with query vectors
//! from the index's query cache; the model is loaded only for queries the
//! cache lacks, or for free text typed into the search shell.
//!
//! Before anything is searched, the index's three records of its encoder
//! must agree — the manifest, `build.json` and the query cache — so vectors
//! of another encoder are never compared with the documents' (that would
//! give silently wrong numbers).

use std::cell::{OnceCell, RefCell};
use std::path::Path;
use std::time::{Duration, Instant};

use quarry_encoder::{ComputeDevice, EmbeddingModel, Precision};
use quarry_index::dense::{DenseIndex, Hit, HnswIndex, Manifest};

use crate::build::{
    provenance_differences, short, stale_format, BuildInfo, EncoderSpec, PreparedEncoder,
    Provenance, QueryCache,
};
use crate::catalog::Catalog;
use crate::dataset::{Corpus, Dataset, Query};
use crate::error::{EngineError, Result};
use crate::run::RunHit;

/// How a dense index is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseSearch {
    /// Every stored vector scored: the exact top k.
    Exact,
    /// The HNSW graph built next to the shards: approximate, faster.
    Hnsw,
}

/// An open dense index, its build record and query cache. Lives on one
/// thread (the cache and the lazily loaded model are behind cells).
pub struct DenseRetriever {
    name: String,
    dataset: String,
    index: DenseIndex,
    info: BuildInfo,
    cache: RefCell<QueryCache>,
    encoder: OnceCell<(PreparedEncoder, EmbeddingModel)>,
    hnsw: OnceCell<HnswIndex>,
    /// Time to open the index and its cache.
    pub open_time: Duration,
}

impl DenseRetriever {
    /// Opens `dense:NAME` of `dataset`, refusing an index that is missing,
    /// unfinished, built from another corpus or whose records disagree.
    pub fn open(
        catalog: &Catalog,
        dataset: &Dataset,
        corpus: &Corpus,
        name: &str,
    ) -> Result<DenseRetriever> {
        let started = Instant::now();
        let dir = catalog
            .resolve_dense_dir(name, &dataset.name)
            .map_err(|detail| EngineError::Build {
                path: catalog.home.join("dense"),
                detail,
            })?;
        let manifest = Manifest::load(&dir)
            .map_err(|e| stale_format(&dir, e))?
            .ok_or_else(|| EngineError::Build {
                path: dir.clone(),
                detail: "no manifest.json".into(),
            })?;
        let info = match BuildInfo::load(&dir)? {
            Some(info) if manifest.complete => info,
            None if manifest
                .encoder_fingerprint
                .starts_with(crate::vector_io::IMPORTED_PREFIX) =>
            {
                return Err(EngineError::Build {
                    path: dir.clone(),
                    detail: format!(
                        "imported vectors have no encoder to embed {}'s queries: search the \
                         index's stored queries with `quarry index search {} --stored-queries \
                         -k 1000 --trec > run.trec`, then `quarry eval --retriever \
                         run:run.trec` (which drops self hits where the dataset asks, as \
                         dense:NAME does)",
                        dataset.name,
                        dir.display()
                    ),
                })
            }
            _ => {
                return Err(EngineError::Build {
                    path: dir.clone(),
                    detail: "the build of this index did not finish; run its quarry build command again to resume it".into(),
                })
            }
        };
        check_records_agree(&dir, &manifest, &info)?;
        if manifest.corpus_checksum != corpus.sha256 {
            return Err(EngineError::Build {
                path: dir.clone(),
                detail: format!(
                    "the index was built from another corpus (sha256 {}, now {}); rebuild it: {}",
                    short(&manifest.corpus_checksum),
                    short(&corpus.sha256),
                    info.command_for(&dataset.name)
                ),
            });
        }
        let index = DenseIndex::open(&dir)?;
        let cache = QueryCache::open(&dir, &manifest.encoder_fingerprint)?;
        Ok(DenseRetriever {
            name: name.to_string(),
            dataset: dataset.name.clone(),
            index,
            info,
            cache: RefCell::new(cache),
            encoder: OnceCell::new(),
            hnsw: OnceCell::new(),
            open_time: started.elapsed(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        self.index.dir()
    }

    fn fingerprint(&self) -> &str {
        &self.index.manifest().encoder_fingerprint
    }

    /// The top `k` docs of each query, by cached query vectors (queries the
    /// cache lacks are encoded and added to it first). Returns the lists, how
    /// many queries were encoded and the time that took.
    pub fn retrieve(
        &self,
        queries: &[&Query],
        k: usize,
        how: DenseSearch,
    ) -> Result<(Vec<Vec<RunHit>>, usize, Duration)> {
        let started = Instant::now();
        let mut encoded = 0;
        if queries.iter().any(|q| self.cache.borrow().get(q).is_none()) {
            let (prepared, model) = self.query_encoder()?;
            encoded = self
                .cache
                .borrow_mut()
                .ensure(queries, prepared, Some(model))?;
        }
        let encode_time = started.elapsed();
        if queries.is_empty() {
            return Ok((Vec::new(), encoded, encode_time));
        }
        let cache = self.cache.borrow();
        let mut flat = Vec::with_capacity(queries.len() * self.index.dim());
        for q in queries {
            flat.extend_from_slice(cache.get(q).expect("ensured above"));
        }
        Ok((self.search_vectors(&flat, k, how)?, encoded, encode_time))
    }

    /// The top `k` docs of one query text, encoded now (the model is loaded
    /// on first use). Returns the hits and the time spent encoding.
    pub fn search(
        &self,
        text: &str,
        k: usize,
        how: DenseSearch,
    ) -> Result<(Vec<RunHit>, Duration)> {
        let started = Instant::now();
        let (prepared, model) = self.query_encoder()?;
        let inputs = prepared.query_inputs(&[text])?;
        let vector = model.embed(&inputs)?.into_iter().next().unwrap_or_default();
        let encode_time = started.elapsed();
        let lists = self.search_vectors(&vector, k, how)?;
        Ok((lists.into_iter().next().unwrap_or_default(), encode_time))
    }

    /// Loads the query encoder now (the search shell does so when a dense
    /// retriever is chosen, so the first query is not the slow one).
    pub fn load_query_encoder(&self) -> Result<()> {
        self.query_encoder().map(|_| ())
    }

    fn search_vectors(&self, flat: &[f32], k: usize, how: DenseSearch) -> Result<Vec<Vec<RunHit>>> {
        let lists = match how {
            DenseSearch::Exact => self.index.search(self.fingerprint(), flat, k)?,
            DenseSearch::Hnsw => {
                self.hnsw_graph()?
                    .search(&self.index, self.fingerprint(), flat, k, None)?
            }
        };
        lists.into_iter().map(|list| self.run_hits(list)).collect()
    }

    fn run_hits(&self, hits: Vec<Hit>) -> Result<Vec<RunHit>> {
        hits.into_iter()
            .map(|hit| {
                Ok(RunHit {
                    doc_id: self.index.doc_id(hit.row)?.to_string(),
                    score: f64::from(hit.score),
                })
            })
            .collect()
    }

    fn hnsw_graph(&self) -> Result<&HnswIndex> {
        if let Some(graph) = self.hnsw.get() {
            return Ok(graph);
        }
        if self.index.manifest().hnsw.is_none() {
            return Err(EngineError::Build {
                path: self.dir().to_path_buf(),
                detail: format!(
                    "hnsw:{} needs an HNSW graph: build it with `quarry index hnsw {}` \
                     (or rebuild with --hnsw), or search exactly with dense:{}",
                    self.name,
                    self.dir().display(),
                    self.name
                ),
            });
        }
        let graph = HnswIndex::load(&self.index)?;
        Ok(self.hnsw.get_or_init(|| graph))
    }

    /// The encoder that made the index, loaded for queries (f32 builds on the
    /// CPU); refused when the model files no longer match the index.
    fn query_encoder(&self) -> Result<(&PreparedEncoder, &EmbeddingModel)> {
        if let Some((prepared, model)) = self.encoder.get() {
            return Ok((prepared, model));
        }
        let mut spec = query_encoder_spec(&self.info.encoder);
        if let Some(hub) = spec.hub.clone() {
            if !spec.model.exists() {
                // The Hugging Face cache was cleared (or moved): fetch the same commit again.
                let source = crate::hub::ModelSource::Hub {
                    repo: hub.repo,
                    revision: Some(hub.commit),
                };
                let settings = crate::hub::HubSettings::from_env();
                spec.model =
                    crate::hub::resolve(&source, &settings, &indicatif::ProgressBar::hidden())?
                        .path;
            }
        }
        let prepared = PreparedEncoder::prepare(&spec)?;
        if prepared.fingerprint != self.fingerprint() {
            return Err(EngineError::Build {
                path: self.dir().to_path_buf(),
                detail: format!(
                    "queries need encoding, but the model at {} no longer matches the index's encoder; rebuild: {}",
                    spec.model.display(),
                    self.info.command_for(&self.dataset)
                ),
            });
        }
        let model = prepared.load()?;
        let (prepared, model) = self.encoder.get_or_init(|| (prepared, model));
        Ok((prepared, model))
    }
}

/// Queries of an f32 build are encoded on the CPU (a GPU is not needed to
/// evaluate); half-precision builds keep their device, since the CPU backend
/// computes in f32 and would give other vectors.
fn query_encoder_spec(build: &EncoderSpec) -> EncoderSpec {
    let mut spec = build.clone();
    if spec.precision == Precision::F32 {
        spec.device = ComputeDevice::Cpu;
    }
    spec
}

/// The manifest and the build record must name the same encoder and corpus.
fn check_records_agree(dir: &Path, manifest: &Manifest, info: &BuildInfo) -> Result<()> {
    let disagree: Vec<String> =
        provenance_differences(manifest, &info.fingerprint, &info.corpus_sha256)
            .map(|(field, in_manifest, in_build)| {
                let what = match field {
                    Provenance::Encoder => "encoder",
                    Provenance::Corpus => "corpus",
                };
                format!("{what} {in_manifest} in manifest.json, {in_build} in build.json")
            })
            .collect();
    if disagree.is_empty() {
        return Ok(());
    }
    Err(EngineError::DataCorruption {
        file: dir.to_path_buf(),
        detail: format!(
            "the index's records disagree ({}); rebuild it: {}",
            disagree.join("; "),
            info.command_for(&info.dataset)
        ),
    })
}
