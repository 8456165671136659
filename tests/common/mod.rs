//! Shared helpers of the integration tests: temporary directories, the loader binary as a
//! child process (its stderr captured to a file), reading a snapshot back, and waiting.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_envoy-xds-configmap-loader");
pub const TOKEN: &str = "test-token";
/// Patience for what the helpers below wait for.
const PATIENCE: Duration = Duration::from_secs(15);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "exl-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The loader as a child process; killed on drop.
pub struct Loader {
    pub child: Child,
    pub log: PathBuf,
    pub stdout: PathBuf,
}

impl Loader {
    /// Starts the binary with `args`; stderr and stdout go to files in `tmp`.
    pub fn start(tmp: &TempDir, args: &[&str]) -> Loader {
        Self::start_env(tmp, args, &[])
    }

    pub fn start_env(tmp: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Loader {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let log = tmp.join(&format!("loader-{n}.log"));
        let stdout = tmp.join(&format!("loader-{n}.out"));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("NS")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the loader binary");
        Loader { child, log, stdout }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits for exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The files a reader sees through the top-level names (following the links).
pub fn read_snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("..") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(e.path()) {
            out.insert(name, bytes);
        }
    }
    out
}

/// Same, as text, for readable assertions.
pub fn read_text(dir: &Path) -> BTreeMap<String, String> {
    read_snapshot(dir)
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

pub fn text(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Where `..data` points, if anywhere.
pub fn data_target(dir: &Path) -> Option<String> {
    std::fs::read_link(dir.join("..data"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Checks the layout invariants: `..data -> ..<version>` (relative, a directory), every
/// visible name a relative link `..data/NAME` that resolves, and every file of the version
/// visible but its `..objects` record.
pub fn assert_consistent(dir: &Path) {
    check_layout(dir, false)
}

/// The state a kill -9 may leave: as [`assert_consistent`], except that a visible link may
/// dangle (a new key linked just before a switch that never happened, or a removed key
/// whose link was not yet unlinked); the next start sweeps those.
pub fn assert_consistent_after_crash(dir: &Path) {
    check_layout(dir, true)
}

fn check_layout(dir: &Path, allow_dangling: bool) {
    let target = data_target(dir).expect("..data exists");
    assert!(
        target.starts_with("..") && !target.contains('/'),
        "..data -> {target}"
    );
    assert!(
        dir.join(&target).is_dir(),
        "..data target {target} is a directory"
    );
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("..") {
            continue;
        }
        let link = std::fs::read_link(e.path()).unwrap_or_else(|_| panic!("{name} is a link"));
        assert_eq!(link, Path::new("..data").join(&name), "{name}");
        let present = dir.join(&target).join(&name).is_file();
        assert!(present || allow_dangling, "{name} is in the version");
    }
    for e in std::fs::read_dir(dir.join(&target)).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "..objects" {
            // the loader's record of which object each key came from: no key
            continue;
        }
        assert!(
            std::fs::symlink_metadata(dir.join(&name)).is_ok(),
            "{name} of the version is visible"
        );
    }
}

/// The args that point the loader at an emulator.
pub fn api_args(url: &str, token_file: &Path) -> Vec<String> {
    let mut v = vec![
        "-apiserver".to_string(),
        url.to_string(),
        "-token-file".into(),
        token_file.display().to_string(),
    ];
    if url.starts_with("https://") {
        v.push("-ca-file".into());
        v.push(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem").into());
    }
    v
}

pub fn write_token(tmp: &TempDir, token: &str) -> PathBuf {
    let p = tmp.join("token");
    std::fs::write(&p, format!("{token}\n")).unwrap();
    p
}

/// Starts the loader with owned args.
pub fn start(tmp: &TempDir, args: &[String]) -> Loader {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Loader::start(tmp, &args)
}

/// Waits until `out` holds exactly `want`, then checks the layout.
pub fn converges(l: &Loader, out: &Path, want: &[(&str, &str)]) {
    assert!(
        wait_until(PATIENCE, || read_text(out) == text(want)),
        "{}: want {want:?}, have {:?}\n{}",
        out.display(),
        read_text(out),
        l.log()
    );
    assert_consistent(out);
}

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

/// GET on the loader's -listen address; (status, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = exchange(addr, req.as_bytes()).expect("an answer from -listen");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
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
