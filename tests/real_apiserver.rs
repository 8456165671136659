//! The loader binary against a REAL kube-apiserver (v1.20 from Debian's source package, with
//! etcd, started on loopback by scripts/kube-apiserver.sh; scripts/test-real-apiserver.sh
//! runs this tier with the server's environment). The emulator is ours; this server is the
//! contract. Each test takes a namespace of its own, names the object it follows and
//! prints the figure it checks.
//!
//! Every test is `#[ignore]`d in a plain `cargo test`, which has no server; the script runs
//! them with `--ignored`, and without a server in the environment each one fails, naming
//! the script. The tests that restart the API server or compact etcd change it for
//! everyone: the tier runs with one test thread.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::kube::Kube;
use support::*;

/// Patience for one convergence against a real server.
const T: Duration = Duration::from_secs(20);

/// The server the environment names; without one the test fails, naming the script that
/// provides it.
fn server(test: &str) -> Kube {
    Kube::from_env().unwrap_or_else(|| {
        panic!("{test}: no real API server in the environment (KUBE_URL, KUBE_CA, KUBE_TOKEN_FILE): run scripts/test-real-apiserver.sh")
    })
}

/// A fresh namespace for one test: the test's name with a per-run suffix.
fn namespace(k: &Kube, test: &str) -> String {
    let ns = format!(
        "{}-{}",
        test.replace('_', "-")
            .chars()
            .take(40)
            .collect::<String>()
            .trim_end_matches('-'),
        std::process::id()
    );
    k.namespace(&ns);
    ns
}

/// The loader's flags for this server: its URL and CA, the admin token, the namespace and
/// the output directory.
fn args(k: &Kube, ns: &str, out: &Path) -> Args {
    Args::new(&k.url, &k.token_file)
        .set("-ca-file", &k.ca.display().to_string())
        .namespace(ns)
        .output(out)
}

/// Waits until `out` holds exactly `want`; the time it took.
fn converged(l: &Loader, out: &Path, want: &[(&str, &str)], what: &str) -> Duration {
    let started = Instant::now();
    converges_within(T, l, out, want);
    let took = started.elapsed();
    eprintln!("  {what}: converged in {:.1} ms", took.as_secs_f64() * 1e3);
    took
}

/// How many snapshots the loader has logged as written, once it has logged at least
/// `least`: the files are visible a moment before the write logs its line.
fn written(l: &Loader, least: usize) -> usize {
    let count = || l.log().matches("msg=\"snapshot written\"").count();
    wait_until(T, || count() >= least);
    count()
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn onetime_writes_every_key_and_exits_0() {
    let k = server("onetime");
    let ns = namespace(&k, "onetime");
    k.configmap(
        &ns,
        "envoy",
        &[("lds.yaml", "l"), ("cds.yaml", "c"), ("rds.yaml", "r")],
    );
    let tmp = TempDir::new("real-onetime");
    let out = tmp.join("out");
    let started = Instant::now();
    let mut l = Loader::start(&tmp, &args(&k, &ns, &out).configmap("envoy").onetime());
    let status = l.wait(T).expect("-onetime exits");
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", l.log());
    assert_eq!(
        read_text(&out),
        text(&[("cds.yaml", "c"), ("lds.yaml", "l"), ("rds.yaml", "r")])
    );
    assert_consistent(&out);
    eprintln!(
        "  configmap {ns}/envoy: -onetime wrote 3 keys in {} ms",
        took.as_millis()
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn watch_follows_updates_added_and_removed_keys() {
    let k = server("watch");
    let ns = namespace(&k, "watch");
    k.configmap(&ns, "envoy", &[("a", "1"), ("b", "1")]);
    let tmp = TempDir::new("real-watch");
    let out = tmp.join("out");
    let l = Loader::start(&tmp, &args(&k, &ns, &out).configmap("envoy").watch("30s"));
    converged(&l, &out, &[("a", "1"), ("b", "1")], "first list");
    let steps: [&[(&str, &str)]; 3] = [
        &[("a", "2"), ("b", "1")],
        &[("a", "2"), ("b", "1"), ("c", "new")],
        &[("a", "2"), ("c", "new")],
    ];
    for (i, want) in steps.iter().enumerate() {
        k.configmap(&ns, "envoy", want);
        converged(
            &l,
            &out,
            want,
            &format!("configmap {ns}/envoy update {}", i + 1),
        );
    }
    assert_eq!(written(&l, 4), 4, "one snapshot per change: {}", l.log());
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_labels_only_update_writes_nothing() {
    let k = server("labels");
    let ns = namespace(&k, "labels");
    k.configmap(&ns, "envoy", &[("a", "1")]);
    let tmp = TempDir::new("real-labels");
    let out = tmp.join("out");
    let l = Loader::start(&tmp, &args(&k, &ns, &out).configmap("envoy").watch("30s"));
    converged(&l, &out, &[("a", "1")], "first list");
    let version = data_target(&out);
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"labels": {"touched": "yes"}}, "data": {"a": "1"}});
    k.put(&ns, "configmaps", "envoy", object);
    // A real change after it: once it is on disk, the labels-only event came before it.
    k.configmap(&ns, "envoy", &[("a", "2")]);
    converged(&l, &out, &[("a", "2")], "the change after the labels");
    assert_ne!(data_target(&out), version);
    assert_eq!(
        written(&l, 2),
        2,
        "configmap {ns}/envoy: the labels-only MODIFIED wrote nothing: {}",
        l.log()
    );
    eprintln!("  configmap {ns}/envoy: 3 versions, 2 snapshots written");
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_deleted_configmap_keeps_its_files_and_comes_back() {
    let k = server("deleted");
    let ns = namespace(&k, "deleted");
    k.configmap(&ns, "envoy", &[("a", "1")]);
    let tmp = TempDir::new("real-deleted");
    let out = tmp.join("out");
    let l = Loader::start(&tmp, &args(&k, &ns, &out).configmap("envoy").watch("30s"));
    converged(&l, &out, &[("a", "1")], "first list");
    k.delete(&ns, "configmaps", "envoy");
    assert!(
        l.wait_log("msg=\"deleted; keeping its last files\"", T),
        "{}",
        l.log()
    );
    assert_eq!(read_text(&out), text(&[("a", "1")]));
    k.configmap(&ns, "envoy", &[("a", "again")]);
    converged(
        &l,
        &out,
        &[("a", "again")],
        &format!("configmap {ns}/envoy re-created"),
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn two_configmaps_merge_and_a_collision_refuses_only_the_newcomer() {
    let k = server("collision");
    let ns = namespace(&k, "collision");
    k.configmap(&ns, "a", &[("x", "from a")]);
    k.configmap(&ns, "b", &[("y", "from b")]);
    let tmp = TempDir::new("real-collision");
    let out = tmp.join("out");
    let l = Loader::start(
        &tmp,
        &args(&k, &ns, &out).configmaps(&["a", "b"]).watch("30s"),
    );
    converged(&l, &out, &[("x", "from a"), ("y", "from b")], "two objects");
    k.configmap(&ns, "b", &[("y", "from b"), ("x", "b wants it")]);
    let refused = format!(
        "msg=\"refused; keeping the last files\" object=\"configmap {ns}/b\" op=judge key=x"
    );
    assert!(l.wait_log(&refused, T), "{}", l.log());
    k.configmap(&ns, "a", &[("x", "a goes on")]);
    converged(
        &l,
        &out,
        &[("x", "a goes on"), ("y", "from b")],
        &format!("configmap {ns}/a beside the refused {ns}/b"),
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn binary_data_and_secrets_are_written_byte_for_byte() {
    let k = server("bytes");
    let ns = namespace(&k, "bytes");
    let all: Vec<u8> = (0..=255u8).collect();
    let b64 = |b: &[u8]| envoy_xds_configmap_loader::base64::encode(b);
    k.put(
        &ns,
        "configmaps",
        "bin",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {}, "data": {"text": "t"}, "binaryData": {"blob": b64(&all)}}),
    );
    k.put(
        &ns,
        "secrets",
        "tls",
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {}, "type": "Opaque", "data": {"key.pem": b64(b"\x00secret\xff")}}),
    );
    let tmp = TempDir::new("real-bytes");
    let out = tmp.join("out");
    let mut l = Loader::start(
        &tmp,
        &args(&k, &ns, &out).configmap("bin").secret("tls").onetime(),
    );
    assert_eq!(l.wait(T).and_then(|s| s.code()), Some(0), "{}", l.log());
    let files = read_snapshot(&out);
    assert_eq!(
        files.get("blob"),
        Some(&all),
        "configmap {ns}/bin binaryData"
    );
    assert_eq!(files.get("text").map(Vec::as_slice), Some(&b"t"[..]));
    assert_eq!(
        files.get("key.pem").map(Vec::as_slice),
        Some(&b"\x00secret\xff"[..]),
        "secret {ns}/tls"
    );
    eprintln!("  configmap {ns}/bin and secret {ns}/tls: 256 + 1 + 8 bytes exact");
}

/// A ServiceAccount that may get, list and watch one ConfigMap, by `resourceNames`.
fn service_account(k: &Kube, ns: &str, sa: &str, configmap: &str) {
    k.put(
        ns,
        "serviceaccounts",
        sa,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {}}),
    );
    let rule = json!({"apiGroups": [""], "resources": ["configmaps"],
                      "resourceNames": [configmap], "verbs": ["get", "list", "watch"]});
    grant(k, ns, ns, sa, rule);
}

/// A Role named `sa` in `ns` with the one `rule`, bound to ServiceAccount `home/sa`.
fn grant(k: &Kube, ns: &str, home: &str, sa: &str, rule: serde_json::Value) {
    let rbac = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}");
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": sa, "namespace": ns}, "rules": [rule]});
    k.ok("POST", &format!("{rbac}/roles"), Some(&role));
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": sa, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": home}]});
    k.ok("POST", &format!("{rbac}/rolebindings"), Some(&binding));
}

/// Replaces the token file the way the kubelet does: a new file renamed over the old.
fn rotate(file: &Path, token: &str) {
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, token).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_resource_names_role_and_a_rotated_token_request_token_suffice() {
    let k = server("rbac");
    let ns = namespace(&k, "rbac");
    k.configmap(&ns, "envoy", &[("a", "1")]);
    k.configmap(&ns, "other", &[("secret", "not yours")]);
    service_account(&k, &ns, "loader", "envoy");
    for s in ["bind-1", "bind-2"] {
        k.put(
            &ns,
            "secrets",
            s,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}),
        );
    }
    let first = k.token_request(&ns, "loader", "bind-1");
    let tmp = TempDir::new("real-rbac");
    let token_file: PathBuf = tmp.join("token");
    rotate(&token_file, &first);
    // The Role allows nothing but this one ConfigMap.
    let (status, _) = k.call_as(
        &first,
        "GET",
        &format!("/api/v1/namespaces/{ns}/configmaps/other"),
        None,
        "application/json",
    );
    assert_eq!(status, 403, "the token may not read configmap {ns}/other");

    let out = tmp.join("out");
    let a = args(&k, &ns, &out)
        .set("-token-file", &token_file.display().to_string())
        .configmap("envoy")
        .watch("5s");
    let l = Loader::start(&tmp, &a);
    converged(&l, &out, &[("a", "1")], "with the first token");
    // Rotation: the file gets a new token, and the old one is revoked by deleting the
    // Secret it is bound to. The next watch (at most 10 s later) goes with the new token.
    rotate(&token_file, &k.token_request(&ns, "loader", "bind-2"));
    k.delete(&ns, "secrets", "bind-1");
    // The server caches a token's authentication for 10 s: revocation shows within that.
    let revoked_at = Instant::now();
    let path = format!("/api/v1/namespaces/{ns}/configmaps/envoy");
    assert!(
        wait_until(Duration::from_secs(15), || {
            k.call_as(&first, "GET", &path, None, "application/json").0 == 401
        }),
        "the old token is revoked"
    );
    eprintln!(
        "  secret {ns}/bind-1 deleted: its token refused after {} ms",
        revoked_at.elapsed().as_millis()
    );
    std::thread::sleep(Duration::from_secs(11));
    k.configmap(&ns, "envoy", &[("a", "2")]);
    converged(
        &l,
        &out,
        &[("a", "2")],
        &format!("configmap {ns}/envoy after the rotation"),
    );
    let log = l.log();
    assert!(
        !log.contains("code=403"),
        "every request was one the Role allows: {log}"
    );
    assert!(
        !log.contains("code=401"),
        "the revoked token was never sent: {log}"
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_restarted_api_server_is_watched_again() {
    let k = server("restart");
    let ns = namespace(&k, "restart");
    k.configmap(&ns, "envoy", &[("a", "1")]);
    let tmp = TempDir::new("real-restart");
    let out = tmp.join("out");
    let l = Loader::start(&tmp, &args(&k, &ns, &out).configmap("envoy").watch("30s"));
    converged(&l, &out, &[("a", "1")], "first list");
    let started = Instant::now();
    k.script("restart-apiserver");
    eprintln!(
        "  the API server restarted in {} ms",
        started.elapsed().as_millis()
    );
    k.configmap(&ns, "envoy", &[("a", "after the restart")]);
    converged(
        &l,
        &out,
        &[("a", "after the restart")],
        &format!("configmap {ns}/envoy after an API server restart"),
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_compacted_history_is_relisted() {
    let k = server("compact");
    let ns = namespace(&k, "compact");
    k.configmap(&ns, "envoy", &[("a", "1")]);
    let tmp = TempDir::new("real-compact");
    let out = tmp.join("out");
    let l = Loader::start(&tmp, &args(&k, &ns, &out).configmap("envoy").watch("30s"));
    converged(&l, &out, &[("a", "1")], "first list");
    // History moves on without the object, is compacted, and the restarted server's watch
    // cache starts after the loader's version: its next watch is "too old".
    for i in 0..5 {
        k.configmap(&ns, "unrelated", &[("i", &i.to_string())]);
    }
    k.script("compact");
    k.script("restart-apiserver");
    k.configmap(&ns, "envoy", &[("a", "after the compaction")]);
    converged(
        &l,
        &out,
        &[("a", "after the compaction")],
        &format!("configmap {ns}/envoy"),
    );
    let log = l.log();
    let relists = log
        .matches("msg=\"too old resource version; relisting\"")
        .count();
    assert!(
        relists >= 1,
        "configmap {ns}/envoy: no relist after the compaction: {log}"
    );
    eprintln!("  configmap {ns}/envoy: {relists} relist(s) after \"too old\"");
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn kill_9_then_restart_resumes_from_the_disk_and_the_server() {
    let k = server("kill");
    let ns = namespace(&k, "kill");
    k.configmap(&ns, "envoy", &[("a", "1")]);
    let tmp = TempDir::new("real-kill");
    let out = tmp.join("out");
    let a = args(&k, &ns, &out).configmap("envoy").watch("30s");
    let mut l = Loader::start(&tmp, &a);
    converged(&l, &out, &[("a", "1")], "first list");
    l.kill9();
    k.configmap(&ns, "envoy", &[("a", "changed while down")]);
    let l = Loader::start(&tmp, &a);
    converged(
        &l,
        &out,
        &[("a", "changed while down")],
        &format!("configmap {ns}/envoy after kill -9"),
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_restart_with_one_configmap_deleted_keeps_its_keys_and_follows_the_other() {
    let k = server("restart-deleted");
    let ns = namespace(&k, "restart-deleted");
    k.configmap(&ns, "a", &[("x", "a1")]);
    k.configmap(&ns, "b", &[("y", "b1")]);
    let tmp = TempDir::new("real-restart-deleted");
    let out = tmp.join("out");
    let a = args(&k, &ns, &out).configmaps(&["a", "b"]).watch("30s");
    let mut l = Loader::start(&tmp, &a);
    converged(&l, &out, &[("x", "a1"), ("y", "b1")], "two objects");
    l.kill9();
    k.delete(&ns, "configmaps", "a");
    let l = Loader::start(&tmp, &a);
    assert!(
        l.wait_log(
            &format!("msg=\"not found; keeping its last files\" object=\"configmap {ns}/a\""),
            T
        ),
        "{}",
        l.log()
    );
    k.configmap(&ns, "b", &[("y", "b2")]);
    converged(
        &l,
        &out,
        &[("x", "a1"), ("y", "b2")],
        &format!("configmap {ns}/b beside the deleted {ns}/a"),
    );
}

#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn an_emptied_listener_file_is_refused_beside_a_good_object() {
    let k = server("guard");
    let ns = namespace(&k, "guard");
    let lds = "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: l\n";
    k.configmap(&ns, "a", &[("lds.yaml", lds)]);
    k.configmap(&ns, "b", &[("rds.yaml", "r1")]);
    let tmp = TempDir::new("real-guard");
    let out = tmp.join("out");
    let l = Loader::start(
        &tmp,
        &args(&k, &ns, &out).configmaps(&["a", "b"]).watch("30s"),
    );
    converged(
        &l,
        &out,
        &[("lds.yaml", lds), ("rds.yaml", "r1")],
        "two objects",
    );
    k.configmap(&ns, "a", &[("lds.yaml", "resources: []\n")]);
    let refused = format!("object=\"configmap {ns}/a\" op=judge key=lds.yaml");
    assert!(l.wait_log(&refused, T), "{}", l.log());
    k.configmap(&ns, "b", &[("rds.yaml", "r2")]);
    converged(
        &l,
        &out,
        &[("lds.yaml", lds), ("rds.yaml", "r2")],
        &format!("configmap {ns}/b beside the refused {ns}/a"),
    );
}

/// The loader checks `-configmap-selector` syntax itself (exit 2 at start): every selector
/// it accepts, the server accepts, and every one it refuses (but the empty one, which the
/// loader refuses on purpose), the server refuses with 400.
#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn label_selector_syntax_agrees_with_the_server() {
    use envoy_xds_configmap_loader::selector;
    let k = server("selectors");
    let ns = namespace(&k, "selectors");
    let cases = [
        "app=envoy",
        "app==envoy",
        " app = envoy ",
        "tier!=db",
        "a=",
        "routes",
        "!legacy",
        "env in (prod, staging)",
        "env notin (dev)",
        "app.kubernetes.io/part-of=gateway,team in (a,b),!old",
        "a in (b,,c)",
        "a=b,",
        "-a=b",
        "a=b-",
        "a=b@c",
        "Example.com/a=b",
        "/a=b",
        "a in b",
        "a in (b",
        "a among (b)",
        "a in (b) c",
        "a b",
    ];
    let mut checked = 0;
    for text in cases {
        let ours = selector::parse(text).is_ok();
        let mut q = String::new();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let (status, v) = k.call(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps?labelSelector={q}"),
            None,
        );
        assert!(status == 200 || status == 400, "{text:?}: {status} {v}");
        assert_eq!(
            ours,
            status == 200,
            "{text:?}: we say {ours}, the server {status} {v}"
        );
        checked += 1;
    }
    eprintln!("  {checked} label selectors: the loader and the server agree on each");
}

/// The client's paged list and watch of a label selection (`kube::Client::list_page`,
/// `watch_selection`) against the server: pages at one version,
/// namespaced and cluster-wide, and a watch that hears objects enter and leave the
/// selection by their labels.
#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_label_selection_pages_and_watches_as_the_server_serves_it() {
    use envoy_xds_configmap_loader::config::{ApiServer, Kind};
    use envoy_xds_configmap_loader::kube::{Client, Selection, SelectionEvent};
    use envoy_xds_configmap_loader::selector;
    let k = server("selection");
    let (ns1, ns2) = (namespace(&k, "selection-a"), namespace(&k, "selection-b"));
    let put = |ns: &str, name: &str, labels: serde_json::Value, v: &str| {
        k.put(
            ns,
            "configmaps",
            name,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"labels": labels}, "data": {format!("{name}.yaml"): v}}),
        );
    };
    let sel = || {
        selector::parse(&format!("gateway=g{},team", std::process::id()))
            .unwrap()
            .to_string()
    };
    let yes = || json!({"gateway": format!("g{}", std::process::id()), "team": "x"});
    for i in 0..5 {
        put(&ns1, &format!("r{i}"), yes(), "1");
    }
    put(&ns1, "unlabelled", json!({}), "1");
    put(&ns2, "other", yes(), "1");
    let api = ApiServer {
        https: true,
        host: k.host.clone(),
        port: k.port,
        base_path: String::new(),
    };
    let trust = envoy_xds_configmap_loader::config::Trust::CaFile(k.ca.clone());
    let client = Client::new(api, k.token_file.clone(), &trust);
    let in_ns1 = Selection {
        kind: Kind::ConfigMap,
        namespace: Some(ns1.clone()),
        selector: sel(),
    };
    // Pages of 2: 3 pages, one version, and a change between pages does not show.
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut version = None;
    let mut pages = 0;
    loop {
        let page = client.list_page(&in_ns1, 2, token.as_deref()).unwrap();
        pages += 1;
        assert_eq!(
            *version.get_or_insert(page.resource_version.clone()),
            page.resource_version
        );
        names.extend(page.members.iter().map(|m| m.object.name.clone()));
        if pages == 1 {
            put(&ns1, "r4", yes(), "changed between pages");
        }
        for m in &page.members {
            let data = m.content.files.as_ref().unwrap();
            assert_eq!(
                data.values().next().map(|v| v.as_slice()),
                Some(&b"1"[..]),
                "{}",
                m.object
            );
            assert!(
                !m.created.is_empty(),
                "{} has a creationTimestamp",
                m.object
            );
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(
        names,
        ["r0", "r1", "r2", "r3", "r4"],
        "selected, in name order"
    );
    assert_eq!(pages, 3);
    // Cluster-wide: both namespaces.
    let everywhere = Selection {
        namespace: None,
        ..in_ns1.clone()
    };
    let all = client.list_page(&everywhere, 500, None).unwrap();
    let mut seen: Vec<String> = all.members.iter().map(|m| m.object.to_string()).collect();
    seen.sort();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.contains(&format!("configmap {ns2}/other")), "{seen:?}");
    // The watch: unlabelling is DELETED, labelling ADDED.
    let from = client
        .list_page(&in_ns1, 500, None)
        .unwrap()
        .resource_version;
    let mut w = client
        .watch_selection(&in_ns1, &from, 10, Duration::from_secs(15))
        .unwrap();
    put(&ns1, "r0", json!({}), "1");
    put(&ns1, "unlabelled", yes(), "now selected");
    let mut heard = Vec::new();
    while heard.len() < 2 {
        match w.next().unwrap() {
            Some(SelectionEvent::Upsert(m)) => heard.push(format!("upsert {}", m.object.name)),
            Some(SelectionEvent::Deleted { object, .. }) => {
                heard.push(format!("deleted {}", object.name))
            }
            Some(SelectionEvent::Bookmark { .. }) => {}
            other => panic!("{other:?} after {heard:?}"),
        }
    }
    assert_eq!(heard, ["deleted r0", "upsert unlabelled"]);
    // A continue token whose version was compacted away: 410, which starts the list again.
    let first = client.list_page(&in_ns1, 2, None).unwrap();
    let stale = first.continue_token.expect("a second page");
    put(&ns1, "r1", yes(), "after the first page");
    k.script("compact");
    match client.list_page(&in_ns1, 2, Some(&stale)) {
        Err(e) => assert!(e.is_gone(), "an expired continue token is 410 Gone: {e}"),
        Ok(page) => panic!(
            "a compacted continue token still served {} members",
            page.members.len()
        ),
    }
    // What sync::selection::list_all does on it: the list again from the start.
    let again = client.list_page(&in_ns1, 500, None).unwrap();
    assert_eq!(again.members.len(), 5, "the list from the start");
    eprintln!("  selection in {ns1}: 5 of 6 in 3 pages at version {}; cluster-wide 6; unlabel -> DELETED, label -> ADDED; a compacted continue token -> 410", version.unwrap());
}

/// A label for one test run: selections in this tier never see another run's objects.
fn run_label(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// Creates or replaces `plural` `ns/name` labelled `gateway=LABEL` (or unlabelled when
/// `label` is empty) with text `data` (base64 for a Secret).
fn labelled(k: &Kube, ns: &str, plural: &str, name: &str, label: &str, data: &[(&str, &str)]) {
    let labels = if label.is_empty() {
        json!({})
    } else {
        json!({ "gateway": label })
    };
    let secret = plural == "secrets";
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(key, v)| {
            let v = if secret {
                envoy_xds_configmap_loader::base64::encode(v.as_bytes())
            } else {
                v.to_string()
            };
            (key.to_string(), json!(v))
        })
        .collect();
    let kind = if secret { "Secret" } else { "ConfigMap" };
    k.put(
        ns,
        plural,
        name,
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"labels": labels}, "data": data}),
    );
}

/// A ServiceAccount in `home` that may list and watch ConfigMaps and Secrets in each of
/// `namespaces` (a Role and a RoleBinding in each, as tests/k8s/rbac-selector.yaml grants):
/// no `get`, no `resourceNames`, nothing cluster-wide.
fn selecting_account(k: &Kube, home: &str, sa: &str, namespaces: &[&str]) {
    k.put(
        home,
        "serviceaccounts",
        sa,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {}}),
    );
    for ns in namespaces {
        let rule = json!({"apiGroups": [""], "resources": ["configmaps", "secrets"],
                          "verbs": ["list", "watch"]});
        grant(k, ns, home, sa, rule);
    }
}

/// A ServiceAccount in `home` bound, as tests/k8s/rbac-selector-cluster.yaml binds it, to
/// a ClusterRole that may list and watch ConfigMaps and Secrets in every namespace (no
/// `get`); a token for it, bound to a Secret of its own.
fn cluster_selecting_token(k: &Kube, home: &str, sa: &str) -> String {
    k.put(
        home,
        "serviceaccounts",
        sa,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {}}),
    );
    let name = format!("{sa}-{home}");
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"],
                   "verbs": ["list", "watch"]}]});
    k.ok("POST", &format!("{rbac}/clusterroles"), Some(&role));
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": home}]});
    k.ok(
        "POST",
        &format!("{rbac}/clusterrolebindings"),
        Some(&binding),
    );
    k.put(
        home,
        "secrets",
        "bind",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}),
    );
    k.token_request(home, sa, "bind")
}

/// Selections in two namespaces with list+watch Roles only: members by label, labelling,
/// unlabelling, deleting, a collision that refuses the newcomer alone (and clears when the
/// incumbent lets the key go), and Secrets by selector.
#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn selections_follow_labels_in_two_namespaces_with_list_and_watch_roles() {
    let k = server("select");
    let (a, b) = (namespace(&k, "select-a"), namespace(&k, "select-b"));
    let gw = run_label("select");
    // Seen together in one list: the older creationTimestamp holds the key, though the
    // newer sorts first by name (the server's timestamps have whole seconds).
    labelled(&k, &a, "configmaps", "zz-old", &gw, &[("tie.yaml", "old")]);
    std::thread::sleep(Duration::from_millis(1100));
    labelled(
        &k,
        &a,
        "configmaps",
        "aa-new",
        &gw,
        &[("tie.yaml", "new"), ("n.yaml", "n")],
    );
    labelled(&k, &a, "configmaps", "one", &gw, &[("one.yaml", "1")]);
    labelled(&k, &a, "configmaps", "plain", "", &[("plain.yaml", "p")]);
    labelled(&k, &b, "configmaps", "two", &gw, &[("two.yaml", "2")]);
    labelled(&k, &b, "secrets", "tls", &gw, &[("cert.pem", "PEM\n")]);
    selecting_account(&k, &a, "selector", &[&a, &b]);
    k.put(
        &a,
        "secrets",
        "bind",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}),
    );
    let tmp = TempDir::new("real-select");
    let token_file = tmp.join("token");
    rotate(&token_file, &k.token_request(&a, "selector", "bind"));
    let out = tmp.join("out");
    let sel = format!("gateway={gw}");
    let args = args(&k, &a, &out)
        .set("-token-file", &token_file.display().to_string())
        .value("-configmap-selector", &sel)
        .value("-secret-selector", &sel)
        .value("-selector-namespaces", &format!("{a},{b}"))
        .watch("30s");
    let l = Loader::start(&tmp, &args);
    let mut want = vec![
        ("tie.yaml", "old"),
        ("one.yaml", "1"),
        ("two.yaml", "2"),
        ("cert.pem", "PEM\n"),
    ];
    converged(&l, &out, &want, "two namespaces, ConfigMaps and a Secret");
    let refusal = |held: &str| {
        l.log()
            .lines()
            .find(|s| s.contains(&format!("held_by=\"configmap {held}\"")))
            .map(str::to_string)
    };
    let tie = refusal(&format!("{a}/zz-old")).unwrap_or_else(|| panic!("{}", l.log()));
    assert!(
        tie.contains(&format!("object=\"configmap {a}/aa-new\"")) && tie.contains("key=tie.yaml"),
        "{tie}"
    );
    labelled(&k, &a, "configmaps", "plain", &gw, &[("plain.yaml", "p")]);
    want.push(("plain.yaml", "p"));
    converged(&l, &out, &want, &format!("configmap {a}/plain labelled"));
    labelled(&k, &b, "configmaps", "two", "", &[("two.yaml", "2")]);
    want.retain(|(key, _)| *key != "two.yaml");
    converged(&l, &out, &want, &format!("configmap {b}/two unlabelled"));
    k.delete(&a, "configmaps", "plain");
    want.retain(|(key, _)| *key != "plain.yaml");
    converged(&l, &out, &want, &format!("configmap {a}/plain deleted"));
    // A newcomer with a key that configmap a/one holds: refused alone.
    labelled(
        &k,
        &b,
        "configmaps",
        "late",
        &gw,
        &[("one.yaml", "late"), ("l.yaml", "l")],
    );
    let held = format!("held_by=\"configmap {a}/one\"");
    assert!(l.wait_log(&held, T), "{}", l.log());
    let line = refusal(&format!("{a}/one")).unwrap();
    assert!(
        line.contains(&format!("object=\"configmap {b}/late\"")) && line.contains("key=one.yaml"),
        "one line naming both objects and the key: {line}"
    );
    labelled(&k, &b, "secrets", "tls", &gw, &[("cert.pem", "PEM2\n")]);
    let want2 = [
        ("tie.yaml", "old"),
        ("one.yaml", "1"),
        ("cert.pem", "PEM2\n"),
    ];
    converged(
        &l,
        &out,
        &want2,
        &format!("secret {b}/tls beside the refused {b}/late"),
    );
    // The incumbent drops the key: the newcomer gets in whole.
    labelled(&k, &a, "configmaps", "one", &gw, &[("o.yaml", "1")]);
    let want3 = [
        ("tie.yaml", "old"),
        ("o.yaml", "1"),
        ("cert.pem", "PEM2\n"),
        ("one.yaml", "late"),
        ("l.yaml", "l"),
    ];
    converged(
        &l,
        &out,
        &want3,
        &format!("configmap {b}/late after {a}/one let the key go"),
    );
    let log = l.log();
    assert!(
        !log.contains("code=403"),
        "every request was one the Roles allow: {log}"
    );
}

/// A cluster-wide selection (`*`) of 1,200 ConfigMaps in two namespaces, with the token of
/// a ServiceAccount that only a list+watch ClusterRole allows: a one-shot reads them in
/// three pages of at most 500; a watch that is restarted after a member is deleted removes
/// its keys; a relist after "too old" (compaction and a restarted server) writes nothing.
#[test]
#[ignore = "needs a real kube-apiserver: scripts/test-real-apiserver.sh runs it"]
fn a_cluster_wide_selection_of_1200_pages_restarts_and_relists_quietly() {
    let k = server("select-all");
    let (a, b) = (namespace(&k, "select-all-a"), namespace(&k, "select-all-b"));
    let gw = run_label("select-all");
    let created = Instant::now();
    for i in 0..1200 {
        let ns = if i % 2 == 0 { &a } else { &b };
        let key = format!("r{i:04}.yaml");
        labelled(
            &k,
            ns,
            "configmaps",
            &format!("r{i:04}"),
            &gw,
            &[(&key, "x")],
        );
    }
    eprintln!(
        "  1,200 ConfigMaps created in {} ms",
        created.elapsed().as_millis()
    );
    let tmp = TempDir::new("real-select-all");
    let token_file = tmp.join("token");
    rotate(&token_file, &cluster_selecting_token(&k, &a, "selector"));
    let out = tmp.join("out");
    let sel = format!("gateway={gw}");
    let base = args(&k, &a, &out)
        .set("-token-file", &token_file.display().to_string())
        .value("-configmap-selector", &sel)
        .value("-selector-namespaces", "*");
    let started = Instant::now();
    let mut one = Loader::start(&tmp, &base.clone().onetime());
    assert_eq!(one.wait(T).and_then(|s| s.code()), Some(0), "{}", one.log());
    assert_eq!(read_text(&out).len(), 1200);
    assert!(
        one.log().contains(" members=1200 pages=3 "),
        "pages of 500: {}",
        one.log()
    );
    eprintln!(
        "  -onetime: 1,200 selected ConfigMaps written in {} ms",
        started.elapsed().as_millis()
    );
    // A watch from what is on disk; stopped; a member deleted meanwhile.
    let mut l = Loader::start(&tmp, &base.clone().watch("30s"));
    assert!(l.wait_log("ready", T), "{}", l.log());
    l.signal("TERM");
    assert!(l.wait(T).is_some());
    k.delete(&b, "configmaps", "r0001");
    let l = Loader::start(&tmp, &base.watch("30s"));
    assert!(
        wait_until(T, || read_text(&out).len() == 1199),
        "{}",
        l.log()
    );
    assert!(!read_text(&out).contains_key("r0001.yaml"));
    let writes = written(&l, 1);
    // "Too old": history compacted and the server restarted; the relist finds the same.
    labelled(&k, &a, "configmaps", "unrelated", "", &[("u", "1")]);
    k.script("compact");
    k.script("restart-apiserver");
    assert!(
        l.wait_log(
            "too old resource version; relisting",
            Duration::from_secs(60)
        ),
        "{}",
        l.log()
    );
    labelled(
        &k,
        &a,
        "configmaps",
        "r0000",
        &gw,
        &[("r0000.yaml", "after")],
    );
    assert!(
        wait_until(T, || read_text(&out).get("r0000.yaml").map(String::as_str)
            == Some("after")),
        "{}",
        l.log()
    );
    assert_eq!(
        written(&l, writes + 1),
        writes + 1,
        "the relist wrote nothing: {}",
        l.log()
    );
    assert!(
        !l.log().contains("code=403"),
        "the ClusterRole allows every request: {}",
        l.log()
    );
    eprintln!("  restart removed the deleted member; relist after compaction wrote nothing; a list+watch ClusterRole sufficed");
}
