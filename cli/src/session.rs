//! What every dataset command needs besides its own flags: the registry
//! and the data home's catalog.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use quarry_engine::catalog::Catalog;
use quarry_engine::registry::Registry;

/// The registry of the checkout this binary was built from: the last place
/// quarry looks, so `cargo run` works from any directory of the repository.
const BUILT_IN_REGISTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets.toml");

pub struct Session {
    pub registry: Option<Registry>,
    pub catalog: Catalog,
}

impl Session {
    /// `registry`: `--registry`; `home`: `--home` (both may come from the environment).
    pub fn load(registry: Option<&Path>, home: Option<PathBuf>) -> Result<Session> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let registry_file = Registry::discover(registry, &cwd, Some(Path::new(BUILT_IN_REGISTRY)))
            .context("finding the dataset registry")?;
        let registry = match registry_file {
            Some(file) => Some(Registry::load(&file).context("reading the dataset registry")?),
            None => None,
        };
        Ok(Session {
            registry,
            catalog: Catalog::new(home.unwrap_or_else(crate::args::default_home)),
        })
    }
}
