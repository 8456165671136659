//! The input as a watch stream: a chunked body behind a fixed `200 OK` head, read line by
//! line with `read_line` (cap `kube::MAX_EVENT_BYTES` or smaller), every line decoded by
//! `kube::decode_event` for a ConfigMap and for a Secret. In the second mode the input is
//! the decoded body itself, framed here into chunks whose sizes come from the input, so the
//! lines must be exactly the input's lines. The input also goes through `decode_list`,
//! `decode_status` and `base64::decode`.
//!
//! Input layout: byte 0 picks the mode (bit 0), the line cap (bits 1-2) and the chunk
//! framing style (bits 4-7); bytes 1..4 the read sizes; bytes 4..7 the chunk sizes of the
//! second mode; the rest is the stream body (first mode) or payload (second mode).

#![no_main]

mod common;

use common::{
    check_chunked_splits, chunk_encode, oracle_body, oracle_lines, piece_sizes, read_all_lines,
    split_cfg, Pieces,
};
use envoy_xds_configmap_loader::http::{self, Framing};
use envoy_xds_configmap_loader::kube::{self, Event, Kind, ObjectRef, Status};
use envoy_xds_configmap_loader::{base64, json};
use libfuzzer_sys::fuzz_target;

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

fuzz_target!(|input: &[u8]| {
    let (cfg, rest) = split_cfg::<7>(input);
    let framed_here = cfg[0] & 1 == 1;
    let cap = match (cfg[0] >> 1) & 3 {
        0 => kube::MAX_EVENT_BYTES,
        1 => 16,
        2 => 200,
        _ => 1000,
    };
    let read_sizes = piece_sizes(&cfg[1..4]);
    let chunk_sizes = piece_sizes(&cfg[4..7]);

    let body = if framed_here {
        chunk_encode(rest, &chunk_sizes, cfg[0] >> 4)
    } else {
        rest.to_vec()
    };
    check_chunked_splits(&body, &read_sizes);
    let expected = oracle_body(Framing::Chunked, &body, usize::MAX);
    if framed_here {
        assert_eq!(expected.as_deref(), Ok(rest), "chunk_encode round trip");
    }

    let mut raw = HEAD.to_vec();
    raw.extend_from_slice(&body);
    let configmap = object(Kind::ConfigMap);
    let secret = object(Kind::Secret);
    let mut resp =
        http::read_response(Pieces::new(&raw, &read_sizes), false).expect("the fixed head parses");
    let (lines, end) = read_all_lines(&mut resp, cap, body.len() + 1, |line| {
        check_event(line, &configmap);
        check_event(line, &secret);
    });
    match &expected {
        Ok(b) => {
            let (want, too_large) = oracle_lines(b, cap);
            let want: Vec<Vec<u8>> = want.into_iter().map(|l| l.bytes).collect();
            assert_eq!(lines, want, "read_line({cap})");
            match end {
                Ok(()) => assert!(!too_large, "read_line missed a line over {cap}"),
                Err(http::Error::TooLarge { what: "line", .. }) => assert!(too_large),
                Err(e) => panic!("read_line failed on a good stream: {e}"),
            }
        }
        Err(_) => assert!(end.is_err(), "read_line ended cleanly on a broken stream"),
    }

    // The payload as a whole document.
    check_event(rest, &configmap);
    for obj in [&configmap, &secret] {
        match kube::decode_list(rest, obj) {
            Ok(listed) => {
                assert!(!listed.resource_version.is_empty());
                if let Some(o) = listed.object {
                    assert!(!o.resource_version.is_empty());
                }
            }
            Err(e) => {
                if let kube::Error::Api { code, status, .. } = &e {
                    let status = status
                        .as_ref()
                        .expect("an api error from a list has a status");
                    assert_eq!(*code, status.code);
                    check_status(status);
                }
                assert!(!e.to_string().is_empty());
            }
        }
    }
    if let Some(status) = kube::decode_status(rest) {
        check_status(&status);
        let v = json::parse(rest).expect("a status is json");
        assert_eq!(v.get("kind").and_then(|k| k.as_str()), Some("Status"));
    }
    check_base64(rest);
});

fn object(kind: Kind) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: "default".into(),
        name: "envoy-xds".into(),
    }
}

/// `decode_event` on one line, with what its answer implies about the line.
fn check_event(line: &[u8], obj: &ObjectRef) {
    let event = match kube::decode_event(line, obj) {
        Ok(event) => event,
        Err(e) => {
            assert!(matches!(e, kube::Error::Decode(_)), "{e:?}");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let v = json::parse(line).expect("a decoded event is json");
    let kind = v.get("type").and_then(|t| t.as_str());
    let name = v
        .pointer(&["object", "metadata", "name"])
        .and_then(|n| n.as_str());
    match &event {
        Event::Upsert(o) => {
            assert!(matches!(kind, Some("ADDED" | "MODIFIED")));
            assert_eq!(name, Some(obj.name.as_str()));
            assert!(!o.resource_version.is_empty());
            if let Ok(files) = &o.files {
                let members = |section: &str| {
                    v.pointer(&["object", section])
                        .and_then(|s| s.as_object())
                        .map_or(0, <[_]>::len)
                };
                assert_eq!(files.len(), members("data") + members("binaryData"));
            }
        }
        Event::Deleted { resource_version } => {
            assert_eq!(kind, Some("DELETED"));
            assert_eq!(name, Some(obj.name.as_str()));
            assert!(!resource_version.is_empty());
        }
        Event::Bookmark { resource_version } => {
            assert_eq!(kind, Some("BOOKMARK"));
            assert!(!resource_version.is_empty());
        }
        Event::Ignored { resource_version } => {
            assert!(matches!(kind, Some("ADDED" | "MODIFIED" | "DELETED")));
            assert_ne!(name, Some(obj.name.as_str()));
            assert!(!resource_version.is_empty());
        }
        Event::Expired(status) => {
            assert_eq!(kind, Some("ERROR"));
            assert!(status.code == 410 || status.reason == "Expired" || status.reason == "Gone");
            check_status(status);
        }
        Event::Error(status) => {
            assert_eq!(kind, Some("ERROR"));
            assert!(status.code != 410 && status.reason != "Expired" && status.reason != "Gone");
            check_status(status);
        }
    }
}

/// Status texts are clipped, so that a hostile server cannot flood the log.
fn check_status(status: &Status) {
    assert!(status.reason.chars().count() <= 300);
    assert!(status.message.chars().count() <= 300);
    assert!(!status.to_string().is_empty());
}

/// `base64::decode` on the input as text: bounded output, errors inside the input, and
/// `encode` round trips.
fn check_base64(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    match base64::decode(&text) {
        Ok(decoded) => {
            assert!(
                decoded.len() <= text.len() / 4 * 3,
                "{} from {}",
                decoded.len(),
                text.len()
            );
            assert_eq!(
                base64::decode(&base64::encode(&decoded)).as_ref(),
                Ok(&decoded)
            );
            let unwrapped: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            assert_eq!(base64::decode(&unwrapped).as_ref(), Ok(&decoded));
        }
        Err(e) => assert!(
            e.offset <= text.len(),
            "offset {} of {}",
            e.offset,
            text.len()
        ),
    }
    let encoded = base64::encode(bytes);
    assert_eq!(encoded.len(), bytes.len().div_ceil(3) * 4);
    assert_eq!(base64::decode(&encoded).as_deref(), Ok(bytes));
}
