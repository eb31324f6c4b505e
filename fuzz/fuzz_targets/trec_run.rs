//! Fuzz target `trec_run`: what it exercises is documented on `quarry_fuzz::targets::trec_run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::targets::trec_run(data));
