//! The loader binary following label selections (`-configmap-selector`, `-secret-selector`,
//! `-selector-namespaces`) against the Kubernetes API emulator: membership by labels in one
//! namespace, several and `*`; labelling, unlabelling and deleting; collisions; 1,200
//! members over several pages; relists and restarts; Secrets; metrics and dry-run.

#[path = "emulator/mod.rs"]
mod emulator;
mod support;

use emulator::{Emulator, Kind, Options};
use std::path::Path;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(15);
const GW: &[(&str, &str)] = &[("app", "gw")];

fn emu() -> Emulator {
    Emulator::start(Options {
        bookmark_interval: Duration::from_millis(500),
        ..Options::default()
    })
}

/// A ConfigMap labelled `labels` holding `data`.
fn cm(emu: &Emulator, ns: &str, name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) {
    emu.apply_labeled(Kind::ConfigMap, ns, name, labels, data);
}

/// `-configmap-selector SEL -selector-namespaces NS -watch`, written to `out`.
fn selecting(url: &str, token: &Path, out: &Path, sel: &str, namespaces: &str) -> Args {
    Args::new(url, token)
        .value("-configmap-selector", sel)
        .value("-selector-namespaces", namespaces)
        .watch("3s")
        .output(out)
}

/// The number of "snapshot written" lines in the log.
fn writes(l: &Loader) -> usize {
    l.log().matches("snapshot written").count()
}

#[test]
fn membership_follows_labels_and_deletions() {
    let emu = emu();
    cm(&emu, "a", "one", GW, &[("one.yaml", "1")]);
    cm(
        &emu,
        "a",
        "two",
        &[("app", "gw"), ("team", "x")],
        &[("two.yaml", "2")],
    );
    cm(&emu, "a", "plain", &[], &[("plain.yaml", "p")]);
    cm(
        &emu,
        "a",
        "other",
        &[("app", "web")],
        &[("other.yaml", "o")],
    );
    cm(&emu, "b", "elsewhere", GW, &[("b.yaml", "b")]);
    let (tmp, token, out) = workdir("sel-member");
    let mut l = Loader::start(&tmp, &selecting(&emu.url(), &token, &out, "app=gw", "a"));
    converges(&l, &out, &[("one.yaml", "1"), ("two.yaml", "2")]);
    // labelled: it joins
    cm(&emu, "a", "plain", GW, &[("plain.yaml", "p")]);
    converges(
        &l,
        &out,
        &[("one.yaml", "1"), ("two.yaml", "2"), ("plain.yaml", "p")],
    );
    // an update of a member
    cm(&emu, "a", "one", GW, &[("one.yaml", "1b")]);
    converges(
        &l,
        &out,
        &[("one.yaml", "1b"), ("two.yaml", "2"), ("plain.yaml", "p")],
    );
    // unlabelled: it leaves with its keys (the server sends DELETED)
    cm(&emu, "a", "two", &[("team", "x")], &[("two.yaml", "2")]);
    converges(&l, &out, &[("one.yaml", "1b"), ("plain.yaml", "p")]);
    assert!(l.wait_log("no longer selected", T), "{}", l.log());
    // deleted: it leaves with its keys, unlike a named object
    emu.delete("a", "plain");
    converges(&l, &out, &[("one.yaml", "1b")]);
    // a label change that keeps it selected changes no file (counted once the last write
    // has logged its line: the files are visible a moment before)
    assert!(l.wait_log("removed=plain.yaml", T), "{}", l.log());
    let before = writes(&l);
    cm(
        &emu,
        "a",
        "one",
        &[("app", "gw"), ("extra", "y")],
        &[("one.yaml", "1b")],
    );
    cm(&emu, "a", "one", GW, &[("one.yaml", "1c")]);
    converges(&l, &out, &[("one.yaml", "1c")]);
    // the label-only version would have been written before 1c: one write, not two
    assert!(wait_until(T, || writes(&l) > before), "{}", l.log());
    assert_eq!(
        writes(&l),
        before + 1,
        "labels alone write nothing\n{}",
        l.log()
    );
    l.signal("TERM");
    assert!(l.wait(T).unwrap().success());
}

#[test]
fn several_namespaces_and_every_namespace() {
    let emu = emu();
    cm(&emu, "a", "ra", GW, &[("a.yaml", "a")]);
    cm(&emu, "b", "rb", GW, &[("b.yaml", "b")]);
    cm(&emu, "c", "rc", GW, &[("c.yaml", "c")]);
    // two namespaces: two sources, each with its own progress and members
    let (tmp, token, out) = workdir("sel-ns");
    let a = selecting(&emu.url(), &token, &out, "app=gw", "a,b").listen("127.0.0.1:0");
    let l = Loader::start(&tmp, &a);
    converges(&l, &out, &[("a.yaml", "a"), ("b.yaml", "b")]);
    let addr = listen_addr(&l);
    for ns in ["a", "b"] {
        let name = format!(
            "envoy_xds_loader_selected_objects{{selection=\"configmaps in {ns} with app=gw\"}}"
        );
        assert_eq!(metric(&addr, &name), 1.0, "{name}");
    }
    let (_, body) = get(&addr, "/metrics");
    assert!(
        body.contains(
            "envoy_xds_loader_seconds_since_progress{followed=\"configmaps in b with app=gw\"}"
        ),
        "{body}"
    );
    assert_eq!(get(&addr, "/healthz").0, 200);
    // every namespace: one cluster-wide list and watch (a ClusterRole's grant)
    emu.grant_cluster_wide(TOKEN, Kind::ConfigMap);
    let (tmp2, token2, out2) = workdir("sel-all");
    let l2 = Loader::start(&tmp2, &selecting(&emu.url(), &token2, &out2, "app=gw", "*"));
    converges(
        &l2,
        &out2,
        &[("a.yaml", "a"), ("b.yaml", "b"), ("c.yaml", "c")],
    );
    cm(&emu, "d", "rd", GW, &[("d.yaml", "d")]);
    converges(
        &l2,
        &out2,
        &[
            ("a.yaml", "a"),
            ("b.yaml", "b"),
            ("c.yaml", "c"),
            ("d.yaml", "d"),
        ],
    );
    let cluster_wide = emu
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/configmaps")
        .count();
    assert!(cluster_wide >= 2, "a cluster-wide list and watch");
}

#[test]
fn a_collision_refuses_the_newcomer_alone_and_clears_with_its_cause() {
    let emu = emu();
    cm(
        &emu,
        "a",
        "first",
        GW,
        &[("x.yaml", "first"), ("f.yaml", "f")],
    );
    cm(&emu, "a", "third", GW, &[("t.yaml", "t")]);
    let (tmp, token, out) = workdir("sel-collide");
    let a = selecting(&emu.url(), &token, &out, "app=gw", "a").listen("127.0.0.1:0");
    let l = Loader::start(&tmp, &a);
    converges(
        &l,
        &out,
        &[("x.yaml", "first"), ("f.yaml", "f"), ("t.yaml", "t")],
    );
    let addr = listen_addr(&l);
    // a newcomer with the same key: refused as a whole, in one line naming both and the key
    cm(
        &emu,
        "a",
        "second",
        GW,
        &[("x.yaml", "second"), ("s.yaml", "s")],
    );
    assert!(
        l.wait_log("held_by=\"configmap a/first\"", T),
        "{}",
        l.log()
    );
    let line = l
        .log()
        .lines()
        .find(|s| s.contains("held_by="))
        .unwrap()
        .to_string();
    assert!(
        line.contains("object=\"configmap a/second\"") && line.contains("key=x.yaml"),
        "{line}"
    );
    assert_eq!(metric(&addr, "envoy_xds_loader_collisions_total"), 1.0);
    // everyone else goes on updating
    cm(&emu, "a", "third", GW, &[("t.yaml", "t2")]);
    converges(
        &l,
        &out,
        &[("x.yaml", "first"), ("f.yaml", "f"), ("t.yaml", "t2")],
    );
    // the incumbent lets the key go: the waiting newcomer gets in whole
    cm(&emu, "a", "first", GW, &[("f.yaml", "f")]);
    converges(
        &l,
        &out,
        &[
            ("f.yaml", "f"),
            ("t.yaml", "t2"),
            ("x.yaml", "second"),
            ("s.yaml", "s"),
        ],
    );
}

#[test]
fn objects_seen_together_give_a_key_to_the_older() {
    let emu = emu();
    // created first (older creationTimestamp), though it sorts after by name
    cm(&emu, "a", "zz-old", GW, &[("x.yaml", "old")]);
    std::thread::sleep(Duration::from_millis(1100)); // creationTimestamp has whole seconds
    cm(
        &emu,
        "a",
        "aa-new",
        GW,
        &[("x.yaml", "new"), ("n.yaml", "n")],
    );
    let (tmp, token, out) = workdir("sel-older");
    let a = selecting(&emu.url(), &token, &out, "app=gw", "a");
    let mut l = Loader::start(&tmp, &a);
    converges(&l, &out, &[("x.yaml", "old")]);
    assert!(
        l.log().contains("held_by=\"configmap a/zz-old\""),
        "{}",
        l.log()
    );
    l.signal("TERM");
    assert!(l.wait(T).unwrap().success());
    // the same verdict from a one-shot
    let (tmp2, token2, out2) = workdir("sel-older-1");
    let one = Args::new(&emu.url(), &token2)
        .value("-configmap-selector", "app=gw")
        .value("-selector-namespaces", "a")
        .onetime()
        .output(&out2);
    let mut l2 = Loader::start(&tmp2, &one);
    assert!(
        l2.wait(T).unwrap().success(),
        "a refused member is left out, not fatal\n{}",
        l2.log()
    );
    assert_eq!(read_text(&out2), text(&[("x.yaml", "old")]));
}

#[test]
fn twelve_hundred_members_over_several_pages() {
    let emu = emu();
    for i in 0..1200 {
        let key = format!("route-{i:04}.yaml");
        cm(&emu, "big", &format!("r{i:04}"), GW, &[(&key, "x")]);
    }
    let (tmp, token, out) = workdir("sel-1200");
    let a = Args::new(&emu.url(), &token)
        .value("-configmap-selector", "app=gw")
        .value("-selector-namespaces", "big")
        .onetime()
        .output(&out);
    let mut l = Loader::start(&tmp, &a);
    assert!(l.wait(T).unwrap().success(), "{}", l.log());
    let files = read_text(&out);
    assert_eq!(files.len(), 1200);
    assert!(files.contains_key("route-0000.yaml") && files.contains_key("route-1199.yaml"));
    assert!(
        l.log().contains(" members=1200 pages=3 "),
        "one line for the list: {}",
        l.log()
    );
    let lists: Vec<_> = emu.requests().into_iter().filter(|r| r.is_list()).collect();
    assert_eq!(lists.len(), 3, "pages of 500: 500, 500, 200");
    assert!(lists.iter().all(|r| r.param("limit") == Some("500")));
    assert_eq!(
        lists
            .iter()
            .filter(|r| r.param("continue").is_some())
            .count(),
        2
    );
}

#[test]
fn an_expired_continue_token_starts_the_list_again() {
    let emu = emu();
    for i in 0..600 {
        cm(
            &emu,
            "a",
            &format!("r{i:03}"),
            GW,
            &[(&format!("k{i:03}"), "v")],
        );
    }
    emu.set_expire_continue_tokens(true);
    let (tmp, token, out) = workdir("sel-continue");
    let l = Loader::start(&tmp, &selecting(&emu.url(), &token, &out, "app=gw", "a"));
    assert!(
        l.wait_log("continue token expired; listing again", T),
        "{}",
        l.log()
    );
    emu.set_expire_continue_tokens(false);
    assert!(
        wait_until(T, || read_text(&out).len() == 600),
        "{}",
        l.log()
    );
}

#[test]
fn a_relist_that_finds_the_same_writes_nothing() {
    let emu = emu();
    cm(&emu, "a", "one", GW, &[("one.yaml", "1")]);
    cm(&emu, "a", "two", GW, &[("two.yaml", "2")]);
    let (tmp, token, out) = workdir("sel-relist");
    let l = Loader::start(&tmp, &selecting(&emu.url(), &token, &out, "app=gw", "a"));
    converges(&l, &out, &[("one.yaml", "1"), ("two.yaml", "2")]);
    assert!(l.wait_log("snapshot written", T));
    let version = data_target(&out);
    // "too old": the open watch ends with ERROR 410 and the loader lists again
    assert!(emu.wait_for(|e| e.open_watches() > 0, T), "a watch is open");
    emu.compact();
    emu.expire_watches();
    assert!(l.wait_log("relisting", T), "{}", l.log());
    let lists = || emu.requests().iter().filter(|r| r.is_list()).count();
    assert!(wait_until(T, || lists() >= 2), "{}", l.log());
    // then an update still flows, and only it is written
    cm(&emu, "a", "two", GW, &[("two.yaml", "2b")]);
    converges(&l, &out, &[("one.yaml", "1"), ("two.yaml", "2b")]);
    assert!(wait_until(T, || writes(&l) == 2), "{}", l.log());
    assert_ne!(data_target(&out), version);
    assert_eq!(writes(&l), 2, "the relist wrote nothing\n{}", l.log());
}

#[test]
fn a_restart_that_finds_a_member_deleted_removes_its_keys() {
    let emu = emu();
    cm(&emu, "a", "keep", GW, &[("keep.yaml", "k")]);
    cm(&emu, "a", "gone", GW, &[("gone.yaml", "g")]);
    emu.apply("a", "named", &[("named.yaml", "n")]);
    let (tmp, token, out) = workdir("sel-restart");
    let a = selecting(&emu.url(), &token, &out, "app=gw", "a").configmap("a/named");
    let mut l = Loader::start(&tmp, &a);
    converges(
        &l,
        &out,
        &[("keep.yaml", "k"), ("gone.yaml", "g"), ("named.yaml", "n")],
    );
    assert!(l.wait_log("snapshot written", T));
    l.signal("TERM");
    assert!(l.wait(T).unwrap().success());
    // while it is down: a member and the named object are deleted
    emu.delete("a", "gone");
    emu.delete("a", "named");
    let l = Loader::start(&tmp, &a);
    // the member's keys go; the named object keeps its last files
    converges(&l, &out, &[("keep.yaml", "k"), ("named.yaml", "n")]);
}

#[test]
fn secrets_by_selector_are_decoded() {
    let emu = emu();
    emu.apply_labeled(Kind::Secret, "a", "tls", GW, &[("cert.pem", "PEM\n")]);
    emu.apply_labeled(Kind::Secret, "a", "unrelated", &[], &[("no.pem", "x")]);
    cm(&emu, "a", "routes", GW, &[("rds.yaml", "r")]);
    let (tmp, token, out) = workdir("sel-secret");
    let a = Args::new(&emu.url(), &token)
        .value("-secret-selector", "app=gw")
        .value("-configmap-selector", "app in (gw)")
        .value("-selector-namespaces", "a")
        .watch("3s")
        .output(&out);
    let l = Loader::start(&tmp, &a);
    converges(&l, &out, &[("cert.pem", "PEM\n"), ("rds.yaml", "r")]);
    emu.apply_labeled(Kind::Secret, "a", "tls", GW, &[("cert.pem", "PEM2\n")]);
    converges(&l, &out, &[("cert.pem", "PEM2\n"), ("rds.yaml", "r")]);
}

#[test]
fn a_leaving_member_that_carried_listeners_is_refused_by_the_guard() {
    let lds = "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: l\n";
    let emu = emu();
    cm(&emu, "a", "listeners", GW, &[("lds.yaml", lds)]);
    cm(&emu, "a", "routes", GW, &[("rds.yaml", "r")]);
    let (tmp, token, out) = workdir("sel-guard");
    let l = Loader::start(&tmp, &selecting(&emu.url(), &token, &out, "app=gw", "a"));
    converges(&l, &out, &[("lds.yaml", lds), ("rds.yaml", "r")]);
    emu.delete("a", "listeners");
    assert!(
        l.wait_log("refused; keeping the last files", T),
        "{}",
        l.log()
    );
    assert!(l.log().contains("leaves the selection"), "{}", l.log());
    // the others go on
    cm(&emu, "a", "routes", GW, &[("rds.yaml", "r2")]);
    converges(&l, &out, &[("lds.yaml", lds), ("rds.yaml", "r2")]);
}

#[test]
fn dry_run_names_each_files_object() {
    let emu = emu();
    cm(&emu, "a", "one", GW, &[("one.yaml", "1\n")]);
    emu.apply("a", "named", &[("named.yaml", "n\n")]);
    let (tmp, token, out) = workdir("sel-dry");
    let a = Args::new(&emu.url(), &token)
        .value("-configmap-selector", "app=gw")
        .namespace("a")
        .configmap("named")
        .onetime()
        .flags(&["-dry-run"])
        .output(&out);
    let mut l = Loader::start(&tmp, &a);
    assert!(l.wait(T).unwrap().success(), "{}", l.log());
    assert_eq!(
        l.stdout(),
        "==> named.yaml (2 bytes, configmap a/named) <==\nn\n==> one.yaml (2 bytes, configmap a/one) <==\n1\n"
    );
    assert!(!out.exists());
}

#[test]
fn bad_selector_flags_exit_2_naming_the_flag_and_the_part() {
    let table: &[(&[&str], &str)] = &[
        (&["-configmap-selector", "app in (a"], "-configmap-selector"),
        (&["-secret-selector", "a=-b"], "-secret-selector"),
        (&["-configmap-selector", ""], "empty"),
        (
            &["-configmap-selector", "a", "-selector-namespaces", "x,*"],
            "stands alone",
        ),
        (
            &["-configmap-selector", "a", "-selector-namespaces", "Bad_NS"],
            "\"Bad_NS\"",
        ),
        (
            &["-selector-namespaces", "a", "-configmap", "x"],
            "needs a -configmap-selector",
        ),
    ];
    for (flags, want) in table {
        let mut cmd = loader_command(flags.iter().chain(&["-namespace", "d", "-onetime"]));
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: want {want:?} in {err}");
    }
}

#[test]
fn an_update_among_a_hundred_members_replaces_one_file() {
    let emu = emu();
    for i in 0..100 {
        cm(
            &emu,
            "a",
            &format!("m{i:03}"),
            GW,
            &[(&format!("m{i:03}.yaml"), "1")],
        );
    }
    let (tmp, token, out) = workdir("sel-one-file");
    let l = Loader::start(&tmp, &selecting(&emu.url(), &token, &out, "app=gw", "a"));
    assert!(
        wait_until(T, || read_text(&out).len() == 100),
        "{}",
        l.log()
    );
    assert!(l.wait_log("snapshot written", T));
    let version = data_target(&out);
    // one key of one member: replaced inside the current version
    cm(&emu, "a", "m042", GW, &[("m042.yaml", "2")]);
    assert!(wait_until(T, || read_text(&out)
        .get("m042.yaml")
        .map(String::as_str)
        == Some("2")));
    assert!(wait_until(T, || writes(&l) == 2), "{}", l.log());
    assert_eq!(
        data_target(&out),
        version,
        "the same version, one file replaced"
    );
    assert_consistent(&out);
    // two keys at once: a new version, switched as a whole
    cm(
        &emu,
        "a",
        "m042",
        GW,
        &[("m042.yaml", "3"), ("extra.yaml", "e")],
    );
    assert!(
        wait_until(T, || read_text(&out).len() == 101),
        "{}",
        l.log()
    );
    assert_ne!(data_target(&out), version);
    assert_consistent(&out);
}
