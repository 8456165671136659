//! `read_response`, `read_body`, `read_line` and `next_line` over in-memory streams cut in
//! pieces of every size: framings, limits, early ends, interim responses, read errors, and
//! buffer reuse.

use super::*;

#[test]
fn find_newline_matches_naive() {
    let mut seed = 0x2545f4914f6cdd1du64;
    for len in 0..80 {
        for _ in 0..50 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Mostly bytes next to '\n' in value, to stress the bit trick.
                    [b'\n', 0x0b, 0x09, 0x8a, 0x0a ^ 0x80, b'a', 0, 0xff][(seed % 8) as usize]
                })
                .collect();
            let naive = data.iter().position(|&b| b == b'\n');
            assert_eq!(find_newline(&data), naive, "{data:?}");
        }
    }
}

fn body_of(raw: &[u8], piece: usize, limit: usize) -> Result<Vec<u8>, Error> {
    let mut resp = read_response(Pieces::new(raw, piece), false)?;
    resp.read_body(limit)
}

#[test]
fn read_body_table() {
    // (raw response, body limit, body or error kind)
    type Case<'a> = (&'a [u8], usize, Result<&'a [u8], String>);
    let cases: Vec<Case> = vec![
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100, Ok(b"hello")),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", 100, Ok(b"hello")),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100, Ok(b"")),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 5, Ok(b"hello")),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello!",
            5,
            Err("large:body:5".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            100,
            Err("large:body:100".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            100,
            Err("eof:body".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            100,
            Err("eof:body".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            100,
            Ok(b"hello"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            5,
            Ok(b"hello"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n",
            5,
            Err("large:body:5".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nl",
            100,
            Err("eof:chunk".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n",
            100,
            Err("eof:chunk".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n0\r\n",
            100,
            Err("eof:chunk".into()),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            100,
            Err("malformed".into()),
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil close", 100, Ok(b"until close")),
        (b"HTTP/1.1 200 OK\r\n\r\n", 100, Ok(b"")),
        (b"HTTP/1.0 200 OK\r\n\r\n12345", 5, Ok(b"12345")),
        (b"HTTP/1.0 200 OK\r\n\r\n123456", 5, Err("large:body:5".into())),
        (b"HTTP/1.1 204 No Content\r\n\r\nignored", 100, Ok(b"")),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 100, Ok(b"")),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            100,
            Ok(b"ok"),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", 100, Err("eof:response head".into())),
        (b"", 100, Err("eof:response head".into())),
        (b"SSH-2.0-OpenSSH\r\n", 100, Err("malformed".into())),
    ];
    for (raw, limit, want) in cases {
        for piece in PIECES {
            let got = body_of(raw, piece, limit);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{raw:?} piece {piece}"),
                (Err(e), Err(k)) => assert_eq!(&kind(e), k, "{raw:?} piece {piece}"),
                _ => panic!("{raw:?} piece {piece}: got {got:?}, want {want:?}"),
            }
        }
    }
}

#[test]
fn head_response_has_no_body() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let mut resp = read_response(Pieces::new(raw, 3), true).unwrap();
    assert_eq!(resp.read_body(100).unwrap(), b"");
    assert_eq!(resp.head.status, 200);
}

#[test]
fn too_many_interim_responses() {
    let mut raw = Vec::new();
    for _ in 0..=MAX_INTERIM {
        raw.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    raw.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
    let e = read_response(Pieces::new(&raw, 1000), false).err().unwrap();
    assert_eq!(kind(&e), "malformed");
    // One fewer is fine.
    let ok = &raw[b"HTTP/1.1 100 Continue\r\n\r\n".len()..];
    let resp = read_response(Pieces::new(ok, 1000), false).unwrap();
    assert_eq!(resp.head.status, 200);
}

#[test]
fn switching_protocols_is_final() {
    let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let mut resp = read_response(Pieces::new(raw, 5), false).unwrap();
    assert_eq!(resp.head.status, 101);
    assert_eq!(resp.read_body(100).unwrap(), b"");
}

#[test]
fn read_errors_map_to_timeout_and_io() {
    let cases = [
        (io::ErrorKind::WouldBlock, "timeout"),
        (io::ErrorKind::TimedOut, "timeout"),
        (io::ErrorKind::ConnectionReset, "io:ConnectionReset"),
    ];
    for (k, want) in cases {
        // During the head.
        let r = ThenFail {
            inner: Pieces::new(b"HTTP/1.1 200 OK\r\n", 4),
            kind: k,
        };
        assert_eq!(kind(&read_response(r, false).err().unwrap()), want);
        // During the body.
        let r = ThenFail {
            inner: Pieces::new(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                4,
            ),
            kind: k,
        };
        let mut resp = read_response(r, false).unwrap();
        assert_eq!(kind(&resp.read_body(100).unwrap_err()), want);
    }
}

#[test]
fn interrupted_reads_are_retried() {
    struct Interrupting(Pieces, bool);
    impl Read for Interrupting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.0.read(buf)
        }
    }
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let mut resp = read_response(Interrupting(Pieces::new(raw, 2), false), false).unwrap();
    assert_eq!(resp.read_body(10).unwrap(), b"abc");
}

fn lines_of(raw: &[u8], piece: usize, limit: usize) -> (Vec<Vec<u8>>, Option<String>) {
    let handed = lines_read(raw, piece, limit, false);
    // Lent lines are the same lines, with the same end.
    assert_eq!(lines_read(raw, piece, limit, true), handed, "next_line");
    handed
}

fn lines_read(
    raw: &[u8],
    piece: usize,
    limit: usize,
    lent: bool,
) -> (Vec<Vec<u8>>, Option<String>) {
    let mut resp = match read_response(Pieces::new(raw, piece), false) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(kind(&e))),
    };
    let next = |resp: &mut Response<Pieces>| match lent {
        false => resp.read_line(limit),
        true => resp.next_line(limit).map(|l| l.map(<[u8]>::to_vec)),
    };
    let mut lines = Vec::new();
    for _ in 0..1000 {
        match next(&mut resp) {
            Ok(Some(l)) => lines.push(l),
            Ok(None) => {
                // The end is sticky.
                assert!(matches!(next(&mut resp), Ok(None)));
                return (lines, None);
            }
            Err(e) => return (lines, Some(kind(&e))),
        }
    }
    panic!("read_line does not end");
}

fn chunked(chunks: &[&[u8]], end: bool) -> Vec<u8> {
    let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in chunks {
        raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        raw.extend_from_slice(c);
        raw.extend_from_slice(b"\r\n");
    }
    if end {
        raw.extend_from_slice(b"0\r\n\r\n");
    }
    raw
}

/// A row of a `read_line` table: raw response, line limit, lines, then the error kind or
/// None for a clean end.
type LineCase<'a> = (Vec<u8>, usize, Vec<&'a [u8]>, Option<&'a str>);

/// Reads every case in pieces of every size, lines handed over and lent.
fn check_lines(cases: Vec<LineCase>) {
    for (raw, limit, want_lines, want_err) in cases {
        for piece in PIECES {
            let (lines, err) = lines_of(&raw, piece, limit);
            let ctx = format!("{:?} piece {piece}", String::from_utf8_lossy(&raw));
            assert_eq!(lines, want_lines, "{ctx}");
            assert_eq!(err.as_deref(), want_err, "{ctx}");
        }
    }
}

#[test]
fn read_line_table() {
    let a: &[u8] = b"{\"type\":\"ADDED\"}";
    let b: &[u8] = b"{\"type\":\"BOOKMARK\"}";
    check_lines(vec![
        // One event per chunk, as real servers send.
        (
            chunked(
                &[b"{\"type\":\"ADDED\"}\n", b"{\"type\":\"BOOKMARK\"}\n"],
                true,
            ),
            100,
            vec![a, b],
            None,
        ),
        // An event spanning chunks.
        (
            chunked(&[b"{\"type\":", b"\"ADDED\"", b"}\n"], true),
            100,
            vec![a],
            None,
        ),
        // Several events in one chunk, and a line end split from its line.
        (
            chunked(
                &[b"{\"type\":\"ADDED\"}\n{\"type\":\"BOOKMARK\"}", b"\n"],
                true,
            ),
            100,
            vec![a, b],
            None,
        ),
        // CRLF line ends, blank lines, whitespace-only lines kept.
        (
            chunked(&[b"\r\n\n{\"type\":\"ADDED\"}\r\n\r\n", b"\n \n"], true),
            100,
            vec![a, b" "],
            None,
        ),
        // A final unterminated line.
        (chunked(&[b"x\ny"], true), 100, vec![b"x", b"y"], None),
        (chunked(&[b"x\ny\r"], true), 100, vec![b"x", b"y"], None),
        (chunked(&[b"x\n\r"], true), 100, vec![b"x"], None),
        (chunked(&[], true), 100, vec![], None),
        // A bare CR inside a line stays.
        (chunked(&[b"a\rb\n"], true), 100, vec![b"a\rb"], None),
    ]);
}

#[test]
fn read_line_limit_table() {
    check_lines(vec![
        // Exactly at the limit, with and without CR; one more.
        (
            chunked(&[b"12345\n", b"123\n"], true),
            5,
            vec![b"12345", b"123"],
            None,
        ),
        (
            chunked(&[b"12345\r\n", b"123\n"], true),
            5,
            vec![b"12345", b"123"],
            None,
        ),
        (chunked(&[b"12345"], true), 5, vec![b"12345"], None),
        (
            chunked(&[b"1\n123456\n"], true),
            5,
            vec![b"1"],
            Some("large:line:5"),
        ),
        (
            chunked(&[b"123456\r\n"], true),
            5,
            vec![],
            Some("large:line:5"),
        ),
        (chunked(&[b"123456"], true), 5, vec![], Some("large:line:5")),
        (
            chunked(&[b"1234", b"5678", b"9\n"], true),
            5,
            vec![],
            Some("large:line:5"),
        ),
    ]);
}

#[test]
fn read_line_end_table() {
    check_lines(vec![
        // Truncated streams.
        (
            chunked(&[b"x\n", b"partial"], false),
            100,
            vec![b"x"],
            Some("eof:chunk"),
        ),
        (
            chunked(&[b"x\n"], false)[..50].to_vec(),
            100,
            vec![],
            Some("eof:chunk"),
        ),
        // Other framings.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\na\nb\r\nc".to_vec(),
            100,
            vec![b"a", b"b"],
            Some("eof:body"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\na\nb\r\ncTAIL".to_vec(),
            100,
            vec![b"a", b"b", b"c"],
            None,
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\na\nb\r\nc".to_vec(),
            100,
            vec![b"a", b"b", b"c"],
            None,
        ),
        (
            b"HTTP/1.1 204 No Content\r\n\r\na\n".to_vec(),
            100,
            vec![],
            None,
        ),
    ]);
}

#[test]
fn read_line_bounds_its_buffer() {
    // A 10 MB line without a newline, limit 1000: the error comes early, after reading
    // little more than the limit.
    let body = vec![b'x'; 10 << 20];
    let raw = chunked(&[&body], true);
    let mut resp = read_response(Pieces::new(&raw, 64), false).unwrap();
    let e = resp.read_line(1000).unwrap_err();
    assert_eq!(kind(&e), "large:line:1000");
    assert!(
        resp.get_ref().pos < 4096,
        "read {} bytes",
        resp.get_ref().pos
    );
    assert!(resp.line.capacity() < 4096);
}

#[test]
fn read_line_big_events() {
    // Events of about 1 MiB, split over many chunks, several per read.
    let mut events = Vec::new();
    let mut stream = Vec::new();
    for i in 0..5u8 {
        let mut ev = format!("{{\"type\":\"MODIFIED\",\"n\":{i},\"pad\":\"").into_bytes();
        ev.resize(ev.len() + (1 << 20) - 100 + usize::from(i), b'a' + i);
        ev.extend_from_slice(b"\"}");
        stream.extend_from_slice(&ev);
        stream.extend_from_slice(b"\n");
        events.push(ev);
    }
    let pieces: Vec<&[u8]> = stream.chunks(7000).collect();
    let raw = chunked(&pieces, true);
    for piece in [1000, 65536, 1 << 22] {
        let mut resp = read_response(Pieces::new(&raw, piece), false).unwrap();
        for ev in &events {
            assert_eq!(
                resp.read_line(2 << 20).unwrap().as_deref(),
                Some(ev.as_slice())
            );
        }
        assert_eq!(resp.read_line(2 << 20).unwrap(), None);
    }
}

#[test]
fn next_line_reuses_its_buffer() {
    // Events of about 1 MiB, one per chunk: after the first, the buffer serves them all.
    let events: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let mut ev = vec![b'a' + i; (1 << 20) - 1000];
            ev.push(b'\n');
            ev
        })
        .collect();
    let pieces: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    let raw = chunked(&pieces, true);
    let mut resp = read_response(Pieces::new(&raw, 65536), false).unwrap();
    let mut buffers = Vec::new();
    for ev in &events {
        let line = resp.next_line(2 << 20).unwrap().unwrap();
        assert_eq!(line, &ev[..ev.len() - 1]);
        buffers.push(resp.line.as_ptr());
    }
    assert_eq!(resp.next_line(2 << 20).unwrap(), None);
    // It grows while it learns the size (a line and the start of the next), then stays.
    assert!(
        buffers.windows(2).skip(1).all(|w| w[0] == w[1]),
        "{buffers:?}"
    );
    assert!(resp.line.capacity() <= 4 << 20, "{}", resp.line.capacity());
}

#[test]
fn read_line_then_read_body() {
    let raw = chunked(&[b"first\nsecond\n", b"rest"], true);
    for piece in PIECES {
        let mut resp = read_response(Pieces::new(&raw, piece), false).unwrap();
        assert_eq!(resp.read_line(100).unwrap().unwrap(), b"first");
        assert_eq!(resp.read_body(100).unwrap(), b"second\nrest");
        let mut resp = read_response(Pieces::new(&raw, piece), false).unwrap();
        assert_eq!(resp.next_line(100).unwrap().unwrap(), b"first");
        assert_eq!(resp.read_body(100).unwrap(), b"second\nrest");
    }
}

#[test]
fn reads_are_large() {
    let body = vec![b'x'; 1 << 20];
    let mut raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(&body);
    let mut resp = read_response(Pieces::new(&raw, usize::MAX), false).unwrap();
    assert_eq!(resp.read_body(2 << 20).unwrap().len(), 1 << 20);
    // 32 KiB reads: the head read plus 32 body reads, plus slack.
    assert!(resp.get_ref().reads <= 34, "{} reads", resp.get_ref().reads);
}
