//! Benchmark: how long a ConfigMap update takes to reach the output directory, and how much
//! of that is the loader's own work.
//!
//! For 1 KiB, 100 KiB and 1 MiB ConfigMaps, against the in-process API emulator over TLS on
//! loopback: one loader (`-watch`) and one bare watch client (the same stream, doing nothing
//! but reading lines) follow the same ConfigMap. Each update is timed from just before the
//! emulator accepts it to (a) the moment the bare client has read the whole event line and
//! (b) the inotify `IN_MOVED_TO` of the key's link in the loader's output directory (the
//! last step of a snapshot switch; the file then holds the update's marker). The loader's
//! overhead per update is (b) − (a), measured on the same updates in the same run. The
//! emulator serves each watch from a thread of its own, so that difference also holds the
//! order the two were served in: a second row times each client from the moment the
//! emulator's write of the event to its own connection had returned, (b) − written to the
//! loader − ((a) − written to the bare client), and a third shows the order itself. The
//! output directory is in the temporary directory (`TMPDIR`), and again in /dev/shm when
//! that is a tmpfs elsewhere: a disk file system adds latency of its own (journal commits)
//! that memory does not.
//!
//! With `strace` on the machine, a last run at 1 KiB follows the loader binary itself (the
//! static build scripts/bench.sh passes, not the crate as linked into this program) under
//! `strace -f` and lists the syscalls of its watch thread from the read that completed each
//! event to the rename that made the key visible.
//!
//! Environment: `UPDATES` (default 200; 30 with `BENCH_QUICK=1`), `SIZES` (a comma list of
//! `1kib`, `100kib`, `1mib`; default all), `LOADER_BIN`.

#[path = "common.rs"]
mod common;
#[path = "../emulator/mod.rs"]
mod emulator;

use common::*;
use emulator::{Emulator, Options, Record};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const KEY: &str = "cds.yaml";
const NAME: &str = "prop";
const WARMUP: usize = 5;

struct Sizes {
    label: &'static str,
    bytes: usize,
    /// p50 budget of the loader's overhead, if any.
    p50: Option<Duration>,
    /// p99 budget of the loader's overhead, if any.
    budget: Option<Duration>,
}

fn main() {
    let updates = env_usize("UPDATES", if quick() { 30 } else { 200 });
    let sizes = [
        Sizes {
            label: "1 KiB",
            bytes: 1024,
            p50: Some(Duration::from_micros(300)),
            budget: Some(Duration::from_millis(1)),
        },
        Sizes {
            label: "100 KiB",
            bytes: 100 * 1024,
            p50: None,
            budget: Some(Duration::from_millis(1)),
        },
        Sizes {
            label: "1 MiB",
            bytes: 1024 * 1024 - KEY.len(),
            p50: None,
            budget: Some(Duration::from_millis(5)),
        },
    ];
    // The temporary directory (usually on disk), and memory (tmpfs) when it is elsewhere:
    // a disk file system adds its own latency (journal commits), which memory does not.
    let mut places = vec![std::env::temp_dir()];
    let shm = PathBuf::from("/dev/shm");
    if fs_type(&shm) == "tmpfs" && fs_type(&places[0]) != "tmpfs" {
        places.push(shm);
    }
    let only = std::env::var("SIZES").unwrap_or_default();
    for size in &sizes {
        let tag = size.label.replace(' ', "").to_lowercase();
        if !only.is_empty() && !only.split(',').any(|s| s.trim().to_lowercase() == tag) {
            continue;
        }
        control(size, updates);
        for place in &places {
            run(size, updates, place);
        }
        if size.bytes == 1024 {
            binary_syscalls(size, &places[0]);
        }
    }
}

/// The budgets of `size` and the verdict on overhead `samples` (signed nanoseconds); empty
/// without budgets.
fn judge(size: &Sizes, samples: &mut [i64]) -> (String, String) {
    let short = |d: Duration| ms(d).replace(".000", "");
    let mut budgets = Vec::new();
    let mut ok = true;
    if let Some(b) = size.p50 {
        budgets.push(format!("p50 ≤ {}", short(b)));
        ok &= percentile(samples, 0.5) <= b.as_nanos() as i64;
    }
    if let Some(b) = size.budget {
        budgets.push(format!("p99 ≤ {}", short(b)));
        ok &= percentile(samples, 0.99) <= b.as_nanos() as i64;
    }
    match budgets.is_empty() {
        true => (String::new(), String::new()),
        false => (budgets.join(", "), verdict(ok).to_string()),
    }
}

/// p50 / p90 / p99 of signed nanoseconds, in milliseconds.
fn spread(samples: &mut [i64]) -> String {
    let show = |ns: i64| format!("{:.3}", ns as f64 / 1e6);
    format!("{} ms", percentiles(samples, &[0.5, 0.9, 0.99], show))
}

/// `later − earlier` in signed nanoseconds.
fn signed(later: Instant, earlier: Instant) -> i64 {
    if later >= earlier {
        (later - earlier).as_nanos() as i64
    } else {
        -((earlier - later).as_nanos() as i64)
    }
}

/// The ConfigMap's data at update `n`: `KEY`, `size` bytes, starting with `marker(n)`.
fn data(size: &Sizes, n: u64) -> BTreeMap<String, String> {
    BTreeMap::from([(KEY.to_string(), envoy_yaml(size.bytes, n))])
}

/// An emulator serving the ConfigMap at update 0.
fn emulator(size: &Sizes) -> Emulator {
    let emu = Emulator::start(Options {
        tokens: vec![TOKEN.into()],
        log_requests: true,
        ..Options::default()
    });
    emu.apply_full(NS, NAME, data(size, 0), BTreeMap::new());
    emu
}

/// When a bare watch client read the MODIFIED event of version `rv` (`what` names the
/// client when it saw nothing).
fn seen(client: &Receiver<Line>, rv: u64, what: &str) -> Instant {
    loop {
        match client.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.modified && l.rv == rv => return l.at,
            Ok(_) => continue,
            Err(_) => fail(&format!("{what} saw nothing")),
        }
    }
}

/// The connection of the last watch request that `pick` chooses.
fn watch_conn(emu: &Emulator, pick: impl Fn(&Record) -> bool) -> Option<u64> {
    let records = emu.requests();
    records
        .iter()
        .rev()
        .find(|r| r.watch && pick(r))
        .map(|r| r.conn)
}

/// Whether `r` is the watch of bare client `tag`.
fn bare_client(r: &Record, tag: u32) -> bool {
    r.param("timeoutSeconds") == Some(bare_timeout(tag).as_str())
}

/// When the emulator's write of version `rv` to connection `conn` had returned; `None` when
/// the connection did not send it within a second (a watch that was replaced).
fn written(emu: &Emulator, conn: Option<u64>, rv: u64) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match conn.and_then(|c| emu.watch_sent_at(c)) {
            Some((sent, at)) if sent == rv => return Some(at),
            Some((sent, _)) if sent > rv => return None,
            _ if Instant::now() >= deadline => return None,
            _ => std::thread::sleep(Duration::from_micros(50)),
        }
    }
}

/// Each client timed from the emulator's write to its own connection: `later − its write`
/// minus `earlier − its write`, in signed nanoseconds; `None` without both writes.
fn from_own_write(
    later: (Instant, Option<Instant>),
    earlier: (Instant, Option<Instant>),
) -> Option<(i64, i64)> {
    let (l, e) = (later.1?, earlier.1?);
    Some((signed(later.0, l) - signed(earlier.0, e), signed(l, e)))
}

/// Fails unless most of `n` updates had both writes stamped.
fn stamped(got: usize, n: usize, what: &str) {
    if got < n.div_ceil(2) {
        fail(&format!(
            "{what}: the emulator's writes were stamped for {got} of {n} updates"
        ));
    }
}

/// The measurement's own noise: two bare watch clients on the same stream and no loader,
/// the same updates; what the second sees later than the first is serving order and
/// scheduling, which the loader's overhead includes too.
fn control(size: &Sizes, updates: usize) {
    say(&format!(
        "propagation {}: control, two bare clients, {updates} updates",
        size.label
    ));
    let emu = emulator(size);
    let from = emu.resource_version();
    let first = bare_watch(emu.port(), TOKEN, NAME, from, 1);
    let second = bare_watch(emu.port(), TOKEN, NAME, from, 2);
    if !emu.wait_for(|e| e.open_watches() == 2, Duration::from_secs(10)) {
        fail("the watches did not open");
    }
    let conns = [1, 2].map(|tag| watch_conn(&emu, |r| bare_client(r, tag)));
    let (mut apart, mut own, mut order) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=(WARMUP + updates) as u64 {
        let rv = emu.apply_full(NS, NAME, data(size, i), BTreeMap::new());
        let what = "control: a bare client";
        let (a, b) = (seen(&first, rv, what), seen(&second, rv, what));
        let [wa, wb] = conns.map(|c| written(&emu, c, rv));
        if i as usize > WARMUP {
            apart.push(signed(b, a));
            if let Some((d, o)) = from_own_write((b, wb), (a, wa)) {
                own.push(d);
                order.push(o);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    emu.stop();
    stamped(own.len(), apart.len(), "control");
    let section = format!("Propagation, {}", size.label);
    row(
        &section,
        "control, no loader: second bare client − first, p50 / p90 / p99",
        &spread(&mut apart),
        "",
        "",
    );
    row(
        &section,
        "control, each from its own connection's write: second − first, p50 / p90 / p99",
        &spread(&mut own),
        "",
        "",
    );
    row(
        &section,
        "control: the emulator's write to the second − to the first, p50 / p90 / p99",
        &spread(&mut order),
        "",
        "",
    );
}

fn run(size: &Sizes, updates: usize, place: &Path) {
    let where_ = format!("{} ({})", place.display(), fs_type(place));
    say(&format!(
        "propagation {}: {updates} updates, output in {where_}",
        size.label
    ));
    let tmp = TempDir::new_in(place, "bench-prop");
    let emu = emulator(size);
    let out = tmp.join("out");
    let events = moves_into(&out);

    let token = token_file(&tmp, "token", TOKEN);
    let args = api_args(&emu.url(), &token)
        .configmap(NAME)
        .output(&out)
        .flags(&["-watch"]);
    let loader = Loader::start(&tmp, &args);
    // The first write links a new key before the switch: no rename to wait for.
    if !wait_until(Duration::from_secs(30), || {
        first_line(&out.join(KEY)) == marker(0)
    }) {
        fail(&format!("the loader wrote nothing: {}", loader.log()));
    }
    let bare = bare_watch(emu.port(), TOKEN, NAME, emu.resource_version(), 0);
    if !emu.wait_for(|e| e.open_watches() == 2, Duration::from_secs(10)) {
        fail("the watches did not open");
    }
    let bare_conn = watch_conn(&emu, |r| bare_client(r, 0));
    let loader_conn = || watch_conn(&emu, |r| !bare_client(r, 0));

    let mut cpu_before = 0;
    let mut to_file = Vec::new();
    let mut to_bare = Vec::new();
    let mut overhead = Vec::new();
    let (mut own, mut order) = (Vec::new(), Vec::new());
    for i in 1..=(WARMUP + updates) as u64 {
        if i as usize == WARMUP + 1 {
            cpu_before = cpu_ns(loader.pid());
        }
        let next = data(size, i);
        let mark = marker(i);
        let sent = Instant::now();
        let rv = emu.apply_full(NS, NAME, next, BTreeMap::new());
        let bare_at = seen(&bare, rv, &format!("update {i}: the bare client"));
        let Some(file_at) = wait_file(&events, &out, 0, KEY, &mark, Duration::from_secs(10)) else {
            fail(&format!(
                "update {i}: the file did not change: {}",
                loader.log()
            ));
        };
        if i as usize > WARMUP {
            to_file.push(file_at - sent);
            to_bare.push(bare_at - sent);
            overhead.push(signed(file_at, bare_at));
            let mine = (file_at, written(&emu, loader_conn(), rv));
            if let Some((d, o)) = from_own_write(mine, (bare_at, written(&emu, bare_conn, rv))) {
                own.push(d);
                order.push(o);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_ns(loader.pid()).saturating_sub(cpu_before);
    let (rss, hwm) = rss_kib(loader.pid());
    drop(loader);
    emu.stop();

    let section = format!("Propagation, {}, output on {where_}", size.label);
    let n = to_file.len();
    stamped(own.len(), n, &section);
    row(
        &section,
        &format!("update sent → file visible (inotify), p50 / p99 of {n} updates"),
        &percentiles(&mut to_file, &[0.5, 0.99], ms),
        "",
        "",
    );
    row(
        &section,
        "update sent → bare watch client has the event line, p50 / p99",
        &percentiles(&mut to_bare, &[0.5, 0.99], ms),
        "",
        "",
    );
    let (budget, result) = judge(size, &mut overhead);
    row(
        &section,
        "loader overhead (file visible − bare client), p50 / p90 / p99",
        &spread(&mut overhead),
        &budget,
        &result,
    );
    let (budget, result) = judge(size, &mut own);
    row(
        &section,
        &format!(
            "loader overhead, each from its own connection's write, p50 / p90 / p99 ({} of {n})",
            own.len()
        ),
        &spread(&mut own),
        &budget,
        &result,
    );
    row(
        &section,
        "the emulator's write to the loader − to the bare client, p50 / p90 / p99",
        &spread(&mut order),
        "",
        "",
    );
    row(
        &section,
        "loader CPU time per update (all threads, from schedstat)",
        &ms(Duration::from_nanos(cpu / n.max(1) as u64)),
        "",
        "",
    );
    say(&format!(
        "propagation {}: loader VmRSS {} KiB, VmHWM {} KiB after the run",
        size.label, rss, hwm
    ));
}

/// Updates followed under strace, after two that are not counted.
const TRACED: u64 = 5;

/// The syscalls of the loader binary on the path of `size` updates: under `strace -f`, from
/// the read that completed the event (the last `read`/`recvfrom` with bytes before it) to
/// the rename that made the key visible, in the thread that made it.
fn binary_syscalls(size: &Sizes, place: &Path) {
    if Command::new("strace").arg("-V").output().is_err() {
        say("propagation: no strace on this machine, the binary's syscalls not listed");
        return;
    }
    let tmp = TempDir::new_in(place, "bench-prop-strace");
    let (emu, out, log) = (emulator(size), tmp.join("out"), tmp.join("strace.log"));
    let events = moves_into(&out);
    let wrapper = tmp.join("traced-loader");
    let script = format!(
        "#!/bin/sh\nexec strace -f -qq -o '{}' '{}' \"$@\"\n",
        log.display(),
        loader_bin().display()
    );
    std::fs::write(&wrapper, script).unwrap_or_else(|e| fail(&format!("{e}")));
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&wrapper, mode).unwrap_or_else(|e| fail(&format!("{e}")));
    let token = token_file(&tmp, "token", TOKEN);
    let args = api_args(&emu.url(), &token)
        .configmap(NAME)
        .output(&out)
        .flags(&["-watch"]);
    let mut loader = Loader::start_bin(&wrapper, &tmp, &args, &[]);
    let wrote = |n: u64| {
        wait_until(Duration::from_secs(30), || {
            first_line(&out.join(KEY)) == marker(n)
        })
    };
    if !wrote(0) || !emu.wait_for(|e| e.open_watches() == 1, Duration::from_secs(30)) {
        fail(&format!("traced loader: nothing written: {}", loader.log()));
    }
    for i in 1..=TRACED + 2 {
        emu.apply_full(NS, NAME, data(size, i), BTreeMap::new());
        if wait_file(&events, &out, 0, KEY, &marker(i), Duration::from_secs(30)).is_none() {
            fail(&format!(
                "traced loader: update {i} not seen: {}",
                loader.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM to the loader itself (strace's child), so that strace ends with it.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", loader.pid()))
        .unwrap_or_default();
    for pid in children.split_whitespace() {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    if loader.wait(Duration::from_secs(10)).is_none() {
        fail("traced loader: did not stop");
    }
    emu.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let paths = traced_paths(&text, &format!("/out/{KEY}\""));
    let counted: Vec<&Vec<String>> = paths.iter().rev().take(TRACED as usize).collect();
    let Some(most) = counted
        .iter()
        .max_by_key(|p| counted.iter().filter(|q| q == p).count())
    else {
        fail(&format!(
            "traced loader: no update found in the trace:\n{text}"
        ));
    };
    let same = counted.iter().filter(|p| p == &most).count();
    row(
        &format!(
            "Critical path, {}, the loader binary (strace -f)",
            size.label
        ),
        &format!(
            "the read completing the event → key visible, in {same} of {} updates: {}",
            counted.len(),
            most.join(", ")
        ),
        &format!("{} syscalls", most.len()),
        "",
        "",
    );
}

/// From strace's record `text`: for each rename onto a name ending in `visible`, the
/// syscalls of its thread after the last read that returned bytes, up to that rename.
fn traced_paths(text: &str, visible: &str) -> Vec<Vec<String>> {
    let mut calls: BTreeMap<&str, Vec<(String, &str)>> = BTreeMap::new();
    for line in text.lines() {
        if line.ends_with("<unfinished ...>") {
            continue; // counted where it resumes
        }
        if let Some((pid, name)) = strace_call(line) {
            calls.entry(pid).or_default().push((name.to_string(), line));
        }
    }
    let mut paths = Vec::new();
    for thread in calls.values() {
        for (end, (name, line)) in thread.iter().enumerate() {
            if name != "rename" || !line.contains(visible) {
                continue;
            }
            let read = |(n, l): &(String, &str)| {
                (n == "read" || n == "recvfrom") && !l.contains("= -") && !l.ends_with("= 0")
            };
            let Some(start) = thread[..end].iter().rposition(read) else {
                continue;
            };
            paths.push(
                thread[start + 1..=end]
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect(),
            );
        }
    }
    paths
}
