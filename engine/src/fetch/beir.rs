//! BEIR's zip archives (`<name>.zip` holding `<name>/corpus.jsonl`,
//! `queries.jsonl` and `qrels/<split>.tsv`) into quarry's layout: the two
//! JSONL files zstd-compressed line for line (so the corpus' sha256 is that
//! of BEIR's own `corpus.jsonl`, `\r\n` endings aside), the qrels as they are.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::convert::{for_each_line, FileRecord, LineSink};
use super::ProgressReader;
use crate::error::{EngineError, Result};

/// The members of a BEIR archive quarry takes.
struct Members {
    corpus: String,
    queries: String,
    /// split → member.
    qrels: BTreeMap<String, String>,
}

fn bad_archive(archive: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Fetch {
        what: archive.display().to_string(),
        detail: detail.into(),
    }
}

/// Picks corpus.jsonl, queries.jsonl and qrels/*.tsv from the archive's
/// names: exactly one dataset per archive.
fn members(archive: &Path, names: &[String]) -> Result<Members> {
    let one = |file: &str| -> Result<String> {
        let found: Vec<&String> = names
            .iter()
            .filter(|n| *n == file || n.ends_with(&format!("/{file}")))
            .filter(|n| !n.contains("__MACOSX"))
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(bad_archive(archive, format!("no {file} in the archive"))),
            many => Err(bad_archive(
                archive,
                format!(
                    "{} files named {file} (one dataset per archive expected): {}",
                    many.len(),
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    };
    let corpus = one("corpus.jsonl")?;
    let queries = one("queries.jsonl")?;
    let prefix = corpus.strip_suffix("corpus.jsonl").unwrap_or("");
    let mut qrels = BTreeMap::new();
    for name in names {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        if let Some(split) = rest
            .strip_prefix("qrels/")
            .and_then(|f| f.strip_suffix(".tsv"))
        {
            if !split.is_empty() && !split.contains('/') {
                qrels.insert(split.to_string(), name.clone());
            }
        }
    }
    if qrels.is_empty() {
        return Err(bad_archive(archive, "no qrels/<split>.tsv in the archive"));
    }
    Ok(Members {
        corpus,
        queries,
        qrels,
    })
}

/// Converts `archive` into `out` (a fresh folder). Returns each written
/// file (relative to `out`) with what it holds.
pub fn convert(
    archive: &Path,
    out: &Path,
    bar: &ProgressBar,
) -> Result<BTreeMap<String, FileRecord>> {
    let file = File::open(archive).map_err(|e| EngineError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| bad_archive(archive, format!("not a readable zip archive: {e}")))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let members = members(archive, &names)?;
    let mut jobs: Vec<(String, PathBuf)> = vec![
        (members.corpus, out.join("corpus.jsonl.zst")),
        (members.queries, out.join("queries.jsonl.zst")),
    ];
    for (split, member) in &members.qrels {
        jobs.push((
            member.clone(),
            out.join("qrels").join(format!("{split}.tsv")),
        ));
    }
    let mut records = BTreeMap::new();
    for (member, target) in jobs {
        let entry = zip
            .by_name(&member)
            .map_err(|e| bad_archive(archive, format!("{member}: {e}")))?;
        bar.set_length(entry.size());
        bar.set_position(0);
        bar.set_message(member.clone());
        let label = PathBuf::from(format!("{}!{member}", archive.display()));
        let record = copy_lines(ProgressReader::new(entry, bar), &label, &target)?;
        let relative = target
            .strip_prefix(out)
            .expect("targets are inside out")
            .to_string_lossy()
            .into_owned();
        records.insert(relative, record);
    }
    Ok(records)
}

/// Copies the non-blank lines of `reader` into `target` (`\n`-terminated).
fn copy_lines(reader: impl Read, label: &Path, target: &Path) -> Result<FileRecord> {
    let mut sink = LineSink::create(target)?;
    let mut first = true;
    for_each_line(reader, label, |_, line| {
        // qrels headers are records of no one: keep them uncounted.
        let header = first && line.starts_with("query-id");
        first = false;
        if line.trim().is_empty() {
            Ok(())
        } else if header {
            sink.push_header(line)
        } else {
            sink.push(line)
        }
    })?;
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_under_the_dataset_folder() {
        let names: Vec<String> = [
            "nf/",
            "nf/corpus.jsonl",
            "nf/queries.jsonl",
            "nf/qrels/test.tsv",
            "nf/qrels/dev.tsv",
            "__MACOSX/nf/._corpus.jsonl",
        ]
        .map(String::from)
        .to_vec();
        let m = members(Path::new("nf.zip"), &names).unwrap();
        assert_eq!(m.corpus, "nf/corpus.jsonl");
        assert_eq!(m.qrels.keys().collect::<Vec<_>>(), ["dev", "test"]);
        let err = members(Path::new("nf.zip"), &names[..2])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("nf.zip") && err.contains("queries.jsonl"),
            "{err}"
        );
    }
}
