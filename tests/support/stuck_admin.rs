//! A stand-in for Envoy's admin that answers every request with the same `/stats`
//! counters, so that no phase of an acknowledged apply is ever taken: what the loader does
//! when Envoy answers but does not move (each phase waits `-envoy-timeout`, then goes on).

use std::io::{Read, Write};
use std::net::TcpListener;

/// Counters of a CDS and an RDS subscription that have taken one file each.
const BODY: &str = "cluster_manager.cds.update_attempt: 1\ncluster_manager.cds.update_success: 1\nhttp.ingress.rds.canary.update_attempt: 1\nhttp.ingress.rds.canary.update_success: 1\ncluster_manager.warming_clusters: 0\nlistener_manager.total_listeners_warming: 0\n";

/// Serves on a loopback port in a background thread for the rest of the process; returns
/// `127.0.0.1:PORT`.
pub fn stuck_admin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
                BODY.len()
            );
        }
    });
    addr
}
