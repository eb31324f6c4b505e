//! Reading `.npy` files of little-endian f32 (`<f4`), C order, 1-D or 2-D:
//! query files for `quarry index search` and bench inputs. Only the header is
//! parsed here; the data is memory-mapped.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::fsutil::io_err;
use crate::IndexError;

/// A memory-mapped 2-D f32 `.npy` array (a 1-D array is one row).
pub struct NpyF32 {
    path: PathBuf,
    mmap: Mmap,
    offset: usize,
    pub rows: usize,
    pub cols: usize,
}

impl NpyF32 {
    pub fn open(path: &Path) -> Result<NpyF32, IndexError> {
        let bad = |detail: String| IndexError::InvalidInput {
            file: path.to_path_buf(),
            detail,
        };
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: input files are read-only for the duration of the run.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        if mmap.len() < 10 || &mmap[..6] != b"\x93NUMPY" {
            return Err(bad("not a .npy file (magic \\x93NUMPY missing)".into()));
        }
        let (header_len, start) = match mmap[6] {
            1 => (u16::from_le_bytes([mmap[8], mmap[9]]) as usize, 10),
            2 | 3 if mmap.len() >= 12 => (
                u32::from_le_bytes(mmap[8..12].try_into().unwrap()) as usize,
                12,
            ),
            v => return Err(bad(format!("unsupported .npy version {v}"))),
        };
        let header = std::str::from_utf8(
            mmap.get(start..start + header_len)
                .ok_or_else(|| bad("truncated .npy header".into()))?,
        )
        .map_err(|_| bad("non-UTF-8 .npy header".into()))?;
        let field = |key: &str| -> Option<&str> {
            let at = header.find(&format!("'{key}'"))? + key.len() + 2;
            Some(
                header[at..]
                    .trim_start()
                    .trim_start_matches(':')
                    .trim_start(),
            )
        };
        let descr = field("descr").ok_or_else(|| bad("no descr in header".into()))?;
        if !descr.starts_with("'<f4'") {
            return Err(bad(format!(
                "element type {} is not little-endian f32 ('<f4')",
                descr.split(',').next().unwrap_or(descr)
            )));
        }
        if !field("fortran_order").is_some_and(|f| f.starts_with("False")) {
            return Err(bad("Fortran-order arrays are not supported".into()));
        }
        let shape = field("shape").ok_or_else(|| bad("no shape in header".into()))?;
        let inner = &shape[shape.find('(').map(|i| i + 1).unwrap_or(0)
            ..shape.find(')').ok_or_else(|| bad("bad shape".into()))?];
        let dims: Vec<usize> = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad(format!("bad shape entry `{s}`"))))
            .collect::<Result<_, _>>()?;
        let (rows, cols) = match dims.as_slice() {
            [c] => (1, *c),
            [r, c] => (*r, *c),
            _ => {
                return Err(bad(format!(
                    "expected a 1-D or 2-D array, shape is {dims:?}"
                )))
            }
        };
        let offset = start + header_len;
        if mmap.len() < offset + rows * cols * 4 {
            return Err(bad(format!(
                "truncated: {} data bytes for shape ({rows}, {cols})",
                mmap.len() - offset
            )));
        }
        Ok(NpyF32 {
            path: path.to_path_buf(),
            mmap,
            offset,
            rows,
            cols,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Row `i` decoded into `out` (the data may be unaligned, so it is copied).
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let b = &self.mmap[self.offset + i * self.cols * 4..self.offset + (i + 1) * self.cols * 4];
        for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
            *o = f32::from_le_bytes(c.try_into().unwrap());
        }
    }

    /// Rows `lo..hi`, row-major.
    pub fn rows_vec(&self, lo: usize, hi: usize) -> Vec<f32> {
        let mut v = vec![0f32; (hi - lo) * self.cols];
        for (j, out) in v.chunks_mut(self.cols).enumerate() {
            self.row_into(lo + j, out);
        }
        v
    }
}
