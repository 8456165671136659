//! TLS for the emulator: the API server's certificate from the test PKI, and a rogue
//! certificate (same names, signed by an unrelated CA) for handshake-failure tests.
//!
//! It only builds rustls server configurations; it never reads or writes a connection.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A server certificate for IP 127.0.0.1, ::1 and DNS localhost, kubernetes,
/// kubernetes.default.svc, issued by a CA that appears nowhere else (CN rogue-cluster-ca),
/// followed by that CA. Made once with openssl like tests/tls/gen.sh; its key is below.
pub(crate) const ROGUE_CHAIN: &str = "\
-----BEGIN CERTIFICATE-----
MIICAjCCAaegAwIBAgIUWGoHfEEnoEqLFB0Y8T5qZpaChkQwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcm9ndWUtY2x1c3Rlci1jYTAgFw0yNjExMjUxMzE5MzJaGA8y
MTI2MTEwMTEzMTkzMlowGTEXMBUGA1UEAwwOa3ViZS1hcGlzZXJ2ZXIwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATmM5wo1Jy6wuH8sN3urdC/YPivoVH5RdKavDjb
x5AznaJtyo4dy/+792ZKS+MIaJAnB/FNIpL+OIp+yUht05s0o4HIMIHFMAwGA1Ud
EwEB/wQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMFAG
A1UdEQRJMEeHBH8AAAGHEAAAAAAAAAAAAAAAAAAAAAGCCWxvY2FsaG9zdIIKa3Vi
ZXJuZXRlc4IWa3ViZXJuZXRlcy5kZWZhdWx0LnN2YzAdBgNVHQ4EFgQUINZSePIt
dy0TsABnl6vtoIIvP7kwHwYDVR0jBBgwFoAUI9XHlx+JEt9apbjbTjXcKY0FGjEw
CgYIKoZIzj0EAwIDSQAwRgIhAOwBeWE5SG7Fl60bKkrovjkLMAV1zPcnWnA7IO+4
8ag+AiEAqed818Awx8g6DddUEl3C0d1WaUoKy6H6+C8/FPEvuQo=
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
MIIBnTCCAUOgAwIBAgIUZyQGfqMlDppWsUAfsu4LczZ1zmEwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcm9ndWUtY2x1c3Rlci1jYTAgFw0yNjExMjUxMzE5MzFaGA8y
MTI2MTEwMTEzMTkzMVowGzEZMBcGA1UEAwwQcm9ndWUtY2x1c3Rlci1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABLQNaCsQVvbfZ17T/RbwwaTAv7NPORG7FYPn
8KYf+V2ZeaeepiIwVvJrcx14PhPyDdBCkpAtfQXWYUxs1/TWtCSjYzBhMB0GA1Ud
DgQWBBQj1ceXH4kS31qluNtONdwpjQUaMTAfBgNVHSMEGDAWgBQj1ceXH4kS31ql
uNtONdwpjQUaMTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggq
hkjOPQQDAgNIADBFAiEA5+tZBwUMtZBGZ+w0rBIRBmrhF1NRS5i/rZfUFfAac50C
ID9byFncMp2Jf24Rhf052yiKiA4YS4ZAzckCd9gKN33T
-----END CERTIFICATE-----
";

const ROGUE_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4R0D1aiPYS9xSdNq
J/0EuJfxGsofwjDuq9pCLy8PRBuhRANCAATmM5wo1Jy6wuH8sN3urdC/YPivoVH5
RdKavDjbx5AznaJtyo4dy/+792ZKS+MIaJAnB/FNIpL+OIp+yUht05s0
-----END PRIVATE KEY-----
";

/// The two server configurations: the real certificate and the rogue one.
pub(crate) struct TlsConfigs {
    pub normal: Arc<ServerConfig>,
    pub rogue: Arc<ServerConfig>,
}

fn config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls config: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls config: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Loads the test PKI (server.pem, server.key under `dir`) and the rogue certificate.
pub(crate) fn load(dir: &std::path::Path) -> Result<TlsConfigs, String> {
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls: read {}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls: read {}: {e}", key_path.display()))?;
    let rogue_certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ROGUE_CHAIN.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls: rogue chain: {e}"))?;
    let rogue_key = PrivateKeyDer::from_pem_slice(ROGUE_KEY.as_bytes())
        .map_err(|e| format!("tls: rogue key: {e}"))?;
    Ok(TlsConfigs {
        normal: config(certs, key)?,
        rogue: config(rogue_certs, rogue_key)?,
    })
}
