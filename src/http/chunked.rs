//! `Transfer-Encoding: chunked`, pure: `ChunkedDecoder` is an explicit state machine fed
//! any split of the body bytes, down to one byte at a time; "incomplete" is a state, not an
//! error. The size line is capped at `MAX_CHUNK_SIZE_LINE` and the trailer at
//! `MAX_HEAD_BYTES`.
//!
//! It never reads a stream, never keeps chunk extensions or trailer fields, and owns no
//! buffer: decoded data is appended to the caller's `Vec`.

use super::{malformed, Error, MAX_CHUNK_SIZE_LINE, MAX_HEAD_BYTES};

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
