//! `json::parse` on the input: it must be deterministic, report errors inside the input,
//! and, when it succeeds, give a tree of bounded depth whose every accessor agrees with the
//! tree, whose numbers follow the RFC 8259 grammar, and which survives a round trip through
//! a minimal serializer (written here, independently of the parser).

#![no_main]

use envoy_xds_configmap_loader::json::{self, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let first = json::parse(input);
    assert_eq!(first, json::parse(input), "parse is not deterministic");
    let value = match first {
        Ok(v) => v,
        Err(e) => {
            assert!(
                e.offset <= input.len(),
                "error offset {} past the input",
                e.offset
            );
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // Only valid UTF-8 parses (invalid bytes are rejected in strings and are syntax errors
    // elsewhere).
    assert!(std::str::from_utf8(input).is_ok(), "parsed invalid utf-8");

    let depth = walk(&value, 0);
    assert!(depth <= json::MAX_DEPTH, "depth {depth}");

    let mut text = String::new();
    serialize(&value, &mut text);
    let again = json::parse(text.as_bytes());
    assert_eq!(again.as_ref(), Ok(&value), "round trip through {text:?}");
    // Pretty-printed with whitespace everywhere it may go, the tree is the same too.
    let mut pretty = String::new();
    serialize_pretty(&value, &mut pretty, 0);
    assert_eq!(
        json::parse(pretty.as_bytes()).as_ref(),
        Ok(&value),
        "pretty {pretty:?}"
    );
    // The compact form is a fixed point.
    if let Ok(again) = again {
        let mut text2 = String::new();
        serialize(&again, &mut text2);
        assert_eq!(text, text2);
    }
});

/// Checks every accessor on `v` and its children; returns the nesting depth of containers.
fn walk(v: &Value<'_>, depth: usize) -> usize {
    assert_eq!(v.pointer(&[]), Some(v));
    let kinds = [
        v.as_str().is_some(),
        v.as_object().is_some(),
        v.as_array().is_some(),
        v.is_null(),
        matches!(v, Value::Number(_)),
        matches!(v, Value::Bool(_)),
    ];
    assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{v:?}");
    match v {
        Value::Null | Value::Bool(_) => {
            assert_eq!(v.as_i64(), None);
            assert_eq!(v.get("a"), None);
            depth
        }
        Value::Number(text) => {
            assert!(is_rfc_number(text), "number {text:?}");
            // An independent reading: integers without fraction or exponent that fit.
            let integer = !text.contains(['.', 'e', 'E']);
            let want = integer
                .then(|| text.parse::<i128>().ok())
                .flatten()
                .and_then(|n| i64::try_from(n).ok());
            assert_eq!(v.as_i64(), want, "as_i64 of {text}");
            depth
        }
        Value::Str(s) => {
            assert_eq!(v.as_str(), Some(s.as_ref()));
            assert_eq!(v.as_i64(), None);
            depth
        }
        Value::Array(items) => {
            assert_eq!(v.as_array().map(<[_]>::len), Some(items.len()));
            assert_eq!(v.get("0"), None);
            items
                .iter()
                .map(|item| walk(item, depth + 1))
                .max()
                .unwrap_or(depth + 1)
        }
        Value::Object(members) => {
            assert_eq!(v.as_object().map(<[_]>::len), Some(members.len()));
            for (i, (key, value)) in members.iter().enumerate() {
                // `get` finds the first member with that key.
                let first = members.iter().position(|(k, _)| k == key);
                assert!(first <= Some(i));
                let want = first.map(|f| &members[f].1);
                assert_eq!(v.get(key), want);
                assert_eq!(v.pointer(&[key.as_ref()]), want);
                if let Some(inner) = value.as_object().and_then(|m| m.first()) {
                    assert_eq!(
                        v.pointer(&[key.as_ref(), inner.0.as_ref()]),
                        want.and_then(|w| w.get(&inner.0))
                    );
                }
            }
            if !members.iter().any(|(k, _)| k == "\u{0}missing") {
                assert_eq!(v.get("\u{0}missing"), None);
            }
            members
                .iter()
                .map(|(_, value)| walk(value, depth + 1))
                .max()
                .unwrap_or(depth + 1)
        }
    }
}

/// RFC 8259: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_rfc_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn serialize_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{0}'..='\u{1f}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            // Astral characters as surrogate pairs, to exercise the parser's pairing.
            c if (c as u32) > 0xffff && (c as u32).is_multiple_of(2) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn serialize(v: &Value<'_>, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(text) => out.push_str(text),
        Value::Str(s) => serialize_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                serialize(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                serialize_str(key, out);
                out.push(':');
                serialize(value, out);
            }
            out.push('}');
        }
    }
}

fn serialize_pretty(v: &Value<'_>, out: &mut String, indent: usize) {
    let pad = |out: &mut String, n: usize| {
        out.push_str("\r\n");
        out.extend(std::iter::repeat_n('\t', n));
    };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,");
                }
                pad(out, indent + 1);
                serialize_pretty(item, out, indent + 1);
            }
            pad(out, indent);
            out.push(']');
        }
        Value::Object(members) if !members.is_empty() => {
            out.push_str("{ ");
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,");
                }
                pad(out, indent + 1);
                serialize_str(key, out);
                out.push_str(" : ");
                serialize_pretty(value, out, indent + 1);
            }
            pad(out, indent);
            out.push('}');
        }
        _ => serialize(v, out),
    }
    if indent == 0 {
        out.push_str(" \n");
    }
}
