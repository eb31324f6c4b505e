//! Fuzz target `qrels`: what it exercises is documented on `quarry_fuzz::targets::qrels`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::targets::qrels(data));
