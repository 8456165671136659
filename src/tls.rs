//! The transport: a TCP connection, plain or wrapped in rustls, with connect and I/O
//! timeouts, and the trust it verifies the server against (a CA file that may rotate, the
//! webpki roots, or nothing at all).
//!
//! `connect` resolves, connects and completes the TLS handshake eagerly, so that refused
//! connections and certificate errors surface there with a message that names the peer.
//! `TrustCache` rebuilds the client config when the CA file changes on disk.
//!
//! This module never speaks HTTP (that is `http`), never sends client certificates, never
//! retries, and never logs: choosing `Trust::Insecure` is announced by the caller.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Largest CA file read (a full system bundle is a few hundred KiB).
const MAX_CA_FILE_BYTES: u64 = 8 << 20;
/// Most resolved addresses tried by `connect`.
const MAX_ADDRS: usize = 8;

/// What the server certificate is verified against.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Every CERTIFICATE block of this PEM file (e.g. the service-account `ca.crt`).
    CaFile(PathBuf),
    /// The Mozilla roots compiled in from `webpki-roots`.
    WebPkiRoots,
    /// No verification of the certificate chain or name; handshake signatures are still
    /// checked.
    Insecure,
}

/// The ring provider without private-key loading: the loader never presents a client
/// certificate, so it never signs, and leaving the key parsers (RSA, ECDSA, Ed25519) out
/// keeps about 37 KB out of the static binary.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        key_provider: &NoPrivateKeys,
        ..rustls::crypto::ring::default_provider()
    })
}

/// A key provider that loads no key: client certificates are never sent.
#[derive(Debug)]
struct NoPrivateKeys;

impl rustls::crypto::KeyProvider for NoPrivateKeys {
    fn load_private_key(
        &self,
        _key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "load private key: not supported (no client certificate is ever sent)".into(),
        ))
    }
}

/// Reads the trust anchors of a PEM file: every CERTIFICATE block that parses; other
/// blocks are ignored. An error names the path.
fn load_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| format!("ca file {shown}: {}", describe(&e)))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("ca file {shown}: {}", describe(&e)))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "ca file {shown}: larger than the limit of {MAX_CA_FILE_BYTES} bytes"
        ));
    }
    let mut roots = RootCertStore::empty();
    let (mut blocks, mut first_error) = (0usize, None);
    for item in CertificateDer::pem_slice_iter(&pem) {
        blocks += 1;
        let added = match item {
            Ok(der) => roots.add(der).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = added {
            first_error.get_or_insert(e);
        }
    }
    if roots.is_empty() {
        return Err(match first_error {
            Some(e) => {
                format!("ca file {shown}: no valid certificate ({blocks} blocks; first error: {e})")
            }
            None => format!("ca file {shown}: no certificate found"),
        });
    }
    Ok(roots)
}

/// Builds a client config: ring provider, TLS 1.3 and 1.2, ALPN `http/1.1`, no client
/// certificate, and the verifier that `trust` asks for.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls config: {e}"))?;
    let mut config = match trust {
        Trust::CaFile(path) => builder
            .with_root_certificates(load_ca_file(path)?)
            .with_no_client_auth(),
        Trust::WebPkiRoots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(danger::AnyCertificate::new(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Identity of a file's current content, as far as `stat` can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Result<FileStamp, String> {
    // `metadata` follows symlinks: a kubelet-style swap of `..data` changes the inode.
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("ca file {}: {}", path.display(), describe(&e)))?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// A client config built once and reused; for `Trust::CaFile` it is rebuilt whenever the
/// file's length, modification time or inode changes (a rotated CA, including the
/// kubelet's symlink swap). A file rewritten in place with the same length within the
/// file system's timestamp granularity is not noticed.
pub struct TrustCache {
    trust: Trust,
    cached: Option<(Option<FileStamp>, Arc<ClientConfig>)>,
}

impl TrustCache {
    pub fn new(trust: Trust) -> Self {
        TrustCache {
            trust,
            cached: None,
        }
    }

    /// The current config. For a CA file this stats the file on every call and rebuilds
    /// the config when it changed; when the file is gone or no longer valid, the cached
    /// config is dropped and the error returned, so a stale CA is never used.
    pub fn config(&mut self) -> Result<Arc<ClientConfig>, String> {
        let now = match &self.trust {
            Trust::CaFile(path) => match stamp(path) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.cached = None;
                    return Err(e);
                }
            },
            Trust::WebPkiRoots | Trust::Insecure => None,
        };
        if let Some((seen, config)) = &self.cached {
            if *seen == now {
                return Ok(config.clone());
            }
        }
        self.cached = None;
        // Stamped before reading: a change during the read shows at the next call.
        let config = client_config(&self.trust)?;
        self.cached = Some((now, config.clone()));
        Ok(config)
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }
}

/// A connected stream, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    /// A TLS peer that closes the TCP connection without `close_notify` reads as a normal
    /// end of file: many API servers and proxies do so after the body, and the body framing
    /// decides whether the data was complete.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    /// Sets the read timeout of the underlying socket (`None`: block forever).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_read_timeout(d),
            Stream::Tls(s) => s.sock.set_read_timeout(d),
        }
    }
}

/// A short lowercase description of an I/O error, without the "(os error N)" suffix.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => return "connection closed by the peer".to_string(),
        _ => {}
    }
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text.get(..i).unwrap_or(&text).to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => {
            first.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text,
    }
}

fn context(what: String, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {}", describe(e)))
}

/// Connects to `host:port`, plain when `tls` is `None`.
///
/// `host` is an IP literal (IPv6 with or without brackets) or a DNS name resolved with the
/// system resolver (which has its own timeouts). Each address (at most 8) is tried in turn
/// with `connect_timeout`; the socket gets TCP_NODELAY and `io_timeout` for reads and
/// writes. For TLS, an IP is verified against the certificate's IP SANs and sent no SNI;
/// a name is sent as SNI and verified against DNS SANs. The handshake completes here.
///
/// Errors say what failed and where, e.g. "connect 127.0.0.1:6443: connection refused",
/// "tls handshake with 127.0.0.1:6443: invalid peer certificate: UnknownIssuer"; the error
/// kind is the underlying one (a timeout is `TimedOut` or `WouldBlock`).
pub fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> io::Result<Stream> {
    let bad_host = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("connect {host:?}: bad host"),
        )
    };
    let (name, ip) = match host.strip_prefix('[') {
        Some(rest) => {
            let inner = rest.strip_suffix(']').ok_or_else(bad_host)?;
            let ip: Ipv6Addr = inner.parse().map_err(|_| bad_host())?;
            (inner, Some(IpAddr::V6(ip)))
        }
        None => (host, host.parse::<IpAddr>().ok()),
    };
    if name.is_empty() {
        return Err(bad_host());
    }
    let target = match ip {
        Some(ip) => SocketAddr::new(ip, port).to_string(),
        None => format!("{name}:{port}"),
    };
    let addrs: Vec<SocketAddr> = match ip {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => (name, port)
            .to_socket_addrs()
            .map_err(|e| context(format!("connect {target}: resolve"), &e))?
            .take(MAX_ADDRS)
            .collect(),
    };
    let tcp = connect_any(&target, &addrs, connect_timeout)?;
    let setup = |tcp: &TcpStream| -> io::Result<()> {
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(io_timeout))?;
        tcp.set_write_timeout(Some(io_timeout))
    };
    setup(&tcp).map_err(|e| context(format!("connect {target}: socket options"), &e))?;
    let Some(config) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let handshake_error = |e: &io::Error| context(format!("tls handshake with {target}"), e);
    let server_name = match ip {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(name.to_string()).map_err(|_| bad_host())?,
    };
    let conn = ClientConnection::new(config.clone(), server_name)
        .map_err(|e| handshake_error(&io::Error::other(e)))?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        match stream.conn.complete_io(&mut stream.sock) {
            Ok((0, 0)) => {
                return Err(handshake_error(&io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(_) => {}
            Err(e) => return Err(handshake_error(&e)),
        }
    }
    Ok(Stream::Tls(Box::new(stream)))
}

/// Tries each address in turn; the error lists every failure.
fn connect_any(target: &str, addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut failures = String::new();
    let mut last_kind = io::ErrorKind::NotFound;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => {
                last_kind = e.kind();
                if addrs.len() == 1 && addr.to_string() == target {
                    failures = describe(&e);
                } else {
                    if !failures.is_empty() {
                        failures.push_str("; ");
                    }
                    let _ = write!(failures, "{addr}: {}", describe(&e));
                }
            }
        }
    }
    if addrs.is_empty() {
        failures = "no address found".to_string();
    }
    Err(io::Error::new(
        last_kind,
        format!("connect {target}: {failures}"),
    ))
}

/// The verifier behind `Trust::Insecure`.
mod danger {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};

    /// Accepts any certificate chain for any name, but still verifies the handshake
    /// signatures with the provider's algorithms, so the peer must hold the key of the
    /// certificate it presents.
    #[derive(Debug)]
    pub struct AnyCertificate {
        provider: Arc<CryptoProvider>,
    }

    impl AnyCertificate {
        pub fn new(provider: Arc<CryptoProvider>) -> Self {
            AnyCertificate { provider }
        }
    }

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection};
    use std::net::TcpListener;
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
            let got = load_ca_file(&path).map(|roots| roots.len());
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
        let mut stream = connect(host, port, config.as_ref(), 2 * SECOND, 5 * SECOND)
            .map_err(|e| e.to_string())?;
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
        let ca = Trust::CaFile(CA.into());
        let other = Trust::CaFile(OTHER_CA.into());
        let both = &[&rustls::version::TLS13, &rustls::version::TLS12][..];
        let tls12 = &[&rustls::version::TLS12][..];
        let unclosed: &'static [u8] = b"HTTP/1.1 200 OK\r\n\r\nread to close";
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
        let cases: Vec<Case> = vec![
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &ca,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", None)),
            ),
            (
                "127.0.0.1",
                "localhost",
                both,
                &ca,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", Some("localhost"))),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                tls12,
                &ca,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", None)),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &ca,
                OK_RESPONSE,
                Ending::Abrupt,
                Ok((b"ok", None)),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &ca,
                unclosed,
                Ending::Abrupt,
                Ok((b"read to close", None)),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &ca,
                unclosed,
                Ending::CloseNotify,
                Ok((b"read to close", None)),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &Trust::Insecure,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", None)),
            ),
            (
                "127.0.0.1",
                "localhost",
                tls12,
                &Trust::Insecure,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", Some("localhost"))),
            ),
            (
                "::1",
                "[::1]",
                both,
                &ca,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", None)),
            ),
            (
                "::1",
                "::1",
                both,
                &ca,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", None)),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &other,
                OK_RESPONSE,
                Ending::CloseNotify,
                Err("invalid peer certificate: UnknownIssuer"),
            ),
            (
                "127.0.0.1",
                "localhost",
                tls12,
                &other,
                OK_RESPONSE,
                Ending::CloseNotify,
                Err("invalid peer certificate: UnknownIssuer"),
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                both,
                &Trust::WebPkiRoots,
                OK_RESPONSE,
                Ending::CloseNotify,
                Err("invalid peer certificate: UnknownIssuer"),
            ),
            // 127.0.0.2 is not among the certificate's IP SANs.
            (
                "127.0.0.2",
                "127.0.0.2",
                both,
                &ca,
                OK_RESPONSE,
                Ending::CloseNotify,
                Err("invalid peer certificate: certificate not valid for name"),
            ),
            (
                "127.0.0.2",
                "127.0.0.2",
                both,
                &Trust::Insecure,
                OK_RESPONSE,
                Ending::CloseNotify,
                Ok((b"ok", None)),
            ),
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
        assert!(e.contains("no certificate found"), "{e}");
        assert!(cache.cached.is_none());
        assert!(cache.config().is_err(), "still broken");

        // Gone: error naming the path.
        std::fs::remove_file(&path).unwrap();
        let e = cache.config().unwrap_err();
        assert!(
            e.starts_with(&format!("ca file {}: ", path.display())),
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
}
