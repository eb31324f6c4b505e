//! The one bounded top-k collector of the crate, shared by the BM25 search
//! ([`crate::bm25`]) and the dense flat scans ([`crate::dense`]).
//!
//! Each user brings its own item type and its own total ranking order
//! ([`Ranked::rank_cmp`]): BM25 breaks score ties as Lucene/Anserini do (doc id
//! order), the dense scans by row number. A total order makes the kept set and
//! its order independent of the order items are offered in (parallel scans
//! merge partial collectors in any order and get the same answer).
//!
//! (HNSW's candidate and result heaps are part of its search algorithm, not a
//! top-k of finished scores, and stay in `dense::hnsw`.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Something a search ranks: a score plus whatever breaks its ties.
pub trait Ranked: Copy {
    /// The score, higher first (used only to reject hopeless items quickly).
    fn score(&self) -> f32;
    /// A total order: `Less` when `self` ranks before (is better than) `other`.
    /// Must agree with [`Ranked::score`]: a strictly lower score ranks after.
    fn rank_cmp(&self, other: &Self) -> Ordering;
}

/// Heap entry ordered so that the max-heap's top is the worst kept item.
#[derive(Clone, Copy)]
struct Worst<T>(T);

impl<T: Ranked> Ord for Worst<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" = ranks later.
        self.0.rank_cmp(&other.0)
    }
}
impl<T: Ranked> PartialOrd for Worst<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ranked> PartialEq for Worst<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T: Ranked> Eq for Worst<T> {}

/// The `k` best items offered so far.
pub struct TopK<T> {
    k: usize,
    heap: BinaryHeap<Worst<T>>,
    /// Score of the worst kept item once full: anything strictly below is
    /// rejected without touching the heap (the common case of a long scan).
    floor: f32,
}

impl<T: Ranked> TopK<T> {
    pub fn new(k: usize) -> TopK<T> {
        TopK {
            k,
            // k may be "everything" (usize::MAX): reserve for a sane prefix only.
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    #[inline]
    pub fn push(&mut self, item: T) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(item));
            if self.heap.len() == self.k {
                self.floor = self.heap.peek().expect("k > 0").0.score();
            }
            return;
        }
        if self.k == 0 || item.score() < self.floor {
            return;
        }
        let mut worst = self.heap.peek_mut().expect("k > 0");
        if item.rank_cmp(&worst.0) == Ordering::Less {
            *worst = Worst(item);
            drop(worst);
            self.floor = self.heap.peek().expect("k > 0").0.score();
        }
    }

    /// Adds everything `other` kept (partial collectors of a parallel scan).
    pub fn merge(&mut self, other: TopK<T>) {
        for w in other.heap {
            self.push(w.0);
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<T> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| w.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Item {
        score: f32,
        id: u32,
    }
    impl Ranked for Item {
        fn score(&self) -> f32 {
            self.score
        }
        fn rank_cmp(&self, other: &Self) -> Ordering {
            other
                .score
                .total_cmp(&self.score)
                .then(self.id.cmp(&other.id))
        }
    }

    fn items(scores: &[f32]) -> Vec<Item> {
        scores
            .iter()
            .enumerate()
            .map(|(id, &score)| Item {
                score,
                id: id as u32,
            })
            .collect()
    }

    fn collect(k: usize, items: impl IntoIterator<Item = Item>) -> Vec<Item> {
        let mut top = TopK::new(k);
        items.into_iter().for_each(|i| top.push(i));
        top.into_sorted()
    }

    #[test]
    fn keeps_the_best_with_ties_by_id_in_any_offer_order() {
        let all = items(&[1.0, 3.0, 2.0, 3.0, 0.5, 2.0, 3.0]);
        let want: Vec<u32> = vec![1, 3, 6, 2];
        let forward = collect(4, all.iter().copied());
        let backward = collect(4, all.iter().rev().copied());
        assert_eq!(forward.iter().map(|i| i.id).collect::<Vec<_>>(), want);
        assert_eq!(forward, backward);
    }

    #[test]
    fn merge_equals_one_collector() {
        let all = items(&[5.0, 1.0, 4.0, 4.0, 9.0, 0.0, 4.0, 7.0]);
        let mut a = TopK::new(3);
        let mut b = TopK::new(3);
        for (i, item) in all.iter().enumerate() {
            if i % 2 == 0 { &mut a } else { &mut b }.push(*item);
        }
        a.merge(b);
        assert_eq!(a.into_sorted(), collect(3, all));
    }

    #[test]
    fn k_zero_and_k_larger_than_input() {
        assert!(collect(0, items(&[1.0, 2.0])).is_empty());
        let got = collect(usize::MAX, items(&[1.0, 2.0]));
        assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), vec![1, 0]);
    }
}
