//! Which groups and passages an optimiser step sees: the groups in a shuffle seeded per
//! epoch, and per group one positive and `group_size - 1` hard negatives drawn from a
//! generator seeded per step. Both depend only on `(seed, step)`, so a resumed run sees what
//! an uninterrupted one would.

use std::path::Path;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::schedule::{derived_seed, Schedule, Stream};
use super::{train_error, TrainSettings};
use crate::error::Result;
use crate::train_data::{TrainGroup, TrainPassage};

/// One query of a step and the passages it is scored against: its positive first.
pub(super) struct SampledGroup<'g> {
    pub group: &'g TrainGroup,
    pub passages: Vec<&'g TrainPassage>,
}

/// Refuses groups without negatives when a group wants some: sampling could not fill it.
pub(super) fn require_negatives(
    groups: &[TrainGroup],
    settings: &TrainSettings,
    train_file: &Path,
) -> Result<()> {
    if settings.group_size > 1 {
        if let Some(group) = groups.iter().find(|g| g.negatives.is_empty()) {
            return Err(train_error(
                train_file,
                format!(
                    "query `{}` has no negative passages; --group-size {} needs hard negatives \
                     (mine them with `quarry mine`, or train with --group-size 1)",
                    group.query_id, settings.group_size
                ),
            ));
        }
    }
    Ok(())
}

/// The groups and, per group, the positive and negatives of optimiser step `step`.
pub(super) fn step_sample<'g>(
    groups: &'g [TrainGroup],
    settings: &TrainSettings,
    schedule: &Schedule,
    step: usize,
) -> Vec<SampledGroup<'g>> {
    let epoch = step / schedule.steps_per_epoch;
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(derived_seed(
        settings.seed,
        Stream::Order,
        epoch as u64,
    )));
    let start = (step % schedule.steps_per_epoch) * settings.batch_size;
    let mut rng =
        ChaCha8Rng::seed_from_u64(derived_seed(settings.seed, Stream::Sample, step as u64));
    order[start..start + settings.batch_size]
        .iter()
        .map(|&index| {
            let group = &groups[index];
            let mut passages = Vec::with_capacity(settings.group_size);
            passages.push(&group.positives[rng.random_range(0..group.positives.len())]);
            draw_negatives(group, settings.group_size - 1, &mut rng, &mut passages);
            SampledGroup { group, passages }
        })
        .collect()
}

/// Appends `wanted` of the group's hard negatives to `passages`.
fn draw_negatives<'g>(
    group: &'g TrainGroup,
    wanted: usize,
    rng: &mut ChaCha8Rng,
    passages: &mut Vec<&'g TrainPassage>,
) {
    if wanted == 0 {
        return;
    }
    if group.negatives.len() >= wanted {
        passages.extend(group.negatives.choose_multiple(rng, wanted));
    } else {
        // Too few hard negatives: draw with replacement (Tevatron does the same).
        for _ in 0..wanted {
            passages.push(&group.negatives[rng.random_range(0..group.negatives.len())]);
        }
    }
}
