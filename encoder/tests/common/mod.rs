//! Test support: a minimal f32 safetensors [`TensorSource`] for the fixtures
//! (the crate's real loaders live in `weights/`; this keeps the model tests
//! independent of them), the fixture reference format, and readers of the JSON reference
//! files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use quarry_encoder::{EncoderError, HostTensor, TensorSource};
use safetensors::{Dtype, SafeTensors};

pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Optional renaming `(from prefix, to prefix)` to present the same weights under other names.
    rename: Option<(String, String)>,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        Self {
            path: path.to_path_buf(),
            bytes,
            rename: None,
        }
    }

    /// Presents every tensor named `from...` as `to...`.
    pub fn renamed(mut self, from: &str, to: &str) -> Self {
        self.rename = Some((from.to_string(), to.to_string()));
        self
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid safetensors fixture")
    }

    /// The name in the file of a presented name; None for names the renaming hides.
    fn stored_name(&self, name: &str) -> Option<String> {
        match &self.rename {
            None => Some(name.to_string()),
            Some((from, to)) => match name.strip_prefix(to.as_str()) {
                Some(rest) => Some(format!("{from}{rest}")),
                None if name.starts_with(from.as_str()) => None,
                None => Some(name.to_string()),
            },
        }
    }
}

impl TensorSource for SafetensorsFile {
    fn tensor_names(&self) -> Vec<String> {
        let names = self
            .tensors()
            .names()
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        match &self.rename {
            None => names,
            Some((from, to)) => names
                .into_iter()
                .map(|name| match name.strip_prefix(from.as_str()) {
                    Some(rest) => format!("{to}{rest}"),
                    None => name,
                })
                .collect(),
        }
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let stored = self.stored_name(name)?;
        self.tensors()
            .tensor(&stored)
            .ok()
            .map(|view| view.shape().to_vec())
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError> {
        let corrupt = |detail: String| EncoderError::DataCorruption {
            file: self.path.clone(),
            detail: format!("tensor {name}: {detail}"),
        };
        let stored = self
            .stored_name(name)
            .ok_or_else(|| corrupt("absent".into()))?;
        let tensors = self.tensors();
        let view = tensors
            .tensor(&stored)
            .map_err(|err| corrupt(err.to_string()))?;
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!(
                "dtype {:?}, test loader reads F32",
                view.dtype()
            )));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
            .collect();
        Ok(HostTensor {
            shape: view.shape().to_vec(),
            data,
        })
    }

    fn origin(&self) -> &Path {
        &self.path
    }
}

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// `reference.json` written by `scripts/make_fixtures.py`.
#[derive(serde::Deserialize)]
pub struct Reference {
    pub sequences: Vec<Vec<u32>>,
    /// Per sequence, the final hidden state of each real token, encoded alone.
    pub single: Vec<Vec<Vec<f32>>>,
    pub batch: ReferenceBatch,
    /// BERT only: sentence-transformers mean pooling + normalisation.
    pub pooled: Option<Vec<Vec<f32>>>,
}

#[derive(serde::Deserialize)]
pub struct ReferenceBatch {
    pub input_ids: Vec<Vec<u32>>,
    pub lengths: Vec<usize>,
    /// Per sequence, the real tokens' rows of the padded batch run.
    pub hidden: Vec<Vec<Vec<f32>>>,
}

pub fn load_reference(dir: &Path) -> Reference {
    let path = dir.join("reference.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Largest absolute difference between two ragged arrays of the same shape.
pub fn max_abs_error(actual: &[Vec<Vec<f32>>], expected: &[Vec<Vec<f32>>]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "number of sequences");
    let mut worst = 0.0f32;
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.len(), e.len(), "tokens in a sequence");
        for (ra, re) in a.iter().zip(e) {
            assert_eq!(ra.len(), re.len(), "hidden width");
            for (x, y) in ra.iter().zip(re) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    worst
}

/// The integers of a JSON array (how reference files store token ids and shapes).
pub fn json_integers<T: TryFrom<u64>>(value: &serde_json::Value) -> Vec<T>
where
    T::Error: std::fmt::Debug,
{
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| T::try_from(v.as_u64().unwrap()).unwrap())
        .collect()
}

/// Asserts that `object` holds each `(key, value)` (numbers compared as f64).
pub fn assert_json_fields(object: &serde_json::Value, expected: &[(&str, f64)]) {
    for &(key, value) in expected {
        assert_eq!(object[key].as_f64(), Some(value), "{key}");
    }
}

/// Asserts that `source` gives each `(name, shape)` that shape (PyTorch order).
pub fn assert_shapes(source: &impl TensorSource, expected: &[(&str, &[usize])]) {
    for &(name, shape) in expected {
        assert_eq!(source.shape(name).as_deref(), Some(shape), "{name}");
    }
}

/// The folder real models are fetched into: `$QUARRY_MODELS`, else `<repo>/models`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("QUARRY_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
    }
}

/// A real model (`scripts/fetch_models.sh` fetches them) for the test `test`.
///
/// Absent, the test is skipped with a line saying so — unless
/// `QUARRY_REQUIRE_MODELS=1` (set by `scripts/test.sh`), where an absent model
/// fails the test: CI must not pass by skipping. Present, one line naming the
/// test is appended to `$QUARRY_MODEL_LEDGER` (when set), so `scripts/test.sh`
/// can say how many real-model tests ran.
pub fn real_model(name: &str, test: &str) -> Option<PathBuf> {
    let path = models_dir().join(name);
    if !path.exists() {
        if std::env::var("QUARRY_REQUIRE_MODELS").as_deref() == Ok("1") {
            panic!(
                "{test}: QUARRY_REQUIRE_MODELS=1 but {} is missing (run scripts/fetch_models.sh --with-1.5b)",
                path.display()
            );
        }
        eprintln!(
            "SKIPPED {test}: {} not found (run scripts/fetch_models.sh)",
            path.display()
        );
        return None;
    }
    if let Some(ledger) = std::env::var_os("QUARRY_MODEL_LEDGER") {
        use std::io::Write as _;
        let line = format!("{test}\t{name}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = appended {
            panic!(
                "writing the model ledger {}: {err}",
                PathBuf::from(ledger).display()
            );
        }
    }
    Some(path)
}
