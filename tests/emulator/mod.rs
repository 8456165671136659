//! A Kubernetes API server emulator for the tests, the demo and the benchmarks: ConfigMaps
//! and Secrets over HTTP/1.1 (TLS with the test PKI, or plain), with lists, field and label
//! selectors, watches (resume from a version, synthetic ADDED, bookmarks, ERROR 410, server
//! timeouts), create/update/delete with the server's validation, and injected faults.
//!
//! It is an implementation independent of the crate under test: its own HTTP parsing, JSON
//! through serde_json, nothing from `src/`. It follows shared/notes/kube-api.md and the
//! Kubernetes API reference; where it simplifies, the doc comment says so. It never keeps a
//! connection alive past one request, and it never persists anything.
//!
//! Layout: `mod.rs` holds the public handle and the shared state; `api.rs` routes requests
//! and serves everything but watches; `watch.rs` serves watch streams; `objects.rs` renders,
//! parses and validates objects and `Status` answers; `http.rs` frames HTTP; `text.rs` edits
//! JSON text without parsing it; `tls.rs` builds the TLS configurations; `cli.rs` parses the
//! standalone process's flags (standalone.rs).
//!
//! Behaviour worth knowing when writing a test, all as the real server does it:
//! - resourceVersions are global, start above 100 and only grow (also across `restart`);
//!   lists carry the current one even when no listed object changed.
//! - An update that changes nothing (`apply` with the same data, a PUT of the same object)
//!   is no write: same version, no event. `touch` makes a metadata-only change.
//! - Writes over HTTP need `Content-Type: application/json` (else 415); DELETE answers a
//!   `Status` with `status: Success`, not the object.
//! - Compaction and the history limit refuse new watches from old versions (ERROR 410) but
//!   never cut open ones; `expire_watches` and `restart` do that.
//! - A token can be limited to named objects (`grant_only`), as a Role with `resourceNames`
//!   does: a list or watch without `fieldSelector=metadata.name=NAME` then gets 403; or to
//!   namespaces (`grant_in_namespaces`, Roles: the cluster-wide `/api/v1/configmaps` is
//!   403) or everything of a kind (`grant_cluster_wide`, a ClusterRole). See `Grant`.
//! - Lists page with `limit`/`continue` as v1.20 does (paging.rs); label selectors take the
//!   full `labels.Parse` syntax (labels.rs); watches with a selector turn a change that
//!   leaves or enters the selection into DELETED or ADDED.
//! - Not served: PATCH, YAML and protobuf bodies, namespaces as objects (every namespace
//!   exists).
//!
//! Its pure helpers are tested by tests/emulator_selftest.rs (this code is included by every
//! test that uses it, so it carries no `#[cfg(test)]` module of its own).
#![allow(dead_code)]

pub(crate) mod api;
pub(crate) mod cli;
pub(crate) mod http;
pub(crate) mod labels;
pub(crate) mod objects;
pub(crate) mod paging;
pub(crate) mod text;
pub(crate) mod tls;
pub(crate) mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use objects::{base64_decode, base64_encode, config_key_errors, Kind};
use objects::{Content, Meta, Rng};

/// Events a watcher may have queued before it is closed as too slow (the real cache closes
/// such watchers too).
const MAX_QUEUED_EVENTS: usize = 100_000;
/// Requests remembered for `requests()`; older ones are forgotten.
const MAX_RECORDS: usize = 100_000;
/// The first resourceVersion handed out is one more than this.
const FIRST_RESOURCE_VERSION: u64 = 100;
/// How long a closed connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_millis(500);

/// How watch events are laid into HTTP chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// One event per chunk, as real servers happen to send them.
    OnePerEvent,
    /// Every event split over several chunks at odd points (1, 2, 3, 5, 8… bytes, the final
    /// newline alone).
    Split,
    /// Every event that is ready (waiting up to 20 ms for more) in one chunk.
    Coalesce,
    /// Ready events joined, then split at odd points across event boundaries.
    Mixed,
}

/// Faults for `set_fault`. The `*Next*` ones happen once, to the next event (on any watch)
/// or the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Clears a pending one-shot fault and the TLS failure.
    None,
    /// The next event: its chunk header and half of its bytes, then the connection drops.
    TruncateNextEvent,
    /// The next event is replaced by a line that is not JSON (the stream goes on).
    GarbageNextEvent,
    /// The next event is padded (an extra top-level `padding` member) to a line of this many
    /// bytes, newline included; a smaller size leaves it as it is.
    HugeNextEvent(usize),
    /// While on, TLS handshakes present a certificate for the right names from an unrelated
    /// CA (a client trusting tests/tls/ca.pem must refuse it).
    TlsHandshakeFailure(bool),
    /// The next request is read and then the connection is closed without an answer.
    DropNextRequest,
    /// The next answer (or watch head) is held back this long.
    StallNextResponse(Duration),
}

/// Emulator settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Serve HTTPS with tests/tls/server.pem (default true).
    pub tls: bool,
    /// Listen address (default "127.0.0.1:0": a free port).
    pub addr: String,
    /// Bearer tokens accepted (default ["test-token"]).
    pub tokens: Vec<String>,
    /// Time between periodic BOOKMARK events on watches that allow them; zero (the default)
    /// sends none. Whatever it is, a watch that allows bookmarks also gets them from 2 s
    /// before its timeout, about every second, when the version has moved past the one the
    /// watch started from, as a real kube-apiserver v1.20 sends them (measured against
    /// v1.20.2: a 15 s watch that saw one change got bookmarks at 12.9 s and 14.0 s; quiet
    /// 20 s and 70 s watches got nothing at all).
    pub bookmark_interval: Duration,
    /// Events kept for watches and exact lists from a past version (default 1000); older
    /// versions are "too old".
    pub history_limit: usize,
    /// Chunk layout of watch streams (default one event per chunk).
    pub chunking: Chunking,
    /// Print one line per request to stderr (default false).
    pub log_requests: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: true,
            addr: String::from("127.0.0.1:0"),
            tokens: vec![String::from("test-token")],
            bookmark_interval: Duration::ZERO,
            history_limit: 1000,
            chunking: Chunking::OnePerEvent,
            log_requests: false,
        }
    }
}

/// One request as the emulator saw it.
#[derive(Clone, Debug)]
pub struct Record {
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The decoded query parameters, in order.
    pub params: Vec<(String, String)>,
    /// The answer's status code (200 for a watch that started; 0 when none was sent).
    pub status: u16,
    /// When the request head had been read.
    pub at: Instant,
    /// The bearer token sent, if any.
    pub token: Option<String>,
    pub user_agent: Option<String>,
    /// A watch request (by `watch=` or the `/watch/` path).
    pub watch: bool,
    /// The connection's id: `Emulator::watch_last_sent` takes it.
    pub conn: u64,
    /// For a list answered 200: the list's `metadata.resourceVersion`.
    pub list_rv: Option<u64>,
}

impl Record {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A list (a GET of a collection that is not a watch).
    pub fn is_list(&self) -> bool {
        self.method == "GET"
            && !self.watch
            && (self.path.ends_with("/configmaps") || self.path.ends_with("/secrets"))
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state.

/// One stored object version.
#[derive(Debug)]
pub(crate) struct Obj {
    pub kind: Kind,
    pub ns: String,
    pub name: String,
    pub rv: u64,
    pub uid: String,
    pub created: String,
    /// The JSON text served (canonical, or as given to `apply_raw`).
    pub text: Arc<str>,
    pub labels: BTreeMap<String, String>,
    /// The structured content; `None` for objects stored from raw text.
    pub content: Option<Content>,
}

pub(crate) type Key = (Kind, String, String);

/// One RBAC rule bound to a limited token: get, list and watch of `kind`.
///
/// The model, as Kubernetes RBAC decides it (an allow-list; no rule, no access):
/// - `ns: Some(n)` is a Role with a RoleBinding in namespace `n`: requests in `n` only.
///   A cluster-wide request (`/api/v1/configmaps`, all namespaces) is never allowed by
///   Roles, whatever namespaces they cover, even with `fieldSelector=metadata.namespace=n`
///   (measured against v1.20.2: 403 "configmaps is forbidden: User
///   \"system:serviceaccount:a:envoy-xds-loader\" cannot list resource \"configmaps\" in
///   API group \"\" at the cluster scope", details `{"kind":"configmaps"}`; watch says
///   "cannot watch"; a namespace without a Role says "in the namespace \"b\"").
/// - `ns: None` is a ClusterRole with a ClusterRoleBinding: every namespace and the
///   cluster-wide collection.
/// - `names: Some(..)` is a rule with `resourceNames`: only requests that name one of them
///   (an item, or a list/watch with `fieldSelector=metadata.name=NAME`); `None`: all.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub kind: Kind,
    pub ns: Option<String>,
    pub names: Option<Vec<String>>,
}

/// The rules of one limited token, and the namespace of its ServiceAccount (named in 403s).
#[derive(Clone, Debug)]
pub(crate) struct Grants {
    pub sa_ns: String,
    pub rules: Vec<Grant>,
}

impl Grants {
    /// Whether a rule allows `verb` on `kind` in `ns` (None: cluster-wide) for `name`.
    pub(crate) fn allow(
        &self,
        verb: &str,
        kind: Kind,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> bool {
        matches!(verb, "get" | "list" | "watch")
            && self.rules.iter().any(|r| {
                r.kind == kind
                    && r.ns.as_deref().is_none_or(|g| ns == Some(g))
                    && r.names
                        .as_ref()
                        .is_none_or(|names| name.is_some_and(|n| names.iter().any(|x| x == n)))
            })
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub(crate) struct Event {
    pub typ: &'static str,
    /// The new state (for DELETED: the last state with the deletion's resourceVersion).
    pub obj: Arc<Obj>,
    /// The state before the change.
    pub prev: Option<Arc<Obj>>,
}

/// The per-watch queue that changes are dispatched to.
#[derive(Debug, Default)]
pub(crate) struct WatchQueue {
    pub events: VecDeque<Arc<Event>>,
    pub overflow: bool,
    pub expire: bool,
    pub kill: bool,
    pub silent: bool,
}

pub(crate) struct State {
    pub rv: u64,
    /// Versions at or above this one can be watched from; older ones are too old.
    pub compacted: u64,
    pub objects: BTreeMap<Key, Arc<Obj>>,
    pub history: VecDeque<Arc<Event>>,
    pub watchers: HashMap<u64, WatchQueue>,
    pub next_id: u64,
    pub tokens: Vec<String>,
    pub fail_left: usize,
    pub fail_code: u16,
    pub fault: Option<Fault>,
    pub tls_failure: bool,
    pub silent: bool,
    pub records: VecDeque<Record>,
    /// Per watch connection: the highest resourceVersion it has sent (event or bookmark),
    /// and when its write to the connection had returned.
    pub watch_sent: HashMap<u64, (u64, Instant)>,
    /// `Retry-After` seconds of the `fail_next` answers (None: the canned ones).
    pub fail_retry_after: Option<u64>,
    /// Tokens limited to some objects (like a Role with `resourceNames`); other tokens may
    /// read everything.
    pub grants: HashMap<String, Grants>,
    /// `restart` happened while down: the watch cache is rebuilt when the server comes back.
    pub restart_pending: bool,
    /// Every new watch gets "too old" at once (a server or proxy stuck answering 410).
    pub expire_every_watch: bool,
    /// Every continue token with a version answers 410 Expired (as after a compaction).
    pub expire_continue: bool,
    pub open_watches: usize,
    pub rng: Rng,
    pub down: bool,
    pub listening: bool,
    pub stopped: bool,
}

impl State {
    /// Takes the next resourceVersion.
    pub(crate) fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores `ev` (already carrying the version from `next_rv`), keeps history within
    /// `limit`, and queues it for every watch.
    pub(crate) fn commit(&mut self, ev: Event, limit: usize) {
        let key = (ev.obj.kind, ev.obj.ns.clone(), ev.obj.name.clone());
        if ev.typ == "DELETED" {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key, ev.obj.clone());
        }
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.obj.rv);
            }
        }
        for q in self.watchers.values_mut() {
            if q.silent || q.overflow {
                continue;
            }
            if q.events.len() >= MAX_QUEUED_EVENTS {
                q.overflow = true;
                q.events.clear();
            } else {
                q.events.push_back(ev.clone());
            }
        }
    }

    pub(crate) fn record(&mut self, r: Record, log: bool) {
        if log {
            eprintln!(
                "kube-emulator method={} path={} query={:?} status={}{}",
                r.method,
                r.path,
                r.query,
                r.status,
                if r.watch { " watch=true" } else { "" }
            );
        }
        if self.records.len() >= MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(r);
    }
}

/// A registered connection: a handle on its socket (to drop it abruptly) and whether it is a
/// watch.
struct ConnEntry {
    sock: TcpStream,
    watch: bool,
}

pub(crate) struct Shared {
    pub opts: Options,
    pub addr: SocketAddr,
    pub state: Mutex<State>,
    pub changed: Condvar,
    pub tls: Option<tls::TlsConfigs>,
    conns: Mutex<HashMap<u64, ConnEntry>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn mark_watch(&self, id: u64, on: bool) {
        if let Some(c) = self.conns().get_mut(&id) {
            c.watch = on;
        }
    }
    fn drop_conns(&self, watches_only: bool) {
        for c in self.conns().values() {
            if c.watch || !watches_only {
                let _ = c.sock.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A client connection, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    /// Ends the connection cleanly (TLS close_notify, then FIN), then reads what the client
    /// still sends for a moment, so that closing with unread input does not reset the
    /// connection before the client has read the answer (as Go's net/http waits too).
    pub(crate) fn close_clean(&mut self) {
        let sock = match self {
            Conn::Plain(s) => {
                let _ = s.flush();
                &*s
            }
            Conn::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                &s.sock
            }
        };
        let _ = sock.shutdown(Shutdown::Write);
        linger(sock);
    }
}

/// Reads and drops input until the peer closes, at most `LINGER` long.
fn linger(sock: &TcpStream) {
    let end = Instant::now() + LINGER;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 4096];
    let mut r = sock;
    while Instant::now() < end {
        match r.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Instant `d` after `t`, or a year after `t` when that does not fit.
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(365 * 86_400))
}

// ---------------------------------------------------------------------------------------------
// The public handle.

/// A running emulator. Clones share the same server.
#[derive(Clone)]
pub struct Emulator {
    sh: Arc<Shared>,
}

fn tls_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls"))
}

impl Emulator {
    /// Starts serving on `opts.addr` (accept thread, one thread per connection).
    ///
    /// Panics when the address cannot be bound or the test PKI cannot be read: this is test
    /// set-up, and `try_start` gives the error instead.
    pub fn start(opts: Options) -> Emulator {
        match Emulator::try_start(opts) {
            Ok(e) => e,
            Err(e) => panic!("kube emulator: {e}"),
        }
    }

    /// Like `start`, with the error as a value.
    pub fn try_start(opts: Options) -> Result<Emulator, String> {
        let tls = if opts.tls {
            Some(tls::load(&tls_dir())?)
        } else {
            None
        };
        let listener =
            TcpListener::bind(&opts.addr).map_err(|e| format!("listen on {}: {e}", opts.addr))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("listen on {}: {e}", opts.addr))?;
        let state = State {
            rv: FIRST_RESOURCE_VERSION,
            compacted: FIRST_RESOURCE_VERSION,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            watchers: HashMap::new(),
            next_id: 1,
            tokens: opts.tokens.clone(),
            fail_left: 0,
            fail_code: 0,
            fault: None,
            tls_failure: false,
            silent: false,
            records: VecDeque::new(),
            watch_sent: HashMap::new(),
            fail_retry_after: None,
            grants: HashMap::new(),
            restart_pending: false,
            expire_every_watch: false,
            expire_continue: false,
            open_watches: 0,
            rng: Rng::new(),
            down: false,
            listening: true,
            stopped: false,
        };
        let sh = Arc::new(Shared {
            opts,
            addr,
            state: Mutex::new(state),
            changed: Condvar::new(),
            tls,
            conns: Mutex::new(HashMap::new()),
        });
        let accept_sh = sh.clone();
        thread::Builder::new()
            .name(String::from("kube-emulator-accept"))
            .spawn(move || accept_loop(accept_sh, listener))
            .map_err(|e| format!("spawn accept thread: {e}"))?;
        Ok(Emulator { sh })
    }

    /// "https://127.0.0.1:PORT" (or "http://…" without TLS; IPv6 in brackets).
    pub fn url(&self) -> String {
        let scheme = if self.sh.opts.tls { "https" } else { "http" };
        let ip = self.sh.addr.ip();
        let host = if ip.is_unspecified() {
            if ip.is_ipv6() {
                String::from("[::1]")
            } else {
                String::from("127.0.0.1")
            }
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("{scheme}://{host}:{}", self.sh.addr.port())
    }

    pub fn port(&self) -> u16 {
        self.sh.addr.port()
    }

    /// The CA that signed the emulator's certificate (tests/tls/ca.pem).
    pub fn ca_file() -> PathBuf {
        tls_dir().join("ca.pem")
    }

    /// An unrelated CA (tests/tls/other-ca.pem), for "wrong CA" tests.
    /// The PEM of the unrelated CA behind `Fault::TlsHandshakeFailure`'s certificate, for
    /// tests that rotate a client's CA bundle to it.
    pub fn rogue_ca_pem() -> String {
        let chain = tls::ROGUE_CHAIN;
        let start = chain.rfind("-----BEGIN CERTIFICATE-----").unwrap_or(0);
        chain[start..].to_string()
    }

    pub fn other_ca_file() -> PathBuf {
        tls_dir().join("other-ca.pem")
    }

    /// Creates or updates ConfigMap `ns/name` with text `data`; returns its resourceVersion.
    /// See `apply_full`.
    pub fn apply(&self, ns: &str, name: &str, data: &[(&str, &str)]) -> u64 {
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.apply_full(ns, name, data, BTreeMap::new())
    }

    /// Creates or updates ConfigMap `ns/name` (labels and annotations are kept); returns the
    /// object's resourceVersion. Like the real server, an update that changes nothing is not a
    /// write: no new version, no event (use `touch` for a metadata-only change). Keys are not
    /// validated: this writes the store directly, as etcd would take it.
    pub fn apply_full(
        &self,
        ns: &str,
        name: &str,
        data: BTreeMap<String, String>,
        binary_data: BTreeMap<String, Vec<u8>>,
    ) -> u64 {
        self.put(Kind::ConfigMap, ns, name, |c| {
            c.data = data;
            c.binary = binary_data;
        })
    }

    /// Creates or updates the `kind` object `ns/name` with exactly `labels` and text `data`
    /// (for a Secret, its values); returns its resourceVersion. Same rules as `apply_full`:
    /// a change of labels alone is a write, one that changes nothing is not.
    pub fn apply_labeled(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        data: &[(&str, &str)],
    ) -> u64 {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.put(kind, ns, name, |c| {
            c.labels = labels;
            match kind {
                Kind::ConfigMap => {
                    c.data = data
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }
                Kind::Secret => {
                    c.binary = data
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                        .collect();
                    if c.secret_type.is_none() {
                        c.secret_type = Some(String::from("Opaque"));
                    }
                }
            }
        })
    }

    /// Creates or updates Secret `ns/name` (type Opaque) with `data`; returns its
    /// resourceVersion. Same rules as `apply_full`.
    pub fn apply_secret(&self, ns: &str, name: &str, data: &[(&str, &[u8])]) -> u64 {
        let data: BTreeMap<String, Vec<u8>> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        self.put(Kind::Secret, ns, name, |c| {
            c.binary = data;
            if c.secret_type.is_none() {
                c.secret_type = Some(String::from("Opaque"));
            }
        })
    }

    fn put(&self, kind: Kind, ns: &str, name: &str, edit: impl FnOnce(&mut Content)) -> u64 {
        let mut st = self.sh.lock();
        let key = (kind, ns.to_string(), name.to_string());
        let old = st.objects.get(&key).cloned();
        let mut content = old
            .as_ref()
            .and_then(|o| o.content.clone())
            .unwrap_or_default();
        let before = content.clone();
        edit(&mut content);
        if let Some(o) = &old {
            if o.content.is_some() && before == content {
                return o.rv;
            }
        }
        let rv = write_object(&mut st, &self.sh.opts, kind, ns, name, content, "kubectl");
        drop(st);
        self.sh.changed.notify_all();
        rv
    }

    /// Stores `object_json_text` as ConfigMap `ns/name`, served byte for byte except for
    /// `metadata.name`, `namespace` and `resourceVersion`, which are rewritten in the text
    /// (every occurrence; added when missing). Text that is not an object is stored as it
    /// is. Watch events carry it with line breaks turned into spaces. Returns the new
    /// resourceVersion (every call is a write).
    pub fn apply_raw(&self, ns: &str, name: &str, object_json_text: &str) -> u64 {
        let mut st = self.sh.lock();
        let key = (Kind::ConfigMap, ns.to_string(), name.to_string());
        let old = st.objects.get(&key).cloned();
        let rv = st.next_rv();
        let text = text::rewrite_metadata(object_json_text, ns, name, rv)
            .unwrap_or_else(|| object_json_text.to_string());
        let uid = match &old {
            Some(o) => o.uid.clone(),
            None => st.rng.uuid(),
        };
        let obj = Obj {
            kind: Kind::ConfigMap,
            ns: ns.to_string(),
            name: name.to_string(),
            rv,
            uid,
            created: old
                .as_ref()
                .map(|o| o.created.clone())
                .unwrap_or_else(objects::rfc3339_now),
            labels: objects::labels_of(&text),
            text: Arc::from(text),
            content: None,
        };
        let typ = if old.is_some() { "MODIFIED" } else { "ADDED" };
        st.commit(
            Event {
                typ,
                obj: Arc::new(obj),
                prev: old,
            },
            self.sh.opts.history_limit,
        );
        drop(st);
        self.sh.changed.notify_all();
        rv
    }

    /// Changes only an annotation of ConfigMap `ns/name` (like `kubectl annotate`): a new
    /// resourceVersion and a MODIFIED event with the same data. `None` if it does not exist.
    pub fn touch(&self, ns: &str, name: &str) -> Option<u64> {
        self.touch_kind(Kind::ConfigMap, ns, name)
    }

    fn touch_kind(&self, kind: Kind, ns: &str, name: &str) -> Option<u64> {
        let mut st = self.sh.lock();
        let key = (kind, ns.to_string(), name.to_string());
        let old = st.objects.get(&key).cloned()?;
        let rv = match &old.content {
            Some(c) => {
                let mut c = c.clone();
                let n = c
                    .annotations
                    .get("emulator.test/touched")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                c.annotations
                    .insert(String::from("emulator.test/touched"), (n + 1).to_string());
                write_object(
                    &mut st,
                    &self.sh.opts,
                    kind,
                    ns,
                    name,
                    c,
                    "kubectl-annotate",
                )
            }
            None => {
                let rv = st.next_rv();
                let text = text::rewrite_metadata(&old.text, ns, name, rv)
                    .unwrap_or_else(|| old.text.to_string());
                let obj = Obj {
                    rv,
                    text: Arc::from(text),
                    kind: old.kind,
                    ns: old.ns.clone(),
                    name: old.name.clone(),
                    uid: old.uid.clone(),
                    created: old.created.clone(),
                    labels: old.labels.clone(),
                    content: None,
                };
                st.commit(
                    Event {
                        typ: "MODIFIED",
                        obj: Arc::new(obj),
                        prev: Some(old),
                    },
                    self.sh.opts.history_limit,
                );
                rv
            }
        };
        drop(st);
        self.sh.changed.notify_all();
        Some(rv)
    }

    /// Deletes ConfigMap `ns/name`; returns the deletion's resourceVersion, `None` if absent.
    pub fn delete(&self, ns: &str, name: &str) -> Option<u64> {
        self.delete_kind(Kind::ConfigMap, ns, name)
    }

    /// Deletes Secret `ns/name`; returns the deletion's resourceVersion, `None` if absent.
    pub fn delete_secret(&self, ns: &str, name: &str) -> Option<u64> {
        self.delete_kind(Kind::Secret, ns, name)
    }

    fn delete_kind(&self, kind: Kind, ns: &str, name: &str) -> Option<u64> {
        let mut st = self.sh.lock();
        let rv = delete_object(&mut st, &self.sh.opts, kind, ns, name)?;
        drop(st);
        self.sh.changed.notify_all();
        Some(rv)
    }

    /// The JSON text served for ConfigMap `ns/name`.
    pub fn object(&self, ns: &str, name: &str) -> Option<String> {
        let st = self.sh.lock();
        let key = (Kind::ConfigMap, ns.to_string(), name.to_string());
        st.objects.get(&key).map(|o| o.text.to_string())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.sh.lock().rv
    }

    /// Replaces the accepted tokens (e.g. to revoke the old one), at once. A real
    /// kube-apiserver (v1.20, tests/real_apiserver.rs) caches a token's successful
    /// authentication for 10 s, so a revoked ServiceAccount token (its bound Secret deleted)
    /// is still accepted for up to 10 s, and a watch already open is never cut; measured:
    /// refused 9.97 s after the deletion. Kept stricter here on purpose: a loader that
    /// passes here with at once holds with the real delay too.
    pub fn set_tokens(&self, tokens: &[&str]) {
        self.sh.lock().tokens = tokens.iter().map(|t| t.to_string()).collect();
    }

    /// Forgets all history: watches and exact lists from any older version get 410 Expired.
    /// Open watches go on. A real kube-apiserver v1.20.2 after an etcd compaction is kinder
    /// (measured): an exact list from a compacted version gets HTTP 410, but a watch from it
    /// is still served from the watch cache until the API server restarts; then it is one
    /// ERROR event (410 Expired) in a 200. This emulator expires both at once, the harder
    /// case, which the loader must handle anyway.
    pub fn compact(&self) {
        let mut st = self.sh.lock();
        st.compacted = st.rv;
        st.history.clear();
    }

    /// Like an API server restart: every open connection drops abruptly (no final chunk, no
    /// close_notify) and the watch cache is rebuilt at the current resourceVersion, as a real
    /// kube-apiserver does from etcd: a watch or exact list from any older version gets 410
    /// "too old", so a client must relist. While the server is down (`set_down(true)`), the
    /// rebuild happens when it comes back, so changes made meanwhile are not replayed either.
    /// resourceVersions keep increasing. A real v1.20.2 with a watch open stops listening at
    /// TERM but does not exit for 5 s (the open watch hears nothing meanwhile, then breaks):
    /// a restart takes it 6-10 s, and this one takes none.
    pub fn restart(&self) {
        {
            let mut st = self.sh.lock();
            if st.down {
                st.restart_pending = true;
            } else {
                st.compacted = st.rv;
                st.history.clear();
            }
            for q in st.watchers.values_mut() {
                q.kill = true;
            }
        }
        self.sh.changed.notify_all();
        self.sh.drop_conns(false);
    }

    /// The next `n` requests (any path, before authentication) answer `code` with the
    /// matching `Status` (429 also carries `Retry-After: 1`).
    pub fn fail_next(&self, n: usize, code: u16) {
        let mut st = self.sh.lock();
        st.fail_left = n;
        st.fail_code = code;
        st.fail_retry_after = None;
    }

    /// Like `fail_next`, with `Retry-After: secs` on every answer (as a server under load
    /// or a priority-and-fairness reject sends it).
    pub fn fail_next_retry_after(&self, n: usize, code: u16, secs: u64) {
        let mut st = self.sh.lock();
        st.fail_left = n;
        st.fail_code = code;
        st.fail_retry_after = Some(secs);
    }

    /// Limits `token` to get, list and watch of the named objects of `kind` in `ns`, like a
    /// Role whose rule has `resourceNames`: a list or watch is allowed only with
    /// `fieldSelector=metadata.name=NAME` for one of them (the API server authorizes such a
    /// request as one on NAME); anything else is 403 Forbidden.
    pub fn grant_only(&self, token: &str, kind: Kind, ns: &str, names: &[&str]) {
        self.sh.lock().grants.insert(
            token.to_string(),
            Grants {
                sa_ns: ns.to_string(),
                rules: vec![Grant {
                    kind,
                    ns: Some(ns.to_string()),
                    names: Some(names.iter().map(|n| n.to_string()).collect()),
                }],
            },
        );
    }

    /// Adds to `token`'s grants (limiting it if it was not) get, list and watch of every
    /// object of `kind` in each of `namespaces`, like a Role and a RoleBinding in each: the
    /// cluster-wide collection stays 403, as with a real server. The token's ServiceAccount
    /// lives in the first namespace unless it was limited before.
    pub fn grant_in_namespaces(&self, token: &str, kind: Kind, namespaces: &[&str]) {
        let rules = namespaces.iter().map(|ns| Grant {
            kind,
            ns: Some(ns.to_string()),
            names: None,
        });
        self.add_grants(token, namespaces.first().copied(), rules);
    }

    /// Adds to `token`'s grants get, list and watch of `kind` everywhere, cluster-wide
    /// collection included, like a ClusterRole and a ClusterRoleBinding.
    pub fn grant_cluster_wide(&self, token: &str, kind: Kind) {
        let rule = Grant {
            kind,
            ns: None,
            names: None,
        };
        self.add_grants(token, None, [rule]);
    }

    fn add_grants(&self, token: &str, sa_ns: Option<&str>, rules: impl IntoIterator<Item = Grant>) {
        let mut st = self.sh.lock();
        let g = st
            .grants
            .entry(token.to_string())
            .or_insert_with(|| Grants {
                sa_ns: sa_ns.unwrap_or("default").to_string(),
                rules: Vec::new(),
            });
        g.rules.extend(rules);
    }

    /// The highest resourceVersion that the watch on connection `conn` (see `Record::conn`)
    /// has sent, event or bookmark; `None` when it sent none.
    pub fn watch_last_sent(&self, conn: u64) -> Option<u64> {
        self.watch_sent_at(conn).map(|(rv, _)| rv)
    }

    /// [`watch_last_sent`](Emulator::watch_last_sent), with the moment the write of that
    /// version to the connection had returned (the bytes in the client's socket): what a
    /// benchmark measures a client from, whatever the order the watches were served in.
    pub fn watch_sent_at(&self, conn: u64) -> Option<(u64, Instant)> {
        self.sh.lock().watch_sent.get(&conn).copied()
    }

    /// Closes every open watch abruptly (no final chunk). Only the watches open now: flags and
    /// sockets are dealt with under the state lock, which a new watch needs to register, so
    /// a client that reconnects at once gets a watch that stays open. (Nothing takes the
    /// state lock while holding the connections' lock.)
    pub fn drop_watches(&self) {
        let mut st = self.sh.lock();
        for q in st.watchers.values_mut() {
            q.kill = true;
        }
        self.sh.drop_conns(true);
        drop(st);
        self.sh.changed.notify_all();
    }

    /// Sends one ERROR event (Status 410 Expired, "too old resource version: X (Y)") on every
    /// open watch that is not silent, then ends it cleanly. Events queued but not yet sent are
    /// dropped. History is kept: call `compact` too for a client's re-watch to be refused.
    pub fn expire_watches(&self) {
        {
            let mut st = self.sh.lock();
            for q in st.watchers.values_mut() {
                if !q.silent {
                    q.expire = true;
                }
            }
        }
        self.sh.changed.notify_all();
    }

    /// While on, every new watch, from any version, gets 200, one ERROR 410 event and a
    /// clean end: a server (or a proxy in front of it) stuck answering "too old".
    pub fn set_expire_every_watch(&self, on: bool) {
        self.sh.lock().expire_every_watch = on;
    }

    /// While on, every continue token that carries a version (all but the rv -1 tokens of a
    /// 410's own `metadata.continue`) answers HTTP 410 Expired, as tokens from before an
    /// etcd compaction do on a real server; `compact` expires the older ones for good.
    pub fn set_expire_continue_tokens(&self, on: bool) {
        self.sh.lock().expire_continue = on;
    }

    /// While on, new watches get 200 and headers, then nothing at all: no events, no
    /// bookmarks, no timeout, until the client leaves or `drop_watches`/`restart`.
    pub fn set_silent_watches(&self, on: bool) {
        self.sh.lock().silent = on;
    }

    /// Sets a fault (see `Fault`).
    pub fn set_fault(&self, f: Fault) {
        let mut st = self.sh.lock();
        match f {
            Fault::None => {
                st.fault = None;
                st.tls_failure = false;
            }
            Fault::TlsHandshakeFailure(on) => st.tls_failure = on,
            other => st.fault = Some(other),
        }
    }

    /// Every request so far (the latest 100 000).
    pub fn requests(&self) -> Vec<Record> {
        self.sh.lock().records.iter().cloned().collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.sh.lock().records.clear();
    }

    /// Watches currently streaming (silent ones included).
    pub fn open_watches(&self) -> usize {
        self.sh.lock().open_watches
    }

    /// Open watches registered as silent ([`set_silent_watches`](Emulator::set_silent_watches)
    /// was on when they started): a count of watch requests cannot tell a new silent watch
    /// from the dropped one that has not ended yet; this can.
    pub fn silent_watches(&self) -> usize {
        self.sh
            .lock()
            .watchers
            .values()
            .filter(|q| q.silent)
            .count()
    }

    /// Polls `pred` every 5 ms until it holds (true) or `timeout` passes (false).
    pub fn wait_for(&self, pred: impl Fn(&Self) -> bool, timeout: Duration) -> bool {
        let end = later(Instant::now(), timeout);
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Takes the server off the network (`true`: every connection drops, new ones are
    /// refused) or puts it back on the same port (`false`). Returns once that holds.
    pub fn set_down(&self, down: bool) {
        {
            let mut st = self.sh.lock();
            if st.stopped {
                return;
            }
            st.down = down;
            if !down && st.restart_pending {
                st.restart_pending = false;
                st.compacted = st.rv;
                st.history.clear();
            }
            if down {
                for q in st.watchers.values_mut() {
                    q.kill = true;
                }
            }
        }
        self.sh.changed.notify_all();
        if down {
            self.sh.drop_conns(false);
            // Wake the accept thread so it lets go of the listener.
            let _ = TcpStream::connect_timeout(&wake_addr(self.sh.addr), Duration::from_secs(1));
        }
        self.wait_for(|e| e.sh.lock().listening != down, Duration::from_secs(5));
    }

    /// Stops for good: like `set_down(true)`, and the accept thread ends.
    pub fn stop(&self) {
        self.set_down(true);
        self.sh.lock().stopped = true;
        self.sh.changed.notify_all();
    }
}

fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv6() {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        });
    }
    a
}

/// Writes a canonical object (create or update) and returns its new resourceVersion.
pub(crate) fn write_object(
    st: &mut State,
    opts: &Options,
    kind: Kind,
    ns: &str,
    name: &str,
    content: Content,
    manager: &str,
) -> u64 {
    let key = (kind, ns.to_string(), name.to_string());
    let old = st.objects.get(&key).cloned();
    let rv = st.next_rv();
    let uid = match &old {
        Some(o) => o.uid.clone(),
        None => st.rng.uuid(),
    };
    let now = objects::rfc3339_now();
    let created = old
        .as_ref()
        .map(|o| o.created.clone())
        .unwrap_or_else(|| now.clone());
    let text = objects::render(
        &Meta {
            kind,
            ns,
            name,
            uid: &uid,
            rv,
            created: &created,
            manager,
            updated: &now,
        },
        &content,
    );
    let obj = Obj {
        kind,
        ns: ns.to_string(),
        name: name.to_string(),
        rv,
        uid,
        created,
        text: Arc::from(text),
        labels: content.labels.clone(),
        content: Some(content),
    };
    let typ = if old.is_some() { "MODIFIED" } else { "ADDED" };
    st.commit(
        Event {
            typ,
            obj: Arc::new(obj),
            prev: old,
        },
        opts.history_limit,
    );
    rv
}

/// Deletes an object; returns the deletion's resourceVersion, `None` if absent.
pub(crate) fn delete_object(
    st: &mut State,
    opts: &Options,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Option<u64> {
    let key = (kind, ns.to_string(), name.to_string());
    let old = st.objects.get(&key).cloned()?;
    let rv = st.next_rv();
    let text =
        text::rewrite_metadata(&old.text, ns, name, rv).unwrap_or_else(|| old.text.to_string());
    let obj = Obj {
        kind,
        ns: old.ns.clone(),
        name: old.name.clone(),
        rv,
        uid: old.uid.clone(),
        created: old.created.clone(),
        text: Arc::from(text),
        labels: old.labels.clone(),
        content: old.content.clone(),
    };
    st.commit(
        Event {
            typ: "DELETED",
            obj: Arc::new(obj),
            prev: Some(old),
        },
        opts.history_limit,
    );
    Some(rv)
}

// ---------------------------------------------------------------------------------------------
// Accepting and serving connections.

fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    let mut listener = Some(listener);
    loop {
        let (down, stopped) = {
            let st = sh.lock();
            (st.down, st.stopped)
        };
        if stopped {
            sh.lock().listening = false;
            return;
        }
        if down {
            if listener.take().is_some() {
                sh.lock().listening = false;
            }
            let st = sh.lock();
            let _ = sh.changed.wait_timeout(st, Duration::from_millis(50));
            continue;
        }
        let Some(l) = listener.as_ref() else {
            match TcpListener::bind(sh.addr) {
                Ok(l) => {
                    listener = Some(l);
                    sh.lock().listening = true;
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
            continue;
        };
        match l.accept() {
            Ok((sock, _)) => {
                if sh.lock().down {
                    continue;
                }
                let conn_sh = sh.clone();
                let _ = thread::Builder::new()
                    .name(String::from("kube-emulator-conn"))
                    .spawn(move || serve(conn_sh, sock));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn serve(sh: Arc<Shared>, sock: TcpStream) {
    let Ok(raw) = sock.try_clone() else {
        return;
    };
    let Ok(registry_handle) = sock.try_clone() else {
        return;
    };
    let id = {
        let mut st = sh.lock();
        st.next_id += 1;
        st.next_id
    };
    sh.conns().insert(
        id,
        ConnEntry {
            sock: registry_handle,
            watch: false,
        },
    );
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(30)));
    let conn = match &sh.tls {
        None => Some(Conn::Plain(sock)),
        Some(cfgs) => {
            let cfg = if sh.lock().tls_failure {
                cfgs.rogue.clone()
            } else {
                cfgs.normal.clone()
            };
            rustls::ServerConnection::new(cfg)
                .ok()
                .map(|c| Conn::Tls(Box::new(rustls::StreamOwned::new(c, sock))))
        }
    };
    if let Some(mut conn) = conn {
        let req = http::read_request(&mut conn, objects::MAX_BODY_BYTES);
        api::handle(&sh, &mut conn, &raw, id, req);
    }
    sh.conns().remove(&id);
}
