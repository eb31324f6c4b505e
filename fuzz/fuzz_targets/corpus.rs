//! Fuzz target `corpus`: what it exercises is documented on `quarry_fuzz::targets::corpus`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::targets::corpus(data));
