//! Plain runs inside JSON strings, eight bytes at a time: `scan_plain` finds where a run of
//! bytes that need no unescaping ends (`"`, `\`, or a control byte), `copy_plain` also
//! copies the run, into a `Stage` that gathers unescaped bytes on the stack before they
//! move into the string.
//!
//! Nothing here knows the JSON grammar beyond those three kinds of byte: no escapes, no
//! UTF-8 validation, no errors; it never reads past the input slice and never panics.

/// Offset of the first byte at or after `at` that ends a plain run inside a string (`"`,
/// `\`, or a control byte below 0x20), or the input length. Scans eight bytes at a time.
#[inline(always)]
pub(super) fn scan_plain(input: &[u8], mut at: usize) -> usize {
    while let Some(chunk) = input.get(at..at + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let found = run_enders(u64::from_le_bytes(bytes));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = input.get(at) {
        if ends_run(byte) {
            return at;
        }
        at += 1;
    }
    at
}

/// [`scan_plain`] that also appends the plain run to `out`, eight bytes at a time.
/// Returns where the run ended.
#[inline(always)]
pub(super) fn copy_plain(input: &[u8], mut at: usize, out: &mut Stage) -> usize {
    while let Some(chunk) = input.get(at..at + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let found = run_enders(u64::from_le_bytes(bytes));
        if found != 0 {
            let plain = (found.trailing_zeros() / 8) as usize;
            out.word(bytes, plain);
            return at + plain;
        }
        out.word(bytes, 8);
        at += 8;
    }
    while let Some(&byte) = input.get(at) {
        if ends_run(byte) {
            return at;
        }
        out.byte(byte);
        at += 1;
    }
    at
}

/// Room on the stack for unescaped bytes on their way into a string.
pub(super) const STAGE: usize = 256;

/// Unescaped bytes on their way into a string: gathered on the stack with fixed-size
/// copies (eight bytes at a time for plain runs, which the compiler inlines) and moved into
/// the string in large pieces, so that the many short runs between escapes (a line of
/// YAML each) cost no copy call and no length bookkeeping of the string each.
pub(super) struct Stage {
    buf: [u8; STAGE],
    len: usize,
    /// The string so far, without what `buf` holds.
    pub(super) out: Vec<u8>,
}

impl Stage {
    pub(super) fn new(out: Vec<u8>) -> Stage {
        Stage {
            buf: [0; STAGE],
            len: 0,
            out,
        }
    }

    /// Appends the first `keep` (at most 8) of `bytes`.
    #[inline(always)]
    pub(super) fn word(&mut self, bytes: [u8; 8], keep: usize) {
        if self.len + 8 > STAGE {
            self.flush();
        }
        if let Some(room) = self.buf.get_mut(self.len..self.len + 8) {
            room.copy_from_slice(&bytes);
            self.len += keep.min(8);
        }
    }

    #[inline(always)]
    pub(super) fn byte(&mut self, byte: u8) {
        if self.len >= STAGE {
            self.flush();
        }
        if let Some(room) = self.buf.get_mut(self.len) {
            *room = byte;
            self.len += 1;
        }
    }

    fn flush(&mut self) {
        self.out
            .extend_from_slice(self.buf.get(..self.len).unwrap_or_default());
        self.len = 0;
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.out
    }
}

/// Whether a byte ends a plain run: `"`, `\` or a control byte below 0x20.
#[inline(always)]
fn ends_run(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// For eight bytes (little-endian), the high bit of each byte that ends a plain run, and
/// possibly of bytes after such a byte: only the lowest flagged byte is exact, which is the
/// only one the callers use.
#[inline(always)]
fn run_enders(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const SPACES: u64 = ONES * 0x20;
    let quote = word ^ QUOTES;
    let backslash = word ^ BACKSLASHES;
    // Per byte, the high bit is set where the byte is zero (after the xor) or below 0x20.
    let found = (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (word.wrapping_sub(SPACES) & !word);
    found & HIGHS
}
