//! Temporary directories, removed on drop, and the token files the loader reads. Nothing
//! here outlives the value that made it, and nothing is written outside such a directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The bearer token the tests' emulators accept by default.
pub const TOKEN: &str = "test-token";

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary directory (`TMPDIR`).
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A fresh directory under `parent`, named after `tag`, this process and a counter.
    pub fn new_in(parent: &Path, tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = parent.join(format!(
            "exl-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
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

/// Writes `token` and a newline to the file `name` in `dir`; returns its path.
pub fn token_file(dir: &TempDir, name: &str, token: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{token}\n")).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

/// [`token_file`] named `token`.
pub fn write_token(dir: &TempDir, token: &str) -> PathBuf {
    token_file(dir, "token", token)
}

/// A test's working directory: a [`TempDir`] tagged `tag`, its token file holding [`TOKEN`],
/// and the path of the output directory `out` in it (not created: the loader makes it).
pub fn workdir(tag: &str) -> (TempDir, PathBuf, PathBuf) {
    let tmp = TempDir::new(tag);
    let token = write_token(&tmp, TOKEN);
    let out = tmp.join("out");
    (tmp, token, out)
}
