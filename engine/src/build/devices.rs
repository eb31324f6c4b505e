//! The device split (`--device cuda:all`): one model copy per device, each
//! taking the next unencoded chunk as it frees up; results are delivered in
//! chunk order, so the index layout does not depend on which device
//! finished first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Result;

/// Runs `encode(model, chunk)` for every chunk over `models` (one thread
/// each) and hands each result to `deliver` in chunk order. The first error
/// (from either side) stops every thread and is returned; `Ok(false)` means
/// a thread stopped before all chunks were delivered.
pub fn encode_in_order<M: Sync, C: Sync, T: Send>(
    models: &[&M],
    chunks: &[C],
    encode: &(dyn Fn(&M, &C) -> Result<T> + Sync),
    mut deliver: impl FnMut(&C, T) -> Result<()>,
) -> Result<bool> {
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::channel();
        for &model in models {
            let sender = sender.clone();
            let (next, abort) = (&next, &abort);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= chunks.len() || abort.load(Ordering::SeqCst) {
                    break;
                }
                let result = encode(model, &chunks[index]);
                let failed = result.is_err();
                if sender.send((index, result)).is_err() || failed {
                    break;
                }
            });
        }
        drop(sender);
        let mut pending = BTreeMap::new();
        let mut next_to_deliver = 0;
        for (index, result) in receiver {
            let result = result.inspect_err(|_| abort.store(true, Ordering::SeqCst));
            pending.insert(index, result?);
            while let Some(value) = pending.remove(&next_to_deliver) {
                deliver(&chunks[next_to_deliver], value)
                    .inspect_err(|_| abort.store(true, Ordering::SeqCst))?;
                next_to_deliver += 1;
            }
        }
        Ok(next_to_deliver == chunks.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;

    #[test]
    fn results_arrive_in_chunk_order_whatever_finishes_first() {
        let slow = 3u64;
        let fast = 0u64;
        let chunks: Vec<usize> = (0..20).collect();
        let mut seen = Vec::new();
        let complete = encode_in_order(
            &[&slow, &fast],
            &chunks,
            &|delay: &u64, chunk: &usize| {
                std::thread::sleep(std::time::Duration::from_millis(*delay));
                Ok(chunk * 10)
            },
            |chunk, value| {
                assert_eq!(value, chunk * 10);
                seen.push(*chunk);
                Ok(())
            },
        )
        .unwrap();
        assert!(complete);
        assert_eq!(seen, chunks);
    }

    #[test]
    fn an_encoding_error_stops_the_run() {
        let model = ();
        let chunks: Vec<usize> = (0..10).collect();
        let err = encode_in_order(
            &[&model, &model],
            &chunks,
            &|_: &(), chunk: &usize| {
                if *chunk == 4 {
                    Err(EngineError::Build {
                        path: "x".into(),
                        detail: "chunk 4 failed".into(),
                    })
                } else {
                    Ok(*chunk)
                }
            },
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("chunk 4 failed"), "{err}");
    }
}
