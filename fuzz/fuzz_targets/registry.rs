//! Fuzz target `registry`: what it exercises is documented on `quarry_fuzz::targets::registry`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::targets::registry(data));
