//! Keeping the output directory in step with the API server.
//!
//! - `-onetime`: list every object once, write one snapshot, exit 0; any failure exits 1.
//! - poll (neither flag): list every object each `-sync-interval`, write when different.
//! - `-watch`: one reflector thread per object (its rules in [`reflector`]: list, then
//!   watch from the last version seen, re-watch on a normal end or after 90 s of silence,
//!   relist on "too old", back off on errors) hands what it learns to the [`Engine`], which
//!   merges every object's last good files and writes a snapshot on the reflector's own
//!   thread: no hand-off to another thread to wake. Bursts are coalesced: a delivery that
//!   finds another one waiting leaves the write to it. The thread that started the watch
//!   retries failed writes on their backoff.
//!
//! Invariants: only the engine touches the disk, one write at a time under its lock, and
//! holds [`write_lock`] while it does; content that is refused (bad key, collision, an
//! emptied Listener/Cluster file) never replaces the last good files; a deleted object
//! keeps its last files.

use crate::backoff::{Backoff, Rng};
use crate::cli::{Config, Mode};
use crate::health::{ErrorKind, METRICS};
use crate::kube::{self, Client, Event, ObjectRef, Refused};
use crate::snapshot::{self, Files, Outcome, Writer};
use crate::{log, xds};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod reflector;
use reflector::{Heard, Reflector, Step, SILENCE};

static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Held while a snapshot is written; `main` takes it before exiting on a signal so that a
/// write in progress always finishes.
pub fn write_lock() -> &'static Mutex<()> {
    &WRITE_LOCK
}

/// Runs the configured mode; returns the process exit code (only `-onetime` returns).
pub fn run(cfg: &Config) -> i32 {
    let client = Arc::new(Client::new(
        cfg.apiserver.clone(),
        cfg.token_file.clone(),
        &cfg.trust,
    ));
    let mut sink = match Sink::open(cfg) {
        Ok(s) => s,
        Err(e) => {
            log::error("cannot use the output directory", &[("err", &e)]);
            return 1;
        }
    };
    match cfg.mode {
        Mode::OneTime => one_time(cfg, &client, &mut sink),
        Mode::Poll => poll(cfg, &client, &mut sink),
        Mode::Watch => watch(cfg, client, sink),
    }
}

fn one_time(cfg: &Config, client: &Client, sink: &mut Sink) -> i32 {
    let deadline = Instant::now() + cfg.onetime_timeout;
    let mut backoff = Backoff::new(Rng::from_entropy());
    let mut all = Vec::with_capacity(cfg.objects.len());
    for obj in &cfg.objects {
        match list_until(obj, client, deadline, &mut backoff) {
            Ok(kube::Listed {
                object: Some(o), ..
            }) => match o.files {
                Ok(files) => all.push((obj.clone(), Arc::new(files))),
                Err(e) => {
                    let fields = subject(obj, "list", None, e.key.as_deref());
                    log::error(&format!("{obj}: refused: {e}"), &log::owned(&fields));
                    return 1;
                }
            },
            Ok(kube::Listed { object: None, .. }) => {
                let fields = subject(obj, "list", None, None);
                log::error(&format!("{obj}: not found"), &log::owned(&fields));
                return 1;
            }
            Err((e, gave_up)) => {
                let fields = subject(obj, "list", Some(&e), None);
                let why = match gave_up {
                    Some(after) => {
                        format!(" (still failing after {}, -onetime-timeout)", tenths(after))
                    }
                    None => String::new(),
                };
                log::error(&format!("{obj}: list: {e}{why}"), &log::owned(&fields));
                return 1;
            }
        }
    }
    let all: Vec<(&ObjectRef, &Arc<Files>)> = all.iter().map(|(o, f)| (o, f)).collect();
    match sink.apply(cfg, &all) {
        Ok(_) => 0,
        Err(e) => {
            log::error(&e.to_string(), &log::owned(&e.fields()));
            1
        }
    }
}

/// `-onetime`'s list: transient failures (refused, reset, timeouts, 429, 5xx) are retried
/// on the backoff (or Retry-After) until `deadline`, and a first 401 once at once (the token
/// file is read again for it); anything else fails at once. The error comes with how long
/// it was retried when time ran out.
fn list_until(
    obj: &ObjectRef,
    client: &Client,
    deadline: Instant,
    backoff: &mut Backoff,
) -> Result<kube::Listed, (kube::Error, Option<Duration>)> {
    let started = Instant::now();
    let mut unauthorized = 0;
    loop {
        let e = match client.list(obj, false) {
            Ok(listed) => return Ok(listed),
            Err(e) => e,
        };
        let delay = if e.code() == Some(401) && unauthorized == 0 {
            unauthorized += 1;
            Duration::ZERO
        } else if e.is_transient() {
            backoff
                .next_delay()
                .max(e.retry_after().unwrap_or_default())
        } else {
            return Err((e, None));
        };
        if Instant::now() + delay > deadline {
            return Err((e, Some(started.elapsed())));
        }
        let mut fields = subject(obj, "list", Some(&e), None);
        fields.push(("retry_in", tenths(delay)));
        log::warn(&format!("{obj}: list: {e}; retrying"), &log::owned(&fields));
        std::thread::sleep(delay);
    }
}

fn poll(cfg: &Config, client: &Client, sink: &mut Sink) -> i32 {
    let mut state = State::new(cfg.objects.len());
    let mut rng = Rng::from_entropy();
    loop {
        for (idx, obj) in cfg.objects.iter().enumerate() {
            match client.list(obj, false) {
                Ok(l) => {
                    METRICS.progress(idx);
                    state.listed(obj, idx, l.object)
                }
                Err(e) => log::warn(
                    &format!("{obj}: list: {e}"),
                    &log::owned(&subject(obj, "list", Some(&e), None)),
                ),
            }
        }
        if let Some(all) = state.complete(&cfg.objects) {
            if let Err(e) = sink.apply(cfg, &all) {
                log::error(&e.to_string(), &log::owned(&e.fields()));
            }
        }
        std::thread::sleep(rng.scale(cfg.sync_interval, 0.95, 1.05));
    }
}

/// What the reflectors tell the engine.
enum Msg {
    /// A list answer: the object, or None when it does not exist.
    Listed(usize, Option<kube::Object>),
    /// ADDED or MODIFIED.
    Upsert(usize, kube::Object),
    Deleted(usize),
}

/// The last good files of each object (None until first seen).
struct State {
    files: Vec<Option<Arc<Files>>>,
    versions: Vec<Option<String>>,
}

impl State {
    fn new(n: usize) -> State {
        State {
            files: vec![None; n],
            versions: vec![None; n],
        }
    }

    fn listed(&mut self, obj: &ObjectRef, idx: usize, object: Option<kube::Object>) {
        match object {
            Some(o) => self.upsert(obj, idx, o),
            None if self.files[idx].is_some() => log::warn(
                &format!("{obj}: not found; keeping its last files"),
                &log::owned(&subject(obj, "list", None, None)),
            ),
            None => log::warn(
                &format!("{obj}: not found; waiting for it"),
                &log::owned(&subject(obj, "list", None, None)),
            ),
        }
    }

    fn upsert(&mut self, obj: &ObjectRef, idx: usize, o: kube::Object) {
        if self.versions[idx].as_deref() == Some(&o.resource_version) {
            return;
        }
        self.versions[idx] = Some(o.resource_version.clone());
        match o.files {
            Ok(f) => self.files[idx] = Some(Arc::new(f)),
            Err(e) => {
                let mut fields = subject(obj, "decode", None, e.key.as_deref());
                fields.push(("resource_version", o.resource_version.clone()));
                log::error(
                    &format!("{obj}: refused: {e}; keeping the last files"),
                    &log::owned(&fields),
                )
            }
        }
    }

    /// Every object's files, once each object has been seen (lent, not copied).
    fn complete<'a>(
        &'a self,
        objects: &'a [ObjectRef],
    ) -> Option<Vec<(&'a ObjectRef, &'a Arc<Files>)>> {
        objects
            .iter()
            .zip(&self.files)
            .map(|(o, f)| f.as_ref().map(|f| (o, f)))
            .collect()
    }
}

fn watch(cfg: &Config, client: Arc<Client>, sink: Sink) -> i32 {
    let engine = Arc::new(Engine::new(cfg.clone(), sink));
    for (idx, obj) in cfg.objects.iter().enumerate() {
        let (engine, client, obj) = (engine.clone(), client.clone(), obj.clone());
        let (sync_interval, watch_timeout) = (cfg.sync_interval, cfg.watch_timeout);
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{idx}"))
            .spawn(move || reflect(idx, obj, &client, sync_interval, watch_timeout, &engine));
        if let Err(e) = spawned {
            log::error("cannot start a watch thread", &[("err", &e)]);
            return 1;
        }
    }
    engine.tend()
}

/// How long the engine waits without news before it trims the allocator's cache.
const TRIM_AFTER: Duration = Duration::from_secs(2);

/// The writing side of `-watch`: every object's last good files and the sink, behind one
/// lock, used by the reflector threads and by the thread that retries failed writes.
struct Engine {
    cfg: Config,
    writing: Mutex<Writing>,
    /// Signalled on every delivery, for the retrying thread.
    news: Condvar,
    /// Deliveries waiting for the lock.
    waiting: AtomicUsize,
}

struct Writing {
    state: State,
    sink: Sink,
    retry: Backoff,
    retry_at: Option<Instant>,
    /// Counts deliveries, so that a quiet spell is trimmed once.
    delivered: u64,
}

impl Engine {
    fn new(cfg: Config, sink: Sink) -> Engine {
        Engine {
            writing: Mutex::new(Writing {
                state: State::new(cfg.objects.len()),
                sink,
                retry: Backoff::new(Rng::from_entropy()),
                retry_at: None,
                delivered: 0,
            }),
            cfg,
            news: Condvar::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writing> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what a reflector learned and writes the result, unless another delivery is
    /// already waiting for the lock: that one writes both.
    fn deliver(&self, msg: Msg) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut w = self.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let objects = &self.cfg.objects;
        match msg {
            Msg::Listed(idx, object) => w.state.listed(&objects[idx], idx, object),
            Msg::Upsert(idx, o) => w.state.upsert(&objects[idx], idx, o),
            Msg::Deleted(idx) => log::warn(
                &format!("{}: deleted; keeping its last files", objects[idx]),
                &log::owned(&subject(&objects[idx], "watch", None, None)),
            ),
        }
        w.delivered += 1;
        if self.waiting.load(Ordering::SeqCst) == 0 {
            self.write(&mut w);
        }
        drop(w);
        self.news.notify_one();
    }

    /// Writes every object's files once each has been seen; a failed write is retried on
    /// a backoff by [`tend`](Engine::tend), a refused one waits for the objects to change.
    fn write(&self, w: &mut Writing) {
        let Writing {
            state,
            sink,
            retry,
            retry_at,
            ..
        } = w;
        let Some(all) = state.complete(&self.cfg.objects) else {
            return;
        };
        match sink.apply(&self.cfg, &all) {
            Ok(_) => {
                retry.reset();
                *retry_at = None;
            }
            Err(e @ ApplyError::Write(_)) => {
                let delay = retry.next_delay();
                log::error(&e.to_string(), &[("retry_in", &tenths(delay))]);
                *retry_at = Some(Instant::now() + delay);
            }
            Err(e @ ApplyError::Refused(_)) => {
                log::error(&e.to_string(), &log::owned(&e.fields()));
                *retry_at = None;
            }
        }
    }

    /// Retries failed writes when their backoff is due, and hands the allocator's kept
    /// blocks back after a quiet spell. Never returns.
    fn tend(&self) -> ! {
        let mut trimmed_at = None;
        let mut w = self.lock();
        loop {
            let now = Instant::now();
            w = match w.retry_at {
                Some(t) if now >= t => {
                    self.write(&mut w);
                    continue;
                }
                Some(t) => self.wait(w, Some(t - now)),
                None if trimmed_at == Some(w.delivered) => self.wait(w, None),
                None => {
                    let delivered = w.delivered;
                    let w = self.wait(w, Some(TRIM_AFTER));
                    if w.delivered == delivered && w.retry_at.is_none() {
                        crate::alloc::trim();
                        trimmed_at = Some(delivered);
                    }
                    w
                }
            };
        }
    }

    fn wait<'a>(
        &self,
        w: MutexGuard<'a, Writing>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, Writing> {
        match timeout {
            Some(t) => match self.news.wait_timeout(w, t) {
                Ok((w, _)) => w,
                Err(p) => p.into_inner().0,
            },
            None => self.news.wait(w).unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// One object's list+watch loop: the requests, sleeps, logs and counts around the
/// [`Reflector`], which decides every next step.
fn reflect(
    idx: usize,
    obj: ObjectRef,
    client: &Client,
    sync_interval: Duration,
    watch_timeout: Duration,
    engine: &Engine,
) -> ! {
    let mut r = Reflector::new(Backoff::new(Rng::from_entropy()));
    let mut rng = Rng::from_entropy();
    let next_check = |rng: &mut Rng| {
        (!sync_interval.is_zero()).then(|| Instant::now() + rng.scale(sync_interval, 0.9, 1.1))
    };
    let mut check_at = None;
    // The object's own version as last delivered, for the safety-net check.
    let mut object_version: Option<String> = None;
    let (mut lists, mut watches) = (0u64, 0u64);
    let mut step = r.start();
    loop {
        step = match step {
            Step::List => {
                lists += 1;
                if lists > 1 {
                    METRICS.relist();
                }
                match client.list(&obj, false) {
                    Ok(listed) => {
                        METRICS.progress(idx);
                        object_version = listed.object.as_ref().map(|o| o.resource_version.clone());
                        check_at = next_check(&mut rng);
                        watches = 0;
                        let next = r.on(Heard::Listed(&listed.resource_version));
                        engine.deliver(Msg::Listed(idx, listed.object));
                        next
                    }
                    Err(e) => failed(&obj, "list", &e, &mut r),
                }
            }
            Step::Watch(from) => {
                if check_at.is_some_and(|t| Instant::now() >= t) {
                    check_at = next_check(&mut rng);
                    if safety_net_differs(&obj, client, object_version.as_deref()) {
                        step = r.on(Heard::Differs);
                        continue;
                    }
                }
                let mut timeout = rng.scale(watch_timeout, 1.0, 2.0);
                if let Some(t) = check_at {
                    timeout = timeout.min(t.saturating_duration_since(Instant::now()));
                }
                let timeout_secs = timeout.as_secs().max(1);
                // A byte is due at least every SILENCE (bookmarks), and the end at the
                // server's own timeout plus a margin, whichever comes first.
                let due = Duration::from_secs(timeout_secs) + read_margin(watch_timeout);
                let read_timeout = due.min(SILENCE);
                watches += 1;
                if watches > 1 {
                    METRICS.watch_restart();
                }
                let started = Instant::now();
                match client.watch(&obj, &from, timeout_secs, read_timeout) {
                    Err(e) if e.is_gone() => gone(&obj, &mut r, Some(&e), None),
                    Err(e) => failed(&obj, "watch", &e, &mut r),
                    Ok(mut w) => {
                        let mut events = 0u64;
                        loop {
                            let rv = match w.next() {
                                Ok(Some(Event::Upsert(o))) => {
                                    let rv = o.resource_version.clone();
                                    object_version = Some(rv.clone());
                                    engine.deliver(Msg::Upsert(idx, o));
                                    rv
                                }
                                Ok(Some(Event::Deleted { resource_version })) => {
                                    object_version = None;
                                    engine.deliver(Msg::Deleted(idx));
                                    resource_version
                                }
                                Ok(Some(
                                    Event::Bookmark { resource_version }
                                    | Event::Ignored { resource_version },
                                )) => resource_version,
                                Ok(Some(Event::Expired(status))) => {
                                    break gone(&obj, &mut r, None, Some(&status));
                                }
                                Ok(Some(Event::Error(status))) => {
                                    let e =
                                        kube::Error::Transport(format!("error event: {status}"));
                                    break failed(&obj, "watch", &e, &mut r);
                                }
                                Ok(None) => {
                                    let lasted = started.elapsed();
                                    break ended(&obj, idx, &mut r, events, lasted);
                                }
                                Err(kube::Error::Timeout) if read_timeout < due => {
                                    METRICS.progress(idx);
                                    log::info(
                                        &format!(
                                            "{obj}: watch: nothing for {}s; replacing it",
                                            read_timeout.as_secs()
                                        ),
                                        &log::owned(&subject(&obj, "watch", None, None)),
                                    );
                                    break r.on(Heard::Silent);
                                }
                                Err(e) => break failed(&obj, "watch", &e, &mut r),
                            };
                            METRICS.progress(idx);
                            events += 1;
                            match r.on(Heard::Event(&rv)) {
                                Step::Read => {}
                                other => break other,
                            }
                        }
                    }
                }
            }
            Step::Wait(d) => {
                std::thread::sleep(d);
                r.resume()
            }
            Step::Read => r.resume(),
        };
    }
}

/// Safety net: a cheap read from the watch cache; a difference means something was
/// missed, and a consistent relist settles it.
fn safety_net_differs(obj: &ObjectRef, client: &Client, delivered: Option<&str>) -> bool {
    match client.list(obj, true) {
        Ok(l) if l.object.as_ref().map(|o| o.resource_version.as_str()) != delivered => {
            log::warn(
                &format!("{obj}: safety-net check found a difference; relisting"),
                &log::owned(&subject(obj, "check", None, None)),
            );
            true
        }
        Ok(_) => false,
        Err(e) => {
            log::warn(
                &format!("{obj}: safety-net check: {e}"),
                &log::owned(&subject(obj, "check", Some(&e), None)),
            );
            false
        }
    }
}

/// A failed list or watch: the reflector's wait, logged in one line.
fn failed(obj: &ObjectRef, op: &str, e: &kube::Error, r: &mut Reflector) -> Step {
    let step = r.on(Heard::Failed {
        retry_after: e.retry_after(),
    });
    let hint = match e.code() {
        Some(401) => "; the token file is read again before the next request",
        _ => "",
    };
    let mut fields = subject(obj, op, Some(e), None);
    if let Step::Wait(d) = &step {
        fields.push(("retry_in", tenths(*d)));
    }
    log::warn(&format!("{obj}: {op}: {e}{hint}"), &log::owned(&fields));
    step
}

/// "Too old", as an HTTP 410 (`e`) or an ERROR event (`status`): relist, at once or after
/// the wait of a repeated 410.
fn gone(
    obj: &ObjectRef,
    r: &mut Reflector,
    e: Option<&kube::Error>,
    status: Option<&kube::Status>,
) -> Step {
    let step = r.on(Heard::Gone);
    let mut fields = subject(obj, "watch", e, None);
    if let Some(status) = status {
        fields.push(("code", status.code.to_string()));
        fields.push(("status", status.to_string()));
    }
    if let Step::Wait(d) = &step {
        fields.push(("retry_in", tenths(*d)));
    }
    log::info(
        &format!("{obj}: watch: too old resource version; relisting"),
        &log::owned(&fields),
    );
    step
}

/// The server ended the watch: a watch that ran its course is progress even on a quiet
/// cluster; one that merely started (perhaps on a dead connection) is a failure.
fn ended(obj: &ObjectRef, idx: usize, r: &mut Reflector, events: u64, lasted: Duration) -> Step {
    let step = r.on(Heard::Ended { events, lasted });
    match &step {
        Step::Wait(d) => log::warn(
            &format!("{obj}: watch: ended at once with no event"),
            &log::owned(&{
                let mut fields = subject(obj, "watch", None, None);
                fields.push(("retry_in", tenths(*d)));
                fields
            }),
        ),
        _ => METRICS.progress(idx),
    }
    step
}

/// How much longer than the server-side watch timeout the client waits for a byte.
pub fn read_margin(watch_timeout: Duration) -> Duration {
    (watch_timeout / 10).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// How long an object may go without progress (an event, a bookmark, a list, a watch that
/// ran its course or was replaced after [`SILENCE`]) before /healthz fails: a watch brings
/// progress at least every twice `-watch-timeout` plus the read margin, or every
/// [`SILENCE`], whichever is sooner; a poll comes every `-sync-interval`; plus slack for the
/// backoff.
pub fn stall_bound(cfg: &Config) -> Duration {
    match cfg.mode {
        Mode::Watch => {
            (cfg.watch_timeout * 2 + read_margin(cfg.watch_timeout)).min(SILENCE)
                + cfg.watch_timeout.min(Duration::from_secs(60))
        }
        Mode::Poll => cfg.sync_interval * 2 + Duration::from_secs(60),
        Mode::OneTime => Duration::from_secs(u64::MAX / 4),
    }
}

/// The fields that name what a log line is about: `object=… op=…`, the API server's
/// `code=` when it answered, and the `key=` to blame.
fn subject(
    obj: &ObjectRef,
    op: &str,
    e: Option<&kube::Error>,
    key: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut fields = vec![("object", obj.to_string()), ("op", op.to_string())];
    if let Some(code) = e.and_then(kube::Error::code) {
        fields.push(("code", code.to_string()));
    }
    if let Some(key) = key {
        fields.push(("key", key.to_string()));
    }
    fields
}

/// Content refused by the merge or the guard: the object to blame when one is, and why.
#[derive(Debug)]
pub struct Refusal {
    pub object: Option<ObjectRef>,
    pub refused: Refused,
}

impl Refusal {
    fn new(object: Option<&ObjectRef>, key: &str, why: String) -> Refusal {
        Refusal {
            object: object.cloned(),
            refused: Refused::new(Some(key), why),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.refused.fmt(f)
    }
}

/// Why a snapshot was not written.
#[derive(Debug)]
enum ApplyError {
    /// The content: a bad key, a collision, an emptied Listener/Cluster file. Nothing to
    /// retry until the objects change.
    Refused(Refusal),
    /// The disk: worth retrying with backoff.
    Write(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Refused(r) => r.fmt(f),
            ApplyError::Write(m) => write!(f, "write: {m}"),
        }
    }
}

impl ApplyError {
    /// `object=` and `key=` of a refusal, for its log line.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let ApplyError::Refused(r) = self else {
            return Vec::new();
        };
        let mut fields = Vec::new();
        if let Some(obj) = &r.object {
            fields.push(("object", obj.to_string()));
        }
        if let Some(key) = &r.refused.key {
            fields.push(("key", key.clone()));
        }
        fields
    }
}

/// Where snapshots go: the directory, or stdout for `-dry-run`.
enum Sink {
    Disk(Writer),
    DryRun(Option<Arc<Files>>),
}

impl Sink {
    fn open(cfg: &Config) -> Result<Sink, String> {
        if cfg.dry_run {
            return Ok(Sink::DryRun(None));
        }
        let mut w = Writer::new(&cfg.output_dir);
        w.set_fsync(cfg.fsync);
        w.lock().map_err(|e| format!("write: {e}"))?;
        let swept = w.sweep().map_err(|e| format!("write: {e}"))?;
        if !swept.is_empty() {
            log::info(
                "swept leftovers of an earlier run",
                &[
                    ("dir", &cfg.output_dir.display()),
                    ("removed", &swept.join(",")),
                ],
            );
        }
        Ok(Sink::Disk(w))
    }

    /// Merges, checks and writes; counts a failure by its kind.
    ///
    /// One object's files are written and kept by the writer as they are, shared with the
    /// state (never copied); several objects' are merged into a new set. The last snapshot
    /// is only lent for the check.
    fn apply(
        &mut self,
        cfg: &Config,
        all: &[(&ObjectRef, &Arc<Files>)],
    ) -> Result<Outcome, ApplyError> {
        let result = self.apply_uncounted(cfg, all);
        if let Err(e) = &result {
            METRICS.error(match e {
                ApplyError::Refused(_) => ErrorKind::Refused,
                ApplyError::Write(_) => ErrorKind::Write,
            });
        }
        result
    }

    fn apply_uncounted(
        &mut self,
        cfg: &Config,
        all: &[(&ObjectRef, &Arc<Files>)],
    ) -> Result<Outcome, ApplyError> {
        let write_error = |e: snapshot::Error| ApplyError::Write(e.to_string());
        let merged = merged(all).map_err(ApplyError::Refused)?;
        if !cfg.allow_empty_resources {
            match self {
                Sink::Disk(w) => {
                    if let Some(last) = w.current_files().map_err(write_error)? {
                        guard_empty_resources(&last, &merged).map_err(ApplyError::Refused)?;
                    }
                }
                Sink::DryRun(Some(last)) => {
                    guard_empty_resources(last, &merged).map_err(ApplyError::Refused)?
                }
                Sink::DryRun(None) => {}
            }
        }
        let names = all
            .iter()
            .map(|(o, _)| o.to_string())
            .collect::<Vec<_>>()
            .join(",");
        match self {
            Sink::DryRun(last) => {
                if last.as_deref() == Some(&*merged) {
                    return Ok(Outcome::Unchanged);
                }
                print_dry_run(&merged);
                *last = Some(merged);
                Ok(Outcome::Unchanged)
            }
            Sink::Disk(w) => {
                let _guard = write_lock().lock().unwrap_or_else(|p| p.into_inner());
                let outcome = w.write_shared(merged).map_err(write_error)?;
                match &outcome {
                    Outcome::Unchanged => METRICS.mark_snapshot_on_disk(),
                    Outcome::Written {
                        version,
                        added,
                        changed,
                        removed,
                        bytes,
                    } => {
                        METRICS.snapshot_written(*bytes);
                        log::info(
                            "snapshot written",
                            &[
                                ("dir", &w.dir().display()),
                                ("version", version),
                                ("added", &added.join(",")),
                                ("changed", &changed.join(",")),
                                ("removed", &removed.join(",")),
                                ("bytes", bytes),
                                ("from", &names),
                            ],
                        );
                    }
                }
                Ok(outcome)
            }
        }
    }
}

/// The snapshot to write: one object's files shared as they are (after the key checks of
/// [`merge`]), several objects' merged into a new set.
fn merged(all: &[(&ObjectRef, &Arc<Files>)]) -> Result<Arc<Files>, Refusal> {
    match all {
        [(obj, files)] => files
            .keys()
            .try_for_each(|key| check_key(obj, key))
            .map(|()| Arc::clone(files)),
        _ => {
            let lent: Vec<(&ObjectRef, &Files)> = all.iter().map(|(o, f)| (*o, &***f)).collect();
            merge(&lent).map(Arc::new)
        }
    }
}

/// Merges the objects' files into one set; a key in two objects is refused, naming both.
pub fn merge<O: Borrow<ObjectRef>, F: Borrow<Files>>(all: &[(O, F)]) -> Result<Files, Refusal> {
    let mut out = Files::new();
    let mut owner: BTreeMap<&str, &ObjectRef> = BTreeMap::new();
    for (obj, files) in all {
        let obj: &ObjectRef = obj.borrow();
        for (key, bytes) in files.borrow() {
            check_key(obj, key)?;
            if let Some(first) = owner.insert(key, obj) {
                let why = format!(
                    "key {key:?} is in both {first} and {obj}: update refused, keeping the last files"
                );
                return Err(Refusal::new(Some(obj), key, why));
            }
            out.insert(key.clone(), bytes.clone());
        }
    }
    Ok(out)
}

fn check_key(obj: &ObjectRef, key: &str) -> Result<(), Refusal> {
    snapshot::validate_key(key)
        .map_err(|e| Refusal::new(Some(obj), key, format!("{obj}: refused: {e}")))
}

/// Envoy treats an LDS or CDS file with no resources as "remove every listener / cluster".
/// A key that carried Listener or Cluster resources must not lose all of them.
pub fn guard_empty_resources(last: &Files, next: &Files) -> Result<(), Refusal> {
    for (key, old) in last {
        let Some(new) = next.get(key) else { continue };
        // Same bytes, same answer: only a changed file can lose its resources.
        if !snapshot::same_bytes(old, new)
            && xds::carries_listeners_or_clusters(old)
            && !xds::carries_listeners_or_clusters(new)
        {
            let why = format!(
                "key {key:?}: update refused: it carried Listener or Cluster resources and would carry none, which makes Envoy remove them all (use -allow-empty-resources to allow it); keeping the last files"
            );
            return Err(Refusal::new(None, key, why));
        }
    }
    Ok(())
}

fn print_dry_run(files: &Files) {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let _ = writeln!(out, "==> {name} ({} bytes) <==", bytes.len());
        out.extend_from_slice(bytes);
        if !bytes.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
}

/// A delay for the log in seconds with one decimal (`1.2s`), formatted with integers only,
/// which keeps the float formatter out of the static binary (about 14 KB).
fn tenths(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{}s", ms / 1000, ms % 1000 / 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::Kind;

    /// The /healthz bound for a mode's flags, parsed as the binary parses them.
    fn bound_for(flags: &[&str]) -> Duration {
        let mut args: Vec<std::ffi::OsString> = vec!["-configmap".into(), "ns/x".into()];
        args.extend(flags.iter().map(Into::into));
        let no_env = |_: &str| None;
        match crate::cli::parse(args, &no_env, std::path::Path::new("/nonexistent")) {
            Ok(crate::cli::Parsed::Run(cfg)) => stall_bound(&cfg),
            _ => panic!("flags {flags:?} parse"),
        }
    }

    #[test]
    fn healthz_bounds_follow_the_readme() {
        let s = Duration::from_secs;
        // Watch: progress at least every 2 × -watch-timeout plus the read margin (timeout
        // / 10 within [2 s, 30 s]) or every 90 s of silence, whichever is sooner, plus the
        // smaller of the timeout and a minute.
        assert_eq!(bound_for(&["-watch"]), s(90 + 60));
        assert_eq!(
            bound_for(&["-watch", "-watch-timeout", "10s"]),
            s(20 + 2 + 10)
        );
        assert_eq!(
            bound_for(&["-watch", "-watch-timeout", "30s"]),
            s(60 + 3 + 30)
        );
        assert_eq!(bound_for(&["-watch", "-watch-timeout", "1m"]), s(90 + 60));
        // Poll: 2 × -sync-interval + 60 s (README, Health and metrics).
        assert_eq!(bound_for(&[]), s(2 * 60 + 60));
        assert_eq!(
            bound_for(&["-sync-interval", "300ms"]),
            Duration::from_millis(60_600)
        );
        assert_eq!(bound_for(&["-sync-interval", "5m"]), s(600 + 60));
    }

    #[test]
    fn tenths_formats_log_delays() {
        for (ms, want) in [
            (0, "0.0s"),
            (99, "0.0s"),
            (1_250, "1.2s"),
            (61_990, "61.9s"),
        ] {
            assert_eq!(tenths(Duration::from_millis(ms)), want, "{ms} ms");
        }
    }

    fn obj(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::ConfigMap,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn one_object_is_shared_several_are_merged() {
        let (a, b) = (obj("a"), obj("b"));
        let fa = Arc::new(files(&[("lds.yaml", "1")]));
        let fb = Arc::new(files(&[("cds.yaml", "2")]));
        let one = merged(&[(&a, &fa)]).unwrap();
        assert!(Arc::ptr_eq(&one, &fa));
        let two = merged(&[(&a, &fa), (&b, &fb)]).unwrap();
        assert_eq!(*two, files(&[("lds.yaml", "1"), ("cds.yaml", "2")]));
        // The same checks either way.
        let bad = Arc::new(files(&[("../x", "1")]));
        for all in [vec![(&a, &bad)], vec![(&b, &fb), (&a, &bad)]] {
            let r = merged(&all).unwrap_err();
            assert_eq!(r.object.as_ref(), Some(&a));
            assert_eq!(r.refused.key.as_deref(), Some("../x"));
            let e = r.to_string();
            assert!(
                e.starts_with("configmap ns/a: refused: key \"../x\""),
                "{e}"
            );
        }
        let e = merged(&[(&a, &fa), (&b, &fa)]).unwrap_err().to_string();
        assert!(
            e.contains("is in both configmap ns/a and configmap ns/b"),
            "{e}"
        );
    }

    #[test]
    fn merge_refuses_collisions_and_bad_keys() {
        let a = (obj("a"), files(&[("lds.yaml", "1"), ("x", "2")]));
        let b = (obj("b"), files(&[("cds.yaml", "3")]));
        let m = merge(&[a.clone(), b]).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["cds.yaml", "lds.yaml", "x"]);
        let c = (obj("c"), files(&[("x", "4")]));
        let r = merge(&[a.clone(), c]).unwrap_err();
        assert_eq!(r.object, Some(obj("c")));
        assert_eq!(r.refused.key.as_deref(), Some("x"));
        let e = r.to_string();
        assert!(
            e.contains("\"x\" is in both configmap ns/a and configmap ns/c"),
            "{e}"
        );
        for bad in ["../x", "..data", "a/b", ".", ""] {
            let e = merge(&[(obj("h"), files(&[(bad, "x")]))])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("configmap ns/h: refused: "), "{bad}: {e}");
        }
    }

    #[test]
    fn empty_listener_or_cluster_files_are_refused() {
        let lds = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: l\n";
        let cds = "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n";
        let last = files(&[("lds.yaml", lds), ("cds.yaml", cds), ("other", "x")]);
        let table: &[(&[(&str, &str)], Option<&str>)] = &[
            (&[("lds.yaml", lds), ("cds.yaml", cds)], None),
            (
                &[
                    ("lds.yaml", "version_info: \"2\"\nresources: []\n"),
                    ("cds.yaml", cds),
                ],
                Some("lds.yaml"),
            ),
            (
                &[("lds.yaml", lds), ("cds.yaml", "resources:\n")],
                Some("cds.yaml"),
            ),
            (
                &[(
                    "lds.yaml",
                    "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\n",
                )],
                Some("lds.yaml"),
            ),
            (&[("cds.yaml", cds)], None), // a removed key is not an emptied one
            (&[("lds.yaml", lds), ("cds.yaml", cds), ("other", "")], None),
            // a commented-out resource is no resource
            (&[("lds.yaml", "resources: []\n# - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n"), ("cds.yaml", cds)], Some("lds.yaml")),
            (&[("lds.yaml", "resources: [] # \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n"), ("cds.yaml", cds)], Some("lds.yaml")),
            // JSON is fine too
            (&[("lds.yaml", "{\"resources\":[{\"@type\":\"type.googleapis.com/envoy.config.listener.v3.Listener\",\"name\":\"l#1\"}]}"), ("cds.yaml", cds)], None),
        ];
        for (next, want) in table {
            let r = guard_empty_resources(&last, &files(next));
            match want {
                None => assert!(r.is_ok(), "{next:?}: {r:?}"),
                Some(key) => {
                    let r = r.unwrap_err();
                    assert_eq!(r.refused.key.as_deref(), Some(*key));
                    let e = r.to_string();
                    assert!(
                        e.contains(&format!("key \"{key}\""))
                            && e.contains("-allow-empty-resources"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn state_waits_for_every_object_and_keeps_deleted_ones() {
        let objs = [obj("a"), obj("b")];
        let mut s = State::new(2);
        let o = |rv: &str, f: Result<Files, Refused>| kube::Object {
            resource_version: rv.into(),
            files: f,
        };
        s.listed(&objs[0], 0, Some(o("1", Ok(files(&[("k", "v")])))));
        assert!(s.complete(&objs).is_none());
        s.listed(&objs[1], 1, None);
        assert!(s.complete(&objs).is_none());
        s.upsert(&objs[1], 1, o("2", Ok(files(&[("j", "w")]))));
        assert_eq!(s.complete(&objs).unwrap().len(), 2);
        // refused content keeps the last good files
        s.upsert(&objs[1], 1, o("3", Err(Refused::new(None, "bad".into()))));
        assert_eq!(**s.complete(&objs).unwrap()[1].1, files(&[("j", "w")]));
        // not found after being seen: kept
        s.listed(&objs[0], 0, None);
        assert_eq!(**s.complete(&objs).unwrap()[0].1, files(&[("k", "v")]));
    }
}
