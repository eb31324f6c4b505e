//! Paired two-sided tests of "these two systems have the same mean score",
//! over the per-query scores of the same queries (`treatment[i]` and
//! `control[i]` belong to one query).
//!
//! - Student's t: `scipy.stats.ttest_rel`, as ranx's `student` test.
//! - Fisher's randomization test: each query's pair of scores swapped with
//!   probability 1/2; p = the share of permutations whose absolute mean
//!   difference is at least the observed one (ranx's `fisher`, Smucker et
//!   al., CIKM '07). Seeded: the same seed and count give the same p.
//! - Bootstrap: Sakai's studentized paired bootstrap (SIGIR '06): the
//!   differences are shifted to mean 0, resampled with replacement, and p is
//!   the share of resamples whose |t| is at least the observed |t|.
//!
//! Degenerate inputs, where scipy answers NaN: fewer than two queries cannot
//! be tested (`None`); identical scores on every query give p = 1; a
//! constant non-zero difference gives p = 0.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Permutations (randomization) or resamples (bootstrap) unless told:
/// Monte-Carlo error of p at most 0.005 (sd of a share at p = 0.5).
pub const DEFAULT_PERMUTATIONS: u32 = 10_000;
/// ranx's default seed.
pub const DEFAULT_SEED: u64 = 42;

/// Which paired test, with its Monte-Carlo settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "test", rename_all = "lowercase")]
pub enum PairedTest {
    /// Paired Student's t-test.
    T,
    /// Fisher's randomization (permutation) test.
    Randomization { permutations: u32, seed: u64 },
    /// Studentized paired bootstrap test.
    Bootstrap { resamples: u32, seed: u64 },
}

impl std::fmt::Display for PairedTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairedTest::T => f.write_str("paired t-test"),
            PairedTest::Randomization { permutations, seed } => write!(
                f,
                "Fisher's randomization test ({permutations} permutations, seed {seed})"
            ),
            PairedTest::Bootstrap { resamples, seed } => write!(
                f,
                "paired bootstrap test ({resamples} resamples, seed {seed})"
            ),
        }
    }
}

/// The two-sided p-value of `test` for paired scores; `None` for fewer than
/// two pairs. Panics if the slices differ in length (a caller's bug: pairs
/// are built from one query list).
pub fn p_value(test: PairedTest, treatment: &[f64], control: &[f64]) -> Option<f64> {
    assert_eq!(treatment.len(), control.len(), "paired scores");
    let differences: Vec<f64> = treatment.iter().zip(control).map(|(a, b)| a - b).collect();
    if differences.len() < 2 {
        return None;
    }
    Some(match test {
        PairedTest::T => t_test(&differences),
        PairedTest::Randomization { permutations, seed } => {
            randomization(&differences, permutations, seed)
        }
        PairedTest::Bootstrap { resamples, seed } => bootstrap(&differences, resamples, seed),
    })
}

/// Mean and sample standard deviation (n - 1).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let ss = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// The answer when the differences have no spread (see the module doc).
fn degenerate(mean: f64) -> f64 {
    if mean == 0.0 {
        1.0
    } else {
        0.0
    }
}

fn t_test(differences: &[f64]) -> f64 {
    let (mean, sd) = mean_sd(differences);
    if sd == 0.0 {
        return degenerate(mean);
    }
    let n = differences.len() as f64;
    let t = mean / (sd / n.sqrt());
    let dist = StudentsT::new(0.0, 1.0, n - 1.0).expect("n >= 2 gives a valid t distribution");
    // 2 · P(T <= -|t|): the lower tail keeps its precision far out (p ~ 1e-19).
    (2.0 * dist.cdf(-t.abs())).min(1.0)
}

fn randomization(differences: &[f64], permutations: u32, seed: u64) -> f64 {
    if permutations == 0 {
        return 1.0;
    }
    let observed: f64 = differences.iter().sum::<f64>().abs();
    // Sums of the same terms in another order differ by rounding only; a
    // permutation that ties the observed difference counts as extreme.
    let slack = 1e-12 * differences.iter().map(|d| d.abs()).sum::<f64>();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut extreme = 0u32;
    for _ in 0..permutations {
        let mut sum = 0.0;
        for chunk in differences.chunks(64) {
            let signs = rng.next_u64();
            for (bit, d) in chunk.iter().enumerate() {
                sum += if signs >> bit & 1 == 1 { -d } else { *d };
            }
        }
        if sum.abs() >= observed - slack {
            extreme += 1;
        }
    }
    f64::from(extreme) / f64::from(permutations)
}

fn bootstrap(differences: &[f64], resamples: u32, seed: u64) -> f64 {
    if resamples == 0 {
        return 1.0;
    }
    let (mean, sd) = mean_sd(differences);
    if sd == 0.0 {
        return degenerate(mean);
    }
    let n = differences.len();
    let root_n = (n as f64).sqrt();
    let observed = (mean / (sd / root_n)).abs();
    let shifted: Vec<f64> = differences.iter().map(|d| d - mean).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = vec![0.0; n];
    let mut extreme = 0u32;
    for _ in 0..resamples {
        for slot in sample.iter_mut() {
            *slot = shifted[rng.random_range(0..n)];
        }
        let (m, s) = mean_sd(&sample);
        // A resample of one repeated value has no spread and no t: not extreme.
        if s > 0.0 && (m / (s / root_n)).abs() >= observed {
            extreme += 1;
        }
    }
    f64::from(extreme) / f64::from(resamples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_inputs_have_defined_answers() {
        assert_eq!(p_value(PairedTest::T, &[0.5], &[0.1]), None);
        let same = [0.1, 0.4, 0.9];
        for test in [
            PairedTest::T,
            PairedTest::Randomization {
                permutations: 100,
                seed: 1,
            },
            PairedTest::Bootstrap {
                resamples: 100,
                seed: 1,
            },
        ] {
            assert_eq!(p_value(test, &same, &same), Some(1.0), "{test}");
        }
        assert_eq!(p_value(PairedTest::T, &[0.6, 0.9], &[0.5, 0.8]), Some(0.0));
    }

    #[test]
    fn seeded_tests_repeat_and_differ_by_seed() {
        let a = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.4, 0.6];
        let b = [0.2, 0.3, 0.3, 0.5, 0.8, 0.1, 0.1, 0.5];
        let test = PairedTest::Randomization {
            permutations: 2000,
            seed: 7,
        };
        assert_eq!(p_value(test, &a, &b), p_value(test, &a, &b));
        // With 8 queries there are 2^8 sign patterns: p is near a multiple of 1/256.
        let p = p_value(test, &a, &b).unwrap();
        assert!(p > 0.0 && p < 1.0, "{p}");
    }
}
