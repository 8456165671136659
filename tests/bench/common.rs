//! Shared parts of the benchmarks (tests/bench/*.rs, run by scripts/bench.sh): the loader
//! run to its exit (timed, or traced for its peak RSS), inotify and wait4 through a few libc
//! calls, memory figures from /proc, percentiles, realistic Envoy configuration text, a bare
//! watch client, and the result rows. The harness the integration tests use too (temporary
//! directories, the loader's command line, the loader as a child process, waiting) is
//! tests/support/, re-exported from here.
//!
//! A benchmark prints numbers: result rows (`| section | measure | value | budget | result |`)
//! on stdout, progress on stderr. It never fails on a missed budget (the row says so); it
//! exits non-zero only when the measurement itself could not be made. It never touches
//! anything outside its own temporary directories.
#![allow(dead_code)]

#[path = "../support/mod.rs"]
mod support;
pub use support::*;

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_xds_configmap_loader::config::Trust;
use envoy_xds_configmap_loader::{http, tls};

/// The namespace every benchmark uses.
pub const NS: &str = "bench";
/// The token the emulator accepts by default in the benchmarks (over support's `TOKEN`).
pub const TOKEN: &str = "bench-token";

/// The small FFI surface: inotify (the crate has no dependency for it) and wait4 (peak RSS
/// of a child that has exited, which /proc no longer shows).
mod sys {
    use std::os::raw::{c_char, c_int};

    /// `struct rusage` on 64-bit Linux: two timevals, then 14 longs (ru_maxrss first).
    #[repr(C)]
    pub struct Rusage(pub [i64; 18]);

    extern "C" {
        pub fn inotify_init1(flags: c_int) -> c_int;
        pub fn inotify_add_watch(fd: c_int, path: *const c_char, mask: u32) -> c_int;
        pub fn wait4(pid: c_int, status: *mut c_int, options: c_int, usage: *mut Rusage) -> c_int;
        pub fn ptrace(request: c_int, pid: c_int, addr: usize, data: usize) -> i64;
    }

    pub const PTRACE_TRACEME: c_int = 0;
    pub const PTRACE_CONT: c_int = 7;
    pub const PTRACE_SETOPTIONS: c_int = 0x4200;
    pub const PTRACE_O_TRACEEXIT: usize = 0x40;
    pub const PTRACE_EVENT_EXIT: c_int = 6;
    pub const WALL: c_int = 0x4000_0000;
}

pub const IN_MOVED_TO: u32 = 0x0000_0080;
pub const IN_CREATE: u32 = 0x0000_0100;
const IN_CLOEXEC: i32 = 0o2_000_000;

/// Whether this is a quick smoke run (`BENCH_QUICK=1`): small counts, short idles.
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Prints one result row on stdout.
pub fn row(section: &str, measure: &str, value: &str, budget: &str, result: &str) {
    println!("| {section} | {measure} | {value} | {budget} | {result} |");
}

/// "met" / "**MISSED**" for a budget check.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**MISSED**"
    }
}

/// Progress on stderr.
pub fn say(msg: &str) {
    eprintln!("bench: {msg}");
}

/// Exits with a message when a measurement cannot be made.
pub fn fail(msg: &str) -> ! {
    eprintln!("bench: error: {msg}");
    std::process::exit(1);
}

/// `d` in milliseconds, 3 decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// A size in KiB as MiB with 2 decimals.
pub fn mib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

/// Nearest-rank percentile `q` (0..=1) of `samples` (sorted here).
pub fn percentile<T: Ord + Copy>(samples: &mut [T], q: f64) -> T {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        fail("a percentile of no samples");
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    samples[rank - 1]
}

/// The percentiles `qs` of `samples`, each shown by `show`, joined by " / ".
pub fn percentiles<T: Ord + Copy>(
    samples: &mut [T],
    qs: &[f64],
    show: impl Fn(T) -> String,
) -> String {
    let shown: Vec<String> = qs.iter().map(|q| show(percentile(samples, *q))).collect();
    shown.join(" / ")
}

/// The file-system type of `path` (the longest mount point above it in /proc/mounts).
pub fn fs_type(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "?".into(), |(_, kind)| kind)
}

/// The flags that point the loader at the emulator, in the benchmarks' namespace.
pub fn api_args(url: &str, token_file: &Path) -> Args {
    Args::new(url, token_file).namespace(NS)
}

/// Runs the loader to its exit; returns the wall time from just before the spawn to the
/// reaping, and the exit code.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives the exit status
pub fn run_to_exit(args: &Args) -> (Duration, i32) {
    let mut cmd = loader_command(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("start {}: {e}", loader_bin().display())));
    let pid = child.id() as i32;
    let mut status = 0;
    let mut usage = sys::Rusage([0; 18]);
    // The child is reaped here, not by `Child` (dropping a `Child` neither waits nor kills).
    #[allow(unsafe_code)]
    let got = unsafe { sys::wait4(pid, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    if got != pid {
        fail(&format!("wait4: {}", io::Error::last_os_error()));
    }
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    };
    (took, code)
}

/// Runs the loader to its exit under ptrace, stopped once at its exit (the process still
/// whole) to read its VmHWM; returns the exit code and that peak RSS in KiB. (`ru_maxrss`
/// cannot tell: exec records the spawning process's own peak into it.) Slower than
/// [`run_to_exit`], so never timed.
#[allow(clippy::zombie_processes)] // reaped by wait4 in the tracing loop
pub fn peak_rss_to_exit(args: &Args) -> (i32, u64) {
    use std::os::unix::process::CommandExt;
    let mut cmd = loader_command(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // In the child between fork and exec: only the async-signal-safe ptrace call.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if sys::ptrace(sys::PTRACE_TRACEME, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("start {}: {e}", loader_bin().display())));
    let pid = child.id() as i32;
    let mut hwm = 0;
    let mut first = true;
    loop {
        let mut status = 0;
        let mut usage = sys::Rusage([0; 18]);
        #[allow(unsafe_code)]
        let got = unsafe { sys::wait4(pid, &mut status, sys::WALL, &mut usage) };
        if got != pid {
            fail(&format!("wait4: {}", io::Error::last_os_error()));
        }
        if status & 0x7f == 0 {
            return ((status >> 8) & 0xff, hwm);
        }
        if status & 0xff != 0x7f {
            return (128 + (status & 0x7f), hwm);
        }
        // Stopped: at the exec (first), at the exit event, or by a signal to pass on.
        let sig = (status >> 8) & 0xff;
        let event = (status >> 16) & 0xff;
        let mut pass = 0;
        if first {
            first = false;
            #[allow(unsafe_code)]
            unsafe {
                sys::ptrace(sys::PTRACE_SETOPTIONS, pid, 0, sys::PTRACE_O_TRACEEXIT);
            }
        } else if event == sys::PTRACE_EVENT_EXIT {
            hwm = rss_kib(pid as u32).1;
        } else if sig != 5 {
            pass = sig as usize;
        }
        #[allow(unsafe_code)]
        unsafe {
            sys::ptrace(sys::PTRACE_CONT, pid, 0, pass);
        }
    }
}

/// CPU time a running process has used so far, all its threads together (from each
/// thread's schedstat, in nanoseconds; threads that already ended are not counted).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// VmRSS and VmHWM of a running process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One inotify event as the reader thread saw it, stamped when its `read` returned.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// The tag given to [`Inotify::watch`] for the directory.
    pub tag: usize,
    pub mask: u32,
    pub name: String,
}

/// An inotify instance on a set of directories.
pub struct Inotify {
    file: File,
    tags: HashMap<i32, usize>,
}

impl Inotify {
    pub fn new() -> Inotify {
        #[allow(unsafe_code)]
        let fd = unsafe { sys::inotify_init1(IN_CLOEXEC) };
        if fd < 0 {
            fail(&format!("inotify_init1: {}", io::Error::last_os_error()));
        }
        // The descriptor is new and owned by nothing else.
        #[allow(unsafe_code)]
        let file = unsafe { File::from_raw_fd(fd) };
        Inotify {
            file,
            tags: HashMap::new(),
        }
    }

    /// Watches `dir` for `mask`, reporting its events with `tag`.
    pub fn watch(&mut self, dir: &Path, mask: u32, tag: usize) {
        use std::os::fd::AsRawFd;
        let path = CString::new(dir.as_os_str().as_bytes())
            .unwrap_or_else(|_| fail("a path with a NUL byte"));
        #[allow(unsafe_code)]
        let wd = unsafe { sys::inotify_add_watch(self.file.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            fail(&format!(
                "inotify_add_watch {}: {}",
                dir.display(),
                io::Error::last_os_error()
            ));
        }
        self.tags.insert(wd, tag);
    }

    /// Reads events on a thread of its own, each stamped with the time its `read` returned.
    pub fn spawn(self) -> Receiver<Seen> {
        let (tx, rx) = mpsc::channel();
        let Inotify { mut file, tags } = self;
        std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(n) if n > 0 => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        _ => return,
                    };
                    let at = Instant::now();
                    let mut off = 0;
                    while off + 16 <= n {
                        let word = |i: usize| {
                            let b = &buf[off + i..off + i + 4];
                            u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                        };
                        let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
                        let raw = &buf[off + 16..(off + 16 + len).min(n)];
                        let name = String::from_utf8_lossy(raw)
                            .trim_end_matches('\0')
                            .to_string();
                        off += 16 + len;
                        let Some(&tag) = tags.get(&wd) else { continue };
                        if tx
                            .send(Seen {
                                at,
                                tag,
                                mask,
                                name,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            })
            .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
        rx
    }
}

/// Creates `dir` and reports the `IN_MOVED_TO` events in it (tag 0): a key's link renamed
/// into place, the last step of a snapshot switch.
pub fn moves_into(dir: &Path) -> Receiver<Seen> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let mut inotify = Inotify::new();
    inotify.watch(dir, IN_MOVED_TO, 0);
    inotify.spawn()
}

/// The first line of a file (at most 64 bytes), e.g. a content marker.
pub fn first_line(path: &Path) -> String {
    let mut buf = [0u8; 64];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or("").to_string()
}

/// The marker line that starts every generated file: it changes with every update while
/// the size stays the same.
pub fn marker(n: u64) -> String {
    format!("# update {n:012}")
}

/// Realistic Envoy CDS text of exactly `size` bytes (at least 64), starting with
/// `marker(n)`: YAML with quotes, a Lua filter with `<`, `>` and `&`, regexes with
/// backslashes, and a little non-ASCII text, as ConfigMaps feeding Envoy carry.
pub fn envoy_yaml(size: usize, n: u64) -> String {
    let mut out = String::with_capacity(size + 512);
    out.push_str(&marker(n));
    out.push('\n');
    out.push_str("version_info: \"v1\" # café, generated ✓\nresources:\n");
    let mut i = 0u64;
    while out.len() < size {
        out.push_str(&format!(
            "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  \
             name: \"service-{i:05}\"\n  \
             connect_timeout: 0.25s\n  \
             type: STRICT_DNS\n  \
             lb_policy: ROUND_ROBIN\n  \
             metadata: {{filter_metadata: {{envoy.lb: {{canary: \"{}\", path: \"^/api/v[0-9]+/items/\\\\d+$\"}}}}}}\n  \
             # lua: if headers:get(\"x-env\") ~= nil and weight > 10 and a < b then return \"a&b\" end\n  \
             load_assignment:\n    \
             cluster_name: \"service-{i:05}\"\n    \
             endpoints:\n    \
             - lb_endpoints:\n      \
             - endpoint: {{address: {{socket_address: {{address: \"service-{i:05}.default.svc\", port_value: 8080}}}}}}\n",
            i % 2 == 0
        ));
        i += 1;
    }
    // All ASCII from here on, so the cut is on a character boundary.
    while !out.is_char_boundary(size) {
        out.push(' ');
    }
    out.truncate(size);
    if !out.ends_with('\n') {
        out.pop();
        out.push('\n');
    }
    out
}

/// A watch line as the bare client read it: when its read returned, its resourceVersion,
/// and whether it is a MODIFIED event.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub rv: u64,
    pub modified: bool,
    pub len: usize,
}

/// The syscall a line of `strace -f -qq` records: its thread id and the call's name (for
/// `<... NAME resumed>`, NAME).
pub fn strace_call(line: &str) -> Option<(&str, &str)> {
    let (pid, call) = line.split_once(' ')?;
    let call = call.trim_start();
    let name = match call.strip_prefix("<... ") {
        Some(rest) => rest.split(' ').next().unwrap_or(""),
        None => call.split('(').next().unwrap_or(""),
    };
    Some((pid, name))
}

/// The `timeoutSeconds` of bare watch client `tag` ([`bare_watch`]): how a benchmark finds
/// its request among the emulator's records.
pub fn bare_timeout(tag: u32) -> String {
    (3600 + tag).to_string()
}

/// A minimal watch client on the crate's TLS and HTTP framing: it reads the same stream the
/// loader reads (the same object, from `rv`), stamps each event line the moment it has been
/// read whole, and does nothing else with it. Its watch asks for
/// [`bare_timeout`]`(tag)` seconds.
pub fn bare_watch(port: u16, token: &str, name: &str, rv: u64, tag: u32) -> Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    let config = tls::client_config(&Trust::CaFile(ca_file()))
        .unwrap_or_else(|e| fail(&format!("tls config: {e}")));
    let path = format!(
        "/api/v1/namespaces/{NS}/configmaps?fieldSelector=metadata.name%3D{name}&watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={}",
        bare_timeout(tag)
    );
    let auth = format!("Bearer {token}");
    let config: Arc<_> = config;
    std::thread::Builder::new()
        .name("bare-watch".into())
        .spawn(move || {
            let mut stream = tls::connect(
                "127.0.0.1",
                port,
                Some(&config),
                Duration::from_secs(5),
                Duration::from_secs(3600),
            )
            .unwrap_or_else(|e| fail(&format!("bare watch: {e}")));
            let host = format!("127.0.0.1:{port}");
            http::write_request(
                &mut stream,
                &http::Request {
                    method: "GET",
                    host: &host,
                    path_and_query: &path,
                    headers: &[("Authorization", &auth)],
                    body: &[],
                },
            )
            .unwrap_or_else(|e| fail(&format!("bare watch: {e}")));
            let mut resp = http::read_response(stream, false)
                .unwrap_or_else(|e| fail(&format!("bare watch: {e}")));
            if resp.head.status != 200 {
                fail(&format!("bare watch: status {}", resp.head.status));
            }
            while let Ok(Some(line)) = resp.read_line(16 << 20) {
                let at = Instant::now();
                let head = &line[..line.len().min(4096)];
                let modified = head.starts_with(b"{\"type\":\"MODIFIED\"");
                let rv = find_rv(head).unwrap_or(0);
                let len = line.len();
                if tx
                    .send(Line {
                        at,
                        rv,
                        modified,
                        len,
                    })
                    .is_err()
                {
                    return;
                }
            }
        })
        .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
    rx
}

/// The first `"resourceVersion":"N"` in `text`.
fn find_rv(text: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"resourceVersion\":\"";
    let at = text.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: Vec<u8> = text[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Waits for the inotify event naming `key` in the directory tagged `tag` whose file then
/// starts with `marker`; returns when that event was read. Other events are dropped.
pub fn wait_file(
    events: &Receiver<Seen>,
    dir: &Path,
    tag: usize,
    key: &str,
    marker: &str,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = events.recv_timeout(left).ok()?;
        if seen.tag == tag && seen.name == key && first_line(&dir.join(key)) == marker {
            return Some(seen.at);
        }
    }
}
