//! Benchmark: a fleet of N loader processes (default flags plus `-watch`, each with its own
//! token and output directory) following one ConfigMap on one in-process API emulator over
//! TLS, as N Envoy sidecars of one Deployment would.
//!
//! 1. Updates: the time from an update to each loader's `IN_MOVED_TO` of the key (with the
//!    update's marker in the file); p50 and max over the fleet, per update.
//! 2. Idle: every request the emulator records over an idle period (default `-watch-timeout`
//!    of 5 min and `-sync-interval` of 10 min, unchanged), per minute, and how many were
//!    lists or gets rather than watches.
//! 3. Restart: `Emulator::restart()` (every connection drops, history is forgotten), the
//!    server refuses connections for a moment while the ConfigMap changes, then comes back.
//!    Each loader's reconnection is its first request that reaches the emulator (known by
//!    its token); the most of them in any 100 ms window shows the jitter at work. Converged:
//!    every loader has written the change.
//!
//! Environment: `FLEET_N` (default 100; 10 with `BENCH_QUICK=1`), `IDLE_SECS` (default 60;
//! 5 with `BENCH_QUICK=1`), `LOADER_BIN`.

#[path = "common.rs"]
mod common;
#[path = "../emulator/mod.rs"]
mod emulator;

use common::*;
use emulator::{Emulator, Options};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const KEY: &str = "cds.yaml";
const NAME: &str = "fleet";
const DOWN: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_millis(100);

fn main() {
    let n = env_usize("FLEET_N", if quick() { 10 } else { 100 });
    let idle = Duration::from_secs(env_usize("IDLE_SECS", if quick() { 5 } else { 60 }) as u64);
    let updates: u64 = if quick() { 3 } else { 5 };
    let tmp = TempDir::new("bench-fleet");
    let tokens: Vec<String> = (0..n).map(|i| format!("fleet-token-{i}")).collect();
    let emu = Emulator::start(Options {
        tokens: tokens.clone(),
        ..Options::default()
    });
    let apply = |m: u64| {
        let mut data = BTreeMap::new();
        data.insert(KEY.to_string(), envoy_yaml(4096, m));
        emu.apply_full(NS, NAME, data, BTreeMap::new())
    };
    apply(0);

    let dirs: Vec<PathBuf> = (0..n).map(|i| tmp.join(&format!("out-{i}"))).collect();
    let mut inotify = Inotify::new();
    for (i, d) in dirs.iter().enumerate() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| fail(&e.to_string()));
        inotify.watch(d, IN_MOVED_TO, i);
    }
    let events = inotify.spawn();

    say(&format!("fleet: starting {n} loaders"));
    let started = Instant::now();
    let loaders: Vec<Loader> = (0..n)
        .map(|i| {
            let token = token_file(&tmp, &format!("token-{i}"), &tokens[i]);
            let args = api_args(&emu.url(), &token)
                .configmap(NAME)
                .output(&dirs[i])
                .flags(&["-watch"]);
            Loader::start(&tmp, &args)
        })
        .collect();
    let all_up = wait_until(Duration::from_secs(120), || {
        dirs.iter().all(|d| first_line(&d.join(KEY)) == marker(0))
    }) && emu.wait_for(|e| e.open_watches() == n, Duration::from_secs(60));
    if !all_up {
        fail(&format!(
            "the fleet did not start ({} watches): {}",
            emu.open_watches(),
            loaders[0].log()
        ));
    }
    say(&format!(
        "fleet: up in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    std::thread::sleep(Duration::from_secs(2));
    while events.try_recv().is_ok() {}

    // 1. Updates.
    let mut p50s = Vec::new();
    let mut maxes = Vec::new();
    for m in 1..=updates {
        let sent = Instant::now();
        apply(m);
        let arrived = collect(&events, &dirs, &marker(m), Duration::from_secs(30));
        if arrived.len() < n {
            fail(&format!("update {m} reached {} of {n}", arrived.len()));
        }
        let mut took: Vec<Duration> = arrived.values().map(|t| *t - sent).collect();
        p50s.push(percentile(&mut took, 0.5));
        maxes.push(percentile(&mut took, 1.0));
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut rss: Vec<u64> = loaders.iter().map(|l| rss_kib(l.pid()).0).collect();
    let worst = percentile(&mut maxes, 1.0);
    let section = format!("Fleet of {n}");
    row(
        &section,
        &format!("one update → all {n} files, p50 / max ({updates} updates; worst max)"),
        &format!("{} / {}", ms(percentile(&mut p50s, 0.5)), ms(worst)),
        "max ≤ 250 ms",
        verdict(worst <= Duration::from_millis(250)),
    );

    // 2. Idle.
    say(&format!("fleet: idle for {} s", idle.as_secs()));
    emu.clear_requests();
    let idle_from = Instant::now();
    std::thread::sleep(idle);
    let idle_took = idle_from.elapsed();
    let records = emu.requests();
    let gets = records.iter().filter(|r| !r.watch).count();
    let per_min = records.len() as f64 * 60.0 / idle_took.as_secs_f64();
    row(
        &section,
        &format!(
            "API requests per minute while idle ({} s): all / lists+gets",
            idle.as_secs()
        ),
        &format!("{per_min:.1} / {gets}"),
        "0 lists/gets",
        verdict(gets == 0),
    );

    // 3. Restart.
    say("fleet: emulator restart");
    while events.try_recv().is_ok() {}
    emu.clear_requests();
    let restarted = Instant::now();
    emu.restart();
    emu.set_down(true);
    let m = updates + 1;
    apply(m);
    std::thread::sleep(DOWN);
    emu.set_down(false);
    let arrived = collect(&events, &dirs, &marker(m), Duration::from_secs(90));
    let converged = arrived.values().max().map(|t| *t - restarted);
    let records = emu.requests();
    let mut first: HashMap<String, Instant> = HashMap::new();
    for r in &records {
        if let Some(t) = &r.token {
            first.entry(t.clone()).or_insert(r.at);
        }
    }
    let mut times: Vec<Instant> = first.values().copied().collect();
    times.sort();
    let mut most = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= WINDOW {
            lo += 1;
        }
        most = most.max(hi - lo + 1);
    }
    let spread = match (times.first(), times.last()) {
        (Some(a), Some(b)) => *b - *a,
        _ => Duration::ZERO,
    };
    row(
        &section,
        &format!(
            "restart ({} s down): most reconnections in any 100 ms window, of {} (spread over)",
            DOWN.as_secs(),
            times.len()
        ),
        &format!("{most} ({:.1} s)", spread.as_secs_f64()),
        &format!("≤ {} (a quarter)", n / 4),
        verdict(times.len() == n && most <= n / 4),
    );
    let conv_ok = arrived.len() == n && converged.is_some_and(|c| c <= Duration::from_secs(60));
    row(
        &section,
        &format!(
            "restart: all converged (the change made while down written by {} of {n}), requests",
            arrived.len()
        ),
        &format!(
            "{} s, {} requests",
            converged.map_or("-".into(), |c| format!("{:.2}", c.as_secs_f64())),
            records.len()
        ),
        "≤ 60 s",
        verdict(conv_ok),
    );
    row(
        &section,
        "VmRSS per loader after the updates, median / max",
        &percentiles(&mut rss, &[0.5, 1.0], mib),
        "",
        "",
    );
    drop(loaders);
    emu.stop();
}

/// Collects, per directory, the first `IN_MOVED_TO` of the key after which the file starts
/// with `mark`, until every directory has one or `timeout` passes.
fn collect(
    events: &Receiver<Seen>,
    dirs: &[PathBuf],
    mark: &str,
    timeout: Duration,
) -> HashMap<usize, Instant> {
    let deadline = Instant::now() + timeout;
    let mut arrived = HashMap::new();
    while arrived.len() < dirs.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(seen) = events.recv_timeout(left) else {
            break;
        };
        if seen.name != KEY || arrived.contains_key(&seen.tag) {
            continue;
        }
        if first_line(&dirs[seen.tag].join(KEY)) == mark {
            arrived.insert(seen.tag, seen.at);
        }
    }
    arrived
}
