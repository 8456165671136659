//! Request routing and every answer but watch streams: authentication, injected failures,
//! get, list (field and label selectors, resourceVersion semantics), create, update, delete,
//! `/version` and `/healthz`, and the framing of JSON answers (compact or pretty).
//!
//! It never holds the state lock while writing to a socket.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::http::{self, ReadError, Request};
use super::objects::{self, ApiError, Kind};
use super::{labels, paging, text, watch, Conn, Obj, Record, Shared};

/// Bodies up to this size are sent with `Content-Length`, larger ones chunked (Go's
/// net/http buffers 2048 bytes before it decides).
const CONTENT_LENGTH_LIMIT: usize = 2048;

/// How long a list waits for a resourceVersion from the future before 504.
const FUTURE_RV_WAIT: Duration = Duration::from_secs(3);

/// A request being answered.
pub(crate) struct Ctx<'a> {
    pub sh: &'a Shared,
    pub req: &'a Request,
    pub params: Vec<(String, String)>,
    pub rec: Record,
    pub pretty: bool,
}

impl Ctx<'_> {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The standard headers of an API answer.
pub(crate) fn api_headers(sh: &Shared, content_type: &str) -> Vec<(&'static str, String)> {
    let audit = sh.lock().rng.uuid();
    vec![
        ("Audit-Id", audit),
        ("Cache-Control", String::from("no-cache, private")),
        ("Content-Type", content_type.to_string()),
        ("Date", objects::http_date_now()),
    ]
}

/// Records the request and writes `json` with `code`: compact with a final newline, or
/// indented without one, as the server's JSON serializer does.
fn send_json(
    ctx: &mut Ctx,
    conn: &mut Conn,
    code: u16,
    json: &str,
    extra: Vec<(&'static str, String)>,
) {
    let body = if ctx.pretty {
        text::indent(json)
    } else {
        format!("{json}\n")
    };
    send_body(
        ctx,
        conn,
        code,
        "application/json",
        body.into_bytes(),
        extra,
    );
}

fn send_body(
    ctx: &mut Ctx,
    conn: &mut Conn,
    code: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
) {
    let mut headers = api_headers(ctx.sh, content_type);
    headers.extend(extra);
    let chunked = body.len() > CONTENT_LENGTH_LIMIT;
    if chunked {
        headers.push(("Transfer-Encoding", String::from("chunked")));
    } else {
        headers.push(("Content-Length", body.len().to_string()));
    }
    ctx.rec.status = code;
    let rec = ctx.rec.clone();
    ctx.sh.lock().record(rec, ctx.sh.opts.log_requests);
    let mut out = http::head(code, &headers);
    if chunked {
        out.extend_from_slice(&http::chunk(&body));
        out.extend_from_slice(http::LAST_CHUNK);
    } else {
        out.extend_from_slice(&body);
    }
    use std::io::Write;
    let _ = conn.write_all(&out);
    conn.close_clean();
}

pub(crate) fn send_error(ctx: &mut Ctx, conn: &mut Conn, e: &ApiError) {
    let mut extra = Vec::new();
    if let Some(r) = e.details.retry_after {
        extra.push(("Retry-After", r.to_string()));
    }
    send_json(ctx, conn, e.code, &e.status_json(), extra);
}

fn blank_record(req: &Request, params: Vec<(String, String)>, at: Instant, conn: u64) -> Record {
    Record {
        conn,
        list_rv: None,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        params,
        status: 0,
        at,
        token: bearer(req),
        user_agent: req.header("user-agent").map(str::to_string),
        watch: false,
    }
}

fn bearer(req: &Request) -> Option<String> {
    let v = req.header("authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

fn wants_pretty(req: &Request, params: &[(String, String)]) -> bool {
    if let Some((_, v)) = params.iter().find(|(k, _)| k == "pretty") {
        if let Some(b) = http::parse_bool(v) {
            return b;
        }
    }
    let ua = req.header("user-agent").unwrap_or("");
    ["curl", "Wget", "Mozilla"]
        .iter()
        .any(|p| ua.starts_with(p))
}

/// Answers one connection's request.
pub(crate) fn handle(
    sh: &Shared,
    conn: &mut Conn,
    raw: &TcpStream,
    conn_id: u64,
    req: Result<Request, ReadError>,
) {
    let at = Instant::now();
    let (req, early) = match req {
        Ok(r) => (r, None),
        Err(ReadError::Closed) => return,
        Err(ReadError::BadHead(code, _why)) => {
            let rec = Record {
                method: String::new(),
                path: String::new(),
                query: String::new(),
                params: Vec::new(),
                status: code,
                at,
                token: None,
                user_agent: None,
                watch: false,
                conn: conn_id,
                list_rv: None,
            };
            sh.lock().record(rec, sh.opts.log_requests);
            let body = format!("{code} {}", http::reason_phrase(code));
            let mut out = http::head(
                code,
                &[
                    ("Content-Type", String::from("text/plain; charset=utf-8")),
                    ("Content-Length", body.len().to_string()),
                ],
            );
            out.extend_from_slice(body.as_bytes());
            use std::io::Write;
            let _ = conn.write_all(&out);
            conn.close_clean();
            return;
        }
        Err(ReadError::BodyTooLarge(r)) => (*r, Some(ApiError::too_large_body())),
        Err(ReadError::BadBody(r, why)) => (*r, Some(ApiError::bad_request(why))),
    };
    let parsed = http::parse_query(&req.query);
    let params = parsed.clone().unwrap_or_default();
    let mut ctx = Ctx {
        sh,
        req: &req,
        pretty: wants_pretty(&req, &params),
        rec: blank_record(&req, params.clone(), at, conn_id),
        params,
    };
    let route = parse_route(&req.path);
    let watch_param = ctx.param("watch").map(|w| w.to_string());
    ctx.rec.watch = match &route {
        Ok(r) => r.watch_path || watch_param.as_deref().and_then(http::parse_bool) == Some(true),
        Err(_) => false,
    };
    if let Some(e) = early {
        return send_error(&mut ctx, conn, &e);
    }
    if let Err(e) = parsed {
        return send_error(&mut ctx, conn, &ApiError::bad_request(e));
    }

    // Injected faults and failures come first, as a proxy or an overloaded server would.
    let fault = {
        let mut st = sh.lock();
        match st.fault.clone() {
            Some(f @ (super::Fault::DropNextRequest | super::Fault::StallNextResponse(_))) => {
                st.fault = None;
                Some(f)
            }
            _ => None,
        }
    };
    match fault {
        Some(super::Fault::DropNextRequest) => {
            let rec = ctx.rec.clone();
            sh.lock().record(rec, sh.opts.log_requests);
            let _ = raw.shutdown(std::net::Shutdown::Both);
            return;
        }
        Some(super::Fault::StallNextResponse(d)) => thread::sleep(d),
        _ => {}
    }
    let failure = {
        let mut st = sh.lock();
        if st.fail_left > 0 {
            st.fail_left -= 1;
            Some((st.fail_code, st.fail_retry_after))
        } else {
            None
        }
    };
    if let Some((code, retry_after)) = failure {
        let mut e = ApiError::for_code(code);
        if retry_after.is_some() {
            e.details.retry_after = retry_after;
        }
        return send_error(&mut ctx, conn, &e);
    }

    let route = match route {
        Ok(r) => r,
        Err(e) => {
            if !authorized(&ctx) {
                return send_error(&mut ctx, conn, &ApiError::unauthorized());
            }
            return send_error(&mut ctx, conn, &e);
        }
    };
    let public = matches!(route.target, Target::Version | Target::Health);
    if !(authorized(&ctx) || public && req.header("authorization").is_none()) {
        return send_error(&mut ctx, conn, &ApiError::unauthorized());
    }
    if let Err(e) = authorize(&ctx, &route) {
        return send_error(&mut ctx, conn, &e);
    }
    let method = req.method.as_str();
    let result = match (&route.target, method) {
        (Target::Version, "GET") => Ok((200, version_json())),
        (Target::Health, "GET") => {
            return send_body(
                &mut ctx,
                conn,
                200,
                "text/plain; charset=utf-8",
                b"ok".to_vec(),
                Vec::new(),
            );
        }
        (Target::Collection { kind, ns, name }, "GET") => {
            let filter = match Filter::new(*kind, ns.clone(), name.clone(), &ctx) {
                Ok(f) => f,
                Err(e) => return send_error(&mut ctx, conn, &e),
            };
            if ctx.rec.watch {
                return watch::serve(&mut ctx, conn, raw, conn_id, filter);
            }
            list(&mut ctx, &filter)
        }
        (
            Target::Collection {
                kind,
                ns: Some(ns),
                name: None,
            },
            "POST",
        ) if !route.watch_path => create(&ctx, *kind, ns),
        (Target::Item { kind, ns, name }, "GET") => get(&ctx, *kind, ns, name),
        (Target::Item { kind, ns, name }, "PUT") => update(&ctx, *kind, ns, name),
        (Target::Item { kind, ns, name }, "DELETE") => delete(&ctx, *kind, ns, name),
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok((code, json)) => send_json(&mut ctx, conn, code, &json, Vec::new()),
        Err(e) => send_error(&mut ctx, conn, &e),
    }
}

fn authorized(ctx: &Ctx) -> bool {
    match &ctx.rec.token {
        Some(t) => ctx.sh.lock().tokens.iter().any(|x| x == t),
        None => false,
    }
}

/// RBAC for a token limited by `grant_only`, `grant_in_namespaces` or `grant_cluster_wide`
/// (the model is `Grant`'s): get, list and watch as the rules allow, nothing else. As the
/// API server's request resolver does, a list or watch names an object through an exact
/// `metadata.name` requirement of its field selector; without one it is a request for the
/// whole collection, which `resourceNames` never allows. A request on `/api/v1/{resource}`
/// has the cluster scope: only a cluster-wide rule allows it.
fn authorize(ctx: &Ctx, route: &Route) -> Result<(), ApiError> {
    let Some(token) = &ctx.rec.token else {
        return Ok(());
    };
    let Some(grant) = ctx.sh.lock().grants.get(token).cloned() else {
        return Ok(());
    };
    let (verb, kind, ns, name) = match &route.target {
        Target::Version | Target::Health => return Ok(()),
        Target::Item { kind, ns, name } => (
            match ctx.req.method.as_str() {
                "GET" => "get",
                "PUT" => "update",
                "DELETE" => "delete",
                _ => "patch",
            },
            *kind,
            Some(ns.clone()),
            Some(name.clone()),
        ),
        Target::Collection { kind, ns, name } => {
            let selected = parse_field_selector(ctx.param("fieldSelector").unwrap_or(""))
                .ok()
                .and_then(|fields| {
                    fields
                        .into_iter()
                        .find(|(f, eq, _)| f == "metadata.name" && *eq)
                        .map(|(_, _, v)| v)
                });
            let verb = match (ctx.rec.watch, ctx.req.method.as_str()) {
                (true, _) => "watch",
                (false, "GET") => "list",
                _ => "create",
            };
            (verb, *kind, ns.clone(), name.clone().or(selected))
        }
    };
    if grant.allow(verb, kind, ns.as_deref(), name.as_deref()) {
        return Ok(());
    }
    let subject = match &name {
        Some(n) => format!("{} {n:?}", kind.resource()),
        None => kind.resource().to_string(),
    };
    let scope = match &ns {
        Some(ns) => format!(" in the namespace {ns:?}"),
        None => String::from(" at the cluster scope"),
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{subject} is forbidden: User \"system:serviceaccount:{}:envoy-xds-loader\" cannot {verb} resource {:?} in API group \"\"{scope}",
            grant.sa_ns,
            kind.resource()
        ),
    );
    e.details.kind = Some(kind.resource().to_string());
    e.details.name = name;
    Err(e)
}

fn version_json() -> String {
    String::from(
        "{\"major\":\"1\",\"minor\":\"20\",\"gitVersion\":\"v1.20.0-kube-emulator\",\"gitCommit\":\"0000000000000000000000000000000000000000\",\"gitTreeState\":\"clean\",\"buildDate\":\"2020-12-08T00:00:00Z\",\"goVersion\":\"go1.15.5\",\"compiler\":\"gc\",\"platform\":\"linux/amd64\"}",
    )
}

// ---------------------------------------------------------------------------------------------
// Routes.

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A collection (`ns` None: all namespaces); `name` set by the deprecated
    /// `/watch/…/{name}` path.
    Collection {
        kind: Kind,
        ns: Option<String>,
        name: Option<String>,
    },
    Item {
        kind: Kind,
        ns: String,
        name: String,
    },
    Version,
    Health,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub target: Target,
    /// Under the deprecated `/api/v1/watch/` prefix.
    pub watch_path: bool,
}

/// Maps a request path to what it names.
pub(crate) fn parse_route(path: &str) -> Result<Route, ApiError> {
    let rest = path.strip_prefix('/').ok_or_else(ApiError::no_route)?;
    let mut segs = Vec::new();
    for s in rest.split('/') {
        let d = http::percent_decode(s, false).map_err(|_| ApiError::no_route())?;
        if d.is_empty() {
            return Err(ApiError::no_route());
        }
        segs.push(d);
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let kind = |r: &str| Kind::from_resource(r).ok_or_else(ApiError::no_route);
    let (target, watch_path) = match s.as_slice() {
        ["version"] => (Target::Version, false),
        ["healthz"] | ["livez"] | ["readyz"] => (Target::Health, false),
        ["api", "v1", "namespaces", ns, res] => (
            Target::Collection {
                kind: kind(res)?,
                ns: Some(ns.to_string()),
                name: None,
            },
            false,
        ),
        ["api", "v1", "namespaces", ns, res, name] => (
            Target::Item {
                kind: kind(res)?,
                ns: ns.to_string(),
                name: name.to_string(),
            },
            false,
        ),
        ["api", "v1", res] => (
            Target::Collection {
                kind: kind(res)?,
                ns: None,
                name: None,
            },
            false,
        ),
        ["api", "v1", "watch", "namespaces", ns, res] => (
            Target::Collection {
                kind: kind(res)?,
                ns: Some(ns.to_string()),
                name: None,
            },
            true,
        ),
        ["api", "v1", "watch", "namespaces", ns, res, name] => (
            Target::Collection {
                kind: kind(res)?,
                ns: Some(ns.to_string()),
                name: Some(name.to_string()),
            },
            true,
        ),
        ["api", "v1", "watch", res] => (
            Target::Collection {
                kind: kind(res)?,
                ns: None,
                name: None,
            },
            true,
        ),
        _ => return Err(ApiError::no_route()),
    };
    Ok(Route { target, watch_path })
}

// ---------------------------------------------------------------------------------------------
// Selectors.

pub(crate) use super::labels::LabelReq;

/// Which objects a list or watch covers.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub kind: Kind,
    pub ns: Option<String>,
    /// (field, wanted equal, value); fields are metadata.name and metadata.namespace.
    pub fields: Vec<(String, bool, String)>,
    pub labels: Vec<LabelReq>,
}

impl Filter {
    fn new(
        kind: Kind,
        ns: Option<String>,
        name: Option<String>,
        ctx: &Ctx,
    ) -> Result<Filter, ApiError> {
        let mut fields = parse_field_selector(ctx.param("fieldSelector").unwrap_or(""))?;
        if let Some(n) = name {
            fields.push((String::from("metadata.name"), true, n));
        }
        let labels = parse_label_selector(ctx.param("labelSelector").unwrap_or(""))?;
        Ok(Filter {
            kind,
            ns,
            fields,
            labels,
        })
    }

    pub(crate) fn matches(&self, o: &Obj) -> bool {
        if o.kind != self.kind {
            return false;
        }
        if let Some(ns) = &self.ns {
            if &o.ns != ns {
                return false;
            }
        }
        for (field, eq, value) in &self.fields {
            let actual = if field == "metadata.name" {
                &o.name
            } else {
                &o.ns
            };
            if (actual == value) != *eq {
                return false;
            }
        }
        self.labels.iter().all(|r| r.matches(&o.labels))
    }
}

/// `metadata.name=x,metadata.namespace!=y` (`=`, `==`, `!=`).
pub(crate) fn parse_field_selector(s: &str) -> Result<Vec<(String, bool, String)>, ApiError> {
    let mut out = Vec::new();
    for term in s.split(',') {
        if term.is_empty() {
            continue;
        }
        let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, true, v)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, true, v)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            )));
        };
        let field = field.trim();
        if field != "metadata.name" && field != "metadata.namespace" {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        out.push((field.to_string(), eq, value.trim().to_string()));
    }
    Ok(out)
}

/// The full `labels.Parse` syntax (see labels.rs); a syntax error is a 400 whose message
/// names the bad part, as the server's is.
pub(crate) fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, ApiError> {
    labels::parse(s).map_err(ApiError::bad_request)
}

// ---------------------------------------------------------------------------------------------
// Handlers.

type Answer = Result<(u16, String), ApiError>;

fn list_options_invalid(msg: FieldErrorSpec) -> ApiError {
    let e = match msg {
        FieldErrorSpec::Forbidden(f, m) => objects::FieldError::forbidden(f, m),
        FieldErrorSpec::Unsupported(f, v) => {
            objects::FieldError::unsupported(f, v, &["Exact", "NotOlderThan"])
        }
    };
    ApiError::invalid("ListOptions.meta.k8s.io", "ListOptions", "", vec![e])
}

enum FieldErrorSpec<'a> {
    Forbidden(&'a str, &'a str),
    Unsupported(&'a str, &'a str),
}

/// Parses `resourceVersion` (None when absent or empty).
pub(crate) fn parse_rv(ctx: &Ctx) -> Result<Option<u64>, ApiError> {
    match ctx.param("resourceVersion") {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}"))),
    }
}

/// Checks the list options that do not depend on state; `Some(exact)` for resourceVersionMatch.
pub(crate) fn check_list_options(ctx: &Ctx, watch: bool) -> Result<Option<bool>, ApiError> {
    let rv_given = !ctx.param("resourceVersion").unwrap_or("").is_empty();
    match ctx.param("resourceVersionMatch").unwrap_or("") {
        "" => Ok(None),
        _ if watch => Err(list_options_invalid(FieldErrorSpec::Forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch",
        ))),
        _ if !rv_given => Err(list_options_invalid(FieldErrorSpec::Forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ))),
        "Exact" if ctx.param("resourceVersion") == Some("0") => {
            Err(list_options_invalid(FieldErrorSpec::Forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            )))
        }
        "Exact" => Ok(Some(true)),
        "NotOlderThan" => Ok(Some(false)),
        other => Err(list_options_invalid(FieldErrorSpec::Unsupported(
            "resourceVersionMatch",
            other,
        ))),
    }
}

/// The list as JSON text.
pub(crate) fn list_json(kind: Kind, rv: u64, items: &[&str]) -> String {
    format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[{}]}}",
        kind.list_name(),
        items.join(",")
    )
}

/// A list with `continue` and `remainingItemCount` in its metadata when set, in the
/// server's order of fields.
fn paged_list_json(
    kind: Kind,
    rv: u64,
    items: &[&str],
    next: Option<&str>,
    remaining: Option<usize>,
) -> String {
    let mut meta = format!("\"resourceVersion\":\"{rv}\"");
    if let Some(c) = next {
        meta.push_str(&format!(",\"continue\":{}", objects::js(c)));
    }
    if let Some(n) = remaining {
        meta.push_str(&format!(",\"remainingItemCount\":{n}"));
    }
    format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"v1\",\"metadata\":{{{meta}}},\"items\":[{}]}}",
        kind.list_name(),
        items.join(",")
    )
}

/// `limit`: None when absent, zero or negative (no limit), 400 when not an integer.
fn parse_limit(ctx: &Ctx) -> Result<Option<usize>, ApiError> {
    match ctx.param("limit") {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Ok(_) => Ok(None),
            Err(_) => Err(ApiError::bad_request(format!(
                "strconv.ParseInt: parsing {v:?}: invalid syntax"
            ))),
        },
    }
}

/// The objects of `kind` as they were at version `n` (history must reach back to it),
/// rebuilt from the current ones by undoing newer changes.
fn objects_at(st: &super::State, kind: Kind, n: u64) -> Vec<std::sync::Arc<Obj>> {
    let mut at: std::collections::BTreeMap<super::Key, std::sync::Arc<Obj>> = st
        .objects
        .iter()
        .filter(|(k, _)| k.0 == kind)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for ev in st.history.iter().rev().take_while(|e| e.obj.rv > n) {
        let key = (ev.obj.kind, ev.obj.ns.clone(), ev.obj.name.clone());
        match &ev.prev {
            Some(p) => {
                at.insert(key, p.clone());
            }
            None => {
                at.remove(&key);
            }
        }
    }
    at.into_values().collect()
}

/// Lists: absent/"0" → current state; "N" (NotOlderThan) → current state once it reaches N
/// (504 after 3 s); "N" with Exact → the state at N rebuilt from history (410 when older).
/// Paged (see paging.rs): `limit` (unless with "0", which the real server answers whole
/// from its cache) or `continue`; a first page with "N" lists exactly at N (as v1.20 does
/// for `limit`), later pages at the token's version, so every page of one list answers at
/// the first page's version.
fn list(ctx: &mut Ctx, f: &Filter) -> Answer {
    let exact = check_list_options(ctx, false)?;
    let rv = parse_rv(ctx)?;
    let limit = parse_limit(ctx)?;
    let token = match ctx.param("continue") {
        None | Some("") => None,
        Some(c) => Some(
            paging::decode(c)
                .map_err(|e| ApiError::bad_request(format!("invalid continue token: {e}")))?,
        ),
    };
    if token.is_some() && rv.is_some_and(|n| n != 0) {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let paged = token.is_some() || (limit.is_some() && rv != Some(0));
    let sh = ctx.sh;
    let mut st = sh.lock();
    // The version to list at exactly, if any.
    let at = match (&token, rv, exact) {
        (Some(t), _, _) if t.rv < 0 => None,
        (Some(t), _, _) => {
            let n = u64::try_from(t.rv).unwrap_or(0);
            if n < st.compacted || st.expire_continue {
                let mut e = ApiError::new(410, "Expired", paging::CONTINUE_EXPIRED);
                e.details.list_continue = Some(paging::encode(&t.start, -1));
                return Err(e);
            }
            Some(n)
        }
        (None, Some(n), Some(true)) => Some(n),
        (None, Some(n), None) if paged => Some(n),
        _ => None,
    };
    let objs: Vec<std::sync::Arc<Obj>>;
    let list_rv;
    match at {
        Some(n) => {
            if n < st.compacted {
                return Err(ApiError::expired(n, st.compacted));
            }
            if n > st.rv {
                return Err(ApiError::too_large_rv(n, st.rv));
            }
            objs = objects_at(&st, f.kind, n);
            list_rv = n;
        }
        None => {
            if let Some(n) = rv.filter(|_| token.is_none()) {
                let deadline = Instant::now() + FUTURE_RV_WAIT;
                while st.rv < n {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(ApiError::too_large_rv(n, st.rv));
                    }
                    st = sh
                        .changed
                        .wait_timeout(st, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
            objs = st
                .objects
                .values()
                .filter(|o| o.kind == f.kind)
                .cloned()
                .collect();
            list_rv = st.rv;
        }
    }
    drop(st);
    // The collection's range, keyed as etcd keys it below the resource's prefix.
    let range: Vec<(String, std::sync::Arc<Obj>)> = objs
        .into_iter()
        .filter(|o| f.ns.as_ref().is_none_or(|ns| &o.ns == ns))
        .map(|o| match f.ns {
            Some(_) => (o.name.clone(), o),
            None => (format!("{}/{}", o.ns, o.name), o),
        })
        .collect();
    let start = token.as_ref().map_or("", |t| t.start.as_str());
    let counted = f.fields.is_empty() && f.labels.is_empty();
    let page = paging::cut(
        range,
        start,
        if paged { limit } else { None },
        counted,
        |o| f.matches(o),
    );
    ctx.rec.list_rv = Some(list_rv);
    let next = page
        .next
        .map(|k| paging::encode(&k, i64::try_from(list_rv).unwrap_or(i64::MAX)));
    let items: Vec<&str> = page.items.iter().map(|o| o.text.as_ref()).collect();
    Ok((
        200,
        paged_list_json(f.kind, list_rv, &items, next.as_deref(), page.remaining),
    ))
}

fn get(ctx: &Ctx, kind: Kind, ns: &str, name: &str) -> Answer {
    let st = ctx.sh.lock();
    match st.objects.get(&(kind, ns.to_string(), name.to_string())) {
        Some(o) => Ok((200, o.text.to_string())),
        None => Err(ApiError::not_found(kind, name)),
    }
}

fn check_json_body(ctx: &Ctx) -> Result<(), ApiError> {
    let ct = ctx.req.header("content-type").unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

fn manager(ctx: &Ctx) -> String {
    let ua = ctx.req.header("user-agent").unwrap_or("unknown");
    let m = ua.split('/').next().unwrap_or("unknown").trim();
    if m.is_empty() {
        String::from("unknown")
    } else {
        m.chars().take(128).collect()
    }
}

fn create(ctx: &Ctx, kind: Kind, ns: &str) -> Answer {
    check_json_body(ctx)?;
    let mut input = objects::parse_body(kind, &ctx.req.body)?;
    if input.namespace.as_deref().is_some_and(|n| n != ns) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if input.name.is_empty() && !input.generate_name.is_empty() {
        let suffix = ctx.sh.lock().rng.suffix(5);
        input.name = format!("{}{suffix}", input.generate_name);
    }
    let errs = objects::validate(kind, &input.name, &input.content, None);
    if !errs.is_empty() {
        return Err(ApiError::invalid(
            kind.name(),
            kind.resource(),
            &input.name,
            errs,
        ));
    }
    if input.resource_version.is_some() {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let manager = manager(ctx);
    let mut st = ctx.sh.lock();
    let key = (kind, ns.to_string(), input.name.clone());
    if st.objects.contains_key(&key) {
        return Err(ApiError::already_exists(kind, &input.name));
    }
    super::write_object(
        &mut st,
        &ctx.sh.opts,
        kind,
        ns,
        &input.name,
        input.content,
        &manager,
    );
    let text = st
        .objects
        .get(&key)
        .map(|o| o.text.to_string())
        .unwrap_or_default();
    drop(st);
    ctx.sh.changed.notify_all();
    Ok((201, text))
}

fn update(ctx: &Ctx, kind: Kind, ns: &str, name: &str) -> Answer {
    check_json_body(ctx)?;
    let input = objects::parse_body(kind, &ctx.req.body)?;
    if input.name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            input.name
        )));
    }
    if input.namespace.as_deref().is_some_and(|n| n != ns) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let manager = manager(ctx);
    let mut st = ctx.sh.lock();
    let key = (kind, ns.to_string(), name.to_string());
    let Some(old) = st.objects.get(&key).cloned() else {
        return Err(ApiError::not_found(kind, name));
    };
    if let Some(uid) = &input.uid {
        if *uid != old.uid {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old.uid
                ),
            ));
        }
    }
    if let Some(rv) = &input.resource_version {
        let n = rv
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
        if n != old.rv {
            return Err(ApiError::conflict(
                kind,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
    }
    let errs = objects::validate(kind, name, &input.content, old.content.as_ref());
    if !errs.is_empty() {
        return Err(ApiError::invalid(kind.name(), kind.resource(), name, errs));
    }
    if old.content.as_ref() == Some(&input.content) {
        // Nothing changes: the server does not write, the version stays.
        return Ok((200, old.text.to_string()));
    }
    super::write_object(
        &mut st,
        &ctx.sh.opts,
        kind,
        ns,
        name,
        input.content,
        &manager,
    );
    let text = st
        .objects
        .get(&key)
        .map(|o| o.text.to_string())
        .unwrap_or_default();
    drop(st);
    ctx.sh.changed.notify_all();
    Ok((200, text))
}

/// DELETE answers a `Status` with `status: Success` and the object's name, resource and uid
/// (the generic registry's answer when the deleted object is not returned).
fn delete(ctx: &Ctx, kind: Kind, ns: &str, name: &str) -> Answer {
    let mut pre_uid = None;
    let mut pre_rv = None;
    if !ctx.req.body.is_empty() {
        let v: serde_json::Value = serde_json::from_slice(&ctx.req.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        pre_uid = v
            .pointer("/preconditions/uid")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        pre_rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(|x| x.as_str())
            .map(str::to_string);
    }
    let mut st = ctx.sh.lock();
    let key = (kind, ns.to_string(), name.to_string());
    let Some(old) = st.objects.get(&key).cloned() else {
        return Err(ApiError::not_found(kind, name));
    };
    if let Some(uid) = pre_uid {
        if uid != old.uid {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old.uid
                ),
            ));
        }
    }
    if let Some(rv) = pre_rv {
        if rv != old.rv.to_string() {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    old.rv
                ),
            ));
        }
    }
    super::delete_object(&mut st, &ctx.sh.opts, kind, ns, name);
    drop(st);
    ctx.sh.changed.notify_all();
    Ok((200, objects::success_status(kind, name, &old.uid)))
}
