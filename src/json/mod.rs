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
//!
//! The parser is here; `scan.rs` holds the word-at-a-time scanning of plain string runs and
//! the stage that gathers unescaped bytes.

use std::borrow::Cow;
use std::fmt;

mod scan;
#[cfg(test)]
mod tests;

use scan::{copy_plain, scan_plain, Stage, STAGE};

/// Deepest nesting of arrays and objects accepted: a document with `MAX_DEPTH` nested
/// containers parses, one more level is an error.
pub const MAX_DEPTH: usize = 128;
/// The most values (scalars and containers) one document may hold. A tree costs tens of
/// bytes per value, so this bounds what a hostile server can make the reader allocate
/// (about 20 MiB) far above any real object (a ConfigMap of 10,000 keys holds ~10,000).
pub const MAX_VALUES: usize = 1 << 18;
/// The most room an escaped string is given at once for the rest of the input: a watch
/// event (a ConfigMap is at most 1 MiB) fits; a long list grows its strings by doubling.
const MAX_ROOM: usize = 2 << 20;

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
