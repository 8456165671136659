//! Benchmark: the loader when ConfigMap updates come seconds apart, as real edits do: CPU
//! per update, latency and peak RSS with every update arriving after a quiet spell, paired
//! A/B. A and B are two loader builds (`bench-spaced A B`); scripts/bench.sh runs the
//! shipped binary as both, so the difference between the two columns is the noise floor of
//! the figures (give `BENCH_SPACED_B=path` to compare another build against it). This is
//! how an allocator cache of freed blocks was judged and dropped: with updates 5 s apart it
//! saved no CPU (1 KiB and 100 KiB 1.00×, 1 MiB 1.11× slower with it) and no peak RSS.
//!
//! For 1 KiB, 100 KiB and 1 MiB ConfigMaps, against one in-process API emulator over TLS on
//! loopback per size: both loaders run at once, fresh, each following its own ConfigMap into
//! its own output directory. Their updates alternate, one loader's half a spacing after the
//! other's (which goes first swaps from size to size), so each gets one update every
//! `SPACING_MS` and never shares the CPU with the other's work. After one warm-up update:
//! - CPU per update: CPU time of all the loader's threads (user + system, from each
//!   thread's schedstat, in ns) from just before one of its updates to just before its next;
//!   the median of `UPDATES` such windows.
//! - Latency: update sent → `IN_MOVED_TO` of the key in its output directory, median.
//! - Peak RSS: VmHWM at the end (the start-up list at that size included), VmRSS then.
//!
//! Arguments: the two loader binaries, `A B`; else `$LOADER_A` (default `$LOADER_BIN`, else
//! the release build) and `$LOADER_B` (default: A again). Environment: `UPDATES` (default
//! 12; 2 with `BENCH_QUICK=1`), `SPACING_MS` (default 5000; 2500 with `BENCH_QUICK=1`),
//! `SIZES` (a comma list of `1kib`, `100kib`, `1mib`; default all).

#[path = "common.rs"]
mod common;
#[path = "../emulator/mod.rs"]
mod emulator;

use common::*;
use emulator::{Emulator, Options};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const KEY: &str = "cds.yaml";
const SIDES: [&str; 2] = ["a", "b"];

fn main() {
    let updates = env_usize("UPDATES", if quick() { 2 } else { 12 }).max(1);
    let spacing =
        Duration::from_millis(env_usize("SPACING_MS", if quick() { 2500 } else { 5000 }) as u64);
    let bins = binaries();
    for (side, bin) in SIDES.iter().zip(&bins) {
        if !bin.is_file() {
            fail(&format!("loader {side}: no file {}", bin.display()));
        }
    }
    let sizes = [
        ("1 KiB", 1024),
        ("100 KiB", 100 * 1024),
        ("1 MiB", 1024 * 1024 - KEY.len()),
    ];
    let only = std::env::var("SIZES").unwrap_or_default();
    for (i, (label, bytes)) in sizes.into_iter().enumerate() {
        let tag = label.replace(' ', "").to_lowercase();
        if !only.is_empty() && !only.split(',').any(|s| s.trim().to_lowercase() == tag) {
            continue;
        }
        let first = i % 2;
        let r = run(&bins, label, bytes, updates, spacing, first);
        let section = format!("Updates {} s apart, {label}", spacing.as_secs_f64());
        row(
            &section,
            &format!("loader CPU per update (all threads, schedstat), median of {updates}: A / B"),
            &format!("{} / {}", ms(r[0].cpu), ms(r[1].cpu)),
            "",
            "",
        );
        row(
            &section,
            "update sent → file visible (inotify), median: A / B",
            &format!("{} / {}", ms(r[0].latency), ms(r[1].latency)),
            "",
            "",
        );
        row(
            &section,
            "peak RSS (VmHWM) of a fresh loader, VmRSS after: A / B",
            &format!(
                "{} ({}) / {} ({})",
                mib(r[0].peak_kib),
                mib(r[0].rss_kib),
                mib(r[1].peak_kib),
                mib(r[1].rss_kib)
            ),
            "",
            "",
        );
    }
}

/// The two binaries, A and B.
fn binaries() -> [PathBuf; 2] {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if let [a, b] = &args[..] {
        return [a.clone(), b.clone()];
    }
    if !args.is_empty() {
        fail("usage: bench-spaced [A B] (loader binaries)");
    }
    let a = std::env::var_os("LOADER_A").map_or_else(loader_bin, PathBuf::from);
    let b = std::env::var_os("LOADER_B").map_or_else(|| a.clone(), PathBuf::from);
    [a, b]
}

/// What one loader showed at one size.
struct Figures {
    cpu: Duration,
    latency: Duration,
    peak_kib: u64,
    rss_kib: u64,
}

/// Both loaders at one size; `first` is the index of the one whose updates lead.
fn run(
    bins: &[PathBuf; 2],
    label: &str,
    bytes: usize,
    updates: usize,
    spacing: Duration,
    first: usize,
) -> [Figures; 2] {
    say(&format!(
        "spaced: {label}, {updates} updates {} ms apart per loader",
        spacing.as_millis()
    ));
    let tmp = TempDir::new("spaced");
    let emu = Emulator::start(Options {
        tokens: vec![TOKEN.into()],
        ..Options::default()
    });
    let token = token_file(&tmp, "token", TOKEN);
    let mut inotify = Inotify::new();
    let mut outs = Vec::new();
    let mut loaders = Vec::new();
    for (tag, side) in SIDES.iter().enumerate() {
        let name = format!("spaced-{side}");
        apply(&emu, &name, bytes, 0);
        let out = tmp.join(&format!("out-{side}"));
        std::fs::create_dir_all(&out).unwrap_or_else(|e| fail(&e.to_string()));
        inotify.watch(&out, IN_MOVED_TO, tag);
        let args = api_args(&emu.url(), &token)
            .configmap(&name)
            .output(&out)
            .flags(&["-watch"]);
        loaders.push(Loader::start_bin(&bins[tag], &tmp, &args, &[]));
        outs.push(out);
    }
    let events = inotify.spawn();
    let ready = wait_until(Duration::from_secs(30), || {
        outs.iter().all(|o| first_line(&o.join(KEY)) == marker(0))
    }) && emu.wait_for(|e| e.open_watches() == 2, Duration::from_secs(10));
    if !ready {
        fail(&format!(
            "the loaders did not start: {} / {}",
            loaders[0].log(),
            loaders[1].log()
        ));
    }

    // Tick k of loader i: sample its CPU (k ≥ 1), then send its update k (k = 0: warm-up;
    // none after the last), at `start + k * spacing`, the other loader half a spacing later.
    let mut cpu = [vec![], vec![]];
    let mut latency = [vec![], vec![]];
    let mut tasks = [vec![], vec![]];
    let order = [first, 1 - first];
    let start_at = Instant::now() + spacing;
    for k in 0..=updates + 1 {
        for (slot, &i) in order.iter().enumerate() {
            let due = start_at + spacing * k as u32 + spacing / 2 * slot as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let pid = loaders[i].pid();
            if k >= 1 {
                cpu[i].push(cpu_ns(pid));
                tasks[i].push(task_count(pid));
            }
            if k > updates {
                continue;
            }
            let n = k as u64 + 1;
            let sent = Instant::now();
            apply(&emu, &format!("spaced-{}", SIDES[i]), bytes, n);
            let Some(seen) = wait_file(&events, &outs[i], i, KEY, &marker(n), spacing / 2) else {
                fail(&format!(
                    "{label} update {n} was not written by loader {}: {}",
                    SIDES[i],
                    loaders[i].log()
                ));
            };
            if k >= 1 {
                latency[i].push(seen.duration_since(sent));
            }
        }
    }
    let figures = std::array::from_fn(|i| {
        let pid = loaders[i].pid();
        let (rss_kib, peak_kib) = rss_kib(pid);
        if tasks[i].first() != tasks[i].last() {
            say(&format!(
                "spaced: warning: loader {} went from {:?} to {:?} threads; CPU of ended threads is not counted",
                SIDES[i],
                tasks[i].first(),
                tasks[i].last()
            ));
        }
        let mut per: Vec<u64> = cpu[i].windows(2).map(|w| w[1] - w[0]).collect();
        let total: u64 = per.iter().sum();
        say(&format!(
            "spaced: {label}, loader {}: CPU per update {:?} µs (total {} µs)",
            SIDES[i],
            per.iter().map(|ns| ns / 1000).collect::<Vec<_>>(),
            total / 1000
        ));
        Figures {
            cpu: Duration::from_nanos(percentile(&mut per, 0.5)),
            latency: percentile(&mut latency[i], 0.5),
            peak_kib,
            rss_kib,
        }
    });
    drop(loaders);
    drop(events);
    emu.stop();
    figures
}

/// Replaces ConfigMap `name` with `bytes` of Envoy text carrying update `n`'s marker.
fn apply(emu: &Emulator, name: &str, bytes: usize, n: u64) {
    let mut m = BTreeMap::new();
    m.insert(KEY.to_string(), envoy_yaml(bytes, n));
    emu.apply_full(NS, name, m, BTreeMap::new());
}

/// How many threads a process has.
fn task_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}
