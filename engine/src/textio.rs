//! Line-by-line reading of dataset and run files, compressed or not.
//!
//! Every file quarry reads (corpus, queries, qrels, run files) goes through
//! [`LineReader`]: it picks the decompressor from the file name (`.gz`,
//! `.zst`, or none), counts lines for error messages, and can hash the
//! *uncompressed* bytes on the way through, so that a corpus checksum does not
//! depend on how the file happens to be compressed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// The compressed variants quarry looks for, in order, after the plain name.
pub const COMPRESSED_SUFFIXES: [&str; 2] = [".zst", ".gz"];

/// Finds `dir/name`, `dir/name.zst` or `dir/name.gz` (first that exists).
pub fn find_variant(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Some(plain);
    }
    COMPRESSED_SUFFIXES
        .iter()
        .map(|suffix| dir.join(format!("{name}{suffix}")))
        .find(|candidate| candidate.is_file())
}

/// The names [`find_variant`] tries, for "not found" messages.
pub fn variant_names(name: &str) -> String {
    let mut names = vec![name.to_string()];
    names.extend(COMPRESSED_SUFFIXES.iter().map(|s| format!("{name}{s}")));
    names.join(", ")
}

/// Passes bytes through, feeding them to a sha256 when asked to.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Reads a text file line by line, decompressing `.gz` / `.zst` transparently.
pub struct LineReader {
    path: PathBuf,
    reader: BufReader<HashingReader<Box<dyn Read + Send>>>,
    line_number: u64,
    buffer: String,
}

impl LineReader {
    /// Opens `path`; the decompressor is chosen by its extension.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_inner(path, false)
    }

    /// Like [`LineReader::open`], and also hashes the uncompressed bytes
    /// (read with [`LineReader::finish_sha256`] after the last line).
    pub fn open_hashing(path: &Path) -> Result<Self> {
        Self::open_inner(path, true)
    }

    fn open_inner(path: &Path, hash: bool) -> Result<Self> {
        let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let decoded: Box<dyn Read + Send> = if name.ends_with(".zst") {
            Box::new(zstd::Decoder::new(file).map_err(|e| EngineError::io(path, e))?)
        } else if name.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(file)
        };
        Ok(LineReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(
                1 << 16,
                HashingReader {
                    inner: decoded,
                    hasher: hash.then(Sha256::new),
                },
            ),
            line_number: 0,
            buffer: String::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line without its line ending, with its 1-based number;
    /// `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        Ok(self.advance()?.then(|| (self.line_number, self.current())))
    }

    /// Like [`LineReader::next_line`], passing over lines that are empty or white space:
    /// every format quarry reads allows them between records.
    pub fn next_nonblank(&mut self) -> Result<Option<(u64, &str)>> {
        while self.advance()? {
            if !self.current().trim().is_empty() {
                return Ok(Some((self.line_number, self.current())));
            }
        }
        Ok(None)
    }

    /// Reads the next line into the buffer; false at the end of the file.
    fn advance(&mut self) -> Result<bool> {
        self.buffer.clear();
        self.line_number += 1;
        match self.reader.read_line(&mut self.buffer) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(EngineError::malformed(
                &self.path,
                self.line_number,
                "UTF-8 text",
            )),
            Err(e) => Err(EngineError::io(&self.path, e)),
        }
    }

    /// The line last read, without its line ending.
    fn current(&self) -> &str {
        let line = self.buffer.strip_suffix('\n').unwrap_or(&self.buffer);
        line.strip_suffix('\r').unwrap_or(line)
    }

    /// Reads whatever is left (so the hash covers the whole file) and returns
    /// the lowercase hex sha256 of the uncompressed bytes; `None` when the
    /// reader was not opened with [`LineReader::open_hashing`].
    pub fn finish_sha256(mut self) -> Result<Option<String>> {
        std::io::copy(&mut self.reader, &mut std::io::sink())
            .map_err(|e| EngineError::io(&self.path, e))?;
        Ok(self
            .reader
            .into_inner()
            .hasher
            .map(|h| hex::encode(h.finalize())))
    }
}

/// Counts the non-empty lines of a (possibly compressed) file without
/// parsing them: what `quarry datasets` shows.
pub fn count_lines(path: &Path) -> Result<u64> {
    let mut reader = LineReader::open(path)?;
    let mut count = 0;
    while reader.next_nonblank()?.is_some() {
        count += 1;
    }
    Ok(count)
}

/// Remembers the line on which each key of a file first appeared, so that a repeated
/// key (a doc id in a corpus, a query-doc pair in qrels or a run) is an error naming
/// both lines rather than a silent overwrite.
pub struct FirstSeen<K> {
    lines: HashMap<K, u64>,
}

impl<K: Eq + Hash> Default for FirstSeen<K> {
    fn default() -> Self {
        FirstSeen {
            lines: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> FirstSeen<K> {
    /// Records `key` on `line` of `path`; when it was seen before, the error says
    /// `line N: <what> again (first on line M)`.
    pub fn record(
        &mut self,
        key: K,
        path: &Path,
        line: u64,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        match self.lines.entry(key) {
            Entry::Occupied(first) => Err(EngineError::DataCorruption {
                file: path.to_path_buf(),
                detail: format!(
                    "line {line}: {} again (first on line {})",
                    what(),
                    first.get()
                ),
            }),
            Entry::Vacant(slot) => {
                slot.insert(line);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_plain_gzip_and_zstd_alike_with_the_same_hash() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"first\r\nsecond\n\nlast";
        std::fs::write(dir.path().join("a.jsonl"), content).unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            File::create(dir.path().join("a.jsonl.gz")).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(content).unwrap();
        gz.finish().unwrap();
        std::fs::write(
            dir.path().join("a.jsonl.zst"),
            zstd::encode_all(&content[..], 3).unwrap(),
        )
        .unwrap();
        let expected_hash = hex::encode(Sha256::digest(content));
        for name in ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst"] {
            let mut reader = LineReader::open_hashing(&dir.path().join(name)).unwrap();
            let mut lines = Vec::new();
            while let Some((number, line)) = reader.next_line().unwrap() {
                lines.push((number, line.to_string()));
            }
            assert_eq!(
                lines,
                vec![
                    (1, "first".to_string()),
                    (2, "second".to_string()),
                    (3, String::new()),
                    (4, "last".to_string())
                ],
                "{name}"
            );
            assert_eq!(reader.finish_sha256().unwrap().unwrap(), expected_hash);
        }
    }

    #[test]
    fn invalid_utf8_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, b"ok\n\xff\xfe\n").unwrap();
        let mut reader = LineReader::open(&path).unwrap();
        reader.next_line().unwrap();
        let err = reader.next_line().unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2"), "{err}");
    }
}
