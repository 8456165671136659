//! `ChunkedDecoder`: a table decoded whole and byte by byte, every split point, and the size
//! line and trailer limits.

use super::*;

/// Decodes `input` split at every point in `splits`, checking that consumption stops at
/// the end of the message.
fn decode_split(input: &[u8], splits: &[usize]) -> Result<(Vec<u8>, usize, bool), Error> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut bounds: Vec<usize> = splits.to_vec();
    bounds.push(input.len());
    for b in bounds {
        while pos < b && !d.is_done() {
            let n = d.decode(&input[pos..b], &mut out)?;
            assert!(n > 0 || d.is_done(), "no progress");
            pos += n;
        }
    }
    Ok((out, pos, d.is_done()))
}

#[test]
fn chunked_table() {
    // (input, Ok((data, bytes left unconsumed after the message)), or the error kind)
    type Want = Result<(&'static [u8], usize), &'static str>;
    let cases: Vec<(&[u8], Want)> = vec![
        (b"0\r\n\r\n", Ok((b"", 0))),
        (b"5\r\nhello\r\n0\r\n\r\n", Ok((b"hello", 0))),
        (b"5\r\nhello\r\n0\r\n\r\nEXTRA", Ok((b"hello", 5))),
        (b"5\nhello\n0\n\n", Ok((b"hello", 0))),
        (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", Ok((b"abcde", 0))),
        (b"A\r\n0123456789\r\n0\r\n\r\n", Ok((b"0123456789", 0))),
        (b"a\r\n0123456789\r\n0\r\n\r\n", Ok((b"0123456789", 0))),
        (b"0005\r\nhello\r\n000\r\n\r\n", Ok((b"hello", 0))),
        (b"5;name=value\r\nhello\r\n0\r\n\r\n", Ok((b"hello", 0))),
        (b"5 ; a=\"b;c\"\r\nhello\r\n0;x\r\n\r\n", Ok((b"hello", 0))),
        (b"5  \r\nhello\r\n0\r\n\r\n", Ok((b"hello", 0))),
        (
            b"5\r\nhello\r\n0\r\nExpires: never\r\nX: y\r\n\r\n",
            Ok((b"hello", 0)),
        ),
        (b"5\r\nhello\r\n0\r\nX: y\n\nHTTP", Ok((b"hello", 4))),
        (b"2\r\n\r\n\r\n0\r\n\r\n", Ok((b"\r\n", 0))),
        (b"\r\n", Err("malformed")),
        (b"x\r\n", Err("malformed")),
        (b";ext\r\n", Err("malformed")),
        (b" 5\r\nhello\r\n", Err("malformed")),
        (b"-5\r\n", Err("malformed")),
        (b"5x\r\n", Err("malformed")),
        (b"5 5\r\n", Err("malformed")),
        (b"5\rX", Err("malformed")),
        (b"5\r\nhelloX", Err("malformed")),
        (b"5\r\nhello\rX", Err("malformed")),
        (b"10000000000000000\r\n", Err("malformed")),
    ];
    for (input, want) in cases {
        let whole = decode_split(input, &[]);
        let bytewise = decode_split(input, &(1..input.len()).collect::<Vec<_>>());
        for got in [whole, bytewise] {
            match (&got, &want) {
                (Ok((out, used, done)), Ok((data, extra))) => {
                    assert!(done, "{input:?}");
                    assert_eq!(out, data, "{input:?}");
                    assert_eq!(*used, input.len() - extra, "{input:?}");
                }
                (Err(e), Err(k)) => assert_eq!(kind(e), *k, "{input:?}"),
                _ => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}

#[test]
fn chunked_every_split_point() {
    let input: &[u8] =
        b"4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: x\r\n\r\n";
    let want: &[u8] = b"Wikipedia in\r\n\r\nchunks.";
    for i in 0..=input.len() {
        for j in i..=input.len() {
            let (out, used, done) = decode_split(input, &[i, j]).unwrap();
            assert!(done);
            assert_eq!(out, want, "split at {i},{j}");
            assert_eq!(used, input.len());
        }
    }
}

#[test]
fn chunked_incomplete_is_not_done() {
    let input: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
    for n in 0..input.len() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&input[..n], &mut out).unwrap(), n);
        assert!(!d.is_done(), "prefix {n}");
    }
}

#[test]
fn chunked_size_line_limit() {
    for (ext_len, ok) in [
        (MAX_CHUNK_SIZE_LINE - 4, true),
        (MAX_CHUNK_SIZE_LINE - 3, false),
    ] {
        // "5;" + extension + "\r\n" is ext_len + 4 bytes.
        let mut input = b"5;".to_vec();
        input.resize(2 + ext_len, b'x');
        input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        let got = decode_split(&input, &[]);
        if ok {
            assert_eq!(got.unwrap().0, b"hello");
        } else {
            let e = got.unwrap_err();
            assert_eq!(
                kind(&e),
                format!("large:chunk size line:{MAX_CHUNK_SIZE_LINE}")
            );
        }
    }
    // Endless leading zeros hit the same cap.
    let zeros = vec![b'0'; 5000];
    let e = decode_split(&zeros, &[]).unwrap_err();
    assert_eq!(
        kind(&e),
        format!("large:chunk size line:{MAX_CHUNK_SIZE_LINE}")
    );
}

#[test]
fn chunked_trailer_limit() {
    let mut input = b"0\r\n".to_vec();
    while input.len() < MAX_HEAD_BYTES + 10 {
        input.extend_from_slice(b"X: yyyyyyyyyyyyyyyyyyyyyyyyyy\r\n");
    }
    let e = decode_split(&input, &[]).unwrap_err();
    assert_eq!(kind(&e), format!("large:chunked trailer:{MAX_HEAD_BYTES}"));
}
