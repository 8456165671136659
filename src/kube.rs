//! The Kubernetes API as the loader uses it: list one named object by `fieldSelector`,
//! watch it from a resourceVersion, and decode objects, watch events and `Status` errors.
//!
//! Every request is one connection (`Connection: close`), with the bearer token read
//! from its file just before the request (so a rotated token is used at once, and a 401 is
//! followed by a fresh read) and the CA re-checked by [`tls::TrustCache`]. Redirects are
//! errors: a token never travels to another host. This module never writes files and never
//! sleeps; retry policy lives in `sync`.

use crate::cli::{ApiServer, TrustChoice};
use crate::health::METRICS;
use crate::{base64, http, json, log, snapshot::Files, tls};
use std::collections::btree_map::Entry;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Largest list response accepted (one object, possibly pretty-printed).
pub const MAX_LIST_BYTES: usize = 8 << 20;
/// Largest watch event line accepted: well above the ~1.5 MiB object limit with escapes.
pub const MAX_EVENT_BYTES: usize = 4 << 20;
/// Largest error body read for its `Status`.
const MAX_STATUS_BYTES: usize = 64 << 10;
/// Largest token file read.
const MAX_TOKEN_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
        }
    }
    /// The command-line flag and log word: `configmap`, `secret`.
    pub fn flag(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

/// One named object the loader follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.flag(), self.namespace, self.name)
    }
}

/// An object as received: its version and its files, or why its content was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub resource_version: String,
    pub files: Result<Files, Refused>,
}

/// Why content was refused, and the key to blame when there is one (logged as `key=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub key: Option<String>,
    pub why: String,
}

impl Refused {
    pub fn new(key: Option<&str>, why: String) -> Refused {
        Refused {
            key: key.map(str::to_string),
            why,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

/// A list answer for one name: the list's resourceVersion (to watch from) and the object
/// when it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub resource_version: String,
    pub object: Option<Object>,
}

/// A `Status` object, as the API server reports errors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reason.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{} {}: {}", self.code, self.reason, self.message),
            (false, true) => write!(f, "{} {}", self.code, self.reason),
            (true, false) => write!(f, "{} {}", self.code, self.message),
            (true, true) => write!(f, "{}", self.code),
        }
    }
}

/// One watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ADDED or MODIFIED.
    Upsert(Object),
    Deleted {
        resource_version: String,
    },
    Bookmark {
        resource_version: String,
    },
    /// An ERROR event with code 410: the version is too old; relist.
    Expired(Status),
    /// Any other ERROR event.
    Error(Status),
    /// An event about another object (a server ignoring the field selector): only its
    /// version counts.
    Ignored {
        resource_version: String,
    },
}

#[derive(Debug)]
pub enum Error {
    /// Connecting, TLS, reading or framing failed.
    Transport(String),
    /// A read or write timed out: for a watch, nothing arrived for its read timeout.
    Timeout,
    /// The TLS handshake failed: the server's certificate was refused, or the protocol.
    Tls(String),
    /// A non-2xx answer, with its `Status` when the body had one.
    Api {
        code: u16,
        status: Option<Status>,
        retry_after: Option<Duration>,
    },
    /// A 2xx answer whose body we could not use.
    Decode(String),
}

impl Error {
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
    /// HTTP 410 Gone: relist.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
    /// Worth retrying as it is: no connection, a reset, a timeout, 429 or 5xx. Not: 4xx
    /// (but 429), a refused certificate, or an answer we cannot use.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Timeout => true,
            Error::Api { code, .. } => *code == 429 || *code >= 500,
            Error::Tls(_) | Error::Decode(_) => false,
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(m) => f.write_str(m),
            Error::Timeout => f.write_str("http: timed out"),
            Error::Tls(m) => f.write_str(m),
            Error::Api {
                code,
                status: Some(s),
                ..
            } if !s.message.is_empty() || !s.reason.is_empty() => {
                write!(f, "api server answered {code}: {s}")
            }
            Error::Api { code, .. } => write!(f, "api server answered {code}"),
            Error::Decode(m) => write!(f, "bad response: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Error {
        match e {
            http::Error::Timeout => Error::Timeout,
            e => Error::Transport(e.to_string()),
        }
    }
}

/// The API client: endpoint, credentials, trust.
pub struct Client {
    api: ApiServer,
    token_file: PathBuf,
    trust: Option<Mutex<tls::TrustCache>>,
    warned_token: AtomicBool,
    pub connect_timeout: Duration,
    /// Read/write timeout of non-watch requests.
    pub io_timeout: Duration,
}

impl Client {
    pub fn new(api: ApiServer, token_file: PathBuf, trust: &TrustChoice) -> Client {
        let trust = api.https.then(|| {
            Mutex::new(tls::TrustCache::new(match trust {
                TrustChoice::CaFile(p) => tls::Trust::CaFile(p.clone()),
                TrustChoice::WebPkiRoots => tls::Trust::WebPkiRoots,
                TrustChoice::Insecure => tls::Trust::Insecure,
            }))
        });
        Client {
            api,
            token_file,
            trust,
            warned_token: AtomicBool::new(false),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
        }
    }

    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    /// Lists `obj` by name. `from_cache` asks for `resourceVersion=0` (the API server's
    /// watch cache, cheap for a safety-net check); otherwise a consistent read.
    pub fn list(&self, obj: &ObjectRef, from_cache: bool) -> Result<Listed, Error> {
        let mut path = self.collection_path(obj);
        if from_cache {
            path.push_str("&resourceVersion=0");
        }
        let mut resp = self.get(&path, self.io_timeout)?;
        let body = resp.read_body(MAX_LIST_BYTES)?;
        decode_list(&body, obj)
    }

    /// Starts a watch of `obj` from `resource_version`, with bookmarks and a server-side
    /// timeout; `read_timeout` should be a little longer than `timeout_secs`.
    pub fn watch(
        &self,
        obj: &ObjectRef,
        resource_version: &str,
        timeout_secs: u64,
        read_timeout: Duration,
    ) -> Result<Watch, Error> {
        let path = format!(
            "{}&watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={}",
            self.collection_path(obj),
            query_escape(resource_version),
            timeout_secs.max(1)
        );
        let resp = self.get(&path, read_timeout)?;
        Ok(Watch {
            resp,
            obj: obj.clone(),
        })
    }

    fn collection_path(&self, obj: &ObjectRef) -> String {
        format!(
            "{}/api/v1/namespaces/{}/{}?fieldSelector=metadata.name%3D{}",
            self.api.base_path,
            obj.namespace,
            obj.kind.plural(),
            obj.name
        )
    }

    /// One GET; a non-2xx answer becomes [`Error::Api`] with its `Status`. Every outcome
    /// is counted by status code (0: no answer).
    fn get(
        &self,
        path_and_query: &str,
        read_timeout: Duration,
    ) -> Result<http::Response<tls::Stream>, Error> {
        let result = self.get_uncounted(path_and_query, read_timeout);
        METRICS.request(match &result {
            Ok(resp) => resp.head.status,
            Err(Error::Api { code, .. }) => *code,
            Err(_) => 0,
        });
        result
    }

    fn get_uncounted(
        &self,
        path_and_query: &str,
        read_timeout: Duration,
    ) -> Result<http::Response<tls::Stream>, Error> {
        let config = match &self.trust {
            Some(cache) => {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                Some(cache.config().map_err(Error::Transport)?)
            }
            None => None,
        };
        let mut stream = tls::connect(
            &self.api.host,
            self.api.port,
            config.as_ref(),
            self.connect_timeout,
            self.io_timeout,
        )
        .map_err(|e| match e.kind() {
            // rustls reports a refused certificate or a protocol error as InvalidData
            std::io::ErrorKind::InvalidData => Error::Tls(e.to_string()),
            _ => Error::Transport(e.to_string()),
        })?;
        let token = self.token();
        let auth = token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let host = self.api.host_header();
        http::write_request(
            &mut stream,
            &http::Request {
                method: "GET",
                host: &host,
                path_and_query,
                headers: &headers,
                body: &[],
            },
        )?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(|e| Error::Transport(format!("set read timeout: {e}")))?;
        let mut resp = http::read_response(stream, false)?;
        let code = resp.head.status;
        if (200..300).contains(&code) {
            return Ok(resp);
        }
        if (300..400).contains(&code) {
            let to = resp.head.header("location").unwrap_or("?").to_string();
            return Err(Error::Transport(format!(
                "api server answered {code} redirect to {to:?}: redirects are not followed"
            )));
        }
        let retry_after = resp
            .head
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        let status = resp
            .read_body(MAX_STATUS_BYTES)
            .ok()
            .and_then(|b| decode_status(&b));
        Err(Error::Api {
            code,
            status,
            retry_after,
        })
    }

    /// The token, read fresh. A missing file means no Authorization header (warned once).
    fn token(&self) -> Option<String> {
        let read = std::fs::File::open(&self.token_file).and_then(|f| {
            use std::io::Read;
            let mut s = String::new();
            f.take(MAX_TOKEN_BYTES).read_to_string(&mut s)?;
            Ok(s)
        });
        match read {
            Ok(s) => {
                let t = s.trim();
                (!t.is_empty()).then(|| t.to_string())
            }
            Err(e) => {
                if !self.warned_token.swap(true, Ordering::Relaxed) {
                    let path = self.token_file.display();
                    log::warn(
                        "no token: requests go without Authorization",
                        &[("token_file", &path), ("err", &e)],
                    );
                }
                None
            }
        }
    }
}

/// An open watch stream.
pub struct Watch {
    resp: http::Response<tls::Stream>,
    obj: ObjectRef,
}

impl Watch {
    /// The next event; `Ok(None)` when the server ended the stream normally.
    pub fn next(&mut self) -> Result<Option<Event>, Error> {
        match self.resp.next_line(MAX_EVENT_BYTES)? {
            None => Ok(None),
            Some(line) => decode_event(line, &self.obj).map(Some),
        }
    }
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_json<'a>(body: &'a [u8], what: &str) -> Result<json::Value<'a>, Error> {
    json::parse(body).map_err(|e| Error::Decode(format!("{what}: {e}")))
}

fn str_at<'a>(v: &'a json::Value<'_>, path: &[&str]) -> Option<&'a str> {
    v.pointer(path).and_then(|v| v.as_str())
}

/// Decodes a list answer for `obj`.
pub fn decode_list(body: &[u8], obj: &ObjectRef) -> Result<Listed, Error> {
    let mut v = parse_json(body, "list")?;
    if str_at(&v, &["kind"]) == Some("Status") {
        let status = decode_status_value(&v);
        return Err(Error::Api {
            code: status.code,
            status: Some(status),
            retry_after: None,
        });
    }
    let resource_version = str_at(&v, &["metadata", "resourceVersion"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Decode("list: no metadata.resourceVersion".into()))?
        .to_string();
    let items = v
        .get("items")
        .ok_or_else(|| Error::Decode("list: no items".into()))?;
    let items: &[json::Value] = if items.is_null() {
        &[]
    } else {
        items
            .as_array()
            .ok_or_else(|| Error::Decode("list: items is not an array".into()))?
    };
    let found = items
        .iter()
        .position(|item| str_at(item, &["metadata", "name"]) == Some(&obj.name));
    // The object's content is moved out of the parsed list, not copied.
    let object = match found.and_then(|i| match get_mut(&mut v, "items") {
        Some(json::Value::Array(items)) => items.get_mut(i),
        _ => None,
    }) {
        Some(item) => Some(take_object(item, obj.kind)?),
        None => None,
    };
    Ok(Listed {
        resource_version,
        object,
    })
}

/// Decodes an object's version and files. A malformed version is an error; malformed
/// content is kept inside [`Object::files`] so the caller can refuse it by name.
pub fn decode_object(v: &json::Value<'_>, kind: Kind) -> Result<Object, Error> {
    take_object(&mut v.clone(), kind)
}

/// [`decode_object`], moving the content out of `v` (left without `data` and `binaryData`)
/// instead of copying it: a text value that had escapes is already an owned string, and
/// becomes the file as it is.
fn take_object(v: &mut json::Value<'_>, kind: Kind) -> Result<Object, Error> {
    let resource_version = str_at(v, &["metadata", "resourceVersion"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Decode("object: no metadata.resourceVersion".into()))?
        .to_string();
    Ok(Object {
        resource_version,
        files: take_files(v, kind),
    })
}

/// The first member named `key`, if `v` is an object.
fn get_mut<'v, 'a>(v: &'v mut json::Value<'a>, key: &str) -> Option<&'v mut json::Value<'a>> {
    match v {
        json::Value::Object(members) => members
            .iter_mut()
            .find(|(name, _)| name.as_ref() == key)
            .map(|(_, value)| value),
        _ => None,
    }
}

fn take_files(v: &mut json::Value<'_>, kind: Kind) -> Result<Files, Refused> {
    let mut files = Files::new();
    // ConfigMap `data` is text; Secret `data` and every `binaryData` are base64.
    let sections: [(&str, bool); 2] = [("data", kind == Kind::Secret), ("binaryData", true)];
    for (section, is_base64) in sections {
        let Some(members) = get_mut(v, section).map(|m| std::mem::replace(m, json::Value::Null))
        else {
            continue;
        };
        if members.is_null() {
            continue;
        }
        let json::Value::Object(members) = members else {
            return Err(Refused::new(None, format!("{section} is not an object")));
        };
        for (key, value) in members {
            let json::Value::Str(text) = value else {
                let why = format!("{section} key {key:?}: value is not a string");
                return Err(Refused::new(Some(&key), why));
            };
            let bytes = if is_base64 {
                base64::decode(&text)
                    .map_err(|e| Refused::new(Some(&key), format!("{section} key {key:?}: {e}")))?
            } else {
                text.into_owned().into_bytes()
            };
            match files.entry(key.into_owned()) {
                Entry::Vacant(slot) => {
                    slot.insert(bytes);
                }
                Entry::Occupied(taken) => {
                    let key = taken.key();
                    let why = if section == "data" {
                        format!("key {key:?} appears twice in data")
                    } else {
                        format!("key {key:?} appears twice, or in both data and binaryData")
                    };
                    return Err(Refused::new(Some(key), why));
                }
            }
        }
    }
    Ok(files)
}

/// Decodes one watch event line.
pub fn decode_event(line: &[u8], obj: &ObjectRef) -> Result<Event, Error> {
    let mut v = parse_json(line, "watch event")?;
    if let Some(event) = decode_event_value(&v, obj)? {
        return Ok(event);
    }
    // An upsert of the object: its content is moved out of the parsed line, not copied.
    let object =
        get_mut(&mut v, "object").ok_or_else(|| Error::Decode("watch event: no object".into()))?;
    Ok(Event::Upsert(take_object(object, obj.kind)?))
}

/// Every event but an upsert of the object itself, which is `Ok(None)`: its content is
/// taken by the caller.
fn decode_event_value(v: &json::Value<'_>, obj: &ObjectRef) -> Result<Option<Event>, Error> {
    let kind = str_at(v, &["type"]).ok_or_else(|| Error::Decode("watch event: no type".into()))?;
    let object = v
        .get("object")
        .ok_or_else(|| Error::Decode(format!("watch event {kind}: no object")))?;
    let version = || {
        str_at(object, &["metadata", "resourceVersion"])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Decode(format!("watch event {kind}: no metadata.resourceVersion"))
            })
    };
    match kind {
        "ADDED" | "MODIFIED" | "DELETED"
            if str_at(object, &["metadata", "name"]) != Some(&obj.name) =>
        {
            Ok(Some(Event::Ignored {
                resource_version: version()?,
            }))
        }
        "ADDED" | "MODIFIED" => Ok(None),
        "DELETED" => Ok(Some(Event::Deleted {
            resource_version: version()?,
        })),
        "BOOKMARK" => Ok(Some(Event::Bookmark {
            resource_version: version()?,
        })),
        "ERROR" => {
            let status = decode_status_value(object);
            if status.code == 410 || status.reason == "Expired" || status.reason == "Gone" {
                Ok(Some(Event::Expired(status)))
            } else {
                Ok(Some(Event::Error(status)))
            }
        }
        other => Err(Error::Decode(format!(
            "watch event: unknown type {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

/// A `Status` from an error body, if it is one.
pub fn decode_status(body: &[u8]) -> Option<Status> {
    let v = json::parse(body).ok()?;
    (str_at(&v, &["kind"]) == Some("Status")).then(|| decode_status_value(&v))
}

fn decode_status_value(v: &json::Value<'_>) -> Status {
    let clip = |s: &str| s.chars().take(300).collect::<String>();
    Status {
        code: v
            .get("code")
            .and_then(|c| c.as_i64())
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0),
        reason: clip(str_at(v, &["reason"]).unwrap_or("")),
        message: clip(str_at(v, &["message"]).unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::ConfigMap,
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn files(pairs: &[(&str, &[u8])]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn list_with_and_without_the_object() {
        let body = br#"{
          "kind": "ConfigMapList", "apiVersion": "v1",
          "metadata": {"resourceVersion": "1234"},
          "items": [{"metadata": {"name": "envoy", "resourceVersion": "1200"},
                     "data": {"lds.yaml": "a\nb", "cds.yaml": "c"},
                     "binaryData": {"bin": "AAEC"}}]
        }"#;
        let l = decode_list(body, &cm("envoy")).unwrap();
        assert_eq!(l.resource_version, "1234");
        let o = l.object.unwrap();
        assert_eq!(o.resource_version, "1200");
        assert_eq!(
            o.files.unwrap(),
            files(&[
                ("lds.yaml", b"a\nb"),
                ("cds.yaml", b"c"),
                ("bin", &[0, 1, 2])
            ])
        );
        let empty = br#"{"kind":"ConfigMapList","metadata":{"resourceVersion":"9"},"items":[]}"#;
        assert_eq!(
            decode_list(empty, &cm("envoy")).unwrap(),
            Listed {
                resource_version: "9".into(),
                object: None
            }
        );
        let other = br#"{"metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"x","resourceVersion":"3"}}]}"#;
        assert_eq!(decode_list(other, &cm("envoy")).unwrap().object, None);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        let table: &[(&[u8], &str)] = &[
            (b"{", "list: invalid json"),
            (br#"{"items":[]}"#, "no metadata.resourceVersion"),
            (br#"{"metadata":{"resourceVersion":"1"}}"#, "no items"),
            (
                br#"{"metadata":{"resourceVersion":"1"},"items":{}}"#,
                "not an array",
            ),
            (
                br#"{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"envoy"}}]}"#,
                "object: no metadata.resourceVersion",
            ),
        ];
        for (body, want) in table {
            let e = decode_list(body, &cm("envoy")).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"configmaps is forbidden","reason":"Forbidden","code":403}"#;
        let e = decode_list(status, &cm("envoy")).unwrap_err();
        assert_eq!(e.code(), Some(403));
        assert!(
            e.to_string().contains("Forbidden: configmaps is forbidden"),
            "{e}"
        );
    }

    #[test]
    fn refused_content_is_kept_as_a_reason() {
        let table: &[(&str, &str, Option<&str>)] = &[
            (
                r#"{"metadata":{"resourceVersion":"1"},"data":{"a":"1","a":"2"}}"#,
                "key \"a\" appears twice in data",
                Some("a"),
            ),
            (
                r#"{"metadata":{"resourceVersion":"1"},"data":{"a":"1"},"binaryData":{"a":"AA=="}}"#,
                "in both data and binaryData",
                Some("a"),
            ),
            (
                r#"{"metadata":{"resourceVersion":"1"},"data":{"a":1}}"#,
                "data key \"a\": value is not a string",
                Some("a"),
            ),
            (
                r#"{"metadata":{"resourceVersion":"1"},"data":[]}"#,
                "data is not an object",
                None,
            ),
            (
                r#"{"metadata":{"resourceVersion":"1"},"binaryData":{"b":"***"}}"#,
                "binaryData key \"b\": invalid base64",
                Some("b"),
            ),
        ];
        for (text, want, key) in table {
            let v = json::parse(text.as_bytes()).unwrap();
            let o = decode_object(&v, Kind::ConfigMap).unwrap();
            let e = o.files.unwrap_err();
            assert!(e.why.contains(want), "{text}: {e}");
            assert_eq!(e.key.as_deref(), *key, "{text}");
        }
        let v = json::parse(br#"{"metadata":{"resourceVersion":"1"},"data":null}"#).unwrap();
        assert_eq!(
            decode_object(&v, Kind::ConfigMap).unwrap().files,
            Ok(Files::new())
        );
    }

    #[test]
    fn secrets_are_base64() {
        let v =
            json::parse(br#"{"metadata":{"resourceVersion":"5"},"data":{"tls.crt":"aGVsbG8="}}"#)
                .unwrap();
        let o = decode_object(&v, Kind::Secret).unwrap();
        assert_eq!(o.files.unwrap(), files(&[("tls.crt", b"hello")]));
    }

    #[test]
    fn watch_events() {
        let o = cm("envoy");
        let table: &[(&str, Event)] = &[
            (
                r#"{"type":"ADDED","object":{"metadata":{"name":"envoy","resourceVersion":"7"},"data":{"k":"v"}}}"#,
                Event::Upsert(Object {
                    resource_version: "7".into(),
                    files: Ok(files(&[("k", b"v")])),
                }),
            ),
            (
                r#"{"type":"MODIFIED","object":{"metadata":{"name":"envoy","resourceVersion":"8"}}}"#,
                Event::Upsert(Object {
                    resource_version: "8".into(),
                    files: Ok(Files::new()),
                }),
            ),
            (
                r#"{"type":"DELETED","object":{"metadata":{"name":"envoy","resourceVersion":"9"},"data":{"k":"v"}}}"#,
                Event::Deleted {
                    resource_version: "9".into(),
                },
            ),
            (
                r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"12"}}}"#,
                Event::Bookmark {
                    resource_version: "12".into(),
                },
            ),
            (
                r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#,
                Event::Expired(Status {
                    code: 410,
                    reason: "Expired".into(),
                    message: "too old resource version: 1 (5)".into(),
                }),
            ),
            (
                r#"{"type":"ERROR","object":{"kind":"Status","message":"internal error","reason":"InternalError","code":500}}"#,
                Event::Error(Status {
                    code: 500,
                    reason: "InternalError".into(),
                    message: "internal error".into(),
                }),
            ),
            (
                r#"{"type":"ADDED","object":{"metadata":{"name":"other","resourceVersion":"13"}}}"#,
                Event::Ignored {
                    resource_version: "13".into(),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(&decode_event(line.as_bytes(), &o).unwrap(), want, "{line}");
        }
        for bad in [
            "garbage",
            r#"{"object":{}}"#,
            r#"{"type":"ADDED"}"#,
            r#"{"type":"BOOKMARK","object":{"metadata":{}}}"#,
            r#"{"type":"WHATEVER","object":{}}"#,
        ] {
            assert!(decode_event(bad.as_bytes(), &o).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_errors_say_what_the_server_said() {
        let api = |code, reason: &str, message: &str| Error::Api {
            code,
            status: Some(Status {
                code,
                reason: reason.into(),
                message: message.into(),
            }),
            retry_after: None,
        };
        let table = [
            (
                api(403, "Forbidden", "no"),
                "api server answered 403: 403 Forbidden: no",
            ),
            (
                api(410, "Expired", ""),
                "api server answered 410: 410 Expired",
            ),
            (api(500, "", "boom"), "api server answered 500: 500 boom"),
            (api(502, "", ""), "api server answered 502"),
            (
                Error::Api {
                    code: 503,
                    status: None,
                    retry_after: None,
                },
                "api server answered 503",
            ),
        ];
        for (e, want) in table {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn versions_are_escaped_in_queries() {
        assert_eq!(query_escape("12345"), "12345");
        assert_eq!(query_escape("a&b=c d"), "a%26b%3Dc%20d");
    }
}
