//! GGUF files (llama.cpp's single-file checkpoints): header parsing with every size bounded,
//! dequantisation to f32, and the mapping of llama.cpp's Qwen2 tensor names and dimension order
//! to the Hugging Face names and PyTorch shapes the model code expects.
//!
//! Why hand-written rather than a crate: the format is small and stable (a header of typed
//! key/values and tensor descriptors, then aligned raw data), and we need two things the
//! available readers do not give together: a permissive licence with small compile cost
//! (candle-core's `quantized` module drags in candle's whole tensor stack; `rlx-gguf` is GPL-3;
//! the small `gguf*` crates are young single-author projects that allocate whatever a header
//! claims) and hard bounds on every size read from an untrusted header. The dequantisation
//! kernels (`dequant.rs`) are checked value-for-value against the reference `gguf` Python package.
//!
//! Layout (GGUF v2/v3, little-endian): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
//! count, metadata key/values, tensor infos (name, n_dims, dims innermost-first, ggml type, offset),
//! padding to `general.alignment` (default 32), tensor data.
//!
//! Qwen2 needs no un-permuting of q/k: llama.cpp's converter permutes q/k rows only for the
//! `llama` architecture (its `LlamaModel.modify_tensors`, for llama.cpp's interleaved RoPE);
//! `Qwen2Model` writes HF's tensors as they are and llama.cpp runs qwen2 with NEOX
//! (rotate-half) RoPE, the same as transformers. Checked against transformers 5.24's GGUF
//! loader: its `TENSOR_PROCESSORS` un-permutes for `llama` only and has no `qwen2` entry, so
//! its Qwen2 weights are the dequantised tensors as stored, which is what we return
//! (tests/weights_real_models.rs compares those with the `gguf` package value for value).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::{dequantize, GgmlType};
use crate::{EncoderError, HostTensor, TensorSource};

/// Most tensors a GGUF may declare (the largest published MoE checkpoints hold ~50k).
const MAX_TENSORS: u64 = 1 << 20;
/// Most metadata key/values.
const MAX_METADATA: u64 = 1 << 20;
/// Longest string (a chat template or a tensor name is far shorter).
const MAX_STRING_BYTES: u64 = 1 << 26;
/// Most elements in one metadata array (vocabularies are ~250k).
const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Deepest nesting of arrays inside arrays.
const MAX_ARRAY_DEPTH: u32 = 2;
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(items) => Some(items),
            _ => None,
        }
    }
}

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
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    by_name: HashMap<String, usize>,
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

/// Bounds-checked little-endian reader over the header bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, detail: impl Into<String>) -> EncoderError {
        EncoderError::DataCorruption {
            file: self.path.to_path_buf(),
            detail: format!("GGUF header at byte {}: {}", self.pos, detail.into()),
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], EncoderError> {
        if n > self.remaining() {
            return Err(self.corrupt(format!(
                "{what} needs {n} bytes, only {} left in the file",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], EncoderError> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, EncoderError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, EncoderError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, EncoderError> {
        let len = self.u64(what)?;
        if len > MAX_STRING_BYTES {
            return Err(self.corrupt(format!(
                "{what}: string of {len} bytes (limit {MAX_STRING_BYTES})"
            )));
        }
        let bytes = self.take(len as usize, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.corrupt(format!("{what}: string is not UTF-8")))
    }

    fn value(&mut self, value_type: u32, key: &str, depth: u32) -> Result<GgufValue, EncoderError> {
        Ok(match value_type {
            0 => GgufValue::U8(self.array::<1>(key)?[0]),
            1 => GgufValue::I8(self.array::<1>(key)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => GgufValue::U32(self.u32(key)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                other => return Err(self.corrupt(format!("{key}: bool byte {other}"))),
            },
            8 => GgufValue::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.corrupt(format!(
                        "{key}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let item_type = self.u32(key)?;
                let len = self.u64(key)?;
                // Every item takes at least one byte, so a count beyond the bytes left is a lie.
                if len > MAX_ARRAY_LEN || len > self.remaining() as u64 {
                    return Err(self.corrupt(format!(
                        "{key}: array of {len} items (limit {MAX_ARRAY_LEN}, {} bytes left)",
                        self.remaining()
                    )));
                }
                // Grow as items actually parse: a lying count costs no up-front allocation.
                let mut items = Vec::with_capacity((len as usize).min(1 << 16));
                for _ in 0..len {
                    items.push(self.value(item_type, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(key)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => return Err(self.corrupt(format!("{key}: unknown value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Memory-maps and parses a GGUF file. Tensor data is not read until asked for.
    pub fn open(path: &Path) -> Result<GgufFile, EncoderError> {
        let io = |source| EncoderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; as with every mmap'd checkpoint loader, another process
        // truncating the file while we read it is outside what we can guard against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::parse(path.to_path_buf(), mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<GgufFile, EncoderError> {
        let mut cur = Cursor {
            bytes: &mmap,
            pos: 0,
            path: &path,
        };
        let magic = cur.array::<4>("magic")?;
        if &magic != b"GGUF" {
            return Err(cur.corrupt(format!("not a GGUF file (magic {magic:02x?})")));
        }
        let version = cur.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(EncoderError::UnsupportedFormat {
                file: path.clone(),
                detail: format!("GGUF version {version} (quarry reads versions 2 and 3)"),
            });
        }
        let tensor_count = cur.u64("tensor count")?;
        let metadata_count = cur.u64("metadata count")?;
        // A tensor info takes >= 24 bytes, a key/value >= 13: counts beyond the file are lies.
        if tensor_count > MAX_TENSORS || tensor_count.saturating_mul(24) > cur.remaining() as u64 {
            return Err(cur.corrupt(format!("claims {tensor_count} tensors")));
        }
        if metadata_count > MAX_METADATA
            || metadata_count.saturating_mul(13) > cur.remaining() as u64
        {
            return Err(cur.corrupt(format!("claims {metadata_count} metadata entries")));
        }

        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = cur.string("metadata key")?;
            let value_type = cur.u32(&key)?;
            let value = cur.value(value_type, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(cur.corrupt(format!("duplicate metadata key {key}")));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 16 => a,
                _ => {
                    return Err(cur.corrupt(format!(
                        "general.alignment {v:?} is not a power of two <= 65536"
                    )))
                }
            },
        };

        struct RawInfo {
            name: String,
            dims: Vec<usize>,
            ggml_type: GgmlType,
            offset: u64,
        }
        let mut raw = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = cur.string("tensor name")?;
            let n_dims = cur.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(cur.corrupt(format!(
                    "tensor {name}: {n_dims} dimensions (1..={MAX_DIMS})"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = cur.u64(&name)?;
                dims.push(
                    usize::try_from(d)
                        .map_err(|_| cur.corrupt(format!("tensor {name}: dimension {d}")))?,
                );
            }
            let ggml_type = GgmlType::from_id(cur.u32(&name)?);
            let offset = cur.u64(&name)?;
            raw.push(RawInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let data_start = (cur.pos as u64).div_ceil(alignment) * alignment;
        let file_len = mmap.len() as u64;
        // A file without tensors may end right after its header, unpadded.
        if data_start > file_len && !raw.is_empty() {
            return Err(cur.corrupt("tensor data section starts past the end of the file"));
        }

        let mut tensors = Vec::with_capacity(raw.len());
        let mut by_name = HashMap::with_capacity(raw.len());
        for info in raw {
            let corrupt = |detail: String| EncoderError::DataCorruption {
                file: path.clone(),
                detail: format!("tensor `{}`: {detail}", info.name),
            };
            let elements = info
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                .ok_or_else(|| corrupt(format!("dimensions {:?} overflow", info.dims)))?;
            // Types without a known layout keep a zero-length range; loading them is an error.
            let data_len = match info.ggml_type.block_layout() {
                None => 0,
                Some((block_elems, block_bytes)) => {
                    if info.dims[0] % block_elems != 0 {
                        return Err(corrupt(format!(
                            "row of {} elements is not a whole number of {} blocks ({block_elems})",
                            info.dims[0],
                            info.ggml_type.name()
                        )));
                    }
                    (elements / block_elems as u64)
                        .checked_mul(block_bytes as u64)
                        .ok_or_else(|| corrupt("byte size overflows".into()))?
                }
            };
            if info.offset % alignment != 0 {
                return Err(corrupt(format!(
                    "offset {} not aligned to {alignment}",
                    info.offset
                )));
            }
            let start = data_start
                .checked_add(info.offset)
                .filter(|s| s.checked_add(data_len).is_some_and(|end| end <= file_len))
                .ok_or_else(|| {
                    corrupt(format!(
                        "data [{} + {}, {data_len} bytes) lies outside the file ({file_len} bytes)",
                        data_start, info.offset
                    ))
                })?;
            if by_name.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(corrupt("declared twice".into()));
            }
            tensors.push(GgufTensorInfo {
                name: info.name,
                dims: info.dims,
                ggml_type: info.ggml_type,
                data_start: start as usize,
                data_len: data_len as usize,
            });
        }
        Ok(GgufFile {
            path,
            mmap,
            version,
            metadata,
            tensors,
            by_name,
        })
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

    fn config_error(&self, key: &str, expected: &str) -> EncoderError {
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

    /// The raw (still quantised) bytes of a tensor.
    pub fn raw_data(&self, gguf_name: &str) -> Result<&[u8], EncoderError> {
        let info = self
            .tensor_info(gguf_name)
            .ok_or_else(|| EncoderError::MissingTensor {
                file: self.path.clone(),
                tensor: gguf_name.to_string(),
            })?;
        Ok(&self.mmap[info.data_start..info.data_start + info.data_len])
    }

    /// A tensor (by its GGUF name) dequantised to f32, in PyTorch shape order.
    pub fn dequantize(&self, gguf_name: &str) -> Result<HostTensor, EncoderError> {
        let info = self
            .tensor_info(gguf_name)
            .ok_or_else(|| EncoderError::MissingTensor {
                file: self.path.clone(),
                tensor: gguf_name.to_string(),
            })?;
        if !info.ggml_type.can_dequantize() {
            return Err(EncoderError::UnsupportedDtype {
                file: self.path.clone(),
                tensor: gguf_name.to_string(),
                dtype: info.ggml_type.name(),
            });
        }
        let bytes = &self.mmap[info.data_start..info.data_start + info.data_len];
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

fn value_kind(v: &GgufValue) -> &'static str {
    match v {
        GgufValue::String(_) => "string",
        GgufValue::Array(_) => "array",
        GgufValue::Bool(_) => "bool",
        GgufValue::F32(_) | GgufValue::F64(_) => "float",
        _ => "integer",
    }
}

/// llama.cpp tensor name -> Hugging Face name, for the Qwen2 (and llama-like) layout.
/// Names outside the table (e.g. `rope_freqs.weight`) are kept as they are.
pub fn gguf_to_hf_name(gguf_name: &str) -> String {
    match gguf_name {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    if let Some(rest) = gguf_name.strip_prefix("blk.") {
        if let Some((layer, part)) = rest.split_once('.') {
            if layer.bytes().all(|b| b.is_ascii_digit()) && !layer.is_empty() {
                let (stem, suffix) = part.rsplit_once('.').unwrap_or((part, ""));
                let hf = match stem {
                    "attn_norm" => Some("input_layernorm"),
                    "attn_q" => Some("self_attn.q_proj"),
                    "attn_k" => Some("self_attn.k_proj"),
                    "attn_v" => Some("self_attn.v_proj"),
                    "attn_output" => Some("self_attn.o_proj"),
                    "ffn_norm" => Some("post_attention_layernorm"),
                    "ffn_gate" => Some("mlp.gate_proj"),
                    "ffn_up" => Some("mlp.up_proj"),
                    "ffn_down" => Some("mlp.down_proj"),
                    _ => None,
                };
                if let Some(hf) = hf {
                    return format!("model.layers.{layer}.{hf}.{suffix}");
                }
            }
        }
    }
    gguf_name.to_string()
}

/// A GGUF checkpoint seen through HF names and PyTorch shapes.
#[derive(Debug)]
pub struct GgufSource {
    file: GgufFile,
    /// HF name -> GGUF name, in file order.
    hf_to_gguf: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<GgufSource, EncoderError> {
        Ok(Self::from_file(GgufFile::open(path)?))
    }

    pub fn from_file(file: GgufFile) -> GgufSource {
        let hf_to_gguf: Vec<(String, String)> = file
            .tensors()
            .iter()
            .map(|t| (gguf_to_hf_name(&t.name), t.name.clone()))
            .collect();
        let index = hf_to_gguf
            .iter()
            .enumerate()
            .map(|(i, (hf, _))| (hf.clone(), i))
            .collect();
        GgufSource {
            file,
            hf_to_gguf,
            index,
        }
    }

    /// The underlying file (metadata, tokenizer, raw tensors).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn gguf_name(&self, hf_name: &str) -> Option<&str> {
        self.index
            .get(hf_name)
            .map(|&i| self.hf_to_gguf[i].1.as_str())
    }
}

impl TensorSource for GgufSource {
    fn tensor_names(&self) -> Vec<String> {
        self.hf_to_gguf.iter().map(|(hf, _)| hf.clone()).collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let gguf = self.gguf_name(name)?;
        self.file.tensor_info(gguf).map(GgufTensorInfo::torch_shape)
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError> {
        let gguf = self
            .gguf_name(name)
            .ok_or_else(|| EncoderError::MissingTensor {
                file: self.file.path().to_path_buf(),
                tensor: name.to_string(),
            })?;
        self.file.dequantize(gguf).map_err(|e| match e {
            // Name the tensor as the caller asked for it, and as the file stores it.
            EncoderError::UnsupportedDtype { file, dtype, .. } => EncoderError::UnsupportedDtype {
                file,
                tensor: format!("{name} (GGUF `{gguf}`)"),
                dtype,
            },
            other => other,
        })
    }

    fn origin(&self) -> &Path {
        self.file.path()
    }
}

/// The HF `config.json` values of a Qwen2 model, from a GGUF's `qwen2.*` metadata, as JSON the
/// model code deserialises exactly as it does a `config.json`.
pub fn config_from_gguf(file: &GgufFile) -> Result<serde_json::Value, EncoderError> {
    let arch = file.get_str("general.architecture")?;
    if arch != "qwen2" {
        return Err(EncoderError::UnsupportedFormat {
            file: file.path().to_path_buf(),
            detail: format!("GGUF architecture `{arch}` (quarry reads qwen2)"),
        });
    }
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = file.get_u64(&key("embedding_length"))?;
    let heads = file.get_u64(&key("attention.head_count"))?;
    let kv_heads = match file.get(&key("attention.head_count_kv")) {
        Some(_) => file.get_u64(&key("attention.head_count_kv"))?,
        None => heads,
    };
    let vocab = match file
        .get("tokenizer.ggml.tokens")
        .and_then(GgufValue::as_array)
    {
        Some(tokens) => tokens.len() as u64,
        None => match file.tensor_info("token_embd.weight") {
            Some(t) => *t.dims.last().unwrap_or(&0) as u64,
            None => return Err(file.config_error("tokenizer.ggml.tokens", "array of strings")),
        },
    };
    let rope_theta = match file.get(&key("rope.freq_base")) {
        Some(_) => file.get_f64(&key("rope.freq_base"))?,
        None => 10_000.0,
    };
    // f32 metadata -> f64 through the shortest decimal, so 1e-6 stays 1e-6 and not 9.99999997e-7.
    let as_json_f64 = |v: f64| -> f64 { format!("{}", v as f32).parse().unwrap_or(v) };
    let mut config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": hidden,
        "num_hidden_layers": file.get_u64(&key("block_count"))?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": file.get_u64(&key("feed_forward_length"))?,
        "rms_norm_eps": as_json_f64(file.get_f64(&key("attention.layer_norm_rms_epsilon"))?),
        "rope_theta": as_json_f64(rope_theta),
        "vocab_size": vocab,
        "hidden_act": "silu",
        // No separate output matrix: the head reuses the embedding, as HF's tie_word_embeddings.
        "tie_word_embeddings": file.tensor_info("output.weight").is_none(),
        "torch_dtype": "float32",
    });
    config["max_position_embeddings"] = file.get_u64(&key("context_length"))?.into();
    // llama.cpp writes the per-head width only when it is not hidden / heads.
    if file.get(&key("attention.key_length")).is_some() {
        config["head_dim"] = file.get_u64(&key("attention.key_length"))?.into();
    }
    for (gguf_key, hf_key) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ] {
        if let Some(id) = file.get(gguf_key).and_then(GgufValue::as_u64) {
            config[hf_key] = id.into();
        }
    }
    Ok(config)
}
