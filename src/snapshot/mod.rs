//! Writes a set of files (the keys of ConfigMaps and Secrets) into one directory as a
//! snapshot that every reader sees switch at once, in the kubelet's ConfigMap-volume
//! layout, plus what Envoy's file-based xDS needs on top of it.
//!
//! Layout (every link relative, so the directory can be mounted anywhere):
//!
//! ```text
//! DIR/..data        -> ..2026_05_01_12_00_00.123456789a1b2c3d4    (the one atomic switch)
//! DIR/..2026_05_01_12_00_00.123456789a1b2c3d4/KEY                 (mode 0755 dir, 0644 files)
//! DIR/KEY           -> ..data/KEY                                 (one link per key)
//! ```
//!
//! On top of the kubelet's algorithm: links of new keys exist before the switch (so a config
//! that names a new file never finds it missing); after the switch every key whose bytes
//! changed gets its link replaced by a rename (the `IN_MOVED_TO` that a plain Envoy `path:`
//! subscription waits for), providers before consumers ([`xds::rename_order`]); an unchanged
//! snapshot touches nothing; [`Writer::sweep`] clears what a killed predecessor left.
//!
//! After each write the next version is made ready ([`next`]): a version directory of hard
//! links to the current files (an empty file for the key the write changed),
//! `..data_tmp` already naming it, and a spare link `..link.KEY -> ..data/KEY` per key. The
//! next update then replaces only the changed files inside it, switches with one rename
//! and renames the changed keys' spare links: the key changed last, changed again at
//! 1 KiB, costs `open`, `write`, `close` and two renames between "asked" and "visible", the
//! naive writer's `open`, `write`, `close`, `rename` plus one. The writer
//! knows what it wrote: the directory is read before a write only at start and after a
//! failed write (a new key's name is always looked at: something put there is never
//! replaced).
//!
//! A large snapshot ([`REPLACE_FROM_FILES`] files or more) whose update changes the bytes of
//! one key and nothing else takes the one-file path instead of a new version: the new file
//! is renamed over its old one inside the current version (one rename: atomic for the one
//! file that changes), `..data` is named again (the same version) and the key's link
//! renamed. So an update among 1,000 files costs a few syscalls, not one per file.
//!
//! A process killed at any instant leaves `..data` pointing at a complete version. The files
//! are a cache of the API server, rebuilt after a node restart, so fsync is off by default
//! ([`Writer::set_fsync`]).
//!
//! It never writes into an existing file (every file is new, put in place by a rename or a
//! hard link), never follows a key outside the directory (keys are
//! single names, validated before anything is touched), never removes a name that is not
//! its own (plain files, or links that do not point into `..data/`), and never reads more
//! than [`MAX_FILES`] files or [`MAX_BYTES`] bytes of a snapshot.
//!
//! `plan.rs` decides what a write does (a pure function of what is on disk and what is
//! asked), `fs.rs` does the syscalls and the sweep, `next.rs` makes the next version ready
//! and fills it, and this file runs the numbered steps of [`Writer::write`] in order, with
//! one rollback path before the switch.
#![forbid(unsafe_code)]

mod fs;
mod next;
mod plan;
#[cfg(test)]
mod tests;

use crate::backoff::Rng;
use crate::log;
use fs::{DataLink, Faults};
use plan::{OnDisk, Plan, Wanted};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A snapshot: key (file name) to content.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The link that names the current version directory.
pub const DATA: &str = "..data";
/// The temporary name of the next `..data` link, renamed over it.
pub const DATA_TMP: &str = "..data_tmp";
/// The temporary name of a key link, renamed over `DIR/KEY` (one at a time).
pub const LINK_TMP: &str = "..link_tmp";
/// The temporary name of a file replaced inside the current version directory
/// ([`Writer::write`]'s one-file path): a name no key can take.
pub const REPLACE_TMP: &str = "..replace_tmp";
/// Snapshots of at least this many files take the one-file path when an update changes the
/// bytes of one key and nothing else: a new version costs a hard link per file (with 1,000
/// files, `bench-selection` measured 13.7 ms an update on tmpfs and 28 ms on ext4 before
/// this path), the one-file path a few syscalls whatever the size. Below it, the snapshots
/// of a few named ConfigMaps keep a new version for every update.
pub const REPLACE_FROM_FILES: usize = 64;
/// The prefix of the spare key links made ready after a write, one per key (of at most
/// [`SPARE_KEY_MAX`] bytes) of a snapshot under [`REPLACE_FROM_FILES`] files:
/// `..link.KEY -> ..data/KEY`, renamed over `DIR/KEY` by the next write that changes KEY
/// (one rename where a symlink and a rename were).
pub const SPARE_LINK: &str = "..link.";
/// The longest key with a spare link (a file name is at most 255 bytes).
pub const SPARE_KEY_MAX: usize = 255 - SPARE_LINK.len();
/// An empty file that earlier releases made ready beside the next version, renamed over
/// the first changed file's hard link by the next write; this writer puts its empty file
/// inside the next version instead ([`next`]), and only sweeps this name.
pub const BLANK: &str = "..blank";
/// A file inside each version directory for the caller's own record of the version (which
/// object each key came from): a name no key can take, invisible to readers of `DIR/KEY`.
pub const RECORD: &str = "..objects";
/// The advisory lock that makes one process the directory's writer ([`Writer::lock`]).
pub const LOCK: &str = "..lock";
/// Longest key (the ConfigMap key limit).
pub const MAX_KEY_LEN: usize = 253;
/// Most files in one snapshot (written or read back).
pub const MAX_FILES: usize = 10_000;
/// Most bytes in one snapshot, all files together (written or read back).
pub const MAX_BYTES: u64 = 64 << 20;

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// Kubelet + ConfigMap key rules: non-empty, at most 253 chars, only `[-._a-zA-Z0-9]`, not
/// `.` or `..`, not starting with `..` (reserved for the writer). The error says what is
/// wrong, e.g. `key "../x": must consist of alphanumeric characters, '-', '_' or '.'`.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key \"\": must not be empty".to_string());
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !key.bytes().all(allowed) {
        return Err(format!(
            "key {}: must consist of alphanumeric characters, '-', '_' or '.'",
            show_key(key)
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "key {}: must be no more than {MAX_KEY_LEN} characters, got {}",
            show_key(key),
            key.len()
        ));
    }
    if key == "." || key == ".." {
        return Err(format!("key {}: must not be '.' or '..'", show_key(key)));
    }
    if key.starts_with("..") {
        return Err(format!(
            "key {}: must not start with '..' (reserved for the snapshot writer)",
            show_key(key)
        ));
    }
    Ok(())
}

/// A key for an error message: quoted and escaped, cut after 64 characters.
fn show_key(key: &str) -> String {
    const SHOWN: usize = 64;
    match key.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}...", key.get(..cut).unwrap_or_default()),
        None => format!("{key:?}"),
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every file already had the same bytes and nothing had to go: nothing was touched.
    Unchanged,
    /// A new version was switched in.
    Written {
        /// The new version directory's name (what `..data` points to).
        version: String,
        /// Keys new to the snapshot, and keys whose link was missing and was made again.
        added: Vec<String>,
        /// Keys whose link was renamed after the switch: their bytes changed (or, once after
        /// an interrupted predecessor or a failed rename, every key; see [`Writer::sweep`]).
        changed: Vec<String>,
        /// Keys dropped from the snapshot.
        removed: Vec<String>,
        /// Size of the new snapshot, all files together.
        bytes: u64,
    },
}

/// A failed file-system operation (or, with op `validate`, a rejected snapshot), naming the
/// operation and the path: `write /srv/runtime/current/..2026_.../lds.yaml: No space left on
/// device (os error 28)`.
#[derive(Debug)]
pub struct Error {
    /// The operation: `validate`, `create dir`, `create`, `write`, `chmod`, `fsync`, `symlink`,
    /// `rename`, `remove`, `remove dir`, `read link`, `read dir`, `read`, `stat`.
    pub op: &'static str,
    /// The path operated on (the snapshot directory for `validate`).
    pub path: PathBuf,
    /// The cause; `InvalidInput` for a rejected snapshot, `InvalidData` for a directory
    /// that holds something this writer does not accept.
    pub source: io::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn err(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
    Error {
        op,
        path: path.into(),
        source,
    }
}

/// Writes snapshots into one directory. One `Writer` per directory and one process at a
/// time: it is the directory's only writer.
pub struct Writer {
    dir: PathBuf,
    /// The last version written or read, with its files, so that an unchanged write costs
    /// no read. Trusted only while `..data` still names that version.
    last: Option<Current>,
    fsync: bool,
    /// Rename every key's link on the next write: the previous switch (in this process or a
    /// killed predecessor) may not have delivered its renames.
    resync: bool,
    /// A clean-up failed: sweep before the next write.
    needs_sweep: bool,
    /// `DIR/..lock`, held (an advisory `flock`) for the writer's lifetime.
    lock: Option<File>,
    /// The permission bits of the files written (default 0644).
    file_mode: u32,
    /// The random part of version directory names.
    rng: Rng,
    faults: Faults,
    /// The smallest snapshot that takes the one-file path ([`REPLACE_FROM_FILES`]).
    replace_from: usize,
    /// `last` is what the directory holds: `..data` names it and every key's link is in
    /// place, as this writer's last write left it. Verified by reading the directory when
    /// not (at start, after a failed write); trusted, the write reads nothing.
    trusted: bool,
    /// The next version, made ready after a write ([`next`]).
    next: Option<Next>,
    /// Whether to make the next version ready at all (not for a single write).
    ready_next: bool,
    /// The keys whose spare link [`SPARE_LINK`]`KEY` is in place (a few: snapshots under
    /// [`REPLACE_FROM_FILES`] files).
    spares: Vec<String>,
}

/// A version directory made ready for the next write: a hard link of every file (and the
/// record) of version `of`, and `..data_tmp` naming it, so that an update writes only what
/// changed into it and switches with one rename.
struct Next {
    version: String,
    of: String,
    /// The key whose name in it holds an empty file (the mode asked) instead of a hard
    /// link: the key the last write changed, most likely the next to change.
    placed: Option<String>,
}

/// A version on disk as the writer knows it.
struct Current {
    /// Its directory's name, `..<timestamp>.<hex>`.
    version: String,
    files: Arc<Files>,
    /// The permission bits its files share (`None`: they differ, or there are none).
    file_mode: Option<u32>,
    /// Its [`RECORD`], if it has one.
    record: Option<Vec<u8>>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.dir)
            .field("version", &self.last.as_ref().map(|c| &c.version))
            .field("fsync", &self.fsync)
            .field("resync", &self.resync)
            .finish()
    }
}

impl Writer {
    /// A writer for `dir`; touches nothing until [`sweep`](Writer::sweep) or
    /// [`write`](Writer::write). Fsync is off.
    pub fn new(dir: impl Into<PathBuf>) -> Writer {
        Writer {
            dir: dir.into(),
            last: None,
            fsync: false,
            resync: false,
            needs_sweep: false,
            lock: None,
            file_mode: FILE_MODE,
            rng: Rng::from_entropy(),
            faults: Faults::default(),
            replace_from: REPLACE_FROM_FILES,
            trusted: false,
            next: None,
            ready_next: true,
            spares: Vec::new(),
        }
    }

    /// Makes this process the directory's only writer: creates the directory (0755, with
    /// its parents) when missing and takes an exclusive advisory lock on `DIR/..lock`
    /// (`flock`; the kernel drops it when the process dies, however it dies), writing the
    /// process id into it for the error of a second writer. Call before
    /// [`sweep`](Writer::sweep): two writers on one directory would remove each other's
    /// keys and versions.
    ///
    /// Errors: the directory or the lock file cannot be made, or another process holds the
    /// lock (op `lock`, kind `WouldBlock`, naming its pid).
    pub fn lock(&mut self) -> Result<(), Error> {
        self.lock = Some(fs::lock(&self.dir)?);
        Ok(())
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fsync every written file and the version directory before the switch, and the
    /// snapshot directory after it. Off by default: the files are a cache of the API server,
    /// and a killed process already leaves a complete snapshot without it; only a power loss
    /// needs it.
    pub fn set_fsync(&mut self, on: bool) {
        self.fsync = on;
    }

    /// Whether each write makes the next version ready ([`next`]; on by default). A
    /// process that writes once (`-onetime`) turns it off: what it made ready would only
    /// be swept by the next start.
    pub fn set_ready_next(&mut self, on: bool) {
        self.ready_next = on;
    }

    /// The permission bits of every file of a snapshot (like the kubelet's `defaultMode`;
    /// default 0644), whatever the umask. A snapshot whose files have other bits is written
    /// anew at the next write, with no key renamed.
    pub fn set_file_mode(&mut self, mode: u32) {
        self.file_mode = mode & 0o7777;
    }

    /// Start-up sweep of what a killed predecessor left: a stale `..data_tmp` and
    /// `..link_tmp` (when links), version directories `..<timestamp>.<hex>` that `..data`
    /// does not point to (among them a next version made ready), spare links `..link.KEY`,
    /// a [`BLANK`] file, and key links `NAME -> ..data/NAME` that dangle. Creates the
    /// directory (0755, with its parents) when missing. Never touches other names: plain
    /// files, directories, or links that do not point to `..data/<their own name>`.
    ///
    /// Returns the names removed, sorted. When it removed a version older than the current
    /// one (the predecessor died after its switch, maybe before its renames), the next
    /// [`write`](Writer::write) renames every key's link once, even if no byte changed, so
    /// that watchers of single files see the switch they may have missed. The age comes from
    /// the names' timestamps: a wall clock stepped back can make that renaming missing or
    /// needless, never the files wrong.
    ///
    /// Errors: the directory cannot be created or read, `..data` is not a symlink, or a
    /// leftover cannot be removed.
    pub fn sweep(&mut self) -> Result<Vec<String>, Error> {
        // What this writer made ready goes too (the next write makes it again), unreported.
        let own: Vec<String> = self
            .next
            .iter()
            .flat_map(|n| [n.version.clone(), DATA_TMP.to_string()])
            .chain(self.spares.iter().map(|k| spare_name(k)))
            .collect();
        self.forget_next();
        let (mut removed, after_switch) = fs::sweep(&mut self.faults, &self.dir)?;
        removed.retain(|name| !own.contains(name));
        if after_switch {
            self.resync = true;
        }
        Ok(removed)
    }

    /// The files of the current snapshot, `None` when there is no `..data` yet. Reads
    /// `..data`, then its version directory (regular files with valid key names) unless that
    /// is the version this writer last wrote or read.
    ///
    /// Errors: `..data` is not a symlink, points to something that is not a version
    /// directory name, dangles, or its version holds more than [`MAX_FILES`] files or
    /// [`MAX_BYTES`] bytes.
    pub fn current(&self) -> Result<Option<Files>, Error> {
        Ok(self.current_shared()?.map(Arc::unwrap_or_clone))
    }

    /// [`current`](Writer::current), sharing the files this writer last wrote or read
    /// instead of copying them.
    pub fn current_shared(&self) -> Result<Option<Arc<Files>>, Error> {
        let data = self.dir.join(DATA);
        match fs::read_data_link(&data)? {
            None => Ok(None),
            Some(DataLink::Version(name)) => match &self.last {
                Some(c) if c.version == name => Ok(Some(Arc::clone(&c.files))),
                _ => fs::read_version(&self.dir.join(name)).map(|f| Some(Arc::new(f))),
            },
            Some(DataLink::Other(target)) => Err(err(
                "read link",
                data,
                fs::invalid_data(format!(
                    "points to {target:?}, not a version directory of this writer"
                )),
            )),
        }
    }

    /// Writes `files` as the new snapshot:
    ///
    /// 1. Validate every key ([`validate_key`]) and the size ([`MAX_FILES`], [`MAX_BYTES`]):
    ///    on any error nothing is touched.
    /// 2. `old = readlink(DIR/..data)` (missing on the first write) and its files (cached
    ///    from the last write while `..data` still names it, else read from disk). A
    ///    dangling `..data`, or one pointing elsewhere, counts as no snapshot. A writer
    ///    whose last write succeeded knows all this and reads nothing but the names of new
    ///    keys.
    /// 3. Every file exists in `old` with the same bytes, its link is in place and nothing
    ///    must go: return [`Outcome::Unchanged`] (only reads, no modifying syscall, no
    ///    inotify event). Once after an interrupted switch ([`Writer::sweep`]) or a failed
    ///    rename, every key counts as changed.
    /// 4. Make `DIR/..YYYY_MM_DD_HH_MM_SS.<9-digit nanos><8 hex>` (0755, UTC) and put every
    ///    file in it (0644): a file whose bytes equal the old version's is hard-linked from
    ///    it, else (or if linking fails) written. With the next version ready (made after
    ///    the last write), it is that directory: each changed file's hard link is replaced
    ///    by the new file (the key changed last written into the empty file in its place,
    ///    or that file renamed to the first other one and written into), new files written,
    ///    removed ones unlinked. On any error from here to the switch the
    ///    new version directory and the links made in step 5 are removed and the old
    ///    snapshot stays as it was.
    /// 5. For each new key: `symlink("..data/KEY", DIR/KEY)` (dangling until the switch; a
    ///    name in the way that is not our link is replaced through `..link_tmp` + rename).
    /// 6. `symlink(<version>, DIR/..data_tmp)`, `rename` over `DIR/..data`: the one atomic
    ///    switch (`..data_tmp` is there already for the next version made ready).
    /// 7. For each key whose bytes changed and each new key, in [`xds::rename_order`]:
    ///    the key's spare link `..link.KEY`, or `symlink("..data/KEY", DIR/..link_tmp)`,
    ///    `rename` over `DIR/KEY` (the
    ///    `IN_MOVED_TO` that plain Envoy `path:` subscriptions wait for; a new key needs it
    ///    too, since a subscription may still watch that name from an earlier snapshot).
    /// 8. Unlink the links of removed keys.
    /// 9. Remove the old version directory.
    /// 10. Make the next version ready ([`next`]); a failure there fails nothing.
    ///
    /// With fsync on, files and the version directory are synced before step 6 and the
    /// snapshot directory after steps 6 and 9. The snapshot directory is created when
    /// missing.
    ///
    /// An error after step 6 (the new snapshot is live, as [`current`](Writer::current)
    /// shows) is returned after the remaining steps ran; the next write repeats what was
    /// missed, renaming every key if a rename failed. Reading `old` from disk (once per
    /// process) opens the old version directory, which a watcher of `DIR` sees as
    /// `IN_OPEN`/`IN_ACCESS` on `..<version>`: events Envoy does not listen to.
    pub fn write(&mut self, files: &Files) -> Result<Outcome, Error> {
        self.write_given(Given::Borrowed(files), None)
    }

    /// [`write`](Writer::write), keeping a share of `files` as the cached current snapshot
    /// (a caller that keeps the same files holds them once in memory, not twice), and
    /// `record` as the version's [`RECORD`] file: written inside the version directory (so it switches with the files),
    /// never linked, never a key. A version whose files are the same but whose record
    /// differs is written anew, every file hard-linked, no key renamed.
    pub fn write_recorded(&mut self, files: Arc<Files>, record: &[u8]) -> Result<Outcome, Error> {
        self.write_given(Given::Shared(files), Some(record))
    }

    /// The current version's [`RECORD`]: `None` without a snapshot or without a record.
    pub fn current_record(&self) -> Result<Option<Vec<u8>>, Error> {
        match fs::read_data_link(&self.dir.join(DATA))? {
            Some(DataLink::Version(name)) => match &self.last {
                Some(c) if c.version == name => Ok(c.record.clone()),
                _ => fs::read_record(&self.dir.join(name)),
            },
            Some(DataLink::Other(_)) | None => Ok(None),
        }
    }

    /// [`write_steps`](Writer::write_steps), then: after a write, the next version made
    /// ready ([`prepare`](Writer::prepare)); after an error, nothing trusted any more.
    fn write_given(&mut self, given: Given<'_>, record: Option<&[u8]>) -> Result<Outcome, Error> {
        let result = self.write_steps(given, record);
        match &result {
            Ok(Outcome::Written { changed, added, .. }) => {
                self.trusted = true;
                let hint = changed.first().or(added.first()).cloned();
                self.prepare(hint);
            }
            Ok(Outcome::Unchanged) => self.trusted = true,
            Err(_) => {
                self.trusted = false;
                self.discard_next();
            }
        }
        result
    }

    /// The numbered steps of [`write`](Writer::write), each one call. Before the switch an
    /// error goes through one rollback path ([`abort`](Writer::abort)); after it, every
    /// remaining step runs and the first error is returned. With the next version ready
    /// (and the directory trusted), step 4 writes only the changed files into it and step
    /// 6 is one rename.
    fn write_steps(&mut self, given: Given<'_>, record: Option<&[u8]>) -> Result<Outcome, Error> {
        let files = given.files();
        // 1. Validate everything before touching anything.
        check_files(&self.dir, files)?;
        if self.needs_sweep {
            self.forget_next();
            if fs::sweep(&mut self.faults, &self.dir).is_ok() {
                self.needs_sweep = false;
            }
        }
        // 2. The current version and its files, and which keys' links are in place: known
        // when trusted, else read.
        if !self.trusted {
            self.load_current()?;
        }
        if let Some(key) = self.one_change(files, record) {
            self.discard_next();
            return self.replace_one(given, key);
        }
        // Trusted, the current keys' links are in place; a new key's name is still looked
        // at (something put there is never replaced).
        let linked = match (&self.last, self.trusted) {
            (Some(c), true) => {
                let (kept, new): (Vec<&str>, Vec<&str>) = files
                    .keys()
                    .map(String::as_str)
                    .partition(|k| c.files.contains_key(*k));
                let mut linked = fs::our_links_of(&self.dir, new.into_iter())?;
                linked.extend(kept);
                linked
            }
            _ => fs::our_links(&self.dir, files)?,
        };
        // 3. The plan. Nothing to do: touch nothing.
        let Plan::Write(steps) = self.plan(linked, files, record) else {
            self.resync = false;
            return Ok(Outcome::Unchanged);
        };
        // 4. The new version directory, every file in it: the one made ready, or a new one.
        let fast = self.next_is_ready();
        let (version, vdir, placed) = match fast {
            true => self.take_next(),
            false => {
                self.discard_next();
                let (version, vdir) =
                    fs::make_version_dir(&mut self.faults, &mut self.rng, &self.dir)?;
                (version, vdir, None)
            }
        };
        let mut linked_new = Vec::new();
        let filled = match fast {
            true => self.fill_next(&vdir, &steps.same, files, record, placed),
            false => self.write_version(&vdir, &steps.same, files, record),
        };
        let switched = filled
            // 5. Links of new keys, before the switch.
            .and_then(|()| self.link_new_keys(&steps.link, &mut linked_new))
            // 6. The switch.
            .and_then(|()| match fast {
                true => fs::rename_into(
                    &mut self.faults,
                    &self.dir.join(DATA_TMP),
                    &self.dir.join(DATA),
                ),
                false => self.switch(&version),
            });
        if let Err(e) = switched {
            self.abort(&vdir, &linked_new);
            return Err(e);
        }
        // The new snapshot is live (whatever fails from here): 7. rename changed keys,
        // providers first; 8. unlink removed keys; 9. remove the old version directory.
        let old = self.last.take();
        let after = [
            self.sync_dir(),
            self.rename_changed(&steps.rename),
            self.unlink_removed(&steps.removed),
            self.remove_old_version(old.as_ref()),
            self.sync_dir(),
        ];
        let outcome = steps.into_outcome(version.clone());
        self.last = Some(Current {
            version,
            file_mode: Some(self.file_mode),
            files: given.into_shared(),
            record: record.map(<[u8]>::to_vec),
        });
        match after.into_iter().find_map(Result::err) {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    /// The one-file path applies: a snapshot of at least `replace_from` files, the same keys,
    /// mode and record as the current version, its links in place (no resync or sweep due),
    /// and the bytes of exactly one key changed, whose link is ours. That key.
    fn one_change(&self, files: &Files, record: Option<&[u8]>) -> Option<String> {
        let c = self.last.as_ref()?;
        let same_record = record.is_none_or(|r| c.record.as_deref() == Some(r));
        if files.len() < self.replace_from
            || c.files.len() != files.len()
            || self.resync
            || self.needs_sweep
            || c.file_mode != Some(self.file_mode)
            || !same_record
        {
            return None;
        }
        let mut changed = None;
        for ((old_key, old), (key, new)) in c.files.iter().zip(files) {
            if old_key != key {
                return None;
            }
            if !crate::bytes::same_bytes(old, new) {
                if changed.is_some() {
                    return None;
                }
                changed = Some(key);
            }
        }
        let key = changed?;
        let ours = self.trusted || fs::is_our_link(&self.dir, key).ok()?;
        ours.then(|| key.clone())
    }

    /// The one-file path: one key's new bytes replace its file inside the current version,
    /// by one rename (atomic for the one file that changes: every reader sees the old or
    /// the new snapshot whole); then `..data` is named again (the same version: watchers of
    /// `..data` see their event) and the key's link renamed (its `IN_MOVED_TO`). `..link_tmp`
    /// exists from before the file's rename to the link's, so that a start after a kill in
    /// between renames every key ([`sweep`](Writer::sweep)).
    fn replace_one(&mut self, given: Given<'_>, key: String) -> Result<Outcome, Error> {
        let files = given.files();
        let version = self
            .last
            .as_ref()
            .map(|c| c.version.clone())
            .unwrap_or_default();
        let vdir = self.dir.join(&version);
        let (tmp, link_tmp) = (vdir.join(REPLACE_TMP), self.dir.join(LINK_TMP));
        let bytes: u64 = files.values().map(|b| b.len() as u64).sum();
        let staged = fs::write_file(
            &mut self.faults,
            &tmp,
            &files[&key],
            self.fsync,
            self.file_mode,
        )
        .and_then(|()| fs::make_link_tmp(&mut self.faults, &link_target(&key), &link_tmp))
        .and_then(|()| fs::rename_into(&mut self.faults, &tmp, &vdir.join(&key)));
        if let Err(e) = staged {
            let clean = fs::remove_file_gated(&mut self.faults, &tmp)
                & fs::remove_if_link(&mut self.faults, &link_tmp);
            self.needs_sweep |= !clean;
            return Err(e);
        }
        // The new snapshot is live.
        let record = self.last.take().and_then(|c| c.record);
        self.last = Some(Current {
            version: version.clone(),
            file_mode: Some(self.file_mode),
            files: given.into_shared(),
            record,
        });
        let synced = match self.fsync {
            true => fs::fsync_dir(&vdir),
            false => Ok(()),
        };
        let switched = self.switch(&version);
        let linked = fs::rename_into(&mut self.faults, &link_tmp, &self.dir.join(&key));
        self.resync = linked.is_err();
        let after = [synced, switched, linked, self.sync_dir()];
        match after.into_iter().find_map(Result::err) {
            Some(e) => Err(e),
            None => Ok(Outcome::Written {
                version,
                added: Vec::new(),
                changed: vec![key],
                removed: Vec::new(),
                bytes,
            }),
        }
    }

    /// Step 2: `last` becomes the version `..data` names, kept while it is the cached one,
    /// else read from disk; `None` when `..data` is missing, dangles or points elsewhere.
    fn load_current(&mut self) -> Result<(), Error> {
        let name = match fs::read_data_link(&self.dir.join(DATA))? {
            Some(DataLink::Version(name)) => name,
            Some(DataLink::Other(_)) | None => {
                self.last = None;
                return Ok(());
            }
        };
        if self.last.as_ref().is_none_or(|c| c.version != name) {
            self.last = None; // and stays so if the read fails
            self.last = fs::read_current(&self.dir, name)?;
        }
        Ok(())
    }

    /// Step 3 ([`plan::plan`]) over the current version, the keys whose links are in place
    /// (`linked`) and what is asked.
    fn plan<'f>(
        &self,
        linked: BTreeSet<&'f str>,
        files: &'f Files,
        record: Option<&'f [u8]>,
    ) -> Plan<'f> {
        let disk = OnDisk {
            old: self.last.as_ref(),
            linked,
            resync: self.resync,
        };
        let want = Wanted {
            files,
            record,
            file_mode: self.file_mode,
        };
        plan::plan(&disk, &want)
    }

    /// Step 4: every file into the new version directory `vdir` (0644, or the mode set),
    /// hard-linked from the old version when its bytes are the same (`same`), else (or if
    /// linking fails) written; then the record; with fsync on, `vdir` synced.
    fn write_version(
        &mut self,
        vdir: &Path,
        same: &BTreeSet<&str>,
        files: &Files,
        record: Option<&[u8]>,
    ) -> Result<(), Error> {
        let old = self.last.as_ref().map(|c| self.dir.join(&c.version));
        let mode = self.file_mode;
        for (key, bytes) in files {
            let dst = vdir.join(key);
            let src = old.as_ref().filter(|_| same.contains(key.as_str()));
            let len = bytes.len() as u64;
            let linked = src.is_some_and(|old| {
                fs::try_hard_link(&mut self.faults, &old.join(key), &dst, len, mode)
            });
            if !linked {
                fs::write_file(&mut self.faults, &dst, bytes, self.fsync, mode)?;
            }
        }
        if let Some(record) = record {
            let path = vdir.join(RECORD);
            fs::write_file(&mut self.faults, &path, record, self.fsync, FILE_MODE)?;
        }
        if self.fsync {
            fs::fsync_dir(vdir)?;
        }
        Ok(())
    }

    /// Step 5: the link of each key in `keys`; each one made is pushed to `made`, for the
    /// rollback.
    fn link_new_keys<'k>(
        &mut self,
        keys: &[&'k str],
        made: &mut Vec<&'k str>,
    ) -> Result<(), Error> {
        for key in keys {
            fs::make_key_link(&mut self.faults, &self.dir, key)?;
            made.push(key);
        }
        Ok(())
    }

    /// Step 6: `..data` names `version`, through `..data_tmp` and a rename.
    fn switch(&mut self, version: &str) -> Result<(), Error> {
        let (tmp, data) = (self.dir.join(DATA_TMP), self.dir.join(DATA));
        fs::place_link(&mut self.faults, &tmp, version, &data)
    }

    /// With fsync on, the snapshot directory synced (after steps 6 and 9).
    fn sync_dir(&self) -> Result<(), Error> {
        match self.fsync {
            true => fs::fsync_dir(&self.dir),
            false => Ok(()),
        }
    }

    /// Step 7: the key's spare link (else a fresh link) renamed over each key in `keys`, in
    /// that order. Every key is tried; after a failure the next write renames every key.
    fn rename_changed(&mut self, keys: &[&str]) -> Result<(), Error> {
        let mut first = Ok(());
        let tmp = self.dir.join(LINK_TMP);
        for key in keys {
            let link = self.dir.join(key);
            let spare = self.spares.iter().position(|k| k == key);
            let renamed = match spare.map(|i| self.spares.swap_remove(i)).is_some() {
                true => fs::rename_into(&mut self.faults, &self.dir.join(spare_name(key)), &link),
                false => fs::place_link(&mut self.faults, &tmp, &link_target(key), &link),
            };
            first = first.and(renamed);
        }
        self.resync = first.is_err();
        first
    }

    /// Step 8: the links of removed keys. Every key is tried; after a failure the next
    /// write sweeps first.
    fn unlink_removed(&mut self, keys: &[String]) -> Result<(), Error> {
        let mut first = Ok(());
        for key in keys {
            first = first.and(fs::remove_key_link(&mut self.faults, &self.dir, key));
        }
        if first.is_err() {
            self.needs_sweep = true;
        }
        first
    }

    /// Step 9: the old version directory, if there was one: the files it holds as this writer
    /// knows them unlinked, then the directory (anything else in it and the whole tree goes).
    /// After a failure the next write sweeps first.
    fn remove_old_version(&mut self, old: Option<&Current>) -> Result<(), Error> {
        let Some(old) = old else {
            return Ok(());
        };
        let names = old.files.keys().map(String::as_str);
        let names = names.chain(old.record.is_some().then_some(RECORD));
        let removed = fs::remove_version(&mut self.faults, &self.dir.join(&old.version), names);
        if removed.is_err() {
            self.needs_sweep = true;
        }
        removed
    }

    /// Undoes steps 4 to 6 after an error before the switch: the links made in step 5, a
    /// `..data_tmp`, the new version directory. A failure here leaves junk for the sweep
    /// before the next write, never a broken snapshot.
    fn abort(&mut self, vdir: &Path, made: &[&str]) {
        let mut clean = true;
        for key in made {
            clean &= fs::remove_key_link(&mut self.faults, &self.dir, key).is_ok();
        }
        clean &= fs::remove_if_link(&mut self.faults, &self.dir.join(DATA_TMP));
        clean &= fs::remove_dir_if_present(&mut self.faults, vdir).is_ok();
        if !clean {
            self.needs_sweep = true;
        }
    }
}

/// A snapshot given to [`Writer::write_given`], and how it is kept as the current one.
enum Given<'a> {
    /// Kept as a copy.
    Borrowed(&'a Files),
    /// Kept as it is.
    Shared(Arc<Files>),
}

impl Given<'_> {
    fn files(&self) -> &Files {
        match self {
            Given::Borrowed(files) => files,
            Given::Shared(files) => files,
        }
    }

    fn into_shared(self) -> Arc<Files> {
        match self {
            Given::Borrowed(files) => Arc::new(files.clone()),
            Given::Shared(files) => files,
        }
    }
}

/// Step 1: every key valid, the snapshot within [`MAX_FILES`] and [`MAX_BYTES`].
fn check_files(dir: &Path, files: &Files) -> Result<(), Error> {
    let invalid = |msg: String| {
        err(
            "validate",
            dir,
            io::Error::new(io::ErrorKind::InvalidInput, msg),
        )
    };
    if files.len() > MAX_FILES {
        return Err(invalid(format!(
            "snapshot of {} files, more than {MAX_FILES}",
            files.len()
        )));
    }
    let mut total: u64 = 0;
    for (key, bytes) in files {
        validate_key(key).map_err(invalid)?;
        total = total.saturating_add(bytes.len() as u64);
    }
    if total > MAX_BYTES {
        return Err(invalid(format!(
            "snapshot of {total} bytes, more than {MAX_BYTES}"
        )));
    }
    Ok(())
}

/// A `..data` target that names a sibling the writer can own: one component starting with
/// `..`, none of the fixed names.
fn is_version_ref(name: &str) -> bool {
    name.len() > 2
        && name.len() <= 255
        && name.starts_with("..")
        && !name.contains('/')
        && !name.contains('\0')
        && name != DATA
        && name != DATA_TMP
        && name != LINK_TMP
}

/// A version directory name: `..YYYY_MM_DD_HH_MM_SS.` then 1 to 64 lowercase hex digits
/// (also matches the kubelet's decimal suffixes).
fn is_version_name(name: &[u8]) -> bool {
    const STAMP: &[u8] = b"..dddd_dd_dd_dd_dd_dd.";
    let Some((head, tail)) = name.split_at_checked(STAMP.len()) else {
        return false;
    };
    let head_ok = head.iter().zip(STAMP).all(|(b, p)| match p {
        b'd' => b.is_ascii_digit(),
        _ => b == p,
    });
    head_ok
        && !tail.is_empty()
        && tail.len() <= 64
        && tail
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// `..link.KEY`, the spare link of KEY.
fn spare_name(key: &str) -> String {
    format!("{SPARE_LINK}{key}")
}

/// `..data/KEY`, the target of every key link.
fn link_target(key: &str) -> String {
    format!("{DATA}/{key}")
}

/// `..YYYY_MM_DD_HH_MM_SS.<9-digit nanos><8 hex>`, UTC: names sort by time.
fn version_name(since_epoch: Duration, random: u64) -> String {
    let (year, month, day, hour, minute, second) = log::civil(since_epoch.as_secs());
    format!(
        "..{year:04}_{month:02}_{day:02}_{hour:02}_{minute:02}_{second:02}.{:09}{:08x}",
        since_epoch.subsec_nanos(),
        random & 0xffff_ffff
    )
}
