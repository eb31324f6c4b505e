//! Statistics over per-query scores: paired significance tests, corrections
//! for multiple comparisons and confidence intervals of a mean.
//!
//! Checked against ranx 0.3 (t-test and Fisher's randomization test), scipy
//! (t intervals) and statsmodels (Holm, Bonferroni) on the committed fixture
//! `tests/fixtures/reference/ranx_significance.json`
//! (`scripts/ranx_significance_reference.py`).

mod correction;
mod interval;
mod paired;

pub use correction::{adjust, Correction};
pub use interval::{mean_interval, MeanInterval};
pub use paired::{p_value, PairedTest, DEFAULT_PERMUTATIONS, DEFAULT_SEED};
