//! Tests of `json::parse`: valid and invalid documents with the offset and reason of each
//! error, numbers, escapes and surrogates, the depth and value limits at their edges,
//! strict prefixes, real Kubernetes bodies (pretty and compact), and the plain-run scanner.

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

/// Asserts that `parse` rejects each input (text or bytes) at `offset` for `reason`.
fn check_errors<T: AsRef<[u8]> + Copy>(cases: &[(T, usize, &'static str)]) {
    for &(input, offset, reason) in cases {
        let input = input.as_ref();
        assert_eq!(
            parse(input),
            Err(Error { offset, reason }),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
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
    check_errors(cases);
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
    check_errors(invalid);
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
    check_errors(invalid);
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
