//! The snapshot writer's syscalls: every one that modifies the directory passes the fault
//! gate first ([`Faults`], empty outside tests); the reads that describe the directory
//! before a write (`..data`, a version's files and record, whose links are in place); the
//! lock; and the start-up sweep of what a killed predecessor left.
//!
//! Each function does what it is told: which files to write, link or rename is decided in
//! `plan.rs`, in which order in `mod.rs`. None of them follows a link out of the directory,
//! writes a file in place, or removes a name the writer does not own (plain files, and
//! links that do not point to `..data/<their own name>`, are left alone).
#![forbid(unsafe_code)]

use super::{
    err, is_version_name, is_version_ref, link_target, show_key, validate_key, version_name,
    Current, Error, Files, BLANK, DATA, DATA_TMP, DIR_MODE, FILE_MODE, LINK_TMP, LOCK, MAX_BYTES,
    MAX_FILES, RECORD, REPLACE_TMP, SPARE_LINK,
};
use crate::backoff::Rng;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest record read back.
const MAX_RECORD_BYTES: u64 = 1 << 20;
/// Attempts at a fresh version directory name before giving up.
const NAME_ATTEMPTS: usize = 8;

/// Fault injection for the tests: every modifying syscall passes `gate` first. Outside
/// tests it is empty and always passes.
#[derive(Default)]
pub(super) struct Faults {
    #[cfg(test)]
    pub(super) plan: Option<FaultPlan>,
}

#[cfg(test)]
pub(super) struct FaultPlan {
    /// The index of the modifying syscall that fails.
    pub(super) at: usize,
    /// Every later one fails too: the process was killed there.
    pub(super) kill: bool,
    pub(super) seen: usize,
    pub(super) hit: bool,
}

impl Faults {
    fn gate(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(plan) = self.plan.as_mut() {
            let index = plan.seen;
            plan.seen += 1;
            if index == plan.at || (plan.kill && index > plan.at) {
                plan.hit = true;
                return Err(io::Error::other("injected fault"));
            }
        }
        Ok(())
    }
}

/// Creates `dir` (0755, with its parents) when missing, then takes the exclusive advisory
/// lock on `DIR/..lock` ([`Writer::lock`](super::Writer::lock)) and writes the process id
/// into it.
pub(super) fn lock(dir: &Path) -> Result<File, Error> {
    create_dir_all(dir)?;
    let path = dir.join(LOCK);
    // The lock is held on a read-only handle: a file open for writing would keep the
    // file system from being remounted read-only.
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| err("create", &path, e))?;
    let file = File::open(&path).map_err(|e| err("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = (&file).take(32).read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "?" } else { holder };
            let why = format!("another loader (pid {holder}) writes this directory");
            return Err(err(
                "lock",
                &path,
                io::Error::new(io::ErrorKind::WouldBlock, why),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(err("lock", &path, e)),
    }
    fs::write(&path, format!("{}\n", pid())).map_err(|e| err("write", &path, e))?;
    Ok(file)
}

/// `dir` and its parents, 0755 (before the umask), when missing.
fn create_dir_all(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| err("create dir", dir, e))
}

/// The sweep of [`Writer::sweep`](super::Writer::sweep); also says whether a version
/// older than the current one was removed.
pub(super) fn sweep(fx: &mut Faults, dir: &Path) -> Result<(Vec<String>, bool), Error> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_dir_all(dir)?;
            return Ok((Vec::new(), false));
        }
        Err(e) => return Err(err("stat", dir, e)),
    }
    let data = dir.join(DATA);
    // A `..data` pointing at something else keeps nothing: every version is an orphan.
    let current: Option<String> = match read_data_link(&data)? {
        Some(DataLink::Version(name)) => Some(name),
        Some(DataLink::Other(_)) | None => None,
    };

    let mut removed = Vec::new();
    let mut after_switch = false;
    let entries = fs::read_dir(dir).map_err(|e| err("read dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| err("read dir", dir, e))?;
        let name = entry.file_name();
        let bytes = name.as_bytes();
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| err("stat", &path, e))?;
        if bytes == DATA_TMP.as_bytes() || bytes == LINK_TMP.as_bytes() {
            if !kind.is_symlink() {
                continue;
            }
            // A key's next link, left between the switch (or a file replaced in place) and
            // its rename: some keys' renames may be missing.
            after_switch |= bytes == LINK_TMP.as_bytes();
            fx.gate()
                .and_then(|()| remove_file_if_present(&path))
                .map_err(|e| err("remove", &path, e))?;
        } else if bytes == BLANK.as_bytes() {
            // The empty file an earlier release of this writer made ready for its next
            // write (this one places its empty file inside the next version).
            if !kind.is_file() {
                continue;
            }
            fx.gate()
                .and_then(|()| remove_file_if_present(&path))
                .map_err(|e| err("remove", &path, e))?;
        } else if bytes.starts_with(SPARE_LINK.as_bytes()) {
            // A spare key link made ready for the next write (made again after it).
            if !kind.is_symlink() {
                continue;
            }
            fx.gate()
                .and_then(|()| remove_file_if_present(&path))
                .map_err(|e| err("remove", &path, e))?;
        } else if is_version_name(bytes) {
            if !kind.is_dir() || current.as_deref().map(str::as_bytes) == Some(bytes) {
                continue;
            }
            remove_dir_if_present(fx, &path)?;
            if current.as_ref().is_some_and(|c| bytes < c.as_bytes()) {
                after_switch = true;
            }
        } else if kind.is_symlink() {
            let target = match fs::read_link(&path) {
                Ok(target) => target,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err("read link", &path, e)),
            };
            let ours = target
                .as_os_str()
                .as_bytes()
                .strip_prefix(b"..data/")
                .is_some_and(|rest| rest == bytes);
            let dangling =
                matches!(fs::metadata(&path), Err(e) if e.kind() == io::ErrorKind::NotFound);
            if !ours || !dangling {
                continue;
            }
            fx.gate()
                .and_then(|()| remove_file_if_present(&path))
                .map_err(|e| err("remove", &path, e))?;
        } else {
            continue;
        }
        removed.push(name.to_string_lossy().into_owned());
    }
    // A file the one-file path staged in the current version and never renamed.
    if let Some(current) = &current {
        let staged = dir.join(current).join(REPLACE_TMP);
        if fs::symlink_metadata(&staged).is_ok_and(|m| m.is_file()) {
            fx.gate()
                .and_then(|()| remove_file_if_present(&staged))
                .map_err(|e| err("remove", &staged, e))?;
            removed.push(format!("{current}/{REPLACE_TMP}"));
        }
    }
    removed.sort();
    Ok((removed, after_switch))
}

pub(super) fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// What `..data` points to.
pub(super) enum DataLink {
    /// A name this writer can have made: one component starting with `..`.
    Version(String),
    /// Anything else, shown for the error.
    Other(String),
}

/// Reads `DIR/..data`: `None` when missing, an error when it is not a symlink.
pub(super) fn read_data_link(data: &Path) -> Result<Option<DataLink>, Error> {
    match fs::read_link(data) {
        Ok(target) => Ok(Some(match target.to_str() {
            Some(name) if is_version_ref(name) => DataLink::Version(name.to_string()),
            _ => DataLink::Other(target.to_string_lossy().into_owned()),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(err(
            "read link",
            data,
            invalid_data(
                "not a symbolic link (names starting with '..' belong to the snapshot writer)"
                    .to_string(),
            ),
        )),
        Err(e) => Err(err("read link", data, e)),
    }
}

/// Step 2 from disk: the version `name` (`None` when it is missing or no directory), its
/// files, the permission bits they share and its record.
pub(super) fn read_current(dir: &Path, name: String) -> Result<Option<Current>, Error> {
    let vdir = dir.join(&name);
    match fs::symlink_metadata(&vdir) {
        Ok(meta) if meta.is_dir() => {
            let (files, file_mode) = read_version_modes(&vdir)?;
            Ok(Some(Current {
                files: Arc::new(files),
                file_mode,
                record: read_record(&vdir)?,
                version: name,
            }))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err("stat", vdir, e)),
    }
}

/// Step 2: the keys of `files` whose `DIR/KEY` already is the writer's link. An error for
/// the first key whose name is taken by something else ([`is_our_link`]).
pub(super) fn our_links<'f>(dir: &Path, files: &'f Files) -> Result<BTreeSet<&'f str>, Error> {
    our_links_of(dir, files.keys().map(String::as_str))
}

/// [`our_links`] of the keys `keys`.
pub(super) fn our_links_of<'f>(
    dir: &Path,
    keys: impl Iterator<Item = &'f str>,
) -> Result<BTreeSet<&'f str>, Error> {
    let mut linked = BTreeSet::new();
    for key in keys {
        if is_our_link(dir, key)? {
            linked.insert(key);
        }
    }
    Ok(linked)
}

/// Whether `DIR/KEY` is this writer's link `-> ..data/KEY`. Missing or not a link: false.
pub(super) fn is_our_link(dir: &Path, key: &str) -> Result<bool, Error> {
    let link = dir.join(key);
    match fs::read_link(&link) {
        Ok(target) => Ok(target.as_os_str().as_bytes() == link_target(key).as_bytes()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        // Something that is no link (a file or directory someone put there): never
        // renamed over or removed.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(err(
            "read link",
            link,
            invalid_data(format!(
                "key {}: the name is taken by something that is not the loader's link; refusing to replace it",
                show_key(key)
            )),
        )),
        Err(e) => Err(err("read link", link, e)),
    }
}

/// A version directory's [`RECORD`], `None` when it has none.
pub(super) fn read_record(vdir: &Path) -> Result<Option<Vec<u8>>, Error> {
    let path = vdir.join(RECORD);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(f) => f
            .take(MAX_RECORD_BYTES)
            .read_to_end(&mut bytes)
            .map(|_| Some(bytes))
            .map_err(|e| err("read", &path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err("read", &path, e)),
    }
}

/// The files of one version directory: regular files with valid key names, bounded by
/// [`MAX_FILES`] and [`MAX_BYTES`].
pub(super) fn read_version(vdir: &Path) -> Result<Files, Error> {
    read_version_modes(vdir).map(|(files, _)| files)
}

/// [`read_version`], and the permission bits its files share (`None` when they differ or
/// there are none).
fn read_version_modes(vdir: &Path) -> Result<(Files, Option<u32>), Error> {
    let mut modes: Option<Option<u32>> = None;
    let mut files = Files::new();
    let mut total: u64 = 0;
    let entries = fs::read_dir(vdir).map_err(|e| err("read dir", vdir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| err("read dir", vdir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if validate_key(&name).is_err() {
            continue;
        }
        let path = entry.path();
        if !entry
            .file_type()
            .map_err(|e| err("stat", &path, e))?
            .is_file()
        {
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(err(
                "read dir",
                vdir,
                invalid_data(format!("more than {MAX_FILES} files")),
            ));
        }
        let room = MAX_BYTES - total;
        let mut content = Vec::new();
        let mode = File::open(&path)
            .and_then(|f| {
                let mode = f.metadata()?.permissions().mode() & 0o7777;
                f.take(room + 1).read_to_end(&mut content)?;
                Ok(mode)
            })
            .map_err(|e| err("read", &path, e))?;
        modes = Some(match modes {
            None => Some(mode),
            Some(m) => m.filter(|m| *m == mode),
        });
        let len = content.len() as u64;
        if len > room {
            return Err(err(
                "read dir",
                vdir,
                invalid_data(format!("snapshot larger than {MAX_BYTES} bytes")),
            ));
        }
        total += len;
        files.insert(name, content);
    }
    Ok((files, modes.flatten()))
}

/// Step 4: a fresh version directory, 0755 whatever the umask. Creates the snapshot
/// directory when missing.
#[inline(never)] // called for a write and for the next version: one copy
pub(super) fn make_version_dir(
    fx: &mut Faults,
    rng: &mut Rng,
    dir: &Path,
) -> Result<(String, PathBuf), Error> {
    let mut made_parent = false;
    for _ in 0..NAME_ATTEMPTS {
        let name = version_name(now(), rng.next_u64());
        let path = dir.join(&name);
        match fx
            .gate()
            .and_then(|()| fs::DirBuilder::new().mode(DIR_MODE).create(&path))
        {
            Ok(()) => {
                let chmod = || fs::set_permissions(&path, Permissions::from_mode(DIR_MODE));
                if let Err(e) = umask_strips(DIR_MODE).then(chmod).unwrap_or(Ok(())) {
                    let _ = fs::remove_dir(&path);
                    return Err(err("chmod", path, e));
                }
                return Ok((name, path));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && !made_parent => {
                made_parent = true;
                fx.gate()
                    .and_then(|()| {
                        fs::DirBuilder::new()
                            .recursive(true)
                            .mode(DIR_MODE)
                            .create(dir)
                    })
                    .map_err(|e| err("create dir", dir, e))?;
            }
            Err(e) => return Err(err("create dir", path, e)),
        }
    }
    Err(err(
        "create dir",
        dir,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("no free version directory name after {NAME_ATTEMPTS} attempts"),
        ),
    ))
}

/// Step 4 for an unchanged file: hard-link it from the old version when it is still a
/// regular file of the expected size. False when it could not: write it instead.
pub(super) fn try_hard_link(fx: &mut Faults, src: &Path, dst: &Path, len: u64, mode: u32) -> bool {
    match fs::symlink_metadata(src) {
        Ok(meta)
            if meta.is_file()
                && meta.len() == len
                && meta.permissions().mode() & 0o7777 == mode => {}
        _ => return false,
    }
    fx.gate().and_then(|()| fs::hard_link(src, dst)).is_ok()
}

/// A hard link `dst` of `src` (the next version's copy of a current file); false when it
/// could not be made.
pub(super) fn hard_link(fx: &mut Faults, src: &Path, dst: &Path) -> bool {
    fx.gate().and_then(|()| fs::hard_link(src, dst)).is_ok()
}

/// Removes the file `path`; gone already is fine.
pub(super) fn remove_file(fx: &mut Faults, path: &Path) -> Result<(), Error> {
    fx.gate()
        .and_then(|()| remove_file_if_present(path))
        .map_err(|e| err("remove", path, e))
}

/// Whether the process's umask would take bits from `mode`, so that they must be set again
/// after creation (one chmod per directory and file). The umask is read once from
/// `/proc/self/status` (the loader never changes it); unknown counts as yes. The usual
/// umask 022 takes nothing from 0755 and 0644.
fn umask_strips(mode: u32) -> bool {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    let umask = UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
    });
    umask.is_none_or(|m| m & mode != 0)
}

/// Step 4: a new file with permission bits `mode`, whatever the umask.
pub(super) fn write_file(
    fx: &mut Faults,
    path: &Path,
    bytes: &[u8],
    fsync: bool,
    mode: u32,
) -> Result<(), Error> {
    let mut file = fx
        .gate()
        .and_then(|()| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
        })
        .map_err(|e| err("create", path, e))?;
    fx.gate()
        .and_then(|()| file.write_all(bytes))
        .map_err(|e| err("write", path, e))?;
    if umask_strips(mode) {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| err("chmod", path, e))?;
    }
    if fsync {
        file.sync_all().map_err(|e| err("fsync", path, e))?;
    }
    Ok(())
}

/// An empty file `path` (in a new version directory) with permission bits `mode`, for the
/// next write to write into; false when it could not be made.
pub(super) fn make_blank(fx: &mut Faults, path: &Path, mode: u32) -> bool {
    let made = fx.gate().and_then(|()| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
    });
    made.is_ok_and(|f| {
        !umask_strips(mode) || f.set_permissions(Permissions::from_mode(mode)).is_ok()
    })
}

/// Step 4 into the next version: `bytes` written into `path`, the empty file made ready
/// there (its mode the one asked): opened, not created.
pub(super) fn write_into(
    fx: &mut Faults,
    path: &Path,
    bytes: &[u8],
    fsync: bool,
) -> Result<(), Error> {
    let mut file = fx
        .gate()
        .and_then(|()| OpenOptions::new().write(true).open(path))
        .map_err(|e| err("open", path, e))?;
    fx.gate()
        .and_then(|()| file.write_all(bytes))
        .map_err(|e| err("write", path, e))?;
    if fsync {
        file.sync_all().map_err(|e| err("fsync", path, e))?;
    }
    Ok(())
}

pub(super) fn fsync_dir(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| err("fsync", path, e))
}

fn make_symlink(fx: &mut Faults, target: &str, link: &Path) -> Result<(), Error> {
    fx.gate()
        .and_then(|()| symlink(target, link))
        .map_err(|e| err("symlink", link, e))
}

/// The one-file path's `..link_tmp`: a stale one (a failed clean-up) is replaced.
pub(super) fn make_link_tmp(fx: &mut Faults, target: &str, tmp: &Path) -> Result<(), Error> {
    match make_symlink(fx, target, tmp) {
        Err(e) if e.source.kind() == io::ErrorKind::AlreadyExists => {
            fx.gate()
                .and_then(|()| fs::remove_file(tmp))
                .map_err(|e| err("remove", tmp, e))?;
            make_symlink(fx, target, tmp)
        }
        other => other,
    }
}

/// `rename(from, to)`: `to` switches at once.
pub(super) fn rename_into(fx: &mut Faults, from: &Path, to: &Path) -> Result<(), Error> {
    fx.gate()
        .and_then(|()| fs::rename(from, to))
        .map_err(|e| err("rename", to, e))
}

/// Removes the file `path` if present; false when that failed.
pub(super) fn remove_file_gated(fx: &mut Faults, path: &Path) -> bool {
    fx.gate()
        .and_then(|()| remove_file_if_present(path))
        .is_ok()
}

/// Step 5: `DIR/KEY -> ..data/KEY`, made directly when the name is free, else through
/// `..link_tmp` and a rename over what is in the way (a link that is not ours: plain files
/// and directories were refused in step 2).
pub(super) fn make_key_link(fx: &mut Faults, dir: &Path, key: &str) -> Result<(), Error> {
    let link = dir.join(key);
    let target = link_target(key);
    match fs::symlink_metadata(&link) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => make_symlink(fx, &target, &link),
        Ok(_) => place_link(fx, &dir.join(LINK_TMP), &target, &link),
        Err(e) => Err(err("stat", &link, e)),
    }
}

/// `symlink(target, tmp)` then `rename(tmp, dst)`: `dst` switches at once, with the
/// `IN_MOVED_TO` that names it. A stale `tmp` is replaced; after a failed rename `tmp` is
/// removed when possible.
pub(super) fn place_link(
    fx: &mut Faults,
    tmp: &Path,
    target: &str,
    dst: &Path,
) -> Result<(), Error> {
    match make_symlink(fx, target, tmp) {
        Err(e) if e.source.kind() == io::ErrorKind::AlreadyExists => {
            fx.gate()
                .and_then(|()| fs::remove_file(tmp))
                .map_err(|e| err("remove", tmp, e))?;
            make_symlink(fx, target, tmp)?;
        }
        other => other?,
    }
    if let Err(e) = fx.gate().and_then(|()| fs::rename(tmp, dst)) {
        let _ = fx.gate().and_then(|()| remove_file_if_present(tmp));
        return Err(err("rename", dst, e));
    }
    Ok(())
}

/// Removes `DIR/KEY` when it is the writer's link (step 8, and the links of step 5 in a
/// rollback); anything else under that name is left.
pub(super) fn remove_key_link(fx: &mut Faults, dir: &Path, key: &str) -> Result<(), Error> {
    let link = dir.join(key);
    let gone = match is_our_link(dir, key) {
        Ok(true) => fx.gate().and_then(|()| remove_file_if_present(&link)),
        Ok(false) => Ok(()),
        Err(e) => Err(e.source),
    };
    gone.map_err(|e| err("remove", link, e))
}

/// Removes `path` when it is a symbolic link (a `..data_tmp` a failed switch left). False
/// when that failed or `path` could not be examined.
pub(super) fn remove_if_link(fx: &mut Faults, path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fx
            .gate()
            .and_then(|()| remove_file_if_present(path))
            .is_ok(),
        Ok(_) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Step 9: the old version directory `path`, holding `names` as far as the writer knows:
/// each unlinked, then the directory removed (`N + 1` syscalls where reading the directory
/// to remove it takes about ten more). Anything else in it, or any error, and the whole tree
/// is removed as [`remove_dir_if_present`] does.
pub(super) fn remove_version<'a>(
    fx: &mut Faults,
    path: &Path,
    mut names: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    fx.gate().map_err(|e| err("remove dir", path, e))?;
    if names.all(|n| remove_file_if_present(&path.join(n)).is_ok()) && fs::remove_dir(path).is_ok()
    {
        return Ok(());
    }
    remove_tree(path)
}

pub(super) fn remove_dir_if_present(fx: &mut Faults, path: &Path) -> Result<(), Error> {
    fx.gate().map_err(|e| err("remove dir", path, e))?;
    remove_tree(path)
}

/// The directory `path` and everything in it; gone already is no error.
fn remove_tree(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| err("remove dir", path, e)),
    }
}

pub(super) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The process id, asked of the kernel once.
fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}
