//! The 95% (or any level's) confidence interval of a mean over queries:
//! mean ± t(1 - (1 - level)/2, n - 1) · sd / √n, as
//! `scipy.stats.t.interval(level, n - 1, loc=mean, scale=sem)`.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// A mean with its confidence interval (`low == high == mean` for fewer
/// than two values, where no interval exists).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanInterval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

pub fn mean_interval(values: &[f64], level: f64) -> MeanInterval {
    let n = values.len();
    if n == 0 {
        return MeanInterval {
            mean: 0.0,
            low: 0.0,
            high: 0.0,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MeanInterval {
            mean,
            low: mean,
            high: mean,
        };
    }
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let sem = (ss / (n as f64 - 1.0)).sqrt() / (n as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, n as f64 - 1.0)
        .expect("n >= 2 gives a valid t distribution")
        .inverse_cdf(0.5 + level / 2.0);
    MeanInterval {
        mean,
        low: mean - t * sem,
        high: mean + t * sem,
    }
}
