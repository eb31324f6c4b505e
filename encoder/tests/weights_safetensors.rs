//! Safetensors folders: single file and sharded checkpoints, F32/F16/BF16 conversion, and
//! bad input (corrupt header, missing tensor/shard, unsupported dtype) as typed errors.
//! Files are written here with HF's `safetensors` crate (the format's reference writer).

use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use quarry_encoder::weights::{open_weights, SafetensorsSource, Weights};
use quarry_encoder::{EncoderError, TensorSource};
use safetensors::tensor::{serialize, Dtype, TensorView};

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + seed) * 0.37).sin() * 3.0)
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a safetensors file of (name, dtype, shape, bytes).
fn write_file(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                name.to_string(),
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, serialize(views, None).unwrap()).unwrap();
}

#[test]
fn single_file_folder_converts_f32_f16_bf16() {
    let dir = tempfile::tempdir().unwrap();
    let a = values(6, 0.0);
    let b = values(8, 1.0);
    let c = values(4, 2.0);
    let b16: Vec<u8> = b
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
        .collect();
    let c16: Vec<u8> = c
        .iter()
        .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
        .collect();
    write_file(
        &dir.path().join("model.safetensors"),
        &[
            ("a", Dtype::F32, vec![2, 3], f32_bytes(&a)),
            ("b", Dtype::F16, vec![8], b16),
            ("c", Dtype::BF16, vec![2, 2], c16),
        ],
    );
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let source = SafetensorsSource::open(dir.path()).unwrap();
    assert_eq!(source.tensor_names(), ["a", "b", "c"]);
    assert_eq!(source.shape("a"), Some(vec![2, 3]));
    assert_eq!(source.shape("zzz"), None);
    assert_eq!(source.dtype("c").as_deref(), Some("BF16"));
    let ta = source.load_f32("a").unwrap();
    assert_eq!((ta.shape.clone(), ta.data.clone()), (vec![2, 3], a));
    let tb = source.load_f32("b").unwrap();
    assert_eq!(
        tb.data,
        b.iter()
            .map(|&x| f16::from_f32(x).to_f32())
            .collect::<Vec<_>>()
    );
    let tc = source.load_f32("c").unwrap();
    assert_eq!(tc.shape, vec![2, 2]);
    assert_eq!(
        tc.data,
        c.iter()
            .map(|&x| bf16::from_f32(x).to_f32())
            .collect::<Vec<_>>()
    );
    assert_eq!(source.origin(), dir.path());
    assert!(matches!(
        open_weights(dir.path()).unwrap(),
        Weights::Safetensors(_)
    ));
}

fn write_sharded(dir: &Path) -> (Vec<f32>, Vec<f32>) {
    let x = values(10, 3.0);
    let y = values(12, 4.0);
    write_file(
        &dir.join("model-00001-of-00002.safetensors"),
        &[("model.layers.0.w", Dtype::F32, vec![2, 5], f32_bytes(&x))],
    );
    write_file(
        &dir.join("model-00002-of-00002.safetensors"),
        &[("model.layers.1.w", Dtype::F32, vec![3, 4], f32_bytes(&y))],
    );
    let index = serde_json::json!({
        "metadata": {"total_size": 88},
        "weight_map": {
            "model.layers.0.w": "model-00001-of-00002.safetensors",
            "model.layers.1.w": "model-00002-of-00002.safetensors"
        }
    });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    (x, y)
}

#[test]
fn sharded_checkpoint_reads_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = write_sharded(dir.path());
    let source = SafetensorsSource::open(dir.path()).unwrap();
    assert_eq!(source.files().len(), 2);
    assert_eq!(
        source.tensor_names(),
        ["model.layers.0.w", "model.layers.1.w"]
    );
    assert_eq!(source.load_f32("model.layers.0.w").unwrap().data, x);
    let t = source.load_f32("model.layers.1.w").unwrap();
    assert_eq!((t.shape, t.data), (vec![3, 4], y));
}

#[test]
fn index_naming_a_missing_shard_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_sharded(dir.path());
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    match SafetensorsSource::open(dir.path()) {
        Err(EncoderError::Io { path, .. }) => {
            assert!(path.ends_with("model-00002-of-00002.safetensors"))
        }
        other => panic!("expected Io error, got {other:?}"),
    }
}

#[test]
fn index_disagreeing_with_shards_or_escaping_the_folder_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    write_sharded(dir.path());
    let mut map = BTreeMap::new();
    map.insert("model.layers.0.w", "model-00002-of-00002.safetensors");
    map.insert("model.layers.1.w", "model-00002-of-00002.safetensors");
    let index = serde_json::json!({ "weight_map": map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    match SafetensorsSource::open(dir.path()) {
        Err(EncoderError::DataCorruption { detail, .. }) => {
            assert!(detail.contains("model.layers.0.w"), "{detail}")
        }
        other => panic!("expected DataCorruption, got {other:?}"),
    }
    let index = serde_json::json!({ "weight_map": {"w": "../elsewhere.safetensors"} });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert!(matches!(
        SafetensorsSource::open(dir.path()),
        Err(EncoderError::DataCorruption { .. })
    ));
    std::fs::write(dir.path().join("model.safetensors.index.json"), "{not json").unwrap();
    assert!(matches!(
        SafetensorsSource::open(dir.path()),
        Err(EncoderError::DataCorruption { .. })
    ));
}

#[test]
fn corrupt_headers_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("header length 2^40", {
            let mut b = (1u64 << 40).to_le_bytes().to_vec();
            b.extend(b"{}");
            b
        }),
        ("header past the end", {
            let mut b = 100u64.to_le_bytes().to_vec();
            b.extend(b"{}");
            b
        }),
        ("not json", {
            let mut b = 4u64.to_le_bytes().to_vec();
            b.extend(b"{{{{");
            b
        }),
        ("offsets beyond data", {
            let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
            let mut b = (header.len() as u64).to_le_bytes().to_vec();
            b.extend(header);
            b.extend([0u8; 8]);
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        match SafetensorsSource::open(dir.path()) {
            Err(EncoderError::DataCorruption { file, .. }) => assert_eq!(file, path, "{what}"),
            other => panic!("{what}: expected DataCorruption, got {other:?}"),
        }
    }
}

#[test]
fn missing_tensor_and_unsupported_dtype_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    write_file(
        &dir.path().join("model.safetensors"),
        &[("position_ids", Dtype::I64, vec![3], ids)],
    );
    let source = SafetensorsSource::open(dir.path()).unwrap();
    match source.load_f32("position_ids") {
        Err(EncoderError::UnsupportedDtype {
            file,
            tensor,
            dtype,
        }) => {
            assert!(file.ends_with("model.safetensors"));
            assert_eq!((tensor.as_str(), dtype.as_str()), ("position_ids", "I64"));
        }
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
    match source.load_f32("model.embed_tokens.weight") {
        Err(EncoderError::MissingTensor { file, tensor }) => {
            assert_eq!(file, dir.path());
            assert_eq!(tensor, "model.embed_tokens.weight");
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn folder_without_weights_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    assert!(matches!(
        open_weights(dir.path()),
        Err(EncoderError::UnsupportedFormat { .. })
    ));
}
