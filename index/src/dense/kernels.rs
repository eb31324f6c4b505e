//! Inner-product kernels over stored rows. Rows stay in their storage type
//! (f32, f16, bf16) and are widened to f32 in registers, so f16/bf16 storage
//! halves the memory traffic of a scan. A block of rows is scored against a
//! block of queries at once (register tile of up to 3 rows × 4 queries), so a
//! batch of queries runs as a blocked matrix product.
//!
//! x86-64 with AVX2 + FMA + F16C is detected at run time; everything else
//! takes the portable scalar path (same results up to summation order).

use half::{bf16, f16};

use super::format::ElementType;

/// Which implementation the CPU supports, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
            {
                return Isa::Avx2Fma;
            }
        }
        Isa::Scalar
    }
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma+f16c",
        }
    }
}

/// Scores `nrows` rows (at `stride` bytes apart in `rows`) against `nq`
/// queries (`queries[qi*dim..]`): `out[qi * nrows + r] = <query qi, row r>`.
#[allow(clippy::too_many_arguments)]
pub fn score_block(
    isa: Isa,
    element_type: ElementType,
    queries: &[f32],
    nq: usize,
    dim: usize,
    rows: &[u8],
    stride: usize,
    nrows: usize,
    out: &mut [f32],
) {
    assert!(queries.len() >= nq * dim && out.len() >= nq * nrows);
    assert!(nrows == 0 || rows.len() >= (nrows - 1) * stride + dim * element_type.size());
    match isa {
        Isa::Scalar => match element_type {
            ElementType::F32 => scalar::<F32>(queries, nq, dim, rows, stride, nrows, out),
            ElementType::F16 => scalar::<F16>(queries, nq, dim, rows, stride, nrows, out),
            ElementType::Bf16 => scalar::<Bf16>(queries, nq, dim, rows, stride, nrows, out),
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features were detected at run time; bounds asserted above.
        Isa::Avx2Fma => unsafe {
            match element_type {
                ElementType::F32 => avx2::block::<F32>(queries, nq, dim, rows, stride, nrows, out),
                ElementType::F16 => avx2::block::<F16>(queries, nq, dim, rows, stride, nrows, out),
                ElementType::Bf16 => {
                    avx2::block::<Bf16>(queries, nq, dim, rows, stride, nrows, out)
                }
            }
        },
    }
}

/// Decodes one stored row to f32 (for HNSW building and `--row` queries).
pub fn decode_row(element_type: ElementType, row: &[u8], dim: usize, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate().take(dim) {
        *o = match element_type {
            ElementType::F32 => F32::get(row, i),
            ElementType::F16 => F16::get(row, i),
            ElementType::Bf16 => Bf16::get(row, i),
        };
    }
}

/// Encodes f32 values into storage bytes (round-to-nearest-even for f16/bf16).
pub fn encode_row(element_type: ElementType, values: &[f32], out: &mut [u8]) {
    match element_type {
        ElementType::F32 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(4)) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        ElementType::F16 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        ElementType::Bf16 => {
            for (v, o) in values.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&bf16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
    }
}

/// One storage element type, readable as f32.
trait Elem {
    const SIZE: usize;
    fn get(row: &[u8], i: usize) -> f32;
}
struct F32;
struct F16;
struct Bf16;
impl Elem for F32 {
    const SIZE: usize = 4;
    #[inline(always)]
    fn get(row: &[u8], i: usize) -> f32 {
        f32::from_le_bytes(row[4 * i..4 * i + 4].try_into().unwrap())
    }
}
impl Elem for F16 {
    const SIZE: usize = 2;
    #[inline(always)]
    fn get(row: &[u8], i: usize) -> f32 {
        f16::from_bits(u16::from_le_bytes([row[2 * i], row[2 * i + 1]])).to_f32()
    }
}
impl Elem for Bf16 {
    const SIZE: usize = 2;
    #[inline(always)]
    fn get(row: &[u8], i: usize) -> f32 {
        bf16::from_bits(u16::from_le_bytes([row[2 * i], row[2 * i + 1]])).to_f32()
    }
}

fn scalar<E: Elem>(
    queries: &[f32],
    nq: usize,
    dim: usize,
    rows: &[u8],
    stride: usize,
    nrows: usize,
    out: &mut [f32],
) {
    for r in 0..nrows {
        let row = &rows[r * stride..];
        for qi in 0..nq {
            let q = &queries[qi * dim..(qi + 1) * dim];
            // 8 partial sums, like the SIMD path, to keep rounding comparable.
            let mut acc = [0f32; 8];
            for (i, qv) in q.iter().enumerate() {
                acc[i % 8] += qv * E::get(row, i);
            }
            out[qi * nrows + r] = acc.iter().sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
// Register tiles index accumulators by (row, query) explicitly: iterator
// adaptors here obscure the unrolled R×Q structure LLVM keeps in registers.
#[allow(clippy::needless_range_loop)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Bf16, Elem, F16, F32};

    pub(super) trait SimdElem: Elem {
        /// Loads 8 consecutive elements starting at element `i` of `row`, widened to f32.
        unsafe fn load8(row: *const u8, i: usize) -> __m256;
    }
    impl SimdElem for F32 {
        #[inline(always)]
        unsafe fn load8(row: *const u8, i: usize) -> __m256 {
            _mm256_loadu_ps(row.add(4 * i) as *const f32)
        }
    }
    impl SimdElem for F16 {
        #[inline(always)]
        unsafe fn load8(row: *const u8, i: usize) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(row.add(2 * i) as *const __m128i))
        }
    }
    impl SimdElem for Bf16 {
        #[inline(always)]
        unsafe fn load8(row: *const u8, i: usize) -> __m256 {
            // bf16 is the high half of an f32: zero-extend to 32 bits, shift left 16.
            let h = _mm_loadu_si128(row.add(2 * i) as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Register tile: R rows × Q queries, full dimension.
    #[inline(always)]
    unsafe fn tile<E: SimdElem, const R: usize, const Q: usize>(
        q: *const f32,
        dim: usize,
        row: *const u8,
        stride: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); Q]; R];
        let full = dim / 8 * 8;
        let mut i = 0;
        while i < full {
            let mut r = [_mm256_setzero_ps(); R];
            for (ri, rv) in r.iter_mut().enumerate() {
                *rv = E::load8(row.add(ri * stride), i);
            }
            for qi in 0..Q {
                let qv = _mm256_loadu_ps(q.add(qi * dim + i));
                for ri in 0..R {
                    acc[ri][qi] = _mm256_fmadd_ps(r[ri], qv, acc[ri][qi]);
                }
            }
            i += 8;
        }
        for ri in 0..R {
            let row_bytes = std::slice::from_raw_parts(row.add(ri * stride), dim * E::SIZE);
            for qi in 0..Q {
                let mut s = hsum(acc[ri][qi]);
                for j in full..dim {
                    s += *q.add(qi * dim + j) * E::get(row_bytes, j);
                }
                *out.add(qi * out_stride + ri) = s;
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn block<E: SimdElem>(
        queries: &[f32],
        nq: usize,
        dim: usize,
        rows: &[u8],
        stride: usize,
        nrows: usize,
        out: &mut [f32],
    ) {
        let q = queries.as_ptr();
        let base = rows.as_ptr();
        let o = out.as_mut_ptr();
        let mut qi = 0;
        while qi < nq {
            let qn = (nq - qi).min(4);
            let qp = q.add(qi * dim);
            let mut r = 0;
            while r < nrows {
                let rn = (nrows - r).min(3);
                let rp = base.add(r * stride);
                let op = o.add(qi * nrows + r);
                macro_rules! go {
                    ($R:literal, $Q:literal) => {
                        tile::<E, $R, $Q>(qp, dim, rp, stride, op, nrows)
                    };
                }
                match (rn, qn) {
                    (3, 4) => go!(3, 4),
                    (3, 3) => go!(3, 3),
                    (3, 2) => go!(3, 2),
                    (3, 1) => go!(3, 1),
                    (2, 4) => go!(2, 4),
                    (2, 3) => go!(2, 3),
                    (2, 2) => go!(2, 2),
                    (2, 1) => go!(2, 1),
                    (1, 4) => go!(1, 4),
                    (1, 3) => go!(1, 3),
                    (1, 2) => go!(1, 2),
                    _ => go!(1, 1),
                }
                r += rn;
            }
            qi += qn;
        }
    }
}

/// Inner product of two f32 slices (SIMD where available).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: features detected; both slices have at least n elements.
            return unsafe { avx2_dot::dot(a.as_ptr(), b.as_ptr(), n) };
        }
    }
    let mut acc = [0f32; 8];
    for i in 0..n {
        acc[i % 8] += a[i] * b[i];
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2_dot {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, ac) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(a.add(i + 8 * j));
                let y = _mm256_loadu_ps(b.add(i + 8 * j));
                *ac = _mm256_fmadd_ps(x, y, *ac);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc[0]);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        let mut total = _mm_cvtss_f32(h);
        while i < n {
            total += *a.add(i) * *b.add(i);
            i += 1;
        }
        total
    }
}
