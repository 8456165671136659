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

use crate::config::Trust;
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Largest CA file read (a full system bundle is a few hundred KiB).
const MAX_CA_FILE_BYTES: u64 = 8 << 20;
/// Most resolved addresses tried by `connect`.
const MAX_ADDRS: usize = 8;

/// Why no connection could be made, by kind; the text says what failed and where.
#[derive(Debug)]
pub enum Error {
    /// The CA file could not be read, is larger than its limit, or holds no valid
    /// certificate (the text names the file).
    CaFile(String),
    /// rustls refused the client configuration.
    Config(String),
    /// Resolving, connecting, the socket options or the handshake's I/O failed; the kind
    /// is the underlying one (a timeout is `TimedOut` or `WouldBlock`).
    Connect(io::Error),
    /// The handshake refused the server: its certificate, or the protocol.
    Refused(io::Error),
}

impl Error {
    /// A refusal (certificate or protocol): retrying the same server will not help.
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::Refused(_))
    }

    /// The underlying I/O error kind of a connection failure; `Other` for the CA file
    /// and the configuration.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Connect(e) | Error::Refused(e) => e.kind(),
            Error::CaFile(_) | Error::Config(_) => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CaFile(m) | Error::Config(m) => f.write_str(m),
            Error::Connect(e) | Error::Refused(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

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
fn load_ca_file(path: &Path) -> Result<RootCertStore, Error> {
    read_ca_file(path).map_err(Error::CaFile)
}

fn read_ca_file(path: &Path) -> Result<RootCertStore, String> {
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
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Config(format!("tls config: {e}")))?;
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

fn stamp(path: &Path) -> Result<FileStamp, Error> {
    // `metadata` follows symlinks: a kubelet-style swap of `..data` changes the inode.
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::CaFile(format!("ca file {}: {}", path.display(), describe(&e))))?;
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
    pub fn config(&mut self) -> Result<Arc<ClientConfig>, Error> {
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
/// "tls handshake with 127.0.0.1:6443: invalid peer certificate: UnknownIssuer"; rustls
/// reports a refused certificate or protocol as `InvalidData`, which is [`Error::Refused`].
pub fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<Stream, Error> {
    connect_io(host, port, tls, connect_timeout, io_timeout).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            Error::Refused(e)
        } else {
            Error::Connect(e)
        }
    })
}

fn connect_io(
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
mod tests;
