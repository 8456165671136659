//! The loader's output directory read back as a reader sees it (through the top-level
//! names), its version directories, and the layout invariants every snapshot keeps, with
//! the waits that end in them. Only reads: nothing here writes into an output directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::process::{wait_until, Loader};

/// Patience for what [`converges`] waits for.
const PATIENCE: Duration = Duration::from_secs(15);

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

/// The version directories (`..<timestamp>`) in `dir`, sorted; none when it is missing.
pub fn versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("..2"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
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

/// Asserts that `out` holds exactly `want` within `within` (the loader's log in the message).
pub fn assert_files_within(within: Duration, l: &Loader, out: &Path, want: &[(&str, &str)]) {
    assert!(
        wait_until(within, || read_text(out) == text(want)),
        "{}: want {want:?} within {within:?}, have {:?}\n{}",
        out.display(),
        read_text(out),
        l.log()
    );
}

/// Waits until `out` holds exactly `want`, then checks the layout.
pub fn converges(l: &Loader, out: &Path, want: &[(&str, &str)]) {
    assert_files_within(PATIENCE, l, out, want);
    assert_consistent(out);
}
