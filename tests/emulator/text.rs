//! Lenient tools over JSON text: rewrite the identity fields of an object's `metadata`,
//! indent like Go's `json.Indent`, and flatten text onto one line for a watch event.
//!
//! They work on the text as given, so a hostile object (duplicate keys, odd escapes, invalid
//! JSON) keeps every byte the tools were not asked to change. They never parse values into a
//! tree, never reorder or drop members, and never panic: text they cannot follow is left as
//! it is.

/// Index of the first byte at or after `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// End (exclusive) of the string whose opening quote is at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// End (exclusive) of the value starting at `i` (no leading whitespace).
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// One `"key": value` member of an object, as byte ranges of the text.
struct Member {
    key: String,
    value: (usize, usize),
}

/// The members of the object whose `{` is at `open`, and the index of its `}`.
fn members(b: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if b.get(i) == Some(&b'}') {
        return Some((out, i));
    }
    loop {
        let key_end = string_end(b, i)?;
        let raw_key = std::str::from_utf8(b.get(i..key_end)?).ok()?;
        // A key with escapes means what its decoded form says; undecodable keys match nothing.
        let key = serde_json::from_str::<String>(raw_key).unwrap_or_default();
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        out.push(Member {
            key,
            value: (start, end),
        });
        i = skip_ws(b, end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some((out, i)),
            _ => return None,
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// Sets `metadata.name`, `metadata.namespace` and `metadata.resourceVersion` of the object in
/// `text`, replacing every occurrence (duplicates included) and adding missing ones at the
/// start of `metadata` (or adding `metadata` itself). Everything else is kept byte for byte.
/// `None` when the text is not an object the scanner can follow.
pub(crate) fn rewrite_metadata(text: &str, ns: &str, name: &str, rv: u64) -> Option<String> {
    let b = text.as_bytes();
    let open = skip_ws(b, 0);
    let (top, _) = members(b, open)?;
    let wanted = [
        ("name", json_string(name)),
        ("namespace", json_string(ns)),
        ("resourceVersion", json_string(&rv.to_string())),
    ];
    let fresh = || {
        let fields: Vec<String> = wanted.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        fields.join(",")
    };
    // Edits as (start, end, replacement), applied from the back.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let metas: Vec<&Member> = top.iter().filter(|m| m.key == "metadata").collect();
    if metas.is_empty() {
        let comma = if top.is_empty() { "" } else { "," };
        edits.push((
            open + 1,
            open + 1,
            format!("\"metadata\":{{{}}}{comma}", fresh()),
        ));
    }
    for meta in metas {
        let (start, end) = meta.value;
        let Some((inner, _)) = members(b, start) else {
            edits.push((start, end, format!("{{{}}}", fresh())));
            continue;
        };
        let mut missing = Vec::new();
        for (key, value) in &wanted {
            let mut found = false;
            for m in inner.iter().filter(|m| m.key == *key) {
                edits.push((m.value.0, m.value.1, value.clone()));
                found = true;
            }
            if !found {
                missing.push(format!("\"{key}\":{value}"));
            }
        }
        if !missing.is_empty() {
            let comma = if inner.is_empty() { "" } else { "," };
            edits.push((
                start + 1,
                start + 1,
                format!("{}{comma}", missing.join(",")),
            ));
        }
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.push_str(text.get(at..start)?);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(text.get(at..)?);
    Some(out)
}

/// Indents JSON text with two spaces per level, as Go's `json.MarshalIndent(v, "", "  ")`
/// renders it (empty `{}` and `[]` stay closed, `": "` after keys). Whitespace outside
/// strings is dropped; strings are copied as they are.
pub(crate) fn indent(text: &str) -> String {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + b.len() / 2);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(b"  ");
        }
    };
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                let end = string_end(b, i).unwrap_or(b.len());
                out.extend_from_slice(b.get(i..end).unwrap_or_default());
                i = end;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                out.push(c);
                let next = skip_ws(b, i + 1);
                let close = if c == b'{' { b'}' } else { b']' };
                if b.get(next) == Some(&close) {
                    out.push(close);
                    i = next + 1;
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The text on one line: raw line breaks (only ever whitespace in valid JSON) become spaces,
/// so an object fits in one watch event line.
pub(crate) fn flatten_into(text: &str, out: &mut Vec<u8>) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
}
