//! Paged lists (`limit` and `continue`) as a kube-apiserver v1.20 serves them from etcd:
//! the continue token's encoding and its checks, the order of items (etcd's key order),
//! where a page ends, and `remainingItemCount`.
//!
//! It never touches the emulator's state: the caller picks the objects (at the version the
//! page is answered at) and wraps errors in a Status.
//!
//! Measured against a real kube-apiserver v1.20.2:
//! - The token is unpadded base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"KEY\u0000"}`:
//!   N is the first page's resourceVersion (every page answers at it, and an update between
//!   pages does not show), KEY the last returned item's etcd key below the collection
//!   (`NAME` in a namespace, `NAMESPACE/NAME` cluster-wide).
//! - Items come in etcd key order: cluster-wide that is by `NAMESPACE/NAME` as a string, so
//!   namespace `a-b` comes before `a` ('-' < '/').
//! - `remainingItemCount` only without label and field selectors; with a selector a page
//!   may carry a token even when nothing more matches (etcd had more keys).
//! - Bad tokens: 400 "invalid continue token: continue key is not valid: illegal base64
//!   data at input byte 0" (`!!!`), "... server does not recognize this encoded version
//!   \"x\"", "... incorrect encoded start resourceVersion (version meta.k8s.io/v1)" (rv 0),
//!   "... encoded start key empty (version meta.k8s.io/v1)", "... ../x" (a start key that
//!   is not a clean path); JSON errors carry Go's text there (here serde_json's).
//! - A token with `resourceVersion` (other than "0"): 400 "specifying resource version is
//!   not allowed when using continue". `continue` without `limit` lists the rest.
//! - `limit` with `resourceVersion=0` is served whole from the watch cache (no token);
//!   `limit` with `resourceVersion=N` lists exactly at N (410 when compacted); `limit=0` or
//!   negative is no limit; `limit=abc`: 400 "strconv.ParseInt: parsing \"abc\": invalid
//!   syntax".
//! - A token whose version was compacted away: HTTP 410, reason Expired, message
//!   `CONTINUE_EXPIRED`, no details, and `metadata.continue` holding a token with rv -1 and
//!   the same start key; that one lists the rest at the current version.

use serde_json::Value;

use super::objects::{base64_decode, base64_encode, js};

/// The Status message of a continue token whose version is too old.
pub(crate) const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// A decoded continue token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// The version to list at; negative: the current one.
    pub rv: i64,
    /// Items from this key on (it ends in NUL: just after the last one returned).
    pub start: String,
}

/// The token for `start` at `rv`.
pub(crate) fn encode(start: &str, rv: i64) -> String {
    let json = format!(
        "{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":{}}}",
        js(start)
    );
    base64_encode(json.as_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Unpadded base64url, Go's `base64.RawURLEncoding`.
fn raw_url_decode(s: &str) -> Result<Vec<u8>, String> {
    let illegal = |i: usize| format!("illegal base64 data at input byte {i}");
    if let Some(i) = s.bytes().position(|c| matches!(c, b'+' | b'/' | b'=')) {
        return Err(illegal(i));
    }
    if s.len() % 4 == 1 {
        return Err(illegal(s.len() - 1));
    }
    let mut std = s.replace('-', "+").replace('_', "/");
    while !std.len().is_multiple_of(4) {
        std.push('=');
    }
    base64_decode(&std)
}

/// Decodes and checks a token as the server does; the error follows "invalid continue
/// token: ".
pub(crate) fn decode(s: &str) -> Result<Token, String> {
    let bad = |why: String| format!("continue key is not valid: {why}");
    let data = raw_url_decode(s).map_err(bad)?;
    let v: Value = serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
    let version = v.get("v").and_then(Value::as_str).unwrap_or("");
    if version != "meta.k8s.io/v1" {
        return Err(bad(format!(
            "server does not recognize this encoded version {version:?}"
        )));
    }
    let rv = v.get("rv").and_then(Value::as_i64).unwrap_or(0);
    if rv == 0 {
        return Err(bad(String::from(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )));
    }
    let start = v.get("start").and_then(Value::as_str).unwrap_or("");
    if start.is_empty() {
        return Err(bad(String::from(
            "encoded start key empty (version meta.k8s.io/v1)",
        )));
    }
    if !is_clean_path(start) {
        return Err(bad(start.to_string()));
    }
    let start = start.strip_prefix('/').unwrap_or(start).to_string();
    Ok(Token { rv, start })
}

/// Whether `/start` is what Go's `path.Clean` makes of it (no empty, `.` or `..` segment,
/// no trailing slash): a token cannot reach above its collection.
fn is_clean_path(start: &str) -> bool {
    let key = start.strip_prefix('/').unwrap_or(start);
    key.is_empty() || key.split('/').all(|seg| !matches!(seg, "" | "." | ".."))
}

/// One page of a list.
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    /// The start key of the next page (last key plus NUL) while more remain.
    pub next: Option<String>,
    /// Keys after this page, when the list has no selector.
    pub remaining: Option<usize>,
}

/// Cuts a page from `all` (every object of the collection's range, with its etcd key,
/// in any order): keys from `start` on, at most `limit` of those `selected` keeps.
/// `counted`: the list has no selector, so the remainder is known.
pub(crate) fn cut<T>(
    mut all: Vec<(String, T)>,
    start: &str,
    limit: Option<usize>,
    counted: bool,
    selected: impl Fn(&T) -> bool,
) -> Page<T> {
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.retain(|(k, _)| k.as_str() >= start);
    let in_range = all.len();
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for (k, o) in all {
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            break;
        }
        if selected(&o) {
            items.push(o);
            last = Some(k);
        }
    }
    let next = if more {
        last.map(|k| format!("{k}\u{0}"))
    } else {
        None
    };
    let remaining = match (counted, limit) {
        (true, Some(l)) if next.is_some() => Some(in_range.saturating_sub(l)),
        _ => None,
    };
    Page {
        items,
        next,
        remaining,
    }
}
