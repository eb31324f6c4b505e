//! Bounded top-k selection with a total, deterministic order: higher score
//! first, equal scores by ascending row number.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One search result: a global row number (see [`super::DenseIndex::doc_id`]) and its score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hit {
    pub row: u64,
    pub score: f32,
}

/// Heap entry ordered so that the heap's top is the worst kept hit.
#[derive(Clone, Copy)]
struct Worst(Hit);

impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" = worse: lower score, then higher row.
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.row.cmp(&other.0.row))
    }
}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}

/// `a` ranks before `b`.
#[inline]
pub fn better(a: Hit, b: Hit) -> bool {
    a.score > b.score || (a.score == b.score && a.row < b.row)
}

pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
    /// Score of the worst kept hit once full (fast rejection).
    floor: f32,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    #[inline]
    pub fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() == self.k {
            if hit.score < self.floor {
                return;
            }
            let worst = self.heap.peek().expect("k > 0").0;
            if !better(hit, worst) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Worst(hit));
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().expect("k > 0").0.score;
        }
    }

    pub fn merge(&mut self, other: TopK) {
        for w in other.heap {
            self.push(w.0);
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
        v
    }
}
