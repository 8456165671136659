//! Pure decoding of what the API server sends: a list answer, an object, a watch event
//! line, a `Status` body, into the types the loader works with.
//!
//! Nothing here does I/O, counts, logs or knows about connections; every function is a
//! function of its bytes (and of the object followed, whose name picks it out of a list).
//! Content that cannot become files (a key twice, a value that is not a string, bad
//! base64) is not an error of the answer: it is kept as [`Refused`] inside the [`Object`],
//! so the caller can refuse that version by name and go on.

use crate::config::{Kind, ObjectRef};
use crate::snapshot::Files;
use crate::{base64, json};
use std::collections::btree_map::Entry;
use std::fmt;

/// Why an answer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The body is a `Status`: the API server reported an error inside a 2xx answer.
    Status(Status),
    /// The body is not what was expected; the text says what and where.
    Malformed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(s) => write!(f, "{s}"),
            Error::Malformed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

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

fn parse_json<'a>(body: &'a [u8], what: &str) -> Result<json::Value<'a>, Error> {
    json::parse(body).map_err(|e| Error::Malformed(format!("{what}: {e}")))
}

fn str_at<'a>(v: &'a json::Value<'_>, path: &[&str]) -> Option<&'a str> {
    v.pointer(path).and_then(|v| v.as_str())
}

/// A list's resourceVersion; a `Status` in its place is the server's error.
fn list_version(v: &json::Value<'_>) -> Result<String, Error> {
    if str_at(v, &["kind"]) == Some("Status") {
        return Err(Error::Status(decode_status_value(v)));
    }
    Ok(str_at(v, &["metadata", "resourceVersion"])
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Malformed("list: no metadata.resourceVersion".into()))?
        .to_string())
}

/// Decodes a list answer for `obj`.
pub fn decode_list(body: &[u8], obj: &ObjectRef) -> Result<Listed, Error> {
    let mut v = parse_json(body, "list")?;
    let resource_version = list_version(&v)?;
    let items = v
        .get("items")
        .ok_or_else(|| Error::Malformed("list: no items".into()))?;
    let items: &[json::Value] = if items.is_null() {
        &[]
    } else {
        items
            .as_array()
            .ok_or_else(|| Error::Malformed("list: items is not an array".into()))?
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
        .ok_or_else(|| Error::Malformed("object: no metadata.resourceVersion".into()))?
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
    let object = get_mut(&mut v, "object")
        .ok_or_else(|| Error::Malformed("watch event: no object".into()))?;
    Ok(Event::Upsert(take_object(object, obj.kind)?))
}

/// Every event but an upsert of the object itself, which is `Ok(None)`: its content is
/// taken by the caller.
fn decode_event_value(v: &json::Value<'_>, obj: &ObjectRef) -> Result<Option<Event>, Error> {
    let kind =
        str_at(v, &["type"]).ok_or_else(|| Error::Malformed("watch event: no type".into()))?;
    let object = v
        .get("object")
        .ok_or_else(|| Error::Malformed(format!("watch event {kind}: no object")))?;
    let version = || {
        str_at(object, &["metadata", "resourceVersion"])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Malformed(format!("watch event {kind}: no metadata.resourceVersion"))
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
        other => Err(Error::Malformed(format!(
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

/// One object of a selection (a label selector's list or watch): which object it is, when
/// it was created (RFC 3339, as the server wrote it; empty when absent), and its version
/// and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub object: ObjectRef,
    pub created: String,
    pub content: Object,
}

/// One page of a selection's list: the list's resourceVersion (every page of one list has
/// the first page's), the objects, and the token of the next page while more remain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub resource_version: String,
    pub members: Vec<Member>,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// One watch event of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionEvent {
    /// ADDED or MODIFIED: the object is (still) selected.
    Upsert(Member),
    /// DELETED: the object is gone, or no longer matches the selector.
    Deleted {
        object: ObjectRef,
        resource_version: String,
    },
    Bookmark {
        resource_version: String,
    },
    /// An ERROR event with code 410: the version is too old; relist.
    Expired(Status),
    /// Any other ERROR event.
    Error(Status),
}

/// Decodes one page of a list of `kind` objects, as a selection's members.
pub fn decode_page(body: &[u8], kind: Kind) -> Result<Page, Error> {
    let mut v = parse_json(body, "list")?;
    let resource_version = list_version(&v)?;
    let continue_token = str_at(&v, &["metadata", "continue"])
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let remaining = v
        .pointer(&["metadata", "remainingItemCount"])
        .and_then(|n| n.as_i64())
        .and_then(|n| u64::try_from(n).ok());
    let members = match get_mut(&mut v, "items") {
        None => return Err(Error::Malformed("list: no items".into())),
        Some(json::Value::Null) => Vec::new(),
        Some(json::Value::Array(items)) => items
            .iter_mut()
            .map(|item| take_member(item, kind, "list item"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Error::Malformed("list: items is not an array".into())),
    };
    Ok(Page {
        resource_version,
        members,
        continue_token,
        remaining,
    })
}

/// The object an item or event names: its namespace and name, which must be there.
fn object_ref(v: &json::Value<'_>, kind: Kind, what: &str) -> Result<ObjectRef, Error> {
    let field = |name: &str| {
        str_at(v, &["metadata", name])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Malformed(format!("{what}: no metadata.{name}")))
    };
    Ok(ObjectRef {
        kind,
        namespace: field("namespace")?,
        name: field("name")?,
    })
}

/// A member, its content moved out of `v`.
fn take_member(v: &mut json::Value<'_>, kind: Kind, what: &str) -> Result<Member, Error> {
    let object = object_ref(v, kind, what)?;
    let created = str_at(v, &["metadata", "creationTimestamp"])
        .unwrap_or_default()
        .to_string();
    Ok(Member {
        object,
        created,
        content: take_object(v, kind)?,
    })
}

/// Decodes one watch event line of a selection of `kind` objects.
pub fn decode_selection_event(line: &[u8], kind: Kind) -> Result<SelectionEvent, Error> {
    let mut v = parse_json(line, "watch event")?;
    let typ = str_at(&v, &["type"])
        .ok_or_else(|| Error::Malformed("watch event: no type".into()))?
        .to_string();
    let what = format!("watch event {typ}");
    let object =
        get_mut(&mut v, "object").ok_or_else(|| Error::Malformed(format!("{what}: no object")))?;
    let version = |o: &json::Value<'_>| {
        str_at(o, &["metadata", "resourceVersion"])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Malformed(format!("{what}: no metadata.resourceVersion")))
    };
    match typ.as_str() {
        "ADDED" | "MODIFIED" => Ok(SelectionEvent::Upsert(take_member(object, kind, &what)?)),
        "DELETED" => Ok(SelectionEvent::Deleted {
            object: object_ref(object, kind, &what)?,
            resource_version: version(object)?,
        }),
        "BOOKMARK" => Ok(SelectionEvent::Bookmark {
            resource_version: version(object)?,
        }),
        "ERROR" => {
            let status = decode_status_value(object);
            if status.code == 410 || status.reason == "Expired" || status.reason == "Gone" {
                Ok(SelectionEvent::Expired(status))
            } else {
                Ok(SelectionEvent::Error(status))
            }
        }
        other => Err(Error::Malformed(format!(
            "watch event: unknown type {:?}",
            other.chars().take(40).collect::<String>()
        ))),
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
        let Err(Error::Status(s)) = decode_list(status, &cm("envoy")) else {
            panic!("a Status body is the server's error");
        };
        assert_eq!(s.code, 403);
        assert!(
            s.to_string().contains("Forbidden: configmaps is forbidden"),
            "{s}"
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
    fn pages_of_a_selection() {
        let body = br#"{"kind":"ConfigMapList","metadata":{"resourceVersion":"77","continue":"tok","remainingItemCount":3},
          "items":[{"metadata":{"name":"a","namespace":"team-1","resourceVersion":"70","creationTimestamp":"2026-12-01T10:00:00Z"},"data":{"x":"1"}},
                   {"metadata":{"name":"b","namespace":"team-2","resourceVersion":"71"},"data":{"x":1}}]}"#;
        let p = decode_page(body, Kind::ConfigMap).unwrap();
        assert_eq!(p.resource_version, "77");
        assert_eq!(p.continue_token.as_deref(), Some("tok"));
        assert_eq!(p.remaining, Some(3));
        assert_eq!(p.members.len(), 2);
        let (a, b) = (&p.members[0], &p.members[1]);
        assert_eq!(a.object.to_string(), "configmap team-1/a");
        assert_eq!(a.created, "2026-12-01T10:00:00Z");
        assert_eq!(a.content.files, Ok(files(&[("x", b"1")])));
        assert_eq!(b.object.to_string(), "configmap team-2/b");
        assert_eq!(b.created, "");
        assert!(b.content.files.is_err(), "bad content is kept as a refusal");
        let last = br#"{"metadata":{"resourceVersion":"77","continue":""},"items":null}"#;
        let p = decode_page(last, Kind::Secret).unwrap();
        assert_eq!((p.continue_token, p.members.len()), (None, 0));
        for (bad, want) in [
            (&br#"{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a","resourceVersion":"1"}}]}"#[..], "no metadata.namespace"),
            (br#"{"metadata":{"resourceVersion":"1"},"items":{}}"#, "not an array"),
            (br#"{"items":[]}"#, "no metadata.resourceVersion"),
        ] {
            let e = decode_page(bad, Kind::ConfigMap).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let expired = br#"{"kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"The provided continue parameter is too old"}"#;
        assert!(
            matches!(decode_page(expired, Kind::ConfigMap), Err(Error::Status(s)) if s.code == 410)
        );
    }

    #[test]
    fn events_of_a_selection() {
        let member = |ns: &str, name: &str, rv: &str| Member {
            object: ObjectRef {
                kind: Kind::ConfigMap,
                namespace: ns.into(),
                name: name.into(),
            },
            created: String::new(),
            content: Object {
                resource_version: rv.into(),
                files: Ok(files(&[("k", b"v")])),
            },
        };
        let table: &[(&str, SelectionEvent)] = &[
            (
                r#"{"type":"ADDED","object":{"metadata":{"namespace":"t","name":"a","resourceVersion":"5"},"data":{"k":"v"}}}"#,
                SelectionEvent::Upsert(member("t", "a", "5")),
            ),
            (
                r#"{"type":"DELETED","object":{"metadata":{"namespace":"t","name":"a","resourceVersion":"6"},"data":{"k":"v"}}}"#,
                SelectionEvent::Deleted {
                    object: member("t", "a", "6").object,
                    resource_version: "6".into(),
                },
            ),
            (
                r#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"9"}}}"#,
                SelectionEvent::Bookmark {
                    resource_version: "9".into(),
                },
            ),
            (
                r#"{"type":"ERROR","object":{"kind":"Status","reason":"Expired","code":410,"message":"too old resource version: 1 (5)"}}"#,
                SelectionEvent::Expired(Status {
                    code: 410,
                    reason: "Expired".into(),
                    message: "too old resource version: 1 (5)".into(),
                }),
            ),
        ];
        for (line, want) in table {
            assert_eq!(
                &decode_selection_event(line.as_bytes(), Kind::ConfigMap).unwrap(),
                want,
                "{line}"
            );
        }
        for bad in [
            r#"{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}"#,
            r#"{"type":"DELETED","object":{"metadata":{"namespace":"t","name":"a"}}}"#,
            r#"{"type":"NOPE","object":{}}"#,
            r#"{"object":{}}"#,
        ] {
            assert!(
                decode_selection_event(bad.as_bytes(), Kind::ConfigMap).is_err(),
                "{bad}"
            );
        }
    }
}
