//! Benchmark: the writer's critical path against the naive floor, paired.
//!
//! The loader's path of one update, from the watch event's line fully read (in memory) to
//! the key visible: the event decoded (`kube::decode_event`), then written by the
//! `snapshot::Writer` into a snapshot of three keys, up to the `IN_MOVED_TO` of the key's
//! link. The floor: the same bytes written the naive way into the same directory's file
//! system, `open`, `write`, `close`, `rename` into place, up to its `IN_MOVED_TO`. Each
//! update is measured both ways, the order alternating, so drift and position cancel; both
//! are stamped by the same inotify reader thread. Sizes 1 KiB and 100 KiB; the directory in
//! `TMPDIR` (usually a disk file system) and in /dev/shm when that is a tmpfs elsewhere.
//!
//! With `strace` on the machine (scripts/bench.sh installs it), one more update of each
//! runs under `strace -f` between two marker syscalls, and the syscalls from the marker to
//! the rename that makes the key visible are counted: the loader's path against the floor's
//! four.
//!
//! Environment: `UPDATES` (default 400; 40 with `BENCH_QUICK=1`). `--syscalls DIR` is the
//! mode that runs under strace (one update each way in DIR, nothing measured).

#[path = "common.rs"]
mod common;

use common::*;
use envoy_xds_configmap_loader::config::{Kind, ObjectRef};
use envoy_xds_configmap_loader::kube::{decode_event, Event};
use envoy_xds_configmap_loader::snapshot::{Files, Writer};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "cds.yaml";
const NAIVE: &str = "naive.yaml";
const WARMUP: u64 = 20;
/// The budget at 1 KiB: the loader's p50 within this of the floor's.
const P50_BUDGET: Duration = Duration::from_micros(60);
/// The budget at 1 KiB: syscalls on the loader's path over the floor's.
const SYSCALLS_OVER_FLOOR: usize = 2;
/// Markers for strace: a stat of these names brackets each measured update.
const MARK_LOADER: &str = "/nonexistent/critical-path-loader";
const MARK_NAIVE: &str = "/nonexistent/critical-path-naive";

fn object() -> ObjectRef {
    ObjectRef {
        kind: Kind::ConfigMap,
        namespace: NS.into(),
        name: "critical".into(),
    }
}

/// A MODIFIED watch event of the ConfigMap with its three keys, `cds.yaml` being `size`
/// bytes with update `n`'s marker, as the API server sends it (one JSON line).
fn event_line(size: usize, n: u64) -> Vec<u8> {
    let data = serde_json::json!({
        KEY: envoy_yaml(size, n),
        "lds.yaml": "version_info: \"1\"\nresources: []\n",
        "rds.yaml": "version_info: \"1\"\nresources: []\n",
    });
    let event = serde_json::json!({
        "type": "MODIFIED",
        "object": {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                "name": "critical",
                "namespace": NS,
                "resourceVersion": (1000 + n).to_string(),
                "uid": "6b1f7f43-3d6c-4c36-9b52-7d1c5b0e1a01",
                "creationTimestamp": "2026-12-01T00:00:00Z",
            },
            "data": data,
        },
    });
    let mut line = serde_json::to_vec(&event).unwrap();
    line.push(b'\n');
    line
}

const RECORD: &[u8] = b"configmap bench/critical\tcds.yaml\tlds.yaml\trds.yaml\n";

/// The loader's path: decode the line, write the snapshot.
fn loader_update(writer: &mut Writer, line: &[u8]) {
    let files: Files = match decode_event(line.strip_suffix(b"\n").unwrap_or(line), &object()) {
        Ok(Event::Upsert(o)) => o.files.unwrap_or_else(|r| fail(&format!("refused: {r:?}"))),
        other => fail(&format!("not an update: {other:?}")),
    };
    writer
        .write_recorded(Arc::new(files), RECORD)
        .unwrap_or_else(|e| fail(&format!("write: {e}")));
}

/// The floor: the same bytes, open + write + close + rename into place.
fn naive_update(dir: &Path, bytes: &[u8]) {
    let tmp = dir.join(".naive.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap_or_else(|e| fail(&format!("create: {e}")));
    f.write_all(bytes)
        .unwrap_or_else(|e| fail(&format!("write: {e}")));
    drop(f);
    std::fs::rename(&tmp, dir.join(NAIVE)).unwrap_or_else(|e| fail(&format!("rename: {e}")));
}

fn writer_in(out: &Path) -> Writer {
    let mut w = Writer::new(out);
    w.lock().unwrap_or_else(|e| fail(&format!("lock: {e}")));
    w.sweep().unwrap_or_else(|e| fail(&format!("sweep: {e}")));
    w
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir] = args.as_slice() {
        if mode == "--syscalls" {
            return under_strace(Path::new(dir));
        }
    }
    let updates = env_usize("UPDATES", if quick() { 40 } else { 400 }) as u64;
    let mut places = vec![std::env::temp_dir()];
    let shm = PathBuf::from("/dev/shm");
    if fs_type(&shm) == "tmpfs" && fs_type(&places[0]) != "tmpfs" {
        places.push(shm);
    }
    for (label, size) in [("1 KiB", 1024), ("100 KiB", 100 * 1024)] {
        for place in &places {
            paired(label, size, updates, place);
        }
    }
    syscalls();
}

/// The time from `t0` to the `IN_MOVED_TO` of `name` (tag `tag`) whose file starts with
/// `mark`.
fn visible(events: &Receiver<Seen>, dir: &Path, tag: usize, name: &str, mark: &str) -> Instant {
    wait_file(events, dir, tag, name, mark, Duration::from_secs(10))
        .unwrap_or_else(|| fail(&format!("{name} never became visible")))
}

fn paired(label: &str, size: usize, updates: u64, place: &Path) {
    let where_ = format!("{} ({})", place.display(), fs_type(place));
    say(&format!(
        "critical path {label}: {updates} updates each way, in {where_}"
    ));
    let tmp = TempDir::new_in(place, "bench-critical");
    let (out, naive) = (tmp.join("out"), tmp.join("naive"));
    for d in [&out, &naive] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| fail(&format!("{e}")));
    }
    let mut inotify = Inotify::new();
    inotify.watch(&out, IN_MOVED_TO, 0);
    inotify.watch(&naive, IN_MOVED_TO, 1);
    let events = inotify.spawn();
    let mut writer = writer_in(&out);
    loader_update(&mut writer, &event_line(size, 0));
    let (mut ours, mut floor, mut apart) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=WARMUP + updates {
        let line = event_line(size, n);
        let bytes = envoy_yaml(size, n);
        let mark = marker(n);
        let mut one = |loader: bool| {
            let t0 = Instant::now();
            if loader {
                loader_update(&mut writer, &line);
                visible(&events, &out, 0, KEY, &mark) - t0
            } else {
                naive_update(&naive, bytes.as_bytes());
                visible(&events, &naive, 1, NAIVE, &mark) - t0
            }
        };
        let (a, b) = if n % 2 == 0 {
            let a = one(true);
            (a, one(false))
        } else {
            let b = one(false);
            (one(true), b)
        };
        if n > WARMUP {
            ours.push(a);
            floor.push(b);
            apart.push(a.as_nanos() as i64 - b.as_nanos() as i64);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let section = format!("Critical path, {label}, on {where_}");
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let p50_ours = percentile(&mut ours, 0.5);
    let p50_floor = percentile(&mut floor, 0.5);
    row(
        &section,
        &format!("event line read → key visible (decode + write), p50 / p99 of {updates}"),
        &percentiles(&mut ours, &[0.5, 0.99], us),
        "",
        "",
    );
    row(
        &section,
        "the floor: open + write + close + rename of the same bytes, p50 / p99",
        &percentiles(&mut floor, &[0.5, 0.99], us),
        "",
        "",
    );
    let over = p50_ours.saturating_sub(p50_floor);
    let (budget, result) = if size == 1024 {
        (
            format!("p50 ≤ floor + {}", us(P50_BUDGET)),
            verdict(over <= P50_BUDGET).to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    row(
        &section,
        "loader − floor, p50 of the two; p50 / p99 of the paired differences",
        &format!(
            "{}; {}",
            us(over),
            percentiles(&mut apart, &[0.5, 0.99], |ns| format!(
                "{:.0} µs",
                ns as f64 / 1e3
            ))
        ),
        &budget,
        &result,
    );
}

/// The syscalls of one update each way, counted from strace's record of the
/// `--syscalls` mode.
fn syscalls() {
    if Command::new("strace").arg("-V").output().is_err() {
        say("critical path: no strace on this machine, syscalls not counted");
        return;
    }
    let tmp = TempDir::new("bench-critical-strace");
    let log = tmp.join("strace.log");
    let me = std::env::current_exe().unwrap_or_else(|e| fail(&format!("{e}")));
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg(&me)
        .arg("--syscalls")
        .arg(tmp.path())
        .status()
        .unwrap_or_else(|e| fail(&format!("strace: {e}")));
    if !status.success() {
        fail(&format!("strace {}: {status}", me.display()));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let count = |mark: &str, visible: &str| {
        let calls: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains(mark))
            .skip(1)
            .collect();
        let end = calls
            .iter()
            .position(|l| l.contains("rename") && l.contains(visible))
            .unwrap_or_else(|| fail(&format!("no rename onto {visible} after {mark}:\n{text}")));
        calls[..=end].to_vec()
    };
    let ours = count(MARK_LOADER, &format!("/out/{KEY}\""));
    let floor = count(MARK_NAIVE, &format!("/naive/{NAIVE}\""));
    let names = |calls: &[&str]| {
        calls
            .iter()
            .map(|l| strace_call(l).map_or(*l, |(_, name)| name).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let over = ours.len().saturating_sub(floor.len());
    row(
        "Critical path, 1 KiB, syscalls (strace)",
        &format!(
            "event line read → key visible: {} syscalls ({}); the floor: {} ({})",
            ours.len(),
            names(&ours),
            floor.len(),
            names(&floor)
        ),
        &format!("{} over the floor", over),
        &format!("≤ floor + {SYSCALLS_OVER_FLOOR}"),
        verdict(over <= SYSCALLS_OVER_FLOOR),
    );
}

/// Under strace: a snapshot written once, then one update each way, each after its marker.
fn under_strace(dir: &Path) {
    let (out, naive) = (dir.join("out"), dir.join("naive"));
    for d in [&out, &naive] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| fail(&format!("{e}")));
    }
    let mut writer = writer_in(&out);
    loader_update(&mut writer, &event_line(1024, 0));
    loader_update(&mut writer, &event_line(1024, 1));
    let (line, bytes) = (event_line(1024, 2), envoy_yaml(1024, 2));
    naive_update(&naive, bytes.as_bytes());
    let _ = std::fs::metadata(MARK_LOADER);
    loader_update(&mut writer, &line);
    let _ = std::fs::metadata(MARK_NAIVE);
    naive_update(&naive, bytes.as_bytes());
}
