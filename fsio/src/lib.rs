//! Crash-safe replacement of a file, for every crate of the workspace.
//!
//! A write goes to a uniquely named temporary file in the target's own folder (so the
//! final rename never crosses a file system and two concurrent writers never share a
//! temporary), is flushed and fsynced, renamed over the target, and the folder is
//! fsynced so that the rename itself survives a power loss. Readers see the old file
//! or the whole new one, never a mix; a failed write leaves the old file untouched and
//! no temporary behind (tempfile removes it on drop).
//!
//! Temporary names start with `.` and end with [`TMP_SUFFIX`], so a folder scan can
//! tell (and sweep) leftovers of a process killed mid-write.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Suffix of every in-progress temporary file this crate creates.
pub const TMP_SUFFIX: &str = ".tmp";

/// An I/O failure with the path it concerns (the target, or the temporary file).
#[derive(Debug)]
pub struct AtomicWriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for AtomicWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for AtomicWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> AtomicWriteError + '_ {
    move |source| AtomicWriteError {
        path: path.to_path_buf(),
        source,
    }
}

/// The folder a relative bare file name lives in.
fn parent_of(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a folder so that renames inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), AtomicWriteError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Atomically replaces `target` with what `fill` writes (buffered, 1 MiB).
pub fn write_with(
    target: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let dir = parent_of(target);
    let stem = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{stem}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TMP_SUFFIX);
    // tempfile creates 0600 files; an index or run file should be as readable
    // as any file the user creates, so ask open(2) for 0666 as File::create
    // does and let the kernel apply the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder.tempfile_in(dir).map_err(at(target))?;
    let temp_path = temp.path().to_path_buf();
    let mut out = BufWriter::with_capacity(1 << 20, temp);
    fill(&mut out).map_err(at(&temp_path))?;
    let temp = out
        .into_inner()
        .map_err(|e| at(&temp_path)(e.into_error()))?;
    temp.as_file().sync_all().map_err(at(&temp_path))?;
    temp.persist(target).map_err(|e| at(target)(e.error))?;
    sync_dir(dir)
}

/// Atomically replaces `target` with `bytes`.
pub fn write(target: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_with(target, |out| out.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A folder whose one file, `a.json`, holds `old`.
    fn folder_with_old_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.json");
        write(&target, b"old").unwrap();
        (dir, target)
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary() {
        let (dir, target) = folder_with_old_file();
        write(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(names(dir.path()), vec!["a.json"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file() {
        let (dir, target) = folder_with_old_file();
        let err = write_with(&target, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["a.json"]);
    }

    #[test]
    fn concurrent_writers_use_distinct_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shared.bin");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let target = &target;
                s.spawn(move || write(target, &[i; 4096]).unwrap());
            }
        });
        let bytes = std::fs::read(&target).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "torn write");
        assert_eq!(names(dir.path()), vec!["shared.bin"]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_as_readable_as_ones_the_user_creates() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let atomic = dir.path().join("atomic");
        write(&atomic, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }

    #[test]
    fn a_missing_folder_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/dir/x");
        let err = write(&target, b"x").unwrap_err();
        assert_eq!(err.path, target);
    }
}
