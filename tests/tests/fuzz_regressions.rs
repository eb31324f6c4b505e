//! Replays the fuzz targets' committed seeds (fuzz/seeds/TARGET/) and every input that ever
//! crashed one (fuzz/regressions/TARGET/, kept after the fix) through the same code the
//! targets run, under the same allocation guard, on the stable toolchain. scripts/fuzz.sh
//! does the fuzzing itself (nightly, not in CI); this keeps what it found fixed.

#[path = "../../fuzz/src/guard.rs"]
mod guard;
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

#[global_allocator]
static GLOBAL: guard::GuardedAlloc = guard::GuardedAlloc;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable folder entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn seeds_and_past_crashes_are_refused_or_read_without_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in targets::ALL {
        let seeds = inputs(&fuzz.join("seeds").join(name));
        assert!(
            !seeds.is_empty(),
            "fuzz/seeds/{name} is empty: run python3 fuzz/make_seeds.py"
        );
        let regressions = inputs(&fuzz.join("regressions").join(name));
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("readable input");
            let label: &'static str = Box::leak(file.display().to_string().into_boxed_str());
            guard::set_label(label);
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(label);
            }
            replayed += 1;
        }
    }
    assert!(failures.is_empty(), "inputs that panicked: {failures:#?}");
    eprintln!("replayed {replayed} fuzz inputs");
}
