//! Batching: which sequences run together, padded to which length. Padded lengths come from
//! few buckets (multiples of 16, coarser for long inputs) because GPU kernels are autotuned per
//! shape.

use serde::{Deserialize, Serialize};

/// How sequences are grouped into padded batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPolicy {
    /// Padded lengths are multiples of this (and of 1/8 of the largest power of two not above the length).
    pub length_multiple: usize,
    /// Upper bound on `batch size x padded length`, i.e. on activation memory.
    pub max_batch_tokens: usize,
    /// Upper bound on the number of sequences in a batch.
    pub max_batch_size: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            length_multiple: 16,
            max_batch_tokens: 16_384,
            max_batch_size: 256,
        }
    }
}

impl BatchPolicy {
    /// The padded length of a sequence of `length` tokens, at most `cap`.
    ///
    /// Rounding to a multiple of `max(length_multiple, 2^floor(log2 length) / 8)`
    /// pads at most 1/8 of the length (or `length_multiple`) while keeping
    /// the number of distinct shapes logarithmic in the length (8 per octave).
    pub fn padded_length(&self, length: usize, cap: usize) -> usize {
        let power_below = if length == 0 {
            1
        } else {
            1usize << length.ilog2()
        };
        let step = self.length_multiple.max(power_below / 8).max(1);
        let padded = length.div_ceil(step) * step;
        padded.min(cap).max(length)
    }

    /// Groups sequence indices into batches of one padded length each, longest first.
    pub fn plan(&self, lengths: &[usize], cap: usize) -> Vec<PlannedBatch> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&index| std::cmp::Reverse(lengths[index]));
        let mut batches = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let padded = self.padded_length(lengths[order[start]], cap);
            let capacity = (self.max_batch_tokens / padded.max(1))
                .min(self.max_batch_size)
                .max(1);
            let mut end = start;
            while end < order.len()
                && end - start < capacity
                && self.padded_length(lengths[order[end]], cap) == padded
            {
                end += 1;
            }
            batches.push(PlannedBatch {
                indices: order[start..end].to_vec(),
                padded_length: padded,
            });
            start = end;
        }
        batches
    }
}

/// Sequences (by index into the caller's slice) that run together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    pub indices: Vec<usize>,
    pub padded_length: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_lengths_are_few_and_waste_little() {
        let policy = BatchPolicy::default();
        assert_eq!(policy.padded_length(1, 512), 16);
        assert_eq!(policy.padded_length(16, 512), 16);
        assert_eq!(policy.padded_length(17, 512), 32);
        assert_eq!(policy.padded_length(130, 512), 144);
        assert_eq!(policy.padded_length(500, 512), 512);
        assert_eq!(policy.padded_length(510, 510), 510);
        assert_eq!(policy.padded_length(513, 8192), 576);
        assert_eq!(policy.padded_length(700, 8192), 704);
        let distinct: std::collections::BTreeSet<usize> =
            (1..=4096).map(|n| policy.padded_length(n, 8192)).collect();
        assert!(distinct.len() <= 64, "{} shapes", distinct.len());
        for n in 1..=4096 {
            let padded = policy.padded_length(n, 8192);
            assert!(
                padded >= n && (padded - n < 16 || (padded - n) * 8 < n),
                "{n} -> {padded}"
            );
        }
    }

    #[test]
    fn plan_covers_every_sequence_once_within_limits() {
        let policy = BatchPolicy {
            length_multiple: 16,
            max_batch_tokens: 64,
            max_batch_size: 3,
        };
        let lengths = [5, 40, 3, 17, 16, 2, 1, 33, 9];
        let plan = policy.plan(&lengths, 48);
        let mut seen: Vec<usize> = plan.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &plan {
            assert!(batch.indices.len() <= 3);
            assert!(batch.indices.len() * batch.padded_length <= 64 || batch.indices.len() == 1);
            for &index in &batch.indices {
                assert!(lengths[index] <= batch.padded_length);
                assert_eq!(
                    policy.padded_length(lengths[index], 48),
                    batch.padded_length
                );
            }
        }
        assert_eq!(plan[0].padded_length, 48);
    }
}
