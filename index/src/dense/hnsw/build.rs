//! The graph while it is being built: hnswlib's parallel insertion, with
//! links in atomics that searches read while other threads insert.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;

use super::rows::Rows;
use super::search::{greedy, search_layer, select_neighbours, Cand, Links, Shape, MAX_M};

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
pub(super) struct BuildGraph {
    pub(super) shape: Shape,
    pub(super) levels: Vec<u8>,
    pub(super) layer0: Vec<AtomicU32>,
    /// Node i's upper layers live at `upper[upper_start[i]..upper_start[i+1]]`.
    pub(super) upper_start: Vec<u64>,
    pub(super) upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    /// (entry point, max level); held for the whole insertion of a node that raises the max level.
    pub(super) entry: Mutex<(u32, usize)>,
}

impl BuildGraph {
    pub(super) fn new(n: usize, shape: Shape) -> BuildGraph {
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
    pub(super) fn insert(&self, rows: &Rows, id: u32, ef_construction: usize) {
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
