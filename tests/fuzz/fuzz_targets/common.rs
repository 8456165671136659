//! Helpers shared by the fuzz targets: a reader that hands out its bytes in pieces of
//! input-chosen sizes, a chunked encoder, and the reference ("oracle") models that the
//! streaming readers of `http` are checked against.
//!
//! The oracles are written from the documented behaviour, as simply as possible, over the
//! whole input at once; the code under test works incrementally over a stream. Nothing here
//! does I/O beyond reading from memory.

#![allow(dead_code)]

use envoy_xds_configmap_loader::http::{self, ChunkedDecoder, Framing, Head};
use std::io::{self, Read};

/// A `Read` over a byte slice that returns at most `sizes[i % sizes.len()]` bytes on the
/// i-th call, so the boundaries between reads move with the input.
pub struct Pieces<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: Vec<usize>,
    call: usize,
}

impl<'a> Pieces<'a> {
    pub fn new(data: &'a [u8], sizes: &[usize]) -> Self {
        let sizes = if sizes.is_empty() {
            vec![usize::MAX]
        } else {
            sizes.to_vec()
        };
        Pieces {
            data,
            pos: 0,
            sizes,
            call: 0,
        }
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.call % self.sizes.len()];
        self.call += 1;
        let rest = &self.data[self.pos..];
        let n = rest.len().min(buf.len()).min(size);
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Read sizes from configuration bytes: mostly small (1..=16) so that every boundary is
/// tried, sometimes medium (up to about 12 KiB), and 0xff for "as much as fits".
pub fn piece_sizes(cfg: &[u8]) -> Vec<usize> {
    cfg.iter()
        .map(|&b| match b {
            0xff => usize::MAX,
            0x00..=0x7f => 1 + usize::from(b % 16),
            _ => 1 + usize::from(b - 0x80) * 97,
        })
        .collect()
}

/// Splits `input` into its first `n` bytes (zero-padded when the input is shorter) and the
/// rest.
pub fn split_cfg<const N: usize>(input: &[u8]) -> ([u8; N], &[u8]) {
    let mut cfg = [0u8; N];
    let n = input.len().min(N);
    cfg[..n].copy_from_slice(&input[..n]);
    (cfg, &input[n..])
}

/// A coarse name for an `http::Error`, to compare outcomes of two ways of reading.
pub fn kind(e: &http::Error) -> String {
    match e {
        http::Error::Io(e) => format!("io:{:?}", e.kind()),
        http::Error::Timeout => "timeout".into(),
        http::Error::UnexpectedEof(what) => format!("eof:{what}"),
        http::Error::Malformed(_) => "malformed".into(),
        http::Error::TooLarge { what, limit } => format!("large:{what}:{limit}"),
    }
}

/// Encodes `payload` as a chunked body: chunk sizes cycle through `sizes` (each at least
/// 1), with a choice of size-line styles from `style` bits, then the last chunk and the
/// final blank line.
pub fn chunk_encode(payload: &[u8], sizes: &[usize], style: u8) -> Vec<u8> {
    let eol: &[u8] = if style & 1 == 0 { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(payload.len() + 64);
    let mut rest = payload;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        if style & 2 == 0 {
            out.extend_from_slice(format!("{size:x}").as_bytes());
        } else {
            out.extend_from_slice(format!("{:04X}", size).as_bytes());
        }
        if style & 4 != 0 {
            out.extend_from_slice(b" ;name=value");
        }
        out.extend_from_slice(eol);
        out.extend_from_slice(chunk);
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(b"0");
    out.extend_from_slice(eol);
    if style & 8 != 0 {
        out.extend_from_slice(b"X-Trailer: 1");
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    out
}

/// Outcome of a `ChunkedDecoder` run: decoded bytes, then consumed bytes and whether the
/// decoder is done, or the error text.
#[derive(Debug, PartialEq, Eq)]
pub struct ChunkedRun {
    pub out: Vec<u8>,
    pub result: Result<(usize, bool), String>,
}

/// Feeds `input` to a fresh decoder in pieces of the given sizes (cycled), stopping at the
/// first error or once the decoder is done.
pub fn run_chunked(input: &[u8], sizes: &[usize]) -> ChunkedRun {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() && !decoder.is_done() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, input.len() - pos);
        i += 1;
        let piece = &input[pos..pos + size];
        match decoder.decode(piece, &mut out) {
            Ok(n) => {
                assert!(n <= piece.len(), "decode consumed {n} of {}", piece.len());
                assert!(
                    n == piece.len() || decoder.is_done(),
                    "decode stopped at {n} of {} without being done",
                    piece.len()
                );
                pos += n;
            }
            Err(e) => {
                return ChunkedRun {
                    out,
                    result: Err(e.to_string()),
                }
            }
        }
    }
    if decoder.is_done() {
        // The end is sticky: more input is left alone.
        let mut more = Vec::new();
        assert_eq!(decoder.decode(b"1\r\nx\r\n", &mut more).ok(), Some(0));
        assert!(more.is_empty());
    }
    ChunkedRun {
        out,
        result: Ok((pos, decoder.is_done())),
    }
}

/// The chunked decoder must give the same answer for any split of its input: one piece,
/// one byte at a time, and the given piece sizes.
pub fn check_chunked_splits(input: &[u8], sizes: &[usize]) -> ChunkedRun {
    let whole = run_chunked(input, &[usize::MAX]);
    let bytewise = run_chunked(input, &[1]);
    assert_eq!(whole, bytewise, "chunked: one piece vs byte by byte");
    let pieces = run_chunked(input, sizes);
    assert_eq!(whole, pieces, "chunked: one piece vs pieces {sizes:?}");
    assert!(whole.out.len() <= input.len());
    whole
}

/// The head, where its body starts, and its framing, as `read_response` must find them:
/// interim 1xx responses (not 101) skipped, at most 16 of them.
pub fn oracle_head(raw: &[u8]) -> Result<(Head, usize, Framing), String> {
    let mut start = 0;
    let mut interim = 0;
    loop {
        let rest = &raw[start..];
        match http::parse_head(rest) {
            Err(e) => return Err(kind(&e)),
            Ok(None) => return Err("eof:response head".into()),
            Ok(Some((head, used))) => {
                assert!(used > 0 && used <= rest.len(), "head used {used}");
                if (100..200).contains(&head.status) && head.status != 101 {
                    interim += 1;
                    if interim > 16 {
                        return Err("malformed".into());
                    }
                    start += used;
                    continue;
                }
                let framing = http::framing(&head, false).map_err(|e| kind(&e))?;
                return Ok((head, start + used, framing));
            }
        }
    }
}

/// The body `read_body(limit)` must return for `rest` (the bytes after the head), with
/// `limit` larger than `rest` for chunked and close-delimited bodies.
pub fn oracle_body(framing: Framing, rest: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let too_large = || format!("large:body:{limit}");
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Length(n) => {
            if n > limit as u64 {
                Err(too_large())
            } else if (rest.len() as u64) < n {
                Err("eof:body".into())
            } else {
                Ok(rest[..n as usize].to_vec())
            }
        }
        Framing::Close => {
            if rest.len() > limit {
                Err(too_large())
            } else {
                Ok(rest.to_vec())
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut out = Vec::new();
            match decoder.decode(rest, &mut out) {
                Err(e) => Err(kind(&e)),
                Ok(_) if out.len() > limit => Err(too_large()),
                Ok(_) if decoder.is_done() => Ok(out),
                Ok(_) => Err("eof:chunk".into()),
            }
        }
    }
}

/// One line `read_line` must return: its bytes and the body offset just past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub end: usize,
}

/// The lines `read_line(limit)` must return for a complete `body`, then whether it must
/// fail with `TooLarge` (true) or end cleanly (false).
pub fn oracle_lines(body: &[u8], limit: usize) -> (Vec<Line>, bool) {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let (seg, end) = match body[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (&body[start..start + i], start + i + 1),
            None => (&body[start..], body.len()),
        };
        start = end;
        let seg = seg.strip_suffix(b"\r").unwrap_or(seg);
        if seg.is_empty() {
            continue;
        }
        if seg.len() > limit {
            return (lines, true);
        }
        lines.push(Line {
            bytes: seg.to_vec(),
            end,
        });
    }
    (lines, false)
}

/// Calls `read_line(limit)` until the end or an error, with a bound on the number of calls
/// (a line takes at least one body byte, so `max_lines` calls must be enough). Checks that
/// the end is sticky and that every line is within the limit and holds no '\n'.
pub fn read_all_lines<S: Read>(
    resp: &mut http::Response<S>,
    limit: usize,
    max_lines: usize,
    mut each: impl FnMut(&[u8]),
) -> (Vec<Vec<u8>>, Result<(), http::Error>) {
    let mut lines = Vec::new();
    for _ in 0..=max_lines {
        match resp.read_line(limit) {
            Ok(Some(line)) => {
                assert!(!line.is_empty(), "read_line returned an empty line");
                assert!(line.len() <= limit, "line of {} > {limit}", line.len());
                assert!(!line.contains(&b'\n'), "line holds a newline");
                each(&line);
                lines.push(line);
            }
            Ok(None) => {
                assert!(
                    matches!(resp.read_line(limit), Ok(None)),
                    "the end of read_line is not sticky"
                );
                return (lines, Ok(()));
            }
            Err(e) => return (lines, Err(e)),
        }
    }
    panic!("read_line returned more than {max_lines} lines");
}
