//! The flag tables: every flag, Go's syntax, defaults, and the errors of bad values.

use super::*;

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

fn run(args: &[&str], vars: &'static [(&'static str, &'static str)]) -> Result<Config, String> {
    let args = args.iter().map(OsString::from).collect();
    match parse(args, &env_of(vars), Path::new("/nonexistent-sa-dir")) {
        Ok(Parsed::Run(c)) => Ok(*c),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.0),
    }
}

#[test]
fn go_flag_forms_are_equivalent() {
    let forms: &[&[&str]] = &[
        &["-configmap", "envoy", "-namespace", "ns1", "-watch"],
        &["--configmap", "envoy", "--namespace", "ns1", "--watch"],
        &["-configmap=envoy", "-namespace=ns1", "-watch=true"],
        &["--configmap=envoy", "--namespace=ns1", "-watch=1", "--"],
    ];
    for args in forms {
        let c = run(args, &[]).unwrap();
        assert_eq!(c.mode, Mode::Watch, "{args:?}");
        assert_eq!(
            c.objects,
            vec![ObjectRef {
                kind: Kind::ConfigMap,
                namespace: "ns1".into(),
                name: "envoy".into()
            }]
        );
        assert_eq!(c.sync_interval, Duration::from_secs(600));
    }
}

#[test]
fn defaults_match_the_original_tool() {
    let c = run(&["-configmap", "x"], &[("NS", "from-ns")]).unwrap();
    assert_eq!(c.mode, Mode::Poll);
    assert_eq!(c.sync_interval, Duration::from_secs(60));
    assert_eq!(c.apiserver.to_string(), "https://kubernetes:443");
    assert_eq!(c.objects[0].namespace, "from-ns");
    assert_eq!(c.output_dir, PathBuf::from("/srv/runtime/current"));
    assert_eq!(c.token_file, PathBuf::from("/nonexistent-sa-dir/token"));
    assert_eq!(c.trust, Trust::WebPkiRoots);
    assert_eq!(c.watch_timeout, Duration::from_secs(300));
    assert_eq!(c.listen, None);
}

#[test]
fn selections_are_each_selector_in_each_namespace() {
    let sels = |args: &[&str]| -> Result<Vec<String>, String> {
        run(args, &[("NS", "home")]).map(|c| c.selections.iter().map(|s| s.to_string()).collect())
    };
    assert_eq!(
        sels(&["-configmap-selector", " app = gw ,tier in (a, b)"]).unwrap(),
        ["configmaps in home with app=gw,tier in (a,b)"],
        "the namespace by default; the selector normalised"
    );
    assert_eq!(
        sels(&[
            "-configmap-selector=app=gw",
            "--secret-selector",
            "!legacy",
            "-selector-namespaces",
            "a, b",
        ])
        .unwrap(),
        [
            "configmaps in a with app=gw",
            "configmaps in b with app=gw",
            "secrets in a with !legacy",
            "secrets in b with !legacy",
        ]
    );
    assert_eq!(
        sels(&[
            "-configmap-selector",
            "app",
            "-selector-namespaces",
            "*",
            "-configmap",
            "x"
        ])
        .unwrap(),
        ["configmaps in * with app"],
        "every namespace: one source; named objects beside it"
    );
    for (args, want) in [
        (
            &["-configmap-selector", "app in (a"][..],
            "invalid value \"app in (a\" for -configmap-selector: ",
        ),
        (&["-secret-selector", "a=-b"], "for -secret-selector: "),
        (&["-configmap-selector", " "], "empty"),
        (
            &["-configmap-selector", "a", "-configmap-selector", "a"],
            "is given twice",
        ),
        (
            &["-configmap-selector", "a", "-selector-namespaces", "a,*"],
            "stands alone",
        ),
        (
            &["-configmap-selector", "a", "-selector-namespaces", "a,a"],
            "\"a\" is given twice",
        ),
        (
            &["-configmap-selector", "a", "-selector-namespaces", "a,,b"],
            "namespace \"\"",
        ),
        (
            &["-configmap", "x", "-selector-namespaces", "a"],
            "needs a -configmap-selector",
        ),
    ] {
        let e = sels(args).unwrap_err();
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let no_ns = run(&["-configmap-selector", "a"], &[]).unwrap_err();
    assert!(no_ns.contains("selectors need a namespace"), "{no_ns}");
}

#[test]
fn file_modes() {
    for (v, want) in [
        ("0644", Ok(0o644)),
        ("440", Ok(0o440)),
        ("0o400", Ok(0o400)),
        ("0", Ok(0)),
        ("0777", Ok(0o777)),
        ("1777", Err(())),
        ("0899", Err(())),
        ("rw-r--r--", Err(())),
        ("", Err(())),
        ("+644", Err(())),
    ] {
        let r = run(
            &["-configmap", "x", "-namespace", "n", "-file-mode", v],
            &[],
        );
        match want {
            Ok(m) => assert_eq!(r.unwrap().file_mode, m, "{v}"),
            Err(()) => assert!(r.unwrap_err().contains("-file-mode"), "{v}"),
        }
    }
    assert_eq!(
        run(&["-configmap", "x", "-namespace", "n"], &[])
            .unwrap()
            .file_mode,
        0o644
    );
}

#[test]
fn listen_addresses() {
    for (v, want) in [
        (":9090", Ok(":9090")),
        ("127.0.0.1:0", Ok("127.0.0.1:0")),
        ("[::]:1", Ok("[::]:1")),
        ("localhost:1", Err(())),
        ("9090", Err(())),
    ] {
        let r = run(&["-configmap", "x", "-namespace", "n", "-listen", v], &[]);
        match want {
            Ok(a) => assert_eq!(r.unwrap().listen.as_deref(), Some(a)),
            Err(()) => assert!(r.unwrap_err().contains("-listen"), "{v}"),
        }
    }
}

#[test]
fn envoy_admin_urls_and_timeouts() {
    let base = ["-configmap", "x", "-namespace", "n", "-watch"];
    let with = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        run(&args, &[])
    };
    assert_eq!(with(&[]).unwrap().envoy, None, "off by default");
    let ten = Duration::from_secs(10);
    for (v, want) in [
        ("http://127.0.0.1:9901", Ok(("127.0.0.1", 9901))),
        ("http://127.0.0.1:9901/", Ok(("127.0.0.1", 9901))),
        ("http://[::1]:9901", Ok(("::1", 9901))),
        ("http://localhost", Ok(("localhost", 80))),
        ("http://10.1.2.3:9901", Ok(("10.1.2.3", 9901))),
        ("https://127.0.0.1:9901", Err("plain http://")),
        ("http://127.0.0.1:9901/stats", Err("no path")),
        ("127.0.0.1:9901", Err("must start with")),
        ("http://127.0.0.1:0", Err("bad port")),
        ("http://::1:9901", Err("brackets")),
    ] {
        let r = with(&["-envoy-admin", v]);
        match want {
            Ok((host, port)) => {
                let e = r.unwrap().envoy.unwrap();
                assert_eq!(
                    (e.host.as_str(), e.port, e.timeout),
                    (host, port, ten),
                    "{v}"
                );
            }
            Err(why) => {
                let e = r.unwrap_err();
                assert!(e.contains("-envoy-admin") && e.contains(why), "{v}: {e}");
            }
        }
    }
    let e = with(&["-envoy-admin=http://[::1]:9901", "-envoy-timeout", "2.5s"])
        .unwrap()
        .envoy
        .unwrap();
    assert_eq!(e.timeout, Duration::from_millis(2500));
    assert_eq!(e.to_string(), "http://[::1]:9901");
    for (args, why) in [
        (&["-envoy-timeout", "1s"][..], "needs -envoy-admin"),
        (
            &["-envoy-admin", "http://127.0.0.1:1", "-envoy-timeout", "0s"],
            "positive",
        ),
        (
            &[
                "-envoy-admin",
                "http://127.0.0.1:1",
                "-envoy-timeout",
                "ten",
            ],
            "-envoy-timeout",
        ),
    ] {
        let e = with(args).unwrap_err();
        assert!(e.contains(why), "{args:?}: {e}");
    }
}

#[test]
fn namespace_precedence() {
    let both = &[("NS", "a"), ("POD_NAMESPACE", "b")];
    assert_eq!(run(&["-configmap", "x"], both).unwrap().namespace, "a");
    assert_eq!(
        run(&["-configmap", "x"], &[("POD_NAMESPACE", "b")])
            .unwrap()
            .namespace,
        "b"
    );
    assert_eq!(
        run(&["-configmap", "x", "-namespace", "c"], both)
            .unwrap()
            .namespace,
        "c"
    );
    let c = run(&["-configmap", "other/x", "-configmap", "y"], both).unwrap();
    assert_eq!(c.objects[0].namespace, "other");
    assert_eq!(c.objects[1].namespace, "a");
    let e = run(&["-configmap", "x"], &[]).unwrap_err();
    assert!(e.contains("no namespace"), "{e}");
}

#[test]
fn in_cluster_apiserver_default() {
    let c = run(
        &["-configmap", "x", "-namespace", "n"],
        &[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ],
    )
    .unwrap();
    assert_eq!(c.apiserver.host, "10.96.0.1");
    assert_eq!(c.apiserver.port, 443);
    let c = run(
        &["-configmap", "x", "-namespace", "n"],
        &[
            ("KUBERNETES_SERVICE_HOST", "fd00::1"),
            ("KUBERNETES_SERVICE_PORT", "6443"),
        ],
    )
    .unwrap();
    assert_eq!(c.apiserver.host, "fd00::1");
    assert_eq!(c.apiserver.host_header(), "[fd00::1]:6443");
}

#[test]
fn apiserver_urls() {
    let table: &[(&str, Result<(bool, &str, u16, &str), &str>)] = &[
        ("https://kubernetes", Ok((true, "kubernetes", 443, ""))),
        ("http://127.0.0.1:8001", Ok((false, "127.0.0.1", 8001, ""))),
        ("http://127.0.0.1:8001/", Ok((false, "127.0.0.1", 8001, ""))),
        ("https://[::1]:6443", Ok((true, "::1", 6443, ""))),
        ("https://[::1]", Ok((true, "::1", 443, ""))),
        (
            "https://h/k8s/clusters/c-1/",
            Ok((true, "h", 443, "/k8s/clusters/c-1")),
        ),
        ("http://localhost:8001", Ok((false, "localhost", 8001, ""))),
        ("http://127.1.2.3:8001", Ok((false, "127.1.2.3", 8001, ""))),
        ("http://[::1]:8001", Ok((false, "::1", 8001, ""))),
        ("http://10.0.0.1:8080", Err("cleartext")),
        ("http://kubernetes", Err("cleartext")),
        ("http://[fd00::1]:80", Err("cleartext")),
        ("ftp://x", Err("must start with")),
        ("https://", Err("no host")),
        ("https://::1:443", Err("brackets")),
        ("https://[::1", Err("unclosed")),
        ("https://h:0", Err("bad port")),
        ("https://h:99999", Err("bad port")),
        ("https://u:p@h", Err("credentials")),
        ("https://h/?a=b", Err("query")),
        ("https://h h", Err("bad host")),
    ];
    for (url, want) in table {
        match (parse_apiserver(url), want) {
            (Ok(a), Ok((https, host, port, path))) => {
                assert_eq!(
                    (a.https, a.host.as_str(), a.port, a.base_path.as_str()),
                    (*https, *host, *port, *path),
                    "{url}"
                )
            }
            (Err(e), Err(frag)) => assert!(e.0.contains(frag), "{url}: {e}"),
            (got, _) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn usage_errors_name_the_flag() {
    let table: &[(&[&str], &str)] = &[
        (&["-configmap"], "flag needs an argument: -configmap"),
        (
            &["-confgmap", "x"],
            "flag provided but not defined: -confgmap (did you mean -configmap?)",
        ),
        (&["-bogus"], "flag provided but not defined: -bogus"),
        (&["-namespace", "n"], "at least one -configmap"),
        (
            &["-configmap", "x", "-namespace", "n", "extra"],
            "unexpected argument \"extra\"",
        ),
        (
            &["-configmap", "x", "-namespace", "n", "--", "extra"],
            "unexpected argument \"extra\"",
        ),
        (
            &["-configmap", "x", "-namespace", "n", "-watch=maybe"],
            "invalid boolean value \"maybe\" for -watch",
        ),
        (
            &["-configmap", "x", "-namespace", "n", "-sync-interval", "10"],
            "invalid value \"10\" for -sync-interval",
        ),
        (
            &[
                "-configmap",
                "x",
                "-namespace",
                "n",
                "-sync-interval",
                "-1s",
            ],
            "must not be negative",
        ),
        (
            &["-configmap", "x", "-namespace", "n", "-onetime", "-watch"],
            "exclude each other",
        ),
        (
            &["-configmap", "Bad_Name", "-namespace", "n"],
            "name \"Bad_Name\"",
        ),
        (&["-configmap", "a/b/c", "-namespace", "n"], "name \"b/c\""),
        (
            &["-configmap", "x", "-configmap", "n/x", "-namespace", "n"],
            "given twice",
        ),
        (&["---configmap=x"], "bad flag syntax"),
        (
            &["-configmap", "x", "-namespace", "n", "-sync-interval", "0"],
            "must be positive",
        ),
    ];
    for (args, want) in table {
        let e = run(args, &[]).unwrap_err();
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn help_and_version() {
    for a in ["-h", "-help", "--help", "--h"] {
        let r = parse(vec![a.into()], &|_| None, Path::new("/x"));
        assert!(matches!(r, Ok(Parsed::Help)), "{a}");
    }
    let r = parse(vec!["-version".into()], &|_| None, Path::new("/x"));
    assert!(matches!(r, Ok(Parsed::Version)));
}

#[test]
fn go_durations() {
    let ok: &[(&str, u64)] = &[
        ("0", 0),
        ("1m0s", 60_000),
        ("30s", 30_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        ("1.5s", 1_500),
        (".5s", 500),
        ("2h45m10s", 9_910_000),
        ("1000us", 1),
        ("1000µs", 1),
        ("+5s", 5_000),
    ];
    for (s, ms) in ok {
        assert_eq!(
            parse_go_duration(s).unwrap(),
            Duration::from_millis(*ms),
            "{s}"
        );
    }
    for bad in [
        "",
        "5",
        "s",
        "1x",
        "1.2.3s",
        "-1s",
        "1s-",
        "9999999999h",
        ".",
    ] {
        assert!(parse_go_duration(bad).is_err(), "{bad}");
    }
    for (d, s) in [
        (60_000, "1m0s"),
        (600_000, "10m0s"),
        (500, "500ms"),
        (5_400_000, "1h30m0s"),
        (1_500, "1.5s"),
    ] {
        assert_eq!(format_go_duration(Duration::from_millis(d)), s);
    }
}

#[test]
fn trust_choices() {
    let c = run(&["-configmap", "x", "-namespace", "n", "-insecure"], &[]).unwrap();
    assert_eq!(c.trust, Trust::Insecure);
    let c = run(
        &["-configmap", "x", "-namespace", "n", "-ca-file", "/ca.pem"],
        &[],
    )
    .unwrap();
    assert_eq!(c.trust, Trust::CaFile("/ca.pem".into()));
    let e = run(
        &[
            "-configmap",
            "x",
            "-namespace",
            "n",
            "-insecure",
            "-ca-file",
            "/c",
        ],
        &[],
    )
    .unwrap_err();
    assert!(e.contains("exclude"));
}

#[test]
fn secrets_are_objects_too() {
    let c = run(
        &["-secret", "tls", "-configmap", "x", "-namespace", "n"],
        &[],
    )
    .unwrap();
    assert_eq!(c.objects[0].kind, Kind::Secret);
    assert_eq!(c.objects[1].kind, Kind::ConfigMap);
}
