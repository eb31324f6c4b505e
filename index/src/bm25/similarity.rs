//! Lucene 10's `BM25Similarity`, in Lucene's own float arithmetic.
//!
//! Used by the BM25 scorer ([`super::query`]): scores must equal Pyserini's
//! to the last bit so that rankings (and ties) are the same. Lucene computes
//!
//! ```text
//! idf    = (float) ln(1 + (N - n + 0.5) / (n + 0.5))              in double
//! avgdl  = (float) (sumTotalTermFreq / (double) N)
//! cache[b] = 1f / (k1 * ((1 - b) + b * dl(b) / avgdl))             in float, for all 256 norm bytes
//! weight = boost * idf                                             in float
//! score  = weight - weight / (1f + freq * cache[norm])             in float
//! ```
//!
//! where N is the number of documents with at least one term in the field,
//! n the term's document frequency, and `dl(b)` the document length decoded
//! from its lossy one-byte norm ([`int_to_byte4`] / [`byte4_to_int`]).
//! A query's clause scores are summed in double and the sum cast to float.

/// Pyserini's BM25 parameters for the BEIR "flat" runs.
pub const DEFAULT_K1: f32 = 0.9;
/// See [`DEFAULT_K1`].
pub const DEFAULT_B: f32 = 0.4;

/// Lucene's `SmallFloat.longToInt4`: a float-like encoding of non-negative
/// integers keeping 4 significant bits.
fn long_to_int4(i: u64) -> u32 {
    let num_bits = 64 - i.leading_zeros();
    if num_bits < 4 {
        i as u32
    } else {
        let shift = num_bits - 4;
        let encoded = ((i >> shift) as u32) & 0x07;
        encoded | ((shift + 1) << 3)
    }
}

/// Lucene's `SmallFloat.int4ToLong`.
fn int4_to_long(i: u32) -> u64 {
    let bits = u64::from(i & 0x07);
    let shift = (i >> 3) as i32 - 1;
    if shift == -1 {
        bits
    } else {
        (bits | 0x08) << shift
    }
}

/// Values below this encode exactly (Lucene: `255 - longToInt4(Integer.MAX_VALUE)`).
const NUM_FREE_VALUES: u32 = 24;

/// Lucene's `SmallFloat.intToByte4`: the norm byte of a field length.
pub fn int_to_byte4(length: u32) -> u8 {
    let length = length.min(i32::MAX as u32);
    if length < NUM_FREE_VALUES {
        length as u8
    } else {
        (NUM_FREE_VALUES + long_to_int4(u64::from(length - NUM_FREE_VALUES))) as u8
    }
}

/// Lucene's `SmallFloat.byte4ToInt`: the field length a norm byte stands for.
pub fn byte4_to_int(norm: u8) -> u32 {
    let i = u32::from(norm);
    if i < NUM_FREE_VALUES {
        i
    } else {
        (u64::from(NUM_FREE_VALUES) + int4_to_long(i - NUM_FREE_VALUES)) as u32
    }
}

/// BM25 parameters and the collection statistics every term score needs.
#[derive(Debug, Clone)]
pub struct Bm25Similarity {
    k1: f32,
    b: f32,
    doc_count: u64,
    avgdl: f32,
    /// `1 / (k1 * ((1 - b) + b * dl / avgdl))` for each norm byte.
    norm_inverse: [f32; 256],
}

impl Bm25Similarity {
    /// `doc_count`: documents with at least one indexed term;
    /// `sum_total_term_freq`: indexed terms over all documents.
    pub fn new(k1: f32, b: f32, doc_count: u64, sum_total_term_freq: u64) -> Bm25Similarity {
        let avgdl = if doc_count == 0 {
            0.0
        } else {
            (sum_total_term_freq as f64 / doc_count as f64) as f32
        };
        let mut norm_inverse = [0f32; 256];
        for (norm, slot) in norm_inverse.iter_mut().enumerate() {
            let dl = byte4_to_int(norm as u8) as f32;
            *slot = 1.0f32 / (k1 * ((1.0f32 - b) + b * dl / avgdl));
        }
        Bm25Similarity {
            k1,
            b,
            doc_count,
            avgdl,
            norm_inverse,
        }
    }

    /// k1.
    pub fn k1(&self) -> f32 {
        self.k1
    }

    /// b.
    pub fn b(&self) -> f32 {
        self.b
    }

    /// Documents with at least one term (Lucene's `CollectionStatistics.docCount`).
    pub fn doc_count(&self) -> u64 {
        self.doc_count
    }

    /// Average field length, as Lucene rounds it.
    pub fn avgdl(&self) -> f32 {
        self.avgdl
    }

    /// Lucene's `idf(docFreq, docCount)`.
    pub fn idf(&self, doc_freq: u64) -> f32 {
        let n = doc_freq as f64;
        let big_n = self.doc_count as f64;
        (1.0 + (big_n - n + 0.5) / (n + 0.5)).ln() as f32
    }

    /// The per-term constant `boost * idf`.
    pub fn term_weight(&self, boost: f32, doc_freq: u64) -> f32 {
        boost * self.idf(doc_freq)
    }

    /// The score of one term in one document.
    #[inline]
    pub fn score(&self, term_weight: f32, freq: u32, norm: u8) -> f32 {
        let norm_inverse = self.norm_inverse[norm as usize];
        term_weight - term_weight / (1.0f32 + freq as f32 * norm_inverse)
    }

    /// `1 / (k1 * ((1 - b) + b * dl / avgdl))` of a norm byte.
    pub fn norm_inverse(&self, norm: u8) -> f32 {
        self.norm_inverse[norm as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_float_matches_lucene() {
        // Exact below 24, then 4 significant bits; decode(encode(x)) <= x.
        for len in 0..24 {
            assert_eq!(int_to_byte4(len), len as u8);
            assert_eq!(byte4_to_int(len as u8), len);
        }
        assert_eq!(byte4_to_int(255), 2_013_265_944);
        assert_eq!(int_to_byte4(i32::MAX as u32), 255);
        let mut previous = 0;
        for norm in 1..=255u8 {
            let len = byte4_to_int(norm);
            assert!(len > previous);
            assert_eq!(int_to_byte4(len), norm);
            assert_eq!(int_to_byte4(len + 1).max(norm), int_to_byte4(len + 1));
            previous = len;
        }
        // A few values from Lucene's TestSmallFloat / BM25 explanations.
        assert_eq!(byte4_to_int(int_to_byte4(100)), 96);
        assert_eq!(byte4_to_int(int_to_byte4(250)), 248);
    }
}
