//! The acknowledged apply of `-envoy-admin`: an update written in phases, providers before
//! consumers ([`xds::phases`]), each phase a complete snapshot that Envoy must take
//! ([`envoy::verdict`]) before the next is written.
//!
//! Each phase is a whole write of the writer: the snapshot on disk with that phase's keys
//! (and the earlier phases') brought to their new state, switched at once (what a
//! `watched_directory` subscription reloads) and each changed key's link renamed (what a
//! plain `path:` subscription reloads). Its record names, for each key, the object its
//! bytes come from, so a restart between phases restores a true state.
//!
//! Envoy absent or slow never freezes the files: when its admin refuses the connection
//! (not running) the phase goes on at once, when it does not show the phase taken within
//! `-envoy-timeout` it goes on then; either is logged once per outage and counted. Envoy's
//! rejections are logged per file and counted, and [`Acks`] keeps the files on disk that
//! Envoy has not acknowledged, for the in-sync gauge.

use super::state::parse_record;
use crate::config::EnvoyAdmin;
use crate::envoy::{self, Admin, Stats, Unread, Verdict};
use crate::health::METRICS;
use crate::log;
use crate::snapshot::{Files, Outcome, Writer};
use crate::xds::{self, Phase, Types};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the admin is asked while a phase waits.
const POLL: Duration = Duration::from_millis(5);
/// The longest wait for one answer of the admin (connection, then each read).
const ASK_WITHIN: Duration = Duration::from_secs(1);

/// One write of a phase: the writer, the files, their record, and `Some((i, n))` for
/// phase `i` of `n` (`None`: the update has one phase).
pub type WriteFn<'a> = dyn FnMut(&mut Writer, Arc<Files>, &[u8], Option<(usize, usize)>) -> Result<Outcome, String>
    + 'a;

/// The acknowledged apply's state across updates.
pub struct Acks {
    admin: Admin,
    /// A phase went on without Envoy's acknowledgement and no phase was acknowledged
    /// since: the outage is logged once, at its start.
    outage: bool,
    /// The files on disk Envoy has not acknowledged (rejected, or written while it could
    /// not be asked or did not answer).
    unconfirmed: Vec<String>,
}

impl Acks {
    pub fn new(at: EnvoyAdmin) -> Acks {
        METRICS.envoy_on();
        log::info(
            "applying updates in phases acknowledged by envoy",
            &[("admin", &at), ("timeout", &seconds(at.timeout))],
        );
        Acks {
            admin: Admin::new(at),
            outage: false,
            unconfirmed: Vec::new(),
        }
    }

    /// Writes `merged` (with `record`) in phases; `since` is when the event that caused it
    /// arrived. A write that fails stops the update there (the disk holds a complete
    /// earlier phase); the caller retries the whole, which starts from what is on disk.
    pub fn apply(
        &mut self,
        w: &mut Writer,
        merged: Arc<Files>,
        record: Vec<u8>,
        since: Instant,
        write: &mut WriteFn<'_>,
    ) -> Result<Outcome, String> {
        let old = w.current_shared().ok().flatten().unwrap_or_default();
        let old_record = w.current_record().ok().flatten().unwrap_or_default();
        let phases = xds::phases(&old, &merged);
        let n = phases.len();
        if n == 0 {
            // no file changed (the record may have): one write, nothing to acknowledge
            return write(w, merged, &record, None);
        }
        // the snapshot of the phases so far, copied from the old one for an update of several
        let mut files: Option<Files> = None;
        let mut applied = BTreeSet::new();
        let mut outcome = Outcome::Unchanged;
        for (i, phase) in phases.iter().enumerate() {
            let last = i + 1 == n;
            let (snapshot, rec) = if last {
                (merged.clone(), record.clone())
            } else {
                let files = files.get_or_insert_with(|| Files::clone(&old));
                for key in &phase.keys {
                    match merged.get(key) {
                        Some(v) => files.insert(key.clone(), v.clone()),
                        None => files.remove(key),
                    };
                    applied.insert(key.as_str());
                }
                let rec = blend_record(&old_record, &record, &applied, files);
                (Arc::new(files.clone()), rec)
            };
            let before = self.before(Some(phase));
            // an update of one phase is logged as any other write
            outcome = write(w, snapshot, &rec, (n > 1).then_some((i + 1, n)))?;
            self.wait(before, phase, &merged, since, (i + 1, n));
        }
        Ok(outcome)
    }

    /// The reading before a phase's write; `None` when the phase has nothing to
    /// acknowledge.
    fn before(&self, phase: Option<&Phase>) -> Option<Result<Stats, Unread>> {
        phase
            .filter(|p| !p.types.is_empty())
            .map(|_| self.admin.stats(ASK_WITHIN.min(self.admin.timeout())))
    }

    /// Waits until Envoy has taken `phase` (of `at.1`), or cannot be asked, or
    /// `-envoy-timeout` passed; logs and counts the outcome.
    fn wait(
        &mut self,
        before: Option<Result<Stats, Unread>>,
        phase: &Phase,
        merged: &Files,
        since: Instant,
        at: (usize, usize),
    ) {
        for key in phase.keys.iter().filter(|k| !merged.contains_key(*k)) {
            self.unconfirmed.retain(|k| k != key);
        }
        let before = match before {
            None => return,
            Some(Ok(stats)) => stats,
            Some(Err(e)) => return self.unacknowledged(false, e.text(), phase, merged),
        };
        let deadline = Instant::now() + self.admin.timeout();
        let mut last_err = String::new();
        // A verdict counts once a second reading, POLL later, shows the same counters: a
        // write's later renames (each a reload, with `watched_directory`) are taken too,
        // so none is left to pass for the next phase's reload.
        let mut taken: Option<Stats> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.admin.stats(left.min(ASK_WITHIN)) {
                Ok(now) => {
                    let verdict = envoy::verdict(&before, &now, phase.types, phase.reloads);
                    if let Verdict::Taken { refused } = verdict {
                        if taken.as_ref() == Some(&now) {
                            return self.taken(refused, now.clean(), phase, merged, since, at);
                        }
                        taken = Some(now);
                    } else {
                        taken = None;
                    }
                }
                Err(Unread::Refused(e)) => return self.unacknowledged(false, &e, phase, merged),
                Err(Unread::Failed(e)) => last_err = e,
            }
            if Instant::now() >= deadline {
                let why = if last_err.is_empty() {
                    format!("not taken within {}", seconds(self.admin.timeout()))
                } else {
                    last_err
                };
                return self.unacknowledged(true, &why, phase, merged);
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// Envoy took the phase: each of its files that names a refused type is reported.
    fn taken(
        &mut self,
        refused: Types,
        clean: bool,
        phase: &Phase,
        merged: &Files,
        since: Instant,
        (i, n): (usize, usize),
    ) {
        if self.outage {
            self.outage = false;
            log::info(
                "envoy acknowledges again",
                &[("admin", self.admin.address())],
            );
        }
        for key in &phase.keys {
            let Some(content) = merged.get(key) else {
                continue;
            };
            let types = Types::of(content);
            if types.meets(refused) {
                let named = types.and(refused);
                log::error(
                    "envoy rejected the file; it keeps running what it had",
                    &[
                        ("file", key),
                        ("type", &named.names()),
                        ("phase", &Of(i, n)),
                    ],
                );
                METRICS.envoy_rejected(key);
                self.unconfirm(key);
            } else {
                self.unconfirmed.retain(|k| k != key);
            }
        }
        if clean {
            // Envoy has refused nothing since it started: whatever it read, it runs.
            self.unconfirmed.clear();
        }
        let took = since.elapsed();
        METRICS.envoy_acknowledged(took);
        METRICS.envoy_in_sync(self.unconfirmed.is_empty());
        log::info(
            "envoy acknowledged",
            &[
                ("phase", &Of(i, n)),
                ("type", &phase.types.names()),
                ("took", &seconds(took)),
            ],
        );
    }

    /// The phase goes on without Envoy's acknowledgement: logged at an outage's start,
    /// counted every time.
    fn unacknowledged(&mut self, timeout: bool, err: &str, phase: &Phase, merged: &Files) {
        METRICS.envoy_unacknowledged(timeout);
        if !self.outage {
            self.outage = true;
            let (msg, reason) = if timeout {
                ("envoy did not acknowledge in time; going on", "timeout")
            } else {
                ("envoy's admin cannot be asked; going on", "unreachable")
            };
            log::warn(
                msg,
                &[
                    ("admin", self.admin.address()),
                    ("reason", &reason),
                    ("err", &err),
                ],
            );
        }
        for key in phase.keys.iter().filter(|k| merged.contains_key(*k)) {
            self.unconfirm(key);
        }
        METRICS.envoy_in_sync(self.unconfirmed.is_empty());
    }
}

impl Acks {
    fn unconfirm(&mut self, key: &str) {
        if !self.unconfirmed.iter().any(|k| k == key) {
            self.unconfirmed.push(key.to_string());
        }
    }
}

/// `2/3`: phase 2 of 3.
struct Of(usize, usize);

impl std::fmt::Display for Of {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// A duration for the log in seconds with three decimals (`0.012s`), integers only.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// The record of a phase's snapshot `files`: each key's owner from the new record where
/// the key was `applied` (its bytes, or its absence, are the new ones), else from the old
/// record. Owners in the new record's order, then those only in the old one; an owner
/// with no key keeps its line only when it has none in the new record either (it is on
/// record with nothing).
fn blend_record(old: &[u8], new: &[u8], applied: &BTreeSet<&str>, files: &Files) -> Vec<u8> {
    let (old, new) = (
        parse_record(old).unwrap_or_default(),
        parse_record(new).unwrap_or_default(),
    );
    let mut lines: Vec<(&str, Vec<&str>, bool)> = Vec::new();
    for (owner, keys) in &new {
        let mine = keys.iter().copied().filter(|k| applied.contains(k));
        lines.push((owner, mine.collect(), keys.is_empty()));
    }
    for (owner, keys) in &old {
        let mine = keys
            .iter()
            .copied()
            .filter(|k| !applied.contains(k) && files.contains_key(*k));
        match lines.iter_mut().find(|(o, _, _)| o == owner) {
            Some((_, have, _)) => have.extend(mine),
            None => lines.push((owner, mine.collect(), false)),
        }
    }
    let mut out = String::new();
    for (owner, mut keys, empty) in lines {
        if keys.is_empty() && !empty {
            continue;
        }
        keys.sort_unstable();
        out.push_str(owner);
        for k in keys {
            out.push('\t');
            out.push_str(k);
        }
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_record_names_each_keys_owner_of_its_bytes() {
        let old = b"configmap ns/a\tcds.yaml\trds.yaml\nconfigmap ns/b\teds-old.yaml\n";
        let new = b"configmap ns/a\tcds.yaml\teds-new.yaml\trds.yaml\nconfigmap ns/c\n";
        // phase 1 of "a adds eds-new.yaml and changes cds.yaml, b goes, c comes empty":
        // eds-old.yaml (b's) stays until the last phase
        let files: Files = ["cds.yaml", "eds-new.yaml", "eds-old.yaml", "rds.yaml"]
            .iter()
            .map(|k| (k.to_string(), Vec::new()))
            .collect();
        let applied: BTreeSet<&str> = ["cds.yaml", "eds-new.yaml"].into_iter().collect();
        assert_eq!(
            String::from_utf8(blend_record(old, new, &applied, &files)).unwrap(),
            "configmap ns/a\tcds.yaml\teds-new.yaml\trds.yaml\nconfigmap ns/c\nconfigmap ns/b\teds-old.yaml\n"
        );
        // a key that moves from b to a is a's once applied, b's before
        let old = b"configmap ns/b\tk\n";
        let new = b"configmap ns/a\tk\n";
        let files: Files = [("k".to_string(), Vec::new())].into_iter().collect();
        let none = BTreeSet::new();
        assert_eq!(
            blend_record(old, new, &none, &files),
            b"configmap ns/b\tk\n"
        );
        let k: BTreeSet<&str> = ["k"].into_iter().collect();
        assert_eq!(blend_record(old, new, &k, &files), b"configmap ns/a\tk\n");
        // no old record (a first write, or a version without one): only the new keys
        assert_eq!(blend_record(b"", new, &k, &files), b"configmap ns/a\tk\n");
    }

    #[test]
    fn seconds_have_three_decimals() {
        assert_eq!(seconds(Duration::from_micros(12_900)), "0.012s");
        assert_eq!(seconds(Duration::from_secs(10)), "10.000s");
    }
}
