//! HTTP/1.1 client framing: request writing, response head parsing, body framing, the
//! chunked decoder, and a small blocking response reader over any `Read`.
//!
//! The parsers (`parse_head` and `framing` in `head.rs`, `ChunkedDecoder` in `chunked.rs`)
//! are pure functions over bytes: no I/O, and "incomplete" is an answer, not an error.
//! `write_request` and `Response`, here, are the thin I/O layer on top; they work over any
//! `Read`/`Write` (a `tls::Stream`, or an in-memory reader in tests).
//!
//! Every input is bounded: the response head (`MAX_HEAD_BYTES`), the number of headers and
//! interim responses, the chunk size line (`MAX_CHUNK_SIZE_LINE`), the trailer, the body and
//! each line of a streamed body (limits given by the caller). An early end of the stream is
//! `UnexpectedEof`, never a short success (except for bodies framed by connection close).
//!
//! This module never follows redirects, never decodes content codings (gzip), never reuses
//! a connection (every request says `Connection: close`), never opens sockets and never
//! logs.

use std::fmt;
use std::io::{self, Read, Write};

mod chunked;
mod head;
#[cfg(test)]
mod tests;

pub use chunked::ChunkedDecoder;
pub use head::{framing, parse_head, Framing, Head};

use head::{could_be_status_line, head_end, is_field_byte, is_tchar};

/// Largest response head accepted (status line, headers and the blank line).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest chunk size line accepted, extensions and line ending included.
pub const MAX_CHUNK_SIZE_LINE: usize = 1024;

/// Most header lines in one response head.
const MAX_HEADERS: usize = 256;
/// Most interim (1xx) responses skipped before the final one.
const MAX_INTERIM: usize = 16;
/// Size of one read from the stream.
const READ_SIZE: usize = 32 * 1024;

const USER_AGENT: &str = concat!("envoy-xds-configmap-loader/", env!("CARGO_PKG_VERSION"));

/// What went wrong while writing a request or reading a response.
#[derive(Debug)]
pub enum Error {
    /// Other I/O errors.
    Io(io::Error),
    /// A read or write timed out (`WouldBlock` or `TimedOut` from the stream).
    Timeout,
    /// The connection closed in the middle of: "response head" | "chunk" | "body".
    UnexpectedEof(&'static str),
    /// The message broke the protocol; the text says what was wrong.
    Malformed(String),
    /// A size limit was hit.
    TooLarge { what: &'static str, limit: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "http: i/o error: {e}"),
            Error::Timeout => write!(f, "http: timed out"),
            Error::UnexpectedEof(what) => {
                write!(f, "http: connection closed in the middle of the {what}")
            }
            Error::Malformed(what) => write!(f, "http: {what}"),
            Error::TooLarge { what, limit } => {
                write!(f, "http: {what} larger than the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
            _ => Error::Io(e),
        }
    }
}

fn malformed(what: &str) -> Error {
    Error::Malformed(what.to_string())
}

/// An HTTP/1.1 request to write.
pub struct Request<'a> {
    pub method: &'a str,
    /// Host header value, e.g. "10.0.0.1:443", "[::1]:6443", "kubernetes".
    pub host: &'a str,
    pub path_and_query: &'a str,
    /// Extra headers, e.g. Authorization.
    pub headers: &'a [(&'a str, &'a str)],
    /// Content-Length is sent when the body is non-empty or the method is POST/PUT/PATCH.
    pub body: &'a [u8],
}

/// Writes `req` as one buffer, then flushes.
///
/// Sends Host, User-Agent, `Accept: application/json`, `Accept-Encoding: identity`,
/// `Connection: close`, the extra headers, Content-Length when needed, then the body. A
/// method, target, host or header that would break the message (control characters, CR or
/// LF, a target not starting with '/') is rejected as `Malformed` before anything is written.
pub fn write_request<W: Write>(w: &mut W, req: &Request) -> Result<(), Error> {
    if req.method.is_empty() || !req.method.bytes().all(is_tchar) {
        return Err(malformed("request: bad method"));
    }
    if !req.path_and_query.starts_with('/')
        || !req.path_and_query.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(malformed("request: bad path"));
    }
    if req.host.is_empty() || !req.host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("request: bad host"));
    }
    for (name, value) in req.headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(Error::Malformed(format!(
                "request: bad header name {name:?}"
            )));
        }
        if !value.bytes().all(is_field_byte) {
            // The value is not shown: it can be a credential.
            return Err(Error::Malformed(format!(
                "request: bad value for header {name}"
            )));
        }
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: application/json\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n",
        req.method, req.path_and_query, req.host
    );
    for (name, value) in req.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value.trim_matches([' ', '\t']));
        head.push_str("\r\n");
    }
    if !req.body.is_empty() || matches!(req.method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(req.body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Index of the first b'\n' in `hay`, eight bytes at a time.
fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    const NL: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let words = hay.chunks_exact(8);
    let tail = words.remainder();
    for (i, word) in words.enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_ne_bytes(bytes) ^ NL;
        // Nonzero exactly when some byte of x is zero, i.e. some byte was '\n'.
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return word.iter().position(|&b| b == b'\n').map(|p| i * 8 + p);
        }
    }
    let base = hay.len() - tail.len();
    tail.iter().position(|&b| b == b'\n').map(|p| base + p)
}

/// A response whose head has been read; the body is read on demand.
pub struct Response<S> {
    pub head: Head,
    stream: S,
    /// Raw bytes from the stream; `buf[pos..end]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The stream returned end of file.
    eof: bool,
    framing: Framing,
    /// Body bytes still expected for `Framing::Length`.
    remaining: u64,
    decoder: ChunkedDecoder,
    /// The body has ended cleanly.
    done: bool,
    /// Decoded body bytes not yet returned by `read_line`: `line[start..]`, of which
    /// `line[start..scanned]` is known to hold no '\n'.
    line: Vec<u8>,
    start: usize,
    scanned: usize,
}

/// Reads one chunk of raw bytes into `buf[end..]`, retrying on `Interrupted`.
fn read_some<S: Read>(stream: &mut S, buf: &mut [u8]) -> Result<usize, Error> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads and parses the response head (at most `MAX_HEAD_BYTES`), skipping up to 16
/// interim 1xx responses (101 is final), and decides the body framing. Bytes read past the
/// head are kept for the body.
pub fn read_response<S: Read>(mut stream: S, request_was_head: bool) -> Result<Response<S>, Error> {
    let mut buf = vec![0u8; READ_SIZE];
    let (mut start, mut end, mut scanned) = (0usize, 0usize, 0usize);
    let mut interim = 0;
    loop {
        let pending = buf.get(start..end).unwrap_or_default();
        if !could_be_status_line(pending) {
            return Err(malformed("bad status line"));
        }
        if head_end(pending, scanned).is_some() {
            if let Some((head, used)) = parse_head(pending)? {
                if (100..200).contains(&head.status) && head.status != 101 {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(Error::Malformed(format!(
                            "more than {MAX_INTERIM} interim responses"
                        )));
                    }
                    start += used;
                    scanned = 0;
                    continue;
                }
                let framing = framing(&head, request_was_head)?;
                let remaining = match framing {
                    Framing::Length(n) => n,
                    _ => 0,
                };
                return Ok(Response {
                    head,
                    stream,
                    buf,
                    pos: start + used,
                    end,
                    eof: false,
                    framing,
                    remaining,
                    decoder: ChunkedDecoder::new(),
                    done: framing == Framing::Empty || framing == Framing::Length(0),
                    line: Vec::new(),
                    start: 0,
                    scanned: 0,
                });
            }
        }
        if pending.len() > MAX_HEAD_BYTES {
            return Err(Error::TooLarge {
                what: "response head",
                limit: MAX_HEAD_BYTES,
            });
        }
        // A line end can straddle reads: rescan the last two bytes next time.
        scanned = pending.len().saturating_sub(2);
        if buf.len() - end < READ_SIZE / 2 {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            buf.resize(end + READ_SIZE, 0);
        }
        let n = read_some(&mut stream, buf.get_mut(end..).unwrap_or_default())?;
        if n == 0 {
            return Err(Error::UnexpectedEof("response head"));
        }
        end += n;
    }
}

impl<S: Read> Response<S> {
    /// The underlying stream, e.g. to change its read timeout between reads.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Appends at most `room` (at least 1) decoded body bytes to `out`. Returns false at
    /// the clean end of the body, true when bytes were appended.
    fn fill(&mut self, out: &mut Vec<u8>, room: usize) -> Result<bool, Error> {
        let room = room.max(1);
        loop {
            if self.done {
                return Ok(false);
            }
            if self.pos >= self.end {
                if self.eof {
                    return match self.framing {
                        Framing::Length(_) => Err(Error::UnexpectedEof("body")),
                        Framing::Chunked => Err(Error::UnexpectedEof("chunk")),
                        Framing::Empty | Framing::Close => {
                            self.done = true;
                            Ok(false)
                        }
                    };
                }
                if self.buf.len() < READ_SIZE {
                    self.buf.resize(READ_SIZE, 0);
                }
                let n = read_some(&mut self.stream, &mut self.buf)?;
                self.pos = 0;
                self.end = n;
                self.eof = n == 0;
                continue;
            }
            let raw = self.buf.get(self.pos..self.end).unwrap_or_default();
            match self.framing {
                Framing::Empty => {
                    self.done = true;
                }
                Framing::Length(_) => {
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(raw.len())
                        .min(room);
                    out.extend_from_slice(raw.get(..n).unwrap_or_default());
                    self.pos += n;
                    self.remaining -= n as u64;
                    self.done = self.remaining == 0;
                    return Ok(true);
                }
                Framing::Chunked => {
                    let before = out.len();
                    let input = raw.get(..room.min(raw.len())).unwrap_or_default();
                    self.pos += self.decoder.decode(input, out)?;
                    self.done = self.decoder.is_done();
                    if out.len() > before {
                        return Ok(true);
                    }
                }
                Framing::Close => {
                    let n = raw.len().min(room);
                    out.extend_from_slice(raw.get(..n).unwrap_or_default());
                    self.pos += n;
                    return Ok(true);
                }
            }
        }
    }

    /// Reads the whole body (what `read_line` has not returned yet).
    ///
    /// `TooLarge { what: "body" }` as soon as the body would exceed `limit` bytes (at once
    /// when a Content-Length says so); an early end of the stream is `UnexpectedEof` for
    /// Content-Length and chunked bodies; a body framed by connection close ends at EOF.
    pub fn read_body(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let too_large = || Error::TooLarge {
            what: "body",
            limit,
        };
        let mut out = self.line.split_off(self.start.min(self.line.len()));
        self.line.clear();
        self.start = 0;
        self.scanned = 0;
        if out.len() > limit {
            return Err(too_large());
        }
        if let Framing::Length(_) = self.framing {
            let want = usize::try_from(self.remaining).unwrap_or(usize::MAX);
            if want > limit - out.len() {
                return Err(too_large());
            }
            out.reserve_exact(want);
        }
        loop {
            let room = limit.saturating_add(1).saturating_sub(out.len());
            if !self.fill(&mut out, room)? {
                break;
            }
            if out.len() > limit {
                return Err(too_large());
            }
        }
        Ok(out)
    }

    /// The next line of the body, split on b'\n' wherever chunk boundaries fall, without
    /// the '\n' and a trailing '\r'. Blank lines are skipped. `Ok(None)` at the clean end
    /// of the body, after a final unterminated line. A line longer than `limit` bytes is
    /// `TooLarge { what: "line" }`, found after buffering at most `limit + 2` bytes; an end
    /// of the stream inside a chunk is `UnexpectedEof("chunk")`.
    pub fn read_line(&mut self, limit: usize) -> Result<Option<Vec<u8>>, Error> {
        let Some((start, end)) = self.next_range(limit)? else {
            return Ok(None);
        };
        if start == 0 && self.start == self.line.len() {
            // The line fills the buffer: hand it over without copying.
            let mut line = std::mem::take(&mut self.line);
            line.truncate(end);
            self.start = 0;
            self.scanned = 0;
            return Ok(Some(line));
        }
        Ok(Some(self.line.get(start..end).unwrap_or_default().to_vec()))
    }

    /// [`read_line`](Response::read_line), lent from the response's line buffer instead of
    /// handed over: the buffer, grown to the longest line so far, serves every line of the
    /// body, so a stream of large lines costs no allocation (and no fresh pages) per line.
    pub fn next_line(&mut self, limit: usize) -> Result<Option<&[u8]>, Error> {
        let range = self.next_range(limit)?;
        Ok(range.map(|(start, end)| self.line.get(start..end).unwrap_or_default()))
    }

    /// Finds the next line in the line buffer, reading more as needed: its range in
    /// `self.line`, which `self.start` now points past.
    fn next_range(&mut self, limit: usize) -> Result<Option<(usize, usize)>, Error> {
        let too_large = || Error::TooLarge {
            what: "line",
            limit,
        };
        loop {
            let found = self
                .line
                .get(self.scanned..)
                .and_then(find_newline)
                .map(|i| self.scanned + i);
            if let Some(nl) = found {
                let mut end = nl;
                if nl > self.start && self.line.get(nl - 1) == Some(&b'\r') {
                    end -= 1;
                }
                let start = self.start;
                self.start = nl + 1;
                self.scanned = nl + 1;
                if end <= start {
                    continue;
                }
                if end - start > limit {
                    return Err(too_large());
                }
                return Ok(Some((start, end)));
            }
            // No '\n' in the pending bytes: make room at the front, then read more.
            if self.start > 0 {
                self.line.drain(..self.start.min(self.line.len()));
                self.start = 0;
            }
            self.scanned = self.line.len();
            let pending = self.line.len();
            if pending > limit.saturating_add(1) {
                return Err(too_large());
            }
            let mut line = std::mem::take(&mut self.line);
            if line.capacity() == 0 {
                line.reserve(READ_SIZE.min(limit.saturating_add(2)));
            }
            let more = self.fill(&mut line, limit.saturating_add(2).saturating_sub(pending));
            self.line = line;
            if !more? {
                // The final, unterminated line: all that is pending (`start` is 0 here).
                let mut end = self.line.len();
                if self.line.last() == Some(&b'\r') {
                    end -= 1;
                }
                if end == 0 || end > limit {
                    self.line.clear();
                    self.scanned = 0;
                    return if end == 0 { Ok(None) } else { Err(too_large()) };
                }
                self.start = self.line.len();
                self.scanned = self.line.len();
                return Ok(Some((0, end)));
            }
        }
    }
}
