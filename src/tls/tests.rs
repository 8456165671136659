//! Tests of the TLS layer against in-process rustls servers on loopback: trust choices,
//! SNI and IP SANs, TLS 1.2 and 1.3, endings without close_notify, CA rotation.

use super::*;
use crate::http;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ServerConfig, ServerConnection};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem");
const OTHER_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/other-ca.pem");
const SERVER_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/server.pem");
const SERVER_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/server.key");

const SECOND: Duration = Duration::from_secs(1);
const OK_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A unique temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tls-test-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn ca_file_loading() {
    let dir = TempDir::new();
    let ca = read(CA);
    let other = read(OTHER_CA);
    let bundle = [ca.clone(), other.clone()].concat();
    let bad_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
    let bad_then_good = [bad_der.clone(), ca.clone()].concat();
    let bad_base64 = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let unterminated = &ca[..ca.len() - 30];
    let with_key = [read(SERVER_KEY), ca.clone()].concat();
    let key_only = read(SERVER_KEY);
    let mut too_big = ca.clone();
    too_big.resize(MAX_CA_FILE_BYTES as usize + 1, b'\n');
    // (file name, content or None for a missing file, Ok(number of roots) or a part of
    // the error)
    type Case<'a> = (&'a str, Option<&'a [u8]>, Result<usize, &'a str>);
    let cases: Vec<Case> = vec![
        ("ca.pem", Some(&ca), Ok(1)),
        ("bundle.pem", Some(&bundle), Ok(2)),
        ("bad-then-good.pem", Some(&bad_then_good), Ok(1)),
        ("with-key.pem", Some(&with_key), Ok(1)),
        ("empty.pem", Some(b""), Err("no certificate found")),
        (
            "garbage.pem",
            Some(b"hello\x00\xff world\n"),
            Err("no certificate found"),
        ),
        ("key-only.pem", Some(&key_only), Err("no certificate found")),
        (
            "bad-der.pem",
            Some(&bad_der),
            Err("no valid certificate (1 blocks"),
        ),
        (
            "bad-base64.pem",
            Some(bad_base64),
            Err("no valid certificate (1 blocks"),
        ),
        (
            "unterminated.pem",
            Some(unterminated),
            Err("no valid certificate"),
        ),
        (
            "big.pem",
            Some(&too_big),
            Err("larger than the limit of 8388608 bytes"),
        ),
        ("missing.pem", None, Err("no such file or directory")),
    ];
    for (name, content, want) in cases {
        let path = match content {
            Some(c) => dir.file(name, c),
            None => dir.0.join(name),
        };
        let got = load_ca_file(&path)
            .map(|roots| roots.len())
            .map_err(|e| match e {
                Error::CaFile(m) => m,
                other => panic!("{name}: not a CA file error: {other:?}"),
            });
        match (&got, want) {
            (Ok(n), Ok(w)) => assert_eq!(*n, w, "{name}"),
            (Err(e), Err(w)) => {
                assert!(e.contains(w), "{name}: {e}");
                assert!(
                    e.starts_with(&format!("ca file {}: ", path.display())),
                    "{e}"
                );
            }
            _ => panic!("{name}: got {got:?}, want {want:?}"),
        }
        // The same through client_config.
        assert_eq!(
            client_config(&Trust::CaFile(path.clone())).is_ok(),
            want.is_ok(),
            "{name}"
        );
    }
}

#[test]
fn describe_errors() {
    let cases = [
        (io::Error::from_raw_os_error(111), "connection refused"),
        (io::Error::from(io::ErrorKind::WouldBlock), "timed out"),
        (
            io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
            "timed out",
        ),
        (io::Error::other("TLS thing"), "TLS thing"),
        (
            io::Error::other("invalid peer certificate: UnknownIssuer"),
            "invalid peer certificate: UnknownIssuer",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(describe(&e), want);
    }
}

#[test]
fn client_provider_loads_no_private_key() {
    let key = PrivateKeyDer::from_pem_file(SERVER_KEY).unwrap();
    let err = provider().key_provider.load_private_key(key).unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
    // The same key loads with ring's full provider: the refusal is ours, not the key's.
    let key = PrivateKeyDer::from_pem_file(SERVER_KEY).unwrap();
    assert!(rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .is_ok());
}

fn server_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(SERVER_CERT)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(SERVER_KEY).unwrap();
    // The server side signs, so it needs ring's own key provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// What the test server saw: the request head, and the SNI for TLS.
#[derive(Debug)]
struct Seen {
    request: Vec<u8>,
    sni: Option<String>,
}

#[derive(Clone, Copy)]
enum Ending {
    /// Send close_notify, then close.
    CloseNotify,
    /// Close the TCP connection without close_notify.
    Abrupt,
}

fn read_request<S: Read>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || req.len() > 65536 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        req.extend_from_slice(&buf[..n]);
    }
    Ok(req)
}

/// Serves one connection on `listener`: TLS with `config`, or plain; answers the first
/// request with `response`.
fn serve_one(
    listener: TcpListener,
    config: Option<Arc<ServerConfig>>,
    response: &'static [u8],
    ending: Ending,
) -> JoinHandle<Result<Seen, String>> {
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(5 * SECOND)).unwrap();
        tcp.set_write_timeout(Some(5 * SECOND)).unwrap();
        let Some(config) = config else {
            let mut tcp = tcp;
            let request = read_request(&mut tcp).map_err(|e| e.to_string())?;
            tcp.write_all(response).map_err(|e| e.to_string())?;
            return Ok(Seen { request, sni: None });
        };
        let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);
        let request = read_request(&mut tls).map_err(|e| e.to_string())?;
        let sni = tls.conn.server_name().map(str::to_string);
        tls.write_all(response).map_err(|e| e.to_string())?;
        if let Ending::CloseNotify = ending {
            tls.conn.send_close_notify();
        }
        tls.flush().map_err(|e| e.to_string())?;
        Ok(Seen { request, sni })
    })
}

fn listen(addr: &str) -> Option<(TcpListener, u16)> {
    let listener = TcpListener::bind((addr, 0)).ok()?;
    let port = listener.local_addr().ok()?.port();
    Some((listener, port))
}

/// Connects, sends a GET, and returns the body.
fn fetch(host: &str, port: u16, trust: Option<&Trust>) -> Result<Vec<u8>, String> {
    let config = trust.map(|t| client_config(t).unwrap());
    let mut stream =
        connect(host, port, config.as_ref(), 2 * SECOND, 5 * SECOND).map_err(|e| e.to_string())?;
    let req = http::Request {
        method: "GET",
        host,
        path_and_query: "/api",
        headers: &[],
        body: b"",
    };
    http::write_request(&mut stream, &req).map_err(|e| e.to_string())?;
    let mut resp = http::read_response(&mut stream, false).map_err(|e| e.to_string())?;
    resp.read_body(1000).map_err(|e| e.to_string())
}

#[test]
fn tls_loopback() {
    let (ca, other) = (&Trust::CaFile(CA.into()), &Trust::CaFile(OTHER_CA.into()));
    let (ins, web) = (&Trust::Insecure, &Trust::WebPkiRoots);
    let (ok, cn, abrupt) = (OK_RESPONSE, Ending::CloseNotify, Ending::Abrupt);
    let both = &[&rustls::version::TLS13, &rustls::version::TLS12][..];
    let tls12 = &[&rustls::version::TLS12][..];
    let unclosed: &'static [u8] = b"HTTP/1.1 200 OK\r\n\r\nread to close";
    let bad_ca = "invalid peer certificate: UnknownIssuer";
    let bad_name = "invalid peer certificate: certificate not valid for name";
    let (lo, lo2) = ("127.0.0.1", "127.0.0.2");
    // (bind address, host to connect to, server versions, trust, response, ending,
    // Ok(body, expected SNI) or a part of the error)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'static rustls::SupportedProtocolVersion],
        &'a Trust,
        &'static [u8],
        Ending,
        Result<(&'a [u8], Option<&'a str>), &'a str>,
    );
    let served: Result<(&[u8], Option<&str>), &str> = Ok((b"ok", None));
    let cases: Vec<Case> = vec![
        (lo, lo, both, ca, ok, cn, served),
        (
            lo,
            "localhost",
            both,
            ca,
            ok,
            cn,
            Ok((b"ok", Some("localhost"))),
        ),
        (lo, lo, tls12, ca, ok, cn, served),
        (lo, lo, both, ca, ok, abrupt, served),
        (
            lo,
            lo,
            both,
            ca,
            unclosed,
            abrupt,
            Ok((b"read to close", None)),
        ),
        (lo, lo, both, ca, unclosed, cn, Ok((b"read to close", None))),
        (lo, lo, both, ins, ok, cn, served),
        (
            lo,
            "localhost",
            tls12,
            ins,
            ok,
            cn,
            Ok((b"ok", Some("localhost"))),
        ),
        ("::1", "[::1]", both, ca, ok, cn, served),
        ("::1", "::1", both, ca, ok, cn, served),
        (lo, lo, both, other, ok, cn, Err(bad_ca)),
        (lo, "localhost", tls12, other, ok, cn, Err(bad_ca)),
        (lo, lo, both, web, ok, cn, Err(bad_ca)),
        // 127.0.0.2 is not among the certificate's IP SANs.
        (lo2, lo2, both, ca, ok, cn, Err(bad_name)),
        (lo2, lo2, both, ins, ok, cn, served),
    ];
    for (bind, host, versions, trust, response, ending, want) in cases {
        let ctx = format!("{bind} {host} {trust:?} {}", versions.len());
        let Some((listener, port)) = listen(bind) else {
            eprintln!("skipped {ctx}: cannot bind {bind}");
            continue;
        };
        let server = serve_one(listener, Some(server_config(versions)), response, ending);
        let got = fetch(host, port, Some(trust));
        match (&got, want) {
            (Ok(body), Ok((want_body, want_sni))) => {
                assert_eq!(body, want_body, "{ctx}");
                let seen = server.join().unwrap().unwrap();
                assert_eq!(seen.sni.as_deref(), want_sni, "{ctx}");
                let text = String::from_utf8(seen.request).unwrap();
                assert!(text.starts_with("GET /api HTTP/1.1\r\n"), "{text}");
                assert!(text.contains(&format!("\r\nHost: {host}\r\n")), "{text}");
            }
            (Err(e), Err(part)) => {
                let target = match host {
                    "::1" | "[::1]" => format!("[::1]:{port}"),
                    _ => format!("{host}:{port}"),
                };
                let prefix = format!("tls handshake with {target}: ");
                assert!(e.starts_with(&prefix), "{ctx}: {e}");
                assert!(e.contains(part), "{ctx}: {e}");
                // The server saw the handshake fail.
                assert!(server.join().unwrap().is_err(), "{ctx}");
            }
            _ => panic!("{ctx}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn plain_tcp() {
    let (listener, port) = listen("127.0.0.1").unwrap();
    let server = serve_one(listener, None, OK_RESPONSE, Ending::Abrupt);
    assert_eq!(fetch("127.0.0.1", port, None).unwrap(), b"ok");
    let seen = server.join().unwrap().unwrap();
    assert!(seen
        .request
        .starts_with(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
}

#[test]
fn plain_client_to_tls_server_fails_cleanly() {
    let (listener, port) = listen("127.0.0.1").unwrap();
    let _server = serve_one(
        listener,
        Some(server_config(&[&rustls::version::TLS13])),
        OK_RESPONSE,
        Ending::Abrupt,
    );
    // The TLS server answers the plain request with an alert: not an HTTP status line.
    let e = fetch("127.0.0.1", port, None).unwrap_err();
    assert!(e.starts_with("http: "), "{e}");
}

#[test]
fn connect_errors() {
    // A port that was just free: nothing listens on it.
    let (listener, port) = listen("127.0.0.1").unwrap();
    drop(listener);
    let e = connect("127.0.0.1", port, None, SECOND, SECOND)
        .err()
        .unwrap();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(
        e.to_string(),
        format!("connect 127.0.0.1:{port}: connection refused")
    );
    let config = client_config(&Trust::Insecure).unwrap();
    let e = connect("127.0.0.1", port, Some(&config), SECOND, SECOND)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        format!("connect 127.0.0.1:{port}: connection refused")
    );

    let cases = [
        ("", "connect \"\": bad host"),
        ("[::1", "connect \"[::1\": bad host"),
        ("[127.0.0.1]", "connect \"[127.0.0.1]\": bad host"),
        ("[]", "connect \"[]\": bad host"),
    ];
    for (host, want) in cases {
        let e = connect(host, 1, None, SECOND, SECOND).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{host}");
        assert_eq!(e.to_string(), want);
    }
    // A name that cannot resolve (.invalid is reserved, RFC 6761).
    let e = connect("no-such-host.invalid", 443, None, SECOND, SECOND)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("connect no-such-host.invalid:443: "),
        "{e}"
    );
}

#[test]
fn read_timeout_through_read_response() {
    let (listener, port) = listen("127.0.0.1").unwrap();
    let silent = std::thread::spawn(move || {
        // Accept, read the request, then say nothing until the client gives up.
        let (mut tcp, _) = listener.accept().unwrap();
        let _ = read_request(&mut tcp);
        let mut buf = [0u8; 16];
        tcp.set_read_timeout(Some(10 * SECOND)).unwrap();
        let _ = tcp.read(&mut buf);
    });
    let timeout = Duration::from_millis(200);
    let mut stream = connect("127.0.0.1", port, None, SECOND, timeout).unwrap();
    let req = http::Request {
        method: "GET",
        host: "127.0.0.1",
        path_and_query: "/",
        headers: &[],
        body: b"",
    };
    http::write_request(&mut stream, &req).unwrap();
    let start = Instant::now();
    let got = http::read_response(&mut stream, false).err().unwrap();
    assert!(matches!(got, http::Error::Timeout), "{got:?}");
    assert!(start.elapsed() >= timeout && start.elapsed() < 5 * SECOND);
    drop(stream);
    silent.join().unwrap();
}

#[test]
fn read_timeout_can_change_between_reads() {
    // A watch: the head and one event arrive, then silence.
    let (listener, port) = listen("127.0.0.1").unwrap();
    let head: &'static [u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent\n\r\n";
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = ServerConnection::new(server_config(&[&rustls::version::TLS13])).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        tls.sock.set_read_timeout(Some(10 * SECOND)).unwrap();
        let _ = read_request(&mut tls);
        tls.write_all(head).unwrap();
        tls.flush().unwrap();
        let mut buf = [0u8; 16];
        let _ = tls.read(&mut buf);
    });
    let config = client_config(&Trust::CaFile(CA.into())).unwrap();
    let mut stream = connect("127.0.0.1", port, Some(&config), SECOND, 30 * SECOND).unwrap();
    let req = http::Request {
        method: "GET",
        host: "127.0.0.1",
        path_and_query: "/watch",
        headers: &[],
        body: b"",
    };
    http::write_request(&mut stream, &req).unwrap();
    let mut resp = http::read_response(&mut stream, false).unwrap();
    assert_eq!(resp.read_line(100).unwrap().unwrap(), b"event");
    resp.get_ref()
        .set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let start = Instant::now();
    let got = resp.read_line(100).unwrap_err();
    assert!(matches!(got, http::Error::Timeout), "{got:?}");
    assert!(start.elapsed() < 10 * SECOND);
    drop(resp);
    drop(stream);
    server.join().unwrap();
}

#[test]
fn handshake_timeout() {
    let (listener, port) = listen("127.0.0.1").unwrap();
    let silent = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(10 * SECOND)).unwrap();
        let mut buf = [0u8; 4096];
        // Swallow the ClientHello; wait for the client to hang up.
        while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
    });
    let config = client_config(&Trust::Insecure).unwrap();
    let timeout = Duration::from_millis(200);
    let e = connect("127.0.0.1", port, Some(&config), SECOND, timeout)
        .err()
        .unwrap();
    assert!(matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    assert_eq!(
        e.to_string(),
        format!("tls handshake with 127.0.0.1:{port}: timed out")
    );
    silent.join().unwrap();
}

#[test]
fn handshake_with_closing_server() {
    let (listener, port) = listen("127.0.0.1").unwrap();
    let closer = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        drop(tcp);
    });
    let config = client_config(&Trust::Insecure).unwrap();
    let e = connect("127.0.0.1", port, Some(&config), SECOND, 5 * SECOND)
        .err()
        .unwrap();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("tls handshake with 127.0.0.1:{port}: ")),
        "{text}"
    );
    closer.join().unwrap();
}

#[test]
fn trust_cache_follows_rotation() {
    let dir = TempDir::new();
    let ca = read(CA);
    let other = read(OTHER_CA);
    // Kubelet layout: ca.crt -> ..data/ca.crt, ..data -> ..v1 (a directory).
    std::fs::create_dir(dir.0.join("..v1")).unwrap();
    std::fs::create_dir(dir.0.join("..v2")).unwrap();
    std::fs::write(dir.0.join("..v1/ca.crt"), &ca).unwrap();
    std::fs::write(dir.0.join("..v2/ca.crt"), &other).unwrap();
    std::os::unix::fs::symlink("..v1", dir.0.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ca.crt", dir.0.join("ca.crt")).unwrap();
    let path = dir.0.join("ca.crt");
    let mut cache = TrustCache::new(Trust::CaFile(path.clone()));
    assert!(matches!(cache.trust(), Trust::CaFile(p) if *p == path));

    let first = cache.config().unwrap();
    assert!(
        Arc::ptr_eq(&first, &cache.config().unwrap()),
        "unchanged file: cached"
    );
    assert!(verifies(&first).is_ok());

    // Swap ..data atomically to ..v2: same length files would not matter, the inode does.
    std::os::unix::fs::symlink("..v2", dir.0.join("..data_tmp")).unwrap();
    std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
    let second = cache.config().unwrap();
    assert!(!Arc::ptr_eq(&first, &second), "rotated file: rebuilt");
    assert!(verifies(&second).unwrap_err().contains("UnknownIssuer"));
    assert!(Arc::ptr_eq(&second, &cache.config().unwrap()));

    // A broken file: error, and nothing stale kept.
    std::fs::create_dir(dir.0.join("..v4")).unwrap();
    std::fs::write(dir.0.join("..v4/ca.crt"), b"not a certificate").unwrap();
    std::os::unix::fs::symlink("..v4", dir.0.join("..data_tmp")).unwrap();
    std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
    let e = cache.config().unwrap_err();
    assert!(matches!(e, Error::CaFile(_)), "{e:?}");
    assert!(e.to_string().contains("no certificate found"), "{e}");
    assert!(cache.cached.is_none());
    assert!(cache.config().is_err(), "still broken");

    // Gone: error naming the path.
    std::fs::remove_file(&path).unwrap();
    let e = cache.config().unwrap_err();
    assert!(matches!(e, Error::CaFile(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("ca file {}: ", path.display())),
        "{e}"
    );

    // Back: rebuilt and working.
    std::os::unix::fs::symlink("..v1/ca.crt", &path).unwrap();
    let back = cache.config().unwrap();
    assert!(verifies(&back).is_ok());
}

#[test]
fn trust_cache_rename_over() {
    let dir = TempDir::new();
    let path = dir.file("ca.crt", &read(CA));
    let mut cache = TrustCache::new(Trust::CaFile(path.clone()));
    let first = cache.config().unwrap();
    let tmp = dir.file("ca.crt.tmp", &read(OTHER_CA));
    std::fs::rename(&tmp, &path).unwrap();
    let second = cache.config().unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
}

#[test]
fn trust_cache_builds_others_once() {
    for trust in [Trust::WebPkiRoots, Trust::Insecure] {
        let mut cache = TrustCache::new(trust);
        let a = cache.config().unwrap();
        assert!(Arc::ptr_eq(&a, &cache.config().unwrap()));
    }
}

/// Handshakes with a fresh test server using `config`.
fn verifies(config: &Arc<ClientConfig>) -> Result<(), String> {
    let (listener, port) = listen("127.0.0.1").unwrap();
    let server = serve_one(
        listener,
        Some(server_config(&[&rustls::version::TLS13])),
        OK_RESPONSE,
        Ending::CloseNotify,
    );
    let result = connect("127.0.0.1", port, Some(config), SECOND, 5 * SECOND)
        .map(drop)
        .map_err(|e| e.to_string());
    if result.is_err() {
        let _ = server.join();
    }
    result
}
