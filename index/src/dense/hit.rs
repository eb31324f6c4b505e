//! What a dense search returns, and how hits rank: higher score first, equal
//! scores by ascending row number (the order of [`crate::topk::TopK`] here).

use std::cmp::Ordering;

use crate::topk::Ranked;

/// One search result: a global row number (see [`super::DenseIndex::doc_id`]) and its score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hit {
    pub row: u64,
    pub score: f32,
}

impl Ranked for Hit {
    #[inline]
    fn score(&self) -> f32 {
        self.score
    }

    #[inline]
    fn rank_cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.row.cmp(&other.row))
    }
}
