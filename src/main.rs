//! The binary: parse flags, announce the run, start the sync engine, and turn SIGTERM or
//! SIGINT into a prompt exit 0 that never cuts a snapshot write in half.
//!
//! Exit codes: 0 success (or stopped by a signal), 1 runtime failure, 2 usage error.

use envoy_xds_configmap_loader::cli::{self, Parsed};
use envoy_xds_configmap_loader::config::{Config, Mode, Trust};
use envoy_xds_configmap_loader::health::METRICS;
use envoy_xds_configmap_loader::{health, heap, log, signal, sync};
use std::path::Path;
use std::sync::mpsc;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

enum Exit {
    Done(i32),
    Signal(i32),
}

fn main() {
    let args = std::env::args_os().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    let cfg = match cli::parse(args, &env, Path::new(cli::SERVICE_ACCOUNT_DIR)) {
        Ok(Parsed::Run(cfg)) => cfg,
        Ok(Parsed::Help) => {
            print!("{}", cli::HELP);
            return;
        }
        Ok(Parsed::Version) => {
            println!("envoy-xds-configmap-loader {VERSION}");
            return;
        }
        Err(e) => {
            eprintln!("envoy-xds-configmap-loader: {e}\nRun with -h for the flags.");
            std::process::exit(2);
        }
    };

    let (tx, rx) = mpsc::channel();
    match signal::install() {
        Ok(mut signals) => {
            let tx = tx.clone();
            let _ = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || loop {
                    let _ = tx.send(Exit::Signal(signals.wait()));
                });
        }
        Err(e) => log::warn("cannot install signal handlers", &[("err", &e)]),
    }

    announce(&cfg);
    let names: Vec<String> = cfg.objects.iter().map(|o| o.to_string()).collect();
    let sources: Vec<String> = cfg.selections.iter().map(|s| s.to_string()).collect();
    METRICS.init(&names, &sources, sync::stall_bound(&cfg));
    if let Some(addr) = &cfg.listen {
        match health::serve(addr) {
            Ok(local) => log::info("serving /readyz /healthz /metrics", &[("addr", &local)]),
            Err(e) => {
                log::error("cannot serve health and metrics", &[("err", &e)]);
                std::process::exit(1);
            }
        }
    }
    let worker = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            let code = sync::run(&cfg);
            let _ = tx.send(Exit::Done(code));
        });
    if let Err(e) = worker {
        log::error("cannot start", &[("err", &e)]);
        std::process::exit(1);
    }
    match rx.recv() {
        Ok(Exit::Done(code)) => std::process::exit(code),
        Ok(Exit::Signal(sig)) => {
            // Wait for a write in progress; then nothing is half done.
            let _guard = sync::write_lock().lock();
            log::info("stopping", &[("signal", &signal::name(sig))]);
            std::process::exit(0);
        }
        Err(_) => std::process::exit(1),
    }
}

fn announce(cfg: &Config) {
    let mode = match cfg.mode {
        Mode::OneTime => "onetime",
        Mode::Watch => "watch",
        Mode::Poll => "poll",
    };
    let objects = cfg
        .objects
        .iter()
        .map(|o| format!("{}/{}/{}", o.kind.flag(), o.namespace, o.name))
        .collect::<Vec<_>>()
        .join(",");
    let selections = cfg
        .selections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let trust = match &cfg.trust {
        Trust::CaFile(p) => format!("ca-file:{}", p.display()),
        Trust::WebPkiRoots => "webpki-roots".into(),
        Trust::Insecure => "insecure".into(),
    };
    let trust = if cfg.apiserver.https {
        trust
    } else {
        "none (http)".into()
    };
    log::info(
        "starting",
        &[
            ("version", &VERSION),
            ("mode", &mode),
            ("apiserver", &cfg.apiserver),
            ("objects", &objects),
            ("selections", &selections),
            ("output_dir", &cfg.output_dir.display()),
            ("trust", &trust),
            ("sync_interval", &cli::format_go_duration(cfg.sync_interval)),
            ("dry_run", &cfg.dry_run),
        ],
    );
    if cfg.trust == Trust::Insecure && cfg.apiserver.https {
        log::warn(
            "TLS VERIFICATION IS OFF (-insecure): any server can pose as the API server and receive the token",
            &[],
        );
    }
}
