//! envoy-xds-configmap-loader: Kubernetes ConfigMaps (and Secrets) into a directory of files
//! that switches as a whole, for Envoy's file-based xDS and any other file watcher.
//!
//! The library holds every part; `main.rs` only wires them. `config` is the plain data they
//! share. Cores are pure (`http` framing, `json`, `base64`, `kube::decode`, the `snapshot`
//! planner, `cli` parsing, `xds` sniffing, the `sync` reflector and state); thin layers do
//! the I/O (`tls` sockets, `kube` requests, `snapshot` writing, `sync` loops, `health`,
//! `signal`, `envoy`'s admin reading, whose verdict is pure too). `heap` is the allocator
//! `main.rs` installs.
//! See README.md, section "Architecture", for the codemap and the invariants.
#![deny(unsafe_code)]

pub mod backoff;
pub mod base64;
pub mod bytes;
pub mod cli;
pub mod config;
pub mod envoy;
pub mod health;
pub mod heap;
pub mod http;
pub mod json;
pub mod kube;
pub mod log;
pub mod selector;
pub mod signal;
pub mod snapshot;
pub mod sync;
pub mod tls;
pub mod xds;
