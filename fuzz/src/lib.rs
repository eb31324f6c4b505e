//! Shared by the fuzz targets (fuzz_targets/) and the regression test that replays the
//! seeds and every crash found (tests/tests/fuzz_regressions.rs includes these files).
pub mod guard;
pub mod targets;

#[global_allocator]
static GLOBAL: guard::GuardedAlloc = guard::GuardedAlloc;
