//! ConfigMap and Secret objects as the API server renders, parses and validates them, and the
//! `Status` objects it answers errors with.
//!
//! Rendering follows the server's field order (kind, apiVersion, metadata, immutable, data,
//! binaryData / type) with map keys sorted, as Go's encoder writes them. Request bodies are
//! parsed with serde_json. This module does no I/O and keeps no state.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Largest total size of the values of one object (`corev1.MaxSecretSize`).
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;
/// Largest request body the server reads (`maxRequestBodyBytes` of the API server).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The resources served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    pub(crate) fn from_resource(resource: &str) -> Option<Kind> {
        match resource {
            "configmaps" => Some(Kind::ConfigMap),
            "secrets" => Some(Kind::Secret),
            _ => None,
        }
    }
    pub(crate) fn resource(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
    pub(crate) fn list_name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMapList",
            Kind::Secret => "SecretList",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers: JSON strings, base64, time, randomness.

/// `s` as a JSON string literal.
pub(crate) fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Go's `base64.StdEncoding` writes `[]byte` in JSON.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0) as usize;
        let b1 = chunk.get(1).copied().unwrap_or(0) as usize;
        let b2 = chunk.get(2).copied().unwrap_or(0) as usize;
        let n = (b0 << 16) | (b1 << 8) | b2;
        let sym = |shift: usize| char::from(B64[(n >> shift) & 63]);
        out.push(sym(18));
        out.push(sym(12));
        out.push(if chunk.len() > 1 { sym(6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(0) } else { '=' });
    }
    out
}

/// Decodes standard base64 as Go's `base64.StdEncoding` does for `[]byte` in JSON: padding
/// required, `\r` and `\n` ignored. The error names the offending input byte, like Go's
/// "illegal base64 data at input byte N".
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut syms: Vec<(usize, u8)> = Vec::with_capacity(text.len());
    for (i, c) in text.bytes().enumerate() {
        if c != b'\r' && c != b'\n' {
            syms.push((i, c));
        }
    }
    let illegal = |i: usize| format!("illegal base64 data at input byte {i}");
    if !syms.len().is_multiple_of(4) {
        let at = syms.last().map(|s| s.0 + 1).unwrap_or(0);
        return Err(illegal(at.min(text.len())));
    }
    let mut out = Vec::with_capacity(syms.len() / 4 * 3);
    let groups = syms.len() / 4;
    for (g, quad) in syms.chunks(4).enumerate() {
        let mut n = 0u32;
        let mut pad = 0;
        for (k, &(pos, c)) in quad.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if g + 1 == groups && k >= 2 => {
                    pad += 1;
                    0
                }
                _ => return Err(illegal(pos)),
            };
            if pad > 0 && c != b'=' {
                return Err(illegal(pos));
            }
            n = (n << 6) | u32::from(v);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(bytes.get(..3 - pad).unwrap_or_default());
    }
    Ok(out)
}

/// Days since 1970-01-01 to a civil (year, month, day).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current time as RFC 3339 in UTC with seconds, as `metav1.Time` renders.
pub(crate) fn rfc3339_now() -> String {
    let s = now_secs();
    let (y, mo, d) = civil(s.div_euclid(86_400));
    let t = s.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// The current time as an HTTP `Date` header value.
pub(crate) fn http_date_now() -> String {
    let s = now_secs();
    let days = s.div_euclid(86_400);
    let (y, mo, d) = civil(days);
    let t = s.rem_euclid(86_400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        .get(days.rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Thu");
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .get(mo.saturating_sub(1) as usize)
    .copied()
    .unwrap_or("Jan");
    format!(
        "{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// A small xorshift generator: uids, audit ids, random watch timeouts, generated names.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A version-4 UUID string.
    pub(crate) fn uuid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
    /// `n` characters as `generateName` suffixes use (consonants and digits).
    pub(crate) fn suffix(&mut self, n: usize) -> String {
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| {
                let i = (self.next() % ALPHA.len() as u64) as usize;
                char::from(ALPHA.get(i).copied().unwrap_or(b'x'))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Objects.

/// What a ConfigMap or Secret holds besides its identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Content {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub immutable: Option<bool>,
    /// ConfigMap `data` (text).
    pub data: BTreeMap<String, String>,
    /// ConfigMap `binaryData`, or Secret `data` (both base64 on the wire).
    pub binary: BTreeMap<String, Vec<u8>>,
    /// Secret `type`.
    pub secret_type: Option<String>,
}

/// The identity and bookkeeping fields of `metadata`.
pub(crate) struct Meta<'a> {
    pub kind: Kind,
    pub ns: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub rv: u64,
    pub created: &'a str,
    /// Field manager and time of the last write, for `managedFields`.
    pub manager: &'a str,
    pub updated: &'a str,
}

fn render_map<V>(m: &BTreeMap<String, V>, value: impl Fn(&V) -> String) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}:{}", js(k), value(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn fields_set<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let mut parts = vec![String::from("\".\":{}")];
    parts.extend(keys.map(|k| format!("{}:{{}}", js(&format!("f:{k}")))));
    format!("{{{}}}", parts.join(","))
}

/// The object as compact JSON, in the API server's field order.
pub(crate) fn render(meta: &Meta, c: &Content) -> String {
    let mut m = format!(
        "\"name\":{},\"namespace\":{},\"uid\":{},\"resourceVersion\":{},\"creationTimestamp\":{}",
        js(meta.name),
        js(meta.ns),
        js(meta.uid),
        js(&meta.rv.to_string()),
        js(meta.created)
    );
    if !c.labels.is_empty() {
        m += &format!(",\"labels\":{}", render_map(&c.labels, |v| js(v)));
    }
    if !c.annotations.is_empty() {
        m += &format!(",\"annotations\":{}", render_map(&c.annotations, |v| js(v)));
    }
    let mut fields: Vec<String> = Vec::new();
    if !c.labels.is_empty() || !c.annotations.is_empty() {
        let mut mf = Vec::new();
        if !c.annotations.is_empty() {
            mf.push(format!(
                "\"f:annotations\":{}",
                fields_set(c.annotations.keys())
            ));
        }
        if !c.labels.is_empty() {
            mf.push(format!("\"f:labels\":{}", fields_set(c.labels.keys())));
        }
        fields.push(format!("\"f:metadata\":{{{}}}", mf.join(",")));
    }
    let bin_name = match meta.kind {
        Kind::ConfigMap => "binaryData",
        Kind::Secret => "data",
    };
    if meta.kind == Kind::ConfigMap && !c.data.is_empty() {
        fields.push(format!("\"f:data\":{}", fields_set(c.data.keys())));
    }
    if !c.binary.is_empty() {
        fields.push(format!("\"f:{bin_name}\":{}", fields_set(c.binary.keys())));
    }
    if c.immutable.is_some() {
        fields.push(String::from("\"f:immutable\":{}"));
    }
    if meta.kind == Kind::Secret {
        fields.push(String::from("\"f:type\":{}"));
    }
    m += &format!(
        ",\"managedFields\":[{{\"manager\":{},\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":{},\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{{{}}}}}]",
        js(meta.manager),
        js(meta.updated),
        fields.join(",")
    );
    let mut out = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"v1\",\"metadata\":{{{m}}}",
        meta.kind.name()
    );
    if let Some(imm) = c.immutable {
        out += &format!(",\"immutable\":{imm}");
    }
    if meta.kind == Kind::ConfigMap && !c.data.is_empty() {
        out += &format!(",\"data\":{}", render_map(&c.data, |v| js(v)));
    }
    if !c.binary.is_empty() {
        out += &format!(
            ",\"{bin_name}\":{}",
            render_map(&c.binary, |v| js(&base64_encode(v)))
        );
    }
    if meta.kind == Kind::Secret {
        let t = c.secret_type.as_deref().unwrap_or("Opaque");
        out += &format!(",\"type\":{}", js(t));
    }
    out.push('}');
    out
}

/// The labels of an object given as text (for label selectors on raw objects).
pub(crate) fn labels_of(text: &str) -> BTreeMap<String, String> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return BTreeMap::new();
    };
    string_map(v.pointer("/metadata/labels")).unwrap_or_default()
}

fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let obj = v?.as_object()?;
    Some(
        obj.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Status objects.

/// One entry of `details.causes`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// The `details` of a `Status`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Details {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub uid: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after: Option<u64>,
    /// The Status's `metadata.continue` (an expired continue token's answer).
    pub list_continue: Option<String>,
    /// Render `details` even when empty (generic server answers do).
    pub always: bool,
}

/// An error answer: HTTP code plus the `Status` object's fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Box<Details>,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            ..ApiError::default()
        }
    }
    fn with(mut self, name: &str, kind: &str) -> ApiError {
        self.details.name = Some(name.to_string());
        self.details.kind = Some(kind.to_string());
        self
    }
    pub(crate) fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {:?} not found", kind.resource(), name),
        )
        .with(name, kind.resource())
    }
    pub(crate) fn no_route() -> ApiError {
        let mut e = ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        e.details.always = true;
        e
    }
    pub(crate) fn method_not_allowed() -> ApiError {
        let mut e = ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        );
        e.details.always = true;
        e
    }
    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
    pub(crate) fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", kind.resource(), name),
        )
        .with(name, kind.resource())
    }
    pub(crate) fn conflict(kind: Kind, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: {why}",
                kind.resource(),
                name
            ),
        )
        .with(name, kind.resource())
    }
    /// "too old resource version: X (Y)" (410 Expired).
    pub(crate) fn expired(asked: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {asked} ({oldest})"),
        )
    }
    pub(crate) fn too_large_rv(asked: u64, current: u64) -> ApiError {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {asked}, current: {current}"),
        );
        e.details.causes.push(Cause {
            reason: String::from("ResourceVersionTooLarge"),
            message: String::from("Too large resource version"),
            field: String::new(),
        });
        e.details.retry_after = Some(1);
        e
    }
    pub(crate) fn internal(message: &str) -> ApiError {
        let mut e = ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        );
        e.details.causes.push(Cause {
            message: message.to_string(),
            ..Cause::default()
        });
        e
    }
    pub(crate) fn too_large_body() -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {MAX_BODY_BYTES}"),
        )
    }
    pub(crate) fn unsupported_media_type(got: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {got:?})"),
        )
    }
    /// 422 Invalid for `qualified` ("ConfigMap", "ListOptions.meta.k8s.io") named `name`.
    pub(crate) fn invalid(
        qualified: &str,
        kind: &str,
        name: &str,
        errs: Vec<FieldError>,
    ) -> ApiError {
        let texts: Vec<String> = errs.iter().map(FieldError::text).collect();
        let joined = if texts.len() == 1 {
            texts.concat()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {joined}"),
        )
        .with(name, kind);
        e.details.causes = errs
            .into_iter()
            .map(|f| Cause {
                reason: f.reason.to_string(),
                message: f.body(),
                field: f.field,
            })
            .collect();
        e
    }
    /// A canned error for `fail_next`.
    pub(crate) fn for_code(code: u16) -> ApiError {
        match code {
            401 => ApiError::unauthorized(),
            403 => ApiError::new(
                403,
                "Forbidden",
                "configmaps is forbidden: User \"system:serviceaccount:default:default\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\"",
            ),
            404 => ApiError::no_route(),
            409 => ApiError::new(409, "Conflict", "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again"),
            410 => ApiError::new(410, "Expired", "too old resource version: 1 (2)"),
            429 => {
                let mut e = ApiError::new(429, "TooManyRequests", "Too many requests, please try again later.");
                e.details.retry_after = Some(1);
                e
            }
            500 => ApiError::internal("injected failure"),
            503 => ApiError::new(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
            504 => ApiError::new(504, "Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
            c => ApiError::new(c, "Unknown", format!("the server responded with the status code {c} but did not return more information")),
        }
    }

    /// The `Status` object, compact.
    pub(crate) fn status_json(&self) -> String {
        let mut details = Vec::new();
        if let Some(n) = &self.details.name {
            details.push(format!("\"name\":{}", js(n)));
        }
        if let Some(k) = &self.details.kind {
            details.push(format!("\"kind\":{}", js(k)));
        }
        if let Some(u) = &self.details.uid {
            details.push(format!("\"uid\":{}", js(u)));
        }
        if !self.details.causes.is_empty() {
            let causes: Vec<String> = self
                .details
                .causes
                .iter()
                .map(|c| {
                    let mut f = Vec::new();
                    if !c.reason.is_empty() {
                        f.push(format!("\"reason\":{}", js(&c.reason)));
                    }
                    if !c.message.is_empty() {
                        f.push(format!("\"message\":{}", js(&c.message)));
                    }
                    if !c.field.is_empty() {
                        f.push(format!("\"field\":{}", js(&c.field)));
                    }
                    format!("{{{}}}", f.join(","))
                })
                .collect();
            details.push(format!("\"causes\":[{}]", causes.join(",")));
        }
        if let Some(r) = self.details.retry_after {
            details.push(format!("\"retryAfterSeconds\":{r}"));
        }
        let details = if details.is_empty() && !self.details.always {
            String::new()
        } else {
            format!(",\"details\":{{{}}}", details.join(","))
        };
        let meta = match &self.details.list_continue {
            Some(c) => format!("\"continue\":{}", js(c)),
            None => String::new(),
        };
        format!(
            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{{meta}}},\"status\":\"Failure\",\"message\":{},\"reason\":{}{details},\"code\":{}}}",
            js(&self.message),
            js(&self.reason),
            self.code
        )
    }
}

/// The `Status` a successful DELETE answers with.
pub(crate) fn success_status(kind: Kind, name: &str, uid: &str) -> String {
    format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Success\",\"details\":{{\"name\":{},\"kind\":{},\"uid\":{}}}}}",
        js(name),
        js(kind.resource()),
        js(uid)
    )
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// One field error, as `field.Error` renders it.
#[derive(Clone, Debug)]
pub(crate) struct FieldError {
    pub reason: &'static str,
    pub field: String,
    /// The part after the type, e.g. `Invalid value: "a/b": must ...`.
    pub detail: String,
}

impl FieldError {
    pub(crate) fn invalid(field: String, value: &str, msg: &str) -> FieldError {
        FieldError {
            reason: "FieldValueInvalid",
            field,
            detail: format!("Invalid value: {}: {msg}", js(value)),
        }
    }
    pub(crate) fn forbidden(field: &str, msg: &str) -> FieldError {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.to_string(),
            detail: format!("Forbidden: {msg}"),
        }
    }
    fn required(field: &str, msg: &str) -> FieldError {
        FieldError {
            reason: "FieldValueRequired",
            field: field.to_string(),
            detail: format!("Required value: {msg}"),
        }
    }
    fn too_long(field: &str, max: usize) -> FieldError {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.to_string(),
            detail: format!("Too long: must have at most {max} bytes"),
        }
    }
    pub(crate) fn unsupported(field: &str, value: &str, supported: &[&str]) -> FieldError {
        let s: Vec<String> = supported.iter().map(|v| js(v)).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.to_string(),
            detail: format!(
                "Unsupported value: {}: supported values: {}",
                js(value),
                s.join(", ")
            ),
        }
    }
    fn body(&self) -> String {
        self.detail.clone()
    }
    fn text(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }
}

/// Why `key` cannot be a ConfigMap or Secret key (`validation.IsConfigMapKey`); empty if it can.
pub fn config_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push(String::from("must be no more than 253 characters"));
    }
    let charset_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !charset_ok {
        errs.push(String::from(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ));
    }
    if key == "." {
        errs.push(String::from("must not be '.'"));
    } else if key == ".." {
        errs.push(String::from("must not be '..'"));
    } else if key.starts_with("..") {
        errs.push(String::from("must not start with '..'"));
    }
    errs
}

/// Why `name` is not a DNS-1123 subdomain (object names); empty if it is.
pub(crate) fn name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 253 {
        errs.push(String::from("must be no more than 253 characters"));
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(e)) => {
                (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (e.is_ascii_lowercase() || e.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    };
    if !name.split('.').all(label_ok) {
        errs.push(String::from(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    errs
}

/// Validates an object about to be stored (`ValidateConfigMap` / `ValidateSecret`, plus the
/// update rules for immutable objects when `old` is given).
pub(crate) fn validate(
    kind: Kind,
    name: &str,
    c: &Content,
    old: Option<&Content>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    }
    for msg in name_errors(name) {
        if !name.is_empty() {
            errs.push(FieldError::invalid(
                String::from("metadata.name"),
                name,
                &msg,
            ));
        }
    }
    let bin_field = match kind {
        Kind::ConfigMap => "binaryData",
        Kind::Secret => "data",
    };
    let mut total = 0usize;
    if kind == Kind::ConfigMap {
        for (k, v) in &c.data {
            for msg in config_key_errors(k) {
                errs.push(FieldError::invalid(format!("data[{k}]"), k, &msg));
            }
            if c.binary.contains_key(k) {
                errs.push(FieldError::invalid(
                    format!("data[{k}]"),
                    k,
                    "duplicate of key present in binaryData",
                ));
            }
            total += v.len();
        }
    }
    for (k, v) in &c.binary {
        for msg in config_key_errors(k) {
            errs.push(FieldError::invalid(format!("{bin_field}[{k}]"), k, &msg));
        }
        total += v.len();
    }
    if total > MAX_DATA_BYTES {
        let field = if kind == Kind::Secret { "data" } else { "" };
        errs.push(FieldError::too_long(field, MAX_DATA_BYTES));
    }
    if let Some(old) = old {
        if old.immutable == Some(true) {
            let msg = "field is immutable when `immutable` is set";
            if c.immutable != Some(true) {
                errs.push(FieldError::forbidden("immutable", msg));
            }
            if kind == Kind::ConfigMap && c.data != old.data {
                errs.push(FieldError::forbidden("data", msg));
            }
            if c.binary != old.binary {
                errs.push(FieldError::forbidden(bin_field, msg));
            }
        }
        if kind == Kind::Secret && c.secret_type != old.secret_type {
            let t = c.secret_type.as_deref().unwrap_or("Opaque");
            errs.push(FieldError::invalid(
                String::from("type"),
                t,
                "field is immutable",
            ));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Request bodies.

/// An object as a client sent it in a POST or PUT body.
#[derive(Debug, Default)]
pub(crate) struct Input {
    pub name: String,
    pub generate_name: String,
    pub namespace: Option<String>,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    pub content: Content,
}

fn cannot_handle(kind: Kind, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version \"v1\" cannot be handled as a {}: {why}",
        kind.name(),
        kind.name()
    ))
}

fn opt_str(v: &Value, field: &str, kind: Kind) -> Result<Option<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(cannot_handle(
            kind,
            &format!(
                "json: cannot unmarshal {} into Go struct field {field} of type string",
                type_name(other)
            ),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn str_map(v: &Value, field: &str, kind: Kind) -> Result<BTreeMap<String, String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, val) in m {
                match val {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    Value::Null => {
                        out.insert(k.clone(), String::new());
                    }
                    other => {
                        return Err(cannot_handle(
                            kind,
                            &format!(
                            "json: cannot unmarshal {} into Go struct field {field} of type string",
                            type_name(other)
                        ),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(cannot_handle(
            kind,
            &format!(
                "json: cannot unmarshal {} into Go struct field {field} of type map[string]string",
                type_name(other)
            ),
        )),
    }
}

/// Parses a POST/PUT body for `kind`: missing `kind`/`apiVersion` default to the endpoint's,
/// unknown fields are dropped, wrong types and bad base64 are 400 BadRequest.
pub(crate) fn parse_body(kind: Kind, body: &[u8]) -> Result<Input, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(String::from(
            "couldn't get version/kind; json parse error: json: cannot unmarshal non-object into Go value of type struct",
        )));
    }
    match v.get("kind").and_then(Value::as_str) {
        None | Some("") => {}
        Some(k) if k == kind.name() => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.name()
            )))
        }
    }
    match v.get("apiVersion").and_then(Value::as_str) {
        None | Some("") | Some("v1") => {}
        Some(a) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version (v1)"
            )))
        }
    }
    let empty = Value::Object(serde_json::Map::new());
    let meta = v.get("metadata").unwrap_or(&empty);
    let mut input = Input {
        name: opt_str(meta, "name", kind)?.unwrap_or_default(),
        generate_name: opt_str(meta, "generateName", kind)?.unwrap_or_default(),
        namespace: opt_str(meta, "namespace", kind)?.filter(|s| !s.is_empty()),
        resource_version: opt_str(meta, "resourceVersion", kind)?.filter(|s| !s.is_empty()),
        uid: opt_str(meta, "uid", kind)?.filter(|s| !s.is_empty()),
        content: Content::default(),
    };
    let c = &mut input.content;
    c.labels = str_map(meta, "labels", kind)?;
    c.annotations = str_map(meta, "annotations", kind)?;
    c.immutable = match v.get("immutable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(cannot_handle(
                kind,
                &format!(
                    "json: cannot unmarshal {} into Go struct field {}.immutable of type bool",
                    type_name(other),
                    kind.name()
                ),
            ))
        }
    };
    let b64_field = match kind {
        Kind::ConfigMap => "binaryData",
        Kind::Secret => "data",
    };
    for (k, text) in str_map(&v, b64_field, kind)? {
        let bytes = base64_decode(&text).map_err(|e| cannot_handle(kind, &e))?;
        c.binary.insert(k, bytes);
    }
    match kind {
        Kind::ConfigMap => c.data = str_map(&v, "data", kind)?,
        Kind::Secret => {
            // stringData is write-only: merged into data, winning over it.
            for (k, s) in str_map(&v, "stringData", kind)? {
                c.binary.insert(k, s.into_bytes());
            }
            let t = opt_str(&v, "type", kind)?.filter(|s| !s.is_empty());
            c.secret_type = Some(t.unwrap_or_else(|| String::from("Opaque")));
        }
    }
    Ok(input)
}
