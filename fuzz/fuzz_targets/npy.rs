//! Fuzz target `npy`: what it exercises is documented on `quarry_fuzz::targets::npy`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::targets::npy(data));
