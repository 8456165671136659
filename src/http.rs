//! HTTP/1.1 client framing: request writing, response head parsing, body framing, the
//! chunked decoder, and a small blocking response reader over any `Read`.
//!
//! The parsers (`parse_head`, `framing`, `ChunkedDecoder`) are pure functions over bytes:
//! no I/O, and "incomplete" is an answer, not an error. `write_request` and `Response` are
//! the thin I/O layer on top; they work over any `Read`/`Write` (a `tls::Stream`, or an
//! in-memory reader in tests).
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

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    /// Header names as sent, values without surrounding whitespace, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of the first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Position just past the blank line that ends a head in `buf`, searching for line ends at
/// or after `from`. Lines end with LF, optionally preceded by CR.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = buf.get(i..).and_then(find_newline) {
        let nl = i + off;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// False when `buf` can no longer become a status line ("HTTP/").
fn could_be_status_line(buf: &[u8]) -> bool {
    let n = buf.len().min(5);
    buf.get(..n) == b"HTTP/".get(..n)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field value bytes: visible ASCII, space, tab, and obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_status_line(line: &[u8]) -> Result<(u16, String), Error> {
    let bad = || malformed("bad status line");
    let rest = match line {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1', b' ', rest @ ..] => rest,
        _ => return Err(bad()),
    };
    let (code, reason) = match rest {
        [a, b, c] => ([*a, *b, *c], &[][..]),
        [a, b, c, b' ', reason @ ..] => ([*a, *b, *c], reason),
        _ => return Err(bad()),
    };
    if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
        return Err(bad());
    }
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if !reason.iter().all(|&b| is_field_byte(b)) {
        return Err(bad());
    }
    Ok((status, String::from_utf8_lossy(reason).into_owned()))
}

/// Parses a response head at the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (more bytes are needed), and
/// `Ok(Some((head, consumed)))` once the blank line that ends it is in `buf`. Lines may end
/// in CRLF or a bare LF; obsolete line folding is replaced by a space; anything else odd (a
/// bare CR, a header without a colon, whitespace before the colon, control characters, a
/// version other than HTTP/1.0 or HTTP/1.1) is `Malformed`. A head longer than
/// `MAX_HEAD_BYTES` is `TooLarge`, whether complete or not.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Error> {
    let too_large = Error::TooLarge {
        what: "response head",
        limit: MAX_HEAD_BYTES,
    };
    if !could_be_status_line(buf) {
        return Err(malformed("bad status line"));
    }
    let end = match head_end(buf, 0) {
        Some(end) => end,
        None if buf.len() > MAX_HEAD_BYTES => return Err(too_large),
        None => return Ok(None),
    };
    if end > MAX_HEAD_BYTES {
        return Err(too_large);
    }
    let text = buf
        .get(..end)
        .ok_or_else(|| malformed("bad response head"))?;
    let mut lines = text.split(|&b| b == b'\n').map(|line| match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    });
    let status_line = lines.next().unwrap_or_default();
    if status_line.contains(&b'\r') {
        return Err(malformed("bare cr in status line"));
    }
    let (status, reason) = parse_status_line(status_line)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            // The blank line that ends the head (and the empty piece after its LF).
            break;
        }
        if line.contains(&b'\r') {
            return Err(malformed("bare cr in header line"));
        }
        if let [b' ' | b'\t', ..] = line {
            // Obsolete line folding: the line continues the previous header's value.
            let value = trim_ows(line);
            if !value.iter().all(|&b| is_field_byte(b)) {
                return Err(malformed("bad header value"));
            }
            let Some((_, prev)) = headers.last_mut() else {
                return Err(malformed("folded header line before the first header"));
            };
            if !value.is_empty() {
                if !prev.is_empty() {
                    prev.push(' ');
                }
                prev.push_str(&String::from_utf8_lossy(value));
            }
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| malformed("header line without a colon"))?;
        let (name, value) = (line.get(..colon), line.get(colon + 1..));
        let (Some(name), Some(value)) = (name, value) else {
            return Err(malformed("header line without a colon"));
        };
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(malformed("bad header name"));
        }
        let value = trim_ows(value);
        if !value.iter().all(|&b| is_field_byte(b)) {
            return Err(malformed("bad header value"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(Error::Malformed(format!(
                "more than {MAX_HEADERS} headers in the response head"
            )));
        }
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(Some((
        Head {
            status,
            reason,
            headers,
        },
        end,
    )))
}

/// How the end of a response body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

/// Decides how the body of a response is framed (RFC 9112, section 6.3).
///
/// A response to HEAD, and 1xx/204/304 responses, have no body. `Transfer-Encoding` with
/// `chunked` as the last coding beats `Content-Length`; any other transfer coding is
/// rejected, since this client decodes none. More than one `Content-Length` value (repeated
/// header or list), even with equal values, or a value that is not plain digits, is
/// `Malformed`. Otherwise the body runs until the connection closes.
pub fn framing(head: &Head, request_was_head: bool) -> Result<Framing, Error> {
    if request_was_head || (100..200).contains(&head.status) || matches!(head.status, 204 | 304) {
        return Ok(Framing::Empty);
    }
    let codings = head
        .header_values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim_matches([' ', '\t']))
        .filter(|c| !c.is_empty());
    if head.header("transfer-encoding").is_some() {
        let codings: Vec<&str> = codings.collect();
        return match codings.split_last() {
            Some((last, rest))
                if last.eq_ignore_ascii_case("chunked")
                    && rest.iter().all(|c| c.eq_ignore_ascii_case("identity")) =>
            {
                Ok(Framing::Chunked)
            }
            _ => Err(Error::Malformed(format!(
                "unsupported transfer-encoding {:?}",
                codings.join(", ").chars().take(100).collect::<String>()
            ))),
        };
    }
    let mut lengths = head
        .header_values("content-length")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim_matches([' ', '\t']));
    let Some(first) = lengths.next() else {
        return Ok(Framing::Close);
    };
    if lengths.next().is_some() {
        return Err(malformed("duplicate content-length"));
    }
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("bad content-length"));
    }
    first
        .parse::<u64>()
        .map(Framing::Length)
        .map_err(|_| malformed("bad content-length"))
}

/// Where the chunk size line parser is within the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizePhase {
    /// Hex digits of the size.
    Digits,
    /// Whitespace after the digits.
    Space,
    /// A chunk extension (ignored).
    Extension,
    /// A CR was seen; LF must follow.
    Cr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// The size line: value so far, number of digits, bytes of the line so far.
    Size {
        value: u64,
        digits: usize,
        len: usize,
        phase: SizePhase,
    },
    /// Chunk data still to come.
    Data { remaining: u64 },
    /// The CRLF after chunk data: `cr` tells whether the CR was seen.
    DataEnd { cr: bool },
    /// Trailer lines after the last chunk (ignored): total bytes so far, and whether the
    /// current line has content.
    Trailer { total: usize, content: bool },
    /// The final blank line has been consumed.
    Done,
}

/// Incremental decoder for `Transfer-Encoding: chunked`.
///
/// Accepts any split of the input, down to one byte at a time. Chunk extensions and
/// trailers are skipped; lines may end in CRLF or a bare LF. The size line is capped at
/// `MAX_CHUNK_SIZE_LINE` bytes and the trailer at `MAX_HEAD_BYTES`.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

const SIZE_START: ChunkState = ChunkState::Size {
    value: 0,
    digits: 0,
    len: 0,
    phase: SizePhase::Digits,
};

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder { state: SIZE_START }
    }

    /// True once the last chunk and the trailer have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes as much of `input` as possible, appending chunk data to `out`; returns the
    /// number of bytes consumed, which is all of `input` unless the message ended inside it.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    let data = rest.get(..n).unwrap_or_default();
                    out.extend_from_slice(data);
                    pos += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        ChunkState::DataEnd { cr: false }
                    } else {
                        ChunkState::Data { remaining }
                    };
                }
                _ => {
                    // Framing bytes, handled one at a time: they are few.
                    let b = rest.first().copied().unwrap_or_default();
                    self.state = self.step(b)?;
                    pos += 1;
                }
            }
        }
        Ok(pos)
    }

    /// The state after one framing byte.
    fn step(&self, b: u8) -> Result<ChunkState, Error> {
        let bad_size = || malformed("bad chunk size line");
        match self.state {
            ChunkState::Size {
                value,
                digits,
                len,
                phase,
            } => {
                let len = len + 1;
                if len > MAX_CHUNK_SIZE_LINE {
                    return Err(Error::TooLarge {
                        what: "chunk size line",
                        limit: MAX_CHUNK_SIZE_LINE,
                    });
                }
                let next = |phase| ChunkState::Size {
                    value,
                    digits,
                    len,
                    phase,
                };
                match (phase, b) {
                    (SizePhase::Digits, _) if b.is_ascii_hexdigit() => {
                        let d = char::from(b).to_digit(16).unwrap_or_default();
                        let value = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .ok_or_else(|| malformed("chunk size overflows"))?;
                        Ok(ChunkState::Size {
                            value,
                            digits: digits + 1,
                            len,
                            phase,
                        })
                    }
                    (_, _) if digits == 0 => Err(malformed("bad chunk size")),
                    (SizePhase::Digits | SizePhase::Space, b' ' | b'\t') => {
                        Ok(next(SizePhase::Space))
                    }
                    (SizePhase::Digits | SizePhase::Space, b';') => Ok(next(SizePhase::Extension)),
                    (SizePhase::Cr, b'\n')
                    | (SizePhase::Digits | SizePhase::Space | SizePhase::Extension, b'\n') => {
                        Ok(if value == 0 {
                            ChunkState::Trailer {
                                total: 0,
                                content: false,
                            }
                        } else {
                            ChunkState::Data { remaining: value }
                        })
                    }
                    (SizePhase::Digits | SizePhase::Space | SizePhase::Extension, b'\r') => {
                        Ok(next(SizePhase::Cr))
                    }
                    (SizePhase::Extension, _) => Ok(next(SizePhase::Extension)),
                    _ => Err(bad_size()),
                }
            }
            ChunkState::DataEnd { cr } => match (cr, b) {
                (false, b'\r') => Ok(ChunkState::DataEnd { cr: true }),
                (_, b'\n') => Ok(SIZE_START),
                _ => Err(malformed("missing line end after chunk data")),
            },
            ChunkState::Trailer { total, content } => {
                let total = total + 1;
                if total > MAX_HEAD_BYTES {
                    return Err(Error::TooLarge {
                        what: "chunked trailer",
                        limit: MAX_HEAD_BYTES,
                    });
                }
                Ok(match b {
                    b'\n' if !content => ChunkState::Done,
                    b'\n' => ChunkState::Trailer {
                        total,
                        content: false,
                    },
                    b'\r' => ChunkState::Trailer { total, content },
                    _ => ChunkState::Trailer {
                        total,
                        content: true,
                    },
                })
            }
            // `decode` handles these states itself.
            ChunkState::Data { .. } | ChunkState::Done => Ok(self.state),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `data` in pieces of at most `piece` bytes, then EOF.
    struct Pieces {
        data: Vec<u8>,
        pos: usize,
        piece: usize,
        reads: usize,
    }

    impl Pieces {
        fn new(data: &[u8], piece: usize) -> Self {
            Pieces {
                data: data.to_vec(),
                pos: 0,
                piece,
                reads: 0,
            }
        }
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let rest = &self.data[self.pos..];
            let n = rest.len().min(self.piece).min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// A reader that returns `data` and then fails with `kind`.
    struct ThenFail {
        inner: Pieces,
        kind: io::ErrorKind,
    }

    impl Read for ThenFail {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.inner.read(buf)? {
                0 => Err(io::Error::new(self.kind, "test")),
                n => Ok(n),
            }
        }
    }

    const PIECES: [usize; 5] = [1, 2, 7, 64, 1 << 20];

    fn kind(e: &Error) -> String {
        match e {
            Error::Io(e) => format!("io:{:?}", e.kind()),
            Error::Timeout => "timeout".into(),
            Error::UnexpectedEof(what) => format!("eof:{what}"),
            Error::Malformed(_) => "malformed".into(),
            Error::TooLarge { what, limit } => format!("large:{what}:{limit}"),
        }
    }

    #[test]
    fn parse_head_table() {
        // (input, expected: Ok((status, reason, headers, consumed)) or Err(kind))
        type Want = Result<(u16, &'static str, Vec<(&'static str, &'static str)>), &'static str>;
        let cases: Vec<(&[u8], Want)> = vec![
            (b"HTTP/1.1 200 OK\r\n\r\n", Ok((200, "OK", vec![]))),
            (
                b"HTTP/1.0 404 Not Found\r\n\r\n",
                Ok((404, "Not Found", vec![])),
            ),
            (b"HTTP/1.1 200\r\n\r\n", Ok((200, "", vec![]))),
            (b"HTTP/1.1 200 \r\n\r\n", Ok((200, "", vec![]))),
            (b"HTTP/1.1 599 x y  z\r\n\r\n", Ok((599, "x y  z", vec![]))),
            (b"HTTP/1.1 200 OK\n\n", Ok((200, "OK", vec![]))),
            (
                b"HTTP/1.1 200 OK\nA: 1\r\nB:2\n\r\n",
                Ok((200, "OK", vec![("A", "1"), ("B", "2")])),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type:  application/json \t\r\nX-Empty:\r\n\r\n",
                Ok((
                    200,
                    "OK",
                    vec![("Content-Type", "application/json"), ("X-Empty", "")],
                )),
            ),
            (
                b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\tc\r\nY: d\r\n\r\n",
                Ok((200, "OK", vec![("X-Folded", "a b c"), ("Y", "d")])),
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a:b: c\r\n\r\n",
                Ok((200, "OK", vec![("X", "a:b: c")])),
            ),
            (
                b"HTTP/1.1 200 caf\xc3\xa9\r\nX: \xff\r\n\r\n",
                Ok((200, "caf\u{e9}", vec![("X", "\u{fffd}")])),
            ),
            (
                b"HTTP/1.1 200 OK\r\n folded-first\r\n\r\n",
                Err("malformed"),
            ),
            (b"HTTP/2 200 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.2 200 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 20 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 2000 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 099 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1  200 OK\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 200 O\x01K\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 200 OK\r\n: v\r\n\r\n", Err("malformed")),
            (
                b"HTTP/1.1 200 OK\r\nBad\x7fName: v\r\n\r\n",
                Err("malformed"),
            ),
            (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", Err("malformed")),
            (b"HTTP/1.1 200 OK\rX: 1\r\n\r\n", Err("malformed")),
            (b"http/1.1 200 OK\r\n\r\n", Err("malformed")),
            (b"\r\nHTTP/1.1 200 OK\r\n\r\n", Err("malformed")),
            (b"\x16\x03\x01\x00", Err("malformed")),
            (b"<html>", Err("malformed")),
        ];
        for (input, want) in cases {
            let got = parse_head(input);
            match (got, want) {
                (Ok(Some((head, used))), Ok((status, reason, headers))) => {
                    assert_eq!(used, input.len(), "{input:?}");
                    assert_eq!(head.status, status, "{input:?}");
                    assert_eq!(head.reason, reason, "{input:?}");
                    let got: Vec<(&str, &str)> = head
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    assert_eq!(got, headers, "{input:?}");
                }
                (Err(e), Err(k)) => assert_eq!(kind(&e), k, "{input:?}: {e}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn parse_head_leaves_the_body() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let (head, used) = parse_head(input).unwrap().unwrap();
        assert_eq!(&input[used..], b"hi");
        assert_eq!(head.header("content-length"), Some("2"));
        assert_eq!(head.header("CONTENT-LENGTH"), Some("2"));
        assert_eq!(head.header("content-type"), None);
    }

    #[test]
    fn header_lookup_returns_the_first() {
        let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nX: 1\r\nx: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.header("X"), Some("1"));
        assert_eq!(head.headers.len(), 2);
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let heads: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.0 404 Not Found\nA: b\n\n",
            b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\r\n",
            b"HTTP/1.1 204\r\n\r\n",
        ];
        for head in heads {
            for n in 0..head.len() {
                assert!(
                    matches!(parse_head(&head[..n]), Ok(None)),
                    "prefix {:?}",
                    String::from_utf8_lossy(&head[..n])
                );
            }
            assert!(matches!(parse_head(head), Ok(Some((_, n))) if n == head.len()));
        }
    }

    #[test]
    fn head_size_limit() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() <= MAX_HEAD_BYTES {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let want = format!("large:response head:{MAX_HEAD_BYTES}");
        // Incomplete but already too long.
        assert_eq!(kind(&parse_head(&big).unwrap_err()), want);
        big.extend_from_slice(b"\r\n");
        assert_eq!(kind(&parse_head(&big).unwrap_err()), want);
        // Exactly at the limit is accepted, one byte more is not.
        let mut edge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        edge.resize(MAX_HEAD_BYTES - 4, b'a');
        edge.extend_from_slice(b"\r\n\r\n");
        assert_eq!(edge.len(), MAX_HEAD_BYTES);
        assert!(matches!(parse_head(&edge), Ok(Some(_))));
        edge.insert(20, b'a');
        assert_eq!(kind(&parse_head(&edge).unwrap_err()), want);
        // Same through read_response.
        let mut r = big.clone();
        r.extend_from_slice(b"body");
        let err = read_response(Pieces::new(&r, 4096), false).err().unwrap();
        assert_eq!(kind(&err), want);
    }

    #[test]
    fn header_count_limit() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..MAX_HEADERS {
            head.extend_from_slice(b"A: b\r\n");
        }
        let mut over = head.clone();
        head.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_head(&head).unwrap().unwrap().0.headers.len(),
            MAX_HEADERS
        );
        over.extend_from_slice(b"A: b\r\n\r\n");
        assert_eq!(kind(&parse_head(&over).unwrap_err()), "malformed");
    }

    fn head_with(status: u16, headers: &[(&str, &str)]) -> Head {
        Head {
            status,
            reason: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn framing_table() {
        use Framing::*;
        let te = "Transfer-Encoding";
        let cl = "Content-Length";
        // (status, request was HEAD, headers, framing or error kind)
        type Case<'a> = (u16, bool, Vec<(&'a str, &'a str)>, Result<Framing, &'a str>);
        let cases: Vec<Case> = vec![
            (200, false, vec![], Ok(Close)),
            (200, false, vec![(cl, "10")], Ok(Length(10))),
            (200, false, vec![(cl, "0")], Ok(Length(0))),
            (200, false, vec![(cl, " 007 ")], Ok(Length(7))),
            (
                200,
                false,
                vec![("content-length", "18446744073709551615")],
                Ok(Length(u64::MAX)),
            ),
            (
                200,
                false,
                vec![(cl, "18446744073709551616")],
                Err("malformed"),
            ),
            (200, false, vec![(cl, "-1")], Err("malformed")),
            (200, false, vec![(cl, "+1")], Err("malformed")),
            (200, false, vec![(cl, "1 2")], Err("malformed")),
            (200, false, vec![(cl, "0x10")], Err("malformed")),
            (200, false, vec![(cl, "")], Err("malformed")),
            (200, false, vec![(cl, "5"), (cl, "6")], Err("malformed")),
            (200, false, vec![(cl, "5"), (cl, "5")], Err("malformed")),
            (200, false, vec![(cl, "5, 5")], Err("malformed")),
            (200, false, vec![(te, "chunked")], Ok(Chunked)),
            (200, false, vec![(te, "Chunked")], Ok(Chunked)),
            (200, false, vec![(te, "chunked"), (cl, "10")], Ok(Chunked)),
            (200, false, vec![(cl, "10"), (te, "chunked")], Ok(Chunked)),
            (200, false, vec![(cl, "x"), (te, "chunked")], Ok(Chunked)),
            (200, false, vec![(te, "identity, chunked")], Ok(Chunked)),
            (
                200,
                false,
                vec![(te, "identity"), (te, "chunked")],
                Ok(Chunked),
            ),
            (200, false, vec![(te, "gzip, chunked")], Err("malformed")),
            (200, false, vec![(te, "chunked, gzip")], Err("malformed")),
            (200, false, vec![(te, "gzip")], Err("malformed")),
            (200, false, vec![(te, "")], Err("malformed")),
            (200, true, vec![(te, "chunked")], Ok(Empty)),
            (200, true, vec![(cl, "100")], Ok(Empty)),
            (204, false, vec![(cl, "100")], Ok(Empty)),
            (304, false, vec![(te, "chunked")], Ok(Empty)),
            (101, false, vec![], Ok(Empty)),
            (199, false, vec![], Ok(Empty)),
            (205, false, vec![], Ok(Close)),
            (404, false, vec![(cl, "3")], Ok(Length(3))),
            (500, false, vec![], Ok(Close)),
        ];
        for (status, was_head, headers, want) in cases {
            let head = head_with(status, &headers);
            let got = framing(&head, was_head);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{status} {headers:?}"),
                (Err(e), Err(k)) => assert_eq!(kind(e), *k, "{status} {headers:?}"),
                _ => panic!("{status} {headers:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Decodes `input` split at every point in `splits`, checking that consumption stops at
    /// the end of the message.
    fn decode_split(input: &[u8], splits: &[usize]) -> Result<(Vec<u8>, usize, bool), Error> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut bounds: Vec<usize> = splits.to_vec();
        bounds.push(input.len());
        for b in bounds {
            while pos < b && !d.is_done() {
                let n = d.decode(&input[pos..b], &mut out)?;
                assert!(n > 0 || d.is_done(), "no progress");
                pos += n;
            }
        }
        Ok((out, pos, d.is_done()))
    }

    #[test]
    fn chunked_table() {
        // (input, Ok((data, bytes left unconsumed after the message)), or the error kind)
        type Want = Result<(&'static [u8], usize), &'static str>;
        let cases: Vec<(&[u8], Want)> = vec![
            (b"0\r\n\r\n", Ok((b"", 0))),
            (b"5\r\nhello\r\n0\r\n\r\n", Ok((b"hello", 0))),
            (b"5\r\nhello\r\n0\r\n\r\nEXTRA", Ok((b"hello", 5))),
            (b"5\nhello\n0\n\n", Ok((b"hello", 0))),
            (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", Ok((b"abcde", 0))),
            (b"A\r\n0123456789\r\n0\r\n\r\n", Ok((b"0123456789", 0))),
            (b"a\r\n0123456789\r\n0\r\n\r\n", Ok((b"0123456789", 0))),
            (b"0005\r\nhello\r\n000\r\n\r\n", Ok((b"hello", 0))),
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", Ok((b"hello", 0))),
            (b"5 ; a=\"b;c\"\r\nhello\r\n0;x\r\n\r\n", Ok((b"hello", 0))),
            (b"5  \r\nhello\r\n0\r\n\r\n", Ok((b"hello", 0))),
            (
                b"5\r\nhello\r\n0\r\nExpires: never\r\nX: y\r\n\r\n",
                Ok((b"hello", 0)),
            ),
            (b"5\r\nhello\r\n0\r\nX: y\n\nHTTP", Ok((b"hello", 4))),
            (b"2\r\n\r\n\r\n0\r\n\r\n", Ok((b"\r\n", 0))),
            (b"\r\n", Err("malformed")),
            (b"x\r\n", Err("malformed")),
            (b";ext\r\n", Err("malformed")),
            (b" 5\r\nhello\r\n", Err("malformed")),
            (b"-5\r\n", Err("malformed")),
            (b"5x\r\n", Err("malformed")),
            (b"5 5\r\n", Err("malformed")),
            (b"5\rX", Err("malformed")),
            (b"5\r\nhelloX", Err("malformed")),
            (b"5\r\nhello\rX", Err("malformed")),
            (b"10000000000000000\r\n", Err("malformed")),
        ];
        for (input, want) in cases {
            let whole = decode_split(input, &[]);
            let bytewise = decode_split(input, &(1..input.len()).collect::<Vec<_>>());
            for got in [whole, bytewise] {
                match (&got, &want) {
                    (Ok((out, used, done)), Ok((data, extra))) => {
                        assert!(done, "{input:?}");
                        assert_eq!(out, data, "{input:?}");
                        assert_eq!(*used, input.len() - extra, "{input:?}");
                    }
                    (Err(e), Err(k)) => assert_eq!(kind(e), *k, "{input:?}"),
                    _ => panic!("{input:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn chunked_every_split_point() {
        let input: &[u8] =
            b"4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: x\r\n\r\n";
        let want: &[u8] = b"Wikipedia in\r\n\r\nchunks.";
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (out, used, done) = decode_split(input, &[i, j]).unwrap();
                assert!(done);
                assert_eq!(out, want, "split at {i},{j}");
                assert_eq!(used, input.len());
            }
        }
    }

    #[test]
    fn chunked_incomplete_is_not_done() {
        let input: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
        for n in 0..input.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            assert_eq!(d.decode(&input[..n], &mut out).unwrap(), n);
            assert!(!d.is_done(), "prefix {n}");
        }
    }

    #[test]
    fn chunked_size_line_limit() {
        for (ext_len, ok) in [
            (MAX_CHUNK_SIZE_LINE - 4, true),
            (MAX_CHUNK_SIZE_LINE - 3, false),
        ] {
            // "5;" + extension + "\r\n" is ext_len + 4 bytes.
            let mut input = b"5;".to_vec();
            input.resize(2 + ext_len, b'x');
            input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
            let got = decode_split(&input, &[]);
            if ok {
                assert_eq!(got.unwrap().0, b"hello");
            } else {
                let e = got.unwrap_err();
                assert_eq!(
                    kind(&e),
                    format!("large:chunk size line:{MAX_CHUNK_SIZE_LINE}")
                );
            }
        }
        // Endless leading zeros hit the same cap.
        let zeros = vec![b'0'; 5000];
        let e = decode_split(&zeros, &[]).unwrap_err();
        assert_eq!(
            kind(&e),
            format!("large:chunk size line:{MAX_CHUNK_SIZE_LINE}")
        );
    }

    #[test]
    fn chunked_trailer_limit() {
        let mut input = b"0\r\n".to_vec();
        while input.len() < MAX_HEAD_BYTES + 10 {
            input.extend_from_slice(b"X: yyyyyyyyyyyyyyyyyyyyyyyyyy\r\n");
        }
        let e = decode_split(&input, &[]).unwrap_err();
        assert_eq!(kind(&e), format!("large:chunked trailer:{MAX_HEAD_BYTES}"));
    }

    #[test]
    fn find_newline_matches_naive() {
        let mut seed = 0x2545f4914f6cdd1du64;
        for len in 0..80 {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly bytes next to '\n' in value, to stress the bit trick.
                        [b'\n', 0x0b, 0x09, 0x8a, 0x0a ^ 0x80, b'a', 0, 0xff][(seed % 8) as usize]
                    })
                    .collect();
                let naive = data.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&data), naive, "{data:?}");
            }
        }
    }

    #[test]
    fn write_request_format() {
        let mut out = Vec::new();
        let req = Request {
            method: "GET",
            host: "[::1]:6443",
            path_and_query: "/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=5",
            headers: &[("Authorization", "Bearer abc.def")],
            body: b"",
        };
        write_request(&mut out, &req).unwrap();
        let want = format!(
            "GET /api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=5 HTTP/1.1\r\n\
             Host: [::1]:6443\r\nUser-Agent: envoy-xds-configmap-loader/{}\r\n\
             Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n\
             Authorization: Bearer abc.def\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn write_request_content_length() {
        let cases: [(&str, &[u8], Option<&str>); 5] = [
            ("GET", b"", None),
            ("POST", b"", Some("Content-Length: 0\r\n\r\n")),
            ("PUT", b"{}", Some("Content-Length: 2\r\n\r\n{}")),
            ("PATCH", b"[1]", Some("Content-Length: 3\r\n\r\n[1]")),
            ("DELETE", b"x", Some("Content-Length: 1\r\n\r\nx")),
        ];
        for (method, body, want) in cases {
            let mut out = Vec::new();
            let req = Request {
                method,
                host: "h",
                path_and_query: "/",
                headers: &[],
                body,
            };
            write_request(&mut out, &req).unwrap();
            let text = String::from_utf8(out).unwrap();
            match want {
                Some(tail) => assert!(text.ends_with(tail), "{method}: {text}"),
                None => {
                    assert!(!text.contains("Content-Length"), "{method}");
                    assert!(text.ends_with("Connection: close\r\n\r\n"));
                }
            }
        }
    }

    /// Counts writes and flushes.
    #[derive(Default)]
    struct Recorder {
        writes: usize,
        flushes: usize,
        data: Vec<u8>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    #[test]
    fn write_request_is_one_write_then_flush() {
        let mut rec = Recorder::default();
        let req = Request {
            method: "POST",
            host: "h",
            path_and_query: "/x",
            headers: &[("Content-Type", "application/json")],
            body: b"{\"a\":1}",
        };
        write_request(&mut rec, &req).unwrap();
        assert_eq!((rec.writes, rec.flushes), (1, 1));
        assert!(rec.data.ends_with(b"\r\n\r\n{\"a\":1}"));
    }

    #[test]
    fn write_request_rejects_injection() {
        let cases: [(&str, &str, &str, (&str, &str)); 9] = [
            ("GE T", "h", "/", ("A", "b")),
            ("", "h", "/", ("A", "b")),
            ("GET", "h\r\nX: y", "/", ("A", "b")),
            ("GET", "", "/", ("A", "b")),
            ("GET", "h", "/a b", ("A", "b")),
            ("GET", "h", "x", ("A", "b")),
            ("GET", "h", "/", ("A\r\nB", "b")),
            ("GET", "h", "/", ("A", "b\r\nInjected: 1")),
            ("GET", "h", "/", ("A:", "b")),
        ];
        for (method, host, path, header) in cases {
            let mut rec = Recorder::default();
            let headers = [header];
            let req = Request {
                method,
                host,
                path_and_query: path,
                headers: &headers,
                body: b"",
            };
            let e = write_request(&mut rec, &req).unwrap_err();
            assert_eq!(
                kind(&e),
                "malformed",
                "{method:?} {host:?} {path:?} {header:?}"
            );
            assert_eq!(rec.writes, 0);
        }
    }

    #[test]
    fn write_timeout_is_timeout() {
        struct Blocked;
        impl Write for Blocked {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let req = Request {
            method: "GET",
            host: "h",
            path_and_query: "/",
            headers: &[],
            body: b"",
        };
        assert!(matches!(
            write_request(&mut Blocked, &req),
            Err(Error::Timeout)
        ));
    }

    fn body_of(raw: &[u8], piece: usize, limit: usize) -> Result<Vec<u8>, Error> {
        let mut resp = read_response(Pieces::new(raw, piece), false)?;
        resp.read_body(limit)
    }

    #[test]
    fn read_body_table() {
        // (raw response, body limit, body or error kind)
        type Case<'a> = (&'a [u8], usize, Result<&'a [u8], String>);
        let cases: Vec<Case> = vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100, Ok(b"hello")),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", 100, Ok(b"hello")),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100, Ok(b"")),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 5, Ok(b"hello")),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello!",
                5,
                Err("large:body:5".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                100,
                Err("large:body:100".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
                100,
                Err("eof:body".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                100,
                Err("eof:body".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                100,
                Ok(b"hello"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                5,
                Ok(b"hello"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n",
                5,
                Err("large:body:5".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nl",
                100,
                Err("eof:chunk".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n",
                100,
                Err("eof:chunk".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n0\r\n",
                100,
                Err("eof:chunk".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                100,
                Err("malformed".into()),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nuntil close", 100, Ok(b"until close")),
            (b"HTTP/1.1 200 OK\r\n\r\n", 100, Ok(b"")),
            (b"HTTP/1.0 200 OK\r\n\r\n12345", 5, Ok(b"12345")),
            (b"HTTP/1.0 200 OK\r\n\r\n123456", 5, Err("large:body:5".into())),
            (b"HTTP/1.1 204 No Content\r\n\r\nignored", 100, Ok(b"")),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 100, Ok(b"")),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                100,
                Ok(b"ok"),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Le", 100, Err("eof:response head".into())),
            (b"", 100, Err("eof:response head".into())),
            (b"SSH-2.0-OpenSSH\r\n", 100, Err("malformed".into())),
        ];
        for (raw, limit, want) in cases {
            for piece in PIECES {
                let got = body_of(raw, piece, limit);
                match (&got, &want) {
                    (Ok(g), Ok(w)) => assert_eq!(g, w, "{raw:?} piece {piece}"),
                    (Err(e), Err(k)) => assert_eq!(&kind(e), k, "{raw:?} piece {piece}"),
                    _ => panic!("{raw:?} piece {piece}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn head_response_has_no_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let mut resp = read_response(Pieces::new(raw, 3), true).unwrap();
        assert_eq!(resp.read_body(100).unwrap(), b"");
        assert_eq!(resp.head.status, 200);
    }

    #[test]
    fn too_many_interim_responses() {
        let mut raw = Vec::new();
        for _ in 0..=MAX_INTERIM {
            raw.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        raw.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        let e = read_response(Pieces::new(&raw, 1000), false).err().unwrap();
        assert_eq!(kind(&e), "malformed");
        // One fewer is fine.
        let ok = &raw[b"HTTP/1.1 100 Continue\r\n\r\n".len()..];
        let resp = read_response(Pieces::new(ok, 1000), false).unwrap();
        assert_eq!(resp.head.status, 200);
    }

    #[test]
    fn switching_protocols_is_final() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        let mut resp = read_response(Pieces::new(raw, 5), false).unwrap();
        assert_eq!(resp.head.status, 101);
        assert_eq!(resp.read_body(100).unwrap(), b"");
    }

    #[test]
    fn read_errors_map_to_timeout_and_io() {
        let cases = [
            (io::ErrorKind::WouldBlock, "timeout"),
            (io::ErrorKind::TimedOut, "timeout"),
            (io::ErrorKind::ConnectionReset, "io:ConnectionReset"),
        ];
        for (k, want) in cases {
            // During the head.
            let r = ThenFail {
                inner: Pieces::new(b"HTTP/1.1 200 OK\r\n", 4),
                kind: k,
            };
            assert_eq!(kind(&read_response(r, false).err().unwrap()), want);
            // During the body.
            let r = ThenFail {
                inner: Pieces::new(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                    4,
                ),
                kind: k,
            };
            let mut resp = read_response(r, false).unwrap();
            assert_eq!(kind(&resp.read_body(100).unwrap_err()), want);
        }
    }

    #[test]
    fn interrupted_reads_are_retried() {
        struct Interrupting(Pieces, bool);
        impl Read for Interrupting {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 = !self.1;
                if self.1 {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                self.0.read(buf)
            }
        }
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let mut resp = read_response(Interrupting(Pieces::new(raw, 2), false), false).unwrap();
        assert_eq!(resp.read_body(10).unwrap(), b"abc");
    }

    fn lines_of(raw: &[u8], piece: usize, limit: usize) -> (Vec<Vec<u8>>, Option<String>) {
        let handed = lines_read(raw, piece, limit, false);
        // Lent lines are the same lines, with the same end.
        assert_eq!(lines_read(raw, piece, limit, true), handed, "next_line");
        handed
    }

    fn lines_read(
        raw: &[u8],
        piece: usize,
        limit: usize,
        lent: bool,
    ) -> (Vec<Vec<u8>>, Option<String>) {
        let mut resp = match read_response(Pieces::new(raw, piece), false) {
            Ok(r) => r,
            Err(e) => return (vec![], Some(kind(&e))),
        };
        let next = |resp: &mut Response<Pieces>| match lent {
            false => resp.read_line(limit),
            true => resp.next_line(limit).map(|l| l.map(<[u8]>::to_vec)),
        };
        let mut lines = Vec::new();
        for _ in 0..1000 {
            match next(&mut resp) {
                Ok(Some(l)) => lines.push(l),
                Ok(None) => {
                    // The end is sticky.
                    assert!(matches!(next(&mut resp), Ok(None)));
                    return (lines, None);
                }
                Err(e) => return (lines, Some(kind(&e))),
            }
        }
        panic!("read_line does not end");
    }

    fn chunked(chunks: &[&[u8]], end: bool) -> Vec<u8> {
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in chunks {
            raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            raw.extend_from_slice(c);
            raw.extend_from_slice(b"\r\n");
        }
        if end {
            raw.extend_from_slice(b"0\r\n\r\n");
        }
        raw
    }

    #[test]
    fn read_line_table() {
        let a: &[u8] = b"{\"type\":\"ADDED\"}";
        let b: &[u8] = b"{\"type\":\"BOOKMARK\"}";
        // (raw response, line limit, lines, then the error kind or None for a clean end)
        type Case<'a> = (Vec<u8>, usize, Vec<&'a [u8]>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            // One event per chunk, as real servers send.
            (
                chunked(
                    &[b"{\"type\":\"ADDED\"}\n", b"{\"type\":\"BOOKMARK\"}\n"],
                    true,
                ),
                100,
                vec![a, b],
                None,
            ),
            // An event spanning chunks.
            (
                chunked(&[b"{\"type\":", b"\"ADDED\"", b"}\n"], true),
                100,
                vec![a],
                None,
            ),
            // Several events in one chunk, and a line end split from its line.
            (
                chunked(
                    &[b"{\"type\":\"ADDED\"}\n{\"type\":\"BOOKMARK\"}", b"\n"],
                    true,
                ),
                100,
                vec![a, b],
                None,
            ),
            // CRLF line ends, blank lines, whitespace-only lines kept.
            (
                chunked(&[b"\r\n\n{\"type\":\"ADDED\"}\r\n\r\n", b"\n \n"], true),
                100,
                vec![a, b" "],
                None,
            ),
            // A final unterminated line.
            (chunked(&[b"x\ny"], true), 100, vec![b"x", b"y"], None),
            (chunked(&[b"x\ny\r"], true), 100, vec![b"x", b"y"], None),
            (chunked(&[b"x\n\r"], true), 100, vec![b"x"], None),
            (chunked(&[], true), 100, vec![], None),
            // A bare CR inside a line stays.
            (chunked(&[b"a\rb\n"], true), 100, vec![b"a\rb"], None),
            // Limits: exactly at the limit, with and without CR; one more.
            (
                chunked(&[b"12345\n", b"123\n"], true),
                5,
                vec![b"12345", b"123"],
                None,
            ),
            (
                chunked(&[b"12345\r\n", b"123\n"], true),
                5,
                vec![b"12345", b"123"],
                None,
            ),
            (chunked(&[b"12345"], true), 5, vec![b"12345"], None),
            (
                chunked(&[b"1\n123456\n"], true),
                5,
                vec![b"1"],
                Some("large:line:5"),
            ),
            (
                chunked(&[b"123456\r\n"], true),
                5,
                vec![],
                Some("large:line:5"),
            ),
            (chunked(&[b"123456"], true), 5, vec![], Some("large:line:5")),
            (
                chunked(&[b"1234", b"5678", b"9\n"], true),
                5,
                vec![],
                Some("large:line:5"),
            ),
            // Truncated streams.
            (
                chunked(&[b"x\n", b"partial"], false),
                100,
                vec![b"x"],
                Some("eof:chunk"),
            ),
            (
                chunked(&[b"x\n"], false)[..50].to_vec(),
                100,
                vec![],
                Some("eof:chunk"),
            ),
            // Other framings.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\na\nb\r\nc".to_vec(),
                100,
                vec![b"a", b"b"],
                Some("eof:body"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\na\nb\r\ncTAIL".to_vec(),
                100,
                vec![b"a", b"b", b"c"],
                None,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\na\nb\r\nc".to_vec(),
                100,
                vec![b"a", b"b", b"c"],
                None,
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\na\n".to_vec(),
                100,
                vec![],
                None,
            ),
        ];
        for (raw, limit, want_lines, want_err) in cases {
            for piece in PIECES {
                let (lines, err) = lines_of(&raw, piece, limit);
                let ctx = format!("{:?} piece {piece}", String::from_utf8_lossy(&raw));
                assert_eq!(lines, want_lines, "{ctx}");
                assert_eq!(err.as_deref(), want_err, "{ctx}");
            }
        }
    }

    #[test]
    fn read_line_bounds_its_buffer() {
        // A 10 MB line without a newline, limit 1000: the error comes early, after reading
        // little more than the limit.
        let body = vec![b'x'; 10 << 20];
        let raw = chunked(&[&body], true);
        let mut resp = read_response(Pieces::new(&raw, 64), false).unwrap();
        let e = resp.read_line(1000).unwrap_err();
        assert_eq!(kind(&e), "large:line:1000");
        assert!(
            resp.get_ref().pos < 4096,
            "read {} bytes",
            resp.get_ref().pos
        );
        assert!(resp.line.capacity() < 4096);
    }

    #[test]
    fn read_line_big_events() {
        // Events of about 1 MiB, split over many chunks, several per read.
        let mut events = Vec::new();
        let mut stream = Vec::new();
        for i in 0..5u8 {
            let mut ev = format!("{{\"type\":\"MODIFIED\",\"n\":{i},\"pad\":\"").into_bytes();
            ev.resize(ev.len() + (1 << 20) - 100 + usize::from(i), b'a' + i);
            ev.extend_from_slice(b"\"}");
            stream.extend_from_slice(&ev);
            stream.extend_from_slice(b"\n");
            events.push(ev);
        }
        let pieces: Vec<&[u8]> = stream.chunks(7000).collect();
        let raw = chunked(&pieces, true);
        for piece in [1000, 65536, 1 << 22] {
            let mut resp = read_response(Pieces::new(&raw, piece), false).unwrap();
            for ev in &events {
                assert_eq!(
                    resp.read_line(2 << 20).unwrap().as_deref(),
                    Some(ev.as_slice())
                );
            }
            assert_eq!(resp.read_line(2 << 20).unwrap(), None);
        }
    }

    #[test]
    fn next_line_reuses_its_buffer() {
        // Events of about 1 MiB, one per chunk: after the first, the buffer serves them all.
        let events: Vec<Vec<u8>> = (0..4u8)
            .map(|i| {
                let mut ev = vec![b'a' + i; (1 << 20) - 1000];
                ev.push(b'\n');
                ev
            })
            .collect();
        let pieces: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        let raw = chunked(&pieces, true);
        let mut resp = read_response(Pieces::new(&raw, 65536), false).unwrap();
        let mut buffers = Vec::new();
        for ev in &events {
            let line = resp.next_line(2 << 20).unwrap().unwrap();
            assert_eq!(line, &ev[..ev.len() - 1]);
            buffers.push(resp.line.as_ptr());
        }
        assert_eq!(resp.next_line(2 << 20).unwrap(), None);
        // It grows while it learns the size (a line and the start of the next), then stays.
        assert!(
            buffers.windows(2).skip(1).all(|w| w[0] == w[1]),
            "{buffers:?}"
        );
        assert!(resp.line.capacity() <= 4 << 20, "{}", resp.line.capacity());
    }

    #[test]
    fn read_line_then_read_body() {
        let raw = chunked(&[b"first\nsecond\n", b"rest"], true);
        for piece in PIECES {
            let mut resp = read_response(Pieces::new(&raw, piece), false).unwrap();
            assert_eq!(resp.read_line(100).unwrap().unwrap(), b"first");
            assert_eq!(resp.read_body(100).unwrap(), b"second\nrest");
            let mut resp = read_response(Pieces::new(&raw, piece), false).unwrap();
            assert_eq!(resp.next_line(100).unwrap().unwrap(), b"first");
            assert_eq!(resp.read_body(100).unwrap(), b"second\nrest");
        }
    }

    #[test]
    fn reads_are_large() {
        let body = vec![b'x'; 1 << 20];
        let mut raw =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        raw.extend_from_slice(&body);
        let mut resp = read_response(Pieces::new(&raw, usize::MAX), false).unwrap();
        assert_eq!(resp.read_body(2 << 20).unwrap().len(), 1 << 20);
        // 32 KiB reads: the head read plus 32 body reads, plus slack.
        assert!(resp.get_ref().reads <= 34, "{} reads", resp.get_ref().reads);
    }

    #[test]
    fn error_messages() {
        let cases: Vec<(Error, &str)> = vec![
            (Error::Timeout, "http: timed out"),
            (
                Error::UnexpectedEof("chunk"),
                "http: connection closed in the middle of the chunk",
            ),
            (malformed("bad status line"), "http: bad status line"),
            (
                Error::TooLarge {
                    what: "body",
                    limit: 10,
                },
                "http: body larger than the limit of 10 bytes",
            ),
            (
                Error::from(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset",
                )),
                "http: i/o error: connection reset",
            ),
            (
                Error::from(io::Error::from(io::ErrorKind::TimedOut)),
                "http: timed out",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
