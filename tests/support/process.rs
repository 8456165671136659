//! The loader binary as a child process: which binary, the command that starts it with a
//! clean environment, and [`Loader`], a running loader whose stderr and stdout go to files;
//! plus [`wait_until`], the polling every harness waits with. A loader started here dies
//! with the thread that started it (PR_SET_PDEATHSIG: a test that panics or a benchmark
//! that exits leaves none behind) and on drop. Nothing here reads the loader's output
//! directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::tempdir::TempDir;

/// The one libc call the harness needs that std does not offer.
mod sys {
    use std::os::raw::c_int;

    extern "C" {
        pub fn prctl(option: c_int, arg2: usize, arg3: usize, arg4: usize, arg5: usize) -> c_int;
    }

    pub const PR_SET_PDEATHSIG: c_int = 1;
    pub const SIGKILL: usize = 9;
}

/// The loader binary under test: in an integration test, the one Cargo built for it; in a
/// benchmark program, `$LOADER_BIN`, else the release build.
pub fn loader_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_envoy-xds-configmap-loader") {
        return PathBuf::from(bin);
    }
    match std::env::var_os("LOADER_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/envoy-xds-configmap-loader"
        )),
    }
}

/// The program, with its arguments, that runs the loader binary: `$LOADER_RUNNER` split at
/// spaces, for a binary of another architecture (scripts/test-arm64.sh sets it to
/// `qemu-aarch64-static`, which cargo also runs the test binaries with); empty when unset,
/// and the binary is started itself.
pub fn loader_runner() -> Vec<OsString> {
    std::env::var("LOADER_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(OsString::from)
        .collect()
}

/// The loader with `args`, stdin from /dev/null, and none of the environment it would read
/// a default from (in-cluster API server address, namespace); stdout and stderr are the
/// caller's to set.
pub fn loader_command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    command_for(&loader_bin(), args)
}

/// [`loader_command`] for another build of the loader, `bin` (through [`loader_runner`]).
pub fn command_for<S: AsRef<OsStr>>(bin: &Path, args: impl IntoIterator<Item = S>) -> Command {
    let runner = loader_runner();
    let mut cmd = match runner.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("NS")
        .env_remove("POD_NAMESPACE")
        .stdin(Stdio::null());
    cmd
}

/// The loader as a child process; killed on drop.
pub struct Loader {
    pub child: Child,
    /// Its stderr: the log.
    pub log: PathBuf,
    pub stdout: PathBuf,
}

impl Loader {
    /// Starts the binary with `args`; stderr and stdout go to numbered files in `tmp`.
    pub fn start<S: AsRef<OsStr>>(tmp: &TempDir, args: impl IntoIterator<Item = S>) -> Loader {
        Self::start_env(tmp, args, &[])
    }

    /// [`Loader::start`] with `env` set for the child.
    pub fn start_env<S: AsRef<OsStr>>(
        tmp: &TempDir,
        args: impl IntoIterator<Item = S>,
        env: &[(&str, &str)],
    ) -> Loader {
        Self::start_bin(&loader_bin(), tmp, args, env)
    }

    /// [`Loader::start_env`] for another build of the loader, `bin`.
    pub fn start_bin<S: AsRef<OsStr>>(
        bin: &Path,
        tmp: &TempDir,
        args: impl IntoIterator<Item = S>,
        env: &[(&str, &str)],
    ) -> Loader {
        use std::os::unix::process::CommandExt;
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let log = tmp.join(&format!("loader-{n}.log"));
        let stdout = tmp.join(&format!("loader-{n}.out"));
        let create =
            |p: &PathBuf| File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut cmd = command_for(bin, args);
        cmd.stdout(create(&stdout)).stderr(create(&log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        // In the child between fork and exec: only the async-signal-safe prctl call.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                sys::prctl(sys::PR_SET_PDEATHSIG, sys::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start the loader binary {}: {e}", bin.display()));
        Loader { child, log, stdout }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// `kill -SIG PID`.
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

    /// Waits until the log contains `needle` ([`wait_until`]: `timeout` is scaled).
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

/// How many times slower than natively the loader and the tests may run: `$TEST_TIME_SCALE`
/// (a factor of at least 1; scripts/test-arm64.sh sets it for the arm64 build under
/// qemu-user), else 1. A test scales with [`scaled`] the bounds that say how fast something
/// happens, never those that say how long something must wait (a `Retry-After`, a timeout
/// the loader must honour). Every deadline of [`wait_until`] is scaled, and so is what
/// waits through it (`wait_log`, `converges`, `readyz_within`, ...).
pub fn time_scale() -> f64 {
    match std::env::var("TEST_TIME_SCALE") {
        Err(_) => 1.0,
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(f) if f >= 1.0 && f.is_finite() => f,
            _ => panic!("TEST_TIME_SCALE={v:?}: want a number of at least 1"),
        },
    }
}

/// `d` times [`time_scale`]: an upper bound on how long the loader may take.
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(time_scale())
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes, [`scaled`]: `timeout` is an
/// upper bound on how long something takes natively (in a benchmark: for set-up, never for
/// a measurement).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + scaled(timeout);
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
