//! The HNSW search steps, shared by insertion (over the graph being built)
//! and by queries (over the mapped file): greedy descent through the upper
//! layers, best-first search of one layer, and hnswlib's neighbour selection.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::rows::Rows;

/// Largest M accepted (layer 0 then holds 256 links per node).
pub const MAX_M: usize = 128;

/// A (distance, row) pair ordered by distance, then row (deterministic ties).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cand {
    pub(super) dist: f32,
    pub(super) id: u32,
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

thread_local! {
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited { tags: Vec::new(), epoch: 0 }) };
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
pub(super) trait Links: Sync {
    /// Calls `f` with the links of `id` on `layer`.
    fn with_links<R>(&self, id: u32, layer: usize, f: impl FnOnce(&[u32]) -> R) -> R;
}

/// Graph geometry shared by the build and the mapped file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) m: usize,
    pub(super) m0: usize,
}
impl Shape {
    pub(super) fn layer0_words(self) -> usize {
        1 + self.m0
    }
    pub(super) fn upper_words(self) -> usize {
        1 + self.m
    }
}

/// Greedy descent through the layers above `down_to` (ef = 1).
pub(super) fn greedy<L: Links>(
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
pub(super) fn search_layer<L: Links>(
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
pub(super) fn select_neighbours(rows: &Rows, candidates: &[Cand], m: usize) -> Vec<Cand> {
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
