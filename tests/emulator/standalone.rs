//! The Kubernetes API emulator as a standalone process, for scripts (demo, benchmarks):
//! `cargo run --example kube-emulator -- [flags]`. It prints one line
//! `kube-emulator listening on URL` once it accepts connections, logs one line per request to
//! stderr, and runs until it is killed.
//!
//! It only parses flags and starts the server the tests use in-process; it never writes
//! files.
#![forbid(unsafe_code)]

#[path = "mod.rs"]
mod emulator;

use std::io::Write;

use emulator::cli::{parse_args, Command, HELP};
use emulator::Emulator;

fn main() {
    let opts = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Command::Help) => {
            print!("{HELP}");
            return;
        }
        Ok(Command::Run(o)) => o,
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            std::process::exit(2);
        }
    };
    let emu = match Emulator::try_start(opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "kube-emulator listening on {}", emu.url());
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}
