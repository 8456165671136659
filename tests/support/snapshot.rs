//! The loader's output directory read back as a reader sees it (through the top-level
//! names), its version directories, and the layout invariants every snapshot keeps, with
//! the waits that end in them. Only reads: nothing here writes into an output directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::process::{scaled, wait_until, Loader};

/// Patience for what [`converges`] waits for (times [`scaled`]'s factor).
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

/// The version directories (`..<timestamp>`) in `dir`, sorted, but the next one the
/// writer made ready ([`next_version`]); none when `dir` is missing.
pub fn versions(dir: &Path) -> Vec<String> {
    let next = next_version(dir);
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("..2") && Some(n) != next.as_ref())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The version directory the writer made ready for its next write: what `..data_tmp`
/// names, when `..data` does not.
pub fn next_version(dir: &Path) -> Option<String> {
    let next = std::fs::read_link(dir.join("..data_tmp"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())?;
    (Some(&next) != data_target(dir).as_ref()).then_some(next)
}

/// Checks the layout invariants: `..data -> ..<version>` (relative, a directory), every
/// visible name a relative link `..data/NAME` that resolves, and every file of the version
/// visible but its `..objects` record.
pub fn assert_consistent(dir: &Path) {
    if let Err(e) = layout(dir, false) {
        panic!("{}: {e}", dir.display())
    }
}

/// The state a kill -9 may leave: as [`assert_consistent`], except that a visible link may
/// dangle (a new key linked just before a switch that never happened, or a removed key
/// whose link was not yet unlinked); the next start sweeps those.
pub fn assert_consistent_after_crash(dir: &Path) {
    if let Err(e) = layout(dir, true) {
        panic!("{}: {e}", dir.display())
    }
}

/// The layout invariants, or the first one broken.
fn layout(dir: &Path, allow_dangling: bool) -> Result<(), String> {
    let target = data_target(dir).ok_or("..data does not exist")?;
    if !target.starts_with("..") || target.contains('/') {
        return Err(format!("..data -> {target}"));
    }
    if !dir.join(&target).is_dir() {
        return Err(format!("..data target {target} is not a directory"));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("..") {
            continue;
        }
        let link = std::fs::read_link(e.path()).map_err(|_| format!("{name} is not a link"))?;
        if link != Path::new("..data").join(&name) {
            return Err(format!("{name} -> {}", link.display()));
        }
        if !allow_dangling && !dir.join(&target).join(&name).is_file() {
            return Err(format!("{name} is not in the version {target}"));
        }
    }
    let entries = std::fs::read_dir(dir.join(&target)).map_err(|e| e.to_string())?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // `..objects`: the loader's record of which object each key came from, no key
        if name != "..objects" && std::fs::symlink_metadata(dir.join(&name)).is_err() {
            return Err(format!("{name} of the version {target} is not visible"));
        }
    }
    Ok(())
}

/// Asserts that `out` holds exactly `want` within `within` (the loader's log in the message).
pub fn assert_files_within(within: Duration, l: &Loader, out: &Path, want: &[(&str, &str)]) {
    assert!(
        wait_until(within, || read_text(out) == text(want)),
        "{}: want {want:?} within {:?}, have {:?}\n{}",
        out.display(),
        scaled(within),
        read_text(out),
        l.log()
    );
}

/// Waits until `out` holds exactly `want`, then checks the layout.
///
/// A write switches `..data` first and unlinks the names it removed after, so a reader may
/// see the new files while a removed name still dangles: the wait is for both.
pub fn converges(l: &Loader, out: &Path, want: &[(&str, &str)]) {
    converges_within(PATIENCE, l, out, want)
}

/// [`converges`] with its own patience.
pub fn converges_within(within: Duration, l: &Loader, out: &Path, want: &[(&str, &str)]) {
    assert_files_within(within, l, out, want);
    let mut last = Ok(());
    let settled = wait_until(within, || {
        last = layout(out, false);
        last.is_ok() && read_text(out) == text(want)
    });
    assert!(
        settled,
        "{}: files {:?}, layout {last:?}\n{}",
        out.display(),
        read_text(out),
        l.log()
    );
}
