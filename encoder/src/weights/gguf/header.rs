//! The GGUF header, read with every size bounded: a hostile file claims counts and lengths it
//! does not have, so each is checked against the limits below and the bytes actually left
//! before anything is allocated for it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{GgufFile, GgufTensorInfo, GgufValue};
use crate::weights::dequant::GgmlType;
use crate::EncoderError;

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
    /// Parses the header of a mapped file, checking every count, size and offset against the
    /// file before trusting it.
    pub(super) fn parse(path: PathBuf, mmap: Mmap) -> Result<GgufFile, EncoderError> {
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
}
