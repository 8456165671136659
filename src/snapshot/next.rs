//! The next version, made ready after each write, off the path from "asked" to "switched":
//! a version directory holding a hard link of every file of the current one (and its
//! record), but an empty file in place of the key the write changed (the likeliest to
//! change next; the first key after a first write), `..data_tmp` already naming it, and a
//! spare link `..link.KEY -> ..data/KEY` per key. The next write then replaces only the
//! files that changed inside it (the key changed last by writing into its empty file;
//! another by renaming the empty file to it and linking the first one back; no inode is
//! allocated on the way), switches with one rename and renames each changed key's spare
//! link: for an update of the key changed last, `open`, `write`, `close` and two renames in
//! all, where the naive writer makes `open`, `write`, `close`, `rename`.
//!
//! Only for snapshots under [`REPLACE_FROM_FILES`](super::REPLACE_FROM_FILES) files
//! (larger ones take the one-file path, which needs no new version). Whatever fails here
//! leaves the write done: the next write makes a version of its own, and what could not be
//! removed is swept before it. A killed process leaves a version directory that `..data`
//! does not name (newer than the current one) and spare links; the start-up sweep removes
//! them and forces nothing.
#![forbid(unsafe_code)]

use super::{fs, link_target, spare_name, Next, Writer, DATA_TMP, RECORD, REPLACE_TMP};
use super::{Error, Files, SPARE_KEY_MAX};
use std::collections::BTreeSet;
use std::path::Path;

impl Writer {
    /// Whether this write can use the next version: the directory trusted, no resync due,
    /// the version made ready from the current one, its files' mode the one asked.
    pub(super) fn next_is_ready(&self) -> bool {
        let (Some(next), Some(cur)) = (&self.next, &self.last) else {
            return false;
        };
        self.trusted
            && !self.resync
            && next.of == cur.version
            && cur.file_mode == Some(self.file_mode)
    }

    /// The next version's name and path, and the key whose file in it is the empty one
    /// placed there; no longer ready (this write fills it).
    pub(super) fn take_next(&mut self) -> (String, std::path::PathBuf, Option<String>) {
        let (next, placed) = self
            .next
            .take()
            .map(|n| (n.version, n.placed))
            .unwrap_or_default();
        let path = self.dir.join(&next);
        (next, path, placed)
    }

    /// Step 4 into the next version `vdir`: each changed file replaces its hard link and
    /// each new one is written, each removed one unlinked, and the record replaced when it
    /// differs; with fsync on, `vdir` synced. The key `placed` (if any) holds an empty file
    /// there: when it changed, its new bytes are written into it; when it did not, the
    /// first changed key takes that file by a rename and `placed` gets its hard link back.
    /// Every other changed file is created (a hard link unlinked first).
    pub(super) fn fill_next(
        &mut self,
        vdir: &Path,
        same: &BTreeSet<&str>,
        files: &Files,
        record: Option<&[u8]>,
        placed: Option<String>,
    ) -> Result<(), Error> {
        let Some(cur) = self.last.as_ref() else {
            return Ok(());
        };
        let (old, old_record) = (cur.files.clone(), cur.record.clone());
        let src = self.dir.join(&cur.version);
        let (mode, fsync, tmp) = (self.file_mode, self.fsync, vdir.join(REPLACE_TMP));
        let changes = |k: &String| files.contains_key(k) && !same.contains(k.as_str());
        // The key that changed last changes again (its empty file is in place), or the empty
        // file is free for another key.
        let (again, mut free) = match placed {
            Some(k) if changes(&k) => (Some(k), None),
            other => (None, other),
        };
        let mut moved = None;
        for (key, bytes) in files.iter().filter(|(k, _)| changes(k)) {
            let dst = vdir.join(key);
            if again.as_ref() == Some(key) {
                fs::write_into(&mut self.faults, &dst, bytes, fsync)?;
                continue;
            }
            if let Some(at) = free.take() {
                // Another key: the empty file moves to it (no inode made here).
                fs::rename_into(&mut self.faults, &vdir.join(&at), &dst)?;
                fs::write_into(&mut self.faults, &dst, bytes, fsync)?;
                moved = Some(at);
                continue;
            }
            if old.contains_key(key) {
                // The hard link goes (the current version keeps the file), a new file comes:
                // on ext4 cheaper than a new file renamed over it.
                fs::remove_file(&mut self.faults, &dst)?;
            }
            fs::write_file(&mut self.faults, &dst, bytes, fsync, mode)?;
        }
        for key in old.keys().filter(|k| !files.contains_key(*k)) {
            fs::remove_file(&mut self.faults, &vdir.join(key))?;
        }
        // The key that held the empty file did not change: if it is kept, it gets its hard
        // link back (or, if that cannot be made, its bytes written), where the empty file
        // moved from or in place of the empty file still there.
        let relink = match (moved, free) {
            (Some(key), _) => Some((key, false)),
            (None, still) => still.map(|key| (key, true)),
        };
        if let Some((key, empty_there)) = relink.filter(|(k, _)| files.contains_key(k)) {
            let dst = vdir.join(&key);
            if empty_there {
                fs::remove_file(&mut self.faults, &dst)?;
            }
            if !fs::hard_link(&mut self.faults, &src.join(&key), &dst) {
                fs::write_file(&mut self.faults, &dst, &files[&key], fsync, mode)?;
            }
        }
        let path = vdir.join(RECORD);
        match (record, old_record.as_deref()) {
            (Some(r), Some(o)) if r == o => {}
            (Some(r), o) => {
                let staged = if o.is_some() { &tmp } else { &path };
                fs::write_file(&mut self.faults, staged, r, fsync, super::FILE_MODE)?;
                if o.is_some() {
                    fs::rename_into(&mut self.faults, &tmp, &path)?;
                }
            }
            (None, Some(_)) => fs::remove_file(&mut self.faults, &path)?,
            (None, None) => {}
        }
        if fsync {
            fs::fsync_dir(vdir)?;
        }
        Ok(())
    }

    /// After a write: the next version made ready from the current one (an empty file in
    /// place of key `hint`, the one that changed, when it is one of them) and a spare link
    /// for each key (those of keys gone removed). A failure leaves no next version.
    pub(super) fn prepare(&mut self, hint: Option<String>) {
        let Some(cur) = self.last.as_ref().filter(|_| self.ready_next) else {
            return;
        };
        let keys: Vec<String> = cur.files.keys().cloned().collect();
        let (version, has_record) = (cur.version.clone(), cur.record.is_some());
        if keys.len() >= self.replace_from {
            self.trim_spares(&[]);
            return;
        }
        let Ok((name, vdir)) = fs::make_version_dir(&mut self.faults, &mut self.rng, &self.dir)
        else {
            return;
        };
        let src = self.dir.join(&version);
        let placed = hint.filter(|k| cur.files.contains_key(k));
        let mut ready = true;
        for key in keys
            .iter()
            .map(String::as_str)
            .chain(has_record.then_some(RECORD))
        {
            let dst = vdir.join(key);
            ready = ready
                && match placed.as_deref() == Some(key) {
                    true => fs::make_blank(&mut self.faults, &dst, self.file_mode),
                    false => fs::hard_link(&mut self.faults, &src.join(key), &dst),
                };
        }
        let data_tmp = self.dir.join(DATA_TMP);
        ready = ready && fs::make_link_tmp(&mut self.faults, &name, &data_tmp).is_ok();
        if !ready {
            let clean = fs::remove_if_link(&mut self.faults, &data_tmp)
                & fs::remove_dir_if_present(&mut self.faults, &vdir).is_ok();
            self.needs_sweep |= !clean;
            return;
        }
        self.next = Some(Next {
            version: name,
            of: version,
            placed,
        });
        let keep: Vec<String> = keys
            .into_iter()
            .filter(|k| k.len() <= SPARE_KEY_MAX)
            .collect();
        self.trim_spares(&keep);
        for key in keep
            .into_iter()
            .filter(|k| !self.spares.contains(k))
            .collect::<Vec<_>>()
        {
            let link = self.dir.join(spare_name(&key));
            if fs::make_link_tmp(&mut self.faults, &link_target(&key), &link).is_ok() {
                self.spares.push(key);
            }
        }
    }

    /// The spare links of keys not in `keep` removed.
    fn trim_spares(&mut self, keep: &[String]) {
        let spares = std::mem::take(&mut self.spares);
        for key in spares {
            if keep.contains(&key) {
                self.spares.push(key);
            } else {
                let link = self.dir.join(spare_name(&key));
                self.needs_sweep |= !fs::remove_if_link(&mut self.faults, &link);
            }
        }
    }

    /// The next version removed (a write that cannot use it, or failed). A failure to
    /// remove it leaves it to the sweep before the next write.
    pub(super) fn discard_next(&mut self) {
        let Some(next) = self.next.take() else {
            return;
        };
        let clean = fs::remove_if_link(&mut self.faults, &self.dir.join(DATA_TMP))
            & fs::remove_dir_if_present(&mut self.faults, &self.dir.join(next.version)).is_ok();
        self.needs_sweep |= !clean;
    }

    /// Before a sweep, which removes the next version and the spare links: none is ready.
    pub(super) fn forget_next(&mut self) {
        self.next = None;
        self.spares.clear();
    }
}
