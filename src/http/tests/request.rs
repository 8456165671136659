//! `write_request`: the bytes sent, Content-Length, one write then a flush, rejected
//! injections, and a write timeout.

use super::*;

#[test]
fn write_request_format() {
    let mut out = Vec::new();
    let req = Request {
        method: "GET",
        host: "[::1]:6443",
        path_and_query: "/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=5",
        headers: &[("Authorization", "Bearer abc.def")],
        body: b"",
    };
    write_request(&mut out, &req).unwrap();
    let want = format!(
        "GET /api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=5 HTTP/1.1\r\n\
         Host: [::1]:6443\r\nUser-Agent: envoy-xds-configmap-loader/{}\r\n\
         Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n\
         Authorization: Bearer abc.def\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn write_request_content_length() {
    let cases: [(&str, &[u8], Option<&str>); 5] = [
        ("GET", b"", None),
        ("POST", b"", Some("Content-Length: 0\r\n\r\n")),
        ("PUT", b"{}", Some("Content-Length: 2\r\n\r\n{}")),
        ("PATCH", b"[1]", Some("Content-Length: 3\r\n\r\n[1]")),
        ("DELETE", b"x", Some("Content-Length: 1\r\n\r\nx")),
    ];
    for (method, body, want) in cases {
        let mut out = Vec::new();
        let req = Request {
            method,
            host: "h",
            path_and_query: "/",
            headers: &[],
            body,
        };
        write_request(&mut out, &req).unwrap();
        let text = String::from_utf8(out).unwrap();
        match want {
            Some(tail) => assert!(text.ends_with(tail), "{method}: {text}"),
            None => {
                assert!(!text.contains("Content-Length"), "{method}");
                assert!(text.ends_with("Connection: close\r\n\r\n"));
            }
        }
    }
}

/// Counts writes and flushes.
#[derive(Default)]
struct Recorder {
    writes: usize,
    flushes: usize,
    data: Vec<u8>,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn write_request_is_one_write_then_flush() {
    let mut rec = Recorder::default();
    let req = Request {
        method: "POST",
        host: "h",
        path_and_query: "/x",
        headers: &[("Content-Type", "application/json")],
        body: b"{\"a\":1}",
    };
    write_request(&mut rec, &req).unwrap();
    assert_eq!((rec.writes, rec.flushes), (1, 1));
    assert!(rec.data.ends_with(b"\r\n\r\n{\"a\":1}"));
}

#[test]
fn write_request_rejects_injection() {
    let cases: [(&str, &str, &str, (&str, &str)); 9] = [
        ("GE T", "h", "/", ("A", "b")),
        ("", "h", "/", ("A", "b")),
        ("GET", "h\r\nX: y", "/", ("A", "b")),
        ("GET", "", "/", ("A", "b")),
        ("GET", "h", "/a b", ("A", "b")),
        ("GET", "h", "x", ("A", "b")),
        ("GET", "h", "/", ("A\r\nB", "b")),
        ("GET", "h", "/", ("A", "b\r\nInjected: 1")),
        ("GET", "h", "/", ("A:", "b")),
    ];
    for (method, host, path, header) in cases {
        let mut rec = Recorder::default();
        let headers = [header];
        let req = Request {
            method,
            host,
            path_and_query: path,
            headers: &headers,
            body: b"",
        };
        let e = write_request(&mut rec, &req).unwrap_err();
        assert_eq!(
            kind(&e),
            "malformed",
            "{method:?} {host:?} {path:?} {header:?}"
        );
        assert_eq!(rec.writes, 0);
    }
}

#[test]
fn write_timeout_is_timeout() {
    struct Blocked;
    impl Write for Blocked {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let req = Request {
        method: "GET",
        host: "h",
        path_and_query: "/",
        headers: &[],
        body: b"",
    };
    assert!(matches!(
        write_request(&mut Blocked, &req),
        Err(Error::Timeout)
    ));
}
