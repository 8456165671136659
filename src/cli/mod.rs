//! Command-line flags, in Go's `flag` syntax, for drop-in compatibility with the original
//! loader: `-flag`, `--flag`, `-flag=value`, `-flag value`; booleans also `-flag=true|false`;
//! durations in Go syntax (`1m0s`, `500ms`, `1h30m`).
//!
//! Parsing is a function of the arguments, an environment lookup and the service-account
//! directory: the only file it reads is that directory's `namespace` (the last default of
//! `-namespace`), and it asks whether `ca.crt` exists (the default of `-ca-file`). It
//! builds the plain data of [`crate::config`] and never exits the process; the caller turns
//! a [`UsageError`] into exit code 2.

use crate::config::{ApiServer, Config, EnvoyAdmin, Kind, Mode, ObjectRef, Selection, Trust};
use crate::selector;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the service-account files live inside a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The result of parsing: run, or print help / version and exit 0.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Config>),
    Help,
    Version,
}

/// A bad command line: the message names the flag; exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const HELP: &str = "\
envoy-xds-configmap-loader: write Kubernetes ConfigMap keys as files into a directory that
switches as a whole (for Envoy file-based xDS)

Usage: envoy-xds-configmap-loader [flags]

Flags (Go syntax: -flag, --flag, -flag=value, -flag value):
  -apiserver URL        API server, https:// or http:// (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
                        else https://kubernetes)
  -configmap NAME       ConfigMap to load, NAME or NAMESPACE/NAME; repeatable
  -secret NAME          Secret to load (values base64-decoded), NAME or NAMESPACE/NAME; repeatable
  -configmap-selector SEL
                        every ConfigMap that the label selector SEL selects (a=b, a!=b,
                        a in (x,y), a notin (x), a, !a; comma = and); repeatable
  -secret-selector SEL  the same for Secrets (values base64-decoded); repeatable
  -selector-namespaces LIST
                        comma-separated namespaces the selectors apply in, or * for every
                        namespace (default the -namespace value)
  -namespace NS         namespace of unqualified names (default $NS, then $POD_NAMESPACE,
                        then the service-account namespace file)
  -token-file PATH      bearer token, re-read before every request
                        (default /var/run/secrets/kubernetes.io/serviceaccount/token)
  -ca-file PATH         CA bundle (PEM) for the server (default the service-account ca.crt
                        when it exists, else the public web roots)
  -insecure             do not verify the server certificate
  -output-dir DIR       where the files appear (default /srv/runtime/current)
  -onetime              load once, write, exit (init container)
  -watch                list and watch, near real time (sidecar)
  -sync-interval D      poll period without -watch (default 1m0s); with -watch the period of a
                        jittered safety-net relist (default 10m0s; 0 turns it off)
  -watch-timeout D      server-side watch timeout, jittered per watch (default 5m0s)
  -onetime-timeout D    how long -onetime retries transient API failures (default 1m0s)
  -file-mode MODE       permission bits of the files, octal, e.g. 0440 (default 0644)
  -dry-run              print what would be written (name, size, content); touch nothing
  -allow-empty-resources
                        allow an update that leaves a Listener or Cluster file with no resources
  -fsync                fsync files and directories on every snapshot
  -listen ADDR          serve /readyz, /healthz and /metrics on ADDR (e.g. :9090); off by default
  -envoy-admin URL      Envoy's admin (e.g. http://127.0.0.1:9901): apply each update in phases,
                        providers (Secrets, endpoints, clusters) before consumers (routes,
                        listeners), each acknowledged by Envoy; off by default (not with -onetime)
  -envoy-timeout D      the longest wait for Envoy's acknowledgement of one phase (default 10s)
  -version              print the version and exit
  -h, -help             print this help and exit
";

/// Flags that take no value.
const BOOL_FLAGS: &[&str] = &[
    "insecure",
    "onetime",
    "watch",
    "dry-run",
    "allow-empty-resources",
    "fsync",
    "version",
    "h",
    "help",
];
/// Flags that take a value.
const VALUE_FLAGS: &[&str] = &[
    "apiserver",
    "configmap",
    "secret",
    "configmap-selector",
    "secret-selector",
    "selector-namespaces",
    "namespace",
    "token-file",
    "ca-file",
    "output-dir",
    "sync-interval",
    "watch-timeout",
    "onetime-timeout",
    "file-mode",
    "listen",
    "envoy-admin",
    "envoy-timeout",
];

/// Raw flag values before defaults and validation.
#[derive(Default)]
struct Raw {
    apiserver: Option<String>,
    objects: Vec<(Kind, String)>,
    selectors: Vec<(Kind, String)>,
    selector_namespaces: Option<String>,
    namespace: Option<String>,
    token_file: Option<String>,
    ca_file: Option<String>,
    output_dir: Option<String>,
    sync_interval: Option<Duration>,
    watch_timeout: Option<Duration>,
    onetime_timeout: Option<Duration>,
    file_mode: Option<u32>,
    listen: Option<String>,
    envoy_admin: Option<String>,
    envoy_timeout: Option<Duration>,
    insecure: bool,
    onetime: bool,
    watch: bool,
    dry_run: bool,
    allow_empty_resources: bool,
    fsync: bool,
    version: bool,
    help: bool,
}

/// Parses `args` (without the program name). `env` looks up environment variables;
/// `sa_dir` is the service-account directory (its `namespace` and `ca.crt` supply defaults).
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    sa_dir: &Path,
) -> Result<Parsed, UsageError> {
    let raw = parse_raw(args)?;
    if raw.help {
        return Ok(Parsed::Help);
    }
    if raw.version {
        return Ok(Parsed::Version);
    }
    build(raw, env, sa_dir).map(|c| Parsed::Run(Box::new(c)))
}

fn parse_raw(args: Vec<OsString>) -> Result<Raw, UsageError> {
    let mut raw = Raw::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| UsageError(format!("argument {a:?} is not valid UTF-8")))?;
        if arg == "--" {
            if let Some(extra) = args.next() {
                return Err(UsageError(format!("unexpected argument {extra:?}")));
            }
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(UsageError(format!(
                "unexpected argument {arg:?} (flags start with -)"
            )));
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(UsageError(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if BOOL_FLAGS.contains(&name) {
            let on = match inline.as_deref() {
                None => true,
                Some(v) => parse_go_bool(v).ok_or_else(|| {
                    UsageError(format!(
                        "invalid boolean value {v:?} for -{name}: use true or false"
                    ))
                })?,
            };
            set_bool(&mut raw, name, on);
        } else if VALUE_FLAGS.contains(&name) {
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| UsageError(format!("flag needs an argument: -{name}")))?
                    .into_string()
                    .map_err(|v| UsageError(format!("value {v:?} of -{name} is not UTF-8")))?,
            };
            set_value(&mut raw, name, value)?;
        } else {
            let hint = suggest(name)
                .map(|s| format!(" (did you mean -{s}?)"))
                .unwrap_or_default();
            return Err(UsageError(format!(
                "flag provided but not defined: -{name}{hint}"
            )));
        }
    }
    Ok(raw)
}

fn set_bool(raw: &mut Raw, name: &str, on: bool) {
    match name {
        "insecure" => raw.insecure = on,
        "onetime" => raw.onetime = on,
        "watch" => raw.watch = on,
        "dry-run" => raw.dry_run = on,
        "allow-empty-resources" => raw.allow_empty_resources = on,
        "fsync" => raw.fsync = on,
        "version" => raw.version = on,
        _ => raw.help = on, // "h" | "help"
    }
}

fn set_value(raw: &mut Raw, name: &str, value: String) -> Result<(), UsageError> {
    let duration = |v: &str| {
        parse_go_duration(v)
            .map_err(|e| UsageError(format!("invalid value {v:?} for -{name}: {e}")))
    };
    match name {
        "apiserver" => raw.apiserver = Some(value),
        "configmap" => raw.objects.push((Kind::ConfigMap, value)),
        "secret" => raw.objects.push((Kind::Secret, value)),
        "configmap-selector" => raw.selectors.push((Kind::ConfigMap, value)),
        "secret-selector" => raw.selectors.push((Kind::Secret, value)),
        "selector-namespaces" => raw.selector_namespaces = Some(value),
        "namespace" => raw.namespace = Some(value),
        "token-file" => raw.token_file = Some(value),
        "ca-file" => raw.ca_file = Some(value),
        "output-dir" => raw.output_dir = Some(value),
        "sync-interval" => raw.sync_interval = Some(duration(&value)?),
        "listen" => raw.listen = Some(parse_listen(&value)?),
        "envoy-admin" => raw.envoy_admin = Some(value),
        "envoy-timeout" => raw.envoy_timeout = Some(duration(&value)?),
        "onetime-timeout" => raw.onetime_timeout = Some(duration(&value)?),
        "file-mode" => raw.file_mode = Some(parse_mode(&value)?),
        _ => raw.watch_timeout = Some(duration(&value)?), // "watch-timeout"
    }
    Ok(())
}

fn build(
    raw: Raw,
    env: &dyn Fn(&str) -> Option<String>,
    sa_dir: &Path,
) -> Result<Config, UsageError> {
    if raw.objects.is_empty() && raw.selectors.is_empty() {
        return Err(UsageError(
            "at least one -configmap, -secret, -configmap-selector or -secret-selector is required"
                .into(),
        ));
    }
    if raw.onetime && raw.watch {
        return Err(UsageError("-onetime and -watch exclude each other".into()));
    }
    if raw.insecure && raw.ca_file.is_some() {
        return Err(UsageError(
            "-insecure and -ca-file exclude each other".into(),
        ));
    }
    let apiserver = match raw.apiserver {
        Some(url) => parse_apiserver(&url)?,
        None => default_apiserver(env)?,
    };
    let namespace = raw
        .namespace
        .filter(|n| !n.is_empty())
        .or_else(|| env("NS").filter(|n| !n.is_empty()))
        .or_else(|| env("POD_NAMESPACE").filter(|n| !n.is_empty()))
        .or_else(|| {
            std::fs::read_to_string(sa_dir.join("namespace"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|n| !n.is_empty())
        });
    let selections = selections(&raw.selectors, raw.selector_namespaces, &namespace)?;
    let mut objects: Vec<ObjectRef> = Vec::new();
    for (kind, spec) in raw.objects {
        let flag = kind.flag();
        let (ns, name) = match spec.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => match &namespace {
                Some(ns) => (ns.clone(), spec.clone()),
                None => {
                    return Err(UsageError(format!(
                        "-{flag} {spec}: no namespace: give NAMESPACE/NAME, -namespace, $NS or $POD_NAMESPACE"
                    )))
                }
            },
        };
        validate_dns_label(&ns)
            .map_err(|e| UsageError(format!("-{flag} {spec}: namespace {ns:?} {e}")))?;
        validate_dns_subdomain(&name)
            .map_err(|e| UsageError(format!("-{flag} {spec}: name {name:?} {e}")))?;
        let obj = ObjectRef {
            kind,
            namespace: ns,
            name,
        };
        if objects.contains(&obj) {
            return Err(UsageError(format!("-{flag} {spec} is given twice")));
        }
        objects.push(obj);
    }
    let trust = if raw.insecure {
        Trust::Insecure
    } else if let Some(ca) = raw.ca_file {
        Trust::CaFile(PathBuf::from(ca))
    } else if sa_dir.join("ca.crt").exists() {
        Trust::CaFile(sa_dir.join("ca.crt"))
    } else {
        Trust::WebPkiRoots
    };
    let mode = if raw.onetime {
        Mode::OneTime
    } else if raw.watch {
        Mode::Watch
    } else {
        Mode::Poll
    };
    let sync_interval = raw.sync_interval.unwrap_or(match mode {
        Mode::Watch => Duration::from_secs(600),
        _ => Duration::from_secs(60),
    });
    if mode == Mode::Poll && sync_interval.is_zero() {
        return Err(UsageError(
            "-sync-interval must be positive without -watch".into(),
        ));
    }
    let envoy = envoy_admin(raw.envoy_admin, raw.envoy_timeout)?;
    let watch_timeout = raw.watch_timeout.unwrap_or(Duration::from_secs(300));
    if watch_timeout < Duration::from_secs(1) {
        return Err(UsageError("-watch-timeout must be at least 1s".into()));
    }
    Ok(Config {
        apiserver,
        namespace: namespace.unwrap_or_default(),
        objects,
        selections,
        token_file: raw
            .token_file
            .map(PathBuf::from)
            .unwrap_or_else(|| sa_dir.join("token")),
        trust,
        output_dir: PathBuf::from(
            raw.output_dir
                .unwrap_or_else(|| "/srv/runtime/current".into()),
        ),
        mode,
        sync_interval,
        watch_timeout,
        onetime_timeout: raw.onetime_timeout.unwrap_or(Duration::from_secs(60)),
        file_mode: raw.file_mode.unwrap_or(0o644),
        dry_run: raw.dry_run,
        allow_empty_resources: raw.allow_empty_resources,
        fsync: raw.fsync,
        listen: raw.listen,
        envoy,
    })
}

/// The selections: every selector (checked, normalised, each once) in every namespace of
/// `-selector-namespaces` (default: the namespace), or once cluster-wide for `*`.
fn selections(
    selectors: &[(Kind, String)],
    namespaces: Option<String>,
    namespace: &Option<String>,
) -> Result<Vec<Selection>, UsageError> {
    if selectors.is_empty() {
        return match namespaces {
            Some(_) => Err(UsageError(
                "-selector-namespaces needs a -configmap-selector or -secret-selector".into(),
            )),
            None => Ok(Vec::new()),
        };
    }
    let scopes: Vec<Option<String>> = match namespaces {
        Some(list) if list.trim() == "*" => vec![None],
        Some(list) => {
            let mut scopes = Vec::new();
            for ns in list.split(',').map(str::trim) {
                let bad = |why: &str| {
                    UsageError(format!(
                        "invalid value {list:?} for -selector-namespaces: {why}"
                    ))
                };
                if ns == "*" {
                    return Err(bad("* means every namespace and stands alone"));
                }
                validate_dns_label(ns).map_err(|e| bad(&format!("namespace {ns:?} {e}")))?;
                if scopes.contains(&Some(ns.to_string())) {
                    return Err(bad(&format!("namespace {ns:?} is given twice")));
                }
                scopes.push(Some(ns.to_string()));
            }
            scopes
        }
        None => match namespace {
            Some(ns) => vec![Some(ns.clone())],
            None => return Err(UsageError(
                "selectors need a namespace: give -selector-namespaces, -namespace, $NS or $POD_NAMESPACE"
                    .into(),
            )),
        },
    };
    let mut out: Vec<Selection> = Vec::new();
    for (kind, text) in selectors {
        let flag = format!("-{}-selector", kind.flag());
        let checked = selector::parse(text)
            .map_err(|e| UsageError(format!("invalid value {text:?} for {flag}: {e}")))?;
        let selector = checked.to_string();
        for namespace in &scopes {
            let selection = Selection {
                kind: *kind,
                namespace: namespace.clone(),
                selector: selector.clone(),
            };
            if out.contains(&selection) {
                return Err(UsageError(format!("{flag} {text:?} is given twice")));
            }
            out.push(selection);
        }
    }
    Ok(out)
}

/// Octal permission bits, `0644`, `440` or `0o440`, at most `0777`.
fn parse_mode(v: &str) -> Result<u32, UsageError> {
    let digits = v.strip_prefix("0o").unwrap_or(v);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !digits.is_empty() && !digits.starts_with('+'))
        .ok_or_else(|| {
            UsageError(format!(
                "invalid value {v:?} for -file-mode: want octal permission bits from 0000 to 0777"
            ))
        })
}

/// `:9090` (every address, IPv6 and IPv4, as Go takes it: see `health::serve`),
/// `0.0.0.0:9090`, `127.0.0.1:0`, `[::]:9090`.
fn parse_listen(v: &str) -> Result<String, UsageError> {
    let check = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    check
        .parse::<std::net::SocketAddr>()
        .map(|_| v.to_string())
        .map_err(|_| {
            UsageError(format!(
                "invalid value {v:?} for -listen: want HOST:PORT or :PORT with an IP host"
            ))
        })
}

fn default_apiserver(env: &dyn Fn(&str) -> Option<String>) -> Result<ApiServer, UsageError> {
    match (
        env("KUBERNETES_SERVICE_HOST"),
        env("KUBERNETES_SERVICE_PORT"),
    ) {
        (Some(host), Some(port)) if !host.is_empty() && !port.is_empty() => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            parse_apiserver(&format!("https://{host}:{port}")).map_err(|e| {
                UsageError(format!(
                    "$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT: {}",
                    e.0
                ))
            })
        }
        _ => parse_apiserver("https://kubernetes"),
    }
}

/// Parses `https://host[:port][/prefix]` or `http://...`; IPv6 literals in brackets.
pub fn parse_apiserver(url: &str) -> Result<ApiServer, UsageError> {
    let api = parse_url("apiserver", url)?;
    // The bearer token goes with every request: over plain HTTP only to this machine
    // (`kubectl proxy`), never across a network.
    let loopback = api.host == "localhost"
        || api
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !api.https && !loopback {
        return Err(UsageError(format!(
            "invalid value {url:?} for -apiserver: plain http:// would send the bearer token in cleartext; use https://, or http:// to a loopback address (kubectl proxy)"
        )));
    }
    Ok(api)
}

/// `-envoy-admin` with `-envoy-timeout` (default 10s), which needs it.
fn envoy_admin(
    url: Option<String>,
    timeout: Option<Duration>,
) -> Result<Option<EnvoyAdmin>, UsageError> {
    match (url, timeout) {
        (Some(url), t) => parse_envoy_admin(&url, t.unwrap_or(Duration::from_secs(10))).map(Some),
        (None, Some(_)) => Err(UsageError("-envoy-timeout needs -envoy-admin".into())),
        (None, None) => Ok(None),
    }
}

/// `-envoy-admin`: `http://host:port` (Envoy's admin speaks plain HTTP), no path.
fn parse_envoy_admin(url: &str, timeout: Duration) -> Result<EnvoyAdmin, UsageError> {
    let bad = |why: &str| UsageError(format!("invalid value {url:?} for -envoy-admin: {why}"));
    let admin = parse_url("envoy-admin", url)?;
    if admin.https {
        return Err(bad("Envoy's admin interface is plain http://"));
    }
    if !admin.base_path.is_empty() {
        return Err(bad("no path allowed"));
    }
    if timeout.is_zero() {
        return Err(UsageError("-envoy-timeout must be positive".into()));
    }
    Ok(EnvoyAdmin {
        host: admin.host,
        port: admin.port,
        timeout,
    })
}

/// A URL of `-FLAG`: `https://host[:port][/prefix]` or `http://...`; IPv6 literals in
/// brackets.
fn parse_url(flag: &str, url: &str) -> Result<ApiServer, UsageError> {
    let bad = |why: &str| UsageError(format!("invalid value {url:?} for -{flag}: {why}"));
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with https:// or http://"));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(bad("no query or fragment allowed"));
    }
    if authority.contains('@') {
        return Err(bad(
            "credentials in the URL are not supported; use -token-file",
        ));
    }
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let (h, tail) = after
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in IPv6 address"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("bad IPv6 address"));
        }
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return Err(bad("IPv6 addresses need brackets")),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return Err(bad("bad host name"));
    }
    let port = match port {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("bad port"))?,
    };
    let base_path = path.trim_end_matches('/').to_string();
    if !base_path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
    {
        return Err(bad("unsupported characters in path"));
    }
    Ok(ApiServer {
        https,
        host,
        port,
        base_path,
    })
}

/// Go's strconv.ParseBool.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's time.ParseDuration, for non-negative durations: `300ms`, `1.5h`, `2h45m`, `0`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err("must not be negative".into());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = s;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(format!("bad number in duration {s:?}"));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse()
                .map_err(|_| format!("bad number in duration {s:?}"))?
        };
        let mut ns = int
            .checked_mul(unit_ns)
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        let mut scale = unit_ns;
        for d in frac.bytes().take(30) {
            scale /= 10;
            ns += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns
            .checked_add(ns)
            .filter(|t| *t <= i64::MAX as u128)
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        rest = tail;
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

/// Formats like Go's Duration.String for whole milliseconds and up: `1m0s`, `500ms`, `1h30m0s`.
pub fn format_go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let ms = d.subsec_millis();
    let secs = if ms == 0 {
        format!("{s}s")
    } else {
        let frac = format!("{ms:03}");
        format!("{s}.{}s", frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn validate_dns_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    let b = s.as_bytes();
    let ok = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok || b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err("must be a DNS label: lowercase letters, digits and '-'");
    }
    Ok(())
}

fn validate_dns_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    for part in s.split('.') {
        validate_dns_label(part)
            .map_err(|_| "must be a DNS subdomain: lowercase letters, digits, '-' and '.'")?;
    }
    Ok(())
}

/// The closest known flag within edit distance 2, for "did you mean".
fn suggest(name: &str) -> Option<&'static str> {
    BOOL_FLAGS
        .iter()
        .chain(VALUE_FLAGS)
        .map(|f| (edit_distance(name, f), *f))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, f)| f)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
