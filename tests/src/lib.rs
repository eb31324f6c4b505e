//! End-to-end tests live in `tests/tests/`; this crate has no library code.
//!
//! - `pytrec_reference.rs` (this crate): quarry's metrics against
//!   pytrec_eval's values in `fixtures/reference/pytrec_eval_metrics.json`
//!   (made by `tests/reference/make_fixtures.sh`).
//! - `cli.rs` (declared in `cli/Cargo.toml`, so the binary is built first):
//!   runs `quarry` on fixtures and on bad input.
