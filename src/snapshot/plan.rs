//! Step 3 of a write as a pure function: from what is on disk (the current version and
//! which key links are in place) and what is asked (files, record, file mode), either
//! "nothing to do" or the plan of steps 4 to 8: which files are hard-linked from the old
//! version, which links are made before the switch, which are renamed after it (providers
//! before consumers, [`xds::rename_order`]) and which are unlinked.
//!
//! It never touches the file system, the clock or the writer's state: the writer reads the
//! directory first and carries the plan out after, and the table tests below need no
//! temporary directory.
#![forbid(unsafe_code)]

use super::{Current, Files, Outcome};
use crate::bytes::same_bytes;
use crate::xds;
use std::collections::BTreeSet;

/// The directory as step 2 found it.
pub(super) struct OnDisk<'a> {
    /// The current version (`None`: no snapshot, or `..data` dangles or points elsewhere).
    pub old: Option<&'a Current>,
    /// The keys asked for whose `DIR/KEY` already is the writer's link `-> ..data/KEY`.
    pub linked: BTreeSet<&'a str>,
    /// Every key counts as changed: the last switch (of this process or a killed
    /// predecessor) may not have delivered its renames.
    pub resync: bool,
}

/// What a write asks for.
pub(super) struct Wanted<'f> {
    pub files: &'f Files,
    /// The version's record; `None` keeps whatever the current version has.
    pub record: Option<&'f [u8]>,
    /// The permission bits of every file.
    pub file_mode: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan<'f> {
    /// Every file is on disk with its bytes, mode and link, the record is the same and
    /// nothing must go: touch nothing.
    Unchanged,
    /// A new version, switched in.
    Write(Steps<'f>),
}

/// What steps 4 to 8 do, and what the write reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Steps<'f> {
    /// Keys new to the snapshot, and keys whose link was missing.
    pub added: Vec<String>,
    /// Keys whose bytes changed (every kept key once after an interrupted switch).
    pub changed: Vec<String>,
    /// Step 8: keys of the old version that are not asked for any more.
    pub removed: Vec<String>,
    /// Step 4: keys whose bytes equal the old version's, hard-linked from it.
    pub same: BTreeSet<&'f str>,
    /// Step 5: keys whose link is made before the switch.
    pub link: Vec<&'f str>,
    /// Step 7: keys whose link is renamed after the switch, in this order.
    pub rename: Vec<&'f str>,
    /// Size of the new snapshot, all files together.
    pub bytes: u64,
}

impl Steps<'_> {
    /// What the write reports once `version` is live.
    pub(super) fn into_outcome(self, version: String) -> Outcome {
        Outcome::Written {
            version,
            added: self.added,
            changed: self.changed,
            removed: self.removed,
            bytes: self.bytes,
        }
    }
}

/// Step 3: what a write of `want` over `disk` does.
pub(super) fn plan<'f>(disk: &OnDisk<'_>, want: &Wanted<'f>) -> Plan<'f> {
    let old = disk.old.map(|c| &*c.files);
    let mut steps = Steps::default();
    for (key, bytes) in want.files {
        steps.bytes += bytes.len() as u64;
        let ours = disk.linked.contains(key.as_str());
        let Some(prev) = old.and_then(|f| f.get(key)) else {
            steps.added.push(key.clone());
            if !ours {
                steps.link.push(key);
            }
            // Renamed after the switch as well: a plain `path:` subscription may still
            // watch this name from an earlier snapshot (a key that comes back), and only a
            // rename makes it read the file again. A link left by an interrupted write gets
            // its bytes only now, too.
            steps.rename.push(key);
            continue;
        };
        if !same_bytes(prev, bytes) {
            steps.changed.push(key.clone());
            steps.rename.push(key);
            continue;
        }
        steps.same.insert(key);
        if !ours {
            steps.added.push(key.clone());
            steps.link.push(key);
            steps.rename.push(key);
        } else if disk.resync {
            steps.changed.push(key.clone());
            steps.rename.push(key);
        }
    }
    if let Some(old) = old {
        let gone = old.keys().filter(|k| !want.files.contains_key(*k));
        steps.removed = gone.cloned().collect();
    }
    // A record that changed alone needs a new version, with every file hard-linked and no
    // key renamed; so do files whose permission bits differ.
    let same_record =
        want.record.is_none() || disk.old.and_then(|c| c.record.as_deref()) == want.record;
    let same_mode =
        want.files.is_empty() || disk.old.and_then(|c| c.file_mode) == Some(want.file_mode);
    if disk.old.is_some()
        && steps.link.is_empty()
        && steps.rename.is_empty()
        && steps.removed.is_empty()
        && same_record
        && same_mode
    {
        return Plan::Unchanged;
    }
    steps.rename = xds::rename_order(want.files, &steps.rename);
    Plan::Write(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LDS: &[u8] =
        b"resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n";
    const CDS: &[u8] =
        b"resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n";

    fn files(pairs: &[(&str, &[u8])]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    fn version(pairs: &[(&str, &[u8])], file_mode: Option<u32>, record: Option<&[u8]>) -> Current {
        Current {
            version: "..2026_05_01_00_00_00.1".to_string(),
            files: Arc::new(files(pairs)),
            file_mode,
            record: record.map(<[u8]>::to_vec),
        }
    }

    /// A plan in one line: `unchanged`, or `write` and each list that is not empty.
    fn show(plan: &Plan<'_>) -> String {
        let Plan::Write(s) = plan else {
            return "unchanged".to_string();
        };
        let lists = [
            ("added", owned(&s.added)),
            ("changed", owned(&s.changed)),
            ("removed", owned(&s.removed)),
            ("same", s.same.iter().copied().collect()),
            ("link", s.link.clone()),
            ("rename", s.rename.clone()),
        ];
        let mut out = "write".to_string();
        for (name, keys) in lists.iter().filter(|(_, keys)| !keys.is_empty()) {
            out += &format!(" {name}={}", keys.join(","));
        }
        out + &format!(" bytes={}", s.bytes)
    }

    fn owned(keys: &[String]) -> Vec<&str> {
        keys.iter().map(String::as_str).collect()
    }

    struct Case<'a> {
        what: &'a str,
        old: Option<&'a Current>,
        linked: &'a [&'a str],
        resync: bool,
        files: &'a [(&'a str, &'a [u8])],
        record: Option<&'a [u8]>,
        mode: u32,
        want: &'a str,
    }

    const NONE: Case<'static> = Case {
        what: "",
        old: None,
        linked: &[],
        resync: false,
        files: &[],
        record: None,
        mode: 0o644,
        want: "",
    };

    fn check(cases: &[Case<'_>]) {
        for case in cases {
            let asked = files(case.files);
            let disk = OnDisk {
                old: case.old,
                linked: case.linked.iter().copied().collect(),
                resync: case.resync,
            };
            let want = Wanted {
                files: &asked,
                record: case.record,
                file_mode: case.mode,
            };
            assert_eq!(show(&plan(&disk, &want)), case.want, "{}", case.what);
        }
    }

    #[test]
    fn keys_are_added_changed_renamed_and_removed_by_what_is_on_disk() {
        let ab: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"22")];
        let v1 = version(ab, Some(0o644), None);
        let empty = version(&[], None, None);
        check(&[
            Case {
                what: "a first write adds, links and renames every key",
                files: ab,
                want: "write added=a,b link=a,b rename=a,b bytes=3",
                ..NONE
            },
            Case {
                what: "a first write over a link an interrupted write left makes the others",
                linked: &["a"],
                files: ab,
                want: "write added=a,b link=b rename=a,b bytes=3",
                ..NONE
            },
            Case {
                what: "an empty first write still makes a snapshot",
                want: "write bytes=0",
                ..NONE
            },
            Case {
                what: "the same bytes, links and mode: nothing",
                old: Some(&v1),
                linked: &["a", "b"],
                files: ab,
                want: "unchanged",
                ..NONE
            },
            Case {
                what: "no files over no files: nothing, whatever the mode",
                old: Some(&empty),
                mode: 0o440,
                want: "unchanged",
                ..NONE
            },
            Case {
                what: "changed bytes are renamed, the same bytes hard-linked",
                old: Some(&v1),
                linked: &["a", "b"],
                files: &[("a", b"1"), ("b", b"33")],
                want: "write changed=b same=a rename=b bytes=3",
                ..NONE
            },
            Case {
                what: "a missing link is made again and renamed",
                old: Some(&v1),
                linked: &["a"],
                files: ab,
                want: "write added=b same=a,b link=b rename=b bytes=3",
                ..NONE
            },
            Case {
                what: "a key dropped is unlinked",
                old: Some(&v1),
                linked: &["a"],
                files: &[("a", b"1")],
                want: "write removed=b same=a bytes=1",
                ..NONE
            },
            Case {
                what: "after an interrupted switch every key is renamed once",
                old: Some(&v1),
                linked: &["a", "b"],
                resync: true,
                files: ab,
                want: "write changed=a,b same=a,b rename=a,b bytes=3",
                ..NONE
            },
            Case {
                what: "after an interrupted switch, no keys: nothing",
                old: Some(&empty),
                resync: true,
                want: "unchanged",
                ..NONE
            },
            Case {
                what: "providers are renamed before consumers, whatever their names",
                files: &[("a-lds.yaml", LDS), ("b.pem", b"pem"), ("z-cds.yaml", CDS)],
                want: "write added=a-lds.yaml,b.pem,z-cds.yaml link=a-lds.yaml,b.pem,z-cds.yaml \
                       rename=b.pem,z-cds.yaml,a-lds.yaml bytes=153",
                ..NONE
            },
        ]);
    }

    #[test]
    fn a_record_or_a_file_mode_alone_makes_a_new_version() {
        let ab: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"22")];
        let v1 = version(ab, Some(0o644), None);
        let recorded = version(&[("a", b"1")], Some(0o644), Some(b"r"));
        let mixed_modes = version(ab, None, None);
        check(&[
            Case {
                what: "a record that changed alone: a new version, nothing renamed",
                old: Some(&recorded),
                linked: &["a"],
                files: &[("a", b"1")],
                record: Some(b"s"),
                want: "write same=a bytes=1",
                ..NONE
            },
            Case {
                what: "the same record: nothing",
                old: Some(&recorded),
                linked: &["a"],
                files: &[("a", b"1")],
                record: Some(b"r"),
                want: "unchanged",
                ..NONE
            },
            Case {
                what: "no record asked for: the old one is no change",
                old: Some(&recorded),
                linked: &["a"],
                files: &[("a", b"1")],
                want: "unchanged",
                ..NONE
            },
            Case {
                what: "a record over a version without one: a new version",
                old: Some(&v1),
                linked: &["a", "b"],
                files: ab,
                record: Some(b"r"),
                want: "write same=a,b bytes=3",
                ..NONE
            },
            Case {
                what: "another file mode: a new version, nothing renamed",
                old: Some(&v1),
                linked: &["a", "b"],
                files: ab,
                mode: 0o440,
                want: "write same=a,b bytes=3",
                ..NONE
            },
            Case {
                what: "files whose modes differ on disk: a new version",
                old: Some(&mixed_modes),
                linked: &["a", "b"],
                files: ab,
                want: "write same=a,b bytes=3",
                ..NONE
            },
        ]);
    }

    #[test]
    fn a_plan_reports_what_it_does() {
        let asked = files(&[("a", b"1"), ("c", b"333")]);
        let old = version(&[("a", b"1"), ("b", b"22")], Some(0o644), None);
        let disk = OnDisk {
            old: Some(&old),
            linked: ["a"].into_iter().collect(),
            resync: false,
        };
        let want = Wanted {
            files: &asked,
            record: None,
            file_mode: 0o644,
        };
        let Plan::Write(steps) = plan(&disk, &want) else {
            panic!("unchanged")
        };
        assert_eq!(
            steps.into_outcome("..v".to_string()),
            Outcome::Written {
                version: "..v".to_string(),
                added: vec!["c".to_string()],
                changed: vec![],
                removed: vec!["b".to_string()],
                bytes: 4,
            }
        );
    }
}
