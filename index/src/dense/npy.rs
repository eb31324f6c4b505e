//! `.npy` files of vectors: reading little-endian f32 or f16 (`<f4`, `<f2`),
//! C order, 1-D or 2-D (query files for `quarry index search`, vectors for
//! `quarry index import`), and writing f32 ones (`quarry index export`). The
//! header is parsed here; the data is memory-mapped.
//!
//! The header (NumPy's `format.py`, versions 1.0, 2.0 and 3.0) is a Python
//! dict literal with exactly the keys `descr`, `fortran_order` and `shape`.
//! It is parsed by a small strict parser of the literals NumPy writes
//! (strings, `True`/`False`, tuples of integers) rather than by the `npyz`
//! crate: npyz parses headers through `py_literal`, which pulls in the `pest`
//! parser generator and arbitrary-precision integers, far more than three
//! keys need, and would add crates to the workspace's lock file. Every size
//! is computed with checked arithmetic: a hostile shape is an error naming
//! the file, never a panic or a huge allocation.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::io_err;
use crate::IndexError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element types read: the two float widths embeddings are saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyElement {
    F32,
    F16,
}

impl NpyElement {
    fn from_descr(descr: &str) -> Option<NpyElement> {
        match descr {
            "<f4" => Some(NpyElement::F32),
            "<f2" => Some(NpyElement::F16),
            _ => None,
        }
    }

    fn bytes(self) -> usize {
        match self {
            NpyElement::F32 => 4,
            NpyElement::F16 => 2,
        }
    }
}

/// A memory-mapped 2-D `.npy` array of f32 or f16 vectors (a 1-D array is one row),
/// read as f32.
pub struct NpyVectors {
    path: PathBuf,
    mmap: Mmap,
    offset: usize,
    pub element: NpyElement,
    pub rows: usize,
    pub cols: usize,
}

impl NpyVectors {
    pub fn open(path: &Path) -> Result<NpyVectors, IndexError> {
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: input files are read-only for the duration of the run.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let layout = Layout::read(&mmap).map_err(|detail| IndexError::InvalidInput {
            file: path.to_path_buf(),
            detail,
        })?;
        Ok(NpyVectors {
            path: path.to_path_buf(),
            mmap,
            offset: layout.offset,
            element: layout.element,
            rows: layout.rows,
            cols: layout.cols,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Row `i` (< `rows`) decoded into `out` (the data may be unaligned, so it is copied).
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let width = self.element.bytes();
        let row_bytes = self.cols * width;
        let start = self.offset + i * row_bytes;
        let b = &self.mmap[start..start + row_bytes];
        match self.element {
            NpyElement::F32 => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            NpyElement::F16 => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
        }
    }

    /// Rows `lo..hi` (within `0..rows`), row-major.
    pub fn rows_vec(&self, lo: usize, hi: usize) -> Vec<f32> {
        let mut v = vec![0f32; (hi - lo) * self.cols];
        for (j, out) in v.chunks_mut(self.cols).enumerate() {
            self.row_into(lo + j, out);
        }
        v
    }
}

/// The preamble and header of a version 1.0 `.npy` file of `rows` x `cols` little-endian
/// f32 in C order, padded with spaces so the data starts at a multiple of 64 bytes, as
/// NumPy writes it; the `rows * cols * 4` data bytes follow it.
pub fn f32_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + header length (2), then the dict, spaces and a newline.
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + padding, b' ');
    out.push(b'\n');
    out
}

/// Where the data of a checked `.npy` file lies and what shape it has.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    offset: usize,
    element: NpyElement,
    rows: usize,
    cols: usize,
}

impl Layout {
    /// Checks the whole file: preamble, header, and that the data is all there.
    fn read(file: &[u8]) -> Result<Layout, String> {
        if file.len() < 10 || &file[..6] != MAGIC {
            return Err("not a .npy file (magic \\x93NUMPY missing)".into());
        }
        // Version 1.0: 2-byte header length; 2.0 and 3.0 (UTF-8 header): 4 bytes.
        let (len_bytes, start) = match file[6] {
            1 => (&file[8..10], 10usize),
            2 | 3 => (file.get(8..12).ok_or("truncated .npy preamble")?, 12),
            v => return Err(format!("unsupported .npy version {v}")),
        };
        let header_len = len_bytes
            .iter()
            .rev()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        let offset = start
            .checked_add(header_len)
            .ok_or("truncated .npy header")?;
        let header = file
            .get(start..offset)
            .ok_or_else(|| format!("truncated .npy header ({header_len} bytes announced)"))?;
        let header =
            std::str::from_utf8(header).map_err(|_| "non-UTF-8 .npy header".to_string())?;
        let header = Header::parse(header)?;
        let Some(element) = NpyElement::from_descr(&header.descr) else {
            return Err(format!(
                "element type '{}' is not little-endian f32 or f16 ('<f4', '<f2')",
                header.descr
            ));
        };
        if header.fortran_order {
            return Err("Fortran-order arrays are not supported".into());
        }
        let (rows, cols) = match header.shape.as_slice() {
            [c] => (1, *c),
            [r, c] => (*r, *c),
            dims => return Err(format!("expected a 1-D or 2-D array, shape is {dims:?}")),
        };
        let too_large = || format!("shape ({rows}, {cols}) is too large for this machine");
        let rows = usize::try_from(rows).map_err(|_| too_large())?;
        let cols = usize::try_from(cols).map_err(|_| too_large())?;
        if cols == 0 {
            return Err(format!("shape ({rows}, 0): rows without components"));
        }
        let data_len = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(element.bytes()))
            .ok_or_else(too_large)?;
        let present = file.len() - offset;
        if present < data_len {
            return Err(format!(
                "truncated: {present} data bytes for shape ({rows}, {cols}), which needs {data_len}"
            ));
        }
        Ok(Layout {
            offset,
            element,
            rows,
            cols,
        })
    }
}

/// The three keys of a `.npy` header.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A value of the header dict.
#[derive(Debug)]
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

impl Header {
    /// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`
    /// followed by padding (spaces and a final newline).
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        p.expect(b'{')?;
        while !p.eat(b'}') {
            let key = p.string()?;
            p.expect(b':')?;
            let value = p.literal()?;
            let slot_taken = match (key.as_str(), value) {
                ("descr", Literal::Str(s)) => descr.replace(s).is_some(),
                ("fortran_order", Literal::Bool(b)) => fortran_order.replace(b).is_some(),
                ("shape", Literal::Tuple(t)) => shape.replace(t).is_some(),
                (k @ ("descr" | "fortran_order" | "shape"), v) => {
                    return Err(format!("header key '{k}' has an unexpected value {v:?}"))
                }
                (k, _) => return Err(format!("unexpected header key '{k}'")),
            };
            if slot_taken {
                return Err(format!("header key '{key}' appears twice"));
            }
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        if p.s[p.at..].iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(format!(
                "unexpected text after the header dict at byte {}",
                p.at
            ));
        }
        let missing = |k: &str| format!("header has no '{k}'");
        Ok(Header {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }
}

/// A cursor over the header text; every method skips leading white space.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Option<u8> {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        self.at += usize::from(found);
        found
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed header: expected '{}' at byte {}",
                c as char, self.at
            ))
        }
    }

    /// A quoted string without escapes (NumPy writes none in these keys and values).
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "malformed header: expected a string at byte {}",
                    self.at
                ))
            }
        };
        let start = self.at + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or("malformed header: unterminated string")?;
        let body = &self.s[start..start + len];
        if body.contains(&b'\\') {
            return Err("malformed header: escapes in strings are not supported".into());
        }
        self.at = start + len + 1;
        Ok(String::from_utf8(body.to_vec()).expect("slice of a str at ASCII quotes"))
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(Literal::Str),
            Some(b'(') => self.tuple().map(Literal::Tuple),
            _ => {
                for (word, value) in [("True", true), ("False", false)] {
                    if self.s[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(Literal::Bool(value));
                    }
                }
                Err(format!(
                    "malformed header: unsupported value at byte {}",
                    self.at
                ))
            }
        }
    }

    /// `()`, `(3,)`, `(3, 4)` or `(3, 4,)`.
    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        while !self.eat(b')') {
            items.push(self.integer()?);
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(items)
    }

    fn integer(&mut self) -> Result<u64, String> {
        self.peek();
        let digits = self.s[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = std::str::from_utf8(&self.s[self.at..self.at + digits]).expect("ASCII digits");
        let n = text.parse().map_err(|_| {
            if digits == 0 {
                format!("malformed header: expected a dimension at byte {}", self.at)
            } else {
                format!("shape entry {text} is out of range")
            }
        })?;
        self.at += digits;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file as NumPy lays it out: preamble, `header` padded with
    /// spaces and a newline to a multiple of 64 bytes, then `data`.
    fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let len_bytes = if version == 1 { 2 } else { 4 };
        let unpadded = 8 + len_bytes + header.len() + 1;
        let padded = format!(
            "{header}{}\n",
            " ".repeat(unpadded.next_multiple_of(64) - unpadded)
        );
        let mut file = MAGIC.to_vec();
        file.extend([version, 0]);
        let n = padded.len() as u32;
        file.extend(&n.to_le_bytes()[..len_bytes]);
        file.extend(padded.as_bytes());
        file.extend(data);
        file
    }

    fn f32_data(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn read(header: &str, data: &[u8]) -> Result<Layout, String> {
        Layout::read(&npy(1, header, data))
    }

    const GOOD: &str = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

    #[test]
    fn reads_what_numpy_writes() {
        let data = f32_data(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        for version in [1, 2, 3] {
            let file = npy(version, GOOD, &data);
            let layout = Layout::read(&file).unwrap();
            assert_eq!((layout.rows, layout.cols), (2, 3));
            assert_eq!(layout.offset % 64, 0);
            assert_eq!(&file[layout.offset..], &data[..]);
        }
        let one_d = read(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
            &data,
        )
        .unwrap();
        assert_eq!((one_d.rows, one_d.cols), (1, 3));
        let empty = read(
            r#"{"shape": (0, 896), "fortran_order": False, "descr": "<f4"}"#,
            &[],
        )
        .unwrap();
        assert_eq!((empty.rows, empty.cols), (0, 896));
    }

    #[test]
    fn the_written_header_reads_back() {
        for (rows, cols) in [(0, 384), (3, 4), (8_841_823, 3584)] {
            let mut file = f32_header(rows, cols);
            assert_eq!(file.len() % 64, 0);
            let data = f32_data(&vec![0.5; rows.min(3) * cols]);
            file.extend_from_slice(&data);
            if rows <= 3 {
                let layout = Layout::read(&file).unwrap();
                assert_eq!((layout.rows, layout.cols), (rows, cols));
                assert_eq!(layout.element, NpyElement::F32);
            } else {
                let err = Layout::read(&file).unwrap_err();
                assert!(err.contains("truncated"), "{err}");
            }
        }
    }

    #[test]
    fn reads_f16_rows_as_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.npy");
        let data: Vec<u8> = [1.5f32, -2.0, 0.25, 65504.0]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }";
        std::fs::write(&path, npy(1, header, &data)).unwrap();
        let a = NpyVectors::open(&path).unwrap();
        assert_eq!(a.element, NpyElement::F16);
        assert_eq!(a.rows_vec(0, 2), vec![1.5, -2.0, 0.25, 65504.0]);
        // Two bytes short of the shape's data: refused.
        std::fs::write(&path, npy(1, header, &data[..6])).unwrap();
        assert!(NpyVectors::open(&path).is_err());
    }

    #[test]
    fn opens_a_file_and_reads_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.npy");
        std::fs::write(
            &path,
            npy(1, GOOD, &f32_data(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        )
        .unwrap();
        let a = NpyVectors::open(&path).unwrap();
        assert_eq!(a.rows_vec(1, 2), vec![4.0, 5.0, 6.0]);
        std::fs::write(&path, npy(1, GOOD, &f32_data(&[1.0]))).unwrap();
        match NpyVectors::open(&path) {
            Err(IndexError::InvalidInput { file, detail }) => {
                assert_eq!(file, path);
                assert!(detail.contains("truncated"), "{detail}");
            }
            other => panic!("expected InvalidInput, got {:?}", other.err()),
        }
    }

    fn rejected(header: &str, data: &[u8], needle: &str) {
        match read(header, data) {
            Err(e) => assert!(e.contains(needle), "{header}: {e}"),
            Ok(l) => panic!("{header}: accepted as {l:?}"),
        }
    }

    #[test]
    fn wrapping_shapes_are_errors_not_panics() {
        // 2^62 rows × 4 columns wraps to 0 in 64 bits: the old unchecked product passed.
        let header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 4)}}",
            1u64 << 62
        );
        rejected(&header, &[], "too large");
        rejected(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 1)}",
            &[],
            "out of range",
        );
        rejected(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
            &[],
            "too large",
        );
    }

    #[test]
    fn truncated_data_and_header() {
        rejected(GOOD, &f32_data(&[1.0; 5]), "truncated");
        let mut file = npy(2, GOOD, &[]);
        file[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Layout::read(&file)
            .unwrap_err()
            .contains("truncated .npy header"));
        assert!(Layout::read(&file[..11]).unwrap_err().contains("preamble"));
        assert!(Layout::read(&file[..9]).unwrap_err().contains("magic"));
        assert!(Layout::read(b"\x93NUMPY\x02\x00\x10\x00").is_err());
    }

    #[test]
    fn missing_duplicate_and_unknown_keys() {
        rejected(
            "{'descr': '<f4', 'fortran_order': False}",
            &[],
            "no 'shape'",
        );
        rejected(
            "{'descr': '<f4', 'shape': (1, 1)}",
            &[],
            "no 'fortran_order'",
        );
        rejected(
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            &[],
            "twice",
        );
        rejected(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 'x'}",
            &[],
            "'extra'",
        );
    }

    #[test]
    fn keys_inside_string_values_are_not_keys() {
        // The substring search found `'descr': '<f4'` inside the first value
        // and read this <i8 array as f32.
        rejected(
            "{'note': \"'descr': '<f4', 'shape': (1, 1)\", 'descr': '<i8', \
             'fortran_order': False, 'shape': (2, 3)}",
            &[0; 48],
            "unexpected header key 'note'",
        );
        rejected(
            "{'descr': \"<f4', 'fortran_order': False, 'shape': (1,\", \
             'fortran_order': False, 'shape': (2, 3)}",
            &[0; 24],
            "is not little-endian f32",
        );
    }

    #[test]
    fn fortran_order_wrong_dtype_and_rank() {
        rejected(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}",
            &[0; 24],
            "Fortran",
        );
        for descr in ["<f8", ">f4", "|u1", "f4"] {
            let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 3)}}");
            rejected(&header, &[0; 48], descr);
        }
        rejected(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3)}",
            &[0; 24],
            "1-D or 2-D",
        );
        rejected(
            "{'descr': '<f4', 'fortran_order': False, 'shape': ()}",
            &[],
            "1-D or 2-D",
        );
        rejected(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0)}",
            &[],
            "without",
        );
    }

    #[test]
    fn malformed_literals() {
        for header in [
            "",
            "{",
            "{'descr' '<f4'}",
            "{'descr': '<f4\\'', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} trailing",
            "{'descr': '<f4', 'fortran_order': False, 'shape': '(1,)'}",
        ] {
            assert!(read(header, &[0; 8]).is_err(), "{header}");
        }
    }
}
