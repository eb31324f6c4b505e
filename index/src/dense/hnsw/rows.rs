//! The index's rows as the graph sees them: read in place from the shard
//! maps (f32 rows without a copy, f16/bf16 rows decoded into a per-thread
//! buffer), and the distance `−⟨a, b⟩`.

use std::cell::RefCell;

use crate::dense::format::ElementType;
use crate::dense::kernels::{decode_row, dot_f32};
use crate::dense::reader::DenseIndex;

/// The index's rows, read in place from the shard maps.
pub(super) struct Rows<'a> {
    shards: Vec<&'a [u8]>,
    pub(super) shard_rows: usize,
    stride: usize,
    dim: usize,
    element_type: ElementType,
    pub(super) n: usize,
}

thread_local! {
    /// Decoding buffers for f16/bf16 rows (f32 rows are used in place).
    static DECODED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl<'a> Rows<'a> {
    pub(super) fn new(index: &'a DenseIndex) -> Rows<'a> {
        let shard_rows = index.manifest().shard_rows as usize;
        let stride = index.element_type().row_stride(index.dim());
        let shards: Vec<&[u8]> = index.shards().map(|(_, s)| s.row_bytes()).collect();
        debug_assert!(shards
            .iter()
            .all(|s| (s.as_ptr() as usize).is_multiple_of(4)));
        Rows {
            shards,
            shard_rows,
            stride,
            dim: index.dim(),
            element_type: index.element_type(),
            n: index.rows() as usize,
        }
    }

    #[inline]
    fn bytes(&self, id: u32) -> &'a [u8] {
        let id = id as usize;
        let (s, r) = (id / self.shard_rows, id % self.shard_rows);
        &self.shards[s][r * self.stride..r * self.stride + self.stride]
    }

    #[inline]
    fn f32_row(&self, id: u32) -> &'a [f32] {
        let b = self.bytes(id);
        // SAFETY: f32 shards: rows start 64-byte aligned (FORMAT.md) inside a
        // page-aligned map and hold `dim` f32 values; the map lives for 'a.
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), self.dim) }
    }

    #[inline]
    pub(super) fn prefetch(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.bytes(id).as_ptr();
            // SAFETY: prefetch is a hint; the addresses are inside the map.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(p.cast(), _MM_HINT_T0);
                _mm_prefetch(p.add(64).cast(), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// Distance from a query (f32) to a stored row.
    #[inline]
    pub(super) fn dist_to(&self, q: &[f32], id: u32) -> f32 {
        if self.element_type == ElementType::F32 {
            return -dot_f32(q, self.f32_row(id));
        }
        DECODED.with(|d| {
            let buf = &mut d.borrow_mut().0;
            buf.resize(self.dim, 0.0);
            decode_row(self.element_type, self.bytes(id), self.dim, buf);
            -dot_f32(q, buf)
        })
    }

    /// Distance between two stored rows.
    pub(super) fn dist_between(&self, a: u32, b: u32) -> f32 {
        if self.element_type == ElementType::F32 {
            return -dot_f32(self.f32_row(a), self.f32_row(b));
        }
        DECODED.with(|d| {
            let (buf_a, buf_b) = &mut *d.borrow_mut();
            buf_a.resize(self.dim, 0.0);
            buf_b.resize(self.dim, 0.0);
            decode_row(self.element_type, self.bytes(a), self.dim, buf_a);
            decode_row(self.element_type, self.bytes(b), self.dim, buf_b);
            -dot_f32(buf_a, buf_b)
        })
    }

    /// Row `id` as f32 (owned for non-f32 storage).
    pub(super) fn vector(&self, id: u32) -> std::borrow::Cow<'a, [f32]> {
        if self.element_type == ElementType::F32 {
            return std::borrow::Cow::Borrowed(self.f32_row(id));
        }
        let mut v = vec![0f32; self.dim];
        decode_row(self.element_type, self.bytes(id), self.dim, &mut v);
        std::borrow::Cow::Owned(v)
    }
}
