//! Requests to the loader's health server (`-listen`): one request per connection, the
//! answer read whole, and the few readings the tests take from it (status, body, a metric,
//! the address from the log). Never keeps a connection; only `readyz_within` asks again,
//! on a new connection each time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::process::{scaled, wait_until, Loader};

/// Patience for the loader to announce its health server (times [`scaled`]'s factor).
const PATIENCE: Duration = Duration::from_secs(15);

/// One request on its own connection to the loader's -listen address: the whole answer, or
/// the error that ended the read (a refused connection is closed with no answer at all).
pub fn exchange(addr: &str, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    // A connection the server drops at once may refuse the write; the read says what came.
    let _ = s.write_all(request);
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    Ok(String::from_utf8_lossy(&resp).into_owned())
}

/// The status line of an answer.
pub fn status_line(resp: &str) -> &str {
    resp.split("\r\n").next().unwrap_or("")
}

/// The status code of an answer (0 when there is none).
pub fn status_code(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// GET on the loader's -listen address; (status, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = exchange(addr, req.as_bytes()).expect("an answer from -listen");
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status_code(&resp), body.to_string())
}

/// GET /readyz until it answers 200 or `within` passes; the last answer, (status, body).
/// The loader is ready once the write that made its files visible has ended (the old
/// version removed, the next one made ready): moments after the files appear.
pub fn readyz_within(addr: &str, within: Duration) -> (u16, String) {
    let mut last = (0, String::new());
    wait_until(within, || {
        last = get(addr, "/readyz");
        last.0 == 200
    });
    last
}

/// The address the loader serves on, from its log.
pub fn listen_addr(l: &Loader) -> String {
    assert!(l.wait_log("serving /readyz", PATIENCE), "{}", l.log());
    let log = l.log();
    let line = log.lines().find(|l| l.contains("serving /readyz")).unwrap();
    line.split("addr=").nth(1).unwrap().trim().to_string()
}

/// One value of the loader's /metrics (NaN when absent).
pub fn metric(addr: &str, name: &str) -> f64 {
    let (_, body) = get(addr, "/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}
