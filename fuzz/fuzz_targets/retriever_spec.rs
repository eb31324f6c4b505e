//! Fuzz target `retriever_spec`: what it exercises is documented on `quarry_fuzz::targets::retriever_spec`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry_fuzz::targets::retriever_spec(data));
