//! Benchmark: the loader's memory as a sidecar (`-watch`): VmRSS after an idle period
//! watching 3 ConfigMaps (a typical Envoy set, lds/cds/rds), then the peak (VmHWM) while
//! one of them grows to 1 MiB and is updated at that size a few times (so that a 1 MiB old
//! version and a 1 MiB new one meet), against the in-process API emulator over TLS.
//!
//! Environment: `IDLE_SECS` (default 60; 5 with `BENCH_QUICK=1`), `LOADER_BIN`.

#[path = "common.rs"]
mod common;
#[path = "../emulator/mod.rs"]
mod emulator;

use common::*;
use emulator::{Emulator, Options};
use std::collections::BTreeMap;
use std::time::Duration;

const BIG_UPDATES: u64 = 5;

fn main() {
    let idle = Duration::from_secs(env_usize("IDLE_SECS", if quick() { 5 } else { 60 }) as u64);
    let tmp = TempDir::new("bench-mem");
    let emu = Emulator::start(Options {
        tokens: vec![TOKEN.into()],
        ..Options::default()
    });
    let objects = [
        ("envoy-lds", "lds.yaml", 2048),
        ("envoy-cds", "cds.yaml", 4096),
        ("envoy-rds", "rds.yaml", 2048),
    ];
    for (name, key, size) in objects {
        let mut m = BTreeMap::new();
        m.insert(key.to_string(), envoy_yaml(size, 0));
        emu.apply_full(NS, name, m, BTreeMap::new());
    }
    let out = tmp.join("out");
    let events = moves_into(&out);

    let token = token_file(&tmp, "token", TOKEN);
    let names: Vec<&str> = objects.iter().map(|(name, _, _)| *name).collect();
    let args = api_args(&emu.url(), &token)
        .configmaps(&names)
        .output(&out)
        .flags(&["-watch"]);
    let loader = Loader::start(&tmp, &args);
    let ready = wait_until(Duration::from_secs(30), || {
        objects
            .iter()
            .all(|(_, key, _)| first_line(&out.join(key)) == marker(0))
    }) && emu.wait_for(|e| e.open_watches() == 3, Duration::from_secs(10));
    if !ready {
        fail(&format!("the loader did not start: {}", loader.log()));
    }

    say(&format!("memory: idle for {} s", idle.as_secs()));
    std::thread::sleep(idle);
    let (idle_rss, idle_hwm) = rss_kib(loader.pid());

    say("memory: 1 MiB updates");
    for n in 1..=BIG_UPDATES {
        let mut m = BTreeMap::new();
        m.insert("cds.yaml".to_string(), envoy_yaml(1024 * 1024 - 8, n));
        emu.apply_full(NS, "envoy-cds", m, BTreeMap::new());
        if wait_file(
            &events,
            &out,
            0,
            "cds.yaml",
            &marker(n),
            Duration::from_secs(30),
        )
        .is_none()
        {
            fail(&format!(
                "the 1 MiB update was not written: {}",
                loader.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (after_rss, peak) = rss_kib(loader.pid());
    drop(loader);
    emu.stop();

    row(
        "Memory (-watch, 3 ConfigMaps)",
        &format!("VmRSS after {} s idle (VmHWM until then)", idle.as_secs()),
        &format!("{} ({})", mib(idle_rss), mib(idle_hwm)),
        "≤ 2 MiB",
        verdict(idle_rss <= 2048),
    );
    row(
        "Memory (-watch, 3 ConfigMaps)",
        &format!("peak RSS (VmHWM) over {BIG_UPDATES} updates of one to 1 MiB (VmRSS after)"),
        &format!("{} ({})", mib(peak), mib(after_rss)),
        "≤ 8 MiB",
        verdict(peak <= 8192),
    );
}
