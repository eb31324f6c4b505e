//! LoRA adapters: low-rank updates `W + (alpha / r) · B A` of a model's linear layers, as
//! PEFT stores them, and the two ways quarry applies them.
//!
//! Place in the data flow: `quarry train` (engine) attaches trainable adapters to a
//! [`crate::Qwen2Model`] (each adapted [`crate::layers`] linear gains a branch
//! `dropout(x) Aᵀ Bᵀ · scale`) and saves them here; `quarry build --lora DIR` loads them and
//! merges them into the base weights as they are read ([`LoraMergedSource`]), so inference
//! runs the plain model.
//!
//! On disk the folder is PEFT's (`save_pretrained` / `PeftModel.from_pretrained`):
//! `adapter_model.safetensors` with tensors named
//! `base_model.model.<module>.lora_A.weight` (`[r, in]`) and `...lora_B.weight`
//! (`[out, r]`), where `<module>` is the base checkpoint's module path
//! (`model.layers.0.self_attn.q_proj`), plus `adapter_config.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde_json::{json, Value};

use crate::error::io_error;
use crate::{EncoderError, HostTensor, TensorSource};

/// The adapter weights file of a PEFT adapter folder.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The adapter configuration file of a PEFT adapter folder.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// The projections RepLLaMA adapts: every linear of attention and MLP.
pub const DEFAULT_TARGET_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];
/// PEFT's prefix in front of the base model's own tensor names.
const PEFT_PREFIX: &str = "base_model.model.";

/// Shape of the low-rank update.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Dropout on the adapter branch's input during training (PEFT's `lora_dropout`).
    pub dropout: f64,
    /// Last component of the adapted modules' names (`q_proj`, ...).
    pub target_modules: Vec<String>,
    /// rsLoRA scaling `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
}

impl LoraConfig {
    /// The factor applied to `B A`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Whether a module (by its last name component) is adapted.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|target| target == module)
    }

    /// Checks the values; `file` names the source in errors.
    pub fn validate(&self, file: &Path) -> Result<(), EncoderError> {
        let problem = if self.rank == 0 {
            Some("rank (`r`) must be positive".to_string())
        } else if !(self.alpha.is_finite() && self.alpha > 0.0) {
            Some(format!("lora_alpha {} must be positive", self.alpha))
        } else if !(0.0..1.0).contains(&self.dropout) {
            Some(format!("lora_dropout {} must be in [0, 1)", self.dropout))
        } else if self.target_modules.is_empty() {
            Some("no target modules".to_string())
        } else {
            self.target_modules
                .iter()
                .find(|t| !DEFAULT_TARGET_MODULES.contains(&t.as_str()))
                .map(|t| {
                    format!("target module `{t}`: Qwen2's linears are {DEFAULT_TARGET_MODULES:?}")
                })
        };
        match problem {
            Some(detail) => Err(EncoderError::Config {
                file: file.to_path_buf(),
                detail,
            }),
            None => Ok(()),
        }
    }

    /// PEFT's `adapter_config.json` for these settings.
    pub fn to_peft_json(&self, base_model: &str) -> Value {
        json!({
            "peft_type": "LORA",
            "task_type": "FEATURE_EXTRACTION",
            "base_model_name_or_path": base_model,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": self.use_rslora,
            "use_dora": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "revision": null
        })
    }

    /// Reads a PEFT `adapter_config.json`; refuses the variants quarry does not compute
    /// (DoRA, per-module ranks, trained biases, fan-in-fan-out weights, non-LoRA types).
    pub fn from_peft_json(text: &str, file: &Path) -> Result<Self, EncoderError> {
        let error = |detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| error(format!("not valid JSON: {e}")))?;
        if let Some(kind) = value.get("peft_type").and_then(Value::as_str) {
            if kind != "LORA" {
                return Err(error(format!("peft_type `{kind}`: only LORA adapters")));
            }
        }
        let flag = |name: &str| value.get(name).and_then(Value::as_bool).unwrap_or(false);
        for name in ["use_dora", "fan_in_fan_out"] {
            if flag(name) {
                return Err(error(format!("`{name}: true` is not supported")));
            }
        }
        for name in ["rank_pattern", "alpha_pattern"] {
            if value
                .get(name)
                .and_then(Value::as_object)
                .is_some_and(|map| !map.is_empty())
            {
                return Err(error(format!("per-module `{name}` is not supported")));
            }
        }
        if let Some(bias) = value.get("bias").and_then(Value::as_str) {
            if bias != "none" {
                return Err(error(format!(
                    "bias `{bias}`: only adapters without biases"
                )));
            }
        }
        if value
            .get("modules_to_save")
            .and_then(Value::as_array)
            .is_some_and(|modules| !modules.is_empty())
        {
            return Err(error("`modules_to_save` is not supported".to_string()));
        }
        let rank = value
            .get("r")
            .and_then(Value::as_u64)
            .ok_or_else(|| error("missing `r`".to_string()))? as usize;
        let alpha = value
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| error("missing `lora_alpha`".to_string()))?;
        let dropout = value
            .get("lora_dropout")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        // PEFT writes a list (or, from a Python set, a list in any order) or one regex string.
        let target_modules = match value.get("target_modules") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| error("target_modules holds a non-string".to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::String(pattern)) => {
                return Err(error(format!(
                    "target_modules as a regex (`{pattern}`) is not supported; list the modules"
                )))
            }
            _ => return Err(error("missing `target_modules`".to_string())),
        };
        let mut target_modules: Vec<String> = DEFAULT_TARGET_MODULES
            .iter()
            .filter(|m| target_modules.iter().any(|t| t == *m))
            .map(|m| m.to_string())
            .chain(
                target_modules
                    .iter()
                    .filter(|t| !DEFAULT_TARGET_MODULES.contains(&t.as_str()))
                    .cloned(),
            )
            .collect();
        target_modules.dedup();
        let config = Self {
            rank,
            alpha,
            dropout,
            target_modules,
            use_rslora: flag("use_rslora"),
        };
        config.validate(file)?;
        Ok(config)
    }
}

/// One adapted linear, in PyTorch/PEFT layout: `a` is `[rank, in]`, `b` is `[out, rank]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraPair {
    pub a: HostTensor,
    pub b: HostTensor,
}

/// A set of adapters keyed by the base checkpoint's module path
/// (`model.layers.0.self_attn.q_proj`), in name order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    pub modules: BTreeMap<String, LoraPair>,
}

/// The PEFT tensor name of `module`'s `lora_A` / `lora_B` weight.
pub fn peft_tensor_name(module: &str, which: char) -> String {
    format!("{PEFT_PREFIX}{module}.lora_{which}.weight")
}

impl LoraAdapter {
    /// Reads a PEFT adapter folder (or the adapter safetensors file inside one).
    pub fn load(path: &Path) -> Result<Self, EncoderError> {
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        };
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(io_error(&config_path))?;
        let config = LoraConfig::from_peft_json(&text, &config_path)?;
        let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(io_error(&weights_path))?;
        Self::from_safetensors(config, &bytes, &weights_path)
    }

    /// Adapter tensors from safetensors bytes (PEFT naming); `file` names them in errors.
    pub fn from_safetensors(
        config: LoraConfig,
        bytes: &[u8],
        file: &Path,
    ) -> Result<Self, EncoderError> {
        let corrupt = |detail: String| EncoderError::DataCorruption {
            file: file.to_path_buf(),
            detail,
        };
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| corrupt(format!("not safetensors: {e}")))?;
        let mut halves: BTreeMap<String, (Option<HostTensor>, Option<HostTensor>)> =
            BTreeMap::new();
        for (name, view) in tensors.tensors() {
            let Some(rest) = name.strip_prefix(PEFT_PREFIX) else {
                return Err(corrupt(format!(
                    "tensor `{name}` is not a PEFT LoRA weight (`{PEFT_PREFIX}...`)"
                )));
            };
            // PEFT strips the adapter name when saving; accept `.default.` too.
            let rest = rest.replace(".default.weight", ".weight");
            let (module, which) = if let Some(module) = rest.strip_suffix(".lora_A.weight") {
                (module, 'A')
            } else if let Some(module) = rest.strip_suffix(".lora_B.weight") {
                (module, 'B')
            } else {
                return Err(corrupt(format!(
                    "tensor `{name}` is neither a lora_A nor a lora_B weight"
                )));
            };
            let host = host_tensor(&view).map_err(|d| corrupt(format!("`{name}`: {d}")))?;
            // An adapter trained on the bare transformer (`AutoModel`, as Tevatron does) names
            // its modules `layers.N...`; the checkpoint's paths are `model.layers.N...`.
            let module = match module.strip_prefix("layers.") {
                Some(_) => format!("model.{module}"),
                None => module.to_string(),
            };
            let entry = halves.entry(module).or_default();
            if which == 'A' {
                entry.0 = Some(host);
            } else {
                entry.1 = Some(host);
            }
        }
        let rank = config.rank;
        let mut modules = BTreeMap::new();
        for (module, halves) in halves {
            let (Some(a), Some(b)) = halves else {
                return Err(corrupt(format!("`{module}` lacks its lora_A or lora_B")));
            };
            if a.shape.len() != 2 || b.shape.len() != 2 || a.shape[0] != rank || b.shape[1] != rank
            {
                return Err(corrupt(format!(
                    "`{module}`: lora_A {:?} / lora_B {:?} do not have rank {rank}",
                    a.shape, b.shape
                )));
            }
            let last = module.rsplit('.').next().unwrap_or("");
            if !config.targets(last) {
                return Err(corrupt(format!(
                    "`{module}` is not among the target modules {:?}",
                    config.target_modules
                )));
            }
            modules.insert(module, LoraPair { a, b });
        }
        if modules.is_empty() {
            return Err(corrupt("no LoRA tensors".to_string()));
        }
        Ok(Self { config, modules })
    }

    /// The adapter tensors as safetensors bytes (PEFT naming, f32). Deterministic: the same
    /// values give the same bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, EncoderError> {
        let mut named: Vec<(String, &HostTensor)> = Vec::new();
        for (module, pair) in &self.modules {
            named.push((peft_tensor_name(module, 'A'), &pair.a));
            named.push((peft_tensor_name(module, 'B'), &pair.b));
        }
        let mut metadata = std::collections::HashMap::new();
        metadata.insert("format".to_string(), "pt".to_string());
        serialize_f32(&named, Some(metadata))
    }

    /// Writes `adapter_model.safetensors` and `adapter_config.json` into `dir` (created if
    /// needed), each atomically. `base_model` goes into the config's `base_model_name_or_path`.
    pub fn save(&self, dir: &Path, base_model: &str) -> Result<(), EncoderError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let weights = self.to_safetensors()?;
        quarry_fsio::write(&dir.join(ADAPTER_WEIGHTS_FILE), &weights)?;
        let mut config = serde_json::to_vec_pretty(&self.config.to_peft_json(base_model))
            .expect("JSON value serialises");
        config.push(b'\n');
        quarry_fsio::write(&dir.join(ADAPTER_CONFIG_FILE), &config)?;
        Ok(())
    }

    /// The files whose bytes define an adapter folder (for the encoder fingerprint).
    pub fn files(dir: &Path) -> Vec<PathBuf> {
        let dir = if dir.is_file() {
            dir.parent().unwrap_or(Path::new("."))
        } else {
            dir
        };
        vec![
            dir.join(ADAPTER_WEIGHTS_FILE),
            dir.join(ADAPTER_CONFIG_FILE),
        ]
    }

    /// `W + scale · B A` for a base weight `[out, in]` of `module`, when it is adapted.
    pub fn merged_weight(&self, module: &str, base: HostTensor) -> Result<HostTensor, String> {
        let Some(pair) = self.modules.get(module) else {
            return Ok(base);
        };
        let (out, input) = match base.shape.as_slice() {
            &[out, input] => (out, input),
            other => return Err(format!("base weight has shape {other:?}, not 2-d")),
        };
        let rank = self.config.rank;
        if pair.a.shape != [rank, input] || pair.b.shape != [out, rank] {
            return Err(format!(
                "lora_A {:?} / lora_B {:?} do not fit the base weight [{out}, {input}]",
                pair.a.shape, pair.b.shape
            ));
        }
        let scale = self.config.scale();
        let mut merged = base;
        for row in 0..out {
            let b_row = &pair.b.data[row * rank..(row + 1) * rank];
            let target = &mut merged.data[row * input..(row + 1) * input];
            for (k, &b) in b_row.iter().enumerate() {
                let factor = (f64::from(b) * scale) as f32;
                let a_row = &pair.a.data[k * input..(k + 1) * input];
                for (value, &a) in target.iter_mut().zip(a_row) {
                    *value += factor * a;
                }
            }
        }
        Ok(merged)
    }
}

fn host_tensor(view: &TensorView<'_>) -> Result<HostTensor, String> {
    let bytes = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => return Err(format!("dtype {other:?}: adapters are f32, bf16 or f16")),
    };
    let tensor = HostTensor {
        shape: view.shape().to_vec(),
        data,
    };
    if tensor.data.len() != tensor.num_elements() {
        return Err("data length does not match the shape".to_string());
    }
    Ok(tensor)
}

/// Named f32 host tensors as safetensors bytes (the crate orders them deterministically).
pub fn serialize_f32(
    named: &[(String, &HostTensor)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>, EncoderError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .iter()
        .map(|(name, tensor)| {
            let raw: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), tensor.shape.clone(), raw)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            TensorView::new(Dtype::F32, shape.clone(), raw)
                .map(|view| (name.clone(), view))
                .map_err(|e| EncoderError::InvalidInput(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata)
        .map_err(|e| EncoderError::InvalidInput(format!("serialising safetensors: {e}")))
}

/// A [`TensorSource`] that presents base weights with an adapter merged in: `W + scale · B A`
/// for every adapted linear, everything else unchanged.
pub struct LoraMergedSource<'a> {
    base: &'a dyn TensorSource,
    adapter: &'a LoraAdapter,
}

impl<'a> LoraMergedSource<'a> {
    /// Checks that every adapted module exists in the base with a fitting shape.
    pub fn new(base: &'a dyn TensorSource, adapter: &'a LoraAdapter) -> Result<Self, EncoderError> {
        for (module, pair) in &adapter.modules {
            let name = format!("{module}.weight");
            let Some(shape) = base.shape(&name) else {
                return Err(EncoderError::Weights {
                    origin: base.origin().to_path_buf(),
                    name,
                    detail: "the adapter adapts it but the base model has no such weight \
                             (adapter trained for another model?)"
                        .to_string(),
                });
            };
            if shape != [pair.b.shape[0], pair.a.shape[1]] {
                return Err(EncoderError::Weights {
                    origin: base.origin().to_path_buf(),
                    name,
                    detail: format!(
                        "shape {shape:?}; the adapter's lora_B·lora_A is [{}, {}]",
                        pair.b.shape[0], pair.a.shape[1]
                    ),
                });
            }
        }
        Ok(Self { base, adapter })
    }
}

impl TensorSource for LoraMergedSource<'_> {
    fn tensor_names(&self) -> Vec<String> {
        self.base.tensor_names()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.base.shape(name)
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError> {
        let base = self.base.load_f32(name)?;
        match name.strip_suffix(".weight") {
            Some(module) if self.adapter.modules.contains_key(module) => self
                .adapter
                .merged_weight(module, base)
                .map_err(|detail| EncoderError::Weights {
                    origin: self.base.origin().to_path_buf(),
                    name: name.to_string(),
                    detail,
                }),
            _ => Ok(base),
        }
    }

    fn origin(&self) -> &Path {
        self.base.origin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoraConfig {
        LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.0,
            target_modules: vec!["q_proj".into()],
            use_rslora: false,
        }
    }

    #[test]
    fn save_and_load_round_trip_with_peft_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut modules = BTreeMap::new();
        modules.insert(
            "model.layers.0.self_attn.q_proj".to_string(),
            LoraPair {
                a: HostTensor {
                    shape: vec![2, 3],
                    data: vec![1., 2., 3., 4., 5., 6.],
                },
                b: HostTensor {
                    shape: vec![4, 2],
                    data: vec![0.5; 8],
                },
            },
        );
        let adapter = LoraAdapter {
            config: config(),
            modules,
        };
        adapter.save(dir.path(), "base").unwrap();
        let bytes = std::fs::read(dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
        let names: Vec<String> = SafeTensors::deserialize(&bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(names
            .contains(&"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".into()));
        let loaded = LoraAdapter::load(dir.path()).unwrap();
        assert_eq!(loaded, adapter);
        // W + (4/2) B A on a zero base: row r = 2 * 0.5 * (A[0] + A[1]).
        let merged = adapter
            .merged_weight(
                "model.layers.0.self_attn.q_proj",
                HostTensor {
                    shape: vec![4, 3],
                    data: vec![0.0; 12],
                },
            )
            .unwrap();
        assert_eq!(&merged.data[..3], &[5.0, 7.0, 9.0]);
    }

    #[test]
    fn loads_an_adapter_trained_on_the_bare_transformer() {
        // PEFT on `AutoModel` (Tevatron's way) names modules without the `model.` prefix.
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<u8> = [1.0f32; 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b: Vec<u8> = [0.5f32; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
        let prefix = "base_model.model.layers.0.self_attn.q_proj";
        let tensors = [
            (
                format!("{prefix}.lora_A.weight"),
                TensorView::new(Dtype::F32, vec![2, 3], &a).unwrap(),
            ),
            (
                format!("{prefix}.lora_B.weight"),
                TensorView::new(Dtype::F32, vec![4, 2], &b).unwrap(),
            ),
        ];
        safetensors::serialize_to_file(tensors, None, &dir.path().join(ADAPTER_WEIGHTS_FILE))
            .unwrap();
        std::fs::write(
            dir.path().join(ADAPTER_CONFIG_FILE),
            config().to_peft_json("base").to_string(),
        )
        .unwrap();
        let loaded = LoraAdapter::load(dir.path()).unwrap();
        let modules: Vec<&String> = loaded.modules.keys().collect();
        assert_eq!(modules, ["model.layers.0.self_attn.q_proj"]);
    }

    #[test]
    fn refuses_what_it_does_not_compute() {
        let base = config().to_peft_json("m");
        for (key, value) in [
            ("use_dora", json!(true)),
            ("rank_pattern", json!({"q_proj": 4})),
            ("bias", json!("all")),
            ("target_modules", json!("q_proj|v_proj")),
            ("r", json!(0)),
        ] {
            let mut changed = base.clone();
            changed[key] = value;
            let err = LoraConfig::from_peft_json(&changed.to_string(), Path::new("c.json"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("c.json"), "{err}");
        }
        let parsed = LoraConfig::from_peft_json(&base.to_string(), Path::new("c.json")).unwrap();
        assert_eq!(parsed, config());
    }
}
