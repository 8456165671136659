//! Watch streams: 200 with chunked JSON lines, replay from a version or synthetic ADDED from
//! the current state, live changes, bookmarks, the server timeout, ERROR 410 when the version
//! is too old or the watch is expired, and the event faults and chunk layouts tests ask for.
//!
//! A watch never holds the state lock while writing; changes reach it through its own queue,
//! so compaction and history limits never cut an open watch short (as in the real watch
//! cache, where only a watcher too slow to drain its queue is closed).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::api::{self, Ctx, Filter};
use super::http;
use super::objects::{js, ApiError};
use super::{text, Chunking, Conn, Event, Fault, Obj, Shared, WatchQueue};

/// How often a quiet watch checks whether its client left.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long coalescing waits for more events to join the first.
const COALESCE_WAIT: Duration = Duration::from_millis(20);
/// How long before a watch's timeout a v1.20 kube-apiserver starts sending bookmarks.
const BOOKMARK_BEFORE_DEADLINE: Duration = Duration::from_secs(2);
/// Server-chosen watch timeouts lie in [30 min, 60 min) (the API server's
/// `--min-request-timeout` 1800 s times 1 + rand).
const MIN_REQUEST_TIMEOUT_SECS: u64 = 1800;

/// The line of one event, built in one pass: with a large object on every update, this
/// is the server's own share of a benchmark's propagation time.
pub(crate) fn event_line(typ: &str, object: &str) -> Vec<u8> {
    let head = format!("{{\"type\":\"{typ}\",\"object\":");
    let mut line = Vec::with_capacity(head.len() + object.len() + 2);
    line.extend_from_slice(head.as_bytes());
    text::flatten_into(object, &mut line);
    line.extend_from_slice(b"}\n");
    line
}

fn bookmark_line(kind_name: &str, rv: u64) -> Vec<u8> {
    format!(
        "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{kind_name}\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":{},\"creationTimestamp\":null}}}}}}\n",
        js(&rv.to_string())
    )
    .into_bytes()
}

fn error_line(asked: u64, oldest: u64) -> Vec<u8> {
    event_line("ERROR", &ApiError::expired(asked, oldest).status_json())
}

/// What a watch with `filter` sees of `ev`: selector transitions turn MODIFIED into ADDED
/// or DELETED, as the watch cache does. Measured against v1.20.2 (a watch with
/// `labelSelector=app=x`, the object's label changed to `app=y`): the DELETED event carries
/// the object as it was BEFORE the change (still `app=x`, the old data) with the change's
/// new resourceVersion, not the object as it is now; changing the label back gives ADDED
/// with the new object; deleting a matching object gives DELETED with its last state and
/// the deletion's version.
fn project(filter: &Filter, ev: &Event) -> Option<(&'static str, Arc<Obj>)> {
    let now = filter.matches(&ev.obj);
    match ev.typ {
        "MODIFIED" => {
            let before = ev.prev.as_ref().filter(|p| filter.matches(p));
            match (before, now) {
                (Some(_), true) => Some(("MODIFIED", ev.obj.clone())),
                (None, true) => Some(("ADDED", ev.obj.clone())),
                (Some(p), false) => Some(("DELETED", at_version(p, ev.obj.rv))),
                (None, false) => None,
            }
        }
        typ => now.then(|| (typ, ev.obj.clone())),
    }
}

/// `o` as it was, stamped with resourceVersion `rv` (as the cache's `UpdateObject` does).
fn at_version(o: &Obj, rv: u64) -> Arc<Obj> {
    let text = text::rewrite_metadata(&o.text, &o.ns, &o.name, rv)
        .map(Arc::from)
        .unwrap_or_else(|| o.text.clone());
    Arc::new(Obj {
        kind: o.kind,
        ns: o.ns.clone(),
        name: o.name.clone(),
        rv,
        uid: o.uid.clone(),
        created: o.created.clone(),
        text,
        labels: o.labels.clone(),
        content: o.content.clone(),
    })
}

/// Where to split `data` into chunks: 1, 2, 3, 5, 8, … bytes (at most 4096), plus a cut
/// inside the first multi-byte character, and the final newline alone.
pub(crate) fn split_pieces(data: &[u8]) -> Vec<&[u8]> {
    let body_len = match data.split_last() {
        Some((b'\n', rest)) if !rest.is_empty() => rest.len(),
        _ => data.len(),
    };
    let mut cuts = vec![0usize];
    let (mut a, mut b) = (1usize, 2usize);
    let mut at = 0;
    while at < body_len {
        at = (at + a).min(body_len);
        cuts.push(at);
        let next = (a + b).min(4096);
        a = b.min(4096);
        b = next;
    }
    if let Some(lead) = data.iter().take(body_len).position(|&c| c >= 0xC0) {
        cuts.push(lead + 1);
    }
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .filter_map(|w| match w {
            [start, end] => data.get(*start..*end),
            _ => None,
        })
        .collect()
}

enum Stop {
    /// The client left or the stream was cut: end without a final chunk.
    Abrupt,
}

/// Writes `lines` as chunks laid out by `chunking`, applying a one-shot event fault to the
/// first line.
fn write_lines(
    conn: &mut Conn,
    raw: &TcpStream,
    chunking: Chunking,
    mut lines: Vec<Vec<u8>>,
    fault: Option<Fault>,
) -> Result<(), Stop> {
    let io = |r: std::io::Result<()>| r.map_err(|_| Stop::Abrupt);
    match (fault, lines.first_mut()) {
        (Some(Fault::TruncateNextEvent), Some(first)) => {
            let half = first.get(..first.len() / 2).unwrap_or_default();
            let mut out = format!("{:x}\r\n", first.len()).into_bytes();
            out.extend_from_slice(half);
            let _ = conn.write_all(&out);
            let _ = conn.flush();
            let _ = raw.shutdown(Shutdown::Both);
            return Err(Stop::Abrupt);
        }
        (Some(Fault::GarbageNextEvent), Some(first)) => {
            *first = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n".to_vec();
        }
        // {"type":"X","padding":"…","object":…}\n: 13 bytes plus the padding.
        (Some(Fault::HugeNextEvent(n)), Some(first)) if n >= first.len() + 13 => {
            let pad = n - first.len() - 13;
            if let Some(pos) = first.windows(10).position(|w| w == b",\"object\":") {
                let mut ins = b",\"padding\":\"".to_vec();
                ins.resize(ins.len() + pad, b'x');
                ins.push(b'"');
                first.splice(pos..pos, ins);
            }
        }
        _ => {}
    }
    match chunking {
        Chunking::OnePerEvent => {
            for l in &lines {
                io(conn.write_all(&http::chunk(l)))?;
                io(conn.flush())?;
            }
        }
        Chunking::Split => {
            for l in &lines {
                for p in split_pieces(l) {
                    io(conn.write_all(&http::chunk(p)))?;
                    io(conn.flush())?;
                }
            }
        }
        Chunking::Coalesce => {
            io(conn.write_all(&http::chunk(&lines.concat())))?;
            io(conn.flush())?;
        }
        Chunking::Mixed => {
            let all = lines.concat();
            for p in split_pieces(&all) {
                io(conn.write_all(&http::chunk(p)))?;
                io(conn.flush())?;
            }
        }
    }
    Ok(())
}

fn end_clean(conn: &mut Conn) {
    let _ = conn.write_all(http::LAST_CHUNK);
    let _ = conn.flush();
    conn.close_clean();
}

/// True when the client closed its side (or the socket failed). Never waits: a read
/// timeout, however short, lasts at least a kernel tick (up to 10 ms), and an event that
/// arrives meanwhile would wait for it.
fn client_gone(raw: &TcpStream) -> bool {
    let mut buf = [0u8; 2048];
    let mut r = raw;
    if raw.set_nonblocking(true).is_err() {
        return true;
    }
    let read = r.read(&mut buf);
    if raw.set_nonblocking(false).is_err() {
        return true;
    }
    match read {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
        ),
    }
}

/// Takes a pending one-shot event fault.
fn take_event_fault(sh: &Shared) -> Option<Fault> {
    let mut st = sh.lock();
    match st.fault {
        Some(Fault::TruncateNextEvent | Fault::GarbageNextEvent | Fault::HugeNextEvent(_)) => {
            st.fault.take()
        }
        _ => None,
    }
}

/// Unregisters the watch when it ends, however it ends.
struct Registration<'a> {
    sh: &'a Shared,
    wid: u64,
    conn_id: u64,
    counted: bool,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut st = self.sh.lock();
        st.watchers.remove(&self.wid);
        if self.counted {
            st.open_watches = st.open_watches.saturating_sub(1);
        }
        drop(st);
        self.sh.mark_watch(self.conn_id, false);
    }
}

/// Serves a watch request on `conn` until it ends.
pub(crate) fn serve(ctx: &mut Ctx, conn: &mut Conn, raw: &TcpStream, conn_id: u64, filter: Filter) {
    let sh = ctx.sh;
    if let Err(e) = api::check_list_options(ctx, true) {
        return api::send_error(ctx, conn, &e);
    }
    let rv = match api::parse_rv(ctx) {
        Ok(rv) => rv,
        Err(e) => return api::send_error(ctx, conn, &e),
    };
    let allow_bookmarks = ctx
        .param("allowWatchBookmarks")
        .and_then(http::parse_bool)
        .unwrap_or(false);
    let timeout_secs = match ctx.param("timeoutSeconds") {
        None | Some("") => 0,
        Some(t) => match t.parse::<i64>() {
            Ok(n) => n.max(0) as u64,
            Err(_) => {
                let e = ApiError::bad_request(format!("invalid timeoutSeconds: {t:?}"));
                return api::send_error(ctx, conn, &e);
            }
        },
    };

    // Register under the lock, so no change falls between the replay and the queue.
    let mut st = sh.lock();
    st.next_id += 1;
    let wid = st.next_id;
    let timeout = if timeout_secs > 0 {
        Duration::from_secs(timeout_secs)
    } else {
        Duration::from_secs(MIN_REQUEST_TIMEOUT_SECS + st.rng.next() % MIN_REQUEST_TIMEOUT_SECS)
    };
    let silent = st.silent;
    let mut pending: Vec<(&'static str, Arc<Obj>)> = Vec::new();
    let mut too_old = None;
    let floor = match rv {
        _ if silent => 0,
        n if st.expire_every_watch => {
            too_old = Some((n.unwrap_or(0), st.rv));
            0
        }
        None | Some(0) => {
            pending = st
                .objects
                .values()
                .filter(|o| filter.matches(o))
                .map(|o| ("ADDED", o.clone()))
                .collect();
            st.rv
        }
        Some(n) if n < st.compacted => {
            too_old = Some((n, st.compacted));
            n
        }
        Some(n) => {
            pending = st
                .history
                .iter()
                .filter(|e| e.obj.rv > n)
                .filter_map(|e| project(&filter, e))
                .collect();
            n
        }
    };
    if too_old.is_none() {
        st.watchers.insert(
            wid,
            WatchQueue {
                silent,
                ..WatchQueue::default()
            },
        );
    }
    st.open_watches += 1;
    // Recorded under the same lock: a watch counted open is one in `requests()` too, so a
    // test that waits for an open watch and then counts watch requests counts this one.
    ctx.rec.status = 200;
    st.record(ctx.rec.clone(), sh.opts.log_requests);
    drop(st);
    let _reg = Registration {
        sh,
        wid,
        conn_id,
        counted: true,
    };
    sh.mark_watch(conn_id, true);

    // The timeout runs from here, before the head is sent, as a kube-apiserver's timer
    // starts before it flushes the head: a client that times the watch from the head it
    // received sees a little less than timeoutSeconds.
    let start = Instant::now();
    let mut headers = api::api_headers(sh, "application/json");
    headers.push(("Transfer-Encoding", String::from("chunked")));
    if conn.write_all(&http::head(200, &headers)).is_err() || conn.flush().is_err() {
        return;
    }

    if let Some((asked, oldest)) = too_old {
        let _ = write_lines(
            conn,
            raw,
            sh.opts.chunking,
            vec![error_line(asked, oldest)],
            None,
        );
        return end_clean(conn);
    }
    if silent {
        return idle_until_killed(sh, raw, wid);
    }

    let chunking = sh.opts.chunking;
    let periodic = !sh.opts.bookmark_interval.is_zero();
    let interval = sh.opts.bookmark_interval.max(Duration::from_millis(10));
    let deadline = super::later(start, timeout);
    // Periodic bookmarks when asked for; in any case, as a v1.20 server does, from 2 s
    // before the timeout, then about every second.
    let before_deadline = deadline
        .checked_sub(BOOKMARK_BEFORE_DEADLINE)
        .unwrap_or(start);
    let first = if periodic {
        super::later(start, interval).min(before_deadline)
    } else {
        before_deadline
    };
    let mut next_bookmark = first;
    let mut pos = floor;
    let mut last_probe = Instant::now();
    let kind_name = filter.kind.name();
    loop {
        if !pending.is_empty() {
            let top = pending.iter().map(|(_, o)| o.rv).max();
            let lines: Vec<Vec<u8>> = pending
                .drain(..)
                .map(|(typ, o)| event_line(typ, &o.text))
                .collect();
            let fault = take_event_fault(sh);
            if write_lines(conn, raw, chunking, lines, fault).is_err() {
                return;
            }
            note_sent(sh, conn_id, top);
            continue;
        }
        let mut st = sh.lock();
        let Some(q) = st.watchers.get_mut(&wid) else {
            return;
        };
        if q.kill {
            drop(st);
            let _ = raw.shutdown(Shutdown::Both);
            return;
        }
        if q.expire {
            let current = st.rv;
            drop(st);
            let _ = write_lines(conn, raw, chunking, vec![error_line(pos, current)], None);
            return end_clean(conn);
        }
        if q.overflow {
            drop(st);
            return end_clean(conn);
        }
        if !q.events.is_empty() {
            let evs: Vec<Arc<Event>> = q.events.drain(..).collect();
            drop(st);
            for ev in evs {
                pos = pos.max(ev.obj.rv);
                if ev.obj.rv > floor {
                    pending.extend(project(&filter, &ev));
                }
            }
            if matches!(chunking, Chunking::Coalesce | Chunking::Mixed) && !pending.is_empty() {
                thread::sleep(COALESCE_WAIT);
                let mut st = sh.lock();
                if let Some(q) = st.watchers.get_mut(&wid) {
                    let more: Vec<Arc<Event>> = q.events.drain(..).collect();
                    drop(st);
                    for ev in more {
                        pos = pos.max(ev.obj.rv);
                        if ev.obj.rv > floor {
                            pending.extend(project(&filter, &ev));
                        }
                    }
                }
            }
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            drop(st);
            return end_clean(conn);
        }
        if allow_bookmarks && now >= next_bookmark {
            next_bookmark = if now >= before_deadline {
                super::later(now, Duration::from_secs(1))
            } else {
                super::later(now, interval).min(before_deadline)
            };
            // A v1.20 server sends its pre-timeout bookmarks only when its cache has moved
            // past the version the watch started from; a quiet watch gets none.
            let deadline_only = !periodic || now >= before_deadline;
            if st.rv > floor || (st.rv == floor && !deadline_only) {
                let current = st.rv;
                drop(st);
                pos = pos.max(current);
                let line = bookmark_line(kind_name, current);
                if write_lines(conn, raw, chunking, vec![line], None).is_err() {
                    return;
                }
                note_sent(sh, conn_id, Some(current));
                continue;
            }
        }
        let mut until = deadline.min(super::later(now, PROBE_EVERY));
        if allow_bookmarks {
            until = until.min(next_bookmark);
        }
        let st = sh
            .changed
            .wait_timeout(st, until.saturating_duration_since(now))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
        drop(st);
        if last_probe.elapsed() >= PROBE_EVERY {
            if client_gone(raw) {
                return;
            }
            last_probe = Instant::now();
        }
    }
}

/// Remembers the highest version the watch on `conn_id` has sent and when its write had
/// returned, for `Emulator::watch_last_sent` and `Emulator::watch_sent_at`.
fn note_sent(sh: &Shared, conn_id: u64, rv: Option<u64>) {
    if let Some(rv) = rv {
        let now = Instant::now();
        let mut st = sh.lock();
        let top = st.watch_sent.entry(conn_id).or_insert((rv, now));
        if rv > top.0 {
            *top = (rv, now);
        }
    }
}

/// A silent watch: nothing is ever sent; it ends when the client leaves or it is killed.
fn idle_until_killed(sh: &Shared, raw: &TcpStream, wid: u64) {
    loop {
        let st = sh.lock();
        if st.watchers.get(&wid).is_none_or(|q| q.kill) {
            drop(st);
            let _ = raw.shutdown(Shutdown::Both);
            return;
        }
        let st = sh
            .changed
            .wait_timeout(st, PROBE_EVERY)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
        drop(st);
        if client_gone(raw) {
            return;
        }
    }
}
