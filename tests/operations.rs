//! A sidecar left alone in production: what happens around restarts and between objects.
//! A restart starts from the snapshot on disk and its record of which object each key came
//! from (ready at once, even with the API server away; a deleted object keeps its keys);
//! a refused version of one object freezes no other; a key that carried Listeners may not
//! disappear; an object no longer followed loses its keys at the first write; a loader
//! killed between the phases of an acknowledged apply restarts from a true record.

#[path = "emulator/mod.rs"]
mod emulator;
mod support;

use emulator::{Emulator, Options};
use std::path::Path;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(15);
const LDS: &str = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: ingress\n";
const CDS: &str = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: blue\n";

/// /readyz on the loader's health server: the status code (0: no answer).
fn status(addr: &str) -> u16 {
    let req = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(addr, req).map_or(0, |r| status_code(&r))
}

fn emu() -> Emulator {
    Emulator::start(Options {
        bookmark_interval: Duration::from_millis(300),
        ..Options::default()
    })
}

/// `-watch` on `cms` (in `default`), with a health server, writing to `out`.
fn args(emu: &Emulator, token: &Path, out: &Path, cms: &[&str], extra: &[&str]) -> Args {
    Args::new(&emu.url(), token)
        .configmaps(cms)
        .namespace("default")
        .watch("3s")
        .listen("127.0.0.1:0")
        .output(out)
        .flags(extra)
}

/// Two ConfigMaps; one is deleted while the sidecar is down (OOM, eviction), and the API
/// server is away when it comes back: /readyz is 200 at once from the snapshot on disk;
/// then the deleted object keeps its keys and the other's updates are written.
#[test]
fn a_restart_with_one_configmap_deleted_is_ready_at_once_and_follows_the_other() {
    let emu = emu();
    emu.apply("default", "a", &[("lds.yaml", LDS)]);
    emu.apply("default", "b", &[("cds.yaml", CDS)]);
    let (tmp, token, out) = workdir("restart-deleted");
    let a = args(&emu, &token, &out, &["a", "b"], &[]);
    let mut l = Loader::start(&tmp, &a);
    converges(&l, &out, &[("lds.yaml", LDS), ("cds.yaml", CDS)]);
    l.kill9();
    emu.delete("default", "a");
    emu.set_down(true);
    let l = Loader::start(&tmp, &a);
    let addr = listen_addr(&l);
    assert!(
        wait_until(Duration::from_secs(2), || status(&addr) == 200),
        "/readyz 200 with the API server away, from the snapshot on disk: {}",
        l.log()
    );
    emu.set_down(false);
    let cds2 = CDS.replace("blue", "green");
    emu.apply("default", "b", &[("cds.yaml", &cds2)]);
    converges(&l, &out, &[("lds.yaml", LDS), ("cds.yaml", &cds2)]);
    assert!(
        l.wait_log(
            "msg=\"not found; keeping its last files\" object=\"configmap default/a\"",
            T
        ),
        "{}",
        l.log()
    );
    assert_eq!(
        read_text(&out),
        text(&[("lds.yaml", LDS), ("cds.yaml", &cds2)])
    );
    assert_eq!(status(&addr), 200);
}

/// ConfigMap a gets an update that is refused (its listener file emptied); then b changes:
/// b's change is written, a keeps its last accepted files, and the refusal is one line that
/// names a and its key, counted in the metrics.
#[test]
fn a_refused_configmap_freezes_no_other() {
    let emu = emu();
    emu.apply("default", "a", &[("lds.yaml", LDS)]);
    emu.apply("default", "b", &[("cds.yaml", CDS)]);
    let (tmp, token, out) = workdir("refused-neighbour");
    let l = Loader::start(&tmp, &args(&emu, &token, &out, &["a", "b"], &[]));
    let addr = listen_addr(&l);
    converges(&l, &out, &[("lds.yaml", LDS), ("cds.yaml", CDS)]);
    emu.apply(
        "default",
        "a",
        &[("lds.yaml", "version_info: \"2\"\nresources: []\n")],
    );
    assert!(
        l.wait_log(" object=\"configmap default/a\" op=judge key=lds.yaml ", T),
        "{}",
        l.log()
    );
    let cds2 = CDS.replace("blue", "green");
    emu.apply("default", "b", &[("cds.yaml", &cds2)]);
    converges(&l, &out, &[("lds.yaml", LDS), ("cds.yaml", &cds2)]);
    let refusals = l.log().matches(" op=judge ").count();
    assert_eq!(
        refusals,
        1,
        "one line for the one refused version: {}",
        l.log()
    );
    let metrics = exchange(&addr, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    assert!(
        metrics.contains("envoy_xds_loader_snapshot_errors_total{kind=\"refused\"} 1\n"),
        "{metrics}"
    );
}

/// A key that carried the Listeners disappears from its ConfigMap: refused like an emptied
/// one (a missing file is worse: Envoy would refuse to start on its next restart), unless
/// `-allow-empty-resources`.
#[test]
fn a_key_that_carried_listeners_may_not_disappear_unless_allowed() {
    let emu = emu();
    emu.apply("default", "a", &[("lds.yaml", LDS), ("x", "1")]);
    let tmp = TempDir::new("listener-key-gone");
    let token = write_token(&tmp, TOKEN);
    for (allow, out) in [(false, "refused"), (true, "allowed")] {
        emu.apply("default", "a", &[("lds.yaml", LDS), ("x", "1")]);
        let out = tmp.join(out);
        let extra: &[&str] = if allow {
            &["-allow-empty-resources"]
        } else {
            &[]
        };
        let l = Loader::start(&tmp, &args(&emu, &token, &out, &["a"], extra));
        converges(&l, &out, &[("lds.yaml", LDS), ("x", "1")]);
        emu.apply("default", "a", &[("x", "2")]);
        if allow {
            converges(&l, &out, &[("x", "2")]);
        } else {
            assert!(
                l.wait_log(" object=\"configmap default/a\" op=judge key=lds.yaml ", T),
                "{}",
                l.log()
            );
            assert!(l.log().contains("would be gone"), "{}", l.log());
            assert_eq!(read_text(&out), text(&[("lds.yaml", LDS), ("x", "1")]));
        }
    }
}

/// A loader restarted without one of its objects: that object's keys go at the first
/// write, the other's stay, and nothing waits for the object that is no longer followed.
#[test]
fn an_object_no_longer_named_loses_its_keys_at_the_first_write() {
    let emu = emu();
    emu.apply("default", "a", &[("a.txt", "A")]);
    emu.apply("default", "b", &[("b.txt", "B")]);
    let (tmp, token, out) = workdir("dropped-object");
    let mut l = Loader::start(&tmp, &args(&emu, &token, &out, &["a", "b"], &[]));
    converges(&l, &out, &[("a.txt", "A"), ("b.txt", "B")]);
    l.kill9();
    let l = Loader::start(&tmp, &args(&emu, &token, &out, &["b"], &[]));
    converges(&l, &out, &[("b.txt", "B")]);
    // (the log line follows the write's last step)
    assert!(
        l.wait_log(" removed=a.txt ", T),
        "the first write removed a's key: {}",
        l.log()
    );
}

/// With `-envoy-admin`, an update of a cluster and a route is written in two phases; a
/// loader killed while phase 1 waits for Envoy leaves phase 1's snapshot, whose record names
/// the object of each key's bytes: the next loader is ready from it at once (the API server
/// away), then writes the route. And `-onetime` (the init container) never waits for
/// Envoy, which is not running yet.
#[test]
fn killed_between_phases_restarts_from_a_true_record_and_onetime_never_waits() {
    const RDS: &str = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n";
    let emu = emu();
    emu.apply("default", "a", &[("cds.yaml", CDS), ("rds.yaml", RDS)]);
    emu.apply("default", "b", &[("lds.yaml", LDS)]);
    let (tmp, token, out) = workdir("between-phases");
    let admin = format!("http://{}", stuck_admin());
    let flags = ["-envoy-admin", &admin, "-envoy-timeout", "1m"];
    let init = Args::new(&emu.url(), &token)
        .configmaps(&["a", "b"])
        .namespace("default")
        .onetime()
        .output(&out)
        .flags(&flags);
    let mut once = Loader::start(&tmp, &init);
    let status_once = once.wait(Duration::from_secs(10));
    assert!(status_once.is_some_and(|s| s.success()), "{}", once.log());
    assert!(
        !once.log().contains("acknowledged by envoy"),
        "{}",
        once.log()
    );
    let first = [("cds.yaml", CDS), ("rds.yaml", RDS), ("lds.yaml", LDS)];
    converges(&once, &out, &first);

    let mut l = Loader::start(&tmp, &args(&emu, &token, &out, &["a", "b"], &flags));
    assert!(
        l.wait_log("msg=\"ready: every object's files are on disk\"", T),
        "{}",
        l.log()
    );
    let cds2 = format!(
        "{CDS}- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: green\n"
    );
    let rds2 = RDS.replace("name: r", "name: r # to green");
    emu.apply("default", "a", &[("cds.yaml", &cds2), ("rds.yaml", &rds2)]);
    assert!(l.wait_log(" phase=1/2", T), "{}", l.log());
    l.kill9();
    let phase1 = [
        ("cds.yaml", cds2.as_str()),
        ("rds.yaml", RDS),
        ("lds.yaml", LDS),
    ];
    assert_eq!(read_text(&out), text(&phase1), "{}", l.log());
    assert_consistent(&out);
    let version = data_target(&out).unwrap();
    let record = std::fs::read_to_string(out.join(version).join("..objects")).unwrap();
    assert_eq!(
        record,
        "configmap default/a\tcds.yaml\trds.yaml\nconfigmap default/b\tlds.yaml\n"
    );

    emu.set_down(true);
    let l = Loader::start(&tmp, &args(&emu, &token, &out, &["a", "b"], &[]));
    let addr = listen_addr(&l);
    assert!(
        wait_until(Duration::from_secs(2), || status(&addr) == 200),
        "/readyz 200 from phase 1's snapshot: {}",
        l.log()
    );
    emu.set_down(false);
    converges(
        &l,
        &out,
        &[("cds.yaml", &cds2), ("rds.yaml", &rds2), ("lds.yaml", LDS)],
    );
}
