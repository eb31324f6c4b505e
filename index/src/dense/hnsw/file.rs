//! `hnsw/graph.qhg`, the persisted graph (byte layout in `index/FORMAT.md`):
//! its layout arithmetic, the atomic writer, and the memory-mapped reader
//! with its full structural check.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use memmap2::Mmap;
use rayon::prelude::*;

use super::build::BuildGraph;
use super::search::{Links, Shape, MAX_M};
use crate::dense::format::{check_version, checksum, u32_le, u64_le};
use crate::error::io_err;
use crate::IndexError;

const GRAPH_MAGIC: &[u8; 8] = b"QRYHNSW\0";
const GRAPH_VERSION: u32 = 1;
const GRAPH_HEADER_LEN: usize = 64;
const GRAPH_FOOTER_LEN: usize = 16;
const NO_NODE: u32 = u32::MAX;

pub(super) fn graph_err(file: &Path, detail: impl std::fmt::Display) -> IndexError {
    IndexError::DataCorruption {
        file: file.to_path_buf(),
        detail: format!("hnsw graph: {detail}"),
    }
}

/// Byte layout of `graph.qhg` (see FORMAT.md).
#[derive(Debug, Clone, Copy)]
pub(super) struct GraphLayout {
    shape: Shape,
    pub(super) n: usize,
    pub(super) entry: u32,
    pub(super) max_level: usize,
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
        let u32_at = |o: usize| u32_le(b, o);
        let u64_at = |o: usize| u64_le(b, o);
        check_version(file, u32_at(8), GRAPH_VERSION)?;
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
pub(super) fn write_graph(
    path: &Path,
    g: &BuildGraph,
    ef_construction: usize,
) -> Result<u64, IndexError> {
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
pub(super) struct MappedGraph {
    map: Mmap,
    pub(super) layout: GraphLayout,
}

impl MappedGraph {
    pub(super) fn open(path: &Path) -> Result<MappedGraph, IndexError> {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        // SAFETY: graph files are immutable once renamed into place (rebuilds
        // write a new file and rename it over).
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let layout = GraphLayout::decode(path, &map)?;
        Ok(MappedGraph { map, layout })
    }

    pub(super) fn stored_checksum(&self) -> u64 {
        let o = self.layout.footer_off();
        u64_le(&self.map, o)
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
        u64_le(&self.map, o) as usize
    }
    fn levels(&self) -> &[u8] {
        &self.map[self.layout.levels_off()..self.layout.levels_off() + self.layout.n]
    }

    /// Full check: checksum, then every structural invariant a search relies on.
    pub(super) fn verify(&self, path: &Path) -> Result<(), IndexError> {
        let actual = checksum(&self.map[..self.layout.footer_off()]);
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
