//! Promises of the README that no other test pins, each checked so that the test fails when
//! the loader breaks it: SIGTERM during a write exits 0 only after the write completes; poll
//! mode lists every `-sync-interval` and `/healthz` allows it two intervals plus a minute;
//! `relists_total` counts lists after the first one and `last_snapshot_timestamp_seconds`
//! follows the snapshot on disk; the health server bounds request heads, answers exact codes
//! and caps concurrent connections; the `-watch` safety-net check relists only when
//! something differs.

#[path = "emulator/mod.rs"]
mod emulator;
mod support;

use emulator::{Emulator, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

const T: Duration = Duration::from_secs(15);

fn emu() -> Emulator {
    Emulator::start(Options {
        bookmark_interval: Duration::from_millis(300),
        ..Options::default()
    })
}

/// The loader's args for ConfigMap default/envoy written to `out`, without the mode.
fn args(emu: &Emulator, token: &Path, out: &Path) -> Args {
    Args::new(&emu.url(), token)
        .configmap("envoy")
        .namespace("default")
        .output(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The fields of a log line (`TIME level=L msg="..." key=value ...`), values unquoted.
fn fields(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line.split_once(' ').map_or("", |x| x.1);
    while let Some((key, after)) = rest.split_once('=') {
        let mut value = String::new();
        let mut chars = after.chars();
        if after.starts_with('"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some(c) => value.push(c),
                        None => {}
                    },
                    c => value.push(c),
                }
            }
        } else {
            value.extend(chars.by_ref().take_while(|c| *c != ' '));
        }
        out.insert(key.trim().to_string(), value);
        rest = chars.as_str().trim_start();
    }
    out
}

/// The log lines whose fields include every one of `want`.
fn log_lines<'a>(log: &'a str, want: &[(&str, &str)]) -> Vec<(usize, &'a str)> {
    log.lines()
        .enumerate()
        .filter(|(_, line)| {
            let f = fields(line);
            want.iter()
                .all(|(k, v)| f.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SIGTERM during a write.

/// Keys of the slow snapshot and the size of each value: 6 × 560 KiB, about 3.3 MiB in one
/// watch event line (the loader refuses lines over 4 MiB), written with -fsync, so that the
/// write lasts long enough for a signal to land in the middle of it.
const SLOW_KEYS: usize = 6;
const SLOW_VALUE_BYTES: usize = 560 << 10;

fn slow_snapshot(round: usize) -> Vec<(String, String)> {
    (0..SLOW_KEYS)
        .map(|i| {
            let head = format!("round {round} key {i}\n");
            let pad = "x".repeat(SLOW_VALUE_BYTES - head.len());
            (format!("file-{i}.yaml"), head + &pad)
        })
        .collect()
}

/// What a snapshot holds, for messages: each key's size and first line.
fn summary(files: &BTreeMap<String, String>) -> Vec<(String, usize, String)> {
    files
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.len(),
                v.lines().next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A `kill -TERM PID` that is already running and waits for one line on its stdin: sending
/// the signal then costs a pipe write, not a process start. Answers "sent" once kill(2) has
/// returned, i.e. once the signal is pending for the loader.
struct Trigger(std::process::Child);

impl Trigger {
    fn arm(pid: u32) -> Trigger {
        let child = Command::new("sh")
            .arg("-c")
            .arg("read _ && kill -TERM \"$1\" && echo sent")
            .arg("sh")
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sh for kill");
        Trigger(child)
    }

    fn fire(mut self) {
        let mut stdin = self.0.stdin.take().unwrap();
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        let mut line = String::new();
        BufReader::new(self.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "sent\n", "kill -TERM did not run");
        assert!(self.0.wait().unwrap().success());
    }
}

#[test]
fn sigterm_during_a_write_exits_0_after_the_write_completes() {
    let emu = emu();
    let tmp = TempDir::new("sigterm-write");
    let token = write_token(&tmp, TOKEN);
    // (round, whether the signal was pending before `..data` switched)
    let mut rounds: Vec<(usize, bool)> = Vec::new();
    for round in 0..20 {
        let out = tmp.join(&format!("out-{round}"));
        let small: Vec<(String, String)> = (0..SLOW_KEYS)
            .map(|i| {
                (
                    format!("file-{i}.yaml"),
                    format!("round {round} small {i}\n"),
                )
            })
            .collect();
        let small_ref: Vec<(&str, &str)> = small
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        emu.apply("default", "envoy", &small_ref);
        let mut l = Loader::start(
            &tmp,
            &args(&emu, &token, &out).watch("60s").flags(&["-fsync"]),
        );
        converges(&l, &out, &small_ref);
        let old = data_target(&out).expect("..data after the first snapshot");

        let trigger = Trigger::arm(l.child.id());
        let slow = slow_snapshot(round);
        let slow_ref: Vec<(&str, &str)> =
            slow.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        emu.apply("default", "envoy", &slow_ref);
        // The write has begun once its version directory exists, or once the one made
        // ready after the last write holds a new file; ..data still names the old one until
        // the switch.
        let deadline = Instant::now() + T;
        let first = format!("round {round} key 0");
        let new = loop {
            if let Some(v) = versions(&out).into_iter().find(|v| *v != old) {
                break v;
            }
            if let Some(v) = next_version(&out) {
                let file = std::fs::read_to_string(out.join(&v).join("file-0.yaml"));
                if file.is_ok_and(|f| f.starts_with(&first)) {
                    break v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no new version directory in {} within {T:?}\n{}",
                out.display(),
                l.log()
            );
            std::thread::yield_now();
        };
        trigger.fire();
        let landed = data_target(&out).as_deref() == Some(old.as_str());
        rounds.push((round, landed));

        let status = l.wait(T).expect("the loader exits after SIGTERM");
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: exit code after SIGTERM during the write of {new}\n{}",
            l.log()
        );
        // The write in progress finished: ..data names the version being written when the
        // signal came, which holds the whole new content, and nothing else is left.
        assert_eq!(
            data_target(&out).as_deref(),
            Some(new.as_str()),
            "round {round}: ..data of {} after SIGTERM (signal landed mid-write: {landed})\n{}",
            out.display(),
            l.log()
        );
        let want: BTreeMap<String, String> = slow.into_iter().collect();
        let have = read_text(&out);
        assert!(
            have == want,
            "round {round}: {} after SIGTERM holds {:?}, want {:?}",
            out.display(),
            summary(&have),
            summary(&want)
        );
        assert_consistent(&out);
        assert_eq!(
            versions(&out),
            vec![new.clone()],
            "round {round}: version directories left in {}",
            out.display()
        );
        // (..data_tmp names the next version made ready, which `versions` leaves out)
        assert!(
            std::fs::symlink_metadata(out.join("..link_tmp")).is_err(),
            "round {round}: ..link_tmp left in {}",
            out.display()
        );
        // The log says the same: the snapshot was written, then the loader stopped.
        let log = l.log();
        let written = log_lines(&log, &[("msg", "snapshot written"), ("version", &new)]);
        let stopping = log_lines(&log, &[("msg", "stopping"), ("signal", "SIGTERM")]);
        assert!(
            matches!((&written[..], &stopping[..]), ([(w, _)], [(s, _)]) if w < s),
            "round {round}: want one \"snapshot written\" version={new}, then one \"stopping\" signal=SIGTERM; have {written:?}, {stopping:?}\n{log}"
        );
        let _ = std::fs::remove_dir_all(&out);
        if rounds.iter().filter(|r| r.1).count() >= 3 {
            break;
        }
    }
    eprintln!("SIGTERM rounds (round, landed mid-write): {rounds:?}");
    assert!(
        rounds.iter().any(|r| r.1),
        "in none of {} rounds was SIGTERM pending before ..data switched: {rounds:?}",
        rounds.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Poll mode.

#[test]
fn poll_mode_lists_every_sync_interval_and_healthz_allows_two_intervals_and_a_minute() {
    const D: Duration = Duration::from_millis(300);
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "1")]);
    let (tmp, token, out) = workdir("poll");
    let l = Loader::start(
        &tmp,
        &args(&emu, &token, &out)
            .value("-sync-interval", "300ms")
            .listen("127.0.0.1:0"),
    );
    let addr = listen_addr(&l);
    converges(&l, &out, &[("k", "1")]);

    // Eleven polls, ten intervals; /healthz is 200 all along.
    let lists = || -> Vec<emulator::Record> {
        emu.requests().into_iter().filter(|r| r.is_list()).collect()
    };
    assert!(
        wait_until(T, || {
            assert_eq!(
                get(&addr, "/healthz"),
                (200, "ok\n".into()),
                "/healthz of configmap default/envoy while polls succeed"
            );
            lists().len() >= 11
        }),
        "configmap default/envoy: {} lists in {T:?} at -sync-interval 300ms",
        lists().len()
    );
    let polls = lists();
    assert!(
        emu.requests().iter().all(|r| !r.watch),
        "poll mode never watches configmap default/envoy"
    );
    for r in &polls {
        assert_eq!(
            r.param("resourceVersion"),
            None,
            "a poll of configmap default/envoy is a consistent list: {}",
            r.query
        );
    }
    let mut gaps: Vec<Duration> = polls.windows(2).map(|w| w[1].at - w[0].at).collect();
    // The loader sleeps D × [0.95, 1.05) between the end of one poll and the start of the
    // next: no gap is shorter, and a typical one is barely longer.
    for g in &gaps {
        assert!(
            *g >= D.mul_f64(0.95) - Duration::from_millis(2),
            "configmap default/envoy: polls {g:?} apart at -sync-interval {D:?}: {gaps:?}"
        );
        assert!(
            *g <= D.mul_f64(1.05) + scaled(Duration::from_secs(1)),
            "configmap default/envoy: polls {g:?} apart at -sync-interval {D:?}: {gaps:?}"
        );
    }
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median <= D.mul_f64(1.05) + scaled(Duration::from_millis(100)),
        "configmap default/envoy: median gap between polls {median:?} at -sync-interval {D:?}: {gaps:?}"
    );

    // The bound is 2 × D + 60 s: a 503 in poll mode takes more than a minute, too long for
    // this file. What can be seen in seconds is the minute's margin: with every poll failing
    // for over ten intervals (far past 2 × D), /healthz stays 200.
    emu.set_down(true);
    emu.apply("default", "envoy", &[("k", "2")]);
    let failed = || metric(&addr, "envoy_xds_loader_api_requests_total{code=\"none\"}");
    let down_at = Instant::now();
    assert!(
        wait_until(T, || {
            assert_eq!(
                get(&addr, "/healthz"),
                (200, "ok\n".into()),
                "/healthz of configmap default/envoy {:?} into failing polls (bound 2 × {D:?} + 60s)",
                down_at.elapsed()
            );
            failed() >= 10.0
        }),
        "configmap default/envoy: {} failed polls in {T:?}\n{}",
        failed(),
        l.log()
    );
    assert!(
        down_at.elapsed() >= D * 9,
        "configmap default/envoy: 10 failed polls in {:?} at -sync-interval {D:?}",
        down_at.elapsed()
    );
    let log = l.log();
    assert!(
        !log_lines(
            &log,
            &[
                ("level", "warn"),
                ("object", "configmap default/envoy"),
                ("op", "list")
            ]
        )
        .is_empty(),
        "the failed polls of configmap default/envoy are logged with object= and op=list\n{log}"
    );
    emu.set_down(false);
    converges(&l, &out, &[("k", "2")]);
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".into()));
}

// ---------------------------------------------------------------------------------------------
// Metrics.

#[test]
fn relists_count_lists_after_the_first_and_the_timestamp_follows_the_snapshot_on_disk() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("metrics");
    let started = now_ms();
    let l = Loader::start(
        &tmp,
        &args(&emu, &token, &out).watch("60s").listen("127.0.0.1:0"),
    );
    let addr = listen_addr(&l);
    converges(&l, &out, &[("k", "0")]);
    const TS: &str = "envoy_xds_loader_last_snapshot_timestamp_seconds";
    const RELISTS: &str = "envoy_xds_loader_relists_total";
    let ts = || (metric(&addr, TS) * 1000.0).round() as u64;
    let lists = || emu.requests().iter().filter(|r| r.is_list()).count();

    // The first snapshot: the timestamp is the moment it was written, to the millisecond.
    assert!(wait_until(T, || ts() >= started), "{TS} {}", ts());
    let ts1 = ts();
    let now = now_ms();
    assert!(
        (started..=now).contains(&ts1),
        "{TS} {ts1} ms after the first snapshot of configmap default/envoy, want {started}..={now}"
    );
    assert_eq!(metric(&addr, RELISTS), 0.0, "{RELISTS}: the first list");

    // A dropped watch is watched again from the last version: no list, no relist.
    assert!(emu.wait_for(|e| e.open_watches() == 1, T), "{}", l.log());
    emu.drop_watches();
    assert!(
        wait_until(T, || metric(&addr, "envoy_xds_loader_watch_restarts_total")
            >= 1.0
            && emu.open_watches() == 1),
        "configmap default/envoy: no new watch after the drop\n{}",
        l.log()
    );
    assert_eq!(
        metric(&addr, RELISTS),
        0.0,
        "{RELISTS} after a re-watch of configmap default/envoy"
    );
    assert_eq!(
        lists(),
        1,
        "lists of configmap default/envoy after a re-watch"
    );

    // A written snapshot moves the timestamp to the moment of the write.
    let before = now_ms();
    emu.apply("default", "envoy", &[("k", "1")]);
    converges(&l, &out, &[("k", "1")]);
    assert!(wait_until(T, || ts() >= before), "{TS} {}", ts());
    let ts2 = ts();
    let now = now_ms();
    assert!(
        (before..=now).contains(&ts2),
        "{TS} {ts2} ms after configmap default/envoy k=1 was written, want {before}..={now}"
    );

    // "Too old": history compacted, the open watch expired. One relist, exactly.
    let target = data_target(&out);
    let before_relist = now_ms();
    emu.compact();
    assert!(emu.wait_for(|e| e.open_watches() == 1, T), "{}", l.log());
    emu.expire_watches();
    // Settled once the relist's watch is open: the last request is a watch after two lists.
    assert!(
        wait_until(T, || {
            let reqs = emu.requests();
            reqs.iter().filter(|r| r.is_list()).count() == 2
                && reqs.last().is_some_and(|r| r.watch && r.status == 200)
                && emu.open_watches() == 1
        }),
        "configmap default/envoy: no relist and watch after 410\n{}",
        l.log()
    );
    assert_eq!(
        metric(&addr, RELISTS),
        1.0,
        "{RELISTS} after one 410 of configmap default/envoy"
    );
    assert_eq!(
        lists(),
        2,
        "lists of configmap default/envoy: the first and the relist"
    );
    assert_eq!(
        metric(&addr, "envoy_xds_loader_snapshots_written_total"),
        2.0,
        "the relist of unchanged configmap default/envoy writes nothing"
    );
    assert_eq!(
        data_target(&out),
        target,
        "..data after an unchanged relist"
    );
    // The unchanged snapshot is known on disk again, at the relist: the timestamp moves on
    // (never back to the write before it).
    let ts3 = ts();
    let now = now_ms();
    assert!(
        ts3 >= ts2 && (before_relist..=now).contains(&ts3),
        "{TS} {ts3} ms after an unchanged relist of configmap default/envoy, want {before_relist}..={now} (the write before: {ts2})"
    );
}

// ---------------------------------------------------------------------------------------------
// The health server.

#[test]
fn the_health_server_caps_connections_bounds_request_heads_and_answers_exact_codes() {
    const CAP: usize = 16;
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("health-server");
    let l = Loader::start(
        &tmp,
        &args(&emu, &token, &out)
            .flags(&["-watch"])
            .listen("127.0.0.1:0"),
    );
    // No request before this part: every slot is free.
    let addr = listen_addr(&l);

    // 16 idle connections (a head never sent) take every slot.
    let idle: Vec<TcpStream> = (0..CAP)
        .map(|i| TcpStream::connect(&addr).unwrap_or_else(|e| panic!("idle {i}: {e}")))
        .collect();
    // A 17th, a probe, is answered at once: the oldest idle connection gives way.
    let t17 = Instant::now();
    let r = exchange(&addr, b"GET /healthz HTTP/1.1\r\n\r\n").expect("the 17th is answered");
    assert_eq!(
        status_line(&r),
        "HTTP/1.1 200 OK",
        "the 17th connection to {addr}"
    );
    assert!(
        t17.elapsed() < scaled(Duration::from_secs(1)),
        "the probe with {CAP} idle connections to {addr} took {:?}",
        t17.elapsed()
    );
    let mut idle = idle.into_iter();
    let mut oldest = idle.next().unwrap();
    oldest
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = Vec::new();
    let r = oldest.read_to_end(&mut buf);
    assert!(
        buf.is_empty()
            && match &r {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            },
        "the oldest idle connection to {addr} is closed unanswered: {r:?} {:?}",
        String::from_utf8_lossy(&buf)
    );
    // ... while the 15 others are still open: only one gave way.
    let rest: Vec<TcpStream> = idle.collect();
    for (i, s) in rest.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let r = s.peek(&mut [0u8; 1]);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "idle connection {} of {CAP} to {addr} ended early: {r:?}",
            i + 1
        );
        s.set_nonblocking(false).unwrap();
    }
    // The idle clients never send: the 2 s deadline for a whole request closes them.
    for (i, mut s) in rest.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(
            matches!(r, Ok(0)),
            "idle connection {} of {CAP} to {addr} after the deadline: {r:?} {:?}",
            i + 1,
            String::from_utf8_lossy(&buf)
        );
    }
    // HEAD: the status and headers of GET, no body.
    let r = exchange(&addr, b"HEAD /healthz HTTP/1.1\r\n\r\n").expect("HEAD is answered");
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n")
            && r.contains("\r\nContent-Length: 3\r\n")
            && r.ends_with("\r\n\r\n"),
        "HEAD /healthz on {addr}: {r:?}"
    );

    // At most 8 KiB of a head: exactly 8192 bytes with its end are served; 8192 bytes
    // without one are too large (431), at once, not after the client timeout.
    let head = |total: usize, end: &str| {
        let start = "GET /healthz HTTP/1.1\r\nX-Pad: ";
        let pad = total - start.len() - end.len();
        format!("{start}{}{end}", "p".repeat(pad))
    };
    let full = head(8192, "\r\n\r\n");
    assert_eq!(full.len(), 8192);
    let r = exchange(&addr, full.as_bytes()).expect("an answer to an 8192-byte head");
    assert_eq!(
        status_line(&r),
        "HTTP/1.1 200 OK",
        "an 8192-byte head for /healthz on {addr}"
    );
    let over = head(8192, "");
    let t = Instant::now();
    let r = exchange(&addr, over.as_bytes()).expect("an answer to an unfinished 8 KiB head");
    assert_eq!(
        status_line(&r),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "8192 bytes without the end of a head on {addr}"
    );
    assert!(
        t.elapsed() < scaled(Duration::from_secs(1)),
        "431 on {addr} after {:?}",
        t.elapsed()
    );

    // Exact codes.
    for (req, want) in [
        ("GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET /healthz\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (
            "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        ("GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
    ] {
        let r = exchange(&addr, req.as_bytes()).unwrap_or_else(|e| panic!("{req:?}: {e}"));
        assert_eq!(status_line(&r), want, "{req:?} to {addr}");
    }
    converges(&l, &out, &[("k", "0")]);
    assert_eq!(
        readyz_within(&addr, Duration::from_secs(1)),
        (200, "ok\n".into()),
        "/readyz on {addr}"
    );
}

// ---------------------------------------------------------------------------------------------
// The -watch safety-net check.

#[test]
fn the_watch_safety_net_check_relists_only_when_something_differs() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("safety-net");
    // A 60 s watch timeout: whatever is noticed within seconds is the 1 s check's doing.
    let l = Loader::start(
        &tmp,
        &args(&emu, &token, &out)
            .watch("60s")
            .value("-sync-interval", "1s"),
    );
    converges(&l, &out, &[("k", "0")]);
    let target = data_target(&out);
    let cached = |r: &emulator::Record| r.is_list() && r.param("resourceVersion") == Some("0");
    let consistent = |r: &emulator::Record| r.is_list() && r.param("resourceVersion").is_none();
    let since = |t: Instant| -> Vec<emulator::Record> {
        emu.requests().into_iter().filter(|r| r.at >= t).collect()
    };

    // Nothing differs: four checks from the watch cache, and no consistent list.
    let t0 = Instant::now();
    assert!(
        wait_until(T, || since(t0).iter().filter(|r| cached(r)).count() >= 4),
        "configmap default/envoy: safety-net checks since the first snapshot: {:?}",
        since(t0).iter().map(|r| &r.query).collect::<Vec<_>>()
    );
    let steady = since(t0);
    assert_eq!(
        steady.iter().filter(|r| consistent(r)).count(),
        0,
        "configmap default/envoy: consistent lists while nothing differs: {:?}",
        steady.iter().map(|r| &r.query).collect::<Vec<_>>()
    );
    let checks: Vec<Instant> = steady.iter().filter(|r| cached(r)).map(|r| r.at).collect();
    // Jittered in [0.9, 1.1] s, and the watch between two checks lasts whole seconds: the
    // checks come 1 or 2 s apart. Never sooner; the typical gap (the median) within 2.2 s,
    // and even one delayed by a busy machine far from the 60 s a check tied to the watch's
    // own end would take.
    let mut gaps: Vec<Duration> = checks.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    assert!(
        gaps.iter().all(|g| (Duration::from_millis(850)..scaled(Duration::from_secs(10))).contains(g))
            && median < scaled(Duration::from_millis(2200)),
        "configmap default/envoy: safety-net checks {gaps:?} apart (sorted) at -sync-interval 1s\n{}",
        l.log()
    );
    // The watches between checks are cut to a second; the server ends each on time, and
    // none of them is a failure to back off from.
    assert!(
        !l.log().contains("watch ended at once"),
        "configmap default/envoy: a 1 s watch ended on time taken for a failure\n{}",
        l.log()
    );
    assert_eq!(data_target(&out), target, "..data while nothing differs");
    assert!(
        !l.log().contains("safety-net check found a difference"),
        "{}",
        l.log()
    );

    // The watch misses a change: it is dropped, and every new one stays silent.
    emu.set_silent_watches(true);
    emu.drop_watches();
    emu.apply("default", "envoy", &[("k", "1")]);
    let t1 = Instant::now();
    // At worst: the reconnection's backoff (under 1.5 s), a silent watch given up at its
    // read timeout (1 s + 6 s margin at a 60 s watch timeout), the next backoff (under 3 s),
    // then the check. A watch of its own would take 60 s at least.
    assert!(
        wait_until(T, || read_text(&out) == text(&[("k", "1")])),
        "configmap default/envoy k=1 missed by the watch, not written within {T:?}\n{}",
        l.log()
    );
    assert_consistent(&out);
    let after = since(t1);
    let lists: Vec<&emulator::Record> = after.iter().filter(|r| r.is_list()).collect();
    let queries: Vec<&str> = lists.iter().map(|r| r.query.as_str()).collect();
    // The first check after the change finds it, and a consistent list follows at once.
    assert!(
        matches!(&lists[..], [c, r, ..] if cached(c) && consistent(r) && r.at - c.at < scaled(Duration::from_secs(1))),
        "configmap default/envoy: want a list with resourceVersion=0, then at once a consistent list: {queries:?}"
    );
    assert_eq!(
        lists.iter().filter(|r| consistent(r)).count(),
        1,
        "configmap default/envoy: consistent lists after the missed change: {queries:?}"
    );
    let log = l.log();
    let warned: Vec<_> = log_lines(&log, &[("level", "warn")])
        .into_iter()
        .filter(|(_, line)| {
            let f = fields(line);
            let msg = f.get("msg").map_or("", String::as_str);
            msg.ends_with("safety-net check found a difference; relisting")
                && (msg.starts_with("configmap default/envoy: ")
                    || f.get("object").map(String::as_str) == Some("configmap default/envoy"))
        })
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "configmap default/envoy: safety-net warnings after one missed change\n{log}"
    );
    emu.set_silent_watches(false);
}

/// 200 clients that each send one byte of a request every 100 ms, reconnecting when they
/// are closed, while a probe asks /healthz ten times a second: every probe is answered
/// within 1 s (the kubelet's default probe timeout).
#[test]
fn two_hundred_slow_clients_do_not_keep_a_probe_from_its_answer() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("slow-clients");
    let l = Loader::start(
        &tmp,
        &args(&emu, &token, &out)
            .flags(&["-watch"])
            .listen("127.0.0.1:0"),
    );
    let addr = listen_addr(&l);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tricklers: Vec<_> = (0..200)
        .map(|_| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut connections = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && connections < 1000 {
                    connections += 1;
                    let Ok(mut s) = TcpStream::connect(&addr) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: "
                        .iter()
                        .cycle()
                        .take(1000)
                    {
                        if stop.load(std::sync::atomic::Ordering::Relaxed)
                            || s.write_all(&[*b]).is_err()
                        {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                connections
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500)); // every trickler has connected
    let mut times = Vec::new();
    for _ in 0..40 {
        let t = Instant::now();
        let r = exchange(&addr, b"GET /healthz HTTP/1.1\r\n\r\n");
        let took = t.elapsed();
        assert!(
            r.as_deref()
                .is_ok_and(|r| status_line(r) == "HTTP/1.1 200 OK"),
            "a probe among 200 slow clients on {addr}: {r:?} after {took:?}"
        );
        times.push(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reconnects: u32 = tricklers.into_iter().map(|t| t.join().unwrap()).sum();
    times.sort();
    let worst = times[times.len() - 1];
    let _ = writeln!(
        std::io::stderr(),
        "health server under 200 slow clients: 40 probes, median {:?}, worst {worst:?}, {reconnects} slow connections",
        times[times.len() / 2]
    );
    assert!(
        worst < scaled(Duration::from_secs(1)),
        "the slowest of 40 probes among 200 slow clients took {worst:?}"
    );
    assert!(
        reconnects > 200,
        "the slow clients were cut off and came back: {reconnects}"
    );
}

/// `-listen :PORT` listens on every address, IPv6 and IPv4, as Go's `:PORT` does: probes
/// reach it on [::1] and on 127.0.0.1.
#[test]
fn listen_on_a_bare_port_serves_ipv6_and_ipv4() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("dual-stack");
    let l = Loader::start(
        &tmp,
        &args(&emu, &token, &out).flags(&["-watch"]).listen(":0"),
    );
    let addr = listen_addr(&l);
    let port = addr.rsplit(':').next().unwrap();
    assert!(
        addr.starts_with("[::]:"),
        "bound to every IPv6 address: {addr}"
    );
    converges(&l, &out, &[("k", "0")]);
    for host in ["[::1]", "127.0.0.1"] {
        let to = format!("{host}:{port}");
        let answer = readyz_within(&to, Duration::from_secs(1));
        assert_eq!(answer.0, 200, "/readyz on {to} with -listen :0: {answer:?}");
    }
}
