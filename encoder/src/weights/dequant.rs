//! Dequantisation of ggml tensor data (the block formats inside GGUF files) to f32.
//!
//! Each function mirrors the reference kernels of llama.cpp (`ggml-quants.c`,
//! `dequantize_row_*`) and of the `gguf` Python package (`gguf/quants.py`); the tests in
//! `tests/weights_gguf.rs` compare them value-for-value against the Python package on random
//! blocks and on real tensors. The arithmetic is kept in the same order as the reference
//! (`(d * scale) * q - (dmin * m)`), so results are bit-identical, not merely close.

use half::{bf16, f16};

/// The ggml element/block types quarry knows about (ids from `ggml.h`, `enum ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    BF16,
    /// Any other id (IQ* quants, ternary types, ...): the file parses, loading such a tensor is an error.
    Other(u32),
}

impl GgmlType {
    pub fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            9 => GgmlType::Q8_1,
            10 => GgmlType::Q2K,
            11 => GgmlType::Q3K,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            15 => GgmlType::Q8K,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// (elements per block, bytes per block), or None for types whose layout quarry does not know.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q8_1 => (32, 36),
            GgmlType::Q2K => (256, 84),
            GgmlType::Q3K => (256, 110),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q5K => (256, 176),
            GgmlType::Q6K => (256, 210),
            GgmlType::Q8K => (256, 292),
            GgmlType::Other(_) => return None,
        })
    }

    /// Whether [`dequantize`] can convert this type.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q8_0
                | GgmlType::Q4K
                | GgmlType::Q5K
                | GgmlType::Q6K
        )
    }

    pub fn name(self) -> String {
        match self {
            GgmlType::F32 => "F32".into(),
            GgmlType::F16 => "F16".into(),
            GgmlType::Q4_0 => "Q4_0".into(),
            GgmlType::Q4_1 => "Q4_1".into(),
            GgmlType::Q5_0 => "Q5_0".into(),
            GgmlType::Q5_1 => "Q5_1".into(),
            GgmlType::Q8_0 => "Q8_0".into(),
            GgmlType::Q8_1 => "Q8_1".into(),
            GgmlType::Q2K => "Q2_K".into(),
            GgmlType::Q3K => "Q3_K".into(),
            GgmlType::Q4K => "Q4_K".into(),
            GgmlType::Q5K => "Q5_K".into(),
            GgmlType::Q6K => "Q6_K".into(),
            GgmlType::Q8K => "Q8_K".into(),
            GgmlType::BF16 => "BF16".into(),
            GgmlType::Other(id) => format!("ggml type {id}"),
        }
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Blocks per parallel work item (a few hundred KB of output each).
const BLOCKS_PER_TASK: usize = 4096;

/// Converts `data` (whole blocks of `ty`) to f32, appending to `out`. Large tensors are
/// converted in parallel (rayon), in independent runs of whole blocks.
///
/// Returns `Err(type name)` when the type has no decoder. The caller guarantees that
/// `data.len()` is a whole number of blocks (checked when the GGUF header is read).
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
    use rayon::prelude::*;
    if !ty.can_dequantize() {
        return Err(ty.name());
    }
    let (block_elems, block_bytes) = ty.block_layout().ok_or_else(|| ty.name())?;
    debug_assert_eq!(data.len() % block_bytes, 0);
    let start = out.len();
    out.resize(start + data.len() / block_bytes * block_elems, 0.0);
    let chunk_bytes = BLOCKS_PER_TASK * block_bytes;
    out[start..]
        .par_chunks_mut(BLOCKS_PER_TASK * block_elems)
        .zip(data.par_chunks(chunk_bytes))
        .for_each(|(values, bytes)| dequantize_run(ty, bytes, block_bytes, values));
    Ok(())
}

/// Dequantises consecutive blocks into `values` (exactly their element count).
fn dequantize_run(ty: GgmlType, data: &[u8], block_bytes: usize, values: &mut [f32]) {
    let mut out = Vec::with_capacity(values.len());
    let blocks = data.chunks_exact(block_bytes);
    match ty {
        GgmlType::F32 => out.extend(blocks.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F16 => out.extend(blocks.map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlType::BF16 => out.extend(blocks.map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlType::Q4_0 => blocks.for_each(|b| dequantize_q4_0(b, &mut out)),
        GgmlType::Q4_1 => blocks.for_each(|b| dequantize_q4_1(b, &mut out)),
        GgmlType::Q5_0 => blocks.for_each(|b| dequantize_q5_0(b, &mut out)),
        GgmlType::Q5_1 => blocks.for_each(|b| dequantize_q5_1(b, &mut out)),
        GgmlType::Q8_0 => blocks.for_each(|b| dequantize_q8_0(b, &mut out)),
        GgmlType::Q4K => blocks.for_each(|b| dequantize_q4_k(b, &mut out)),
        GgmlType::Q5K => blocks.for_each(|b| dequantize_q5_k(b, &mut out)),
        GgmlType::Q6K => blocks.for_each(|b| dequantize_q6_k(b, &mut out)),
        _ => unreachable!("dequantize checked can_dequantize"),
    }
    values.copy_from_slice(&out);
}

/// block_q4_0 { f16 d; u8 qs[16] }: x = (nibble - 8) * d; low nibbles first, then high.
fn dequantize_q4_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
    out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
}

/// block_q4_1 { f16 d; f16 m; u8 qs[16] }: x = nibble * d + m.
fn dequantize_q4_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qs = &b[4..20];
    out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
    out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
}

/// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: 5-bit values (fifth bit from qh) minus 16, times d.
fn dequantize_q5_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    out.extend((0..16).map(|j| {
        let high = ((qh >> j) << 4) & 0x10;
        (((qs[j] & 0x0F) as u32 | high) as i32 - 16) as f32 * d
    }));
    out.extend((0..16).map(|j| {
        let high = (qh >> (j + 12)) & 0x10;
        (((qs[j] >> 4) as u32 | high) as i32 - 16) as f32 * d
    }));
}

/// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: 5-bit value * d + m.
fn dequantize_q5_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    out.extend((0..16).map(|j| {
        let high = ((qh >> j) << 4) & 0x10;
        ((qs[j] & 0x0F) as u32 | high) as f32 * d + m
    }));
    out.extend((0..16).map(|j| {
        let high = (qh >> (j + 12)) & 0x10;
        ((qs[j] >> 4) as u32 | high) as f32 * d + m
    }));
}

/// block_q8_0 { f16 d; i8 qs[32] }: x = q * d.
fn dequantize_q8_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
}

/// The 6-bit (scale, min) pair `j` (0..8) packed in the 12 `scales` bytes of Q4_K/Q5_K
/// (`get_scale_min_k4` in llama.cpp).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `(d * scale, dmin * min)` of sub-blocks `2 * chunk` and `2 * chunk + 1` of a Q4_K/Q5_K
/// block: each 64-value chunk takes its two halves' scales and minimums.
fn sub_block_scales(d: f32, dmin: f32, scales: &[u8], chunk: usize) -> [(f32, f32); 2] {
    [2 * chunk, 2 * chunk + 1].map(|sub_block| {
        let (scale, min) = scale_min_k4(sub_block, scales);
        (d * scale as f32, dmin * min as f32)
    })
}

/// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }: 8 sub-blocks of 32,
/// x = (d * scale) * nibble - (dmin * min).
fn dequantize_q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        let [(d1, min1), (d2, min2)] = sub_block_scales(d, dmin, scales, chunk);
        out.extend(q.iter().map(|&v| d1 * (v & 0x0F) as f32 - min1));
        out.extend(q.iter().map(|&v| d2 * (v >> 4) as f32 - min2));
    }
}

/// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: as Q4_K with a fifth bit.
fn dequantize_q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for chunk in 0..4 {
        let ql = &qs[chunk * 32..chunk * 32 + 32];
        let [(d1, min1), (d2, min2)] = sub_block_scales(d, dmin, scales, chunk);
        let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
        out.extend((0..32).map(|l| {
            let high = if qh[l] & u1 != 0 { 16 } else { 0 };
            d1 * ((ql[l] & 0x0F) + high) as f32 - min1
        }));
        out.extend((0..32).map(|l| {
            let high = if qh[l] & u2 != 0 { 16 } else { 0 };
            d2 * ((ql[l] >> 4) + high) as f32 - min2
        }));
    }
}

/// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: 16 sub-blocks of 16,
/// x = (d * scale) * (6-bit value - 32).
fn dequantize_q6_k(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 208);
    let start = out.len();
    out.resize(start + 256, 0.0);
    let y = &mut out[start..];
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let y = &mut y[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}
