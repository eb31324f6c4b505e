//! One shard file: writing it (atomically) and reading it through a memory
//! map. Opening reads the header and the footer only (O(1) in the shard's
//! size); the full checksum runs in [`Shard::verify`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;
use rkyv::string::ArchivedString;
use rkyv::vec::ArchivedVec;

use super::format::{checksum, ElementType, ShardFooter, ShardHeader, FOOTER_LEN, HEADER_LEN};
use crate::error::io_err;
use crate::IndexError;

/// Writes a complete shard to `path` (temp file, fsync, rename, dir fsync).
/// `rows` holds `doc_ids.len()` rows already encoded at `element_type`'s
/// row stride. Returns (checksum, file length).
pub(crate) fn write_shard(
    path: &Path,
    element_type: ElementType,
    dim: usize,
    rows: &[u8],
    doc_ids: &[String],
) -> Result<(u64, u64), IndexError> {
    let row_count = doc_ids.len();
    debug_assert_eq!(rows.len(), row_count * element_type.row_stride(dim));
    let ids = rkyv::to_bytes::<rkyv::rancor::Error>(&doc_ids.to_vec()).map_err(|e| {
        IndexError::InvalidInput {
            file: path.to_path_buf(),
            detail: format!("cannot archive doc ids: {e}"),
        }
    })?;
    let header = ShardHeader::new(element_type, dim, row_count, ids.len());
    let mut sum = 0u64;
    quarry_fsio::write_with(path, |out| {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut put = |bytes: &[u8]| -> std::io::Result<()> {
            hasher.update(bytes);
            out.write_all(bytes)
        };
        put(&header.encode())?;
        put(rows)?;
        let rows_end = (HEADER_LEN + rows.len()) as u64;
        put(&vec![0u8; (header.doc_ids_offset - rows_end) as usize])?;
        put(&ids)?;
        let ids_end = header.doc_ids_offset + ids.len() as u64;
        put(&vec![0u8; (header.footer_offset() - ids_end) as usize])?;
        sum = hasher.digest();
        out.write_all(&ShardFooter { checksum: sum }.encode())
    })?;
    Ok((sum, header.file_len()))
}

/// A shard file mapped but not yet decoded (see [`Shard::map`]).
pub struct MappedShard {
    path: PathBuf,
    mmap: Mmap,
}

impl MappedShard {
    /// Decodes and checks the header and footer (not the checksum).
    pub fn finish(self) -> Result<Shard, IndexError> {
        let MappedShard { path, mmap } = self;
        let header = ShardHeader::decode(&path, &mmap, mmap.len() as u64)?;
        let footer = ShardFooter::decode(&path, &mmap[mmap.len() - FOOTER_LEN..])?;
        Ok(Shard {
            path,
            mmap,
            header,
            footer,
            doc_ids: OnceLock::new(),
        })
    }
}

/// A memory-mapped shard.
pub struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header: ShardHeader,
    footer: ShardFooter,
    doc_ids: OnceLock<Result<(), String>>,
}

impl Shard {
    /// Maps the file and checks its header and footer (not the checksum).
    pub fn open(path: &Path) -> Result<Shard, IndexError> {
        Shard::map(path)?.finish()
    }

    /// First half of [`Shard::open`]: maps the file and asks the kernel to
    /// start reading the header and footer pages (`MADV_WILLNEED`) without
    /// waiting. Opening many shards maps them all first, then decodes: on a
    /// cold page cache the reads then overlap instead of queueing one after
    /// another (16 shards: 170–280 ms sequential on this machine's disk).
    pub fn map(path: &Path) -> Result<MappedShard, IndexError> {
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: shards are immutable once renamed into place; the writer never
        // modifies a published file (it writes a new one and renames).
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        #[cfg(unix)]
        if mmap.len() >= HEADER_LEN + FOOTER_LEN {
            // A hint: failure only means the reads happen at decode time.
            let _ = mmap.advise_range(memmap2::Advice::WillNeed, 0, HEADER_LEN);
            let _ = mmap.advise_range(
                memmap2::Advice::WillNeed,
                mmap.len() - FOOTER_LEN,
                FOOTER_LEN,
            );
        }
        Ok(MappedShard {
            path: path.to_path_buf(),
            mmap,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &ShardHeader {
        &self.header
    }
    pub fn rows(&self) -> usize {
        self.header.row_count as usize
    }
    pub fn file_len(&self) -> u64 {
        self.mmap.len() as u64
    }
    /// The checksum stored in the footer.
    pub fn stored_checksum(&self) -> u64 {
        self.footer.checksum
    }

    /// Recomputes the checksum of everything before the footer and compares.
    pub fn verify(&self) -> Result<(), IndexError> {
        let end = self.header.footer_offset() as usize;
        let actual = checksum(&self.mmap[..end]);
        if actual != self.footer.checksum {
            return Err(IndexError::DataCorruption {
                file: self.path.clone(),
                detail: format!(
                    "checksum mismatch: footer says {:016x}, content hashes to {actual:016x}",
                    self.footer.checksum
                ),
            });
        }
        self.check_doc_ids()
    }

    /// The raw bytes of the row area (`rows × row_stride`).
    pub fn row_bytes(&self) -> &[u8] {
        let start = self.header.rows_offset as usize;
        &self.mmap[start..start + self.rows() * self.header.row_stride as usize]
    }

    /// Doc-id table, read zero-copy; validated (bytecheck) on first use.
    pub fn doc_ids(&self) -> Result<&ArchivedVec<ArchivedString>, IndexError> {
        self.check_doc_ids()?;
        // SAFETY: `check_doc_ids` validated these exact bytes with bytecheck.
        Ok(unsafe { rkyv::access_unchecked::<ArchivedVec<ArchivedString>>(self.doc_id_bytes()) })
    }

    fn doc_id_bytes(&self) -> &[u8] {
        let start = self.header.doc_ids_offset as usize;
        &self.mmap[start..start + self.header.doc_ids_len as usize]
    }

    fn check_doc_ids(&self) -> Result<(), IndexError> {
        let result = self.doc_ids.get_or_init(|| {
            let ids = rkyv::access::<ArchivedVec<ArchivedString>, rkyv::rancor::Error>(
                self.doc_id_bytes(),
            )
            .map_err(|e| format!("doc-id table does not validate: {e}"))?;
            if ids.len() != self.rows() {
                return Err(format!(
                    "doc-id table has {} entries for {} rows",
                    ids.len(),
                    self.rows()
                ));
            }
            Ok(())
        });
        result.clone().map_err(|detail| IndexError::DataCorruption {
            file: self.path.clone(),
            detail,
        })
    }
}
