//! Benchmark: JSON extraction throughput on ConfigMap-shaped watch event lines, ours against
//! serde_json on the same lines in the same run.
//!
//! The lines are what an API server sends for Envoy ConfigMaps: Go's encoding/json
//! escaping (`\n`, `\"`, `\\`, `\u003c`/`\u003e`/`\u0026` for `<`, `>`, `&`, raw UTF-8),
//! metadata with managedFields, and for ConfigMaps small enough for `kubectl apply` the
//! `last-applied-configuration` annotation (the data JSON-encoded twice). Sizes from 1 KiB
//! to 1 MiB. Ours is the loader's whole extraction (`kube::decode_event`: parse, find the
//! object, copy each key's text out as a file); `json::parse` alone is shown too; serde_json
//! decodes each line into a `serde_json::Value`. Each is timed over the whole corpus in
//! interleaved rounds; the median round counts. MB = 10^6 bytes.
//!
//! Environment: `ROUNDS` (default 9; 3 with `BENCH_QUICK=1`).

#[path = "common.rs"]
mod common;

use common::*;
use envoy_xds_configmap_loader::json;
use envoy_xds_configmap_loader::kube::{self, Event, Kind, ObjectRef};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Appends `s` as a JSON string the way Go's encoding/json writes it.
fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One MODIFIED event line for ConfigMap `envoy-xds` with `data`.
fn event_line(rv: u64, data: &[(&str, String)], last_applied: bool) -> Vec<u8> {
    let mut data_json = String::from("{");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            data_json.push(',');
        }
        go_quote(k, &mut data_json);
        data_json.push(':');
        go_quote(v, &mut data_json);
    }
    data_json.push('}');
    let fields: Vec<String> = data
        .iter()
        .map(|(k, _)| format!("\"f:{k}\":{{}}"))
        .collect();
    let mut annotations = String::new();
    let mut annotation_fields = String::new();
    if last_applied {
        let applied = format!(
            "{{\"apiVersion\":\"v1\",\"data\":{data_json},\"kind\":\"ConfigMap\",\"metadata\":{{\"annotations\":{{}},\"labels\":{{\"app\":\"envoy\"}},\"name\":\"envoy-xds\",\"namespace\":\"default\"}}}}\n"
        );
        let mut quoted = String::new();
        go_quote(&applied, &mut quoted);
        annotations = format!(
            ",\"annotations\":{{\"kubectl.kubernetes.io/last-applied-configuration\":{quoted}}}"
        );
        annotation_fields = ",\"f:metadata\":{\"f:annotations\":{\".\":{},\"f:kubectl.kubernetes.io/last-applied-configuration\":{}},\"f:labels\":{\".\":{},\"f:app\":{}}}".into();
    }
    format!(
        "{{\"type\":\"MODIFIED\",\"object\":{{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"envoy-xds\",\"namespace\":\"default\",\"uid\":\"6f1c2d0e-8a4b-4c1e-9f3a-2b7d5e6c8a90\",\"resourceVersion\":\"{rv}\",\"creationTimestamp\":\"2026-11-25T13:00:00Z\",\"labels\":{{\"app\":\"envoy\"}}{annotations},\"managedFields\":[{{\"manager\":\"kubectl-client-side-apply\",\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":\"2026-11-25T13:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{{\"f:data\":{{\".\":{{}},{}}}{annotation_fields}}}}}]}},\"data\":{data_json}}}}}\n",
        fields.join(",")
    )
    .into_bytes()
}

fn corpus() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut rv = 1000;
    // (count, bytes of data per key, last-applied annotation)
    let shapes: [(usize, usize, bool); 6] = [
        (16, 400, true),
        (16, 400, false),
        (8, 5 * 1024, true),
        (8, 33 * 1024, false),
        (4, 60 * 1024, true),
        (2, 500 * 1024, false),
    ];
    for (count, per_key, last_applied) in shapes {
        for _ in 0..count {
            rv += 1;
            let data = [
                ("cds.yaml", envoy_yaml(per_key, rv)),
                ("lds.yaml", envoy_yaml(per_key / 2 + 64, rv)),
                ("rds.yaml", envoy_yaml(per_key / 2 + 64, rv)),
            ];
            lines.push(event_line(rv, &data, last_applied));
        }
    }
    lines
}

fn main() {
    let rounds = env_usize("ROUNDS", if quick() { 3 } else { 9 });
    let lines = corpus();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let escapes: usize = lines
        .iter()
        .map(|l| l.iter().filter(|&&b| b == b'\\').count())
        .sum();
    let largest = lines.iter().map(Vec::len).max().unwrap_or(0);
    say(&format!(
        "json: {} lines, {bytes} bytes, {escapes} backslashes, largest {largest} bytes",
        lines.len()
    ));
    let obj = ObjectRef {
        kind: Kind::ConfigMap,
        namespace: "default".into(),
        name: "envoy-xds".into(),
    };

    // Both must read the same data before either is timed.
    for line in &lines {
        let ours = match kube::decode_event(line, &obj) {
            Ok(Event::Upsert(o)) => o.files.unwrap_or_else(|e| fail(&e.why)),
            other => fail(&format!("decode_event: {other:?}")),
        };
        let theirs: serde_json::Value =
            serde_json::from_slice(line).unwrap_or_else(|e| fail(&e.to_string()));
        let data = theirs["object"]["data"]
            .as_object()
            .unwrap_or_else(|| fail("serde_json: no data"));
        let same = data.len() == ours.len()
            && data
                .iter()
                .all(|(k, v)| ours.get(k).map(|b| b.as_slice()) == v.as_str().map(str::as_bytes));
        if !same {
            fail("ours and serde_json disagree on a line");
        }
    }

    type Decode<'a> = (&'a str, Box<dyn Fn(&[u8]) + 'a>);
    let impls: [Decode; 3] = [
        (
            "ours",
            Box::new(|line: &[u8]| {
                black_box(kube::decode_event(black_box(line), &obj).ok());
            }),
        ),
        (
            "parse",
            Box::new(|line: &[u8]| {
                black_box(json::parse(black_box(line)).ok());
            }),
        ),
        (
            "serde",
            Box::new(|line: &[u8]| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(line)).ok());
            }),
        ),
    ];
    let pass = |f: &dyn Fn(&[u8]), reps: usize| {
        let t = Instant::now();
        for _ in 0..reps {
            for line in &lines {
                f(line);
            }
        }
        t.elapsed()
    };
    // Enough passes for about 150 ms per round.
    let one = pass(&*impls[2].1, 1).max(Duration::from_micros(1));
    let reps = ((0.15 / one.as_secs_f64()).ceil() as usize).max(1);
    let mut rates: Vec<Vec<u64>> = vec![Vec::new(); impls.len()];
    for round in 0..rounds {
        for k in 0..impls.len() {
            let i = (k + round) % impls.len();
            let took = pass(&*impls[i].1, reps);
            let mbps = (bytes * reps) as f64 / took.as_secs_f64() / 1e6;
            rates[i].push(mbps as u64);
        }
    }
    // Per round, ours against serde_json timed back to back: the ratio survives a noisy
    // machine better than either number.
    let mut ratios: Vec<u64> = rates[0]
        .iter()
        .zip(&rates[2])
        .map(|(o, s)| o * 1000 / (*s).max(1))
        .collect();
    let ratio = percentile(&mut ratios, 0.5) as f64 / 1000.0;
    let best: Vec<u64> = rates.iter_mut().map(|r| percentile(r, 1.0)).collect();
    let median: Vec<u64> = rates.iter_mut().map(|r| percentile(r, 0.5)).collect();
    let (ours, parse, serde) = (median[0], median[1], median[2]);
    let section = "JSON extraction";
    let what = format!(
        "{} watch lines, {:.1} MB, {:.1}% backslashes, 1 KiB–1 MiB",
        lines.len(),
        bytes as f64 / 1e6,
        escapes as f64 * 100.0 / bytes as f64
    );
    say(&what);
    row(
        section,
        &format!(
            "ours: watch line → files (`kube::decode_event`), median (best) of {rounds} rounds"
        ),
        &format!("{ours} MB/s ({} MB/s)", best[0]),
        "≥ 1000 MB/s",
        verdict(ours >= 1000),
    );
    row(
        section,
        "ours: `json::parse` alone",
        &format!("{parse} MB/s ({} MB/s)", best[1]),
        "",
        "",
    );
    row(
        section,
        "serde_json: line → `serde_json::Value`",
        &format!("{serde} MB/s ({} MB/s)", best[2]),
        "",
        "",
    );
    row(
        section,
        &format!("ours ÷ serde_json, median of the rounds' ratios ({what})"),
        &format!("{ratio:.2}×"),
        "> 1",
        verdict(ratio > 1.0),
    );
}
