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
//! output directory is in the temporary directory (`TMPDIR`), and again in /dev/shm when
//! that is a tmpfs elsewhere: a disk file system adds latency of its own (journal commits)
//! that memory does not.
//!
//! Environment: `UPDATES` (default 200; 30 with `BENCH_QUICK=1`), `SIZES` (a comma list of
//! `1kib`, `100kib`, `1mib`; default all), `LOADER_BIN`.

#[path = "common.rs"]
mod common;
#[path = "../emulator/mod.rs"]
mod emulator;

use common::*;
use emulator::{Emulator, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    let first = bare_watch(emu.port(), TOKEN, NAME, from);
    let second = bare_watch(emu.port(), TOKEN, NAME, from);
    if !emu.wait_for(|e| e.open_watches() == 2, Duration::from_secs(10)) {
        fail("the watches did not open");
    }
    let mut apart = Vec::new();
    for i in 1..=(WARMUP + updates) as u64 {
        let rv = emu.apply_full(NS, NAME, data(size, i), BTreeMap::new());
        let what = "control: a bare client";
        let (a, b) = (seen(&first, rv, what), seen(&second, rv, what));
        if i as usize > WARMUP {
            apart.push(signed(b, a));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    emu.stop();
    row(
        &format!("Propagation, {}", size.label),
        "control, no loader: second bare client − first, p50 / p90 / p99",
        &spread(&mut apart),
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
    let bare = bare_watch(emu.port(), TOKEN, NAME, emu.resource_version());
    if !emu.wait_for(|e| e.open_watches() == 2, Duration::from_secs(10)) {
        fail("the watches did not open");
    }

    let mut cpu_before = 0;
    let mut to_file = Vec::new();
    let mut to_bare = Vec::new();
    let mut overhead = Vec::new();
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
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_ns(loader.pid()).saturating_sub(cpu_before);
    let (rss, hwm) = rss_kib(loader.pid());
    drop(loader);
    emu.stop();

    let section = format!("Propagation, {}, output on {where_}", size.label);
    let n = to_file.len();
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
    let p50 = percentile(&mut overhead, 0.5);
    let p99 = percentile(&mut overhead, 0.99);
    let short = |d: Duration| ms(d).replace(".000", "");
    let mut budgets = Vec::new();
    let mut ok = true;
    if let Some(b) = size.p50 {
        budgets.push(format!("p50 ≤ {}", short(b)));
        ok &= p50 <= b.as_nanos() as i64;
    }
    if let Some(b) = size.budget {
        budgets.push(format!("p99 ≤ {}", short(b)));
        ok &= p99 <= b.as_nanos() as i64;
    }
    let (budget, result) = match budgets.is_empty() {
        true => (String::new(), String::new()),
        false => (budgets.join(", "), verdict(ok).to_string()),
    };
    row(
        &section,
        "loader overhead (file visible − bare client), p50 / p90 / p99",
        &spread(&mut overhead),
        &budget,
        &result,
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
