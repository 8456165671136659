//! The input as the bytes a server sends back: `parse_head`, `framing`, then the body read
//! through `Response::read_body` and, separately, `Response::read_line`, over a reader
//! whose piece sizes come from the first input bytes. Every answer is checked against a
//! reference built from the pure parsers over the whole input, and the chunked decoder
//! must agree with itself across splits of its input.
//!
//! Input layout: byte 0 picks the line limit, byte 1 the number of lines read before
//! `read_body` and a small body limit, bytes 2..5 the read sizes; the rest is the
//! response.

#![no_main]

mod common;

use common::{
    check_chunked_splits, kind, oracle_body, oracle_head, oracle_lines, piece_sizes,
    read_all_lines, split_cfg, Pieces,
};
use envoy_xds_configmap_loader::http::{self, Framing};
use libfuzzer_sys::fuzz_target;

/// A body limit above any input the fuzzer makes, so that only the framing decides.
const BIG: usize = 1 << 20;

fuzz_target!(|input: &[u8]| {
    if input.len() >= BIG / 2 {
        return;
    }
    let (cfg, raw) = split_cfg::<5>(input);
    let line_limit = match cfg[0] {
        0xf0..=0xff => usize::from(cfg[0] - 0xf0) * 512,
        b => usize::from(b % 80),
    };
    let lines_first = usize::from(cfg[1] % 8);
    let small_limit = usize::from(cfg[1] / 8) * 3;
    let sizes = piece_sizes(&cfg[2..5]);

    check_parse_head(raw);
    let expected = oracle_head(raw);

    // The chunked decoder over what follows the head, or over everything.
    let after_head = match &expected {
        Ok((_, start, _)) => &raw[*start..],
        Err(_) => raw,
    };
    check_chunked_splits(after_head, &sizes);

    // read_response + read_body(BIG) against the reference.
    let body = match http::read_response(Pieces::new(raw, &sizes), false) {
        Err(e) => {
            assert_eq!(
                expected.as_ref().err(),
                Some(&kind(&e)),
                "read_response failed with {e}"
            );
            return;
        }
        Ok(mut resp) => {
            let Ok((head, start, framing)) = &expected else {
                panic!("read_response accepted what parse_head refused: {expected:?}");
            };
            assert_eq!(resp.head.status, head.status);
            assert_eq!(resp.head.reason, head.reason);
            assert_eq!(resp.head.headers, head.headers);
            let want = oracle_body(*framing, &raw[*start..], BIG);
            let got = resp.read_body(BIG).map_err(|e| kind(&e));
            assert_eq!(got, want, "read_body({BIG}) with {framing:?}");
            want
        }
    };

    // read_body with a small limit.
    if let Ok(mut resp) = http::read_response(Pieces::new(raw, &sizes), false) {
        let got = resp.read_body(small_limit);
        match (&body, got) {
            (Ok(b), Ok(g)) => assert_eq!(&g, b, "read_body({small_limit})"),
            (Ok(b), Err(http::Error::TooLarge { what: "body", .. })) => {
                assert!(b.len() > small_limit, "body of {} too large", b.len())
            }
            (Ok(b), Err(e)) => panic!("read_body({small_limit}) failed: {e}, body {b:?}"),
            (Err(_), Ok(g)) => panic!("read_body({small_limit}) read {g:?} of a broken body"),
            (Err(_), Err(_)) => {}
        }
        if let (Ok(b), Ok(g)) = (&body, resp.read_body(small_limit)) {
            // After the end, the body is empty.
            assert!(b.len() > small_limit || g.is_empty(), "second read_body");
        }
    }

    // read_line(line_limit) until the end.
    if let Ok(mut resp) = http::read_response(Pieces::new(raw, &sizes), false) {
        let (lines, end) = read_all_lines(&mut resp, line_limit, raw.len() + 1, |_| {});
        match &body {
            Ok(b) => {
                let (want, too_large) = oracle_lines(b, line_limit);
                let want: Vec<Vec<u8>> = want.into_iter().map(|l| l.bytes).collect();
                assert_eq!(lines, want, "read_line({line_limit})");
                match end {
                    Ok(()) => assert!(!too_large, "read_line missed a line over the limit"),
                    Err(http::Error::TooLarge { what: "line", .. }) => {
                        assert!(too_large, "read_line refused a line within the limit")
                    }
                    Err(e) => panic!("read_line failed on a good body: {e}"),
                }
            }
            Err(_) => assert!(end.is_err(), "read_line ended cleanly on a broken body"),
        }
    }

    // A few lines, then the rest through read_body.
    if let (Ok(b), Ok(mut resp)) = (&body, http::read_response(Pieces::new(raw, &sizes), false)) {
        let (want, _) = oracle_lines(b, line_limit);
        if want.len() >= lines_first {
            let mut end = 0;
            for line in want.iter().take(lines_first) {
                let got = resp.read_line(line_limit).map_err(|e| kind(&e));
                assert_eq!(got, Ok(Some(line.bytes.clone())));
                end = line.end;
            }
            let rest = resp.read_body(BIG).map_err(|e| kind(&e));
            assert_eq!(
                rest,
                Ok(b[end..].to_vec()),
                "read_body after {lines_first} lines"
            );
        }
    }

    // A response to HEAD never has a body.
    if let Ok(mut resp) = http::read_response(Pieces::new(raw, &sizes), true) {
        assert_eq!(resp.read_body(BIG).map_err(|e| kind(&e)), Ok(Vec::new()));
    }
});

/// `parse_head` alone: a complete head is found again in exactly its own bytes, a strict
/// prefix of it is incomplete, and `framing` is total and says "no body" to HEAD.
fn check_parse_head(raw: &[u8]) {
    let Ok(Some((head, used))) = http::parse_head(raw) else {
        return;
    };
    assert!(used <= raw.len() && used <= http::MAX_HEAD_BYTES);
    let again = http::parse_head(&raw[..used]);
    let Ok(Some((same, same_used))) = again else {
        panic!("head of {used} bytes not found again: {again:?}");
    };
    assert_eq!(same_used, used);
    assert_eq!(
        (same.status, &same.reason, &same.headers),
        (head.status, &head.reason, &head.headers)
    );
    assert!(
        matches!(http::parse_head(&raw[..used - 1]), Ok(None)),
        "a strict prefix of a head is not incomplete"
    );
    assert!((100..=999).contains(&head.status), "status {}", head.status);
    for (name, value) in &head.headers {
        assert!(!name.is_empty() && !name.contains([':', ' ', '\r', '\n']));
        assert!(!value.contains(['\r', '\n']));
        assert_eq!(value.trim_matches([' ', '\t']), value);
        if let Some(v) = head.header(name) {
            assert!(head
                .headers
                .iter()
                .any(|(n, x)| n.eq_ignore_ascii_case(name) && x == v));
        }
    }
    let _ = http::framing(&head, false);
    assert_eq!(http::framing(&head, true).ok(), Some(Framing::Empty));
}
