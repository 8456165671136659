//! The Kubernetes API client as the loader uses it: list one named object by
//! `fieldSelector`, watch it from a resourceVersion; [`decode`] turns the bytes into types.
//!
//! Every request is one connection (`Connection: close`), with the bearer token read
//! from its file just before the request (so a rotated token is used at once, and a 401 is
//! followed by a fresh read) and the CA re-checked by [`tls::TrustCache`]. Redirects are
//! errors: a token never travels to another host. Errors keep their kind ([`Error`]): the
//! caller tells a refused certificate from a timeout, a size limit or a status code. This
//! module never writes files, never sleeps and never counts: retry policy and metrics live
//! in `sync`, which hears every answer's status through [`Client::on_answer`].

pub mod decode;

pub use crate::config::{Kind, ObjectRef, Selection};
pub use decode::{
    decode_event, decode_list, decode_object, decode_page, decode_selection_event, decode_status,
    Event, Listed, Member, Object, Page, Refused, SelectionEvent, Status,
};

use crate::config::{ApiServer, Trust};
use crate::{http, log, tls};
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

/// Why a request failed, by kind.
#[derive(Debug)]
pub enum Error {
    /// No usable connection: the CA file, resolving, connecting, or the TLS handshake
    /// ([`tls::Error`] says which; a refused certificate is not worth retrying).
    Connect(tls::Error),
    /// Sending the request or reading the answer failed: the connection broke, the answer
    /// broke HTTP/1.1, or it was larger than its limit ([`http::Error`] says which).
    Http(http::Error),
    /// A read or write timed out: for a watch, nothing arrived for its read timeout.
    Timeout,
    /// A 3xx answer: redirects are not followed.
    Redirect { code: u16, location: String },
    /// A non-2xx answer, with its `Status` when the body had one.
    Api {
        code: u16,
        status: Option<Status>,
        retry_after: Option<Duration>,
    },
    /// An ERROR event inside a watch, other than "too old" (which is [`Event::Expired`]).
    Event(Status),
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
            Error::Connect(e) => !e.is_refused(),
            Error::Http(_) | Error::Timeout | Error::Redirect { .. } | Error::Event(_) => true,
            Error::Api { code, .. } => *code == 429 || *code >= 500,
            Error::Decode(_) => false,
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
            Error::Connect(e) => write!(f, "{e}"),
            Error::Http(e) => write!(f, "{e}"),
            Error::Timeout => f.write_str("http: timed out"),
            Error::Redirect { code, location } => write!(
                f,
                "api server answered {code} redirect to {location:?}: redirects are not followed"
            ),
            Error::Api {
                code,
                status: Some(s),
                ..
            } if !s.message.is_empty() || !s.reason.is_empty() => {
                write!(f, "api server answered {code}: {s}")
            }
            Error::Api { code, .. } => write!(f, "api server answered {code}"),
            Error::Event(s) => write!(f, "error event: {s}"),
            Error::Decode(m) => write!(f, "bad response: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Error {
        match e {
            http::Error::Timeout => Error::Timeout,
            e => Error::Http(e),
        }
    }
}

impl From<tls::Error> for Error {
    fn from(e: tls::Error) -> Error {
        Error::Connect(e)
    }
}

impl From<decode::Error> for Error {
    fn from(e: decode::Error) -> Error {
        match e {
            decode::Error::Status(status) => Error::Api {
                code: status.code,
                status: Some(status),
                retry_after: None,
            },
            decode::Error::Malformed(m) => Error::Decode(m),
        }
    }
}

/// The API client: endpoint, credentials, trust.
pub struct Client {
    api: ApiServer,
    token_file: PathBuf,
    trust: Option<Mutex<tls::TrustCache>>,
    warned_token: AtomicBool,
    /// Told every request's outcome: the answer's status code, 0 when none came.
    on_answer: fn(u16),
    pub connect_timeout: Duration,
    /// Read/write timeout of non-watch requests.
    pub io_timeout: Duration,
}

impl Client {
    pub fn new(api: ApiServer, token_file: PathBuf, trust: &Trust) -> Client {
        let trust = api
            .https
            .then(|| Mutex::new(tls::TrustCache::new(trust.clone())));
        Client {
            api,
            token_file,
            trust,
            warned_token: AtomicBool::new(false),
            on_answer: |_| {},
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
        }
    }

    /// Has `count` told the status code of every answer (0: no answer), for the metrics.
    pub fn on_answer(mut self, count: fn(u16)) -> Client {
        self.on_answer = count;
        self
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
        Ok(decode_list(&body, obj)?)
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
        let path = watch_query(self.collection_path(obj), resource_version, timeout_secs);
        let resp = self.get(&path, read_timeout)?;
        Ok(Watch {
            resp,
            obj: obj.clone(),
        })
    }

    /// One page of the objects of `kind` that `selector` selects, in `namespace` or in every
    /// namespace (`None`): at most `limit` of them, from `continue_token` on when given (a
    /// token that expired answers 410: start the list again). A consistent read.
    pub fn list_page(
        &self,
        selection: &Selection,
        limit: u32,
        continue_token: Option<&str>,
    ) -> Result<Page, Error> {
        let mut path = format!("{}&limit={}", self.selection_path(selection), limit.max(1));
        if let Some(token) = continue_token {
            path.push_str("&continue=");
            path.push_str(&query_escape(token));
        }
        let mut resp = self.get(&path, self.io_timeout)?;
        let body = resp.read_body(MAX_LIST_BYTES)?;
        Ok(decode_page(&body, selection.kind)?)
    }

    /// Starts a watch of a selection from `resource_version`, with bookmarks and a
    /// server-side timeout, as [`watch`](Client::watch) does for one object.
    pub fn watch_selection(
        &self,
        selection: &Selection,
        resource_version: &str,
        timeout_secs: u64,
        read_timeout: Duration,
    ) -> Result<SelectionWatch, Error> {
        let path = watch_query(
            self.selection_path(selection),
            resource_version,
            timeout_secs,
        );
        let resp = self.get(&path, read_timeout)?;
        Ok(SelectionWatch {
            resp,
            kind: selection.kind,
        })
    }

    fn selection_path(&self, selection: &Selection) -> String {
        let scope = match &selection.namespace {
            Some(ns) => format!("/namespaces/{ns}"),
            None => String::new(),
        };
        format!(
            "{}/api/v1{scope}/{}?labelSelector={}",
            self.api.base_path,
            selection.kind.plural(),
            query_escape(&selection.selector)
        )
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
    /// is told to [`on_answer`](Client::on_answer) by status code (0: no answer).
    fn get(
        &self,
        path_and_query: &str,
        read_timeout: Duration,
    ) -> Result<http::Response<tls::Stream>, Error> {
        let result = self.request(path_and_query, read_timeout);
        (self.on_answer)(match &result {
            Ok(resp) => resp.head.status,
            Err(Error::Api { code, .. } | Error::Redirect { code, .. }) => *code,
            Err(_) => 0,
        });
        result
    }

    fn request(
        &self,
        path_and_query: &str,
        read_timeout: Duration,
    ) -> Result<http::Response<tls::Stream>, Error> {
        let config = match &self.trust {
            Some(cache) => {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                Some(cache.config()?)
            }
            None => None,
        };
        let mut stream = tls::connect(
            &self.api.host,
            self.api.port,
            config.as_ref(),
            self.connect_timeout,
            self.io_timeout,
        )?;
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
            .map_err(|e| Error::Http(http::Error::Io(e)))?;
        let mut resp = http::read_response(stream, false)?;
        let code = resp.head.status;
        if (200..300).contains(&code) {
            return Ok(resp);
        }
        if (300..400).contains(&code) {
            let location = resp.head.header("location").unwrap_or("?").to_string();
            return Err(Error::Redirect { code, location });
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
            Some(line) => Ok(Some(decode_event(line, &self.obj)?)),
        }
    }
}

/// An open watch of a selection.
pub struct SelectionWatch {
    resp: http::Response<tls::Stream>,
    kind: Kind,
}

impl SelectionWatch {
    /// The next event; `Ok(None)` when the server ended the stream normally.
    pub fn next(&mut self) -> Result<Option<SelectionEvent>, Error> {
        match self.resp.next_line(MAX_EVENT_BYTES)? {
            None => Ok(None),
            Some(line) => Ok(Some(decode_selection_event(line, self.kind)?)),
        }
    }
}

/// A list path made a watch from `resource_version`: with bookmarks and the server-side
/// timeout.
fn watch_query(list_path: String, resource_version: &str, timeout_secs: u64) -> String {
    format!(
        "{list_path}&watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={}",
        query_escape(resource_version),
        timeout_secs.max(1)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
