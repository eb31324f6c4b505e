//! Byte layout of one embedding shard (see `index/FORMAT.md`, which is the
//! normative description; this module is its only implementation).
//!
//! ```text
//! [header: 64 B][rows: row_count × row_stride, 64-B aligned][pad][doc ids: rkyv][pad][footer: 24 B]
//! ```

use std::path::Path;

use crate::IndexError;

/// Magic at offset 0 of every shard.
pub const SHARD_MAGIC: [u8; 8] = *b"QRYSHARD";
/// Magic in the last 8 bytes of every shard.
pub const FOOTER_MAGIC: [u8; 8] = *b"QRYSHEND";
/// Version of the shard and manifest formats written by this code.
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const FOOTER_LEN: usize = 24;
/// Rows start at, and every row stride is a multiple of, this many bytes (one
/// cache line; the widest SIMD load, AVX-512, is 64 bytes).
pub const ROW_ALIGN: usize = 64;
/// The rkyv doc-id archive starts at a multiple of this (rkyv needs 16 at most).
pub const DOC_IDS_ALIGN: usize = 16;

/// How the components of a stored vector are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary16 (half), round-to-nearest-even from f32.
    F16,
    /// bfloat16 (the top 16 bits of a binary32), round-to-nearest-even from f32.
    Bf16,
}

impl ElementType {
    pub fn code(self) -> u32 {
        match self {
            ElementType::F32 => 0,
            ElementType::F16 => 1,
            ElementType::Bf16 => 2,
        }
    }
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(ElementType::F32),
            1 => Some(ElementType::F16),
            2 => Some(ElementType::Bf16),
            _ => None,
        }
    }
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::F16 | ElementType::Bf16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::Bf16 => "bf16",
        }
    }
    /// Bytes between the starts of two consecutive rows.
    pub fn row_stride(self, dim: usize) -> usize {
        (dim * self.size()).next_multiple_of(ROW_ALIGN)
    }
}

impl std::str::FromStr for ElementType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(ElementType::F32),
            "f16" => Ok(ElementType::F16),
            "bf16" => Ok(ElementType::Bf16),
            other => Err(format!(
                "unknown element type `{other}` (expected f32, f16 or bf16)"
            )),
        }
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The fixed 64-byte header at the start of a shard. All integers little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    pub element_type: ElementType,
    pub dim: u32,
    pub row_count: u64,
    pub row_stride: u32,
    pub rows_offset: u64,
    pub doc_ids_offset: u64,
    pub doc_ids_len: u64,
}

impl ShardHeader {
    pub fn new(
        element_type: ElementType,
        dim: usize,
        row_count: usize,
        doc_ids_len: usize,
    ) -> Self {
        let row_stride = element_type.row_stride(dim);
        let rows_offset = HEADER_LEN as u64;
        let doc_ids_offset =
            (rows_offset + (row_count * row_stride) as u64).next_multiple_of(DOC_IDS_ALIGN as u64);
        ShardHeader {
            element_type,
            dim: dim as u32,
            row_count: row_count as u64,
            row_stride: row_stride as u32,
            rows_offset,
            doc_ids_offset,
            doc_ids_len: doc_ids_len as u64,
        }
    }

    /// Offset of the footer: after the doc ids, padded to 8 bytes.
    pub fn footer_offset(&self) -> u64 {
        (self.doc_ids_offset + self.doc_ids_len).next_multiple_of(8)
    }

    pub fn file_len(&self) -> u64 {
        self.footer_offset() + FOOTER_LEN as u64
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&SHARD_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.element_type.code().to_le_bytes());
        b[16..20].copy_from_slice(&self.dim.to_le_bytes());
        b[20..24].copy_from_slice(&self.row_stride.to_le_bytes());
        b[24..32].copy_from_slice(&self.row_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.rows_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.doc_ids_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.doc_ids_len.to_le_bytes());
        // 56..64 reserved, zero.
        b
    }

    /// Parses and sanity-checks a header against the real file length.
    pub fn decode(file: &Path, bytes: &[u8], file_len: u64) -> Result<Self, IndexError> {
        let corrupt = |detail: String| IndexError::DataCorruption {
            file: file.to_path_buf(),
            detail,
        };
        if bytes.len() < HEADER_LEN || file_len < (HEADER_LEN + FOOTER_LEN) as u64 {
            return Err(corrupt(format!(
                "file is {file_len} bytes, shorter than header + footer ({} bytes): truncated?",
                HEADER_LEN + FOOTER_LEN
            )));
        }
        if bytes[0..8] != SHARD_MAGIC {
            return Err(corrupt(format!(
                "wrong magic {:?} (expected {:?}): not a quarry shard",
                String::from_utf8_lossy(&bytes[0..8]),
                String::from_utf8_lossy(&SHARD_MAGIC)
            )));
        }
        let u32_at = |o: usize| u32_le(bytes, o);
        let u64_at = |o: usize| u64_le(bytes, o);
        check_version(file, u32_at(8), FORMAT_VERSION)?;
        let element_type = ElementType::from_code(u32_at(12))
            .ok_or_else(|| corrupt(format!("unknown element type code {}", u32_at(12))))?;
        let header = ShardHeader {
            element_type,
            dim: u32_at(16),
            row_stride: u32_at(20),
            row_count: u64_at(24),
            rows_offset: u64_at(32),
            doc_ids_offset: u64_at(40),
            doc_ids_len: u64_at(48),
        };
        if header.dim == 0 {
            return Err(corrupt("dimension is 0".into()));
        }
        let expected = ShardHeader::new(
            element_type,
            header.dim as usize,
            header.row_count as usize,
            header.doc_ids_len as usize,
        );
        if expected != header {
            return Err(corrupt(format!(
                "inconsistent header {header:?} (layout rules give {expected:?})"
            )));
        }
        if header.file_len() != file_len {
            return Err(corrupt(format!(
                "file is {file_len} bytes but its header describes {} bytes: truncated or extended",
                header.file_len()
            )));
        }
        Ok(header)
    }
}

/// The 24-byte footer: checksum of every byte before it, the format version, magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardFooter {
    pub checksum: u64,
}

impl ShardFooter {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&self.checksum.to_le_bytes());
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 12..16 reserved, zero.
        b[16..24].copy_from_slice(&FOOTER_MAGIC);
        b
    }

    pub fn decode(file: &Path, bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() != FOOTER_LEN || bytes[16..24] != FOOTER_MAGIC {
            return Err(IndexError::DataCorruption {
                file: file.to_path_buf(),
                detail: "footer magic missing: truncated or not a quarry shard".into(),
            });
        }
        check_version(file, u32_le(bytes, 8), FORMAT_VERSION)?;
        Ok(ShardFooter {
            checksum: u64_le(bytes, 0),
        })
    }
}

/// The checksum used by shards: XXH3-64 (seed 0).
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Checksums are printed and stored as 16 lowercase hex digits.
pub fn checksum_hex(sum: u64) -> String {
    format!("{sum:016x}")
}

/// The little-endian `u32` at byte `at` (the caller has checked the length).
pub fn u32_le(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The little-endian `u64` at byte `at` (the caller has checked the length).
pub fn u64_le(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Refuses a file (shard, manifest, graph) of another format version than
/// the `supported` one this code reads.
pub fn check_version(file: &Path, found: u32, supported: u32) -> Result<(), IndexError> {
    if found == supported {
        return Ok(());
    }
    Err(IndexError::UnsupportedVersion {
        file: file.to_path_buf(),
        found,
        supported,
    })
}
