//! Plain data that the modules share: the validated configuration of one run ([`Config`]),
//! the API endpoint, how its certificate is trusted, and the objects and selections followed.
//!
//! `cli` builds these values and everything else reads them; this module imports no other
//! module of the crate, does no I/O, and holds no behaviour beyond naming and display.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The kind of object read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
        }
    }
    /// The command-line flag and log word: `configmap`, `secret`.
    pub fn flag(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

/// One named object the loader follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.flag(), self.namespace, self.name)
    }
}

/// A source of members: the objects of one kind that a label selector selects, in one
/// namespace or in every namespace (`None`: `-selector-namespaces '*'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kind: Kind,
    pub namespace: Option<String>,
    /// The selector as checked and normalised by `selector`: sent to the API server as it is.
    pub selector: String,
}

impl fmt::Display for Selection {
    /// `configmaps in team-a with app=gw`, `secrets in * with tier in (edge)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.namespace.as_deref().unwrap_or("*");
        write!(f, "{} in {ns} with {}", self.kind.plural(), self.selector)
    }
}

/// What the server certificate is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Every CERTIFICATE block of this PEM file (e.g. the service-account `ca.crt`).
    CaFile(PathBuf),
    /// The Mozilla roots compiled in from `webpki-roots`.
    WebPkiRoots,
    /// No verification of the certificate chain or name; handshake signatures are still
    /// checked.
    Insecure,
}

/// What the loader does after reading the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Load once, write, exit (init container).
    OneTime,
    /// List, then watch: near real time (sidecar).
    Watch,
    /// List every `sync_interval`, like the original tool without `-watch`.
    Poll,
}

/// The API server endpoint, already split for the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServer {
    pub https: bool,
    /// Host without brackets: `10.0.0.1`, `::1`, `kubernetes`.
    pub host: String,
    pub port: u16,
    /// Path prefix without trailing slash, usually empty (`https://proxy/k8s/clusters/x`).
    pub base_path: String,
}

/// `HOST:PORT` as a `Host` header says it: IPv6 literals in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl ApiServer {
    /// The `Host` header value: IPv6 literals in brackets, the port always present.
    pub fn host_header(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl fmt::Display for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.base_path)
    }
}

/// Envoy's admin interface, asked for the acknowledgement of each phase of an update
/// (`-envoy-admin`, `-envoy-timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyAdmin {
    /// Host without brackets: `127.0.0.1`, `::1`, `localhost`.
    pub host: String,
    pub port: u16,
    /// The longest wait for the acknowledgement of one phase.
    pub timeout: Duration,
}

impl EnvoyAdmin {
    /// The `Host` header value: IPv6 literals in brackets.
    pub fn host_header(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl fmt::Display for EnvoyAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.host_header())
    }
}

/// The validated configuration of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub apiserver: ApiServer,
    /// The objects named by `-configmap` and `-secret`.
    pub objects: Vec<ObjectRef>,
    /// The label selections of `-configmap-selector` and `-secret-selector`, one per
    /// selector and namespace.
    pub selections: Vec<Selection>,
    pub namespace: String,
    pub token_file: PathBuf,
    pub trust: Trust,
    pub output_dir: PathBuf,
    pub mode: Mode,
    /// Poll period (Poll), or the safety-net relist period (Watch); zero turns the latter off.
    pub sync_interval: Duration,
    /// Server-side watch timeout (jittered per watch); the client read timeout is a bit longer.
    pub watch_timeout: Duration,
    /// Permission bits of the files written (like the kubelet's `defaultMode`).
    pub file_mode: u32,
    /// How long `-onetime` retries transient API failures (refused, reset, timeouts, 429,
    /// 5xx) before it gives up.
    pub onetime_timeout: Duration,
    pub dry_run: bool,
    pub allow_empty_resources: bool,
    pub fsync: bool,
    /// Address of the health and metrics server, when wanted.
    pub listen: Option<String>,
    /// Envoy's admin, for the phased, acknowledged apply of `-watch` and poll; `None`:
    /// every update in one write, as without Envoy.
    pub envoy: Option<EnvoyAdmin>,
}
