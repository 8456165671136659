//! Benchmark: the one-shot cold start (`-onetime`, the init-container case): from just before
//! the process is spawned to its reaping, with the files written, against the in-process
//! API emulator over TLS on loopback; and its peak RSS (`ru_maxrss` from wait4).
//!
//! The ConfigMap is a typical Envoy set (lds.yaml, cds.yaml, rds.yaml, 6 KiB together);
//! every run writes into a fresh, empty directory. A second, informative measurement does
//! the same with a 1 MiB ConfigMap.
//!
//! Environment: `RUNS` (default 30; 10 with `BENCH_QUICK=1`), `LOADER_BIN`.

#[path = "common.rs"]
mod common;
#[path = "../emulator/mod.rs"]
mod emulator;

use common::*;
use emulator::{Emulator, Options};
use std::collections::BTreeMap;
use std::time::Duration;

const WARMUP: usize = 3;

fn main() {
    let runs = env_usize("RUNS", if quick() { 10 } else { 30 });
    let tmp = TempDir::new("bench-cold");
    let emu = Emulator::start(Options {
        tokens: vec![TOKEN.into()],
        ..Options::default()
    });
    let mut small = BTreeMap::new();
    small.insert("lds.yaml".to_string(), envoy_yaml(1024, 1));
    small.insert("cds.yaml".to_string(), envoy_yaml(4096, 1));
    small.insert("rds.yaml".to_string(), envoy_yaml(1024, 1));
    emu.apply_full(NS, "boot", small, BTreeMap::new());
    let mut big = BTreeMap::new();
    big.insert("cds.yaml".to_string(), envoy_yaml(1024 * 1024 - 8, 1));
    emu.apply_full(NS, "boot-1mib", big, BTreeMap::new());
    let token = token_file(&tmp, "token", TOKEN);

    let mut n = 0;
    let mut once = |name: &str, want: &[&str], traced: bool| {
        n += 1;
        let out = tmp.join(&format!("out-{n}"));
        std::fs::create_dir_all(&out).unwrap_or_else(|e| fail(&e.to_string()));
        let args = api_args(&emu.url(), &token)
            .configmap(name)
            .output(&out)
            .onetime();
        let (took, code, peak) = if traced {
            let (code, peak) = peak_rss_to_exit(&args);
            (Duration::ZERO, code, peak)
        } else {
            let (took, code) = run_to_exit(&args);
            (took, code, 0)
        };
        if code != 0 {
            fail(&format!("-onetime exited {code}"));
        }
        for key in want {
            if first_line(&out.join(key)) != marker(1) {
                fail(&format!("-onetime did not write {key}"));
            }
        }
        let _ = std::fs::remove_dir_all(&out);
        (took, peak)
    };

    say(&format!("cold start: {runs} runs"));
    let keys = ["lds.yaml", "cds.yaml", "rds.yaml"];
    for _ in 0..WARMUP {
        once("boot", &keys, false);
    }
    let mut times: Vec<Duration> = (0..runs).map(|_| once("boot", &keys, false).0).collect();
    let mut peaks: Vec<u64> = (0..5).map(|_| once("boot", &keys, true).1).collect();
    let median = percentile(&mut times, 0.5);
    let budget = Duration::from_millis(3);
    row(
        "One-shot cold start",
        &format!("start → exit, files written (6 KiB, 3 keys), median of {runs} (min / p90)"),
        &format!(
            "{} ({})",
            ms(median),
            percentiles(&mut times, &[0.0, 0.9], ms)
        ),
        "median ≤ 3 ms",
        verdict(median <= budget),
    );
    row(
        "One-shot cold start",
        "peak RSS (VmHWM at exit, 5 runs), median / max",
        &percentiles(&mut peaks, &[0.5, 1.0], mib),
        "",
        "",
    );

    let big_runs = runs.min(10);
    let mut times: Vec<Duration> = (0..big_runs)
        .map(|_| once("boot-1mib", &["cds.yaml"], false).0)
        .collect();
    let mut peaks: Vec<u64> = (0..3)
        .map(|_| once("boot-1mib", &["cds.yaml"], true).1)
        .collect();
    row(
        "One-shot cold start",
        &format!("1 MiB ConfigMap: start → exit, median of {big_runs}; peak RSS, max"),
        &format!(
            "{}; {}",
            ms(percentile(&mut times, 0.5)),
            mib(percentile(&mut peaks, 1.0))
        ),
        "",
        "",
    );
    emu.stop();
}
