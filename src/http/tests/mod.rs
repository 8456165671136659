//! Tests of the HTTP client framing, one file per part: `head` (parse_head, framing),
//! `chunked` (ChunkedDecoder), `request` (write_request), `response` (read_response and the
//! body and line readers over in-memory streams). Here: the readers they share and the
//! error messages.

use super::*;

mod chunked;
mod head;
mod request;
mod response;

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
