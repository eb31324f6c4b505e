//! Optional approximate search: an HNSW graph (Malkov & Yashunin's
//! hierarchical navigable small world, with hnswlib's insertion and
//! neighbour-selection heuristic) over the index's own memory-mapped rows.
//!
//! Data flow: [`HnswIndex::build`] reads the rows straight from the shards
//! (no copy), inserts them in parallel, writes the links to
//! `<index>/hnsw/graph.qhg` (layout in `index/FORMAT.md`), measures recall
//! against the exact scan and records the graph in the manifest.
//! [`HnswIndex::load`] maps that file back: reload is O(1) apart from the
//! one-time checksum (cached in `verified.json` like the shards').
//!
//! Why not the hnsw_rs crate (used before): with the same M / ef_construction
//! and the same SIMD distance, its search was 0.6–0.8× hnswlib's queries/s at
//! recall@10 ≥ 0.95, its build 2.5× slower and its reload 7× slower
//! (docs/results.md). Its search allocates an `Arc` per candidate, keeps the
//! visited set in a SipHash `HashMap`, takes an `RwLock` and bumps shared
//! `Arc` counts per visited node (two threads were no faster than one), and
//! its dump stores a second copy of every vector that reload deserialises.
//! Here: visited set = epoch-tagged array, links = flat `u32` arrays, vectors
//! = the shards themselves.
//!
//! Distance: `−⟨a, b⟩` (inner product; cosine on unit vectors). The builder
//! refuses rows whose norm is not 1 (± 1e-2): the neighbour-selection
//! heuristic assumes a metric-like distance.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use memmap2::Mmap;
use rayon::prelude::*;

use super::format::{checksum_hex, ElementType};
use super::hit::Hit;
use super::kernels::{decode_row, dot_f32};
use super::manifest::{HnswEntry, Manifest};
use super::reader::DenseIndex;
use super::verified::VerifiedSet;
use crate::error::io_err;
use crate::topk::Ranked;
use crate::IndexError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Max links per node on upper layers (layer 0 keeps 2·M), as hnswlib's M.
    pub m: usize,
    pub ef_construction: usize,
    /// Default ef at search time (stored in the manifest).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

const HNSW_DIR: &str = "hnsw";
const GRAPH_FILE: &str = "graph.qhg";
const GRAPH_MAGIC: &[u8; 8] = b"QRYHNSW\0";
const GRAPH_VERSION: u32 = 1;
const GRAPH_HEADER_LEN: usize = 64;
const GRAPH_FOOTER_LEN: usize = 16;
/// Largest M accepted (layer 0 then holds 256 links per node).
pub const MAX_M: usize = 128;
const NO_NODE: u32 = u32::MAX;

fn graph_err(file: &Path, detail: impl std::fmt::Display) -> IndexError {
    IndexError::DataCorruption {
        file: file.to_path_buf(),
        detail: format!("hnsw graph: {detail}"),
    }
}

/// A (distance, row) pair ordered by distance, then row (deterministic ties).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cand {
    dist: f32,
    id: u32,
}
impl Eq for Cand {}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist.total_cmp(&o.dist).then(self.id.cmp(&o.id))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The index's rows, read in place from the shard maps.
struct Rows<'a> {
    shards: Vec<&'a [u8]>,
    shard_rows: usize,
    stride: usize,
    dim: usize,
    element_type: ElementType,
    n: usize,
}

thread_local! {
    /// Decoding buffers for f16/bf16 rows (f32 rows are used in place).
    static DECODED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { tags: Vec::new(), epoch: 0 }) };
}

impl<'a> Rows<'a> {
    fn new(index: &'a DenseIndex) -> Rows<'a> {
        let shard_rows = index.manifest().shard_rows as usize;
        let stride = index.element_type().row_stride(index.dim());
        let shards: Vec<&[u8]> = index.shards().map(|(_, s)| s.row_bytes()).collect();
        debug_assert!(shards
            .iter()
            .all(|s| (s.as_ptr() as usize).is_multiple_of(4)));
        Rows {
            shards,
            shard_rows,
            stride,
            dim: index.dim(),
            element_type: index.element_type(),
            n: index.rows() as usize,
        }
    }

    #[inline]
    fn bytes(&self, id: u32) -> &'a [u8] {
        let id = id as usize;
        let (s, r) = (id / self.shard_rows, id % self.shard_rows);
        &self.shards[s][r * self.stride..r * self.stride + self.stride]
    }

    #[inline]
    fn f32_row(&self, id: u32) -> &'a [f32] {
        let b = self.bytes(id);
        // SAFETY: f32 shards: rows start 64-byte aligned (FORMAT.md) inside a
        // page-aligned map and hold `dim` f32 values; the map lives for 'a.
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), self.dim) }
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.bytes(id).as_ptr();
            // SAFETY: prefetch is a hint; the addresses are inside the map.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(p.cast(), _MM_HINT_T0);
                _mm_prefetch(p.add(64).cast(), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// Distance from a query (f32) to a stored row.
    #[inline]
    fn dist_to(&self, q: &[f32], id: u32) -> f32 {
        if self.element_type == ElementType::F32 {
            return -dot_f32(q, self.f32_row(id));
        }
        DECODED.with(|d| {
            let buf = &mut d.borrow_mut().0;
            buf.resize(self.dim, 0.0);
            decode_row(self.element_type, self.bytes(id), self.dim, buf);
            -dot_f32(q, buf)
        })
    }

    /// Distance between two stored rows.
    fn dist_between(&self, a: u32, b: u32) -> f32 {
        if self.element_type == ElementType::F32 {
            return -dot_f32(self.f32_row(a), self.f32_row(b));
        }
        DECODED.with(|d| {
            let (buf_a, buf_b) = &mut *d.borrow_mut();
            buf_a.resize(self.dim, 0.0);
            buf_b.resize(self.dim, 0.0);
            decode_row(self.element_type, self.bytes(a), self.dim, buf_a);
            decode_row(self.element_type, self.bytes(b), self.dim, buf_b);
            -dot_f32(buf_a, buf_b)
        })
    }

    /// Row `id` as f32 (owned for non-f32 storage).
    fn vector(&self, id: u32) -> std::borrow::Cow<'a, [f32]> {
        if self.element_type == ElementType::F32 {
            return std::borrow::Cow::Borrowed(self.f32_row(id));
        }
        let mut v = vec![0f32; self.dim];
        decode_row(self.element_type, self.bytes(id), self.dim, &mut v);
        std::borrow::Cow::Owned(v)
    }
}

/// Visited set for one search: a tag per node, valid when equal to `epoch`
/// (clearing is one increment, not a pass over all nodes).
struct Visited {
    tags: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
    }
    /// True when `id` was not yet visited (and marks it).
    #[inline]
    fn insert(&mut self, id: u32) -> bool {
        let t = &mut self.tags[id as usize];
        if *t == self.epoch {
            false
        } else {
            *t = self.epoch;
            true
        }
    }
}

/// Read access to the links of a graph, during the build (atomics) or after
/// reload (the mapped file).
trait Links: Sync {
    /// Calls `f` with the links of `id` on `layer`.
    fn with_links<R>(&self, id: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R;
}

/// Graph geometry shared by the build and the mapped file.
#[derive(Debug, Clone, Copy)]
struct Shape {
    m: usize,
    m0: usize,
}
impl Shape {
    fn layer0_words(self) -> usize {
        1 + self.m0
    }
    fn upper_words(self) -> usize {
        1 + self.m
    }
}

/// Greedy descent through the layers above `down_to` (ef = 1).
fn greedy<L: Links>(
    g: &L,
    rows: &Rows,
    q: &[f32],
    mut cur: Cand,
    from: usize,
    down_to: usize,
) -> Cand {
    for layer in (down_to + 1..=from).rev() {
        loop {
            let next = g.with_links(cur.id, layer, |links| {
                let mut best = cur;
                for &e in links {
                    let d = rows.dist_to(q, e);
                    if d < best.dist {
                        best = Cand { dist: d, id: e };
                    }
                }
                best
            });
            if next.id == cur.id {
                break;
            }
            cur = next;
        }
    }
    cur
}

/// Best-first search of one layer from `entry`; returns up to `ef` nearest,
/// nearest first.
fn search_layer<L: Links>(
    g: &L,
    rows: &Rows,
    q: &[f32],
    entry: Cand,
    ef: usize,
    layer: usize,
) -> Vec<Cand> {
    VISITED.with(|v| {
        let visited = &mut *v.borrow_mut();
        visited.reset(rows.n);
        let mut candidates: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        visited.insert(entry.id);
        candidates.push(Reverse(entry));
        results.push(entry);
        while let Some(Reverse(c)) = candidates.pop() {
            let worst = results.peek().map_or(f32::INFINITY, |w| w.dist);
            if c.dist > worst && results.len() >= ef {
                break;
            }
            g.with_links(c.id, layer, |links| {
                if let Some(&first) = links.first() {
                    rows.prefetch(first);
                }
                for (i, &e) in links.iter().enumerate() {
                    if let Some(&next) = links.get(i + 1) {
                        rows.prefetch(next);
                    }
                    if !visited.insert(e) {
                        continue;
                    }
                    let d = rows.dist_to(q, e);
                    let worst = results.peek().map_or(f32::INFINITY, |w| w.dist);
                    if results.len() < ef || d < worst {
                        let cand = Cand { dist: d, id: e };
                        candidates.push(Reverse(cand));
                        results.push(cand);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            });
        }
        results.into_sorted_vec()
    })
}

/// hnswlib's neighbour-selection heuristic: walking candidates nearest first,
/// keep one only if it is closer to the new node than to every one kept.
fn select_neighbours(rows: &Rows, candidates: &[Cand], m: usize) -> Vec<Cand> {
    if candidates.len() <= m {
        return candidates.to_vec();
    }
    let mut chosen: Vec<Cand> = Vec::with_capacity(m);
    for &c in candidates {
        if chosen.len() >= m {
            break;
        }
        if chosen
            .iter()
            .all(|r| rows.dist_between(c.id, r.id) >= c.dist)
        {
            chosen.push(c);
        }
    }
    chosen
}

/// Deterministic level of node `id`: ⌊−ln(u)·mL⌋ with mL = 1/ln(M) and u from
/// a hash of (seed, id), as in the HNSW paper.
fn node_level(id: u64, m: usize) -> usize {
    let mut z = id
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
    let ml = 1.0 / (m as f64).ln();
    ((-u.ln() * ml) as usize).min(30)
}

/// The graph while it is being built: links in atomics (searches read them
/// while other threads insert, as in hnswlib), one lock per node for writers.
struct BuildGraph {
    shape: Shape,
    levels: Vec<u8>,
    layer0: Vec<AtomicU32>,
    /// Node i's upper layers live at `upper[upper_start[i]..upper_start[i+1]]`.
    upper_start: Vec<u64>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    /// (entry point, max level); held for the whole insertion of a node that raises the max level.
    entry: Mutex<(u32, usize)>,
}

impl BuildGraph {
    fn new(n: usize, shape: Shape) -> BuildGraph {
        let levels: Vec<u8> = (0..n as u64)
            .map(|i| node_level(i, shape.m) as u8)
            .collect();
        let mut upper_start = Vec::with_capacity(n + 1);
        let mut total = 0u64;
        for &l in &levels {
            upper_start.push(total);
            total += l as u64 * shape.upper_words() as u64;
        }
        upper_start.push(total);
        let atomics = |len: usize| (0..len).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
        BuildGraph {
            shape,
            layer0: atomics(n * shape.layer0_words()),
            upper: atomics(total as usize),
            upper_start,
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            entry: Mutex::new((0, levels.first().copied().unwrap_or(0) as usize)),
            levels,
        }
    }

    fn slot(&self, id: u32, layer: usize) -> (&[AtomicU32], usize) {
        if layer == 0 {
            let w = self.shape.layer0_words();
            (
                &self.layer0[id as usize * w..(id as usize + 1) * w],
                self.shape.m0,
            )
        } else {
            let w = self.shape.upper_words();
            let s = self.upper_start[id as usize] as usize + (layer - 1) * w;
            (&self.upper[s..s + w], self.shape.m)
        }
    }

    fn set_links(&self, id: u32, layer: usize, links: &[u32]) {
        let (slot, cap) = self.slot(id, layer);
        debug_assert!(links.len() <= cap);
        for (a, &l) in slot[1..].iter().zip(links) {
            a.store(l, Relaxed);
        }
        slot[0].store(links.len() as u32, Relaxed);
    }

    fn lock(&self, id: u32) -> std::sync::MutexGuard<'_, ()> {
        self.locks[id as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts node `id` (its vector is row `id`).
    fn insert(&self, rows: &Rows, id: u32, ef_construction: usize) {
        let level = self.levels[id as usize] as usize;
        let entry_guard = self.entry.lock().unwrap_or_else(|p| p.into_inner());
        let (ep, max_level) = *entry_guard;
        let raise = level > max_level;
        let held = if raise {
            Some(entry_guard)
        } else {
            drop(entry_guard);
            None
        };
        let q = rows.vector(id);
        let q = &q[..];
        let mut cur = Cand {
            dist: rows.dist_to(q, ep),
            id: ep,
        };
        if level < max_level {
            cur = greedy(self, rows, q, cur, max_level, level);
        }
        for layer in (0..=level.min(max_level)).rev() {
            let mut found = search_layer(self, rows, q, cur, ef_construction, layer);
            found.retain(|c| c.id != id);
            if found.is_empty() {
                continue;
            }
            let chosen = select_neighbours(rows, &found, self.shape.m);
            {
                let _g = self.lock(id);
                let ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
                self.set_links(id, layer, &ids);
            }
            for nb in &chosen {
                self.link_back(rows, nb.id, id, nb.dist, layer);
            }
            cur = found[0];
        }
        if raise {
            if let Some(mut g) = held {
                *g = (id, level);
            }
        }
    }

    /// Adds `new` to `node`'s links on `layer`, pruning with the heuristic when full.
    fn link_back(&self, rows: &Rows, node: u32, new: u32, dist: f32, layer: usize) {
        let _g = self.lock(node);
        let (slot, cap) = self.slot(node, layer);
        let count = (slot[0].load(Relaxed) as usize).min(cap);
        let current: Vec<u32> = slot[1..=count].iter().map(|a| a.load(Relaxed)).collect();
        if current.contains(&new) {
            return;
        }
        if count < cap {
            slot[1 + count].store(new, Relaxed);
            slot[0].store(count as u32 + 1, Relaxed);
            return;
        }
        let mut cands: Vec<Cand> = current
            .iter()
            .map(|&e| Cand {
                dist: rows.dist_between(node, e),
                id: e,
            })
            .collect();
        cands.push(Cand { dist, id: new });
        cands.sort_unstable();
        let kept: Vec<u32> = select_neighbours(rows, &cands, cap)
            .iter()
            .map(|c| c.id)
            .collect();
        self.set_links(node, layer, &kept);
    }
}

impl Links for BuildGraph {
    fn with_links<R>(&self, id: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let (slot, cap) = self.slot(id, layer);
        let count = (slot[0].load(Relaxed) as usize).min(cap);
        let mut buf = [0u32; 2 * MAX_M];
        for (b, a) in buf.iter_mut().zip(&slot[1..=count]) {
            *b = a.load(Relaxed);
        }
        f(&buf[..count])
    }
}

/// Byte layout of `graph.qhg` (see FORMAT.md).
#[derive(Debug, Clone, Copy)]
struct GraphLayout {
    shape: Shape,
    n: usize,
    entry: u32,
    max_level: usize,
    ef_construction: usize,
    upper_words: usize,
}

impl GraphLayout {
    fn levels_off(&self) -> usize {
        GRAPH_HEADER_LEN
    }
    fn layer0_off(&self) -> usize {
        self.levels_off() + self.n.next_multiple_of(8)
    }
    fn upper_start_off(&self) -> usize {
        self.layer0_off() + (self.n * self.shape.layer0_words() * 4).next_multiple_of(8)
    }
    fn upper_off(&self) -> usize {
        self.upper_start_off() + (self.n + 1) * 8
    }
    fn footer_off(&self) -> usize {
        self.upper_off() + (self.upper_words * 4).next_multiple_of(8)
    }
    fn file_len(&self) -> usize {
        self.footer_off() + GRAPH_FOOTER_LEN
    }

    fn encode_header(&self) -> [u8; GRAPH_HEADER_LEN] {
        let mut b = [0u8; GRAPH_HEADER_LEN];
        b[0..8].copy_from_slice(GRAPH_MAGIC);
        b[8..12].copy_from_slice(&GRAPH_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.shape.m as u32).to_le_bytes());
        b[16..20].copy_from_slice(&(self.shape.m0 as u32).to_le_bytes());
        b[20..24].copy_from_slice(&(self.max_level as u32).to_le_bytes());
        b[24..32].copy_from_slice(&(self.n as u64).to_le_bytes());
        b[32..36].copy_from_slice(&self.entry.to_le_bytes());
        b[36..40].copy_from_slice(&(self.ef_construction as u32).to_le_bytes());
        b[40..48].copy_from_slice(&(self.upper_words as u64).to_le_bytes());
        b
    }

    fn decode(file: &Path, b: &[u8]) -> Result<GraphLayout, IndexError> {
        if b.len() < GRAPH_HEADER_LEN + GRAPH_FOOTER_LEN {
            return Err(graph_err(
                file,
                format!("file is {} bytes, too short", b.len()),
            ));
        }
        if &b[0..8] != GRAPH_MAGIC {
            return Err(graph_err(file, "wrong magic: not a quarry HNSW graph"));
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != GRAPH_VERSION {
            return Err(IndexError::UnsupportedVersion {
                file: file.to_path_buf(),
                found: version,
                supported: GRAPH_VERSION,
            });
        }
        let (m, m0) = (u32_at(12) as usize, u32_at(16) as usize);
        if m == 0 || m > MAX_M || m0 != 2 * m {
            return Err(graph_err(file, format!("bad M = {m} / M0 = {m0}")));
        }
        let layout = GraphLayout {
            shape: Shape { m, m0 },
            max_level: u32_at(20) as usize,
            n: u64_at(24) as usize,
            entry: u32_at(32),
            ef_construction: u32_at(36) as usize,
            upper_words: u64_at(40) as usize,
        };
        if layout.n > u32::MAX as usize || layout.upper_words > b.len() {
            return Err(graph_err(
                file,
                "node count or upper-layer size out of range",
            ));
        }
        if layout.file_len() != b.len() {
            return Err(graph_err(
                file,
                format!(
                    "file is {} bytes, its header implies {} (truncated?)",
                    b.len(),
                    layout.file_len()
                ),
            ));
        }
        Ok(layout)
    }
}

/// Writes the built graph to `path` atomically; returns its checksum.
fn write_graph(path: &Path, g: &BuildGraph, ef_construction: usize) -> Result<u64, IndexError> {
    let (entry, max_level) = *g.entry.lock().unwrap_or_else(|p| p.into_inner());
    let n = g.levels.len();
    let layout = GraphLayout {
        shape: g.shape,
        n,
        entry: if n == 0 { NO_NODE } else { entry },
        max_level,
        ef_construction,
        upper_words: g.upper.len(),
    };
    let mut sum = 0;
    quarry_fsio::write_with(path, |out| {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut written = 0usize;
        let mut put = |bytes: &[u8]| -> std::io::Result<()> {
            hasher.update(bytes);
            written += bytes.len();
            out.write_all(bytes)
        };
        let pad8 = |len: usize| vec![0u8; len.next_multiple_of(8) - len];
        put(&layout.encode_header())?;
        put(&g.levels)?;
        put(&pad8(n))?;
        let words = |a: &[AtomicU32]| -> Vec<u8> {
            a.iter()
                .flat_map(|w| w.load(Relaxed).to_le_bytes())
                .collect()
        };
        for chunk in g.layer0.chunks(1 << 16) {
            put(&words(chunk))?;
        }
        put(&pad8(g.layer0.len() * 4))?;
        let starts: Vec<u8> = g.upper_start.iter().flat_map(|s| s.to_le_bytes()).collect();
        put(&starts)?;
        for chunk in g.upper.chunks(1 << 16) {
            put(&words(chunk))?;
        }
        put(&pad8(g.upper.len() * 4))?;
        debug_assert_eq!(written, layout.footer_off());
        sum = hasher.digest();
        out.write_all(&sum.to_le_bytes())?;
        out.write_all(GRAPH_MAGIC)
    })?;
    Ok(sum)
}

/// A persisted graph, mapped read-only.
struct MappedGraph {
    map: Mmap,
    layout: GraphLayout,
}

impl MappedGraph {
    fn open(path: &Path) -> Result<MappedGraph, IndexError> {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        // SAFETY: graph files are immutable once renamed into place (rebuilds
        // write a new file and rename it over).
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let layout = GraphLayout::decode(path, &map)?;
        Ok(MappedGraph { map, layout })
    }

    fn stored_checksum(&self) -> u64 {
        let o = self.layout.footer_off();
        u64::from_le_bytes(self.map[o..o + 8].try_into().expect("8 bytes"))
    }

    fn words(&self, off: usize, count: usize) -> &[u32] {
        let b = &self.map[off..off + count * 4];
        // SAFETY: `off` is a multiple of 8 inside a page-aligned map, so the
        // pointer is 4-aligned; little-endian files on little-endian targets
        // (FORMAT.md).
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u32>(), count) }
    }
    fn layer0(&self) -> &[u32] {
        self.words(
            self.layout.layer0_off(),
            self.layout.n * self.layout.shape.layer0_words(),
        )
    }
    fn upper(&self) -> &[u32] {
        self.words(self.layout.upper_off(), self.layout.upper_words)
    }
    fn upper_start(&self, id: usize) -> usize {
        let o = self.layout.upper_start_off() + id * 8;
        u64::from_le_bytes(self.map[o..o + 8].try_into().expect("8 bytes")) as usize
    }
    fn levels(&self) -> &[u8] {
        &self.map[self.layout.levels_off()..self.layout.levels_off() + self.layout.n]
    }

    /// Full check: checksum, then every structural invariant a search relies on.
    fn verify(&self, path: &Path) -> Result<(), IndexError> {
        let actual = super::format::checksum(&self.map[..self.layout.footer_off()]);
        if actual != self.stored_checksum() {
            return Err(graph_err(
                path,
                format!(
                    "checksum mismatch: footer says {:016x}, content hashes to {actual:016x}",
                    self.stored_checksum()
                ),
            ));
        }
        let l = &self.layout;
        let n = l.n;
        if n > 0
            && (l.entry as usize >= n || self.levels()[l.entry as usize] as usize != l.max_level)
        {
            return Err(graph_err(
                path,
                "entry point out of range or not on the top layer",
            ));
        }
        let (w0, wu) = (l.shape.layer0_words(), l.shape.upper_words());
        let check_list = |list: &[u32], cap: usize| {
            (list[0] as usize) <= cap
                && list[1..=list[0] as usize].iter().all(|&e| (e as usize) < n)
        };
        if !self
            .layer0()
            .par_chunks(w0)
            .all(|c| check_list(c, l.shape.m0))
        {
            return Err(graph_err(path, "a layer-0 link list is out of range"));
        }
        let mut prev = 0;
        for id in 0..n {
            let (s, e) = (self.upper_start(id), self.upper_start(id + 1));
            if s != prev || e < s || e - s != self.levels()[id] as usize * wu {
                return Err(graph_err(
                    path,
                    format!("upper-layer table broken at node {id}"),
                ));
            }
            prev = e;
        }
        if prev != l.upper_words || !self.upper().chunks(wu).all(|c| check_list(c, l.shape.m)) {
            return Err(graph_err(path, "an upper-layer link list is out of range"));
        }
        Ok(())
    }
}

impl Links for MappedGraph {
    #[inline]
    fn with_links<R>(&self, id: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let list = if layer == 0 {
            let w = self.layout.shape.layer0_words();
            &self.layer0()[id as usize * w..(id as usize + 1) * w]
        } else {
            let w = self.layout.shape.upper_words();
            let s = self.upper_start(id as usize) + (layer - 1) * w;
            &self.upper()[s..s + w]
        };
        f(&list[1..1 + list[0] as usize])
    }
}

/// What a build reports.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub entry: HnswEntry,
    pub build_seconds: f64,
}

/// A reloaded HNSW graph over an index's rows (searches read the rows from
/// the [`DenseIndex`] passed to [`HnswIndex::search`]).
pub struct HnswIndex {
    graph: MappedGraph,
    entry: HnswEntry,
}

fn graph_path(dir: &Path, entry: &HnswEntry) -> PathBuf {
    dir.join(&entry.dir).join(&entry.basename)
}

impl HnswIndex {
    /// Builds the graph over all rows of `index` (parallel insertion), writes it
    /// to `<index>/hnsw/graph.qhg`, measures recall@`recall_k` against exact
    /// flat search on `recall_queries` (row-major; when empty, 200 evenly
    /// spaced stored rows are used as queries) and records everything in the
    /// manifest.
    pub fn build(
        index: &DenseIndex,
        params: HnswParams,
        recall_queries: &[f32],
        recall_k: usize,
    ) -> Result<BuildReport, IndexError> {
        let dir = index.dir();
        let dim = index.dim();
        let n = index.rows() as usize;
        if params.m < 2 || params.m > MAX_M || params.ef_construction == 0 {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(dir),
                detail: format!(
                    "HNSW needs 2 <= M <= {MAX_M} and ef_construction >= 1 (got M = {}, ef_construction = {})",
                    params.m, params.ef_construction
                ),
            });
        }
        if n > u32::MAX as usize - 1 {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(dir),
                detail: format!("{n} rows: the HNSW graph addresses rows with 32 bits"),
            });
        }
        let rows = Rows::new(index);
        // Unit norms (checked in parallel, reported by global row number).
        if let Some(bad) = (0..n as u32).into_par_iter().find_first(|&i| {
            let v = rows.vector(i);
            (dot_f32(&v, &v).sqrt() - 1.0).abs() > 1e-2
        }) {
            let v = rows.vector(bad);
            let (shard_no, _) = (bad as usize / rows.shard_rows, 0);
            let shard = index
                .shards()
                .nth(shard_no)
                .map(|(_, s)| s.path().to_path_buf());
            return Err(IndexError::InvalidInput {
                file: shard.unwrap_or_else(|| dir.to_path_buf()),
                detail: format!(
                    "row {bad} has norm {:.4}: the HNSW index needs unit-normalised vectors",
                    dot_f32(&v, &v).sqrt()
                ),
            });
        }

        let start = Instant::now();
        let shape = Shape {
            m: params.m,
            m0: 2 * params.m,
        };
        let graph = BuildGraph::new(n, shape);
        // Node 0 is the first entry point; the others are inserted in row
        // order by all threads taking the next row from a shared counter
        // (hnswlib's ParallelFor).
        let next = AtomicUsize::new(1);
        rayon::broadcast(|_| loop {
            let id = next.fetch_add(1, Relaxed);
            if id >= n {
                break;
            }
            graph.insert(&rows, id as u32, params.ef_construction);
        });
        let build_seconds = start.elapsed().as_secs_f64();

        // Persist: hnsw/graph.qhg written atomically, then committed in the manifest.
        let gdir = dir.join(HNSW_DIR);
        std::fs::create_dir_all(&gdir).map_err(io_err(&gdir))?;
        // A build killed mid-write leaves its uniquely named temporary behind.
        super::writer::sweep_leftover_temps(&gdir)?;
        let path = gdir.join(GRAPH_FILE);
        let sum = write_graph(&path, &graph, params.ef_construction)?;
        drop(graph);
        let mut verified = VerifiedSet::load(dir);
        let rel = format!("{HNSW_DIR}/{GRAPH_FILE}");
        verified.mark(dir, &rel, &checksum_hex(sum));
        let _ = verified.store(dir);

        // Recall of the persisted graph against the exact scan.
        let owned_queries;
        let queries: &[f32] = if recall_queries.is_empty() {
            let nq = n.min(200);
            let mut q = Vec::with_capacity(nq * dim);
            for i in 0..nq {
                q.extend(index.row_vector((i * n / nq.max(1)) as u64)?);
            }
            owned_queries = q;
            &owned_queries
        } else {
            recall_queries
        };
        let mut entry = HnswEntry {
            dir: HNSW_DIR.into(),
            basename: GRAPH_FILE.into(),
            checksum: checksum_hex(sum),
            m: params.m,
            ef_construction: params.ef_construction,
            ef_search: params.ef_search,
            rows: n as u64,
            recall_at_k: 0.0,
            recall_k,
            recall_queries: queries.len() / dim,
        };
        let fp = index.manifest().encoder_fingerprint.clone();
        let loaded = HnswIndex {
            graph: MappedGraph::open(&path)?,
            entry: entry.clone(),
        };
        let exact = index.search(&fp, queries, recall_k)?;
        let approx = loaded.search(index, &fp, queries, recall_k, None)?;
        entry.recall_at_k = recall_at_k(&exact, &approx, recall_k);
        let mut manifest: Manifest = index.manifest().clone();
        manifest.hnsw = Some(entry.clone());
        manifest.store(dir)?;
        Ok(BuildReport {
            entry,
            build_seconds,
        })
    }

    /// Maps the graph recorded in the index's manifest (no rebuilding). The
    /// file is checksummed and structurally checked on its first load; later
    /// loads find it in `verified.json` and only read the header.
    pub fn load(index: &DenseIndex) -> Result<HnswIndex, IndexError> {
        let entry = index
            .manifest()
            .hnsw
            .clone()
            .ok_or_else(|| IndexError::InvalidInput {
                file: Manifest::path(index.dir()),
                detail: "the index has no HNSW graph (build one with `quarry index hnsw`)".into(),
            })?;
        if entry.checksum.is_empty() {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(index.dir()),
                detail: "the HNSW graph was written by an older quarry (hnsw_rs dump); rebuild it with `quarry index hnsw`".into(),
            });
        }
        let path = graph_path(index.dir(), &entry);
        let graph = MappedGraph::open(&path)?;
        if graph.layout.n as u64 != index.rows() || entry.rows != index.rows() {
            return Err(graph_err(
                &path,
                format!(
                    "graph covers {} rows (manifest: {}), index has {}",
                    graph.layout.n,
                    entry.rows,
                    index.rows()
                ),
            ));
        }
        if checksum_hex(graph.stored_checksum()) != entry.checksum {
            return Err(graph_err(
                &path,
                format!(
                    "footer checksum {} differs from the manifest's {}: graph replaced?",
                    checksum_hex(graph.stored_checksum()),
                    entry.checksum
                ),
            ));
        }
        let rel = format!("{}/{}", entry.dir, entry.basename);
        let mut verified = VerifiedSet::load(index.dir());
        if !verified.is_verified(index.dir(), &rel, &entry.checksum) {
            graph.verify(&path)?;
            verified.mark(index.dir(), &rel, &entry.checksum);
            let _ = verified.store(index.dir());
        }
        Ok(HnswIndex { graph, entry })
    }

    /// Re-checks the graph file in full (checksum and link ranges), whatever
    /// `verified.json` says: for `quarry index verify`.
    pub fn verify_file(index: &DenseIndex) -> Result<(), IndexError> {
        let Some(entry) = index.manifest().hnsw.clone() else {
            return Ok(());
        };
        let path = graph_path(index.dir(), &entry);
        MappedGraph::open(&path)?.verify(&path)
    }

    pub fn entry(&self) -> &HnswEntry {
        &self.entry
    }

    /// Approximate top-`k` for each query (best first, equal scores by
    /// ascending row); `ef` defaults to the manifest's ef_search. Queries run
    /// in parallel on the current rayon pool.
    pub fn search(
        &self,
        index: &DenseIndex,
        query_encoder_fingerprint: &str,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        index.check_encoder(query_encoder_fingerprint)?;
        let dim = index.dim();
        if queries.is_empty() || !queries.len().is_multiple_of(dim) {
            return Err(IndexError::DimensionMismatch {
                file: Manifest::path(index.dir()),
                expected: dim,
                found: queries.len() % dim,
            });
        }
        if let Some(i) = queries.iter().position(|v| !v.is_finite()) {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(index.dir()),
                detail: format!(
                    "query {} has a non-finite value at component {}",
                    i / dim,
                    i % dim
                ),
            });
        }
        if self.graph.layout.n as u64 != index.rows() {
            return Err(graph_err(
                &graph_path(index.dir(), &self.entry),
                format!(
                    "graph covers {} rows, index has {}",
                    self.graph.layout.n,
                    index.rows()
                ),
            ));
        }
        let ef = ef.unwrap_or(self.entry.ef_search).max(k);
        let rows = Rows::new(index);
        let g = &self.graph;
        let layout = g.layout;
        Ok(queries
            .par_chunks(dim)
            .map(|q| {
                if layout.n == 0 || k == 0 {
                    return Vec::new();
                }
                let ep = layout.entry;
                let start = Cand {
                    dist: rows.dist_to(q, ep),
                    id: ep,
                };
                let cur = greedy(g, &rows, q, start, layout.max_level, 0);
                let mut hits: Vec<Hit> = search_layer(g, &rows, q, cur, ef, 0)
                    .into_iter()
                    .map(|c| Hit {
                        row: c.id as u64,
                        score: -c.dist,
                    })
                    .collect();
                hits.sort_by(Hit::rank_cmp);
                hits.truncate(k);
                hits
            })
            .collect())
    }
}

/// Mean over queries of |approx top-k ∩ exact top-k| / k.
pub fn recall_at_k(exact: &[Vec<Hit>], approx: &[Vec<Hit>], k: usize) -> f64 {
    if exact.is_empty() || k == 0 {
        return 0.0;
    }
    let total: usize = exact
        .iter()
        .zip(approx)
        .map(|(e, a)| {
            let truth: std::collections::HashSet<u64> = e.iter().take(k).map(|h| h.row).collect();
            a.iter().take(k).filter(|h| truth.contains(&h.row)).count()
        })
        .sum();
    total as f64 / (exact.len() * k) as f64
}
