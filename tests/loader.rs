//! The real loader binary against the Kubernetes API emulator: one-shot, watch, merges,
//! relists, reconnects, token rotation, crashes, hostile keys, dry-run, plain http.

#[path = "emulator/mod.rs"]
mod emulator;
mod support;

use emulator::{Emulator, Options};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(10);

fn emu() -> Emulator {
    Emulator::start(Options {
        bookmark_interval: Duration::from_millis(500),
        ..Options::default()
    })
}

/// ConfigMap `envoy` in `default`, from the emulator at `url`, written to `out`.
fn envoy_args(url: &str, token: &Path, out: &Path) -> Args {
    Args::new(url, token)
        .configmap("envoy")
        .namespace("default")
        .output(out)
}

/// `-watch` on `cms` in `default` with a short watch timeout for tests, written to `out`.
fn watch_args(url: &str, token: &Path, out: &Path, cms: &[&str]) -> Args {
    Args::new(url, token)
        .configmaps(cms)
        .namespace("default")
        .watch("3s")
        .output(out)
}

/// What a real API server judges in every request the loader made: each list and watch
/// selects one of `names` by `fieldSelector=metadata.name=…` (the README's Role allows
/// nothing else), a list is a consistent read (no resourceVersion), and a watch resumes
/// from a version, with bookmarks on and a server timeout in [D, 2D] for `-watch-timeout D`.
fn assert_requests_are_what_a_server_allows(emu: &Emulator, names: &[&str], watch_timeout_s: u64) {
    let mut seen = 0;
    for r in emu.requests() {
        if !(r.is_list() || r.watch) {
            continue;
        }
        seen += 1;
        let what = format!("{} {}?{}", r.method, r.path, r.query);
        let selected = r
            .param("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="));
        assert!(
            selected.is_some_and(|n| names.contains(&n)),
            "fieldSelector=metadata.name=one of {names:?}: {what}"
        );
        assert_ne!(r.status, 403, "forbidden: {what}");
        if !r.watch {
            assert_eq!(
                r.param("resourceVersion"),
                None,
                "a consistent list: {what}"
            );
            continue;
        }
        assert_eq!(r.param("allowWatchBookmarks"), Some("true"), "{what}");
        let rv = r.param("resourceVersion").unwrap_or("");
        assert!(
            rv.parse::<u64>().is_ok_and(|v| v > 0),
            "a watch resumes from a version, not from nothing: {what}"
        );
        let timeout: u64 = r
            .param("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        assert!(
            (watch_timeout_s..=2 * watch_timeout_s).contains(&timeout),
            "timeoutSeconds {timeout} in [{watch_timeout_s}, {}]: {what}",
            2 * watch_timeout_s
        );
    }
    assert!(seen > 0, "the loader made lists and watches");
}

#[test]
fn onetime_writes_every_key_and_exits_0() {
    let emu = emu();
    emu.apply(
        "default",
        "envoy",
        &[("lds.yaml", "listeners\n"), ("cds.yaml", "clusters\n")],
    );
    let (tmp, token, out) = workdir("onetime");
    let a = envoy_args(&emu.url(), &token, &out).onetime();
    let mut l = Loader::start(&tmp, &a);
    let status = l.wait(T).expect("exits");
    assert!(status.success(), "{status:?}\n{}", l.log());
    assert_eq!(
        read_text(&out),
        text(&[("lds.yaml", "listeners\n"), ("cds.yaml", "clusters\n")])
    );
    assert_consistent(&out);
    assert_eq!(
        std::fs::read_link(out.join("lds.yaml")).unwrap().to_str(),
        Some("..data/lds.yaml")
    );
    // one write: nothing made ready for a next one (the sidecar would only sweep it)
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..") && n != "..data" && n != "..lock")
        .collect();
    assert_eq!(names, vec![data_target(&out).unwrap()], "{names:?}");
}

#[test]
fn onetime_failures_exit_1_naming_the_object_and_cause() {
    let emu = emu();
    emu.apply("default", "envoy", &[("a", "1")]);
    let tmp = TempDir::new("onetime-fail");
    let good = write_token(&tmp, TOKEN);
    let bad = tmp.join("bad-token");
    std::fs::write(&bad, "nope").unwrap();
    let out = tmp.join("out");
    let other_ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/other-ca.pem");
    let api = || Args::new(&emu.url(), &good);
    // (a second -token-file or -ca-file counts over the first)
    let cases = [
        (
            api().configmap("missing"),
            "msg=\"not found\" object=\"configmap default/missing\"",
        ),
        (
            api()
                .configmap("envoy")
                .value("-token-file", &bad.display().to_string()),
            "401",
        ),
        (
            api().configmap("envoy").value("-ca-file", other_ca),
            "UnknownIssuer",
        ),
    ];
    for (a, want) in cases {
        let a = a.namespace("default").onetime().output(&out);
        let mut l = Loader::start(&tmp, &a);
        let status = l.wait(T).expect("exits");
        assert_eq!(status.code(), Some(1), "{want}: {}", l.log());
        let log = l.log();
        let line = log
            .lines()
            .find(|l| l.contains("level=error"))
            .unwrap_or("");
        assert!(
            line.contains(want),
            "want {want:?} in one error line:\n{log}"
        );
        assert!(line.contains("default/"), "names the object: {line}");
        assert!(
            !log.contains(TOKEN) && !log.contains("nope"),
            "no token in the log"
        );
    }
    assert!(read_snapshot(&out).is_empty());
}

#[test]
fn watch_follows_updates_adds_removes_and_skips_no_ops() {
    let emu = emu();
    emu.apply("default", "envoy", &[("a.yaml", "1"), ("b.yaml", "2")]);
    let (tmp, token, out) = workdir("watch");
    let l = Loader::start(&tmp, &watch_args(&emu.url(), &token, &out, &["envoy"]));
    assert_files_within(T, &l, &out, &[("a.yaml", "1"), ("b.yaml", "2")]);

    // changed value
    emu.apply("default", "envoy", &[("a.yaml", "1b"), ("b.yaml", "2")]);
    converges_within(T, &l, &out, &[("a.yaml", "1b"), ("b.yaml", "2")]);
    // added and removed keys
    emu.apply("default", "envoy", &[("a.yaml", "1b"), ("c.yaml", "3")]);
    converges_within(T, &l, &out, &[("a.yaml", "1b"), ("c.yaml", "3")]);
    assert!(
        std::fs::symlink_metadata(out.join("b.yaml")).is_err(),
        "dropped key is gone"
    );

    // a no-op event (new resourceVersion, same data) touches nothing
    let before = data_target(&out);
    // the log line follows the last step of a write: wait for all three writes so far
    assert!(
        wait_until(T, || l.log().matches("snapshot written").count() == 3),
        "{}",
        l.log()
    );
    let writes = 3;
    // a MODIFIED event with the same data (a label or annotation changed); events arrive
    // in order: once the next real change is on disk, the no-op was seen, and the count
    // of writes says it wrote nothing
    emu.touch("default", "envoy").expect("exists");
    emu.apply("default", "envoy", &[("a.yaml", "1c"), ("c.yaml", "3")]);
    assert_files_within(T, &l, &out, &[("a.yaml", "1c"), ("c.yaml", "3")]);
    // the files are visible a moment before the write logs its line
    wait_until(T, || l.log().matches("snapshot written").count() > writes);
    assert_eq!(
        l.log().matches("snapshot written").count(),
        writes + 1,
        "the no-op wrote nothing: {}",
        l.log()
    );

    // deleted: files kept; re-created: picked up
    emu.delete("default", "envoy");
    assert!(
        l.wait_log("deleted; keeping its last files", T),
        "{}",
        l.log()
    );
    assert_eq!(read_text(&out), text(&[("a.yaml", "1c"), ("c.yaml", "3")]));
    emu.apply("default", "envoy", &[("d.yaml", "4")]);
    converges_within(T, &l, &out, &[("d.yaml", "4")]);
    // the old version goes after the switch, before the log line of that write
    assert!(
        wait_until(T, || l.log().matches("snapshot written").count()
            == writes + 2),
        "{}",
        l.log()
    );
    assert_eq!(versions(&out).len(), 1, "old versions removed");
    assert_ne!(data_target(&out), before, "the later changes were written");
    assert_requests_are_what_a_server_allows(&emu, &["envoy"], 3);
}

#[test]
fn binary_data_is_written_byte_for_byte() {
    let emu = emu();
    let blob: Vec<u8> = (0..=255u8).chain([0, 0xff, 0x80]).collect();
    emu.apply_full(
        "default",
        "bin",
        BTreeMap::from([("text".to_string(), "héllo\n\"q\"\t\\".to_string())]),
        BTreeMap::from([("blob.bin".to_string(), blob.clone())]),
    );
    let (tmp, token, out) = workdir("binary");
    let a = Args::new(&emu.url(), &token)
        .configmap("default/bin")
        .onetime()
        .output(&out);
    let mut l = Loader::start(&tmp, &a);
    assert!(l.wait(T).unwrap().success(), "{}", l.log());
    let snap = read_snapshot(&out);
    assert_eq!(snap["blob.bin"], blob);
    assert_eq!(snap["text"], "héllo\n\"q\"\t\\".as_bytes());
}

#[test]
fn two_configmaps_merge_and_a_collision_is_refused() {
    let emu = emu();
    emu.apply("default", "one", &[("lds.yaml", "L")]);
    emu.apply("other", "two", &[("cds.yaml", "C")]);
    let (tmp, token, out) = workdir("merge");
    let l = Loader::start(
        &tmp,
        &watch_args(&emu.url(), &token, &out, &["one", "other/two"]),
    );
    assert_files_within(T, &l, &out, &[("lds.yaml", "L"), ("cds.yaml", "C")]);
    emu.apply("other", "two", &[("cds.yaml", "C2"), ("lds.yaml", "clash")]);
    assert!(
        l.wait_log("is also in configmap default/one, which had it first", T),
        "{}",
        l.log()
    );
    assert_eq!(
        read_text(&out),
        text(&[("lds.yaml", "L"), ("cds.yaml", "C")]),
        "last files stay"
    );
    emu.apply("other", "two", &[("cds.yaml", "C3")]);
    assert_files_within(T, &l, &out, &[("lds.yaml", "L"), ("cds.yaml", "C3")]);
    let refusal = l
        .log()
        .lines()
        .find(|line| line.contains("level=error") && line.contains("is also in"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        refusal.contains(" object=\"configmap other/two\"") && refusal.contains(" key=lds.yaml"),
        "the refusal names the object and the key: {refusal}"
    );
    assert_requests_are_what_a_server_allows(&emu, &["one", "two"], 3);
}

#[test]
fn relists_after_too_old_and_reconnects_after_drops() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "1")]);
    let (tmp, token, out) = workdir("relist");
    let l = Loader::start(&tmp, &watch_args(&emu.url(), &token, &out, &["envoy"]));
    assert_files_within(T, &l, &out, &[("k", "1")]);
    let lists = |e: &Emulator| {
        e.requests()
            .iter()
            .filter(|r| r.method == "GET" && !r.query.contains("watch"))
            .count()
    };
    assert!(wait_until(T, || emu.open_watches() == 1));
    let lists_before = lists(&emu);

    // ERROR 410 inside a 200 stream, after the history is gone
    emu.compact();
    emu.expire_watches();
    assert!(
        l.wait_log("too old resource version; relisting", T),
        "{}",
        l.log()
    );
    assert!(
        wait_until(T, || lists(&emu) > lists_before),
        "a relist happened"
    );
    emu.apply("default", "envoy", &[("k", "2")]);
    assert_files_within(T, &l, &out, &[("k", "2")]);

    // HTTP 410 on the next watch request
    assert!(wait_until(T, || emu.open_watches() == 1));
    let lists_before = lists(&emu);
    emu.fail_next(1, 410);
    emu.drop_watches();
    assert!(
        wait_until(T, || lists(&emu) > lists_before),
        "HTTP 410 relists: {}",
        l.log()
    );

    // dropped connection: re-watch from the last version, no missed update
    assert!(wait_until(T, || emu.open_watches() == 1));
    emu.drop_watches();
    emu.apply("default", "envoy", &[("k", "3")]);
    assert_files_within(T, &l, &out, &[("k", "3")]);

    // 500s: back off and come back
    emu.fail_next(2, 500);
    emu.drop_watches();
    emu.apply("default", "envoy", &[("k", "4")]);
    converges_within(Duration::from_secs(15), &l, &out, &[("k", "4")]);
    assert_requests_are_what_a_server_allows(&emu, &["envoy"], 3);
}

#[test]
fn watch_streams_split_or_coalesced_across_chunks() {
    for chunking in [emulator::Chunking::Split, emulator::Chunking::Coalesce] {
        let emu = Emulator::start(Options {
            chunking,
            bookmark_interval: Duration::from_millis(200),
            ..Options::default()
        });
        emu.apply("default", "envoy", &[("k", "0")]);
        let (tmp, token, out) = workdir("chunks");
        let l = Loader::start(&tmp, &watch_args(&emu.url(), &token, &out, &["envoy"]));
        assert_files_within(T, &l, &out, &[("k", "0")]);
        for i in 1..=20 {
            emu.apply(
                "default",
                "envoy",
                &[("k", &i.to_string()), ("big", &"x\n".repeat(i * 1000))],
            );
        }
        assert!(
            wait_until(T, || read_snapshot(&out).get("k").map(|v| v.as_slice())
                == Some(b"20")),
            "{:?}: {}",
            chunking,
            l.log()
        );
        assert_eq!(read_snapshot(&out)["big"].len(), 40_000);
    }
}

#[test]
fn a_new_token_is_read_after_a_401() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "1")]);
    let (tmp, token, out) = workdir("token");
    let l = Loader::start(&tmp, &watch_args(&emu.url(), &token, &out, &["envoy"]));
    assert_files_within(T, &l, &out, &[("k", "1")]);
    // the old token is revoked and the kubelet writes a new one (symlink swap, like its volumes)
    emu.set_tokens(&["rotated-token"]);
    emu.drop_watches();
    assert!(
        l.wait_log(" object=\"configmap default/envoy\" op=watch code=401 ", T),
        "{}",
        l.log()
    );
    let newfile = tmp.join("token.new");
    std::fs::write(&newfile, "rotated-token\n").unwrap();
    std::fs::rename(&newfile, &token).unwrap();
    emu.apply("default", "envoy", &[("k", "2")]);
    assert_files_within(Duration::from_secs(15), &l, &out, &[("k", "2")]);
    assert!(!l.log().contains("rotated-token") && !l.log().contains(TOKEN));
}

#[test]
fn kill_9_then_restart_converges_and_sweeps() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("kill");
    let args = watch_args(&emu.url(), &token, &out, &["envoy"]);
    let mut rng = 0x2545_f491u64;
    for round in 1..=15 {
        let mut l = Loader::start(&tmp, &args);
        // a burst of updates, and a kill at a pseudo-random moment inside it
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_after = (rng % 40) as usize;
        for i in 0..40 {
            let keys: Vec<(String, String)> = (0..(i % 5 + 1))
                .map(|k| (format!("f{k}"), format!("{round}-{i}")))
                .collect();
            let pairs: Vec<(&str, &str)> =
                keys.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            emu.apply("default", "envoy", &pairs);
            if i == kill_after {
                l.kill9();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        l.kill9();
        if data_target(&out).is_some() {
            assert_consistent_after_crash(&out);
            // every key of one update carries the same value: a mix of two updates would not
            let snap = read_text(&out);
            let values: std::collections::BTreeSet<&String> = snap.values().collect();
            assert_eq!(
                values.len(),
                1,
                "round {round}: one snapshot, not a mix: {snap:?}"
            );
        }
    }
    // a final run converges to the API server's state and leaves no leftovers
    emu.apply("default", "envoy", &[("final", "yes")]);
    let l = Loader::start(&tmp, &args);
    converges_within(T, &l, &out, &[("final", "yes")]);
    // the old version goes after the switch; the write's log line follows its last step
    assert!(l.wait_log("msg=\"snapshot written\"", T), "{}", l.log());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(versions(&out).len(), 1, "{names:?}");
    assert!(
        !names.iter().any(|n| n == "..link_tmp"),
        "no temporary link is left: {names:?}"
    );
    // what is made ready for the next write: a copy of the current version, named by
    // ..data_tmp, a spare link per key, and in place of the key the write changed (the
    // likeliest to change next) an empty file to write into
    let next = next_version(&out).expect("a next version");
    let current = data_target(&out).unwrap();
    assert_eq!(
        std::fs::read(out.join(&current).join("final")).unwrap(),
        b"yes"
    );
    assert_eq!(std::fs::read(out.join(&next).join("final")).unwrap(), b"");
    assert!(names.iter().any(|n| n == "..link.final"), "{names:?}");
    assert!(!names.iter().any(|n| n == "..blank"), "{names:?}");
    assert_requests_are_what_a_server_allows(&emu, &["envoy"], 3);
}

#[test]
fn hostile_keys_are_refused_as_a_whole_and_nothing_escapes() {
    let emu = emu();
    emu.apply("default", "envoy", &[("good", "1")]);
    let (tmp, token, out) = workdir("hostile");
    let l = Loader::start(&tmp, &watch_args(&emu.url(), &token, &out, &["envoy"]));
    assert_files_within(T, &l, &out, &[("good", "1")]);
    let long = "k".repeat(300);
    let hostile = [
        r#"{"data":{"good":"2","../escaped-key":"evil"}}"#.to_string(),
        r#"{"data":{"good":"2","..data":"evil"}}"#.to_string(),
        r#"{"data":{"good":"2","a/b":"evil"}}"#.to_string(),
        r#"{"data":{"good":"2",".":"evil"}}"#.to_string(),
        r#"{"data":{"good":"2","":"evil"}}"#.to_string(),
        format!(r#"{{"data":{{"good":"2","{long}":"evil"}}}}"#),
        r#"{"data":{"good":"2","good":"evil"}}"#.to_string(),
        r#"{"data":{"good":"2","/etc/x":"evil"}}"#.to_string(),
    ];
    let keys = [
        "../escaped-key",
        "..data",
        "a/b",
        ".",
        "",
        long.as_str(),
        "good",
        "/etc/x",
    ];
    for (i, raw) in hostile.iter().enumerate() {
        let errors = l.log().matches("level=error").count();
        emu.apply_raw("default", "envoy", &format!(r#"{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"envoy","namespace":"default"}},{}"#, &raw[1..]));
        assert!(
            wait_until(T, || l.log().matches("level=error").count() > errors),
            "case {i}: {}",
            l.log()
        );
        assert_eq!(
            read_text(&out),
            text(&[("good", "1")]),
            "case {i}: last files stay"
        );
        assert_consistent(&out);
        let log = l.log();
        let line = log
            .lines()
            .filter(|line| line.contains("level=error"))
            .nth(errors)
            .unwrap_or("");
        let key = match keys[i] {
            "" => String::from("\"\""),
            k => k.to_string(),
        };
        assert!(
            line.contains(" object=\"configmap default/envoy\"")
                && line.contains(&format!(" key={key}")),
            "case {i}: the error names the object and the key {key}: {line}"
        );
    }
    let log = l.log();
    assert!(
        log.contains("msg=\"refused; keeping the last files\" object=\"configmap default/envoy\""),
        "{log}"
    );
    // "../escaped-key" would land beside the output directory, or one level further up
    assert!(
        !tmp.join("escaped-key").exists()
            && !tmp.path().parent().unwrap().join("escaped-key").exists()
    );
    // the next good update is applied
    emu.apply("default", "envoy", &[("good", "3")]);
    assert_files_within(T, &l, &out, &[("good", "3")]);
}

#[test]
fn dry_run_prints_and_touches_nothing() {
    let emu = emu();
    emu.apply(
        "default",
        "envoy",
        &[("lds.yaml", "listeners: 1\n"), ("x", "no newline")],
    );
    let (tmp, token, out) = workdir("dry");
    let a = envoy_args(&emu.url(), &token, &out)
        .onetime()
        .flags(&["-dry-run"]);
    let mut l = Loader::start(&tmp, &a);
    assert!(l.wait(T).unwrap().success(), "{}", l.log());
    assert_eq!(
        l.stdout(),
        "==> lds.yaml (13 bytes, configmap default/envoy) <==\nlisteners: 1\n==> x (10 bytes, configmap default/envoy) <==\nno newline\n"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn plain_http_like_kubectl_proxy() {
    let emu = Emulator::start(Options {
        tls: false,
        ..Options::default()
    });
    emu.apply("default", "envoy", &[("k", "v")]);
    let (tmp, token, out) = workdir("http");
    assert!(emu.url().starts_with("http://"));
    let a = envoy_args(&emu.url(), &token, &out).onetime();
    let mut l = Loader::start(&tmp, &a);
    assert!(l.wait(T).unwrap().success(), "{}", l.log());
    assert_eq!(read_text(&out), text(&[("k", "v")]));
}

#[test]
fn sigterm_exits_0_promptly() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "v")]);
    let (tmp, token, out) = workdir("sigterm");
    for sig in ["TERM", "INT"] {
        // A long watch: exiting promptly means not waiting for it to end.
        let args = watch_args(&emu.url(), &token, &out, &["envoy"]).set("-watch-timeout", "60s");
        let mut l = Loader::start(&tmp, &args);
        // handlers are installed before the "starting" line
        assert!(l.wait_log("msg=\"starting\"", T), "{}", l.log());
        assert_files_within(T, &l, &out, &[("k", "v")]);
        assert!(wait_until(T, || emu.open_watches() >= 1));
        l.signal(sig);
        let status = l
            .wait(Duration::from_secs(10))
            .expect("exits without waiting for its 60-120 s watch");
        assert_eq!(status.code(), Some(0), "SIG{sig}: {}", l.log());
        assert!(l.log().contains("msg=\"stopping\""), "{}", l.log());
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let tmp = TempDir::new("usage");
    for (args, want) in [
        (vec!["-bogus"], "-bogus"),
        (vec!["-configmap"], "-configmap"),
        (
            vec![
                "-configmap",
                "x",
                "-namespace",
                "n",
                "-sync-interval",
                "soon",
            ],
            "-sync-interval",
        ),
        (
            // refused before any connection: the token must not cross a network in clear
            vec![
                "-configmap",
                "x",
                "-namespace",
                "n",
                "-apiserver",
                "http://10.1.2.3:8080",
            ],
            "would send the bearer token in cleartext",
        ),
    ] {
        let mut l = Loader::start(&tmp, &args);
        assert_eq!(l.wait(T).unwrap().code(), Some(2));
        assert!(l.log().contains(want), "{}", l.log());
    }
    let mut l = Loader::start(&tmp, ["-h"]);
    assert_eq!(l.wait(T).unwrap().code(), Some(0));
    assert!(l.stdout().contains("-configmap NAME"));
}

#[test]
fn poll_mode_rewrites_only_on_change() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "1")]);
    let (tmp, token, out) = workdir("poll");
    let a = envoy_args(&emu.url(), &token, &out).value("-sync-interval", "200ms");
    let l = Loader::start(&tmp, &a);
    assert_files_within(T, &l, &out, &[("k", "1")]);
    let before = data_target(&out);
    let lists = || emu.requests().iter().filter(|r| r.is_list()).count();
    let polled = lists();
    assert!(
        wait_until(T, || lists() >= polled + 3),
        "three more polls: {}",
        l.log()
    );
    assert_eq!(data_target(&out), before, "unchanged polls write nothing");
    assert_eq!(l.log().matches("snapshot written").count(), 1);
    assert_requests_are_what_a_server_allows(&emu, &["envoy"], 1);
    emu.apply("default", "envoy", &[("k", "2")]);
    assert_files_within(T, &l, &out, &[("k", "2")]);
}

#[test]
fn secrets_are_decoded_and_merged_with_configmaps() {
    let emu = emu();
    emu.apply("default", "envoy", &[("lds.yaml", "L")]);
    let key: Vec<u8> = vec![0x30, 0x82, 0x00, 0xff, b'\n'];
    emu.apply_secret(
        "default",
        "tls",
        &[("tls.key", &key), ("tls.crt", b"CERT\n")],
    );
    let (tmp, token, out) = workdir("secret");
    let a = envoy_args(&emu.url(), &token, &out).secret("tls").onetime();
    let mut l = Loader::start(&tmp, &a);
    assert!(l.wait(T).unwrap().success(), "{}", l.log());
    let snap = read_snapshot(&out);
    assert_eq!(snap["tls.key"], key);
    assert_eq!(snap["tls.crt"], b"CERT\n");
    assert_eq!(snap["lds.yaml"], b"L");
    assert!(
        emu.requests().iter().any(|r| r.path.ends_with("/secrets")),
        "listed as a Secret"
    );
    assert!(!l.log().contains("CERT"), "no content in the log");
}

#[test]
fn modes_are_0755_and_0644_or_the_file_mode_whatever_the_umask() {
    // The writer skips its chmod calls when the umask takes nothing from these modes, and
    // must not when it does.
    let emu = emu();
    emu.apply("default", "envoy", &[("lds.yaml", "listeners\n")]);
    let runs = ["022", "077", "002", "000"]
        .map(|u| (u, 0o644, None))
        .into_iter()
        .chain([("022", 0o440, Some("0440")), ("077", 0o640, Some("640"))]);
    for (umask, want, file_mode) in runs {
        let (_tmp, token, out) = workdir("umask");
        let mut a = envoy_args(&emu.url(), &token, &out).onetime();
        if let Some(m) = file_mode {
            a = a.value("-file-mode", m);
        }
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(umask)
            .args(loader_runner())
            .arg(loader_bin())
            .args(&a)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run the loader under sh");
        assert!(status.success(), "umask {umask}: {status:?}");
        let version = out.join(data_target(&out).expect("a snapshot"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&version), 0o755, "umask {umask}: version directory");
        assert_eq!(
            mode(&version.join("lds.yaml")),
            want,
            "umask {umask}, -file-mode {file_mode:?}: file"
        );
    }
}

/// The request sequence as client-go's reflector makes it, checked request by request
/// against what the emulator served: one list, then watches that each resume from the
/// last version the previous one delivered (event or bookmark), with no list when a
/// watch ends at its timeout; after "too old", as an ERROR event or as HTTP 410, exactly
/// one list. The token may read only `envoy` (a Role with `resourceNames`), so a request
/// without the name's field selector is refused as a real server refuses it.
#[test]
fn requests_resume_from_the_last_version_and_relist_only_when_too_old() {
    let emu = Emulator::start(Options {
        bookmark_interval: Duration::from_millis(300),
        ..Options::default()
    });
    emu.grant_only(TOKEN, emulator::Kind::ConfigMap, "default", &["envoy"]);
    emu.apply("default", "envoy", &[("k", "0")]);
    let (tmp, token, out) = workdir("pinned");
    let l = Loader::start(&tmp, &envoy_args(&emu.url(), &token, &out).watch("2s"));
    assert_files_within(T, &l, &out, &[("k", "0")]);
    let lists = || emu.requests().iter().filter(|r| r.is_list()).count();
    let watches = || emu.requests().iter().filter(|r| r.watch).count();
    let slow = Duration::from_secs(20);

    // Quiet for the loader's object, busy elsewhere: only bookmarks move its version.
    let mut n = 0;
    assert!(
        wait_until(slow, || {
            n += 1;
            if n % 40 == 0 {
                emu.apply("default", "unwatched", &[("n", &n.to_string())]);
            }
            if n == 200 {
                emu.apply("default", "envoy", &[("k", "1")]);
            }
            watches() >= 4
        }),
        "three watches ended at their timeout: {}",
        l.log()
    );
    assert_eq!(
        lists(),
        1,
        "a watch that ends at its timeout is followed by a watch"
    );
    assert!(wait_until(T, || read_text(&out) == text(&[("k", "1")])));

    // "Too old" as an ERROR event inside a 200.
    assert!(wait_until(T, || emu.open_watches() == 1));
    let (lists_before, watches_before) = (lists(), watches());
    emu.compact();
    emu.expire_watches();
    assert!(
        wait_until(slow, || watches() >= watches_before + 2),
        "{}",
        l.log()
    );
    assert_eq!(
        lists(),
        lists_before + 1,
        "one list after an ERROR 410 event"
    );

    // "Too old" as HTTP 410, on the watch that follows the current one's timeout.
    assert!(wait_until(T, || emu.open_watches() == 1));
    let (lists_before, watches_before) = (lists(), watches());
    emu.fail_next(1, 410);
    assert!(
        wait_until(slow, || watches() >= watches_before + 3),
        "{}",
        l.log()
    );
    assert_eq!(lists(), lists_before + 1, "one list after an HTTP 410");
    emu.apply("default", "envoy", &[("k", "2")]);
    assert!(wait_until(T, || read_text(&out) == text(&[("k", "2")])));

    // Request by request: where each watch resumed from.
    assert_requests_are_what_a_server_allows(&emu, &["envoy"], 2);
    let records: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.is_list() || r.watch)
        .collect();
    let mut last_seen: Option<u64> = None;
    let mut bookmarked = 0;
    for (i, r) in records.iter().enumerate() {
        let what = format!("request {i}: {}?{} -> {}", r.path, r.query, r.status);
        if !r.watch {
            assert_eq!(r.status, 200, "{what}");
            last_seen = r.list_rv;
            continue;
        }
        let from: u64 = r.param("resourceVersion").unwrap().parse().unwrap();
        assert_eq!(
            Some(from),
            last_seen,
            "resumes from the last version seen: {what}"
        );
        match r.status {
            200 => {
                let sent = emu.watch_last_sent(r.conn);
                if sent.is_some_and(|v| v > from) {
                    bookmarked += 1;
                }
                last_seen = Some(from.max(sent.unwrap_or(0)));
            }
            410 => {
                let next = records.get(i + 1).expect("a request after the 410");
                assert!(next.is_list(), "HTTP 410 is followed by a list: {what}");
            }
            other => panic!("unexpected {other}: {what}"),
        }
    }
    assert!(
        bookmarked >= 2,
        "watches that moved the version forward (bookmarks and events): {bookmarked}"
    );
    let log = l.log();
    assert!(
        log.contains("object=\"configmap default/envoy\""),
        "log lines name the object: {log}"
    );
}

/// Two loaders pointed at one directory (one for ConfigMaps, one for Secrets, say): the
/// second exits 1 with an error naming the directory's lock and the holder, and never
/// touches the first one's files; once the holder is killed, a new loader takes over.
#[test]
fn a_second_loader_on_the_same_directory_exits_1_and_writes_nothing() {
    let emu = emu();
    emu.apply("default", "envoy", &[("lds.yaml", "L")]);
    emu.apply_secret("default", "tls", &[("tls.crt", b"CERT")]);
    let (tmp, token, out) = workdir("two-writers");
    let mut first = Loader::start(&tmp, &watch_args(&emu.url(), &token, &out, &["envoy"]));
    assert_files_within(T, &first, &out, &[("lds.yaml", "L")]);
    let version = data_target(&out);
    let second_args = Args::new(&emu.url(), &token)
        .secret("tls")
        .namespace("default")
        .watch("3s")
        .output(&out);
    let mut second = Loader::start(&tmp, &second_args);
    let status = second.wait(T).expect("the second loader exits");
    assert_eq!(status.code(), Some(1), "{}", second.log());
    let lock = out.join("..lock").display().to_string();
    let holder = first.child.id();
    assert!(
        second.log().contains(&format!(
            "lock {lock}: another loader (pid {holder}) writes this directory"
        )),
        "the error names the lock and the holder: {}",
        second.log()
    );
    assert_eq!(
        read_text(&out),
        text(&[("lds.yaml", "L")]),
        "nothing of the second"
    );
    assert_eq!(data_target(&out), version, "no write by the second");
    // The first goes on; killed, it releases the lock to the next loader.
    emu.apply("default", "envoy", &[("lds.yaml", "L2")]);
    assert!(wait_until(T, || read_text(&out) == text(&[("lds.yaml", "L2")])));
    first.kill9();
    let third = Loader::start(&tmp, &second_args);
    assert!(
        wait_until(T, || read_text(&out) == text(&[("tls.crt", "CERT")])),
        "the next loader takes over: {}",
        third.log()
    );
}

/// `-onetime` (the init container) retries what is transient, for `-onetime-timeout`: one
/// 503, a 429 with Retry-After, a server that is down for a moment; and fails at once, with
/// one line naming the object and the cause, on what is not (403).
#[test]
fn onetime_retries_what_is_transient_and_fails_at_once_on_what_is_not() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "v")]);
    let tmp = TempDir::new("onetime-retry");
    let token = write_token(&tmp, TOKEN);
    let run = |extra: &[&str], out: &str| {
        let out = tmp.join(out);
        let a = envoy_args(&emu.url(), &token, &out).onetime().flags(extra);
        let mut l = Loader::start(&tmp, &a);
        let t0 = std::time::Instant::now();
        let status = l.wait(Duration::from_secs(30)).expect("exits");
        (status.code(), t0.elapsed(), l.log(), read_text(&out))
    };
    let written = text(&[("k", "v")]);

    emu.fail_next(1, 503);
    let (code, _, log, files) = run(&[], "503");
    assert_eq!((code, &files), (Some(0), &written), "one 503: {log}");
    assert!(
        log.contains(" object=\"configmap default/envoy\" op=list code=503 retry_in="),
        "the retry is logged: {log}"
    );

    emu.fail_next_retry_after(1, 429, 2);
    let (code, took, log, files) = run(&[], "429");
    assert_eq!((code, &files), (Some(0), &written), "a 429: {log}");
    assert!(
        took >= Duration::from_secs(2),
        "Retry-After: 2 honoured: {took:?}"
    );

    emu.set_down(true);
    let back = {
        let emu = emu.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            emu.set_down(false);
        })
    };
    let (code, _, log, files) = run(&[], "down");
    back.join().unwrap();
    assert_eq!((code, &files), (Some(0), &written), "down for 2 s: {log}");

    emu.set_down(true);
    let (code, took, log, _) = run(&["-onetime-timeout", "3s"], "gave-up");
    emu.set_down(false);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        took < scaled(Duration::from_secs(10)),
        "gave up after {took:?}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("level=error"))
        .unwrap_or("");
    assert!(
        line.contains("msg=\"list failed; still failing at -onetime-timeout\"")
            && line.contains("object=\"configmap default/envoy\"")
            && line.contains(" retried_for="),
        "one error line naming the object and the time: {log}"
    );

    emu.grant_only(TOKEN, emulator::Kind::ConfigMap, "default", &["another"]);
    let (code, took, log, _) = run(&[], "forbidden");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        took < scaled(Duration::from_secs(2)),
        "a 403 fails at once: {took:?}"
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level="))
        .skip(1)
        .collect();
    assert_eq!(errors.len(), 1, "one line, no retry: {log}");
    assert!(errors[0].contains(" op=list code=403"), "{log}");
    assert!(
        errors[0].contains("403 Forbidden: configmaps \\\"envoy\\\" is forbidden: User "),
        "the line carries the server's Status: {log}"
    );
}

/// Without a token file, requests go without Authorization, and the loader says so once,
/// not once per request.
#[test]
fn a_missing_token_file_is_warned_about_once() {
    let emu = emu();
    emu.apply("default", "envoy", &[("k", "v")]);
    let tmp = TempDir::new("no-token");
    let out = tmp.join("out");
    let missing = tmp.join("no-such-token");
    let l = Loader::start(&tmp, &watch_args(&emu.url(), &missing, &out, &["envoy"]));
    assert!(
        wait_until(T, || emu.requests().len() >= 3),
        "three requests: {}",
        l.log()
    );
    assert!(emu
        .requests()
        .iter()
        .all(|r| r.token.is_none() && r.status == 401));
    let warned = l
        .log()
        .matches("no token: requests go without Authorization")
        .count();
    assert_eq!(warned, 1, "{}", l.log());
}
