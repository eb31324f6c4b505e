//! The request side of the loopback HTTP servers of the tests (http_server.rs
//! for dataset downloads, hub_server.rs for the Hugging Face hub): the request
//! line and the one header they act on, `Range`.

#![allow(dead_code)] // each server reads its own subset of the fields

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

/// One HTTP/1.1 request: method, path (query string included) and `Range`.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

/// Reads a request's line and headers from `stream` (the body, if any, is left).
pub fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    Ok(Request {
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("/").to_string(),
        range,
    })
}
