//! Hugging Face model folders: `config.json` plus `model.safetensors` or a sharded
//! checkpoint (`model.safetensors.index.json` naming `model-0000k-of-0000n.safetensors`).
//! Files are memory-mapped; headers are parsed by HF's `safetensors` crate (which bounds the
//! header at 100 MB and checks that offsets cover the data exactly); a tensor is converted to
//! f32 (from F32, F16 or BF16) when the model code loads it, straight from the map.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

use crate::error::io_error;
use crate::{EncoderError, HostTensor, TensorSource};

/// Largest `model.safetensors.index.json` we read (real ones are tens of KB).
const MAX_INDEX_BYTES: u64 = 64 << 20;

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    /// Length of the 8-byte length prefix plus JSON header: tensor offsets count from here.
    data_start: usize,
    metadata: Metadata,
}

/// All tensors of an HF safetensors checkpoint (single file or shards).
pub struct SafetensorsSource {
    folder: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name -> shard index, sorted by name.
    tensors: BTreeMap<String, usize>,
}

impl std::fmt::Debug for SafetensorsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsSource")
            .field("folder", &self.folder)
            .field("shards", &self.shards.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn open_shard(path: &Path) -> Result<Shard, EncoderError> {
    let file = File::open(path).map_err(io_error(path))?;
    // SAFETY: read-only map; concurrent truncation by another process is outside our control,
    // as for every mmap-based checkpoint loader.
    let mmap = unsafe { Mmap::map(&file) }.map_err(io_error(path))?;
    let (header_len, metadata) =
        SafeTensors::read_metadata(&mmap).map_err(|e| EncoderError::DataCorruption {
            file: path.to_path_buf(),
            detail: format!("safetensors header: {e}"),
        })?;
    Ok(Shard {
        path: path.to_path_buf(),
        mmap,
        data_start: 8 + header_len,
        metadata,
    })
}

impl SafetensorsSource {
    /// Opens an HF model folder (or a single `.safetensors` file).
    pub fn open(path: &Path) -> Result<SafetensorsSource, EncoderError> {
        if path.is_file() {
            let folder = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            return Self::from_shards(folder, &[path.to_path_buf()]);
        }
        let single = path.join("model.safetensors");
        let index = path.join("model.safetensors.index.json");
        if single.is_file() {
            Self::from_shards(path.to_path_buf(), &[single])
        } else if index.is_file() {
            Self::from_index(path, &index)
        } else {
            Err(super::no_weights_error(path))
        }
    }

    fn from_index(folder: &Path, index_path: &Path) -> Result<SafetensorsSource, EncoderError> {
        let len = std::fs::metadata(index_path)
            .map_err(io_error(index_path))?
            .len();
        if len > MAX_INDEX_BYTES {
            return Err(EncoderError::DataCorruption {
                file: index_path.to_path_buf(),
                detail: format!("{len} bytes: not a shard index (limit {MAX_INDEX_BYTES})"),
            });
        }
        let text = std::fs::read_to_string(index_path).map_err(io_error(index_path))?;
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let index: Index =
            serde_json::from_str(&text).map_err(|e| EncoderError::DataCorruption {
                file: index_path.to_path_buf(),
                detail: format!("shard index: {e}"),
            })?;
        let mut shard_files: Vec<&String> = index.weight_map.values().collect();
        shard_files.sort();
        shard_files.dedup();
        let mut paths = Vec::with_capacity(shard_files.len());
        for name in shard_files {
            // Shard names are plain file names next to the index; refuse paths that leave the folder.
            if name.contains('/')
                || name.contains('\\')
                || name == ".."
                || !name.ends_with(".safetensors")
            {
                return Err(EncoderError::DataCorruption {
                    file: index_path.to_path_buf(),
                    detail: format!(
                        "shard `{name}` is not a .safetensors file name in the model folder"
                    ),
                });
            }
            paths.push(folder.join(name));
        }
        let source = Self::from_shards(folder.to_path_buf(), &paths)?;
        // The index and the shards must agree: a tensor listed but absent is a broken download.
        for (tensor, shard) in &index.weight_map {
            let found = source.tensors.get(tensor).map(|&i| &source.shards[i].path);
            if found != Some(&folder.join(shard)) {
                return Err(EncoderError::DataCorruption {
                    file: index_path.to_path_buf(),
                    detail: format!(
                        "tensor `{tensor}` listed in shard {shard} but not stored there"
                    ),
                });
            }
        }
        Ok(source)
    }

    fn from_shards(folder: PathBuf, paths: &[PathBuf]) -> Result<SafetensorsSource, EncoderError> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut tensors = BTreeMap::new();
        for path in paths {
            let shard = open_shard(path)?;
            let index = shards.len();
            for name in shard.metadata.tensors().keys() {
                if tensors.insert(name.clone(), index).is_some() {
                    return Err(EncoderError::DataCorruption {
                        file: path.clone(),
                        detail: format!("tensor `{name}` stored in more than one shard"),
                    });
                }
            }
            shards.push(shard);
        }
        Ok(SafetensorsSource {
            folder,
            shards,
            tensors,
        })
    }

    /// The stored element type of a tensor (e.g. "BF16").
    pub fn dtype(&self, name: &str) -> Option<String> {
        let shard = &self.shards[*self.tensors.get(name)?];
        shard
            .metadata
            .info(name)
            .map(|info| format!("{:?}", info.dtype))
    }

    /// The files the weights live in, in load order.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// `__metadata__` string map of every shard, merged.
    pub fn file_metadata(&self) -> HashMap<String, String> {
        let mut merged = HashMap::new();
        for shard in &self.shards {
            if let Some(m) = shard.metadata.metadata() {
                merged.extend(m.clone());
            }
        }
        merged
    }
}

impl TensorSource for SafetensorsSource {
    fn tensor_names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let shard = &self.shards[*self.tensors.get(name)?];
        shard.metadata.info(name).map(|info| info.shape.clone())
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError> {
        let missing = || EncoderError::MissingTensor {
            file: self.folder.clone(),
            tensor: name.to_string(),
        };
        let shard = &self.shards[*self.tensors.get(name).ok_or_else(missing)?];
        let info = shard.metadata.info(name).ok_or_else(missing)?;
        let (begin, end) = info.data_offsets;
        // read_metadata validated that offsets tile the data section exactly.
        let bytes = &shard.mmap[shard.data_start + begin..shard.data_start + end];
        let elements: usize = info.shape.iter().product();
        let data: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(EncoderError::UnsupportedDtype {
                    file: shard.path.clone(),
                    tensor: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        if data.len() != elements {
            return Err(EncoderError::DataCorruption {
                file: shard.path.clone(),
                detail: format!(
                    "tensor `{name}`: {} values stored for shape {:?}",
                    data.len(),
                    info.shape
                ),
            });
        }
        Ok(HostTensor {
            shape: info.shape.clone(),
            data,
        })
    }

    fn origin(&self) -> &Path {
        &self.folder
    }
}
