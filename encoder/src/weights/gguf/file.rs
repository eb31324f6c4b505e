//! A parsed, memory-mapped GGUF file: its metadata and its tensor table, and each tensor's
//! bytes dequantised to f32 on request.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::value::value_kind;
use super::GgufValue;
use crate::error::io_error;
use crate::weights::dequant::{dequantize, GgmlType};
use crate::{EncoderError, HostTensor};

/// One tensor descriptor of the header.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    /// The name as stored (llama.cpp naming, e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions as GGUF stores them: `ne[0]` (innermost, contiguous) first.
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Absolute byte range of the data in the file.
    pub data_start: usize,
    pub data_len: usize,
}

impl GgufTensorInfo {
    /// Dimensions in PyTorch order (outermost first): GGUF's order reversed.
    pub fn torch_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A parsed, memory-mapped GGUF file.
pub struct GgufFile {
    pub(super) path: PathBuf,
    pub(super) mmap: Mmap,
    pub(super) version: u32,
    pub(super) metadata: BTreeMap<String, GgufValue>,
    pub(super) tensors: Vec<GgufTensorInfo>,
    pub(super) by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses a GGUF file. Tensor data is not read until asked for.
    pub fn open(path: &Path) -> Result<GgufFile, EncoderError> {
        let file = File::open(path).map_err(io_error(path))?;
        // SAFETY: the map is read-only; as with every mmap'd checkpoint loader, another process
        // truncating the file while we read it is outside what we can guard against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_error(path))?;
        Self::parse(path.to_path_buf(), mmap)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A required string key.
    pub fn get_str(&self, key: &str) -> Result<&str, EncoderError> {
        self.get(key)
            .and_then(GgufValue::as_str)
            .ok_or_else(|| self.config_error(key, "string"))
    }

    /// A required non-negative integer key.
    pub fn get_u64(&self, key: &str) -> Result<u64, EncoderError> {
        self.get(key)
            .and_then(GgufValue::as_u64)
            .ok_or_else(|| self.config_error(key, "non-negative integer"))
    }

    /// A required numeric key.
    pub fn get_f64(&self, key: &str) -> Result<f64, EncoderError> {
        self.get(key)
            .and_then(GgufValue::as_f64)
            .ok_or_else(|| self.config_error(key, "number"))
    }

    /// A required array-of-strings key.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, EncoderError> {
        self.get(key)
            .and_then(GgufValue::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .map(GgufValue::as_str)
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| self.config_error(key, "array of strings"))
    }

    pub(super) fn config_error(&self, key: &str, expected: &str) -> EncoderError {
        let detail = match self.get(key) {
            None => format!("GGUF metadata key `{key}` missing"),
            Some(v) => format!(
                "GGUF metadata key `{key}`: expected {expected}, found {}",
                value_kind(v)
            ),
        };
        EncoderError::Config {
            file: self.path.clone(),
            detail,
        }
    }

    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, gguf_name: &str) -> Option<&GgufTensorInfo> {
        self.by_name.get(gguf_name).map(|&i| &self.tensors[i])
    }

    /// [`Self::tensor_info`], or the error naming the tensor the file lacks.
    fn required_tensor_info(&self, gguf_name: &str) -> Result<&GgufTensorInfo, EncoderError> {
        self.tensor_info(gguf_name)
            .ok_or_else(|| EncoderError::MissingTensor {
                file: self.path.clone(),
                tensor: gguf_name.to_string(),
            })
    }

    /// The raw (still quantised) bytes of a tensor.
    pub fn raw_data(&self, gguf_name: &str) -> Result<&[u8], EncoderError> {
        let info = self.required_tensor_info(gguf_name)?;
        Ok(self.bytes(info))
    }

    fn bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        &self.mmap[info.data_start..info.data_start + info.data_len]
    }

    /// A tensor (by its GGUF name) dequantised to f32, in PyTorch shape order.
    pub fn dequantize(&self, gguf_name: &str) -> Result<HostTensor, EncoderError> {
        let info = self.required_tensor_info(gguf_name)?;
        if !info.ggml_type.can_dequantize() {
            return Err(EncoderError::UnsupportedDtype {
                file: self.path.clone(),
                tensor: gguf_name.to_string(),
                dtype: info.ggml_type.name(),
            });
        }
        let bytes = self.bytes(info);
        let mut data = Vec::new();
        dequantize(info.ggml_type, bytes, &mut data).map_err(|dtype| {
            EncoderError::UnsupportedDtype {
                file: self.path.clone(),
                tensor: gguf_name.to_string(),
                dtype,
            }
        })?;
        // GGUF's ne[0] is the contiguous dimension, i.e. PyTorch's last: the row-major data
        // needs no reordering, only the shape list reversed.
        Ok(HostTensor {
            shape: info.torch_shape(),
            data,
        })
    }
}
