//! Batching of the corpus into chunks: the unit of progress, of resumption
//! and of work handed to a device.
//!
//! Chunks start on multiples of the chunk size, so a resumed build cuts the
//! corpus exactly where an uninterrupted one did; the encoder sorts each
//! chunk by length inside, so equal chunks give equal batches and therefore
//! equal bytes.

/// Documents encoded per chunk by default.
pub const DEFAULT_CHUNK_DOCS: usize = 2048;

/// `[start, end)` document ranges still to encode when `done` rows of a
/// `total`-document corpus are stored. The first chunk may hold stored
/// rows (they are re-encoded and skipped, see [`super::shards`]). With
/// several devices the chunks shrink so that every device stays busy to
/// the end.
pub fn chunk_plan(
    done: usize,
    total: usize,
    chunk_docs: usize,
    devices: usize,
) -> Vec<(usize, usize)> {
    let mut chunk = chunk_docs.max(1);
    if devices > 1 {
        chunk = chunk.min(total.div_ceil(8 * devices).max(64));
    }
    ((done / chunk) * chunk..total)
        .step_by(chunk)
        .map(|start| (start, (start + chunk).min(total)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_plan_restarts_the_chunk_holding_the_first_missing_row() {
        assert_eq!(chunk_plan(0, 5, 2, 1), vec![(0, 2), (2, 4), (4, 5)]);
        assert_eq!(chunk_plan(3, 5, 2, 1), vec![(2, 4), (4, 5)]);
        // Every row stored: the last chunk is planned again, and the shard
        // writer skips its stored rows (an empty plan needs no special case).
        assert_eq!(chunk_plan(5, 5, 2, 1), vec![(4, 5)]);
        assert_eq!(chunk_plan(4, 4, 2, 1), vec![]);
        assert_eq!(chunk_plan(0, 3, 0, 1), vec![(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn several_devices_get_at_least_eight_chunks_each() {
        let plan = chunk_plan(0, 10_000, 2048, 2);
        assert_eq!(plan.len(), 16);
        assert_eq!(plan[0], (0, 625));
    }
}
