//! Keeping the output directory in step with the API server.
//!
//! - `-onetime`: list every object and selection once, write one snapshot, exit 0; a failed
//!   list or a refused named object exits 1 (a refused selection member is left out).
//! - poll (neither flag): list every object each `-sync-interval`, write when different.
//! - `-watch`: one reflector thread per object (its rules in [`reflector`]: list, then
//!   watch from the last version seen, re-watch on a normal end or after 90 s of silence,
//!   relist on "too old", back off on errors) hands what it learns to the [`Engine`], which
//!   merges every object's last good files and writes a snapshot on the reflector's own
//!   thread: no hand-off to another thread to wake. Bursts are coalesced: a delivery that
//!   finds another one waiting leaves the write to it. The thread that started the watch
//!   retries failed writes on their backoff. Each label selection has a reflector thread
//!   of its own ([`selection`]): its complete lists and its watch events go to the same
//!   engine, as members that come and go.
//!
//! Invariants: only the engine touches the disk, one write at a time under its lock, and
//! holds [`write_lock`] while it does; content that is refused (bad key, collision, an
//! emptied Listener/Cluster file) never replaces the last good files; a deleted named
//! object keeps its last files, a member that leaves its selection takes its keys along.

use crate::backoff::{Backoff, Rng};
use crate::config::{Config, Mode};
use crate::health::{ErrorKind, METRICS};
use crate::kube::{self, Client, Event, Member, ObjectRef, Selection};
use crate::log;
use crate::snapshot::{Files, Outcome, Writer};
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod reflector;
use reflector::{Heard, Reflector, Step, SILENCE};

mod selection;
use selection::{list_all, log_listed};

mod phased;
use phased::Acks;

mod state;
use state::{Judged, Refusal, State};

static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Held while a snapshot is written; `main` takes it before exiting on a signal so that a
/// write in progress always finishes.
pub fn write_lock() -> &'static Mutex<()> {
    &WRITE_LOCK
}

/// Runs the configured mode; returns the process exit code (only `-onetime` returns).
pub fn run(cfg: &Config) -> i32 {
    let client = Client::new(cfg.apiserver.clone(), cfg.token_file.clone(), &cfg.trust)
        .on_answer(|code| METRICS.request(code));
    let client = Arc::new(client);
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
    let mut state = sink.restore(cfg);
    for (idx, obj) in cfg.objects.iter().enumerate() {
        match list_until(obj, deadline, &mut backoff, || client.list(obj, false)) {
            Ok(kube::Listed {
                object: Some(o), ..
            }) => {
                if let Judged::Refused(r) = state.judge(idx, &o.resource_version, o.files) {
                    log_refusal(&r, Some(&o.resource_version));
                    return 1;
                }
            }
            Ok(kube::Listed { object: None, .. }) => {
                let fields = subject(obj, "list", None, None);
                log::error("not found", &log::owned(&fields));
                return 1;
            }
            Err((e, gave_up)) => return list_failed(obj, &e, gave_up),
        }
    }
    // A selection may select nothing, and a member that is refused is left out: the others
    // are written (the named objects are the ones the run cannot do without).
    for (source, sel) in cfg.selections.iter().enumerate() {
        match list_until(sel, deadline, &mut backoff, || list_all(client, sel)) {
            Ok(listing) => {
                log_listed(sel, &listing);
                take_listing(&mut state, source, listing.members)
            }
            Err((e, gave_up)) => return list_failed(sel, &e, gave_up),
        }
    }
    match sink.apply(&state, Instant::now()) {
        Ok(_) => 0,
        Err(e) => {
            log::error(&e, &[]);
            1
        }
    }
}

/// `-onetime`'s failed list, in one line; exit code 1.
fn list_failed(who: &dyn Subject, e: &kube::Error, gave_up: Option<Duration>) -> i32 {
    let mut fields = subject(who, "list", Some(e), None);
    let msg = match gave_up {
        Some(after) => {
            fields.push(("retried_for", tenths(after)));
            "list failed; still failing at -onetime-timeout"
        }
        None => "list failed",
    };
    log::error(msg, &log::owned(&with_err(fields, Some(e))));
    1
}

/// `-onetime`'s list: transient failures (refused, reset, timeouts, 429, 5xx) are retried
/// on the backoff (or Retry-After) until `deadline`, and a first 401 once at once (the token
/// file is read again for it); anything else fails at once. The error comes with how long
/// it was retried when time ran out.
fn list_until<T>(
    obj: &dyn Subject,
    deadline: Instant,
    backoff: &mut Backoff,
    mut list: impl FnMut() -> Result<T, kube::Error>,
) -> Result<T, (kube::Error, Option<Duration>)> {
    let started = Instant::now();
    let mut unauthorized = 0;
    loop {
        let e = match list() {
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
        log::warn(
            "list failed; retrying",
            &log::owned(&with_err(fields, Some(&e))),
        );
        std::thread::sleep(delay);
    }
}

fn poll(cfg: &Config, client: &Client, sink: &mut Sink) -> i32 {
    let mut state = sink.restore(cfg);
    let mut rng = Rng::from_entropy();
    loop {
        for (idx, obj) in cfg.objects.iter().enumerate() {
            match client.list(obj, false) {
                Ok(l) => {
                    METRICS.progress(idx);
                    take(&mut state, idx, l.object)
                }
                Err(e) => list_warning(obj, &e),
            }
        }
        for (source, sel) in cfg.selections.iter().enumerate() {
            match list_all(client, sel) {
                Ok(listing) => {
                    METRICS.progress(cfg.objects.len() + source);
                    take_listing(&mut state, source, listing.members);
                }
                Err(e) => list_warning(sel, &e),
            }
        }
        if let Err(e) = sink.apply(&state, Instant::now()) {
            log::error(&e, &[]);
        }
        std::thread::sleep(rng.scale(cfg.sync_interval, 0.95, 1.05));
    }
}

fn list_warning(who: &dyn Subject, e: &kube::Error) {
    let fields = with_err(subject(who, "list", Some(e), None), Some(e));
    log::warn("list failed", &log::owned(&fields));
}

/// A selection's complete list (source `source`): every member judged, and those it no
/// longer holds let go; the refusals logged.
fn take_listing(state: &mut State, source: usize, members: Vec<Member>) {
    for r in state.judge_page(source, members) {
        log_refusal(&r, None);
    }
    for r in state.listed(source) {
        log_refusal(&r, None);
    }
    METRICS.selected(source, state.selected_by(source));
}

/// A list answer for object `idx`: its version judged, or a warning when it is missing.
fn take(state: &mut State, idx: usize, object: Option<kube::Object>) {
    let Some(o) = object else {
        let obj = state.object(idx);
        let what = if state.has_files(idx) {
            "not found; keeping its last files"
        } else {
            "not found; waiting for it"
        };
        let fields = subject(obj, "list", None, None);
        log::warn(what, &log::owned(&fields));
        return;
    };
    if let Judged::Refused(r) = state.judge(idx, &o.resource_version, o.files) {
        log_refusal(&r, Some(&o.resource_version));
    }
}

/// One line for a refused version, counted as a refused snapshot (and as a collision when
/// another object holds the key: both objects and the key are named).
fn log_refusal(r: &Refusal, resource_version: Option<&str>) {
    METRICS.error(ErrorKind::Refused);
    let mut fields = subject(&r.object, "judge", None, r.refused.key.as_deref());
    if let Some(rv) = resource_version {
        fields.push(("resource_version", rv.to_string()));
    }
    if let Some(holder) = &r.held_by {
        METRICS.collision();
        fields.push(("held_by", holder.to_string()));
    }
    fields.push(("err", r.refused.why.clone()));
    log::error("refused; keeping the last files", &log::owned(&fields));
}

/// What the reflectors tell the engine.
enum Msg {
    /// A list answer: the object, or None when it does not exist.
    Listed(usize, Option<kube::Object>),
    /// ADDED or MODIFIED.
    Upsert(usize, kube::Object),
    Deleted(usize),
    /// A selection's complete list (every page): every member.
    SourceListed(usize, Vec<Member>),
    /// ADDED or MODIFIED in a selection's watch.
    Selected(usize, Member),
    /// DELETED in a selection's watch: deleted, or no longer matching.
    Unselected(usize, ObjectRef),
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
    for (source, sel) in cfg.selections.iter().enumerate() {
        let (engine, client, sel) = (engine.clone(), client.clone(), sel.clone());
        let (watch_timeout, progress) = (cfg.watch_timeout, cfg.objects.len() + source);
        let spawned = std::thread::Builder::new()
            .name(format!("select-{source}"))
            .spawn(move || {
                let at = selection::At { source, progress };
                selection::reflect(at, &sel, &client, watch_timeout, &engine)
            });
        if let Err(e) = spawned {
            log::error("cannot start a watch thread", &[("err", &e)]);
            return 1;
        }
    }
    engine.tend()
}

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
}

impl Engine {
    fn new(cfg: Config, sink: Sink) -> Engine {
        Engine {
            writing: Mutex::new(Writing {
                state: sink.restore(&cfg),
                sink,
                retry: Backoff::new(Rng::from_entropy()),
                retry_at: None,
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
        let since = Instant::now();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut w = self.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let objects = &self.cfg.objects;
        match msg {
            Msg::Listed(idx, object) => take(&mut w.state, idx, object),
            Msg::Upsert(idx, o) => take(&mut w.state, idx, Some(o)),
            Msg::Deleted(idx) => log::warn(
                "deleted; keeping its last files",
                &log::owned(&subject(&objects[idx], "watch", None, None)),
            ),
            Msg::SourceListed(source, members) => take_listing(&mut w.state, source, members),
            Msg::Selected(source, member) => {
                let rv = member.content.resource_version.clone();
                if let Judged::Refused(r) = w.state.judge_member(source, member) {
                    log_refusal(&r, Some(&rv));
                }
                METRICS.selected(source, w.state.selected_by(source));
            }
            Msg::Unselected(source, object) => {
                let mut fields = subject(&object, "watch", None, None);
                fields.push(("source", self.cfg.selections[source].to_string()));
                log::info("no longer selected", &log::owned(&fields));
                if let Some(r) = w.state.leave(source, &object) {
                    log_refusal(&r, None);
                }
                METRICS.selected(source, w.state.selected_by(source));
            }
        }
        if self.waiting.load(Ordering::SeqCst) == 0 {
            self.write(&mut w, since);
        }
        drop(w);
        self.news.notify_one();
    }

    /// Writes the accepted files once every object has some (`since`: when the event that
    /// caused it arrived); a failed write is retried on a backoff by [`tend`](Engine::tend).
    fn write(&self, w: &mut Writing, since: Instant) {
        let Writing {
            state,
            sink,
            retry,
            retry_at,
            ..
        } = w;
        match sink.apply(state, since) {
            Ok(_) => {
                retry.reset();
                *retry_at = None;
            }
            Err(e) => {
                let delay = retry.next_delay();
                log::error(&e, &[("retry_in", &tenths(delay))]);
                *retry_at = Some(Instant::now() + delay);
            }
        }
    }

    /// Retries failed writes when their backoff is due. Never returns.
    fn tend(&self) -> ! {
        let mut w = self.lock();
        loop {
            let now = Instant::now();
            w = match w.retry_at {
                Some(t) if now >= t => {
                    self.write(&mut w, now);
                    continue;
                }
                Some(t) => self.wait(w, Some(t - now)),
                None => self.wait(w, None),
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
    let mut starts = Starts::default();
    let mut step = r.start();
    loop {
        step = match step {
            Step::List => {
                starts.list();
                match client.list(&obj, false) {
                    Ok(listed) => {
                        METRICS.progress(idx);
                        object_version = listed.object.as_ref().map(|o| o.resource_version.clone());
                        check_at = next_check(&mut rng);
                        starts.listed();
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
                let timing = watch_timing(&mut rng, watch_timeout, check_at);
                starts.watch();
                let opened = client.watch(&obj, &from, timing.secs, timing.read_timeout);
                match opened {
                    Err(e) if e.is_gone() => gone(&obj, &mut r, Some(&e), None),
                    Err(e) => failed(&obj, "watch", &e, &mut r),
                    Ok(mut w) => {
                        let mut seen = Seen {
                            idx,
                            obj: &obj,
                            engine,
                            object_version: &mut object_version,
                        };
                        follow(&mut w, &mut seen, &mut r, timing)
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

/// One reflector's lists and watches, counted into the metrics: every list after the first
/// is a relist, every watch after the first of its list a restart.
#[derive(Default)]
struct Starts {
    lists: u64,
    watches: u64,
}

impl Starts {
    fn list(&mut self) {
        self.lists += 1;
        if self.lists > 1 {
            METRICS.relist();
        }
    }

    /// A list succeeded: the next watch is its first.
    fn listed(&mut self) {
        self.watches = 0;
    }

    fn watch(&mut self) {
        self.watches += 1;
        if self.watches > 1 {
            METRICS.watch_restart();
        }
    }
}

/// What a watch stream tells: whose it is, where it goes, and the object's own version.
struct Seen<'a> {
    idx: usize,
    obj: &'a ObjectRef,
    engine: &'a Engine,
    object_version: &'a mut Option<String>,
}

/// Reads one watch stream to its end: delivers upserts and deletions, moves the version on
/// every event, and returns the reflector's next step; `timing` is the watch's own.
fn follow(
    w: &mut kube::Watch,
    seen: &mut Seen<'_>,
    r: &mut Reflector,
    timing: WatchTiming,
) -> Step {
    let (idx, obj) = (seen.idx, seen.obj);
    let started = Instant::now();
    let mut events = 0u64;
    loop {
        let rv = match w.next() {
            Ok(Some(Event::Upsert(o))) => {
                let rv = o.resource_version.clone();
                *seen.object_version = Some(rv.clone());
                seen.engine.deliver(Msg::Upsert(idx, o));
                rv
            }
            Ok(Some(Event::Deleted { resource_version })) => {
                *seen.object_version = None;
                seen.engine.deliver(Msg::Deleted(idx));
                resource_version
            }
            Ok(Some(
                Event::Bookmark { resource_version } | Event::Ignored { resource_version },
            )) => resource_version,
            Ok(Some(Event::Expired(status))) => return gone(obj, r, None, Some(&status)),
            Ok(Some(Event::Error(status))) => {
                return failed(obj, "watch", &kube::Error::Event(status), r);
            }
            Ok(None) => return ended(obj, idx, r, events, started.elapsed(), timing),
            Err(e) => return broken(obj, idx, e, r, timing.silence_first),
        };
        METRICS.progress(idx);
        events += 1;
        match r.on(Heard::Event(&rv)) {
            Step::Read => {}
            other => return other,
        }
    }
}

/// A watch stream that failed: after [`SILENCE`] with nothing heard (`silence_first`: the
/// read timeout is shorter than the watch's own end), replaced at once; otherwise a failure.
fn broken(
    obj: &dyn Subject,
    progress: usize,
    e: kube::Error,
    r: &mut Reflector,
    silence_first: bool,
) -> Step {
    match e {
        kube::Error::Timeout if silence_first => {
            METRICS.progress(progress);
            let mut fields = subject(obj, "watch", None, None);
            fields.push(("silent_for", format!("{}s", SILENCE.as_secs())));
            log::info("nothing heard; replacing the watch", &log::owned(&fields));
            r.on(Heard::Silent)
        }
        e => failed(obj, "watch", &e, r),
    }
}

/// The timing of one watch, chosen before it is opened.
#[derive(Debug, Clone, Copy)]
struct WatchTiming {
    /// The server-side timeout asked for (`timeoutSeconds`): jittered, cut at the next
    /// safety-net check, whole seconds, at least 1.
    secs: u64,
    /// How long the client waits for a byte.
    read_timeout: Duration,
    /// The read timeout is [`SILENCE`], shorter than the watch's own end: a timeout then
    /// replaces the watch; otherwise it is a failure.
    silence_first: bool,
}

impl WatchTiming {
    fn asked(&self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

fn watch_timing(rng: &mut Rng, watch_timeout: Duration, check_at: Option<Instant>) -> WatchTiming {
    let mut timeout = rng.scale(watch_timeout, 1.0, 2.0);
    if let Some(t) = check_at {
        timeout = timeout.min(t.saturating_duration_since(Instant::now()));
    }
    let secs = timeout.as_secs().max(1);
    // A byte is due at least every SILENCE (bookmarks), and the end at the server's own
    // timeout plus a margin, whichever comes first.
    let due = Duration::from_secs(secs) + read_margin(watch_timeout);
    let read_timeout = due.min(SILENCE);
    WatchTiming {
        secs,
        read_timeout,
        silence_first: read_timeout < due,
    }
}

/// Safety net: a cheap read from the watch cache; a difference means something was
/// missed, and a consistent relist settles it.
fn safety_net_differs(obj: &ObjectRef, client: &Client, delivered: Option<&str>) -> bool {
    match client.list(obj, true) {
        Ok(l) if l.object.as_ref().map(|o| o.resource_version.as_str()) != delivered => {
            log::warn(
                "safety-net check found a difference; relisting",
                &log::owned(&subject(obj, "check", None, None)),
            );
            true
        }
        Ok(_) => false,
        Err(e) => {
            log::warn(
                "safety-net check failed",
                &log::owned(&with_err(subject(obj, "check", Some(&e), None), Some(&e))),
            );
            false
        }
    }
}

/// A failed list or watch: the reflector's wait, logged in one line.
fn failed(obj: &dyn Subject, op: &str, e: &kube::Error, r: &mut Reflector) -> Step {
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
    let fields = with_err(fields, Some(e));
    log::warn(&format!("{op} failed{hint}"), &log::owned(&fields));
    step
}

/// "Too old", as an HTTP 410 (`e`) or an ERROR event (`status`): relist, at once or after
/// the wait of a repeated 410.
fn gone(
    obj: &dyn Subject,
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
    let fields = with_err(fields, e);
    log::info("too old resource version; relisting", &log::owned(&fields));
    step
}

/// The server ended the watch: a watch that ran its course is progress even on a quiet
/// cluster; one that merely started (perhaps on a dead connection) is a failure.
fn ended(
    obj: &dyn Subject,
    idx: usize,
    r: &mut Reflector,
    events: u64,
    lasted: Duration,
    timing: WatchTiming,
) -> Step {
    let step = r.on(Heard::Ended {
        events,
        lasted,
        asked: timing.asked(),
    });
    match &step {
        Step::Wait(d) => log::warn(
            "watch ended at once with no event",
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

/// What a line of the log is about: a named object (`object=`) or a selection (`source=`).
trait Subject: std::fmt::Display {
    fn field(&self) -> &'static str;
}

impl Subject for ObjectRef {
    fn field(&self) -> &'static str {
        "object"
    }
}

impl Subject for Selection {
    fn field(&self) -> &'static str {
        "source"
    }
}

/// The fields that name what a log line is about: `object=…` (or `source=…`) `op=…`, the
/// API server's `code=` when it answered, and the `key=` to blame. The error goes last
/// ([`with_err`]).
fn subject(
    obj: &dyn Subject,
    op: &str,
    e: Option<&kube::Error>,
    key: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut fields = vec![(obj.field(), obj.to_string()), ("op", op.to_string())];
    if let Some(code) = e.and_then(kube::Error::code) {
        fields.push(("code", code.to_string()));
    }
    if let Some(key) = key {
        fields.push(("key", key.to_string()));
    }
    fields
}

/// `fields` with the error appended as `err=`, the last field of a line (it is the longest).
fn with_err(
    mut fields: Vec<(&'static str, String)>,
    e: Option<&kube::Error>,
) -> Vec<(&'static str, String)> {
    if let Some(e) = e {
        fields.push(("err", e.to_string()));
    }
    fields
}

/// Where snapshots go: the directory, or stdout for `-dry-run`.
enum Sink {
    /// The writer, and the acknowledged apply with `-envoy-admin` (not with `-onetime`).
    Disk(Writer, Option<Acks>),
    DryRun(Option<Arc<Files>>),
}

impl Sink {
    fn open(cfg: &Config) -> Result<Sink, String> {
        if cfg.dry_run {
            return Ok(Sink::DryRun(None));
        }
        let mut w = Writer::new(&cfg.output_dir);
        w.set_fsync(cfg.fsync);
        w.set_file_mode(cfg.file_mode);
        w.set_ready_next(cfg.mode != Mode::OneTime);
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
        let acks = match cfg.mode {
            Mode::OneTime => None,
            _ => cfg.envoy.clone().map(Acks::new),
        };
        Ok(Sink::Disk(w, acks))
    }

    /// The state to start from: on disk, the current snapshot and its record (then, when
    /// every object followed is on record, the loader is ready at once, before any list).
    fn restore(&self, cfg: &Config) -> State {
        let mut state = State::new(
            cfg.objects.clone(),
            cfg.selections.len(),
            cfg.allow_empty_resources,
        );
        if let Sink::Disk(w, _) = self {
            if let (Ok(Some(files)), Ok(Some(record))) = (w.current(), w.current_record()) {
                if state.restore(files, &record) {
                    METRICS.mark_snapshot_on_disk();
                    log::info(
                        "ready: every object's files are on disk",
                        &[("dir", &w.dir().display())],
                    );
                }
            }
        }
        state
    }

    /// Writes the snapshot of the accepted files, once every object has some (`since`: when
    /// the event that caused it arrived; in phases with `-envoy-admin`); a failure (the
    /// disk) is counted and returned as one line.
    fn apply(&mut self, state: &State, since: Instant) -> Result<Outcome, String> {
        let Some((merged, record)) = state.snapshot() else {
            return Ok(Outcome::Unchanged);
        };
        match self {
            Sink::DryRun(last) => {
                if last.as_deref() != Some(&*merged) {
                    print_dry_run(&merged, state);
                    *last = Some(merged);
                }
                Ok(Outcome::Unchanged)
            }
            Sink::Disk(w, None) => write_logged(w, merged, &record, state, None),
            Sink::Disk(w, Some(acks)) => {
                let mut write = |w: &mut Writer, files, rec: &[u8], phase| {
                    write_logged(w, files, rec, state, phase)
                };
                acks.apply(w, merged, record, since, &mut write)
            }
        }
    }
}

/// One write under [`write_lock`], counted and logged (`phase`: `Some((i, n))` for phase
/// `i` of `n` of an acknowledged apply).
fn write_logged(
    w: &mut Writer,
    files: Arc<Files>,
    record: &[u8],
    state: &State,
    phase: Option<(usize, usize)>,
) -> Result<Outcome, String> {
    let _guard = write_lock().lock().unwrap_or_else(|p| p.into_inner());
    let outcome = w.write_recorded(files, record).map_err(|e| {
        METRICS.error(ErrorKind::Write);
        format!("write: {e}")
    })?;
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
            let dir = w.dir().display();
            let (added, changed, removed) = (added.join(","), changed.join(","), removed.join(","));
            let (from, of) = (state.names(), phase.map(|(i, n)| format!("{i}/{n}")));
            let mut fields: Vec<(&str, &dyn std::fmt::Display)> = vec![
                ("dir", &dir),
                ("version", version),
                ("added", &added),
                ("changed", &changed),
                ("removed", &removed),
                ("bytes", bytes),
                ("from", &from),
            ];
            if let Some(of) = &of {
                fields.push(("phase", of));
            }
            log::info("snapshot written", &fields);
        }
    }
    Ok(outcome)
}

/// Every file, each with its size and the object it comes from:
/// `==> lds.yaml (13 bytes, configmap ns/a) <==`.
fn print_dry_run(files: &Files, state: &State) {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let from = state
            .owner(name)
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = writeln!(out, "==> {name} ({} bytes, {from}) <==", bytes.len());
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
}
