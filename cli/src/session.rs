//! What every dataset command needs besides its own flags: the registry
//! (with fetched datasets found in the data folder) and the data home's catalog.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use quarry_engine::catalog::Catalog;
use quarry_engine::registry::Registry;

pub struct Session {
    pub registry: Registry,
    pub catalog: Catalog,
    /// Where `quarry datasets fetch` puts datasets.
    pub data: PathBuf,
}

impl Session {
    /// `registry`: `--registry`; `home`: `--home`; `data`: `--data` (each may
    /// come from the environment). Without a registry file nearby, the one
    /// compiled into the binary is used.
    pub fn load(
        registry: Option<&Path>,
        home: Option<PathBuf>,
        data: Option<PathBuf>,
    ) -> Result<Session> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let registry_file =
            Registry::discover(registry, &cwd).context("finding the dataset registry")?;
        let home = home.unwrap_or_else(crate::args::default_home);
        // Layers, each over the one before: the built-in registry, the data home's own
        // (`quarry datasets add` writes it), then the file found or given.
        let mut registry = Registry::built_in().context("reading the built-in dataset registry")?;
        let home_file = home.join(Registry::FILE_NAME);
        if home_file.is_file() {
            registry = Registry::load(&home_file)
                .context("reading the data home's dataset registry")?
                .over(registry);
        }
        if let Some(file) = registry_file {
            registry = Registry::load(&file)
                .context("reading the dataset registry")?
                .over(registry);
        }
        let data = data.unwrap_or_else(|| home.join("datasets"));
        registry.use_data_folder(&data);
        Ok(Session {
            registry,
            catalog: Catalog::new(home),
            data,
        })
    }
}
