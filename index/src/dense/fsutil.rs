//! Crash-safe file replacement: write a temporary file, fsync it, rename it
//! over the target, fsync the directory. A crash at any instant leaves the
//! old file or the new one, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::IndexError;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Suffix of in-progress files; anything with it is garbage after a crash.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn tmp_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    target.with_file_name(name)
}

/// fsync a directory so that renames inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Atomically replaces `target` with the bytes produced by `fill`.
pub(crate) fn write_atomic(
    target: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), IndexError> {
    let tmp = tmp_path(target);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    fill(&mut out).map_err(io_err(&tmp))?;
    let file = out.into_inner().map_err(|e| IndexError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, target).map_err(io_err(target))?;
    sync_dir(target.parent().unwrap_or(Path::new(".")))
}
