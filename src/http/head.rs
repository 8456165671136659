//! Response heads, pure: `parse_head` finds and parses the status line and headers at the
//! start of a buffer ("incomplete" is `Ok(None)`), and `framing` decides from a parsed head
//! how the body ends (RFC 9112, section 6.3). Also the byte classes (`tchar`, field value
//! bytes) that `write_request` checks a request against.
//!
//! Nothing here reads or writes a stream or keeps state between calls.

use super::{find_newline, malformed, Error, MAX_HEADERS, MAX_HEAD_BYTES};

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
pub(super) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
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
pub(super) fn could_be_status_line(buf: &[u8]) -> bool {
    let n = buf.len().min(5);
    buf.get(..n) == b"HTTP/".get(..n)
}

pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field value bytes: visible ASCII, space, tab, and obs-text.
pub(super) fn is_field_byte(b: u8) -> bool {
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
