//! GGUF reading: dequantisation of every supported ggml type against the reference `gguf`
//! Python package, HF naming and PyTorch shapes, config_from_gguf, and every bad-input case
//! (each must be a typed error naming the file/tensor, never a panic or a huge allocation).
//!
//! Fixture: fixtures/gguf/tiny_qwen2_quants.gguf, made by scripts/gguf_make_fixtures.py.

use std::path::{Path, PathBuf};

mod common;

use quarry_encoder::weights::{
    config_from_gguf, open_weights, GgmlType, GgufFile, GgufSource, Weights,
};
use quarry_encoder::{EncoderError, TensorSource};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf/tiny_qwen2_quants.gguf")
}

#[test]
fn every_quant_type_matches_the_gguf_python_reference_bit_for_bit() {
    let file = GgufFile::open(&fixture()).unwrap();
    let types = [
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
    ];
    for ty in types {
        let name = format!("quant.{ty}");
        let info = file.tensor_info(&name).unwrap();
        assert_eq!(info.ggml_type.name(), ty);
        let got = file.dequantize(&name).unwrap();
        let expected = file.dequantize(&format!("{name}.expected")).unwrap();
        assert_eq!(got.shape, vec![3, 512], "{ty}");
        assert_eq!(got.shape, expected.shape, "{ty}");
        let mismatches = got
            .data
            .iter()
            .zip(&expected.data)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            mismatches,
            0,
            "{ty}: {mismatches} of {} values differ",
            got.data.len()
        );
        assert!(got.data.iter().any(|v| *v != 0.0), "{ty}: all zero");
    }
}

#[test]
fn qwen2_tensors_get_hf_names_and_pytorch_shapes() {
    let source = GgufSource::open(&fixture()).unwrap();
    let names = source.tensor_names();
    for hf in [
        "model.embed_tokens.weight",
        "model.norm.weight",
        "lm_head.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.bias",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
    ] {
        assert!(names.iter().any(|n| n == hf), "{hf} missing from {names:?}");
    }
    common::assert_shapes(
        &source,
        &[
            ("model.embed_tokens.weight", &[32, 64]),
            ("model.layers.0.self_attn.k_proj.weight", &[32, 64]),
            ("model.layers.0.mlp.up_proj.weight", &[96, 64]),
            ("model.layers.0.mlp.down_proj.weight", &[64, 96]),
            ("model.layers.0.self_attn.q_proj.bias", &[64]),
        ],
    );
    assert_eq!(
        source.shape("blk.0.attn_q.weight"),
        None,
        "GGUF names are not exposed"
    );

    // Row-major data in PyTorch order: row r of down_proj is GGUF's r-th run of ne[0] values.
    let down = source
        .load_f32("model.layers.0.mlp.down_proj.weight")
        .unwrap();
    assert_eq!(down.shape, vec![64, 96]);
    assert_eq!(down.data.len(), 64 * 96);
    let raw = source.file().dequantize("blk.0.ffn_down.weight").unwrap();
    assert_eq!(raw.data, down.data);
    assert_eq!(source.origin(), fixture());
}

#[test]
fn config_from_gguf_gives_hf_qwen2_config_values() {
    let file = GgufFile::open(&fixture()).unwrap();
    let config = config_from_gguf(&file).unwrap();
    assert_eq!(config["model_type"], "qwen2");
    common::assert_json_fields(
        &config,
        &[
            ("hidden_size", 64.0),
            ("num_hidden_layers", 1.0),
            ("num_attention_heads", 4.0),
            ("num_key_value_heads", 2.0),
            ("intermediate_size", 96.0),
            ("rope_theta", 1_000_000.0),
            ("rms_norm_eps", 1e-6),
            ("vocab_size", 32.0),
            ("max_position_embeddings", 128.0),
        ],
    );
    assert_eq!(
        config["tie_word_embeddings"], false,
        "the fixture has output.weight"
    );
    assert_eq!(config["eos_token_id"], 5);
    assert_eq!(config["bos_token_id"], 4);
}

#[test]
fn open_weights_dispatches_on_gguf() {
    match open_weights(&fixture()).unwrap() {
        Weights::Gguf(g) => assert!(g.shape("model.norm.weight").is_some()),
        other => panic!("expected GGUF, got {other:?}"),
    }
}

// ------------------------------------------------------------------ hand-written bad files

/// Minimal GGUF writer for malformed headers.
struct Header(Vec<u8>);

impl Header {
    fn new(version: u32, tensors: u64, kvs: u64) -> Header {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        Header(b)
    }
    fn string(mut self, s: &str) -> Header {
        self.0.extend((s.len() as u64).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Header {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Header {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn pad_to(mut self, alignment: usize) -> Header {
        self.0.resize(self.0.len().next_multiple_of(alignment), 0);
        self
    }
    fn bytes(mut self, n: usize) -> Header {
        self.0.extend(std::iter::repeat_n(0x11u8, n));
        self
    }
    /// Writes the file and returns (dir guard, path).
    fn write(self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gguf");
        std::fs::write(&path, self.0).unwrap();
        (dir, path)
    }
}

/// A tensor info record: name, dims (GGUF order), type id, offset.
fn tensor_info(h: Header, name: &str, dims: &[u64], ty: u32, offset: u64) -> Header {
    let mut h = h.string(name).u32(dims.len() as u32);
    for &d in dims {
        h = h.u64(d);
    }
    h.u32(ty).u64(offset)
}

/// A file of one tensor (name, dims in GGUF order, type id, offset) whose data section,
/// after the default 32-byte alignment, holds `data_bytes` bytes.
fn one_tensor_file(name: &str, dims: &[u64], ty: u32, offset: u64, data_bytes: usize) -> Header {
    tensor_info(Header::new(3, 1, 0), name, dims, ty, offset)
        .pad_to(32)
        .bytes(data_bytes)
}

/// The detail of the corruption `GgufFile::open` reports (naming the file) for the file
/// `header` describes.
fn corruption_in(header: Header) -> String {
    let (_dir, path) = header.write();
    match GgufFile::open(&path) {
        Err(EncoderError::DataCorruption { file, detail }) => {
            assert_eq!(file, path);
            detail
        }
        other => panic!("expected DataCorruption, got {other:?}"),
    }
}

#[test]
fn a_valid_hand_written_file_parses() {
    // One F32 tensor of 8 values: the writer helper itself is right.
    let h = one_tensor_file("x", &[8], 0, 0, 32);
    let (_dir, path) = h.write();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.dequantize("x").unwrap().shape, vec![8]);
}

#[test]
fn wrong_magic_is_corrupt() {
    assert!(corruption_in(Header(b"GGML\x03\0\0\0".to_vec()).bytes(32)).contains("not a GGUF file"));
}

#[test]
fn empty_and_truncated_headers_are_corrupt() {
    corruption_in(Header(Vec::new()));
    corruption_in(Header(b"GGUF\x03\0".to_vec()));
}

#[test]
fn old_or_future_versions_are_unsupported() {
    for version in [1, 4] {
        let (_dir, path) = Header::new(version, 0, 0).write();
        assert!(matches!(
            GgufFile::open(&path),
            Err(EncoderError::UnsupportedFormat { .. })
        ));
    }
}

#[test]
fn absurd_counts_are_errors_not_allocations() {
    assert!(corruption_in(Header::new(3, 1 << 40, 0)).contains("tensors"));
    assert!(corruption_in(Header::new(3, 0, u64::MAX)).contains("metadata"));
}

#[test]
fn a_terabyte_string_is_an_error() {
    let h = Header::new(3, 0, 1).u64(1 << 40).bytes(64);
    assert!(corruption_in(h).contains("string"));
    // A string longer than the rest of the file, under the size limit.
    let h = Header::new(3, 0, 1).u64(1000).bytes(10);
    corruption_in(h);
}

#[test]
fn a_huge_metadata_array_is_an_error() {
    // key "k", type 9 (array) of u8 (0), 2^40 items.
    let h = Header::new(3, 0, 1)
        .string("k")
        .u32(9)
        .u32(0)
        .u64(1 << 40)
        .bytes(16);
    assert!(corruption_in(h).contains("array"));
}

#[test]
fn unknown_value_type_is_corrupt() {
    let h = Header::new(3, 0, 1).string("k").u32(77).bytes(8);
    assert!(corruption_in(h).contains("unknown value type"));
}

#[test]
fn too_many_dimensions_is_corrupt() {
    let h = one_tensor_file("x", &[1, 1, 1, 1, 1, 1, 1], 0, 0, 32);
    assert!(corruption_in(h).contains("dimensions"));
}

#[test]
fn overflowing_dimensions_are_corrupt() {
    let h = one_tensor_file("x", &[1 << 32, 1 << 32, 1 << 32], 0, 0, 32);
    let detail = corruption_in(h);
    assert!(detail.contains("`x`"), "{detail}");
}

#[test]
fn tensor_data_past_the_end_names_the_tensor() {
    // 64 f32 values = 256 bytes claimed, 32 present.
    let h = one_tensor_file("blk.0.attn_q.weight", &[64], 0, 0, 32);
    let detail = corruption_in(h);
    assert!(
        detail.contains("blk.0.attn_q.weight") && detail.contains("outside the file"),
        "{detail}"
    );
}

#[test]
fn rows_that_are_not_whole_blocks_are_corrupt() {
    // Q8_0 blocks hold 32 values; a row of 40 cannot be stored.
    let h = one_tensor_file("x", &[40], 8, 0, 64);
    assert!(corruption_in(h).contains("blocks"));
}

#[test]
fn duplicate_tensor_names_are_corrupt() {
    let h = tensor_info(Header::new(3, 2, 0), "x", &[8], 0, 0);
    let h = tensor_info(h, "x", &[8], 0, 32).pad_to(32).bytes(64);
    assert!(corruption_in(h).contains("twice"));
}

#[test]
fn misaligned_offsets_are_corrupt() {
    let h = one_tensor_file("x", &[8], 0, 4, 64);
    assert!(corruption_in(h).contains("aligned"));
}

#[test]
fn unsupported_quant_type_parses_but_loading_names_tensor_and_type() {
    // ggml type 16 = IQ2_XXS: no decoder in quarry.
    let h = one_tensor_file("blk.3.ffn_up.weight", &[256, 2], 16, 0, 256);
    let (_dir, path) = h.write();
    let source = GgufSource::open(&path).unwrap();
    assert_eq!(source.file().tensors()[0].ggml_type, GgmlType::Other(16));
    match source.load_f32("model.layers.3.mlp.up_proj.weight") {
        Err(EncoderError::UnsupportedDtype {
            file,
            tensor,
            dtype,
        }) => {
            assert_eq!(file, path);
            assert!(
                tensor.contains("model.layers.3.mlp.up_proj.weight")
                    && tensor.contains("blk.3.ffn_up.weight")
            );
            assert_eq!(dtype, "ggml type 16");
        }
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
    // Q2_K has a known layout but no decoder.
    let h = one_tensor_file("x", &[256], 10, 0, 96);
    let (_dir, path) = h.write();
    let file = GgufFile::open(&path).unwrap();
    assert!(
        matches!(file.dequantize("x"), Err(EncoderError::UnsupportedDtype { dtype, .. }) if dtype == "Q2_K")
    );
}

#[test]
fn missing_tensor_is_a_typed_error() {
    let source = GgufSource::open(&fixture()).unwrap();
    match source.load_f32("model.layers.7.self_attn.q_proj.weight") {
        Err(EncoderError::MissingTensor { file, tensor }) => {
            assert_eq!(file, fixture());
            assert_eq!(tensor, "model.layers.7.self_attn.q_proj.weight");
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn config_errors_name_the_key() {
    // A GGUF without qwen2 metadata.
    let h = Header::new(3, 0, 1)
        .string("general.architecture")
        .u32(8)
        .string("qwen2");
    let (_dir, path) = h.write();
    let file = GgufFile::open(&path).unwrap();
    match config_from_gguf(&file) {
        Err(EncoderError::Config { file, detail }) => {
            assert_eq!(file, path);
            assert!(detail.contains("qwen2.embedding_length"), "{detail}");
        }
        other => panic!("expected Config error, got {other:?}"),
    }
    let h = Header::new(3, 0, 1)
        .string("general.architecture")
        .u32(8)
        .string("llama");
    let (_dir, path) = h.write();
    let file = GgufFile::open(&path).unwrap();
    assert!(matches!(
        config_from_gguf(&file),
        Err(EncoderError::UnsupportedFormat { .. })
    ));
}

#[test]
fn pickle_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pytorch_model.bin", "model.pt", "weights.pth", "x.ckpt"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"\x80\x02}q\x00.").unwrap();
        match open_weights(&path) {
            Err(EncoderError::UnsupportedFormat { file, detail }) => {
                assert_eq!(file, path);
                assert!(detail.contains("pickle"), "{detail}");
            }
            other => panic!("{name}: expected UnsupportedFormat, got {other:?}"),
        }
    }
    // An HF folder holding only a pickle checkpoint.
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    match open_weights(dir.path()) {
        Err(EncoderError::UnsupportedFormat { file, detail }) => {
            assert_eq!(file, dir.path().join("pytorch_model.bin"));
            assert!(detail.contains("pickle"), "{detail}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}
