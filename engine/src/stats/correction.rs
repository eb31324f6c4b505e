//! Corrections for testing several systems against one baseline: the
//! p-values of one family (here: every other system against the baseline,
//! for one dataset and one metric) adjusted so that a cell marked at level
//! alpha keeps the family-wise error rate at alpha. Adjusted values equal
//! statsmodels' `multipletests` (`holm`, `bonferroni`).

/// How the p-values of a family are adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm's step-down method (uniformly more powerful than Bonferroni).
    Holm,
    Bonferroni,
    None,
}

/// Adjusts the p-values of one family; `None` entries (untestable pairs) are
/// left out of the family and stay `None`.
pub fn adjust(p_values: &[Option<f64>], correction: Correction) -> Vec<Option<f64>> {
    let tested: Vec<(usize, f64)> = p_values
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    let m = tested.len() as f64;
    let mut adjusted = vec![None; p_values.len()];
    match correction {
        Correction::None => return p_values.to_vec(),
        Correction::Bonferroni => {
            for (i, p) in tested {
                adjusted[i] = Some((p * m).min(1.0));
            }
        }
        Correction::Holm => {
            let mut order = tested;
            order.sort_by(|a, b| a.1.total_cmp(&b.1));
            let mut running = 0.0f64;
            for (rank, (i, p)) in order.into_iter().enumerate() {
                running = running.max(((m - rank as f64) * p).min(1.0));
                adjusted[i] = Some(running);
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_steps_down_and_stays_monotone() {
        let p = [Some(0.01), Some(0.04), None, Some(0.03)];
        let holm = adjust(&p, Correction::Holm);
        assert_eq!(holm[2], None);
        // Sorted 0.01, 0.03, 0.04 → 0.03, 0.06, max(0.06, 0.04) = 0.06.
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-15;
        assert!(close(holm[0], 0.03) && close(holm[3], 0.06) && close(holm[1], 0.06));
        let bonferroni = adjust(&p, Correction::Bonferroni);
        assert!(close(bonferroni[1], 0.12));
        assert_eq!(adjust(&p, Correction::None), p.to_vec());
    }
}
