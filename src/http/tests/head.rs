//! `parse_head` and `framing`: tables, strict prefixes, and the head size and header count
//! limits.

use super::*;

#[test]
fn parse_head_table() {
    // (input, expected: Ok((status, reason, headers, consumed)) or Err(kind))
    type Want = Result<(u16, &'static str, Vec<(&'static str, &'static str)>), &'static str>;
    let cases: Vec<(&[u8], Want)> = vec![
        (b"HTTP/1.1 200 OK\r\n\r\n", Ok((200, "OK", vec![]))),
        (
            b"HTTP/1.0 404 Not Found\r\n\r\n",
            Ok((404, "Not Found", vec![])),
        ),
        (b"HTTP/1.1 200\r\n\r\n", Ok((200, "", vec![]))),
        (b"HTTP/1.1 200 \r\n\r\n", Ok((200, "", vec![]))),
        (b"HTTP/1.1 599 x y  z\r\n\r\n", Ok((599, "x y  z", vec![]))),
        (b"HTTP/1.1 200 OK\n\n", Ok((200, "OK", vec![]))),
        (
            b"HTTP/1.1 200 OK\nA: 1\r\nB:2\n\r\n",
            Ok((200, "OK", vec![("A", "1"), ("B", "2")])),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type:  application/json \t\r\nX-Empty:\r\n\r\n",
            Ok((
                200,
                "OK",
                vec![("Content-Type", "application/json"), ("X-Empty", "")],
            )),
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\tc\r\nY: d\r\n\r\n",
            Ok((200, "OK", vec![("X-Folded", "a b c"), ("Y", "d")])),
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a:b: c\r\n\r\n",
            Ok((200, "OK", vec![("X", "a:b: c")])),
        ),
        (
            b"HTTP/1.1 200 caf\xc3\xa9\r\nX: \xff\r\n\r\n",
            Ok((200, "caf\u{e9}", vec![("X", "\u{fffd}")])),
        ),
        (
            b"HTTP/1.1 200 OK\r\n folded-first\r\n\r\n",
            Err("malformed"),
        ),
        (b"HTTP/2 200 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.2 200 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 20 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 2000 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 099 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1  200 OK\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 200 O\x01K\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 200 OK\r\n: v\r\n\r\n", Err("malformed")),
        (
            b"HTTP/1.1 200 OK\r\nBad\x7fName: v\r\n\r\n",
            Err("malformed"),
        ),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", Err("malformed")),
        (b"HTTP/1.1 200 OK\rX: 1\r\n\r\n", Err("malformed")),
        (b"http/1.1 200 OK\r\n\r\n", Err("malformed")),
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", Err("malformed")),
        (b"\x16\x03\x01\x00", Err("malformed")),
        (b"<html>", Err("malformed")),
    ];
    for (input, want) in cases {
        let got = parse_head(input);
        match (got, want) {
            (Ok(Some((head, used))), Ok((status, reason, headers))) => {
                assert_eq!(used, input.len(), "{input:?}");
                assert_eq!(head.status, status, "{input:?}");
                assert_eq!(head.reason, reason, "{input:?}");
                let got: Vec<(&str, &str)> = head
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                assert_eq!(got, headers, "{input:?}");
            }
            (Err(e), Err(k)) => assert_eq!(kind(&e), k, "{input:?}: {e}"),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn parse_head_leaves_the_body() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let (head, used) = parse_head(input).unwrap().unwrap();
    assert_eq!(&input[used..], b"hi");
    assert_eq!(head.header("content-length"), Some("2"));
    assert_eq!(head.header("CONTENT-LENGTH"), Some("2"));
    assert_eq!(head.header("content-type"), None);
}

#[test]
fn header_lookup_returns_the_first() {
    let (head, _) = parse_head(b"HTTP/1.1 200 OK\r\nX: 1\r\nx: 2\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.header("X"), Some("1"));
    assert_eq!(head.headers.len(), 2);
}

#[test]
fn every_strict_prefix_is_incomplete() {
    let heads: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.0 404 Not Found\nA: b\n\n",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"HTTP/1.1 204\r\n\r\n",
    ];
    for head in heads {
        for n in 0..head.len() {
            assert!(
                matches!(parse_head(&head[..n]), Ok(None)),
                "prefix {:?}",
                String::from_utf8_lossy(&head[..n])
            );
        }
        assert!(matches!(parse_head(head), Ok(Some((_, n))) if n == head.len()));
    }
}

#[test]
fn head_size_limit() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big.len() <= MAX_HEAD_BYTES {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let want = format!("large:response head:{MAX_HEAD_BYTES}");
    // Incomplete but already too long.
    assert_eq!(kind(&parse_head(&big).unwrap_err()), want);
    big.extend_from_slice(b"\r\n");
    assert_eq!(kind(&parse_head(&big).unwrap_err()), want);
    // Exactly at the limit is accepted, one byte more is not.
    let mut edge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    edge.resize(MAX_HEAD_BYTES - 4, b'a');
    edge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(edge.len(), MAX_HEAD_BYTES);
    assert!(matches!(parse_head(&edge), Ok(Some(_))));
    edge.insert(20, b'a');
    assert_eq!(kind(&parse_head(&edge).unwrap_err()), want);
    // Same through read_response.
    let mut r = big.clone();
    r.extend_from_slice(b"body");
    let err = read_response(Pieces::new(&r, 4096), false).err().unwrap();
    assert_eq!(kind(&err), want);
}

#[test]
fn header_count_limit() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..MAX_HEADERS {
        head.extend_from_slice(b"A: b\r\n");
    }
    let mut over = head.clone();
    head.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_head(&head).unwrap().unwrap().0.headers.len(),
        MAX_HEADERS
    );
    over.extend_from_slice(b"A: b\r\n\r\n");
    assert_eq!(kind(&parse_head(&over).unwrap_err()), "malformed");
}

fn head_with(status: u16, headers: &[(&str, &str)]) -> Head {
    Head {
        status,
        reason: String::new(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn framing_table() {
    use Framing::*;
    let te = "Transfer-Encoding";
    let cl = "Content-Length";
    // (status, request was HEAD, headers, framing or error kind)
    type Case<'a> = (u16, bool, Vec<(&'a str, &'a str)>, Result<Framing, &'a str>);
    let cases: Vec<Case> = vec![
        (200, false, vec![], Ok(Close)),
        (200, false, vec![(cl, "10")], Ok(Length(10))),
        (200, false, vec![(cl, "0")], Ok(Length(0))),
        (200, false, vec![(cl, " 007 ")], Ok(Length(7))),
        (
            200,
            false,
            vec![("content-length", "18446744073709551615")],
            Ok(Length(u64::MAX)),
        ),
        (
            200,
            false,
            vec![(cl, "18446744073709551616")],
            Err("malformed"),
        ),
        (200, false, vec![(cl, "-1")], Err("malformed")),
        (200, false, vec![(cl, "+1")], Err("malformed")),
        (200, false, vec![(cl, "1 2")], Err("malformed")),
        (200, false, vec![(cl, "0x10")], Err("malformed")),
        (200, false, vec![(cl, "")], Err("malformed")),
        (200, false, vec![(cl, "5"), (cl, "6")], Err("malformed")),
        (200, false, vec![(cl, "5"), (cl, "5")], Err("malformed")),
        (200, false, vec![(cl, "5, 5")], Err("malformed")),
        (200, false, vec![(te, "chunked")], Ok(Chunked)),
        (200, false, vec![(te, "Chunked")], Ok(Chunked)),
        (200, false, vec![(te, "chunked"), (cl, "10")], Ok(Chunked)),
        (200, false, vec![(cl, "10"), (te, "chunked")], Ok(Chunked)),
        (200, false, vec![(cl, "x"), (te, "chunked")], Ok(Chunked)),
        (200, false, vec![(te, "identity, chunked")], Ok(Chunked)),
        (
            200,
            false,
            vec![(te, "identity"), (te, "chunked")],
            Ok(Chunked),
        ),
        (200, false, vec![(te, "gzip, chunked")], Err("malformed")),
        (200, false, vec![(te, "chunked, gzip")], Err("malformed")),
        (200, false, vec![(te, "gzip")], Err("malformed")),
        (200, false, vec![(te, "")], Err("malformed")),
        (200, true, vec![(te, "chunked")], Ok(Empty)),
        (200, true, vec![(cl, "100")], Ok(Empty)),
        (204, false, vec![(cl, "100")], Ok(Empty)),
        (304, false, vec![(te, "chunked")], Ok(Empty)),
        (101, false, vec![], Ok(Empty)),
        (199, false, vec![], Ok(Empty)),
        (205, false, vec![], Ok(Close)),
        (404, false, vec![(cl, "3")], Ok(Length(3))),
        (500, false, vec![], Ok(Close)),
    ];
    for (status, was_head, headers, want) in cases {
        let head = head_with(status, &headers);
        let got = framing(&head, was_head);
        match (&got, &want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{status} {headers:?}"),
            (Err(e), Err(k)) => assert_eq!(kind(e), *k, "{status} {headers:?}"),
            _ => panic!("{status} {headers:?}: got {got:?}, want {want:?}"),
        }
    }
}
