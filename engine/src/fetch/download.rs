//! One file over HTTP(S) into the data folder's `downloads/`: resumed with a
//! Range request when an interrupted run left `<file>.part`, hashed, checked
//! against the registry's sha256 and renamed into place only when whole.
//!
//! Hand-written on `ureq` rather than through a download crate: resuming,
//! the checksum and the messages (which byte it stopped at, which file was
//! kept) are the point of this module, and each is a few lines here.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// Suffix of a download in progress.
pub const PART_SUFFIX: &str = ".part";

/// The HTTP client every download of one fetch shares.
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    /// `stall`: how long one read may wait for the server before the
    /// download is abandoned (and kept for resuming).
    pub fn new(stall: Duration) -> Http {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30).min(stall.max(Duration::from_secs(1))))
            .timeout_read(stall)
            .timeout_write(stall)
            .user_agent(concat!("quarry/", env!("CARGO_PKG_VERSION")))
            .build();
        Http { agent }
    }
}

impl Http {
    /// GETs a small text document (a listing, not a download: no resume, no
    /// file). Returns it with the URL of the next page when the server links
    /// one (`Link: <URL>; rel="next"`, as the Hugging Face hub paginates).
    pub fn get_text(&self, url: &str) -> Result<(String, Option<String>)> {
        let resp = match self.agent.get(url).call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(code, resp)) => {
                return Err(fetch_error(
                    url,
                    format!("HTTP {code} {}", resp.status_text()),
                ))
            }
            Err(ureq::Error::Transport(t)) => return Err(fetch_error(url, t.to_string())),
        };
        let next = resp.header("Link").and_then(next_link);
        let text = resp
            .into_string()
            .map_err(|e| fetch_error(url, format!("reading the response: {e}")))?;
        Ok((text, next))
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

/// A file in place, with what is known of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Downloaded {
    pub url: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// Whether the registry had the sha256 to check it against.
    pub pinned: bool,
    /// Bytes already there from an interrupted run (0: a fresh download).
    #[serde(skip)]
    pub resumed_from: u64,
    /// Whether it was already complete on disk (nothing fetched).
    #[serde(skip)]
    pub reused: bool,
}

fn fetch_error(url: &str, detail: impl Into<String>) -> EngineError {
    EngineError::Fetch {
        what: url.to_string(),
        detail: detail.into(),
    }
}

/// The sha256 of a whole file, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| EngineError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A file the user already has (`--from`), checked like a download.
pub fn local(url: &str, path: &Path, expected: Option<&str>) -> Result<Downloaded> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| EngineError::io(path, e))?
        .len();
    let sha256 = sha256_file(path)?;
    check_sha256(path, &sha256, expected, false)?;
    Ok(Downloaded {
        url: url.to_string(),
        path: path.to_path_buf(),
        bytes,
        sha256,
        pinned: expected.is_some(),
        resumed_from: 0,
        reused: true,
    })
}

/// A checksum that differs is an error naming the file; `remove` deletes it
/// first, so a corrupt download never stays in place.
fn check_sha256(path: &Path, actual: &str, expected: Option<&str>, remove: bool) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => {
            if remove {
                let _ = std::fs::remove_file(path);
            }
            Err(EngineError::Fetch {
                what: path.display().to_string(),
                detail: format!(
                    "sha256 is {actual}, but the registry says {expected}{}",
                    if remove {
                        "; the file was removed, nothing was converted"
                    } else {
                        ""
                    }
                ),
            })
        }
        _ => Ok(()),
    }
}

/// Fetches `url` into `dest` (resuming `dest.part`), moving `bar` in bytes.
pub fn download(
    http: &Http,
    url: &str,
    dest: &Path,
    expected: Option<&str>,
    bar: &ProgressBar,
) -> Result<Downloaded> {
    if dest.is_file() {
        let sha256 = sha256_file(dest)?;
        if expected.is_none_or(|e| e == sha256) {
            let bytes = std::fs::metadata(dest)
                .map_err(|e| EngineError::io(dest, e))?
                .len();
            return Ok(Downloaded {
                url: url.to_string(),
                path: dest.to_path_buf(),
                bytes,
                sha256,
                pinned: expected.is_some(),
                resumed_from: 0,
                reused: true,
            });
        }
        // A finished download that no longer matches: fetch it again.
        std::fs::remove_file(dest).map_err(|e| EngineError::io(dest, e))?;
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    }
    let part = part_path(dest);
    let resumed_from = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let (mut body, offset, total) = request(http, url, resumed_from)?;
    let mut file = open_part(&part, offset)?;
    bar.set_length(total.unwrap_or(0));
    bar.set_position(offset);
    let mut got = offset;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match body.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(stopped(url, &part, got, total, &e.to_string())),
        };
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| EngineError::io(&part, e))?;
        got += n as u64;
        bar.set_position(got);
    }
    if let Some(total) = total {
        if got != total {
            return Err(stopped(
                url,
                &part,
                got,
                Some(total),
                "the connection closed",
            ));
        }
    }
    file.sync_all().map_err(|e| EngineError::io(&part, e))?;
    drop(file);
    let sha256 = sha256_file(&part)?;
    check_sha256(&part, &sha256, expected, true)?;
    std::fs::rename(&part, dest).map_err(|e| EngineError::io(dest, e))?;
    if let Some(dir) = dest.parent() {
        quarry_fsio::sync_dir(dir)?;
    }
    Ok(Downloaded {
        url: url.to_string(),
        path: dest.to_path_buf(),
        bytes: got,
        sha256,
        pinned: expected.is_some(),
        resumed_from: offset,
        reused: false,
    })
}

/// Where a download in progress is kept.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(PART_SUFFIX);
    dest.with_file_name(name)
}

fn stopped(url: &str, part: &Path, got: u64, total: Option<u64>, why: &str) -> EngineError {
    let of = total.map_or(String::new(), |t| format!(" of {t}"));
    fetch_error(
        url,
        format!(
            "the download stopped after {got}{of} bytes ({why}); {} is kept: run the same \
             command again to resume",
            part.display()
        ),
    )
}

type Body = Box<dyn Read + Send + Sync + 'static>;

/// Sends the GET (with `Range` when resuming). Returns the body, the offset
/// it starts at (0 when the server ignored the range) and the full size.
fn request(http: &Http, url: &str, offset: u64) -> Result<(Body, u64, Option<u64>)> {
    // Byte-exact: no transfer compression, whatever features ureq is built with,
    // so offsets and the sha256 are those of the file itself.
    let mut req = http.agent.get(url).set("Accept-Encoding", "identity");
    if offset > 0 {
        req = req.set("Range", &format!("bytes={offset}-"));
    }
    match req.call() {
        Ok(resp) if resp.status() == 206 => {
            let range = resp.header("Content-Range").unwrap_or("").to_string();
            let (start, total) = parse_content_range(&range).ok_or_else(|| {
                fetch_error(
                    url,
                    format!("partial response with Content-Range `{range}`"),
                )
            })?;
            if start != offset {
                return Err(fetch_error(
                    url,
                    format!("asked to resume at byte {offset}, the server sent from {start}"),
                ));
            }
            Ok((resp.into_reader(), offset, total))
        }
        Ok(resp) => {
            let total = resp
                .header("Content-Length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            Ok((resp.into_reader(), 0, total))
        }
        // The `.part` already holds every byte (an interrupted run stopped
        // after the last read): ask for it whole, which is cheap to skip.
        Err(ureq::Error::Status(416, _)) if offset > 0 => {
            let part_len = offset;
            let resp = http
                .agent
                .head(url)
                .call()
                .map_err(|e| fetch_error(url, e.to_string()))?;
            let total = resp
                .header("Content-Length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if total == Some(part_len) {
                Ok((Box::new(std::io::empty()), part_len, total))
            } else {
                Err(fetch_error(
                    url,
                    format!(
                        "the server refused to resume at byte {part_len} (size {}); delete \
                         the .part file to start over",
                        total.map_or("unknown".to_string(), |t| t.to_string())
                    ),
                ))
            }
        }
        Err(ureq::Error::Status(code, resp)) => Err(fetch_error(
            url,
            format!("HTTP {code} {}", resp.status_text()),
        )),
        Err(ureq::Error::Transport(t)) => Err(fetch_error(url, t.to_string())),
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL); TOTAL may be `*`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

/// Opens the `.part` file to append at `offset` (truncated when 0).
fn open_part(part: &Path, offset: u64) -> Result<File> {
    let file = if offset == 0 {
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(part)
    } else {
        OpenOptions::new().append(true).open(part)
    };
    file.map_err(|e| EngineError::io(part, e))
}

/// The URL a mirror serves in place of `url`: the mirror's base followed by
/// the original's path (`https://host/a/b.zip` → `MIRROR/a/b.zip`), so one
/// mirror can hold every source without name clashes.
pub fn mirrored(url: &str, mirror: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or(url);
    format!("{}{}", mirror.trim_end_matches('/'), path)
}

/// The file name a URL is saved under.
pub fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_keeps_the_path() {
        assert_eq!(
            mirrored(
                "https://host.org/thakur/BEIR/datasets/nfcorpus.zip",
                "http://127.0.0.1:8/m/"
            ),
            "http://127.0.0.1:8/m/thakur/BEIR/datasets/nfcorpus.zip"
        );
        assert_eq!(file_name("https://h/a/b.tar.gz?x=1"), "b.tar.gz");
    }

    #[test]
    fn next_link_is_found() {
        let h = r#"<https://h/api/x?cursor=abc>; rel="next", <https://h/api/x>; rel="first""#;
        assert_eq!(next_link(h).as_deref(), Some("https://h/api/x?cursor=abc"));
        assert_eq!(next_link(r#"<https://h/a>; rel="prev""#), None);
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
