//! A real HTTP/1.1 file server on 127.0.0.1 for the `quarry datasets fetch`
//! tests: GET and HEAD with `Range: bytes=N-` (206, or 416 past the end),
//! 404 for what it does not have, one connection per request; a query string
//! is ignored when finding the file. Faults are
//! asked for per path: cut the body after some bytes (once), stall after
//! the headers, or serve the file with one byte flipped.
//!
//! Hand-written on std::net: the faults (a connection closed mid-body, a
//! server that goes quiet) are what a test server crate makes hard.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http_request::{read_request, Request};

/// What the server does for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Send the headers of the whole file, then only this many bytes, then
    /// close; later requests are served normally.
    CutOnceAfter(usize),
    /// Send the headers and this many bytes, then go quiet (for a minute).
    StallAfter(usize),
    /// Serve the file with the byte at this offset flipped.
    FlipByte(usize),
}

/// One request as the server saw it.
pub type Seen = Request;

pub struct FileServer {
    pub port: u16,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FileServer {
    /// Serves the files below `root` on an ephemeral 127.0.0.1 port.
    pub fn start(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(HashMap::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let (faults_c, seen_c) = (faults.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, faults, seen) = (root.clone(), faults_c.clone(), seen_c.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &faults, &seen);
                });
            }
        });
        FileServer { port, faults, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn fault(&self, path: &str, fault: Fault) {
        let key = format!("/{}", path.trim_start_matches('/'));
        self.faults.lock().unwrap().insert(key, fault);
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    // The query string is not part of the file's name (`tree/main?recursive=true`
    // is served from the file `tree/main`).
    let path = path.split('?').next().unwrap_or(path);
    let relative = Path::new(path.trim_start_matches('/'));
    let safe = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let full = root.join(relative);
    (safe && full.is_file()).then_some(full)
}

fn serve(
    stream: TcpStream,
    root: &Path,
    faults: &Mutex<HashMap<String, Fault>>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let request = read_request(&stream)?;
    seen.lock().unwrap().push(request.clone());
    let Request {
        method,
        path,
        range,
    } = request;
    let mut out = stream;
    let Some(file) = resolve(root, &path) else {
        let body = b"not found\n";
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        return out.write_all(body);
    };
    let mut data = std::fs::read(file)?;
    let fault = {
        let mut faults = faults.lock().unwrap();
        let fault = faults.get(&path).copied();
        if let Some(Fault::CutOnceAfter(_)) = fault {
            faults.remove(&path);
        }
        fault
    };
    if let Some(Fault::FlipByte(at)) = fault {
        data[at] ^= 0x01;
    }
    let total = data.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let head = method == "HEAD";
    let body = match start {
        Some(start) if start >= total => {
            return write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Some(start) => {
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{total}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                total - 1,
                total - start
            )?;
            &data[start..]
        }
        None => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nAccept-Ranges: bytes\r\n\
                 Connection: close\r\n\r\n"
            )?;
            &data[..]
        }
    };
    if head {
        return Ok(());
    }
    match fault {
        Some(Fault::CutOnceAfter(n)) => out.write_all(&body[..n.min(body.len())]),
        Some(Fault::StallAfter(n)) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        _ => out.write_all(body),
    }
}
