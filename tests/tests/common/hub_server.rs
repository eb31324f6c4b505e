//! A Hugging Face hub on 127.0.0.1 for the `--model hf:ORG/NAME` tests: the
//! two endpoints hf-hub 0.4's sync API calls, served from model folders on
//! disk, one connection per request (std::net, like `http_server.rs`).
//!
//! - `GET /api/models/ORG/NAME/revision/REV` (REV `main` or the repo's
//!   commit): `{"id", "sha", "siblings": [{"rfilename"}]}`; 404 for another
//!   repo or revision, as the hub answers.
//! - `GET /ORG/NAME/resolve/REV/FILE` with `Range: bytes=A-[B]`: 206 with
//!   `Content-Range`, `ETag`, `X-Repo-Commit` (hf-hub probes `bytes=0-0`
//!   for the size, etag and commit, then fetches `bytes=0-`); 404 with
//!   `X-Error-Code: EntryNotFound` for a file it does not have.

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::http_request::{read_request, Request};

/// One model repo the server holds.
#[derive(Debug, Clone)]
pub struct HubRepo {
    /// `ORG/NAME`.
    pub id: String,
    /// The folder whose files are the repo's.
    pub dir: PathBuf,
    /// The commit `main` points at (40 hex digits).
    pub commit: String,
    /// Files listed but answered 404 (a broken upload).
    pub missing: Vec<String>,
    /// Files neither listed nor served.
    pub unlisted: Vec<String>,
}

impl HubRepo {
    pub fn new(id: &str, dir: &Path, commit: &str) -> HubRepo {
        HubRepo {
            id: id.into(),
            dir: dir.to_path_buf(),
            commit: commit.into(),
            missing: Vec::new(),
            unlisted: Vec::new(),
        }
    }

    /// The repo's files, relative, `/`-separated, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut files = Vec::new();
        walk(&self.dir, &self.dir, &mut files);
        files.retain(|f| !self.unlisted.contains(f));
        files.sort();
        files
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
}

pub struct HubServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HubServer {
    /// Serves `repos` on an ephemeral 127.0.0.1 port.
    pub fn start(repos: Vec<HubRepo>) -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let repos = Arc::new(repos);
        let seen_c = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (repos, seen) = (repos.clone(), seen_c.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &repos, &seen);
                });
            }
        });
        HubServer { port, seen }
    }

    /// `HF_ENDPOINT`'s value.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The paths requested so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A 127.0.0.1 address nothing listens on (bound, then released).
pub fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn respond(out: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
}

fn not_found(out: &mut TcpStream, code: &str, message: &str) {
    let body = format!("{{\"error\":\"{message}\"}}");
    respond(
        out,
        "404 Not Found",
        &[
            ("X-Error-Code", code.to_string()),
            ("Content-Type", "application/json".into()),
        ],
        body.as_bytes(),
    );
}

fn serve(stream: TcpStream, repos: &[HubRepo], seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let Request { path, range, .. } = read_request(&stream)?;
    let path = path.replace("%2F", "/");
    seen.lock().unwrap().push(path.clone());
    let mut out = stream;
    let revision_matches = |repo: &HubRepo, rev: &str| rev == "main" || rev == repo.commit;

    if let Some(rest) = path.strip_prefix("/api/models/") {
        let found = repos.iter().find(|repo| {
            rest.strip_prefix(&format!("{}/revision/", repo.id))
                .is_some_and(|rev| revision_matches(repo, rev))
        });
        let Some(repo) = found else {
            not_found(&mut out, "RepoNotFound", "Repository Not Found");
            return Ok(());
        };
        let siblings: Vec<serde_json::Value> = repo
            .files()
            .into_iter()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({
            "id": repo.id, "modelId": repo.id, "sha": repo.commit, "siblings": siblings
        })
        .to_string();
        respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
        return Ok(());
    }

    for repo in repos {
        let Some(rest) = path.strip_prefix(&format!("/{}/resolve/", repo.id)) else {
            continue;
        };
        // REV/FILE; the revision may itself hold slashes only as %2F (decoded above),
        // so match the known revisions.
        let file = ["main", repo.commit.as_str()]
            .iter()
            .find_map(|rev| rest.strip_prefix(&format!("{rev}/")));
        let Some(file) = file else { break };
        let served = !repo.missing.iter().any(|m| m == file)
            && !repo.unlisted.iter().any(|m| m == file)
            && !file.split('/').any(|part| part == ".." || part.is_empty());
        let full = repo.dir.join(file);
        if !served || !full.is_file() {
            break;
        }
        let data = std::fs::read(&full)?;
        let mut hasher = DefaultHasher::new();
        data.hash(&mut hasher);
        let etag = format!("\"{:016x}{:08x}\"", hasher.finish(), data.len());
        let total = data.len();
        let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(spec) => {
                let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = b.parse().map(|b: usize| b + 1).unwrap_or(total);
                (a.min(total), b.min(total))
            }
            None => (0, total),
        };
        let mut headers = vec![
            ("ETag", etag),
            ("X-Repo-Commit", repo.commit.clone()),
            ("Accept-Ranges", "bytes".into()),
        ];
        let status = if range.is_some() {
            headers.push((
                "Content-Range",
                format!("bytes {start}-{}/{total}", end.max(1) - 1),
            ));
            "206 Partial Content"
        } else {
            "200 OK"
        };
        respond(&mut out, status, &headers, &data[start..end]);
        return Ok(());
    }
    not_found(&mut out, "EntryNotFound", "Entry not found");
    Ok(())
}
