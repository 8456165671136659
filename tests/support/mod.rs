//! The harness shared by the integration tests (`mod support;`) and the benchmark programs
//! (through tests/bench/common.rs): temporary directories and token files, the loader's
//! command line, the loader binary as a child process, waiting, reading a snapshot back and
//! checking its layout, requests to the loader's health server, and a stand-in for an Envoy
//! admin that never moves.
//!
//! It never starts the Kubernetes API emulator (tests/emulator/, which every program
//! includes on its own), never measures (tests/bench/common.rs does), and asserts nothing a
//! test does not ask for: the helpers that assert say so in their names (`assert_*`,
//! `converges`), the others return what they saw.
#![allow(dead_code, unused_imports)]

pub mod args;
pub mod kube;
pub mod probe;
pub mod process;
pub mod snapshot;
pub mod stuck_admin;
pub mod tempdir;

pub use args::*;
pub use probe::*;
pub use process::*;
pub use snapshot::*;
pub use stuck_admin::*;
pub use tempdir::*;
