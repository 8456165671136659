//! Strict JSON (RFC 8259) reader for Kubernetes API bodies and watch events.
//!
//! [`parse`] turns one document (a ConfigMap, a list, a Secret, a `Status`, a watch event
//! line; compact or pretty-printed) into a [`Value`] tree that borrows the input wherever it
//! can: numbers are kept as their raw text, and strings without escapes are slices of the
//! input. Strings with escapes are unescaped into owned strings, copying runs of plain bytes
//! in bulk.
//!
//! It never does I/O, never panics on any input, never recurses (containers are tracked on
//! an explicit stack bounded by [`MAX_DEPTH`]), and never accepts what RFC 8259 forbids:
//! trailing commas, comments, `NaN`/`Infinity`, leading zeros, raw control characters in
//! strings, invalid UTF-8, unknown escapes, lone or mismatched surrogates, or anything after
//! the document but whitespace. It never reorders or merges object members: duplicate keys
//! are kept in input order, and [`Value::get`] returns the first. The caller bounds the
//! input size; the tree takes a small constant multiple of it.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of arrays and objects accepted: a document with `MAX_DEPTH` nested
/// containers parses, one more level is an error.
pub const MAX_DEPTH: usize = 128;
/// The most values (scalars and containers) one document may hold. A tree costs tens of
/// bytes per value, so this bounds what a hostile server can make the reader allocate
/// (about 20 MiB) far above any real object (a ConfigMap of 10,000 keys holds ~10,000).
pub const MAX_VALUES: usize = 1 << 18;

/// A parsed JSON value that borrows from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The raw number text, validated against the RFC 8259 grammar.
    Number(&'a str),
    /// Borrowed when the string had no escape, owned when it was unescaped.
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in input order; duplicate keys are kept.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of the first member named `key` if this is an object, else `None`.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members
                .iter()
                .find(|(name, _)| name.as_ref() == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// Nested [`get`](Value::get): `pointer(&["metadata", "name"])`. An empty path is `self`.
    pub fn pointer(&self, path: &[&str]) -> Option<&Value<'a>> {
        path.iter().try_fold(self, |value, key| value.get(key))
    }

    /// The text of a string, else `None`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// The value of an integer number (no fraction, no exponent) that fits in an `i64`,
    /// else `None`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(text) if !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => {
                text.parse().ok()
            }
            _ => None,
        }
    }

    /// The members of an object, in input order, else `None`.
    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Value<'a>)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The elements of an array, else `None`.
    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Why and where a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset of the problem in the input (the input length for a truncated document).
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid json at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for Error {}

const EOF: &str = "unexpected end of input";
const EXPECTED_VALUE: &str = "expected a value";
const EXPECTED_KEY: &str = "expected a string key";
const EXPECTED_KEY_OR_END: &str = "expected a string key or '}'";
const EXPECTED_COLON: &str = "expected ':' after an object key";
const EXPECTED_ARRAY_NEXT: &str = "expected ',' or ']' after an array element";
const EXPECTED_OBJECT_NEXT: &str = "expected ',' or '}' after an object member";
const TRAILING: &str = "trailing characters after the value";
const TOO_DEEP: &str = "nesting deeper than 128 arrays and objects";
const TOO_MANY: &str = "more than 262144 values";
const INVALID_LITERAL: &str = "invalid literal";
const LEADING_ZERO: &str = "leading zero in number";
const EXPECTED_DIGIT: &str = "expected a digit in number";
const CONTROL_CHAR: &str = "unescaped control character in string";
const INVALID_ESCAPE: &str = "invalid escape in string";
const INVALID_HEX: &str = "invalid hex digit in \\u escape";
const LONE_SURROGATE: &str = "unpaired surrogate in \\u escape";
const INVALID_UTF8: &str = "invalid utf-8 in string";
const INTERNAL: &str = "internal cursor out of bounds";

/// Parses exactly one JSON document; whitespace may surround it, anything else after it is
/// an error.
///
/// # Errors
///
/// An [`Error`] with the byte offset of the first problem: a syntax error, a truncated
/// document (offset = input length), invalid UTF-8, a bad escape or surrogate, or nesting
/// deeper than [`MAX_DEPTH`].
pub fn parse(input: &[u8]) -> Result<Value<'_>, Error> {
    let mut parser = Parser { input, pos: 0 };
    let value = parser.parse_value()?;
    parser.skip_ws();
    if parser.pos < input.len() {
        return Err(parser.error(parser.pos, TRAILING));
    }
    Ok(value)
}

/// An array or object whose elements are still being read.
enum Frame<'a> {
    Array(Vec<Value<'a>>),
    /// Members read so far, and the key of the member whose value is being read.
    Object(Vec<(Cow<'a, str>, Value<'a>)>, Cow<'a, str>),
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    #[inline]
    fn bump(&mut self) {
        self.pos += 1;
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek();
        if byte.is_some() {
            self.bump();
        }
        byte
    }

    fn error(&self, offset: usize, reason: &'static str) -> Error {
        Error { offset, reason }
    }

    /// The error for the byte at the cursor: end of input, or `reason`.
    fn unexpected(&self, reason: &'static str) -> Error {
        match self.peek() {
            None => self.error(self.input.len(), EOF),
            Some(_) => self.error(self.pos, reason),
        }
    }

    #[inline]
    fn span(&self, start: usize, end: usize) -> Result<&'a [u8], Error> {
        self.input
            .get(start..end)
            .ok_or_else(|| self.error(start, INTERNAL))
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.bump();
        }
    }

    /// Reads one value with an explicit stack of open containers.
    fn parse_value(&mut self) -> Result<Value<'a>, Error> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        let mut values = 0usize;
        'value: loop {
            self.skip_ws();
            values += 1;
            if values > MAX_VALUES {
                return Err(self.error(self.pos, TOO_MANY));
            }
            let mut value = match self.peek() {
                None => return Err(self.error(self.input.len(), EOF)),
                Some(b'[') => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(self.pos, TOO_DEEP));
                    }
                    self.bump();
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.bump();
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'{') => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(self.pos, TOO_DEEP));
                    }
                    self.bump();
                    self.skip_ws();
                    match self.peek() {
                        Some(b'}') => {
                            self.bump();
                            Value::Object(Vec::new())
                        }
                        Some(b'"') => {
                            let key = self.parse_key()?;
                            stack.push(Frame::Object(Vec::new(), key));
                            continue 'value;
                        }
                        _ => return Err(self.unexpected(EXPECTED_KEY_OR_END)),
                    }
                }
                Some(b'"') => Value::Str(self.parse_string()?),
                Some(b'-' | b'0'..=b'9') => Value::Number(self.parse_number()?),
                Some(b't') => {
                    self.parse_literal(b"true")?;
                    Value::Bool(true)
                }
                Some(b'f') => {
                    self.parse_literal(b"false")?;
                    Value::Bool(false)
                }
                Some(b'n') => {
                    self.parse_literal(b"null")?;
                    Value::Null
                }
                Some(_) => return Err(self.error(self.pos, EXPECTED_VALUE)),
            };
            // `value` is complete: hand it to the innermost open container, closing
            // containers for as long as their closing bracket follows.
            loop {
                let Some(frame) = stack.pop() else {
                    return Ok(value);
                };
                self.skip_ws();
                match frame {
                    Frame::Array(mut items) => {
                        items.push(value);
                        match self.peek() {
                            Some(b',') => {
                                self.bump();
                                stack.push(Frame::Array(items));
                                continue 'value;
                            }
                            Some(b']') => {
                                self.bump();
                                // Growth slack would make a tree of tiny containers tens of
                                // times larger than its input.
                                items.shrink_to_fit();
                                value = Value::Array(items);
                            }
                            _ => return Err(self.unexpected(EXPECTED_ARRAY_NEXT)),
                        }
                    }
                    Frame::Object(mut members, key) => {
                        members.push((key, value));
                        match self.peek() {
                            Some(b',') => {
                                self.bump();
                                self.skip_ws();
                                if self.peek() != Some(b'"') {
                                    return Err(self.unexpected(EXPECTED_KEY));
                                }
                                let key = self.parse_key()?;
                                stack.push(Frame::Object(members, key));
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.bump();
                                members.shrink_to_fit();
                                value = Value::Object(members);
                            }
                            _ => return Err(self.unexpected(EXPECTED_OBJECT_NEXT)),
                        }
                    }
                }
            }
        }
    }

    /// Reads `"key"` and the `:` after it; the cursor is at the opening quote.
    fn parse_key(&mut self) -> Result<Cow<'a, str>, Error> {
        let key = self.parse_string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.unexpected(EXPECTED_COLON));
        }
        self.bump();
        Ok(key)
    }

    fn parse_literal(&mut self, literal: &'static [u8]) -> Result<(), Error> {
        for &expected in literal {
            match self.peek() {
                Some(byte) if byte == expected => self.bump(),
                _ => return Err(self.unexpected(INVALID_LITERAL)),
            }
        }
        Ok(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn parse_number(&mut self) -> Result<&'a str, Error> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.next() {
            Some(b'0') => {
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error(self.pos, LEADING_ZERO));
                }
            }
            Some(b'1'..=b'9') => self.skip_digits(),
            Some(_) => return Err(self.error(self.pos - 1, EXPECTED_DIGIT)),
            None => return Err(self.error(self.input.len(), EOF)),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            self.require_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.bump();
            if let Some(b'+' | b'-') = self.peek() {
                self.bump();
            }
            self.require_digits()?;
        }
        let text = self.span(start, self.pos)?;
        std::str::from_utf8(text).map_err(|_| self.error(start, INTERNAL))
    }

    fn require_digits(&mut self) -> Result<(), Error> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.skip_digits();
                Ok(())
            }
            _ => Err(self.unexpected(EXPECTED_DIGIT)),
        }
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.bump();
        }
    }

    /// Reads a string; the cursor is at the opening quote and ends after the closing one.
    fn parse_string(&mut self) -> Result<Cow<'a, str>, Error> {
        let input = self.input;
        let start = self.pos + 1;
        let stop = scan_plain(input, start);
        match input.get(stop) {
            Some(b'"') => match std::str::from_utf8(self.span(start, stop)?) {
                Ok(text) => {
                    self.pos = stop + 1;
                    Ok(Cow::Borrowed(text))
                }
                Err(e) => Err(self.error(start + e.valid_up_to(), INVALID_UTF8)),
            },
            Some(b'\\') => self.parse_escaped(start, stop),
            Some(_) => Err(self.string_error(start, stop, CONTROL_CHAR)),
            None => Err(self.string_error(start, stop, EOF)),
        }
    }

    /// Unescapes a string whose first escape is at `first`; `start` is just after the
    /// opening quote. Plain runs between escapes are copied whole.
    fn parse_escaped(&mut self, start: usize, first: usize) -> Result<Cow<'a, str>, Error> {
        let input = self.input;
        let mut out: Vec<u8> = Vec::with_capacity(first - start + 64);
        out.extend_from_slice(self.span(start, first)?);
        let mut stage = Stage::new(out);
        let mut at = first;
        let mut sized = false;
        let end = loop {
            match input.get(at) {
                Some(b'"') => break at,
                Some(b'\\') => at = self.unescape(start, at, &mut stage)?,
                Some(_) => return Err(self.string_error(start, at, CONTROL_CHAR)),
                None => return Err(self.string_error(start, at, EOF)),
            }
            at = copy_plain(input, at, &mut stage);
            // Past a stage's worth, the string (perhaps a ConfigMap's file) gets room for
            // the rest of the input at once instead of growing by doubling: every step
            // would copy it again, into a fresh block (musl maps and unmaps those, page
            // faults included). The rest of the input bounds the rest of the string, and
            // memory reserved past its end is never written.
            if !sized && stage.out.len() >= STAGE {
                sized = true;
                let rest = input.len() - at + STAGE;
                if rest <= MAX_ROOM {
                    stage.out.reserve_exact(rest);
                }
            }
        };
        let mut bytes = stage.finish();
        if bytes.capacity() - bytes.len() > STAGE.max(bytes.len() / 8) {
            bytes.shrink_to_fit(); // far from the end of the input: one copy
        }
        match String::from_utf8(bytes) {
            Ok(text) => {
                self.pos = end + 1;
                Ok(Cow::Owned(text))
            }
            // Escapes only ever produce valid UTF-8, so the raw bytes hold the culprit.
            Err(_) => Err(self.string_error(start, end, INVALID_UTF8)),
        }
    }

    /// Decodes the escape whose backslash is at `at` into `out`; returns the offset after it.
    fn unescape(&self, start: usize, at: usize, out: &mut Stage) -> Result<usize, Error> {
        let byte = match self.input.get(at + 1) {
            Some(&byte) => byte,
            None => return Err(self.string_error(start, self.input.len(), EOF)),
        };
        let decoded = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unescape_unicode(start, at, out),
            _ => return Err(self.string_error(start, at, INVALID_ESCAPE)),
        };
        out.byte(decoded);
        Ok(at + 2)
    }

    /// Decodes `\uXXXX` (and the low half of a surrogate pair) at `at` into `out`.
    fn unescape_unicode(&self, start: usize, at: usize, out: &mut Stage) -> Result<usize, Error> {
        let high = self.hex4(start, at + 2)?;
        let (code, after) = match high {
            0xD800..=0xDBFF => match (self.input.get(at + 6), self.input.get(at + 7)) {
                (Some(b'\\'), Some(b'u')) => {
                    let low = self.hex4(start, at + 8)?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return Err(self.string_error(start, at, LONE_SURROGATE));
                    }
                    (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), at + 12)
                }
                (None, _) | (Some(b'\\'), None) => {
                    return Err(self.string_error(start, self.input.len(), EOF))
                }
                _ => return Err(self.string_error(start, at, LONE_SURROGATE)),
            },
            0xDC00..=0xDFFF => return Err(self.string_error(start, at, LONE_SURROGATE)),
            _ => (high, at + 6),
        };
        let decoded = char::from_u32(code).ok_or_else(|| self.error(at, LONE_SURROGATE))?;
        let mut buf = [0u8; 4];
        for &byte in decoded.encode_utf8(&mut buf).as_bytes() {
            out.byte(byte);
        }
        Ok(after)
    }

    fn hex4(&self, start: usize, at: usize) -> Result<u32, Error> {
        let mut code = 0u32;
        for offset in at..at + 4 {
            let digit = match self.input.get(offset) {
                Some(&byte @ b'0'..=b'9') => byte - b'0',
                Some(&byte @ b'a'..=b'f') => byte - b'a' + 10,
                Some(&byte @ b'A'..=b'F') => byte - b'A' + 10,
                Some(_) => return Err(self.string_error(start, offset, INVALID_HEX)),
                None => return Err(self.string_error(start, self.input.len(), EOF)),
            };
            code = code << 4 | u32::from(digit);
        }
        Ok(code)
    }

    /// An error at `at` inside a string that starts at `start`, unless the raw bytes before
    /// it are invalid UTF-8, which is then the first problem and reported instead.
    fn string_error(&self, start: usize, at: usize, reason: &'static str) -> Error {
        if let Some(raw) = self.input.get(start..at) {
            if let Err(e) = std::str::from_utf8(raw) {
                // A character cut short by the end of input is a truncation, not bad UTF-8.
                if !(e.error_len().is_none() && at == self.input.len()) {
                    return self.error(start + e.valid_up_to(), INVALID_UTF8);
                }
            }
        }
        self.error(at, reason)
    }
}

/// Offset of the first byte at or after `at` that ends a plain run inside a string (`"`,
/// `\`, or a control byte below 0x20), or the input length. Scans eight bytes at a time.
#[inline(always)]
fn scan_plain(input: &[u8], mut at: usize) -> usize {
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
fn copy_plain(input: &[u8], mut at: usize, out: &mut Stage) -> usize {
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

/// The most room an escaped string is given at once for the rest of the input: a watch
/// event (a ConfigMap is at most 1 MiB) fits; a long list grows its strings by doubling.
const MAX_ROOM: usize = 2 << 20;

/// Room on the stack for unescaped bytes on their way into a string.
const STAGE: usize = 256;

/// Unescaped bytes on their way into a string: gathered on the stack with fixed-size
/// copies (eight bytes at a time for plain runs, which the compiler inlines) and moved into
/// the string in large pieces, so that the many short runs between escapes (a line of
/// YAML each) cost no copy call and no length bookkeeping of the string each.
struct Stage {
    buf: [u8; STAGE],
    len: usize,
    out: Vec<u8>,
}

impl Stage {
    fn new(out: Vec<u8>) -> Stage {
        Stage {
            buf: [0; STAGE],
            len: 0,
            out,
        }
    }

    /// Appends the first `keep` (at most 8) of `bytes`.
    #[inline(always)]
    fn word(&mut self, bytes: [u8; 8], keep: usize) {
        if self.len + 8 > STAGE {
            self.flush();
        }
        if let Some(room) = self.buf.get_mut(self.len..self.len + 8) {
            room.copy_from_slice(&bytes);
            self.len += keep.min(8);
        }
    }

    #[inline(always)]
    fn byte(&mut self, byte: u8) {
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

    fn finish(mut self) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(text))
    }

    fn owned(text: &str) -> Value<'static> {
        Value::Str(Cow::Owned(text.to_string()))
    }

    fn obj<'a>(members: Vec<(&'a str, Value<'a>)>) -> Value<'a> {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        )
    }

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    fn nested_objects(depth: usize) -> String {
        let mut doc = String::new();
        for _ in 1..depth {
            doc.push_str("{\"a\":");
        }
        doc.push_str("{}");
        doc.push_str(&"}".repeat(depth - 1));
        doc
    }

    #[test]
    fn long_escaped_strings_round_trip() {
        // Runs of every length between escapes, strings across many stage flushes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces = [
            "a",
            "bcdefgh",
            "ijklmnopqrstu",
            "é",
            "✓",
            "😀",
            "\n",
            "\"",
            "\\",
            "\t",
            "<&>",
        ];
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..next() % 400 {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                let plain = (next() % 40) as usize;
                text.push_str(&"xyz0123456789".repeat(4)[..plain]);
            }
            let mut doc = String::from("\"");
            for c in text.chars() {
                match c {
                    '"' => doc.push_str("\\\""),
                    '\\' => doc.push_str("\\\\"),
                    '\n' => doc.push_str("\\n"),
                    '\t' => doc.push_str("\\t"),
                    '<' => doc.push_str("\\u003c"),
                    '😀' => doc.push_str("\\ud83d\\ude00"),
                    c => doc.push(c),
                }
            }
            doc.push('"');
            assert_eq!(
                parse(doc.as_bytes()),
                Ok(Value::Str(Cow::Owned(text.clone()))),
                "{doc}"
            );
        }
    }

    #[test]
    fn large_escaped_strings_get_room_once_and_keep_little_slack() {
        let body = "line\\n".repeat(30_000); // 180,000 raw bytes, 150,000 decoded
        let want = "line\n".repeat(30_000);
        // Last in the input: the room reserved is about the string itself.
        let doc = format!("[\"{body}\"]");
        let v = parse(doc.as_bytes()).unwrap();
        let Some(Value::Str(Cow::Owned(text))) = v.as_array().and_then(|a| a.first()) else {
            panic!("an owned string");
        };
        assert_eq!(*text, want);
        assert!(text.capacity() <= body.len() + STAGE, "{}", text.capacity());
        // Followed by much more input: the slack reserved is given back.
        let doc = format!("[\"{body}\",\"{}\"]", "x".repeat(1 << 20));
        let v = parse(doc.as_bytes()).unwrap();
        let Some(Value::Str(Cow::Owned(text))) = v.as_array().and_then(|a| a.first()) else {
            panic!("an owned string");
        };
        assert_eq!(*text, want);
        assert!(
            text.capacity() <= want.len() + want.len() / 8,
            "{}",
            text.capacity()
        );
    }

    #[test]
    fn value_count_is_bounded() {
        let many = |n: usize| format!("[{}0]", "0,".repeat(n - 2));
        assert!(parse(many(MAX_VALUES).as_bytes()).is_ok());
        let e = parse(many(MAX_VALUES + 1).as_bytes()).unwrap_err();
        assert_eq!(e.reason, "more than 262144 values");
        assert_eq!(e.offset, 1 + 2 * (MAX_VALUES - 1));
    }

    #[test]
    fn valid_documents() {
        let cases: Vec<(&str, Value)> = vec![
            ("null", Value::Null),
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            (" \t\r\n null \t\r\n", Value::Null),
            ("0", Value::Number("0")),
            ("-0", Value::Number("-0")),
            ("\"\"", s("")),
            ("\"abc\"", s("abc")),
            ("[]", Value::Array(vec![])),
            ("[ ]", Value::Array(vec![])),
            ("{}", obj(vec![])),
            ("{ \n }", obj(vec![])),
            (
                "[1,\"a\",null,true,[],{}]",
                Value::Array(vec![
                    Value::Number("1"),
                    s("a"),
                    Value::Null,
                    Value::Bool(true),
                    Value::Array(vec![]),
                    obj(vec![]),
                ]),
            ),
            (
                "{\"a\":{\"b\":[{\"c\":1}]}}",
                obj(vec![(
                    "a",
                    obj(vec![(
                        "b",
                        Value::Array(vec![obj(vec![("c", Value::Number("1"))])]),
                    )]),
                )]),
            ),
            (
                " { \"a\" : 1 , \"b\" : [ 2 , 3 ] } ",
                obj(vec![
                    ("a", Value::Number("1")),
                    (
                        "b",
                        Value::Array(vec![Value::Number("2"), Value::Number("3")]),
                    ),
                ]),
            ),
            ("\"caf\u{e9} \u{1F600}\"", s("caf\u{e9} \u{1F600}")),
            ("\"\u{7f}\"", s("\u{7f}")),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input.as_bytes()), Ok(expected), "input {input:?}");
        }
    }

    #[test]
    fn invalid_documents() {
        // (input, offset, reason)
        let cases: &[(&[u8], usize, &str)] = &[
            (b"", 0, EOF),
            (b"   ", 3, EOF),
            (b"nul", 3, EOF),
            (b"nulx", 3, INVALID_LITERAL),
            (b"True", 0, EXPECTED_VALUE),
            (b"NaN", 0, EXPECTED_VALUE),
            (b"Infinity", 0, EXPECTED_VALUE),
            (b"-Infinity", 1, EXPECTED_DIGIT),
            (b"'a'", 0, EXPECTED_VALUE),
            (b"[1,]", 3, EXPECTED_VALUE),
            (b"[,1]", 1, EXPECTED_VALUE),
            (b"[1 2]", 3, EXPECTED_ARRAY_NEXT),
            (b"[1", 2, EOF),
            (b"[", 1, EOF),
            (b"]", 0, EXPECTED_VALUE),
            (b"{\"a\":1,}", 7, EXPECTED_KEY),
            (b"{,}", 1, EXPECTED_KEY_OR_END),
            (b"{\"a\" 1}", 5, EXPECTED_COLON),
            (b"{\"a\":1 \"b\":2}", 7, EXPECTED_OBJECT_NEXT),
            (b"{a:1}", 1, EXPECTED_KEY_OR_END),
            (b"{\"a\":}", 5, EXPECTED_VALUE),
            (b"{\"a\"", 4, EOF),
            (b"{\"a\":1", 6, EOF),
            (b"{\"a\":1]", 6, EXPECTED_OBJECT_NEXT),
            (b"[1}", 2, EXPECTED_ARRAY_NEXT),
            (b"1 2", 2, TRAILING),
            (b"{} {}", 3, TRAILING),
            (b"[]]", 2, TRAILING),
            (b"null,", 4, TRAILING),
            (b"// c\n1", 0, EXPECTED_VALUE),
            (b"1 /* c */", 2, TRAILING),
            (b"[1,2] // c", 6, TRAILING),
            (b"\xef\xbb\xbf{}", 0, EXPECTED_VALUE),
            (b"\x00", 0, EXPECTED_VALUE),
            (b"[\x0b]", 1, EXPECTED_VALUE),
            (b"\xff", 0, EXPECTED_VALUE),
            (b"[1]\xff", 3, TRAILING),
            (b"\"abc", 4, EOF),
            (b"\"a\nb\"", 2, CONTROL_CHAR),
            (b"\"a\tb\"", 2, CONTROL_CHAR),
            (b"\"\x00\"", 1, CONTROL_CHAR),
            (b"\"\x1f\"", 1, CONTROL_CHAR),
            (b"\"\\x\"", 1, INVALID_ESCAPE),
            (b"\"\\a\"", 1, INVALID_ESCAPE),
            (b"\"\\'\"", 1, INVALID_ESCAPE),
            (b"\"\\U0041\"", 1, INVALID_ESCAPE),
            (b"\"\\", 2, EOF),
            (b"\"\xff\"", 1, INVALID_UTF8),
            (b"\"ab\xc3\"", 3, INVALID_UTF8),
            (b"\"\xc3\x28\"", 1, INVALID_UTF8),
            (b"\"\xed\xa0\x80\"", 1, INVALID_UTF8),
            (b"\"\xc0\x80\"", 1, INVALID_UTF8),
            (b"\"\xf4\x90\x80\x80\"", 1, INVALID_UTF8),
            (b"\"ok\\n\xff\"", 5, INVALID_UTF8),
            // The first problem wins: bad UTF-8 before a bad escape or control byte.
            (b"\"\xff\\q\"", 1, INVALID_UTF8),
            (b"\"\\n\xff\\q\"", 3, INVALID_UTF8),
            (b"\"\xff\n\"", 1, INVALID_UTF8),
            (b"{\"\xff\":1}", 2, INVALID_UTF8),
            (b"{\"k\\u00\":1}", 7, INVALID_HEX),
        ];
        for &(input, offset, reason) in cases {
            assert_eq!(
                parse(input),
                Err(Error { offset, reason }),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn numbers_grammar() {
        let valid = [
            "0",
            "-0",
            "1",
            "-1",
            "10",
            "1234567890",
            "0.5",
            "-0.5",
            "10.25",
            "1e5",
            "1E5",
            "1e+5",
            "1e-5",
            "0e0",
            "-0E-0",
            "1.5e300",
            "1e400",
            "123.456e-789",
            "99999999999999999999999",
        ];
        for text in valid {
            assert_eq!(parse(text.as_bytes()), Ok(Value::Number(text)), "{text}");
            let wrapped = format!("[{text}]");
            assert_eq!(
                parse(wrapped.as_bytes()),
                Ok(Value::Array(vec![Value::Number(text)])),
                "{wrapped}"
            );
        }
        let invalid: &[(&str, usize, &str)] = &[
            ("-", 1, EOF),
            ("--1", 1, EXPECTED_DIGIT),
            ("+1", 0, EXPECTED_VALUE),
            ("01", 1, LEADING_ZERO),
            ("-01", 2, LEADING_ZERO),
            ("00", 1, LEADING_ZERO),
            (".5", 0, EXPECTED_VALUE),
            ("1.", 2, EOF),
            ("[1.]", 3, EXPECTED_DIGIT),
            ("1.e5", 2, EXPECTED_DIGIT),
            ("1e", 2, EOF),
            ("1e+", 3, EOF),
            ("[1e+]", 4, EXPECTED_DIGIT),
            ("1ea", 2, EXPECTED_DIGIT),
            ("0x10", 1, TRAILING),
            ("1_000", 1, TRAILING),
            ("1.5.5", 3, TRAILING),
            ("- 1", 1, EXPECTED_DIGIT),
            ("-a", 1, EXPECTED_DIGIT),
        ];
        for &(text, offset, reason) in invalid {
            assert_eq!(
                parse(text.as_bytes()),
                Err(Error { offset, reason }),
                "{text}"
            );
        }
    }

    #[test]
    fn as_i64_takes_integers_that_fit() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("-0", Some(0)),
            ("42", Some(42)),
            ("-42", Some(-42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("1.0", None),
            ("1e3", None),
            ("1E3", None),
            ("\"1\"", None),
            ("true", None),
            ("null", None),
        ];
        for &(text, expected) in cases {
            let value = parse(text.as_bytes()).unwrap();
            assert_eq!(value.as_i64(), expected, "{text}");
        }
    }

    #[test]
    fn escapes() {
        let cases: &[(&str, &str)] = &[
            (r#""\"""#, "\""),
            (r#""\\""#, "\\"),
            (r#""\/""#, "/"),
            (r#""\b""#, "\u{8}"),
            (r#""\f""#, "\u{c}"),
            (r#""\n""#, "\n"),
            (r#""\r""#, "\r"),
            (r#""\t""#, "\t"),
            (r#""\u0000""#, "\0"),
            (r#""\u001f""#, "\u{1f}"),
            (r#""\u0041""#, "A"),
            (r#""\u00e9""#, "\u{e9}"),
            (r#""\u00E9""#, "\u{e9}"),
            (r#""\u4e2d""#, "\u{4e2d}"),
            (r#""\uFFFF""#, "\u{ffff}"),
            (r#""\uD7FF""#, "\u{d7ff}"),
            (r#""\uE000""#, "\u{e000}"),
            (r#""a\nb""#, "a\nb"),
            (r#""\n\n""#, "\n\n"),
            (
                r#""key: value\n  nested: \"quoted\"\n""#,
                "key: value\n  nested: \"quoted\"\n",
            ),
            (r#""caf\u00e9 caf\u00e9""#, "caf\u{e9} caf\u{e9}"),
            ("\"raw \u{e9} then \\n\"", "raw \u{e9} then \n"),
            (
                r#""0123456789abcdef\\0123456789abcdef""#,
                "0123456789abcdef\\0123456789abcdef",
            ),
        ];
        for &(input, expected) in cases {
            let value = parse(input.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(value, owned(expected), "{input}");
            assert!(
                matches!(value, Value::Str(Cow::Owned(_))),
                "escaped strings are owned: {input}"
            );
        }
    }

    #[test]
    fn strings_without_escapes_borrow() {
        for input in [
            "\"\"",
            "\"plain text\"",
            "\"caf\u{e9}\"",
            "{\"key\":\"value\"}",
        ] {
            let value = parse(input.as_bytes()).unwrap();
            let text = match &value {
                Value::Str(text) => text,
                Value::Object(members) => &members[0].0,
                _ => unreachable!(),
            };
            assert!(matches!(text, Cow::Borrowed(_)), "{input}");
        }
    }

    #[test]
    fn surrogates() {
        let valid: &[(&str, &str)] = &[
            (r#""\uD83D\uDE00""#, "\u{1F600}"),
            (r#""\ud83d\ude00""#, "\u{1F600}"),
            (r#""\uD800\uDC00""#, "\u{10000}"),
            (r#""\uDBFF\uDFFF""#, "\u{10FFFF}"),
            (r#""x\uD834\uDD1Ey""#, "x\u{1D11E}y"),
        ];
        for &(input, expected) in valid {
            assert_eq!(parse(input.as_bytes()), Ok(owned(expected)), "{input}");
        }
        let invalid: &[(&str, usize, &str)] = &[
            (r#""\uD800""#, 1, LONE_SURROGATE),
            (r#""\uDBFF""#, 1, LONE_SURROGATE),
            (r#""\uDC00""#, 1, LONE_SURROGATE),
            (r#""\uDFFF""#, 1, LONE_SURROGATE),
            (r#""ab\uDE00\uD83D""#, 3, LONE_SURROGATE),
            (r#""\uD800x""#, 1, LONE_SURROGATE),
            (r#""\uD800\n""#, 1, LONE_SURROGATE),
            (r#""\uD800\uD800""#, 1, LONE_SURROGATE),
            (r#""\uD800\u0041""#, 1, LONE_SURROGATE),
            (r#""\uD800\uE000""#, 1, LONE_SURROGATE),
            (r#""\uD800\uDCxx""#, 11, INVALID_HEX),
            (r#""\uD800\"#, 8, EOF),
            (r#""\uD800"#, 7, EOF),
            (r#""\uD800\u"#, 9, EOF),
            (r#""\u12"#, 5, EOF),
            (r#""\u12G4""#, 5, INVALID_HEX),
            (r#""\u-123""#, 3, INVALID_HEX),
            (r#""\u 123""#, 3, INVALID_HEX),
        ];
        for &(input, offset, reason) in invalid {
            assert_eq!(
                parse(input.as_bytes()),
                Err(Error { offset, reason }),
                "{input}"
            );
        }
    }

    #[test]
    fn depth_limit_edge() {
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse(nested(MAX_DEPTH + 1).as_bytes()),
            Err(Error {
                offset: MAX_DEPTH,
                reason: TOO_DEEP
            })
        );
        assert!(parse(nested_objects(MAX_DEPTH).as_bytes()).is_ok());
        let too_deep = nested_objects(MAX_DEPTH + 1);
        assert_eq!(
            parse(too_deep.as_bytes()),
            Err(Error {
                offset: too_deep.find("{}").unwrap(),
                reason: TOO_DEEP
            })
        );
        // Mixed nesting with values around the deepest point.
        let mixed = "{\"a\":[".repeat(MAX_DEPTH / 2) + "1" + &"]}".repeat(MAX_DEPTH / 2);
        assert!(parse(mixed.as_bytes()).is_ok());
        let mixed = "[{\"a\":".repeat(MAX_DEPTH / 2) + "[]" + &"}]".repeat(MAX_DEPTH / 2);
        assert!(parse(mixed.as_bytes()).is_err());
        // Far past the limit: an error, not a stack overflow.
        assert!(parse("[".repeat(1 << 20).as_bytes()).is_err());
        assert!(TOO_DEEP.contains(&MAX_DEPTH.to_string()));
    }

    #[test]
    fn duplicate_keys_are_kept_in_order() {
        let value = parse(br#"{"a":1,"b":2,"a":3,"a":{"x":null}}"#).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_ref())
            .collect();
        assert_eq!(keys, ["a", "b", "a", "a"]);
        assert_eq!(value.get("a"), Some(&Value::Number("1")));
        assert_eq!(value.get("b").and_then(Value::as_i64), Some(2));
        assert_eq!(value.as_object().unwrap()[2].1, Value::Number("3"));
        assert_eq!(value.get("c"), None);
    }

    #[test]
    fn accessors() {
        let value = parse(br#"{"s":"x","n":7,"a":[1],"o":{"k":"v"},"z":null}"#).unwrap();
        let cases: &[(&str, bool, bool, bool, bool, bool)] = &[
            // key, as_str, as_i64, as_array, as_object, is_null
            ("s", true, false, false, false, false),
            ("n", false, true, false, false, false),
            ("a", false, false, true, false, false),
            ("o", false, false, false, true, false),
            ("z", false, false, false, false, true),
        ];
        for &(key, is_str, is_int, is_array, is_object, is_null) in cases {
            let member = value.get(key).unwrap();
            assert_eq!(member.as_str().is_some(), is_str, "{key}");
            assert_eq!(member.as_i64().is_some(), is_int, "{key}");
            assert_eq!(member.as_array().is_some(), is_array, "{key}");
            assert_eq!(member.as_object().is_some(), is_object, "{key}");
            assert_eq!(member.is_null(), is_null, "{key}");
        }
        assert_eq!(
            value.pointer(&["o", "k"]).and_then(Value::as_str),
            Some("v")
        );
        assert_eq!(value.pointer(&[]), Some(&value));
        assert_eq!(value.pointer(&["o", "missing"]), None);
        assert_eq!(value.pointer(&["s", "k"]), None);
        assert_eq!(
            value.get("a").unwrap().as_array(),
            Some(&[Value::Number("1")][..])
        );
        assert_eq!(Value::Array(vec![]).get("a"), None);
    }

    #[test]
    fn error_display() {
        let err = parse(b"[1,]").unwrap_err();
        assert_eq!(err.to_string(), "invalid json at byte 3: expected a value");
    }

    const CONFIGMAP: &str = r#"{
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "envoy-xds",
        "namespace": "default",
        "uid": "0b4f6a50-3f3c-4a8e-9b1e-5c0d2f1e7a11",
        "resourceVersion": "123456",
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "labels": {
            "app.kubernetes.io/name": "envoy"
        },
        "annotations": {}
    },
    "data": {
        "lds.yaml": "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: listener_0\n",
        "caf\u00e9.txt": "caf\u00e9 \ud83d\ude00"
    },
    "binaryData": {
        "blob.bin": "AAEC/w=="
    }
}
"#;

    #[test]
    fn pretty_configmap() {
        let value = parse(CONFIGMAP.as_bytes()).unwrap();
        assert_eq!(value.get("kind").and_then(Value::as_str), Some("ConfigMap"));
        assert_eq!(
            value
                .pointer(&["metadata", "resourceVersion"])
                .and_then(Value::as_str),
            Some("123456")
        );
        assert_eq!(
            value
                .pointer(&["metadata", "labels", "app.kubernetes.io/name"])
                .and_then(Value::as_str),
            Some("envoy")
        );
        let data = value.get("data").and_then(Value::as_object).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].0, "lds.yaml");
        assert_eq!(
            data[0].1.as_str(),
            Some(
                "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: listener_0\n"
            )
        );
        assert_eq!(data[1].0, "caf\u{e9}.txt");
        assert_eq!(data[1].1.as_str(), Some("caf\u{e9} \u{1F600}"));
        assert_eq!(
            value
                .pointer(&["binaryData", "blob.bin"])
                .and_then(Value::as_str),
            Some("AAEC/w==")
        );
    }

    #[test]
    fn pretty_configmap_list() {
        let doc = r#"{
  "kind": "ConfigMapList",
  "apiVersion": "v1",
  "metadata": {
    "resourceVersion": "98765"
  },
  "items": [
    {
      "metadata": {"name": "a", "namespace": "default", "resourceVersion": "10"},
      "data": {"x.yaml": "a: 1\n"}
    },
    {
      "metadata": {"name": "b", "namespace": "default", "resourceVersion": "11"}
    }
  ]
}"#;
        let value = parse(doc.as_bytes()).unwrap();
        assert_eq!(
            value
                .pointer(&["metadata", "resourceVersion"])
                .and_then(Value::as_str),
            Some("98765")
        );
        let items = value.get("items").and_then(Value::as_array).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0]
                .pointer(&["data", "x.yaml"])
                .and_then(Value::as_str),
            Some("a: 1\n")
        );
        assert_eq!(
            items[1]
                .pointer(&["metadata", "name"])
                .and_then(Value::as_str),
            Some("b")
        );
        assert_eq!(items[1].get("data"), None);
    }

    #[test]
    fn watch_event_and_status() {
        let compact = format!(
            "{{\"type\":\"MODIFIED\",\"object\":{}}}\n",
            CONFIGMAP.lines().map(str::trim).collect::<String>()
        );
        let pretty = format!("{{\n  \"type\": \"MODIFIED\",\n  \"object\": {CONFIGMAP}}}\n");
        for event in [compact, pretty] {
            let value = parse(event.as_bytes()).unwrap();
            assert_eq!(value.get("type").and_then(Value::as_str), Some("MODIFIED"));
            assert_eq!(
                value
                    .pointer(&["object", "metadata", "name"])
                    .and_then(Value::as_str),
                Some("envoy-xds")
            );
            assert_eq!(
                value
                    .pointer(&["object", "data", "caf\u{e9}.txt"])
                    .and_then(Value::as_str),
                Some("caf\u{e9} \u{1F600}")
            );
        }

        let status = r#"{
  "kind": "Status",
  "apiVersion": "v1",
  "metadata": {},
  "status": "Failure",
  "message": "too old resource version: 123 (456)",
  "reason": "Expired",
  "code": 410
}"#;
        let event = format!("{{\"type\":\"ERROR\",\"object\":{status}}}");
        for doc in [status.to_string(), event] {
            let value = parse(doc.as_bytes()).unwrap();
            let status = value.get("object").unwrap_or(&value);
            assert_eq!(
                status.get("reason").and_then(Value::as_str),
                Some("Expired")
            );
            assert_eq!(status.get("code").and_then(Value::as_i64), Some(410));
            assert_eq!(
                status.get("metadata").and_then(Value::as_object),
                Some(&[][..])
            );
        }
    }

    #[test]
    fn every_strict_prefix_is_an_error() {
        let docs: Vec<String> = vec![
            CONFIGMAP.trim_end().to_string(),
            r#"{"a":[1,-2.5e+3,true,false,null,"x\u00e9\ud83d\ude00\n\"",{}],"b":{"c":[]}}"#
                .to_string(),
            "[\"caf\u{e9} \u{1F600}\"]".to_string(),
            "\"\\uD83D\\uDE00\"".to_string(),
            nested(MAX_DEPTH),
        ];
        for doc in &docs {
            let bytes = doc.as_bytes();
            assert!(parse(bytes).is_ok(), "{doc}");
            for end in 0..bytes.len() {
                let prefix = &bytes[..end];
                let err = parse(prefix).expect_err(&String::from_utf8_lossy(prefix));
                assert!(err.offset <= end, "offset past the end of {prefix:?}");
            }
        }
    }

    #[test]
    fn scan_finds_the_first_special_byte_at_every_position() {
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for len in 0..40 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that trip naive word tricks sit before and after.
                    for (i, byte) in bytes.iter_mut().enumerate() {
                        *byte = [b'a', 0xa2, 0xdc, 0x21, 0x7f, 0x80, 0x5d][i % 7];
                    }
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    assert_eq!(scan_plain(&bytes, 0), at, "{special} at {at} of {len}");
                }
                let plain: Vec<u8> = (0..len).map(|i| 0x20 + (i % 0x60) as u8).collect();
                let expected = plain
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .unwrap_or(len);
                assert_eq!(scan_plain(&plain, 0), expected);
            }
        }
    }

    #[test]
    fn long_strings_with_escapes() {
        let line = "  - name: listener_0 caf\u{e9} \"quoted\"\tend";
        let text: String = (0..20_000).map(|i| format!("{line} {i}\n")).collect();
        let mut escaped = String::from("\"");
        for ch in text.chars() {
            match ch {
                '\n' => escaped.push_str("\\n"),
                '"' => escaped.push_str("\\\""),
                '\t' => escaped.push_str("\\t"),
                '\u{e9}' => escaped.push_str("\\u00e9"),
                c => escaped.push(c),
            }
        }
        escaped.push('"');
        assert_eq!(parse(escaped.as_bytes()), Ok(owned(&text)));
        let raw = format!("\"{}\"", text.replace(['\n', '"', '\t'], " "));
        assert_eq!(
            parse(raw.as_bytes()).map(|v| matches!(v, Value::Str(Cow::Borrowed(_)))),
            Ok(true)
        );
    }
}
