//! Command-line flags of the standalone emulator (tests/emulator/standalone.rs), parsed from a
//! list of strings so tests need no process.
//!
//! It only turns flags into `Options`; it never starts anything.

use std::time::Duration;

use super::{Chunking, Options};

pub(crate) const HELP: &str = "\
kube-emulator: a Kubernetes API server emulator (ConfigMaps and Secrets) for tests and demos

USAGE:
    kube-emulator [FLAGS]

FLAGS:
    --listen ADDR              address to listen on (default 127.0.0.1:6443; port 0 picks one)
    --plain                    serve plain HTTP instead of HTTPS with tests/tls/server.pem
    --token TOKEN              accepted bearer token, repeatable (default test-token)
    --bookmark-interval SECS   seconds between periodic watch bookmarks (default: none; every
                               watch gets them from 2 s before its timeout, as v1.20 does)
    --history N                events kept for resuming watches (default 1000)
    --chunking MODE            watch chunk layout: one, split, coalesce, mixed (default one)
    --quiet                    do not log requests
    -h, --help                 print this help

The CA of the HTTPS certificate is tests/tls/ca.pem (names 127.0.0.1, ::1, localhost,
kubernetes). Writes take JSON bodies (Content-Type: application/json), as kubectl sends them.
";

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    Help,
    Run(Options),
}

pub(crate) fn parse_args(args: Vec<String>) -> Result<Command, String> {
    let mut opts = Options {
        addr: String::from("127.0.0.1:6443"),
        log_requests: true,
        tokens: Vec::new(),
        ..Options::default()
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("flag {name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => opts.addr = value("--listen")?,
            "--plain" => opts.tls = false,
            "--quiet" => opts.log_requests = false,
            "--token" => {
                let t = value("--token")?;
                if t.is_empty() {
                    return Err(String::from("flag --token: empty token"));
                }
                opts.tokens.push(t);
            }
            "--bookmark-interval" => {
                let v = value("--bookmark-interval")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| {
                        format!("flag --bookmark-interval: {v:?} is not a number of seconds in (0, 86400]")
                    })?;
                opts.bookmark_interval = Duration::from_secs_f64(secs);
            }
            "--history" => {
                let v = value("--history")?;
                opts.history_limit = v
                    .parse()
                    .ok()
                    .filter(|n: &usize| (1..=10_000_000).contains(n))
                    .ok_or_else(|| {
                        format!("flag --history: {v:?} is not a count in [1, 10000000]")
                    })?;
            }
            "--chunking" => {
                let v = value("--chunking")?;
                opts.chunking = match v.as_str() {
                    "one" => Chunking::OnePerEvent,
                    "split" => Chunking::Split,
                    "coalesce" => Chunking::Coalesce,
                    "mixed" => Chunking::Mixed,
                    _ => {
                        return Err(format!(
                            "flag --chunking: {v:?} is not one of one, split, coalesce, mixed"
                        ))
                    }
                };
            }
            other => return Err(format!("unrecognized flag {other} (see --help)")),
        }
    }
    if opts.tokens.is_empty() {
        opts.tokens.push(String::from("test-token"));
    }
    Ok(Command::Run(opts))
}
