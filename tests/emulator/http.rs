//! HTTP/1.1 for the emulator: reading one request (head, `Content-Length` or chunked body,
//! `Expect: 100-continue`), decoding query strings, and framing responses and chunks.
//!
//! Every read is bounded (head bytes, body bytes, chunk-size digits); parsing functions are
//! pure over bytes. It never keeps a connection alive: one request per connection.

use std::io::{Read, Write};

/// Largest request head (request line and headers) accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Bytes of an oversized body read and thrown away before answering 413, so the client sees
/// the answer rather than a reset.
const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// One parsed request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection closed or failed before a full head arrived.
    Closed,
    /// The head is malformed (answer 400) or too large (answer 431).
    BadHead(u16, String),
    /// The body is larger than the limit (answer 413); the head is kept for the record.
    BodyTooLarge(Box<Request>),
    /// The body is malformed or cut short.
    BadBody(Box<Request>, String),
}

/// Where the head ends (index after `\r\n\r\n`), or `None` while incomplete.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parses a complete head (ending in `\r\n\r\n`) into a request without body.
pub(crate) fn parse_head(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| String::from("request head is not utf-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {line:?}"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("malformed method {method:?}"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("unsupported protocol {version:?}"));
    }
    if !target.starts_with('/') {
        return Err(format!("malformed request target {target:?}"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(format!("malformed header line {l:?}"));
        };
        if k.is_empty() || k.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("malformed header name {k:?}"));
        }
        headers.push((k.to_string(), v.trim_matches([' ', '\t']).to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// Reads one request from `s`: head, then the body it announces (at most `max_body` bytes).
pub(crate) fn read_request<S: Read + Write>(
    s: &mut S,
    max_body: usize,
) -> Result<Request, ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut tmp = [0u8; 4096];
    let end = loop {
        if let Some(e) = head_end(&buf) {
            break e;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(ReadError::BadHead(
                431,
                String::from("request head too large"),
            ));
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(tmp.get(..n).unwrap_or_default()),
        }
    };
    let mut req =
        parse_head(buf.get(..end).unwrap_or_default()).map_err(|e| ReadError::BadHead(400, e))?;
    let mut rest: Vec<u8> = buf.get(end..).unwrap_or_default().to_vec();
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = match req.header("content-length") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ReadError::BadHead(
                    400,
                    format!("malformed content-length {v:?}"),
                ))
            }
        },
    };
    let expects_continue = req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if chunked {
        if expects_continue {
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            let _ = s.flush();
        }
        match read_chunked(s, &mut rest, max_body) {
            Ok(body) => req.body = body,
            Err(None) => return Err(ReadError::BodyTooLarge(Box::new(req))),
            Err(Some(e)) => return Err(ReadError::BadBody(Box::new(req), e)),
        }
    } else if let Some(n) = length {
        if n > max_body {
            if !expects_continue {
                drain(s, n.saturating_sub(rest.len()).min(MAX_DRAIN_BYTES));
            }
            return Err(ReadError::BodyTooLarge(Box::new(req)));
        }
        if expects_continue && rest.len() < n {
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            let _ = s.flush();
        }
        while rest.len() < n {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => {
                    return Err(ReadError::BadBody(
                        Box::new(req),
                        String::from("body cut short"),
                    ))
                }
                Ok(k) => rest.extend_from_slice(tmp.get(..k).unwrap_or_default()),
            }
        }
        rest.truncate(n);
        req.body = rest;
    }
    Ok(req)
}

fn drain<S: Read>(s: &mut S, mut left: usize) {
    let mut tmp = [0u8; 16 * 1024];
    while left > 0 {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(k) => left = left.saturating_sub(k),
        }
    }
}

/// Decodes a chunked body. `Err(None)` when it exceeds `max`, `Err(Some(why))` when malformed.
fn read_chunked<S: Read>(
    s: &mut S,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, Option<String>> {
    let mut body = Vec::new();
    let mut pos = 0usize;
    let mut tmp = [0u8; 4096];
    let mut fill = |buf: &mut Vec<u8>| -> Result<(), Option<String>> {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => Err(Some(String::from("chunked body cut short"))),
            Ok(k) => {
                buf.extend_from_slice(tmp.get(..k).unwrap_or_default());
                Ok(())
            }
        }
    };
    loop {
        // Size line.
        let line_end = loop {
            if let Some(p) = buf
                .get(pos..)
                .and_then(|b| b.windows(2).position(|w| w == b"\r\n"))
            {
                break pos + p;
            }
            if buf.len() - pos > 1024 {
                return Err(Some(String::from("chunk size line too long")));
            }
            fill(buf)?;
        };
        let line = std::str::from_utf8(buf.get(pos..line_end).unwrap_or_default()).unwrap_or("");
        let digits = line.split(';').next().unwrap_or("").trim();
        if digits.is_empty() || digits.len() > 16 {
            return Err(Some(format!("malformed chunk size {digits:?}")));
        }
        let size = usize::from_str_radix(digits, 16)
            .map_err(|_| Some(format!("malformed chunk size {digits:?}")))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers until the empty line; none are used.
            loop {
                if let Some(p) = buf
                    .get(pos..)
                    .and_then(|b| b.windows(2).position(|w| w == b"\r\n"))
                {
                    if p == 0 {
                        return Ok(body);
                    }
                    pos += p + 2;
                    continue;
                }
                if buf.len() - pos > 8192 {
                    return Err(Some(String::from("chunked trailers too long")));
                }
                fill(buf)?;
            }
        }
        if body.len().saturating_add(size) > max {
            return Err(None);
        }
        while buf.len() < pos + size + 2 {
            fill(buf)?;
        }
        body.extend_from_slice(buf.get(pos..pos + size).unwrap_or_default());
        if buf.get(pos + size..pos + size + 2) != Some(b"\r\n".as_slice()) {
            return Err(Some(String::from("chunk not followed by crlf")));
        }
        pos += size + 2;
        // Keep the buffer small.
        buf.drain(..pos);
        pos = 0;
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (and `+` as space when `plus` is set, as in query strings).
pub(crate) fn percent_decode(s: &str, plus: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) else {
                    return Err(format!(
                        "invalid URL escape {:?}",
                        s.get(i..(i + 3).min(s.len())).unwrap_or("%")
                    ));
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Decodes a query string into (name, value) pairs in order, as Go's `url.ParseQuery`.
pub(crate) fn parse_query(q: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in q.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Ok(out)
}

/// The reason phrase of a status code.
pub(crate) fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// A response head: status line, the given headers, `Connection: close`, blank line.
pub(crate) fn head(code: u16, headers: &[(&str, String)]) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {code} {}\r\n", reason_phrase(code));
    for (k, v) in headers {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s.push_str("Connection: close\r\n\r\n");
    s.into_bytes()
}

/// One chunk of a chunked body (`data` must not be empty: that is the final chunk).
pub(crate) fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The final zero-length chunk.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
