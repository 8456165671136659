//! Self-test of the Kubernetes API emulator (tests/emulator): drives it over real sockets with
//! a raw rustls client and a hand-written HTTP/chunk reader (nothing from the crate's `src/`),
//! and checks its pure helpers with tables.
//!
//! It never talks to anything but the emulators it starts on 127.0.0.1.

#[path = "emulator/mod.rs"]
mod emulator;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emulator::{Chunking, Emulator, Fault, Kind, Options};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

const TOKEN: &str = "test-token";
const NS: &str = "default";

// ---------------------------------------------------------------------------------------------
// A raw client.

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn tls_config(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read ca") {
        roots.add(cert.expect("ca cert")).expect("add ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

fn is_tls(emu: &Emulator) -> bool {
    emu.url().starts_with("https")
}

/// Connects and completes the TLS handshake (errors come back as text).
fn connect(emu: &Emulator) -> Result<Stream, String> {
    let tcp = TcpStream::connect(("127.0.0.1", emu.port())).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    if !is_tls(emu) {
        return Ok(Stream::Plain(tcp));
    }
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let conn = rustls::ClientConnection::new(tls_config(&Emulator::ca_file()), name)
        .map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

struct Req<'a> {
    method: &'a str,
    target: String,
    token: Option<&'a str>,
    headers: Vec<(&'a str, String)>,
    body: Vec<u8>,
}

fn req(method: &str, target: impl Into<String>) -> Req<'_> {
    Req {
        method,
        target: target.into(),
        token: Some(TOKEN),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl<'a> Req<'a> {
    fn token(mut self, t: Option<&'a str>) -> Self {
        self.token = t;
        self
    }
    fn header(mut self, k: &'a str, v: &str) -> Self {
        self.headers.push((k, v.to_string()));
        self
    }
    fn json(mut self, body: &str) -> Self {
        self.headers
            .push(("Content-Type", String::from("application/json")));
        self.body = body.as_bytes().to_vec();
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut s = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n",
            self.method, self.target
        );
        if let Some(t) = self.token {
            s += &format!("Authorization: Bearer {t}\r\n");
        }
        for (k, v) in &self.headers {
            s += &format!("{k}: {v}\r\n");
        }
        if !self.body.is_empty() {
            s += &format!("Content-Length: {}\r\n", self.body.len());
        }
        s += "\r\n";
        let mut b = s.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sizes of the body's chunks (empty when not chunked).
    chunks: Vec<usize>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not json ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_head(b: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(b);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Decodes complete chunks from `buf`; returns (chunks, consumed, saw final chunk).
fn decode_chunks(buf: &[u8]) -> (Vec<Vec<u8>>, usize, bool) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(rel) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
            return (out, pos, false);
        };
        let line = std::str::from_utf8(&buf[pos..pos + rel]).expect("size line");
        let size = usize::from_str_radix(line, 16).expect("chunk size");
        let start = pos + rel + 2;
        if size == 0 {
            if buf.len() >= start + 2 {
                assert_eq!(&buf[start..start + 2], b"\r\n");
                return (out, start + 2, true);
            }
            return (out, pos, false);
        }
        if buf.len() < start + size + 2 {
            return (out, pos, false);
        }
        assert_eq!(&buf[start + size..start + size + 2], b"\r\n", "chunk crlf");
        out.push(buf[start..start + size].to_vec());
        pos = start + size + 2;
    }
}

/// Sends a request and reads the whole answer (the server closes after it).
fn send(emu: &Emulator, r: Req) -> Resp {
    let mut s = connect(emu).expect("connect");
    s.write_all(&r.bytes()).expect("write request");
    s.flush().ok();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read answer: {e}"),
        }
    }
    let end = head_end(&buf).expect("complete head");
    let (status, headers) = parse_head(&buf[..end]);
    let rest = &buf[end..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    let (body, chunks) = if chunked {
        let (chunks, _, done) = decode_chunks(rest);
        assert!(done, "chunked answer without final chunk");
        (chunks.concat(), chunks.iter().map(Vec::len).collect())
    } else {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("content-length"))
            .expect("content-length or chunked");
        assert_eq!(rest.len(), len, "body length");
        (rest.to_vec(), Vec::new())
    };
    Resp {
        status,
        headers,
        body,
        chunks,
    }
}

fn get(emu: &Emulator, target: &str) -> Resp {
    send(emu, req("GET", target))
}

fn cm_path(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/configmaps/{name}")
}

fn list_path(query: &str) -> String {
    format!("/api/v1/namespaces/{NS}/configmaps?{query}")
}

/// What a watch read produced.
#[derive(Debug, PartialEq)]
enum Next {
    Chunk(Vec<u8>),
    /// The final zero-length chunk.
    End,
    /// The connection closed without a final chunk.
    Eof,
    Timeout,
}

struct Watch {
    s: Stream,
    status: u16,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Vec<u8>>,
    ended: bool,
    /// Bytes of events not yet ended by a newline.
    partial: Vec<u8>,
}

impl Watch {
    fn open(emu: &Emulator, query: &str) -> Watch {
        Watch::open_target(emu, &list_path(query))
    }

    fn open_target(emu: &Emulator, target: &str) -> Watch {
        let mut s = connect(emu).expect("connect");
        s.write_all(&req("GET", target).bytes()).expect("write");
        let mut buf = Vec::new();
        let mut tmp = [0u8; 65536];
        let end = loop {
            if let Some(e) = head_end(&buf) {
                break e;
            }
            let n = s.read(&mut tmp).expect("read watch head");
            assert!(n > 0, "closed before head");
            buf.extend_from_slice(&tmp[..n]);
        };
        let (status, headers) = parse_head(&buf[..end]);
        if status == 200 {
            assert!(headers
                .iter()
                .any(|(k, v)| k == "Transfer-Encoding" && v == "chunked"));
            assert!(headers
                .iter()
                .any(|(k, v)| k == "Content-Type" && v == "application/json"));
        }
        if let Stream::Tls(t) = &s {
            t.sock
                .set_read_timeout(Some(Duration::from_millis(20)))
                .ok();
        }
        if let Stream::Plain(t) = &s {
            t.set_read_timeout(Some(Duration::from_millis(20))).ok();
        }
        Watch {
            s,
            status,
            buf: buf[end..].to_vec(),
            ready: Default::default(),
            ended: false,
            partial: Vec::new(),
        }
    }

    fn next(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut tmp = [0u8; 65536];
        loop {
            if let Some(c) = self.ready.pop_front() {
                return Next::Chunk(c);
            }
            if self.ended {
                return Next::End;
            }
            let (chunks, used, done) = decode_chunks(&self.buf);
            self.buf.drain(..used);
            self.ready.extend(chunks);
            self.ended = done;
            if !self.ready.is_empty() || done {
                continue;
            }
            if Instant::now() >= deadline {
                return Next::Timeout;
            }
            match self.s.read(&mut tmp) {
                Ok(0) => return Next::Eof,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Next::Eof,
            }
        }
    }

    /// The next complete event line (split on newlines, not chunks), as JSON.
    fn event(&mut self, timeout: Duration) -> Result<Value, Next> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=p).collect();
                return Ok(serde_json::from_slice(&line).expect("event json"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Next::Chunk(c) => self.partial.extend_from_slice(&c),
                other => return Err(other),
            }
        }
    }

    fn expect_event(&mut self, typ: &str) -> Value {
        let ev = self
            .event(Duration::from_secs(3))
            .unwrap_or_else(|n| panic!("expected {typ} event, got {n:?}"));
        assert_eq!(ev["type"], typ, "event {ev}");
        ev
    }

    /// Asserts nothing arrives for `d`.
    fn expect_quiet(&mut self, d: Duration) {
        match self.next(d) {
            Next::Timeout => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

/// `d` times `$TEST_TIME_SCALE` (as tests/support's `scaled`, which this program does not
/// include): the emulator itself runs slower under qemu-user, in scripts/test-arm64.sh.
fn scaled(d: Duration) -> Duration {
    let f: f64 = std::env::var("TEST_TIME_SCALE").map_or(1.0, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("TEST_TIME_SCALE={v:?}: want a number"))
    });
    d.mul_f64(f.max(1.0))
}

fn start(opts: Options) -> Emulator {
    Emulator::start(opts)
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion string")
        .parse()
        .expect("numeric resourceVersion")
}

// ---------------------------------------------------------------------------------------------
// Reading.

#[test]
fn list_get_and_not_found() {
    let emu = start(Options::default());
    let rv_a = emu.apply(NS, "a", &[("k", "v1")]);
    emu.apply(NS, "b", &[("x", "y")]);
    emu.apply("other", "a", &[("k", "elsewhere")]);

    let r = get(&emu, &list_path("fieldSelector=metadata.name%3Da"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(r.body.ends_with(b"}\n"), "compact answers end in a newline");
    let v = r.json();
    assert_eq!(v["kind"], "ConfigMapList");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(rv_of(&v), emu.resource_version());
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["data"]["k"], "v1");
    assert_eq!(rv_of(&items[0]), rv_a);
    assert_eq!(items[0]["metadata"]["namespace"], NS);
    assert!(items[0]["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(items[0]["metadata"]["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // "==" and rv=0 (watch cache) give the same; a missing name gives an empty list.
    let v = get(
        &emu,
        &list_path("fieldSelector=metadata.name%3D%3Da&resourceVersion=0"),
    )
    .json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let v = get(&emu, &list_path("fieldSelector=metadata.name%3Dnope")).json();
    assert_eq!(v["items"], serde_json::json!([]));
    let v = get(&emu, &list_path("")).json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
    let v = get(&emu, "/api/v1/configmaps").json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(3));

    let r = get(&emu, &cm_path("a"));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["kind"], "ConfigMap");
    assert_eq!(v["data"]["k"], "v1");
    // Field order as the API server writes it.
    let t = r.text();
    let pos = |s: &str| t.find(s).unwrap_or(usize::MAX);
    assert!(pos("\"kind\"") < pos("\"apiVersion\""));
    assert!(pos("\"apiVersion\"") < pos("\"metadata\""));
    assert!(pos("\"metadata\"") < pos("\"data\""));

    // Answers over 2048 bytes come chunked, as Go's net/http sends them.
    let small = get(&emu, &cm_path("b"));
    assert!(small.chunks.is_empty() && small.header("Content-Length").is_some());
    emu.apply(NS, "large", &[("k", &"x".repeat(3000))]);
    let large = get(&emu, &cm_path("large"));
    assert_eq!(large.chunks.len(), 1);
    assert_eq!(large.header("Content-Length"), None);
    assert_eq!(large.json()["data"]["k"].as_str().map(str::len), Some(3000));
    emu.delete(NS, "large");

    let r = get(&emu, &cm_path("missing"));
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NotFound");
    assert_eq!(v["message"], "configmaps \"missing\" not found");
    assert_eq!(v["details"]["name"], "missing");
    assert_eq!(v["details"]["kind"], "configmaps");
    assert_eq!(v["code"], 404);

    let r = get(&emu, "/api/v1/namespaces/default/pods");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["reason"], "NotFound");
    let r = send(&emu, req("PATCH", cm_path("a")));
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["reason"], "MethodNotAllowed");
    let r = send(&emu, req("POST", "/api/v1/configmaps").json("{}"));
    assert_eq!(r.status, 405);
}

#[test]
fn authentication() {
    let emu = start(Options::default());
    for token in [None, Some("wrong")] {
        let r = send(&emu, req("GET", list_path("")).token(token));
        assert_eq!(r.status, 401, "token {token:?}");
        let v = r.json();
        assert_eq!(v["reason"], "Unauthorized");
        assert_eq!(v["message"], "Unauthorized");
        assert_eq!(v["code"], 401);
    }
    emu.set_tokens(&["rotated"]);
    assert_eq!(get(&emu, &list_path("")).status, 401);
    let r = send(&emu, req("GET", list_path("")).token(Some("rotated")));
    assert_eq!(r.status, 200);
    let recs = emu.requests();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[3].token.as_deref(), Some("rotated"));
    assert_eq!(recs[3].status, 200);
    assert!(recs[3].is_list());
    assert_eq!(
        recs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401, 401, 200]
    );
}

#[test]
fn list_exact_version_rebuilds_the_past_and_expires() {
    let emu = start(Options::default());
    let rv1 = emu.apply(NS, "a", &[("k", "1")]);
    emu.apply(NS, "a", &[("k", "2")]);
    emu.apply(NS, "b", &[("k", "b")]);
    let v = get(
        &emu,
        &list_path(&format!("resourceVersion={rv1}&resourceVersionMatch=Exact")),
    )
    .json();
    assert_eq!(rv_of(&v), rv1);
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["data"]["k"], "1");

    let r = get(&emu, &list_path("resourceVersionMatch=Exact"));
    assert_eq!(r.status, 422, "{}", r.text());

    emu.compact();
    let r = get(
        &emu,
        &list_path(&format!("resourceVersion={rv1}&resourceVersionMatch=Exact")),
    );
    assert_eq!(r.status, 410);
    let v = r.json();
    assert_eq!(v["reason"], "Expired");
    assert_eq!(v["code"], 410);
    // Not-older-than semantics are fine with an old version.
    assert_eq!(
        get(&emu, &list_path(&format!("resourceVersion={rv1}"))).status,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Watching.

#[test]
fn watch_from_version_replays_in_order_then_live() {
    let emu = start(Options::default());
    let rv1 = emu.apply(NS, "x", &[("k", "1")]);
    let rv2 = emu.apply(NS, "x", &[("k", "2")]);
    emu.apply(NS, "other", &[("k", "o")]);
    let rv3 = emu.apply(NS, "x", &[("k", "3")]);
    let rv_del = emu.delete(NS, "x").expect("deleted");
    let mut w = Watch::open(
        &emu,
        &format!("fieldSelector=metadata.name%3Dx&watch=1&resourceVersion={rv1}&allowWatchBookmarks=true&timeoutSeconds=30"),
    );
    assert_eq!(w.status, 200);
    let e = w.expect_event("MODIFIED");
    assert_eq!(e["object"]["data"]["k"], "2");
    assert_eq!(rv_of(&e["object"]), rv2);
    let e = w.expect_event("MODIFIED");
    assert_eq!(rv_of(&e["object"]), rv3);
    let e = w.expect_event("DELETED");
    assert_eq!(
        rv_of(&e["object"]),
        rv_del,
        "DELETED carries its own version"
    );
    assert_eq!(e["object"]["data"]["k"], "3");
    assert!(emu.wait_for(|e| e.open_watches() == 1, Duration::from_secs(2)));
    let rv4 = emu.apply(NS, "x", &[("k", "4")]);
    emu.apply(NS, "other", &[("k", "o2")]);
    let e = w.expect_event("ADDED");
    assert_eq!(rv_of(&e["object"]), rv4);
    w.expect_quiet(Duration::from_millis(150));
    let rec = emu.requests().pop().expect("record");
    assert!(rec.watch);
    assert_eq!(rec.param("fieldSelector"), Some("metadata.name=x"));
    drop(w);
    assert!(emu.wait_for(|e| e.open_watches() == 0, Duration::from_secs(3)));
}

#[test]
fn watch_from_zero_or_no_version_sends_synthetic_added() {
    let emu = start(Options::default());
    let rv_b = emu.apply(NS, "b", &[("k", "b")]);
    let rv_a = emu.apply(NS, "a", &[("k", "a")]);
    for q in ["watch=true&resourceVersion=0", "watch=1"] {
        let mut w = Watch::open(&emu, q);
        let mut seen = vec![];
        for _ in 0..2 {
            let e = w.expect_event("ADDED");
            seen.push((
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                rv_of(&e["object"]),
            ));
        }
        seen.sort();
        assert_eq!(seen, [("a".to_string(), rv_a), ("b".to_string(), rv_b)]);
        w.expect_quiet(Duration::from_millis(100));
    }
}

#[test]
fn watch_from_the_future_is_silent_until_it_happens() {
    let emu = start(Options::default());
    let now = emu.apply(NS, "f", &[("k", "0")]);
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={}", now + 2));
    emu.apply(NS, "f", &[("k", "1")]);
    emu.apply(NS, "f", &[("k", "2")]);
    w.expect_quiet(Duration::from_millis(150));
    emu.apply(NS, "f", &[("k", "3")]);
    let e = w.expect_event("MODIFIED");
    assert_eq!(e["object"]["data"]["k"], "3");
}

#[test]
fn bookmarks_only_when_allowed() {
    let emu = start(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    });
    let rv = emu.apply(NS, "b", &[("k", "v")]);
    let mut w = Watch::open(
        &emu,
        &format!("watch=1&resourceVersion={rv}&allowWatchBookmarks=true"),
    );
    let e = w.expect_event("BOOKMARK");
    assert_eq!(e["object"]["kind"], "ConfigMap");
    assert_eq!(e["object"]["apiVersion"], "v1");
    assert_eq!(rv_of(&e["object"]), rv);
    // Versions move on without events for this watch's selector too.
    let mut w2 = Watch::open(
        &emu,
        &format!("watch=1&resourceVersion={rv}&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dzzz"),
    );
    let rv2 = emu.apply(NS, "b", &[("k", "w")]);
    let e = w2.expect_event("BOOKMARK");
    assert!(rv_of(&e["object"]) >= rv);
    let e = w2.expect_event("BOOKMARK");
    assert_eq!(rv_of(&e["object"]), rv2);

    let mut quiet = Watch::open(&emu, &format!("watch=1&resourceVersion={rv2}"));
    quiet.expect_quiet(Duration::from_millis(300));
}

/// As a real kube-apiserver v1.20.2 (tests/real_apiserver.rs' server, measured): without
/// periodic bookmarks, a watch that allows them hears nothing until 2 s before its timeout,
/// then a bookmark about every second until it ends, and only when the version has moved
/// past the one it started from: a quiet watch gets none.
#[test]
fn by_default_bookmarks_come_only_in_the_last_2_s_of_a_watch_that_saw_versions_move() {
    let emu = start(Options::default());
    let rv = emu.apply(NS, "d", &[("k", "v")]);
    let q =
        format!("watch=1&resourceVersion={rv}&timeoutSeconds=4&fieldSelector=metadata.name%3Dd");
    let started = Instant::now();
    let mut w = Watch::open(&emu, &format!("{q}&allowWatchBookmarks=true"));
    let moved = emu.apply(NS, "elsewhere", &[("k", "v")]);
    w.expect_quiet(Duration::from_millis(1_700));
    let e = w.expect_event("BOOKMARK");
    let at = started.elapsed();
    assert!(
        at >= Duration::from_millis(1_900)
            && at < Duration::from_millis(2_000) + scaled(Duration::from_millis(600)),
        "first bookmark after {at:?}: 2 s before the 4 s timeout"
    );
    assert_eq!(rv_of(&e["object"]), moved);
    w.expect_event("BOOKMARK");
    assert_eq!(w.next(Duration::from_secs(3)), Next::End);
    // Versions that did not move: none, asked for or not.
    let q = format!("watch=1&resourceVersion={moved}&timeoutSeconds=4");
    let mut still = Watch::open(&emu, &format!("{q}&allowWatchBookmarks=true"));
    assert_eq!(still.next(Duration::from_secs(5)), Next::End);
    let moved_again = emu.apply(NS, "elsewhere", &[("k", "w")]);
    assert!(moved_again > moved);
    let mut unasked = Watch::open(
        &emu,
        &format!(
            "watch=1&resourceVersion={moved}&timeoutSeconds=4&fieldSelector=metadata.name%3Dd"
        ),
    );
    assert_eq!(unasked.next(Duration::from_secs(5)), Next::End);
}

#[test]
fn too_old_version_gets_error_410_then_clean_end() {
    let emu = start(Options {
        history_limit: 2,
        ..Options::default()
    });
    let rv1 = emu.apply(NS, "h", &[("k", "1")]);
    for i in 2..6 {
        emu.apply(NS, "h", &[("k", &i.to_string())]);
    }
    // History keeps 2 events: rv1 is too old by now.
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={rv1}"));
    assert_eq!(w.status, 200, "too old is an event, not an HTTP error");
    let e = w.expect_event("ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    let msg = e["object"]["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with(&format!("too old resource version: {rv1} (")),
        "{msg}"
    );
    assert_eq!(w.next(Duration::from_secs(2)), Next::End);

    // A version still in history works; after compact it does not.
    let cur = emu.resource_version();
    let mut ok = Watch::open(&emu, &format!("watch=1&resourceVersion={}", cur - 1));
    ok.expect_event("MODIFIED");
    emu.compact();
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={}", cur - 1));
    w.expect_event("ERROR");
    assert_eq!(w.next(Duration::from_secs(2)), Next::End);
    // The open watch is not cut by compaction.
    emu.apply(NS, "h", &[("k", "after")]);
    ok.expect_event("MODIFIED");
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={cur}"));
    w.expect_event("MODIFIED");
}

#[test]
fn server_timeout_ends_the_stream_cleanly() {
    let emu = start(Options::default());
    let rv = emu.apply(NS, "t", &[("k", "v")]);
    let t0 = Instant::now();
    let mut w = Watch::open(
        &emu,
        &format!("watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    );
    // Not before the timeout (t0 precedes the server's own start, so this cannot flake),
    // and long before the server-chosen 30-60 min a watch without timeoutSeconds gets.
    assert_eq!(w.next(Duration::from_secs(20)), Next::End);
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(w.next(Duration::from_millis(200)), Next::End);
}

#[test]
fn label_selector_transitions() {
    let emu = start(Options::default());
    let body = |v: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"l","labels":{{"app":"{v}"}}}},"data":{{"k":"v"}}}}"#
        )
    };
    let r = send(&emu, req("POST", list_path("")).json(&body("web")));
    assert_eq!(r.status, 201, "{}", r.text());
    let rv = rv_of(&r.json());
    let mut w = Watch::open(
        &emu,
        &format!("watch=1&resourceVersion={rv}&labelSelector=app%3Dweb"),
    );
    let r = send(&emu, req("PUT", cm_path("l")).json(&body("db")));
    assert_eq!(r.status, 200, "{}", r.text());
    w.expect_event("DELETED");
    let r = send(&emu, req("PUT", cm_path("l")).json(&body("web")));
    assert_eq!(r.status, 200);
    w.expect_event("ADDED");
    let v = get(&emu, &list_path("labelSelector=app%20in%20(web,x)")).json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let v = get(&emu, &list_path("labelSelector=app!%3Dweb")).json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Writing.

#[test]
fn create_update_delete() {
    let emu = start(Options::default());
    let rv0 = emu.resource_version();
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={rv0}"));
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"default"},"data":{"a":"1"},"binaryData":{"b":"AAEC/w=="}}"#;
    let r = send(&emu, req("POST", list_path("")).json(body));
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["data"]["a"], "1");
    assert_eq!(created["binaryData"]["b"], "AAEC/w==");
    let rv1 = rv_of(&created);
    assert_eq!(rv1, rv0 + 1);
    assert_eq!(rv_of(&w.expect_event("ADDED")["object"]), rv1);

    let r = send(&emu, req("POST", list_path("")).json(body));
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "AlreadyExists");

    // Update with the right version, then with a stale one.
    let upd = |rv: u64, v: &str| {
        format!(r#"{{"metadata":{{"name":"c","resourceVersion":"{rv}"}},"data":{{"a":"{v}"}}}}"#)
    };
    let r = send(&emu, req("PUT", cm_path("c")).json(&upd(rv1, "2")));
    assert_eq!(r.status, 200, "{}", r.text());
    let rv2 = rv_of(&r.json());
    assert!(rv2 > rv1);
    let e = w.expect_event("MODIFIED");
    assert_eq!(e["object"]["data"]["a"], "2");
    assert!(e["object"].get("binaryData").is_none(), "PUT replaces");
    let r = send(&emu, req("PUT", cm_path("c")).json(&upd(rv1, "3")));
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    // Unconditional update; then the same content again is no write.
    let r = send(
        &emu,
        req("PUT", cm_path("c")).json(r#"{"metadata":{"name":"c"},"data":{"a":"3"}}"#),
    );
    assert_eq!(r.status, 200);
    let rv3 = rv_of(&r.json());
    let r = send(
        &emu,
        req("PUT", cm_path("c")).json(r#"{"metadata":{"name":"c"},"data":{"a":"3"}}"#),
    );
    assert_eq!(rv_of(&r.json()), rv3);
    assert_eq!(emu.resource_version(), rv3);
    w.expect_event("MODIFIED");
    w.expect_quiet(Duration::from_millis(100));

    let r = send(
        &emu,
        req("PUT", cm_path("nope")).json(r#"{"metadata":{"name":"nope"}}"#),
    );
    assert_eq!(r.status, 404);
    let r = send(
        &emu,
        req("PUT", cm_path("c")).json(r#"{"metadata":{"name":"d"}}"#),
    );
    assert_eq!(r.status, 400);

    let r = send(&emu, req("DELETE", cm_path("c")));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["status"], "Success");
    assert_eq!(v["details"]["name"], "c");
    let e = w.expect_event("DELETED");
    assert_eq!(rv_of(&e["object"]), emu.resource_version());
    assert_eq!(send(&emu, req("DELETE", cm_path("c"))).status, 404);
    assert_eq!(get(&emu, &cm_path("c")).status, 404);
}

#[test]
fn writes_are_validated_like_the_server() {
    let emu = start(Options::default());
    let post = |body: &str| send(&emu, req("POST", list_path("")).json(body));
    let cases: &[(&str, u16, &str)] = &[
        (
            r#"{"metadata":{"name":"v"},"data":{"a/b":"x"}}"#,
            422,
            "data[a/b]",
        ),
        (
            r#"{"metadata":{"name":"v"},"data":{"..x":"x"}}"#,
            422,
            "data[..x]",
        ),
        (
            r#"{"metadata":{"name":"v"},"data":{".":"x"}}"#,
            422,
            "data[.]",
        ),
        (
            r#"{"metadata":{"name":"v"},"data":{"":"x"}}"#,
            422,
            "data[]",
        ),
        (
            r#"{"metadata":{"name":"v"},"binaryData":{"a b":"AA=="}}"#,
            422,
            "binaryData[a b]",
        ),
        (
            r#"{"metadata":{"name":"v"},"data":{"k":"x"},"binaryData":{"k":"AA=="}}"#,
            422,
            "data[k]",
        ),
        (r#"{"metadata":{"name":"Bad_Name"}}"#, 422, "metadata.name"),
        (r#"{"metadata":{}}"#, 422, "metadata.name"),
        (
            r#"{"metadata":{"name":"v"},"binaryData":{"k":"!!"}}"#,
            400,
            "",
        ),
        (r#"{"metadata":{"name":"v"},"data":{"k":1}}"#, 400, ""),
        (r#"{"metadata":{"name":"v","namespace":"other"}}"#, 400, ""),
        (r#"{"kind":"Secret","metadata":{"name":"v"}}"#, 400, ""),
        (
            r#"{"metadata":{"name":"v","resourceVersion":"5"}}"#,
            500,
            "",
        ),
        (r#"not json"#, 400, ""),
    ];
    for (body, code, field) in cases {
        let r = post(body);
        assert_eq!(r.status, *code, "{body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["kind"], "Status");
        if *code == 422 {
            assert_eq!(v["reason"], "Invalid");
            assert_eq!(v["details"]["causes"][0]["field"], *field, "{v}");
        }
    }
    let key = "k".repeat(254);
    let r = post(&format!(
        r#"{{"metadata":{{"name":"v"}},"data":{{"{key}":"x"}}}}"#
    ));
    assert_eq!(r.status, 422);
    assert!(r.text().contains("must be no more than 253 characters"));

    // 1 MiB of values passes, one byte more does not; a body over 3 MiB is 413.
    let mib = 1024 * 1024;
    let big = |n: usize| {
        format!(
            r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}","b":"{}"}}}}"#,
            "x".repeat(n / 2),
            "y".repeat(n - n / 2)
        )
    };
    let r = post(&big(mib + 1));
    assert_eq!(r.status, 422);
    assert!(r
        .text()
        .contains("Too long: must have at most 1048576 bytes"));
    assert_eq!(post(&big(mib)).status, 201);
    let r = post(&big(3 * mib + 10));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["reason"], "RequestEntityTooLarge");

    // Without a JSON content type (curl --data sends a form type) the server refuses.
    let mut r = req("POST", list_path(""));
    r.body = br#"{"metadata":{"name":"f"}}"#.to_vec();
    let r2 = send(
        &emu,
        r.header("Content-Type", "application/x-www-form-urlencoded"),
    );
    assert_eq!(r2.status, 415);
    assert_eq!(r2.json()["reason"], "UnsupportedMediaType");

    // generateName.
    let r = post(r#"{"metadata":{"generateName":"gen-"}}"#);
    assert_eq!(r.status, 201);
    let name = r.json()["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // Immutable objects keep their data.
    let r = post(r#"{"metadata":{"name":"imm"},"immutable":true,"data":{"a":"1"}}"#);
    assert_eq!(r.status, 201);
    let r = send(
        &emu,
        req("PUT", cm_path("imm"))
            .json(r#"{"metadata":{"name":"imm"},"immutable":true,"data":{"a":"2"}}"#),
    );
    assert_eq!(r.status, 422, "{}", r.text());
}

#[test]
fn pretty_printing_for_curl_and_browsers() {
    let emu = start(Options::default());
    emu.apply(NS, "p", &[("k", "v")]);
    let compact = get(&emu, &cm_path("p"));
    for (ua, query, pretty) in [
        (Some("curl/8.5.0"), "", true),
        (Some("Wget/1.21"), "", true),
        (Some("Mozilla/5.0"), "", true),
        (None, "?pretty=true", true),
        (Some("curl/8.5.0"), "?pretty=false", false),
        (Some("kube-loader/1"), "", false),
        (None, "", false),
    ] {
        let mut r = req("GET", format!("{}{query}", cm_path("p")));
        if let Some(ua) = ua {
            r = r.header("User-Agent", ua);
        }
        let r = send(&emu, r);
        assert_eq!(r.json(), compact.json());
        let t = r.text();
        if pretty {
            assert!(
                t.starts_with("{\n  \"kind\": \"ConfigMap\",\n  \"apiVersion\": \"v1\",\n"),
                "{t}"
            );
            assert!(!t.ends_with('\n'));
            assert_eq!(
                t,
                serde_json::to_string_pretty(&r.json())
                    .map(|_| t.clone())
                    .unwrap_or_default()
            );
        } else {
            assert!(
                t.starts_with("{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","),
                "{ua:?}{query}: {t}"
            );
        }
    }
    // Errors too.
    let r = send(
        &emu,
        req("GET", cm_path("none")).header("User-Agent", "curl/8"),
    );
    assert!(r.text().contains("\n  \"reason\": \"NotFound\""));
    // Watches never are.
    let mut w = Watch::open_target(&emu, &format!("{}&pretty=true", list_path("watch=1")));
    match w.next(Duration::from_secs(2)) {
        Next::Chunk(c) => {
            assert!(!c[..c.len() - 1].contains(&b'\n'));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn secrets_are_served_with_base64_data() {
    let emu = start(Options::default());
    emu.apply_secret(NS, "s", &[("token", b"\x00\xffsecret")]);
    let v = get(&emu, &format!("/api/v1/namespaces/{NS}/secrets/s")).json();
    assert_eq!(v["kind"], "Secret");
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v["data"]["token"], "AP9zZWNyZXQ=");
    let r = send(
        &emu,
        req("POST", format!("/api/v1/namespaces/{NS}/secrets"))
            .json(r#"{"metadata":{"name":"t"},"stringData":{"a":"plain"}}"#),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["data"]["a"], "cGxhaW4=");
    let v = get(
        &emu,
        &format!("/api/v1/namespaces/{NS}/secrets?fieldSelector=metadata.name%3Dt"),
    )
    .json();
    assert_eq!(v["kind"], "SecretList");
    assert!(emu.delete_secret(NS, "s").is_some());
}

#[test]
fn raw_objects_are_served_verbatim() {
    let emu = start(Options::default());
    let raw = r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"wrong","resourceVersion":"1"},"data":{"../x":"1","a":"1","a":"2"}}"#;
    let rv = emu.apply_raw(NS, "hostile", raw);
    let expect = format!(
        r#"{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"namespace":"default","name":"hostile","resourceVersion":"{rv}"}},"data":{{"../x":"1","a":"1","a":"2"}}}}"#
    );
    let r = get(&emu, &cm_path("hostile"));
    assert_eq!(r.text(), format!("{expect}\n"));
    let r = get(&emu, &list_path("fieldSelector=metadata.name%3Dhostile"));
    assert!(r.text().contains(&expect));
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={}", rv - 1));
    match w.next(Duration::from_secs(2)) {
        Next::Chunk(c) => assert_eq!(
            String::from_utf8_lossy(&c),
            format!("{{\"type\":\"ADDED\",\"object\":{expect}}}\n")
        ),
        other => panic!("{other:?}"),
    }
    let del = emu.delete(NS, "hostile").expect("deleted");
    let e = w.expect_event("DELETED");
    assert_eq!(rv_of(&e["object"]), del);
    // Text that is not an object is kept as it is.
    emu.apply_raw(NS, "garbage", "[1,2");
    assert_eq!(get(&emu, &cm_path("garbage")).body, b"[1,2\n");
}

// ---------------------------------------------------------------------------------------------
// Chunk layouts.

fn three_changes(emu: &Emulator) -> u64 {
    let rv = emu.resource_version();
    emu.apply(NS, "c1", &[("k", "é — multi-byte text")]);
    emu.apply(NS, "c2", &[("k", "2")]);
    emu.apply(NS, "c3", &[("k", "3")]);
    rv
}

fn read_all_events(w: &mut Watch, n: usize) -> (Vec<Value>, Vec<Vec<u8>>) {
    let mut chunks = Vec::new();
    let mut events = Vec::new();
    let mut bytes = Vec::new();
    while events.len() < n {
        match w.next(Duration::from_secs(3)) {
            Next::Chunk(c) => {
                bytes.extend_from_slice(&c);
                chunks.push(c);
                while let Some(p) = bytes.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = bytes.drain(..=p).collect();
                    events.push(serde_json::from_slice(&line).expect("event"));
                }
            }
            other => panic!("after {} events: {other:?}", events.len()),
        }
    }
    (events, chunks)
}

#[test]
fn chunking_modes_shape_the_wire() {
    for mode in [
        Chunking::OnePerEvent,
        Chunking::Split,
        Chunking::Coalesce,
        Chunking::Mixed,
    ] {
        let emu = start(Options {
            chunking: mode,
            ..Options::default()
        });
        let rv = three_changes(&emu);
        let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={rv}"));
        let (events, chunks) = read_all_events(&mut w, 3);
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["object"]["metadata"]["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["c1", "c2", "c3"], "{mode:?}");
        assert_eq!(events[0]["object"]["data"]["k"], "é — multi-byte text");
        let ends_with_nl = chunks.iter().filter(|c| c.ends_with(b"\n")).count();
        match mode {
            Chunking::OnePerEvent => {
                assert_eq!(chunks.len(), 3);
                assert_eq!(ends_with_nl, 3);
            }
            Chunking::Split => {
                assert!(chunks.len() > 3 * 5, "{}", chunks.len());
                assert_eq!(chunks.iter().filter(|c| c.as_slice() == b"\n").count(), 3);
                assert!(
                    chunks.iter().any(|c| std::str::from_utf8(c).is_err()),
                    "a split inside a character"
                );
            }
            Chunking::Coalesce => {
                assert_eq!(chunks.len(), 1);
                assert_eq!(chunks[0].iter().filter(|&&b| b == b'\n').count(), 3);
            }
            Chunking::Mixed => {
                assert!(chunks.len() > 5);
                assert!(
                    chunks.iter().any(|c| {
                        c.iter()
                            .position(|&b| b == b'\n')
                            .is_some_and(|p| p + 1 < c.len())
                    }),
                    "a chunk holding the end of one event and the start of the next"
                );
            }
        }
        // Live events are shaped the same way.
        emu.apply(NS, "c4", &[("k", "4")]);
        emu.apply(NS, "c5", &[("k", "5")]);
        let (events, chunks) = read_all_events(&mut w, 2);
        assert_eq!(events.len(), 2);
        if mode == Chunking::Coalesce {
            assert_eq!(chunks.len(), 1, "changes 0 ms apart share a chunk");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults.

#[test]
fn a_token_limited_by_resource_names_needs_the_name_selector() {
    let emu = start(Options::default());
    emu.apply(NS, "envoy", &[("k", "v")]);
    emu.apply(NS, "other", &[("k", "v")]);
    emu.grant_only(TOKEN, Kind::ConfigMap, NS, &["envoy"]);
    let forbidden = [
        list_path(""),
        list_path("fieldSelector=metadata.name%3Dother"),
        list_path("fieldSelector=metadata.name%21%3Denvoy"),
        list_path("watch=1"),
        cm_path("other"),
        format!("/api/v1/namespaces/elsewhere/configmaps?fieldSelector=metadata.name%3Denvoy"),
        format!("/api/v1/namespaces/{NS}/secrets?fieldSelector=metadata.name%3Denvoy"),
        String::from("/api/v1/configmaps?fieldSelector=metadata.name%3Denvoy"),
    ];
    for path in &forbidden {
        let r = get(&emu, path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["reason"], "Forbidden", "{path}");
        let msg = v["message"].as_str().unwrap_or("");
        assert!(msg.contains(" is forbidden: User "), "{path}: {msg}");
    }
    let r = get(&emu, &list_path(""));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("configmaps is forbidden: User \"system:serviceaccount:default:"),
        "{}",
        r.text()
    );
    let allowed = [
        list_path("fieldSelector=metadata.name%3Denvoy"),
        list_path("fieldSelector=metadata.name%3D%3Denvoy"),
        cm_path("envoy"),
    ];
    for path in &allowed {
        assert_eq!(get(&emu, path).status, 200, "{path}");
    }
    let rv = emu.resource_version();
    let mut w = Watch::open(
        &emu,
        &format!(
            "fieldSelector=metadata.name%3Denvoy&watch=1&resourceVersion={rv}&timeoutSeconds=1"
        ),
    );
    assert_eq!(w.status, 200);
    assert_eq!(w.next(Duration::from_secs(20)), Next::End);
    // Writes are not granted, and other tokens are not limited.
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"envoy"},"data":{"k":"w"}}"#;
    assert_eq!(
        send(&emu, req("PUT", cm_path("envoy")).json(body)).status,
        403
    );
    emu.set_tokens(&[TOKEN, "admin"]);
    assert_eq!(
        send(&emu, req("GET", list_path("")).token(Some("admin"))).status,
        200
    );
}

#[test]
fn requests_record_what_lists_and_watches_served() {
    let emu = start(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    });
    emu.apply(NS, "r", &[("k", "1")]);
    let listed = get(&emu, &list_path("fieldSelector=metadata.name%3Dr"));
    let list_rv = rv_of(&listed.json());
    let rec = emu.requests().pop().expect("the list is recorded");
    assert_eq!(rec.list_rv, Some(list_rv));
    let mut w = Watch::open(
        &emu,
        &format!("fieldSelector=metadata.name%3Dr&watch=1&resourceVersion={list_rv}"),
    );
    let conn = emu.requests().pop().expect("the watch is recorded").conn;
    let changed = emu.apply(NS, "r", &[("k", "2")]);
    w.expect_event("MODIFIED");
    assert!(
        emu.wait_for(
            |e| e.watch_last_sent(conn) == Some(changed),
            Duration::from_secs(3)
        ),
        "the event's version: {:?}",
        emu.watch_last_sent(conn)
    );
    // Without bookmarks, a change to an object the watch does not select sends nothing.
    emu.apply(NS, "unwatched", &[("k", "1")]);
    w.expect_quiet(Duration::from_millis(300));
    assert_eq!(emu.watch_last_sent(conn), Some(changed));
    // With them, the next bookmark carries the newer version.
    let mut b = Watch::open(
        &emu,
        &format!("fieldSelector=metadata.name%3Dr&watch=1&resourceVersion={changed}&allowWatchBookmarks=true"),
    );
    let conn = emu.requests().pop().expect("the watch is recorded").conn;
    assert_eq!(emu.watch_last_sent(conn), None, "nothing sent yet");
    let elsewhere = emu.apply(NS, "unwatched", &[("k", "2")]);
    // (a bookmark sent just before the change carries the older version)
    let mut bookmarks = 0;
    while rv_of(&b.expect_event("BOOKMARK")["object"]) != elsewhere {
        bookmarks += 1;
        assert!(
            bookmarks < 3,
            "a bookmark with {elsewhere} within 3 bookmarks"
        );
    }
    assert!(
        emu.wait_for(
            |e| e.watch_last_sent(conn) == Some(elsewhere),
            Duration::from_secs(3)
        ),
        "the bookmark's version: {:?}",
        emu.watch_last_sent(conn)
    );
}

#[test]
fn a_restart_while_down_forgets_the_versions_before_it() {
    let emu = start(Options::default());
    let before = emu.apply(NS, "x", &[("k", "1")]);
    // Without a restart, a version from before the outage is served from history.
    emu.set_down(true);
    let during = emu.apply(NS, "x", &[("k", "2")]);
    emu.set_down(false);
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={before}"));
    let ev = w.expect_event("MODIFIED");
    assert_eq!(rv_of(&ev["object"]), during);
    // A restart while down rebuilds the cache when the server is back: older versions,
    // the one from just before the restart included, are too old.
    let last = emu.resource_version();
    emu.set_down(true);
    emu.restart();
    emu.apply(NS, "x", &[("k", "3")]);
    emu.set_down(false);
    for asked in [before, last] {
        let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={asked}"));
        assert_eq!(w.status, 200);
        let ev = w.expect_event("ERROR");
        assert_eq!(ev["object"]["code"], 410, "watch from {asked}");
        assert_eq!(w.next(Duration::from_secs(2)), Next::End);
    }
    let current = emu.resource_version();
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={current}"));
    emu.apply(NS, "x", &[("k", "4")]);
    w.expect_event("MODIFIED");
}

#[test]
fn fail_next_answers_proper_status() {
    let emu = start(Options::default());
    for (code, reason) in [
        (429, "TooManyRequests"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (403, "Forbidden"),
        (410, "Expired"),
        (401, "Unauthorized"),
        (404, "NotFound"),
    ] {
        emu.fail_next(2, code);
        for _ in 0..2 {
            let r = get(&emu, &list_path("watch=1"));
            assert_eq!(r.status, code);
            let v = r.json();
            assert_eq!(v["kind"], "Status");
            assert_eq!(v["reason"], reason);
            assert_eq!(v["code"], code);
            if code == 429 {
                assert_eq!(r.header("Retry-After"), Some("1"));
                assert_eq!(v["details"]["retryAfterSeconds"], 1);
            }
        }
        assert_eq!(get(&emu, &list_path("")).status, 200);
    }
    emu.fail_next_retry_after(1, 503, 7);
    let r = get(&emu, &list_path(""));
    assert_eq!((r.status, r.header("Retry-After")), (503, Some("7")));
    emu.fail_next(1, 503);
    assert_eq!(get(&emu, &list_path("")).header("Retry-After"), None);
}

#[test]
fn watch_faults() {
    let emu = start(Options::default());
    let rv = emu.apply(NS, "f", &[("k", "0")]);
    let q = format!("watch=1&resourceVersion={rv}");

    // drop_watches: no final chunk.
    let mut w = Watch::open(&emu, &q);
    assert!(emu.wait_for(|e| e.open_watches() == 1, Duration::from_secs(2)));
    emu.drop_watches();
    assert_eq!(w.next(Duration::from_secs(2)), Next::Eof);
    assert!(emu.wait_for(|e| e.open_watches() == 0, Duration::from_secs(2)));

    // expire_watches: ERROR 410 then a clean end.
    let mut w = Watch::open(&emu, &q);
    assert!(emu.wait_for(|e| e.open_watches() == 1, Duration::from_secs(2)));
    emu.expire_watches();
    let e = w.expect_event("ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(w.next(Duration::from_secs(2)), Next::End);

    // Garbage, then the stream goes on.
    let mut w = Watch::open(&emu, &q);
    emu.set_fault(Fault::GarbageNextEvent);
    emu.apply(NS, "f", &[("k", "1")]);
    match w.next(Duration::from_secs(2)) {
        Next::Chunk(c) => assert!(serde_json::from_slice::<Value>(&c).is_err()),
        other => panic!("{other:?}"),
    }
    emu.apply(NS, "f", &[("k", "2")]);
    assert_eq!(w.expect_event("MODIFIED")["object"]["data"]["k"], "2");

    // Huge: one line of exactly that size, still the event.
    emu.set_fault(Fault::HugeNextEvent(200_000));
    emu.apply(NS, "f", &[("k", "3")]);
    match w.next(Duration::from_secs(3)) {
        Next::Chunk(c) => {
            assert_eq!(c.len(), 200_000);
            let v: Value = serde_json::from_slice(&c).expect("json");
            assert_eq!(v["object"]["data"]["k"], "3");
        }
        other => panic!("{other:?}"),
    }

    // Truncate: half an event, then the connection drops.
    emu.set_fault(Fault::TruncateNextEvent);
    emu.apply(NS, "f", &[("k", "4")]);
    assert_eq!(w.next(Duration::from_secs(2)), Next::Eof);
    assert!(w.buf.len() > 10, "half an event arrived");

    // Silent watches: headers, then nothing.
    emu.set_silent_watches(true);
    let mut w = Watch::open(&emu, &q);
    assert_eq!(w.status, 200);
    emu.apply(NS, "f", &[("k", "5")]);
    w.expect_quiet(Duration::from_millis(300));
    assert!(emu.wait_for(|e| e.open_watches() == 1, Duration::from_secs(2)));
    emu.drop_watches();
    assert_eq!(w.next(Duration::from_secs(2)), Next::Eof);
    emu.set_silent_watches(false);

    // Restart: connections drop, history is gone, versions go on.
    let before = emu.resource_version();
    let mut w = Watch::open(&emu, &format!("watch=1&resourceVersion={before}"));
    assert!(emu.wait_for(|e| e.open_watches() == 1, Duration::from_secs(2)));
    emu.restart();
    assert_eq!(w.next(Duration::from_secs(2)), Next::Eof);
    let mut w = Watch::open(&emu, &q);
    w.expect_event("ERROR");
    assert!(emu.apply(NS, "f", &[("k", "6")]) > before);

    // A dropped request gets no answer at all.
    emu.set_fault(Fault::DropNextRequest);
    let mut s = connect(&emu).expect("connect");
    s.write_all(&req("GET", list_path("")).bytes())
        .expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty());
    assert_eq!(get(&emu, &list_path("")).status, 200);
}

#[test]
fn tls_faults_and_plain_http() {
    let emu = start(Options::default());
    assert!(connect(&emu).is_ok());
    emu.set_fault(Fault::TlsHandshakeFailure(true));
    let err = connect(&emu).err().expect("handshake must fail");
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );
    emu.set_fault(Fault::None);
    assert_eq!(get(&emu, &list_path("")).status, 200);

    let plain = start(Options {
        tls: false,
        ..Options::default()
    });
    assert!(plain.url().starts_with("http://127.0.0.1:"));
    plain.apply(NS, "p", &[("k", "v")]);
    assert_eq!(get(&plain, &cm_path("p")).json()["data"]["k"], "v");

    // Down: refused; back up on the same port.
    plain.set_down(true);
    assert!(TcpStream::connect(("127.0.0.1", plain.port())).is_err());
    plain.set_down(false);
    assert_eq!(get(&plain, &cm_path("p")).status, 200);
}

#[test]
fn request_bodies_chunked_and_expect_continue() {
    let emu = start(Options {
        tls: false,
        ..Options::default()
    });
    let body = br#"{"metadata":{"name":"ch"},"data":{"a":"b"}}"#;
    let mut s = connect(&emu).expect("connect");
    let mut head = format!("POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n", list_path("")).into_bytes();
    head.extend_from_slice(
        format!(
            "5\r\n{}\r\n{:x}\r\n",
            std::str::from_utf8(&body[..5]).unwrap_or(""),
            body.len() - 5
        )
        .as_bytes(),
    );
    head.extend_from_slice(&body[5..]);
    head.extend_from_slice(b"\r\n0\r\n\r\n");
    s.write_all(&head).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Pure helpers.

#[test]
fn base64_table() {
    use emulator::{base64_decode, base64_encode};
    let cases: &[(&[u8], &str)] = &[
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"\x00\xff\xfe", "AP/+"),
    ];
    for (raw, enc) in cases {
        assert_eq!(base64_encode(raw), *enc);
        assert_eq!(base64_decode(enc).as_deref(), Ok(*raw));
    }
    assert_eq!(base64_decode("Zm9v\r\nYg==").as_deref(), Ok(&b"foob"[..]));
    for bad in ["Zg", "Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg="] {
        assert!(base64_decode(bad).is_err(), "{bad}");
    }
}

#[test]
fn query_and_route_table() {
    use emulator::api::{parse_route, Target};
    use emulator::http::{parse_query, percent_decode};
    assert_eq!(
        parse_query("fieldSelector=metadata.name%3Dx&watch=1&a+b=c+d&flag").unwrap_or_default(),
        vec![
            ("fieldSelector".into(), "metadata.name=x".into()),
            ("watch".into(), "1".into()),
            ("a b".into(), "c d".into()),
            ("flag".into(), String::new())
        ]
    );
    assert!(parse_query("a=%zz").is_err());
    assert!(percent_decode("%4", false).is_err());
    assert_eq!(percent_decode("a+b%2F", false).as_deref(), Ok("a+b/"));
    let cases: &[(&str, Option<(bool, &str)>)] = &[
        (
            "/api/v1/namespaces/ns/configmaps",
            Some((false, "collection")),
        ),
        ("/api/v1/namespaces/ns/configmaps/x", Some((false, "item"))),
        ("/api/v1/namespaces/ns/secrets/x", Some((false, "item"))),
        ("/api/v1/configmaps", Some((false, "collection"))),
        (
            "/api/v1/watch/namespaces/ns/configmaps/x",
            Some((true, "collection")),
        ),
        ("/api/v1/watch/configmaps", Some((true, "collection"))),
        ("/version", Some((false, "version"))),
        ("/api/v1/namespaces/ns/pods", None),
        ("/api/v1/namespaces/ns/configmaps/", None),
        ("/api/v1/namespaces//configmaps", None),
        ("/", None),
    ];
    for (path, want) in cases {
        let got = parse_route(path).ok().map(|r| {
            let t = match r.target {
                Target::Collection { .. } => "collection",
                Target::Item { .. } => "item",
                Target::Version => "version",
                Target::Health => "health",
            };
            (r.watch_path, t)
        });
        assert_eq!(got, *want, "{path}");
    }
}

#[test]
fn selector_table() {
    use emulator::api::{parse_field_selector, parse_label_selector, LabelReq};
    assert_eq!(
        parse_field_selector("metadata.name=a,metadata.namespace!=b").map_err(|e| e.message),
        Ok(vec![
            ("metadata.name".into(), true, "a".into()),
            ("metadata.namespace".into(), false, "b".into())
        ])
    );
    assert!(parse_field_selector("spec.x=1").is_err());
    assert!(parse_field_selector("metadata.name").is_err());
    assert_eq!(
        parse_label_selector("a=b,!c,d,e in (x, y),f notin (z),g!=h").map_err(|e| e.message),
        Ok(vec![
            LabelReq::Eq("a".into(), "b".into()),
            LabelReq::NotExists("c".into()),
            LabelReq::Exists("d".into()),
            LabelReq::In("e".into(), vec!["x".into(), "y".into()]),
            LabelReq::NotIn("f".into(), vec!["z".into()]),
            LabelReq::Ne("g".into(), "h".into()),
        ])
    );
    assert!(parse_label_selector("a in x").is_err());
}

#[test]
fn config_key_table() {
    use emulator::config_key_errors;
    let long = "a".repeat(254);
    let ok_253 = "a".repeat(253);
    let cases: &[(&str, usize)] = &[
        ("a", 0),
        ("key.name", 0),
        ("KEY_NAME-1", 0),
        (".hidden", 0),
        ("a..b", 0),
        (&ok_253, 0),
        ("", 1),
        (".", 1),
        ("..", 1),
        ("..data", 1),
        ("a/b", 1),
        ("a b", 1),
        ("é", 1),
        (&long, 1),
    ];
    for (key, n) in cases {
        assert_eq!(
            config_key_errors(key).len(),
            *n,
            "{key:?}: {:?}",
            config_key_errors(key)
        );
    }
}

#[test]
fn text_tools_table() {
    use emulator::text::{indent, rewrite_metadata};
    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"{}"#,
            Some(r#"{"metadata":{"name":"n","namespace":"s","resourceVersion":"7"}}"#),
        ),
        (
            r#"{"a":1}"#,
            Some(r#"{"metadata":{"name":"n","namespace":"s","resourceVersion":"7"},"a":1}"#),
        ),
        (
            r#"{"metadata":{}}"#,
            Some(r#"{"metadata":{"name":"n","namespace":"s","resourceVersion":"7"}}"#),
        ),
        (
            r#"{ "metadata" : { "name" : "x", "uid":"u", "name":"y" } }"#,
            Some(
                r#"{ "metadata" : {"namespace":"s","resourceVersion":"7", "name" : "n", "uid":"u", "name":"n" } }"#,
            ),
        ),
        (
            r#"{"data":{"metadata":"not this"},"metadata":{"resourceVersion":"1"}}"#,
            Some(
                r#"{"data":{"metadata":"not this"},"metadata":{"name":"n","namespace":"s","resourceVersion":"7"}}"#,
            ),
        ),
        (
            r#"{"metadata":"str"}"#,
            Some(r#"{"metadata":{"name":"n","namespace":"s","resourceVersion":"7"}}"#),
        ),
        (
            r#"{"\u006detadata":{}}"#,
            Some(r#"{"\u006detadata":{"name":"n","namespace":"s","resourceVersion":"7"}}"#),
        ),
        ("[1]", None),
        ("{\"a\":", None),
        ("", None),
    ];
    for (input, want) in cases {
        assert_eq!(
            rewrite_metadata(input, "s", "n", 7).as_deref(),
            *want,
            "{input}"
        );
    }
    for v in [
        serde_json::json!({"a": [1, {"b": {}}, []], "c": "x, y: {z}", "d": {"e": null}}),
        serde_json::json!([]),
        serde_json::json!({"k": "\"quoted\" \\ and \n"}),
    ] {
        let compact = serde_json::to_string(&v).unwrap_or_default();
        let want = serde_json::to_string_pretty(&v).unwrap_or_default();
        assert_eq!(indent(&compact), want);
    }
}

#[test]
fn split_pieces_cover_every_byte() {
    use emulator::watch::split_pieces;
    for len in [1usize, 2, 3, 7, 100, 10_000] {
        let mut data = vec![b'x'; len - 1];
        data.push(b'\n');
        let pieces = split_pieces(&data);
        assert_eq!(pieces.concat(), data);
        assert!(pieces.iter().all(|p| !p.is_empty()));
        if len > 1 {
            assert_eq!(pieces.last().copied(), Some(&b"\n"[..]));
        }
        assert!(pieces.iter().all(|p| p.len() <= 4096));
    }
    let text = "{\"k\":\"ab€\"}\n".repeat(3);
    let pieces = split_pieces(text.as_bytes());
    assert_eq!(pieces.concat(), text.as_bytes());
    assert!(pieces.iter().any(|p| std::str::from_utf8(p).is_err()));
}

#[test]
fn http_head_parsing_table() {
    use emulator::http::parse_head;
    let ok = parse_head(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-A:  v \r\n\r\n").expect("valid");
    assert_eq!(
        (ok.method.as_str(), ok.path.as_str(), ok.query.as_str()),
        ("GET", "/a", "b=c")
    );
    assert_eq!(ok.header("x-a"), Some("v"));
    for bad in [
        &b"GET /a\r\n\r\n"[..],
        b"GET /a HTTP/2\r\n\r\n",
        b"get /a HTTP/1.1\r\n\r\n",
        b"GET a HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET /a  HTTP/1.1\r\n\r\n",
    ] {
        assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn cli_flags_table() {
    use emulator::cli::{parse_args, Command};
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    match parse_args(args("--listen 127.0.0.1:0 --plain --token a --token b --bookmark-interval 0.5 --history 5 --chunking split --quiet")) {
        Ok(Command::Run(o)) => {
            assert_eq!(o.addr, "127.0.0.1:0");
            assert!(!o.tls);
            assert_eq!(o.tokens, ["a", "b"]);
            assert_eq!(o.bookmark_interval, Duration::from_millis(500));
            assert_eq!(o.history_limit, 5);
            assert_eq!(o.chunking, Chunking::Split);
            assert!(!o.log_requests);
        }
        other => panic!("{other:?}"),
    }
    match parse_args(Vec::new()) {
        Ok(Command::Run(o)) => {
            assert_eq!(o.addr, "127.0.0.1:6443");
            assert!(o.tls);
            assert_eq!(o.tokens, ["test-token"]);
            assert!(o.log_requests);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse_args(args("--help")), Ok(Command::Help)));
    for bad in [
        "--nope",
        "--listen",
        "--history 0",
        "--history x",
        "--bookmark-interval -1",
        "--chunking odd",
        "--token",
    ] {
        let e = parse_args(args(bad)).err().unwrap_or_default();
        assert!(e.contains("--"), "{bad}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors, paging, cluster-wide lists and watches (as measured against v1.20.2).

/// Creates or replaces ConfigMap `ns/name` with `labels` (JSON object text) over HTTP.
fn put_labeled(emu: &Emulator, ns: &str, name: &str, labels: &str, value: &str) -> u64 {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{labels}}},"data":{{"k":"{value}"}}}}"#
    );
    let coll = format!("/api/v1/namespaces/{ns}/configmaps");
    let mut r = send(emu, req("POST", coll.clone()).json(&body));
    if r.status == 409 {
        r = send(emu, req("PUT", format!("{coll}/{name}")).json(&body));
    }
    assert!(matches!(r.status, 200 | 201), "{}", r.text());
    rv_of(&r.json())
}

fn names_of(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    let m = &i["metadata"];
                    format!(
                        "{}/{}",
                        m["namespace"].as_str().unwrap_or(""),
                        m["name"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn label_selector_forms_match_as_kubernetes() {
    use emulator::labels::parse;
    let labels = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let web = labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("app.kubernetes.io/name", "envoy"),
        ("n", "5"),
    ]);
    let none = labels(&[]);
    // (selector, matches `web`, matches an object without labels)
    let table: &[(&str, bool, bool)] = &[
        ("app=web", true, false),
        ("app==web", true, false),
        ("app=db", false, false),
        ("app!=db", true, true),
        ("app!=web", false, true),
        ("app in (web,db)", true, false),
        ("app in (db)", false, false),
        ("app notin (db)", true, true),
        ("app notin (web, db)", false, true),
        ("app", true, false),
        ("!app", false, true),
        ("missing", false, false),
        ("!missing", true, true),
        ("app=web,tier=front", true, false),
        ("app=web,tier=back", false, false),
        ("app.kubernetes.io/name=envoy", true, false),
        ("app.kubernetes.io/name in (envoy)", true, false),
        ("  app  =  web  ,  !missing  ", true, false),
        ("app  in(web)", true, false),
        ("app=", false, false),
        ("app notin ()", true, true),
        ("n>4", true, false),
        ("n<5", false, false),
        ("", true, true),
        ("in=x", false, false),
    ];
    for (sel, m_web, m_none) in table {
        let reqs = parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
        assert_eq!(
            reqs.iter().all(|r| r.matches(&web)),
            *m_web,
            "{sel:?} on web"
        );
        assert_eq!(
            reqs.iter().all(|r| r.matches(&none)),
            *m_none,
            "{sel:?} on none"
        );
    }
    // The server's own messages (measured against v1.20.2).
    let errors: &[(&str, &str)] = &[
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("a b", "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a=b,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a!", "unable to parse requirement: found '!', expected: '=', '!=', '==', 'in', notin'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
        ("-a=b", "unable to parse requirement: invalid label key \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
        ("a=-b", "unable to parse requirement: invalid label value: \"-b\": at key: \"a\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
        ("x/y/z", "unable to parse requirement: invalid label key \"x/y/z\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
        ("A.b/c=d", "unable to parse requirement: invalid label key \"A.b/c\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        (&"a".repeat(64), "unable to parse requirement: invalid label key \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": name part must be no more than 63 characters"),
        ("n>x", "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"),
    ];
    for (sel, msg) in errors {
        assert_eq!(parse(sel).err().as_deref(), Some(*msg), "{sel:?}");
    }
    // Over HTTP: 400 BadRequest with the same message, and matching on real objects.
    let emu = start(Options::default());
    put_labeled(&emu, NS, "web", r#"{"app":"web"}"#, "v");
    put_labeled(&emu, NS, "bare", "{}", "v");
    for (sel, msg) in errors.iter().take(4) {
        let r = get(&emu, &list_path(&format!("labelSelector={}", enc(sel))));
        assert_eq!(r.status, 400, "{sel:?}: {}", r.text());
        let v = r.json();
        assert_eq!(
            (v["reason"].as_str(), v["message"].as_str()),
            (Some("BadRequest"), Some(*msg))
        );
    }
    let listed =
        |sel: &str| names_of(&get(&emu, &list_path(&format!("labelSelector={}", enc(sel)))).json());
    assert_eq!(listed("app!=db"), ["default/bare", "default/web"]);
    assert_eq!(listed("app notin (web)"), ["default/bare"]);
    assert_eq!(listed("app"), ["default/web"]);
    assert_eq!(listed("!app"), ["default/bare"]);
    // Field and label selectors combine (AND).
    let r = get(
        &emu,
        &list_path("labelSelector=app%21%3Ddb&fieldSelector=metadata.name%3Dweb"),
    );
    assert_eq!(names_of(&r.json()), ["default/web"]);
}

fn continue_of(v: &Value) -> Option<String> {
    v["metadata"]["continue"].as_str().map(str::to_string)
}

#[test]
fn paged_cluster_wide_lists_answer_every_page_at_the_first_version() {
    let emu = start(Options::default());
    for (ns, name) in [
        ("b", "c3"),
        ("a", "c1"),
        ("a-b", "c0"),
        ("a", "c2"),
        ("c", "c5"),
        ("b", "c4"),
        ("c", "c6"),
    ] {
        put_labeled(&emu, ns, name, r#"{"app":"x"}"#, "v1");
    }
    // etcd key order: "a-b/…" before "a/…" ('-' < '/').
    let order = ["a-b/c0", "a/c1", "a/c2", "b/c3", "b/c4", "c/c5", "c/c6"];
    let whole = get(&emu, "/api/v1/configmaps").json();
    assert_eq!(names_of(&whole), order);
    assert_eq!(continue_of(&whole), None);

    let first = get(&emu, "/api/v1/configmaps?limit=2").json();
    let version = rv_of(&first);
    assert_eq!(names_of(&first), &order[..2]);
    assert_eq!(first["metadata"]["remainingItemCount"], 5);
    // A change between pages (c5, on page 3) must not show: every page is at `version`.
    put_labeled(&emu, "c", "c5", r#"{"app":"x"}"#, "v2");
    put_labeled(&emu, "a", "z-new", r#"{"app":"x"}"#, "v1");
    let mut seen = names_of(&first);
    let mut token = continue_of(&first);
    let mut pages = 1;
    while let Some(t) = token {
        let v = get(&emu, &format!("/api/v1/configmaps?limit=2&continue={t}")).json();
        assert_eq!(rv_of(&v), version, "{v}");
        for item in v["items"].as_array().into_iter().flatten() {
            assert_eq!(item["data"]["k"], "v1", "{item}");
        }
        let left = order.len() - seen.len() - names_of(&v).len();
        match continue_of(&v) {
            Some(_) => assert_eq!(v["metadata"]["remainingItemCount"], left as u64),
            None => assert!(v["metadata"].get("remainingItemCount").is_none()),
        }
        seen.extend(names_of(&v));
        token = continue_of(&v);
        pages += 1;
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, order);
    // Without `limit` a token lists the rest; with a selector no count is given.
    let t = continue_of(&first).unwrap_or_default();
    assert_eq!(
        names_of(&get(&emu, &format!("/api/v1/configmaps?continue={t}")).json()),
        &order[2..]
    );
    let v = get(&emu, "/api/v1/configmaps?limit=2&labelSelector=app%3Dx").json();
    assert!(continue_of(&v).is_some() && v["metadata"].get("remainingItemCount").is_none());
    // limit with resourceVersion=0 is answered whole (from the cache); a namespace pages too.
    let v = get(&emu, "/api/v1/configmaps?limit=2&resourceVersion=0").json();
    assert_eq!((names_of(&v).len(), continue_of(&v)), (8, None));
    let v = get(&emu, "/api/v1/namespaces/a/configmaps?limit=1").json();
    assert_eq!(
        (names_of(&v), v["metadata"]["remainingItemCount"].as_u64()),
        (vec![String::from("a/c1")], Some(2))
    );
    // limit=abc: 400 as the server says it.
    let r = get(&emu, "/api/v1/configmaps?limit=abc");
    assert_eq!(
        (r.status, r.json()["message"].as_str().map(str::to_string)),
        (
            400,
            Some(String::from(
                "strconv.ParseInt: parsing \"abc\": invalid syntax"
            ))
        )
    );
}

#[test]
fn expired_and_malformed_continue_tokens() {
    let emu = start(Options::default());
    for name in ["a", "b", "c", "d"] {
        put_labeled(&emu, NS, name, "{}", "v");
    }
    let first = get(&emu, &list_path("limit=1")).json();
    let token = continue_of(&first).unwrap_or_default();
    assert_eq!(
        get(&emu, &list_path(&format!("limit=1&continue={token}"))).status,
        200
    );
    // Forced expiry, then compaction: HTTP 410 Expired with the server's message and a
    // token (rv -1) that lists the rest at the current version.
    for force in [true, false] {
        if force {
            emu.set_expire_continue_tokens(true);
        } else {
            emu.set_expire_continue_tokens(false);
            put_labeled(&emu, NS, "e", "{}", "v");
            emu.compact();
        }
        let r = get(&emu, &list_path(&format!("limit=1&continue={token}")));
        assert_eq!(r.status, 410, "{}", r.text());
        let v = r.json();
        assert_eq!(v["reason"], "Expired");
        assert_eq!(v["code"], 410);
        assert_eq!(v["message"], "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.");
        assert!(v.get("details").is_none(), "{v}");
        let fresh = continue_of(&v).expect("a token in the Status metadata");
        assert_eq!(emulator::paging::decode(&fresh).map(|t| t.rv), Ok(-1));
        let rest = get(&emu, &list_path(&format!("limit=10&continue={fresh}"))).json();
        assert_eq!(rv_of(&rest), emu.resource_version());
        assert_eq!(names_of(&rest)[0], "default/b");
    }
    // Malformed tokens and a token with a version: 400, as the server words them.
    let b64 = |s: &str| {
        emulator::base64_encode(s.as_bytes())
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    };
    let bad = [
        (String::from("!!!"), "invalid continue token: continue key is not valid: illegal base64 data at input byte 0"),
        (b64(r#"{"v":"x"}"#), "invalid continue token: continue key is not valid: server does not recognize this encoded version \"x\""),
        (b64(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#), "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
        (b64(r#"{"v":"meta.k8s.io/v1","rv":5,"start":""}"#), "invalid continue token: continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"),
        (b64(r#"{"v":"meta.k8s.io/v1","rv":5,"start":"../x"}"#), "invalid continue token: continue key is not valid: ../x"),
    ];
    for (t, msg) in &bad {
        let r = get(&emu, &list_path(&format!("limit=1&continue={t}")));
        assert_eq!(r.status, 400, "{t}");
        assert_eq!(r.json()["message"], *msg, "{t}");
        assert_eq!(r.json()["reason"], "BadRequest");
    }
    let r = get(&emu, &list_path("limit=1&continue=Z2FyYmFnZQ"));
    assert_eq!(r.status, 400);
    let t = continue_of(&get(&emu, &list_path("limit=1")).json()).unwrap_or_default();
    let r = get(
        &emu,
        &list_path(&format!("limit=1&continue={t}&resourceVersion=5")),
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str().map(str::to_string)),
        (
            400,
            Some(String::from(
                "specifying resource version is not allowed when using continue"
            ))
        )
    );
}

#[test]
fn label_watches_and_cluster_wide_watches_see_selection_changes() {
    let emu = start(Options::default());
    let rv = put_labeled(&emu, "a", "w", r#"{"app":"x"}"#, "v1");
    put_labeled(&emu, "b", "other", r#"{"app":"y"}"#, "v1");
    let mut ns_watch = Watch::open_target(
        &emu,
        &format!(
            "/api/v1/namespaces/a/configmaps?watch=1&resourceVersion={rv}&labelSelector=app%3Dx"
        ),
    );
    let mut all = Watch::open_target(
        &emu,
        &format!("/api/v1/configmaps?watch=1&resourceVersion={rv}&labelSelector=app%3Dx"),
    );
    let both = Watch::open_target(&emu, &format!("/api/v1/configmaps?watch=1&resourceVersion={rv}&labelSelector=app%3Dx&fieldSelector=metadata.namespace%3Db"));
    let out = put_labeled(&emu, "a", "w", r#"{"app":"y"}"#, "v2");
    let back = put_labeled(&emu, "a", "w", r#"{"app":"x"}"#, "v3");
    let into_b = put_labeled(&emu, "b", "other", r#"{"app":"x"}"#, "v2");
    let gone = emu.delete("a", "w").unwrap_or(0);
    for w in [&mut ns_watch, &mut all] {
        // Leaving the selection: DELETED with the object as it was, at the change's version.
        let ev = w.expect_event("DELETED");
        assert_eq!(ev["object"]["metadata"]["labels"]["app"], "x", "{ev}");
        assert_eq!(ev["object"]["data"]["k"], "v1", "{ev}");
        assert_eq!(rv_of(&ev["object"]), out);
        let ev = w.expect_event("ADDED");
        assert_eq!(
            (rv_of(&ev["object"]), ev["object"]["data"]["k"].as_str()),
            (back, Some("v3"))
        );
    }
    let ev = all.expect_event("ADDED");
    assert_eq!(
        (
            ev["object"]["metadata"]["namespace"].as_str(),
            rv_of(&ev["object"])
        ),
        (Some("b"), into_b)
    );
    for w in [&mut ns_watch, &mut all] {
        let ev = w.expect_event("DELETED");
        assert_eq!(rv_of(&ev["object"]), gone);
    }
    ns_watch.expect_quiet(Duration::from_millis(300));
    // Label AND field selector: only b/other, when it entered the selection.
    let mut both = both;
    let ev = both.expect_event("ADDED");
    assert_eq!(rv_of(&ev["object"]), into_b);
    both.expect_quiet(Duration::from_millis(300));
    // Cluster-wide lists and the deprecated watch path serve every namespace.
    let v = get(&emu, "/api/v1/configmaps?labelSelector=app%3Dx").json();
    assert_eq!(names_of(&v), ["b/other"]);
    let mut w = Watch::open_target(&emu, "/api/v1/watch/configmaps?labelSelector=app");
    assert_eq!(
        w.expect_event("ADDED")["object"]["metadata"]["name"],
        "other"
    );
    emu.apply_secret("c", "s", &[("k", b"v")]);
    assert_eq!(names_of(&get(&emu, "/api/v1/secrets").json()), ["c/s"]);
}

#[test]
fn a_namespaced_grant_is_forbidden_cluster_wide() {
    let emu = start(Options::default());
    put_labeled(&emu, "a", "x", r#"{"app":"x"}"#, "v");
    put_labeled(&emu, "b", "y", r#"{"app":"x"}"#, "v");
    emu.grant_in_namespaces(TOKEN, Kind::ConfigMap, &["a"]);
    assert_eq!(
        get(&emu, "/api/v1/namespaces/a/configmaps?labelSelector=app").status,
        200
    );
    assert_eq!(get(&emu, "/api/v1/namespaces/a/configmaps/x").status, 200);
    let forbidden = [
        ("/api/v1/configmaps?labelSelector=app", "configmaps is forbidden: User \"system:serviceaccount:a:envoy-xds-loader\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope"),
        ("/api/v1/configmaps?fieldSelector=metadata.namespace%3Da", "configmaps is forbidden: User \"system:serviceaccount:a:envoy-xds-loader\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope"),
        ("/api/v1/configmaps?watch=1", "configmaps is forbidden: User \"system:serviceaccount:a:envoy-xds-loader\" cannot watch resource \"configmaps\" in API group \"\" at the cluster scope"),
        ("/api/v1/secrets", "secrets is forbidden: User \"system:serviceaccount:a:envoy-xds-loader\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"),
        ("/api/v1/namespaces/b/configmaps", "configmaps is forbidden: User \"system:serviceaccount:a:envoy-xds-loader\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"b\""),
    ];
    for (path, msg) in forbidden {
        let r = get(&emu, path);
        assert_eq!(r.status, 403, "{path}");
        let v = r.json();
        assert_eq!(
            (v["reason"].as_str(), v["message"].as_str()),
            (Some("Forbidden"), Some(msg)),
            "{path}"
        );
        assert_eq!(
            v["details"],
            serde_json::json!({"kind": path.split(['/', '?']).nth(3).filter(|s| *s != "namespaces").unwrap_or("configmaps")})
        );
    }
    // A second namespace's Role does not make it cluster-wide; a ClusterRole does.
    emu.grant_in_namespaces(TOKEN, Kind::ConfigMap, &["b"]);
    assert_eq!(get(&emu, "/api/v1/namespaces/b/configmaps").status, 200);
    assert_eq!(get(&emu, "/api/v1/configmaps").status, 403);
    emu.grant_cluster_wide(TOKEN, Kind::ConfigMap);
    assert_eq!(
        names_of(&get(&emu, "/api/v1/configmaps").json()),
        ["a/x", "b/y"]
    );
    assert_eq!(get(&emu, "/api/v1/secrets").status, 403);
    assert_eq!(
        send(&emu, req("DELETE", "/api/v1/namespaces/a/configmaps/x")).status,
        403
    );
}
