//! Standard base64 (RFC 4648 alphabet, `=` padding) as Kubernetes reads it for ConfigMap
//! `binaryData` and Secret `data`: the rules of Go's `encoding/base64.StdEncoding`.
//!
//! Decoding skips `\r` and `\n` anywhere, requires padding to a multiple of four characters,
//! and accepts non-zero bits after the last full byte (Go's `StdEncoding` is not strict);
//! it rejects any other character, other whitespace, misplaced padding and data after the
//! padding. Error offsets are the ones Go reports. It never does I/O and never panics; the
//! output is at most three quarters of the input.

use std::fmt;

/// Why and where an input was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the input, as Go's `CorruptInputError` reports it.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid base64 at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for Error {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const INVALID: u8 = 0xff;
const PAD: u8 = b'=';

const BAD_CHAR: &str = "invalid character";
const BAD_PADDING: &str = "misplaced padding";
const MISSING_PADDING: &str = "input not padded to a multiple of 4 characters";
const TRAILING: &str = "data after padding";

/// Alphabet byte to its 6-bit value, `INVALID` elsewhere.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn is_newline(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

/// Decodes standard padded base64, skipping `\r` and `\n`.
///
/// # Errors
///
/// An [`Error`] at Go's offset for a character outside the alphabet (other whitespace
/// included), misplaced or missing padding, or data after the padding.
pub fn decode(input: &str) -> Result<Vec<u8>, Error> {
    let src = input.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut at = 0;
    while at < src.len() {
        // Fast path: four alphabet characters in a row.
        if let Some(&[a, b, c, d]) = src.get(at..at + 4) {
            let (a, b, c, d) = (
                DECODE[usize::from(a)],
                DECODE[usize::from(b)],
                DECODE[usize::from(c)],
                DECODE[usize::from(d)],
            );
            if (a | b | c | d) < 64 {
                let bits =
                    u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
                out.extend_from_slice(&bits.to_be_bytes()[1..]);
                at += 4;
                continue;
            }
        }
        let (next, done) = decode_quantum(src, at, &mut out)?;
        at = next;
        if done {
            break;
        }
    }
    Ok(out)
}

/// Decodes one group of up to four characters starting at `at`, skipping newlines, the way
/// Go's `decodeQuantum` does. Returns the offset after it and whether the input ended.
fn decode_quantum(src: &[u8], mut at: usize, out: &mut Vec<u8>) -> Result<(usize, bool), Error> {
    let mut sextets = [0u8; 4];
    let mut len = 0;
    let mut done = false;
    while len < 4 {
        let Some(&byte) = src.get(at) else {
            if len == 0 {
                return Ok((at, true));
            }
            return Err(Error {
                offset: at - len,
                reason: MISSING_PADDING,
            });
        };
        at += 1;
        let value = DECODE[usize::from(byte)];
        if value != INVALID {
            sextets[len] = value;
            len += 1;
            continue;
        }
        if is_newline(byte) {
            continue;
        }
        if byte != PAD {
            return Err(Error {
                offset: at - 1,
                reason: BAD_CHAR,
            });
        }
        // Padding: `xx==` or `xxx=`, then only newlines up to the end.
        match len {
            0 | 1 => {
                return Err(Error {
                    offset: at - 1,
                    reason: BAD_PADDING,
                })
            }
            2 => {
                while src.get(at).copied().is_some_and(is_newline) {
                    at += 1;
                }
                match src.get(at) {
                    None => {
                        return Err(Error {
                            offset: src.len(),
                            reason: MISSING_PADDING,
                        })
                    }
                    Some(&PAD) => at += 1,
                    Some(_) => {
                        return Err(Error {
                            offset: at - 1,
                            reason: BAD_PADDING,
                        })
                    }
                }
            }
            _ => {}
        }
        while src.get(at).copied().is_some_and(is_newline) {
            at += 1;
        }
        if at < src.len() {
            return Err(Error {
                offset: at,
                reason: TRAILING,
            });
        }
        done = true;
        break;
    }
    let [a, b, c, d] = sextets;
    let bits = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
    let bytes = bits.to_be_bytes();
    // `len` sextets carry `len - 1` whole bytes; leftover bits are ignored, as in Go.
    out.extend_from_slice(bytes.get(1..len).unwrap_or_default());
    Ok((at, done))
}

/// Encodes with the standard alphabet and `=` padding, without line breaks.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let mut group = [0u8; 3];
        for (slot, &byte) in group.iter_mut().zip(chunk) {
            *slot = byte;
        }
        let bits = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (bits >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_valid_input() {
        let cases: &[(&str, &[u8])] = &[
            ("", b""),
            ("Zg==", b"f"),
            ("Zm8=", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYg==", b"foob"),
            ("Zm9vYmE=", b"fooba"),
            ("Zm9vYmFy", b"foobar"),
            ("AAEC/w==", &[0, 1, 2, 255]),
            ("+/+/", &[0xfb, 0xff, 0xbf]),
            // Newlines and carriage returns are skipped anywhere, as Go does.
            ("Zm9v\nYmFy\n", b"foobar"),
            ("Zm9v\r\nYmFy\r\n", b"foobar"),
            ("\n\nZm\n9v\r", b"foo"),
            ("Zg=\n=", b"f"),
            ("Zg=\r\n=\n", b"f"),
            ("Zg\n==", b"f"),
            ("\n", b""),
            ("\r\n\r\n", b""),
            // Non-zero bits after the last byte are accepted (StdEncoding is not strict).
            ("Zh==", b"f"),
            ("Zm9=", b"fo"),
            ("/x==", &[0xff]),
        ];
        for &(input, expected) in cases {
            assert_eq!(decode(input).as_deref(), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn rejects_invalid_input() {
        // Offsets as Go's CorruptInputError reports them.
        let cases: &[(&str, usize, &str)] = &[
            ("Z", 0, MISSING_PADDING),
            ("Zg", 0, MISSING_PADDING),
            ("Zm9", 0, MISSING_PADDING),
            ("Zm9vY", 4, MISSING_PADDING),
            ("Zm9vYg", 4, MISSING_PADDING),
            ("Zg=", 3, MISSING_PADDING),
            ("Zg=\n", 4, MISSING_PADDING),
            ("=", 0, BAD_PADDING),
            ("====", 0, BAD_PADDING),
            ("Z===", 1, BAD_PADDING),
            ("Zm9v=", 4, BAD_PADDING),
            ("Zg=x", 2, BAD_PADDING),
            ("Zg==Zg==", 4, TRAILING),
            ("Zm8=Zm8=", 4, TRAILING),
            ("Zg==\nx", 5, TRAILING),
            ("Zg===", 4, TRAILING),
            ("Zm9v YmFy", 4, BAD_CHAR),
            ("Zm9v\tYmFy", 4, BAD_CHAR),
            (" Zm9v", 0, BAD_CHAR),
            ("Zm9v-_==", 4, BAD_CHAR),
            ("Zm9v.", 4, BAD_CHAR),
            ("Zm\u{e9}v", 2, BAD_CHAR),
            ("Zm9vYmFy\0", 8, BAD_CHAR),
        ];
        for &(input, offset, reason) in cases {
            assert_eq!(decode(input), Err(Error { offset, reason }), "{input:?}");
        }
    }

    #[test]
    fn encodes() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xbf], "+/+/"),
        ];
        for &(input, expected) in cases {
            assert_eq!(encode(input), expected);
        }
    }

    #[test]
    fn round_trips_every_length() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..600usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let text = encode(&data);
            assert_eq!(text.len(), len.div_ceil(3) * 4);
            assert_eq!(decode(&text), Ok(data.clone()), "length {len}");
            // Wrapped at 76 columns with CRLF, as MIME tools do: still decodes.
            let wrapped: String = text
                .as_bytes()
                .chunks(76)
                .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
                .collect();
            assert_eq!(decode(&wrapped), Ok(data), "wrapped length {len}");
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(
            decode("Zm9v YmFy").unwrap_err().to_string(),
            "invalid base64 at byte 4: invalid character"
        );
    }
}
