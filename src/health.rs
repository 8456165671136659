//! Health, readiness and metrics: counters the engine bumps, and a tiny HTTP server for
//! `-listen ADDR` that serves `/readyz`, `/healthz` and `/metrics` (Prometheus text).
//!
//! The server runs on its own threads with a deadline for each whole request and a fixed
//! number of connection slots (when all are taken, the oldest connection still sending its
//! request gives way), reads at most a small request head, and only reads atomics and
//! short-held locks: a slow or hostile client can never stall the loader, nor keep a probe
//! from its answer. It never writes files.

use crate::bytes::find_bytes;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest request head read from a client.
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// Connections served at once; a new one takes the place of the oldest still sending.
const MAX_CONNECTIONS: usize = 16;
/// How long a client has to send its whole request head.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the accept thread waits for a new connection's first bytes.
const FIRST_READ: Duration = Duration::from_millis(2);

/// Why a snapshot was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Content refused: bad key, collision, emptied Listener/Cluster file, bad object.
    Refused,
    /// The disk said no: full, read-only, permissions.
    Write,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Write => "write",
        }
    }
}

/// Process-wide counters and progress marks.
pub struct Metrics {
    started: Mutex<Option<Instant>>,
    ready: AtomicBool,
    snapshots_written: AtomicU64,
    bytes_written: AtomicU64,
    last_snapshot_unix_ms: AtomicU64,
    relists: AtomicU64,
    watch_restarts: AtomicU64,
    errors: Mutex<BTreeMap<ErrorKind, u64>>,
    requests: Mutex<BTreeMap<u16, u64>>,
    /// Per object, then per selection: when it last made progress (list, watch start,
    /// event, bookmark).
    progress: Mutex<Vec<(String, Instant)>>,
    /// Per selection: how many objects it selects now.
    selected: Mutex<Vec<u64>>,
    /// Versions refused because another object held one of their keys.
    collisions: AtomicU64,
    /// How long without progress still counts as healthy.
    stall_bound_ms: AtomicU64,
    /// The acknowledged apply's counts; `None` without `-envoy-admin`.
    envoy: Mutex<Option<EnvoyCounts>>,
}

/// The upper bounds (ms) of the acknowledgement-time histogram's buckets, and their labels.
const ACK_BUCKETS: [(u64, &str); 11] = [
    (5, "0.005"),
    (10, "0.01"),
    (25, "0.025"),
    (50, "0.05"),
    (100, "0.1"),
    (250, "0.25"),
    (500, "0.5"),
    (1000, "1"),
    (2500, "2.5"),
    (5000, "5"),
    (10000, "10"),
];

/// What the acknowledged apply counts.
#[derive(Default)]
struct EnvoyCounts {
    in_sync: bool,
    rejected: BTreeMap<String, u64>,
    unreachable: u64,
    timeouts: u64,
    /// Acknowledgements per bucket of [`ACK_BUCKETS`] (not cumulative), and above them.
    acks: [u64; ACK_BUCKETS.len() + 1],
    ack_ms: u64,
}

pub static METRICS: Metrics = Metrics::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            started: Mutex::new(None),
            ready: AtomicBool::new(false),
            snapshots_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            last_snapshot_unix_ms: AtomicU64::new(0),
            relists: AtomicU64::new(0),
            watch_restarts: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(BTreeMap::new()),
            progress: Mutex::new(Vec::new()),
            selected: Mutex::new(Vec::new()),
            collisions: AtomicU64::new(0),
            stall_bound_ms: AtomicU64::new(u64::MAX),
            envoy: Mutex::new(None),
        }
    }

    /// Names the objects and the selections followed, and the stall bound; call once
    /// before the engine starts. Progress is then counted by index: the objects first, then
    /// the selections.
    pub fn init(&self, objects: &[String], selections: &[String], stall_bound: Duration) {
        let now = Instant::now();
        *lock(&self.started) = Some(now);
        *lock(&self.progress) = objects
            .iter()
            .chain(selections)
            .map(|o| (o.clone(), now))
            .collect();
        *lock(&self.selected) = vec![0; selections.len()];
        self.stall_bound_ms
            .store(stall_bound.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn progress(&self, idx: usize) {
        if let Some(p) = lock(&self.progress).get_mut(idx) {
            p.1 = Instant::now();
        }
    }

    /// Selection `source` (numbered from 0) selects `count` objects now.
    pub fn selected(&self, source: usize, count: usize) {
        if let Some(n) = lock(&self.selected).get_mut(source) {
            *n = count as u64;
        }
    }

    /// The acknowledged apply is on (`-envoy-admin`): its metrics appear, in sync.
    pub fn envoy_on(&self) {
        *lock(&self.envoy) = Some(EnvoyCounts {
            in_sync: true,
            ..EnvoyCounts::default()
        });
    }

    fn with_envoy(&self, f: impl FnOnce(&mut EnvoyCounts)) {
        if let Some(e) = lock(&self.envoy).as_mut() {
            f(e)
        }
    }

    /// Envoy rejected `file` (or could not read it).
    pub fn envoy_rejected(&self, file: &str) {
        self.with_envoy(|e| *e.rejected.entry(file.to_string()).or_insert(0) += 1)
    }

    /// Whether Envoy accepted everything on disk, as far as the loader knows.
    pub fn envoy_in_sync(&self, yes: bool) {
        self.with_envoy(|e| e.in_sync = yes)
    }

    /// A phase went on without Envoy's acknowledgement: its admin could not be asked, or
    /// (`timeout`) did not show the phase taken in time.
    pub fn envoy_unacknowledged(&self, timeout: bool) {
        self.with_envoy(|e| {
            if timeout {
                e.timeouts += 1
            } else {
                e.unreachable += 1
            }
        })
    }

    /// Envoy acknowledged a phase `took` after the event that caused it.
    pub fn envoy_acknowledged(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        self.with_envoy(|e| {
            let bucket = ACK_BUCKETS
                .iter()
                .position(|(le, _)| ms <= *le)
                .unwrap_or(ACK_BUCKETS.len());
            e.acks[bucket] += 1;
            e.ack_ms += ms;
        })
    }

    pub fn collision(&self) {
        self.collisions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot_written(&self, bytes: u64) {
        self.snapshots_written.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.mark_snapshot_on_disk();
    }

    /// A complete snapshot is on disk (written now, or found unchanged).
    pub fn mark_snapshot_on_disk(&self) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_snapshot_unix_ms.store(ms, Ordering::Relaxed);
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn error(&self, kind: ErrorKind) {
        *lock(&self.errors).entry(kind).or_insert(0) += 1;
    }

    pub fn relist(&self) {
        self.relists.fetch_add(1, Ordering::Relaxed);
    }

    pub fn watch_restart(&self) {
        self.watch_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// An API answer's status code; 0 for a transport failure (no answer).
    pub fn request(&self, code: u16) {
        *lock(&self.requests).entry(code).or_insert(0) += 1;
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Ok, or the reason the loader is not making progress.
    pub fn health(&self) -> Result<(), String> {
        self.health_at(Instant::now())
    }

    /// [`health`](Metrics::health) as seen at `now`.
    fn health_at(&self, now: Instant) -> Result<(), String> {
        let bound = Duration::from_millis(self.stall_bound_ms.load(Ordering::Relaxed));
        for (name, at) in lock(&self.progress).iter() {
            let idle = now.saturating_duration_since(*at);
            if idle > bound {
                return Err(format!(
                    "{name}: no progress for {}s (bound {}s)",
                    idle.as_secs(),
                    bound.as_secs()
                ));
            }
        }
        Ok(())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            "envoy_xds_loader_snapshots_written_total",
            "Snapshots switched into the output directory.",
            self.snapshots_written.load(Ordering::Relaxed),
        );
        counter(
            "envoy_xds_loader_bytes_written_total",
            "Bytes of file content written in snapshots.",
            self.bytes_written.load(Ordering::Relaxed),
        );
        counter(
            "envoy_xds_loader_relists_total",
            "Lists after the first one (too old resource version, safety-net differences).",
            self.relists.load(Ordering::Relaxed),
        );
        counter(
            "envoy_xds_loader_watch_restarts_total",
            "Watches started after the first one of each list.",
            self.watch_restarts.load(Ordering::Relaxed),
        );
        counter(
            "envoy_xds_loader_collisions_total",
            "Versions refused because another object held one of their keys (the incumbent keeps it).",
            self.collisions.load(Ordering::Relaxed),
        );
        s.push_str("# HELP envoy_xds_loader_snapshot_errors_total Snapshots not written, by kind.\n# TYPE envoy_xds_loader_snapshot_errors_total counter\n");
        let errors = lock(&self.errors).clone();
        for kind in [ErrorKind::Refused, ErrorKind::Write] {
            let _ = writeln!(
                s,
                "envoy_xds_loader_snapshot_errors_total{{kind=\"{}\"}} {}",
                kind.label(),
                errors.get(&kind).copied().unwrap_or(0)
            );
        }
        s.push_str("# HELP envoy_xds_loader_api_requests_total Requests to the API server by status code (code=\"none\": no answer).\n# TYPE envoy_xds_loader_api_requests_total counter\n");
        for (code, n) in lock(&self.requests).iter() {
            let code = if *code == 0 {
                "none".to_string()
            } else {
                code.to_string()
            };
            let _ = writeln!(
                s,
                "envoy_xds_loader_api_requests_total{{code=\"{code}\"}} {n}"
            );
        }
        self.render_followed(&mut s);
        self.render_envoy(&mut s);
        let last = self.last_snapshot_unix_ms.load(Ordering::Relaxed);
        let _ = write!(
            s,
            "# HELP envoy_xds_loader_last_snapshot_timestamp_seconds When a complete snapshot was last known on disk.\n# TYPE envoy_xds_loader_last_snapshot_timestamp_seconds gauge\nenvoy_xds_loader_last_snapshot_timestamp_seconds {}.{:03}\n",
            last / 1000,
            last % 1000
        );
        let _ = write!(
            s,
            "# HELP envoy_xds_loader_ready 1 once the first complete snapshot is on disk.\n# TYPE envoy_xds_loader_ready gauge\nenvoy_xds_loader_ready {}\n",
            u8::from(self.is_ready())
        );
        s
    }
}

impl Metrics {
    /// Per object and selection: the seconds since its last progress; per selection: the
    /// objects it selects.
    fn render_followed(&self, s: &mut String) {
        let now = Instant::now();
        let progress = lock(&self.progress).clone();
        let selected = lock(&self.selected).clone();
        s.push_str("# HELP envoy_xds_loader_seconds_since_progress Per object and selection followed: seconds since its last list, event, bookmark or completed watch.\n# TYPE envoy_xds_loader_seconds_since_progress gauge\n");
        for (name, at) in &progress {
            let ms = now.saturating_duration_since(*at).as_millis();
            let _ = writeln!(
                s,
                "envoy_xds_loader_seconds_since_progress{{followed=\"{}\"}} {}.{:03}",
                label(name),
                ms / 1000,
                ms % 1000
            );
        }
        let sources = &progress[progress.len().saturating_sub(selected.len())..];
        s.push_str("# HELP envoy_xds_loader_selected_objects Per selection (a selector in a namespace, or in every namespace): the objects it selects now.\n# TYPE envoy_xds_loader_selected_objects gauge\n");
        for ((name, _), n) in sources.iter().zip(&selected) {
            let _ = writeln!(
                s,
                "envoy_xds_loader_selected_objects{{selection=\"{}\"}} {n}",
                label(name)
            );
        }
    }
}

impl Metrics {
    /// The acknowledged apply's metrics, when it is on.
    fn render_envoy(&self, s: &mut String) {
        let guard = lock(&self.envoy);
        let Some(e) = guard.as_ref() else {
            return;
        };
        let _ = write!(
            s,
            "# HELP envoy_xds_loader_envoy_in_sync 1 when Envoy acknowledged every file on disk, else 0 (a file rejected, or written while Envoy could not be asked).\n# TYPE envoy_xds_loader_envoy_in_sync gauge\nenvoy_xds_loader_envoy_in_sync {}\n",
            u8::from(e.in_sync)
        );
        s.push_str("# HELP envoy_xds_loader_envoy_rejected_total Files Envoy rejected or could not read, by file.\n# TYPE envoy_xds_loader_envoy_rejected_total counter\n");
        for (file, n) in &e.rejected {
            let _ = writeln!(
                s,
                "envoy_xds_loader_envoy_rejected_total{{file=\"{}\"}} {n}",
                label(file)
            );
        }
        let _ = write!(
            s,
            "# HELP envoy_xds_loader_envoy_unacknowledged_total Phases that went on without Envoy's acknowledgement, by reason.\n# TYPE envoy_xds_loader_envoy_unacknowledged_total counter\nenvoy_xds_loader_envoy_unacknowledged_total{{reason=\"unreachable\"}} {}\nenvoy_xds_loader_envoy_unacknowledged_total{{reason=\"timeout\"}} {}\n",
            e.unreachable, e.timeouts
        );
        s.push_str("# HELP envoy_xds_loader_envoy_ack_seconds From the event to Envoy's acknowledgement of a phase it caused.\n# TYPE envoy_xds_loader_envoy_ack_seconds histogram\n");
        let mut total = 0;
        for (i, (_, le)) in ACK_BUCKETS.iter().enumerate() {
            total += e.acks[i];
            let _ = writeln!(
                s,
                "envoy_xds_loader_envoy_ack_seconds_bucket{{le=\"{le}\"}} {total}"
            );
        }
        total += e.acks[ACK_BUCKETS.len()];
        let _ = write!(
            s,
            "envoy_xds_loader_envoy_ack_seconds_bucket{{le=\"+Inf\"}} {total}\nenvoy_xds_loader_envoy_ack_seconds_sum {}.{:03}\nenvoy_xds_loader_envoy_ack_seconds_count {total}\n",
            e.ack_ms / 1000,
            e.ack_ms % 1000
        );
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Binds `addr` and serves in the background; the error names the address. `:PORT` means
/// every address, as Go's `net.Listen` takes it: `[::]:PORT`, which on Linux also accepts
/// IPv4, or `0.0.0.0:PORT` where IPv6 is off.
pub fn serve(addr: &str) -> std::io::Result<std::net::SocketAddr> {
    let bind = |a: &str| {
        TcpListener::bind(a).map_err(|e| std::io::Error::new(e.kind(), format!("listen {a}: {e}")))
    };
    let listener = match addr.strip_prefix(':') {
        Some(port) => bind(&format!("[::]:{port}")).or_else(|_| bind(&format!("0.0.0.0:{port}"))),
        None => bind(addr),
    }?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || accept_loop(listener))?;
    Ok(local)
}

/// The connections being served: a fixed number of slots, so that a flood of clients
/// costs a bounded number of threads.
struct Slots(Mutex<Vec<Slot>>);

struct Slot {
    id: u64,
    since: Instant,
    /// Its request head is complete: it is being answered, which takes microseconds.
    answering: bool,
    sock: TcpStream,
}

impl Slots {
    /// Takes a slot for `sock`. When all are taken, the oldest connection still sending its
    /// request gives way (it is shut down): slow clients can delay a probe by one accept,
    /// never refuse it.
    fn take(&self, id: u64, sock: &TcpStream, answering: bool) -> bool {
        let Ok(handle) = sock.try_clone() else {
            return false;
        };
        let mut slots = lock(&self.0);
        if slots.len() >= MAX_CONNECTIONS {
            let oldest = (0..slots.len())
                .filter(|&i| !slots[i].answering)
                .min_by_key(|&i| slots[i].since);
            let Some(i) = oldest else {
                return false;
            };
            let _ = slots.swap_remove(i).sock.shutdown(Shutdown::Both);
        }
        slots.push(Slot {
            id,
            since: Instant::now(),
            answering,
            sock: handle,
        });
        true
    }

    fn answering(&self, id: u64) {
        if let Some(s) = lock(&self.0).iter_mut().find(|s| s.id == id) {
            s.answering = true;
        }
    }

    fn give_back(&self, id: u64) {
        lock(&self.0).retain(|s| s.id != id);
    }
}

fn accept_loop(listener: TcpListener) {
    let slots = std::sync::Arc::new(Slots(Mutex::new(Vec::with_capacity(MAX_CONNECTIONS))));
    for (id, conn) in (0u64..).zip(listener.incoming()) {
        let Ok(mut conn) = conn else { continue };
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        // A probe sends its whole request at once: read what came with the connection, so
        // that a request already complete takes its slot as answering, which no newcomer
        // can take from it (under a flood of slow clients it would otherwise be the oldest
        // before its own thread had read it).
        let mut first = vec![0u8; 1024];
        let n = match conn
            .set_read_timeout(Some(FIRST_READ))
            .and_then(|()| conn.read(&mut first))
        {
            Ok(0) => continue, // closed already
            Ok(n) => n,
            Err(_) => 0,
        };
        first.truncate(n);
        if !slots.take(id, &conn, head_end(&first).is_some()) {
            continue; // every slot is answering: closed at once
        }
        let mine = slots.clone();
        let spawned = std::thread::Builder::new()
            .name("health-conn".into())
            .spawn(move || {
                handle(conn, first, deadline, &|| mine.answering(id));
                mine.give_back(id);
            });
        if spawned.is_err() {
            slots.give_back(id);
        }
    }
}

/// Where a request head ends (at its blank line), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    find_bytes(buf, b"\r\n\r\n").or_else(|| find_bytes(buf, b"\n\n"))
}

/// Reads one request head, after the bytes `buf` already read, until `deadline` (the whole
/// request, not each read), then answers it; `answering` is called once the head is
/// complete.
fn handle(mut conn: TcpStream, mut buf: Vec<u8>, deadline: Instant, answering: &dyn Fn()) {
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = head_end(&buf) {
            break Some(i);
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            break None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            break None;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    answering();
    let (status, body) = match head_end {
        None if buf.len() >= MAX_REQUEST_BYTES => (431, "request head too large\n".to_string()),
        None if buf.is_empty() => return,
        None => (400, "incomplete request\n".to_string()),
        Some(end) => route(&buf[..end]),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let ctype = if body.starts_with("# HELP") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    // HEAD: the headers GET would have, no body.
    let len = body.len();
    let body = if buf.starts_with(b"HEAD ") { "" } else { &body };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}"
    );
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.write_all(resp.as_bytes());
}

/// Answers one request head: (status, body).
pub fn route(head: &[u8]) -> (u16, String) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (400, "bad request line\n".into());
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return (400, "bad request line\n".into());
    }
    if method != "GET" && method != "HEAD" {
        return (405, "only GET\n".into());
    }
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/readyz" if METRICS.is_ready() => (200, "ok\n".into()),
        "/readyz" => (503, "no complete snapshot on disk yet\n".into()),
        "/healthz" => match METRICS.health() {
            Ok(()) => (200, "ok\n".into()),
            Err(why) => (503, format!("{why}\n")),
        },
        "/metrics" => (200, METRICS.render()),
        _ => (404, "not found: try /readyz, /healthz or /metrics\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_bad_requests() {
        let table: &[(&[u8], u16)] = &[
            (b"GET /metrics HTTP/1.1\r\nHost: x", 200),
            (b"GET /metrics?x=1 HTTP/1.0", 200),
            (b"HEAD /healthz HTTP/1.1", 200),
            (b"GET /nope HTTP/1.1", 404),
            (b"POST /metrics HTTP/1.1", 405),
            (b"GET metrics HTTP/1.1", 400),
            (b"GET /metrics", 400),
            (b"GET /metrics HTTP/1.1 extra", 400),
            (b"\xff\xfe", 400),
            (b"", 400),
        ];
        for (head, want) in table {
            assert_eq!(route(head).0, *want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn selections_have_their_own_progress_and_counts() {
        let m = Metrics::new();
        let sel = "configmaps in a with app in (x,y)".to_string();
        m.init(
            &["configmap a/b".into()],
            &[sel],
            Duration::from_millis(200),
        );
        m.selected(0, 3);
        m.collision();
        m.progress(0);
        let text = m.render();
        for line in [
            "envoy_xds_loader_selected_objects{selection=\"configmaps in a with app in (x,y)\"} 3\n",
            "envoy_xds_loader_collisions_total 1\n",
            "envoy_xds_loader_seconds_since_progress{followed=\"configmap a/b\"} 0.",
            "envoy_xds_loader_seconds_since_progress{followed=\"configmaps in a with app in (x,y)\"} 0.",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // the selection stalls alone: /healthz names it
        std::thread::sleep(Duration::from_millis(300));
        m.progress(0);
        let e = m.health_at(Instant::now()).unwrap_err();
        assert!(
            e.starts_with("configmaps in a with app in (x,y): no progress"),
            "{e}"
        );
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn health_notices_a_stalled_object() {
        let m = Metrics::new();
        m.init(&["configmap a/b".into()], &[], Duration::from_secs(30));
        let now = Instant::now();
        assert!(m.health_at(now).is_ok());
        assert!(m.health_at(now + Duration::from_secs(29)).is_ok());
        let e = m.health_at(now + Duration::from_secs(31)).unwrap_err();
        assert_eq!(e, "configmap a/b: no progress for 31s (bound 30s)");
        m.progress(0);
        assert!(m
            .health_at(Instant::now() + Duration::from_secs(29))
            .is_ok());
        m.snapshot_written(10);
        m.error(ErrorKind::Write);
        m.request(200);
        m.request(0);
        let text = m.render();
        for line in [
            "envoy_xds_loader_snapshots_written_total 1",
            "envoy_xds_loader_bytes_written_total 10",
            "envoy_xds_loader_snapshot_errors_total{kind=\"write\"} 1",
            "envoy_xds_loader_snapshot_errors_total{kind=\"refused\"} 0",
            "envoy_xds_loader_api_requests_total{code=\"200\"} 1",
            "envoy_xds_loader_api_requests_total{code=\"none\"} 1",
            "envoy_xds_loader_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
