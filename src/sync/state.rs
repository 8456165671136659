//! Every watched object's last accepted files, and the snapshot made of them. Pure: no
//! I/O, no logging, no clock.
//!
//! A new version of an object is judged on its own: its content decoded, every key valid,
//! no key that another object's accepted files already hold, and (unless
//! `-allow-empty-resources`) no key that carried Listener or Cluster resources left with
//! none or gone. Refused, the object keeps its last accepted files and every other object
//! goes on updating; the snapshot is always the merge of the accepted files. It is written
//! with a record of which object each key came from, so that a restarted loader starts
//! from what is on disk ([`State::restore`]).

use crate::config::ObjectRef;
use crate::kube::Refused;
use crate::snapshot::{self, Files};
use crate::{bytes, xds};
use std::sync::Arc;

/// Content refused: the object to blame, and why (with the key when one is to blame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub object: ObjectRef,
    pub refused: Refused,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: refused: {}", self.object, self.refused)
    }
}

/// What became of a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// The version was judged before: nothing new.
    Same,
    /// Its files are the object's accepted files now.
    Accepted,
    /// Refused: the object keeps its last accepted files.
    Refused(Refusal),
}

/// The objects, their accepted files and the versions last judged.
#[derive(Debug)]
pub struct State {
    objects: Vec<ObjectRef>,
    accepted: Vec<Option<Arc<Files>>>,
    versions: Vec<Option<String>>,
    allow_empty: bool,
}

impl State {
    pub fn new(objects: Vec<ObjectRef>, allow_empty_resources: bool) -> State {
        let n = objects.len();
        State {
            objects,
            accepted: vec![None; n],
            versions: vec![None; n],
            allow_empty: allow_empty_resources,
        }
    }

    pub fn object(&self, idx: usize) -> &ObjectRef {
        &self.objects[idx]
    }

    /// The objects followed, for the log: `configmap ns/a,secret ns/b`.
    pub fn names(&self) -> String {
        let names: Vec<String> = self.objects.iter().map(ToString::to_string).collect();
        names.join(",")
    }

    /// Whether object `idx` has accepted files (seen, or restored from disk).
    pub fn has_files(&self, idx: usize) -> bool {
        self.accepted[idx].is_some()
    }

    /// Takes the accepted files of the objects named in `record` from `files`, the snapshot
    /// on disk. An object that is no longer followed is left out (its keys go at the next
    /// write). A record that does not match the files (a key it names is missing, or a key
    /// of the files has no object) restores nothing. Returns whether every object followed
    /// now has files: then the snapshot on disk is complete.
    pub fn restore(&mut self, files: Files, record: &[u8]) -> bool {
        let Some(owners) = parse_record(record) else {
            return false;
        };
        let named: usize = owners.iter().map(|(_, keys)| keys.len()).sum();
        if named != files.len() {
            return false;
        }
        let names: Vec<String> = self.objects.iter().map(ToString::to_string).collect();
        let mut restored: Vec<Option<Files>> = vec![None; self.objects.len()];
        for (obj, _) in &owners {
            if let Some(i) = names.iter().position(|n| n == obj) {
                restored[i] = Some(Files::new());
            }
        }
        for (key, bytes) in files {
            let Some((obj, _)) = owners.iter().find(|(_, keys)| keys.contains(&key.as_str()))
            else {
                return false;
            };
            if let Some(mine) = names
                .iter()
                .position(|n| n == obj)
                .and_then(|i| restored[i].as_mut())
            {
                mine.insert(key, bytes);
            }
        }
        for (slot, files) in self.accepted.iter_mut().zip(restored) {
            *slot = files.map(Arc::new);
        }
        self.accepted.iter().all(Option::is_some)
    }

    /// Judges version `version` of object `idx`, with its decoded content.
    pub fn judge(&mut self, idx: usize, version: &str, files: Result<Files, Refused>) -> Judged {
        if self.versions[idx].as_deref() == Some(version) {
            return Judged::Same;
        }
        self.versions[idx] = Some(version.to_string());
        match self.check(idx, files) {
            Ok(files) => {
                self.accepted[idx] = Some(Arc::new(files));
                Judged::Accepted
            }
            Err(refused) => Judged::Refused(Refusal {
                object: self.objects[idx].clone(),
                refused,
            }),
        }
    }

    fn check(&self, idx: usize, files: Result<Files, Refused>) -> Result<Files, Refused> {
        let files = files?;
        for key in files.keys() {
            snapshot::validate_key(key).map_err(|e| Refused::new(Some(key), e))?;
        }
        for (j, other) in self.accepted.iter().enumerate() {
            let Some(other) = other.as_ref().filter(|_| j != idx) else {
                continue;
            };
            if let Some(key) = files.keys().find(|k| other.contains_key(*k)) {
                let why = format!(
                    "key {key:?} is also in {}, which had it first",
                    self.objects[j]
                );
                return Err(Refused::new(Some(key), why));
            }
        }
        if let (false, Some(last)) = (self.allow_empty, &self.accepted[idx]) {
            for (key, old) in last.iter() {
                if !xds::carries_listeners_or_clusters(old) {
                    continue;
                }
                let why = match files.get(key) {
                    None => "it carried Listener or Cluster resources and would be gone, which makes Envoy remove them, or refuse to start",
                    Some(new)
                        if !bytes::same_bytes(old, new)
                            && !xds::carries_listeners_or_clusters(new) =>
                    {
                        "it carried Listener or Cluster resources and would carry none, which makes Envoy remove them all"
                    }
                    Some(_) => continue,
                };
                let why = format!("key {key:?}: {why} (use -allow-empty-resources to allow it)");
                return Err(Refused::new(Some(key), why));
            }
        }
        Ok(files)
    }

    /// The snapshot and its record, once every object has files: one object's files are
    /// shared as they are, several objects' merged (their keys never collide: each was
    /// checked against the others when accepted).
    pub fn snapshot(&self) -> Option<(Arc<Files>, Vec<u8>)> {
        let all: Vec<&Arc<Files>> = self
            .accepted
            .iter()
            .map(Option::as_ref)
            .collect::<Option<_>>()?;
        let merged = match all.as_slice() {
            [one] => Arc::clone(one),
            _ => {
                let mut out = Files::new();
                for files in &all {
                    out.extend(files.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Arc::new(out)
            }
        };
        Some((merged, self.record()))
    }

    /// One line per object: its name, then each of its keys, separated by tabs (neither a
    /// name nor a key can hold one).
    fn record(&self) -> Vec<u8> {
        let mut out = String::new();
        for (obj, files) in self.objects.iter().zip(&self.accepted) {
            out.push_str(&obj.to_string());
            for key in files.iter().flat_map(|f| f.keys()) {
                out.push('\t');
                out.push_str(key);
            }
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// A record's objects and their keys; `None` when it is not one (every key valid, every
/// object once).
fn parse_record(record: &[u8]) -> Option<Vec<(&str, Vec<&str>)>> {
    let text = std::str::from_utf8(record).ok()?;
    let mut owners: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let obj = fields.next().filter(|o| !o.is_empty())?;
        let keys: Vec<&str> = fields.collect();
        if keys.iter().any(|k| snapshot::validate_key(k).is_err())
            || owners.iter().any(|(o, _)| *o == obj)
        {
            return None;
        }
        owners.push((obj, keys));
    }
    Some(owners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;

    fn obj(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::ConfigMap,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    const LDS: &str = "version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: l\n";
    const CDS: &str =
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n";

    fn refused(j: Judged) -> Refusal {
        match j {
            Judged::Refused(r) => r,
            other => panic!("want a refusal, got {other:?}"),
        }
    }

    #[test]
    fn waits_for_every_object_and_repeats_are_no_news() {
        let mut s = State::new(vec![obj("a"), obj("b")], false);
        assert_eq!(s.judge(0, "1", Ok(files(&[("k", "v")]))), Judged::Accepted);
        assert!(s.snapshot().is_none(), "b not seen yet");
        assert_eq!(s.judge(0, "1", Ok(files(&[("k", "other")]))), Judged::Same);
        assert_eq!(s.judge(1, "2", Ok(files(&[("j", "w")]))), Judged::Accepted);
        let (merged, record) = s.snapshot().unwrap();
        assert_eq!(*merged, files(&[("k", "v"), ("j", "w")]));
        assert_eq!(
            String::from_utf8(record).unwrap(),
            "configmap ns/a\tk\nconfigmap ns/b\tj\n"
        );
    }

    #[test]
    fn one_object_is_shared_as_it_is() {
        let mut s = State::new(vec![obj("a")], false);
        s.judge(0, "1", Ok(files(&[("k", "v")])));
        let (one, _) = s.snapshot().unwrap();
        let (again, _) = s.snapshot().unwrap();
        assert!(Arc::ptr_eq(&one, &again), "not copied");
    }

    #[test]
    fn a_refused_object_keeps_its_files_and_freezes_no_other() {
        let mut s = State::new(vec![obj("a"), obj("b")], false);
        s.judge(0, "1", Ok(files(&[("lds.yaml", LDS)])));
        s.judge(1, "1", Ok(files(&[("cds.yaml", CDS)])));
        // a emptied: refused, a keeps its listener
        let r = refused(s.judge(0, "2", Ok(files(&[("lds.yaml", "resources: []\n")]))));
        assert_eq!(r.object, obj("a"));
        assert_eq!(r.refused.key.as_deref(), Some("lds.yaml"));
        assert!(
            r.to_string()
                .starts_with("configmap ns/a: refused: key \"lds.yaml\": it carried Listener"),
            "{r}"
        );
        // b changes: accepted, and the snapshot holds a's last accepted files
        let cds2 = CDS.replace("name: c", "name: c2");
        assert_eq!(
            s.judge(1, "3", Ok(files(&[("cds.yaml", &cds2)]))),
            Judged::Accepted
        );
        let (merged, _) = s.snapshot().unwrap();
        assert_eq!(*merged, files(&[("lds.yaml", LDS), ("cds.yaml", &cds2)]));
    }

    #[test]
    fn refusals_name_the_object_and_the_key() {
        let mut s = State::new(vec![obj("a"), obj("b")], false);
        s.judge(0, "1", Ok(files(&[("x", "1")])));
        let table: &[(Result<Files, Refused>, Option<&str>, &str)] = &[
            (
                Ok(files(&[("x", "2")])),
                Some("x"),
                "key \"x\" is also in configmap ns/a, which had it first",
            ),
            (
                Ok(files(&[("../up", "2")])),
                Some("../up"),
                "must consist of",
            ),
            (
                Ok(files(&[("..data", "2")])),
                Some("..data"),
                "must not start with '..'",
            ),
            (
                Err(Refused::new(
                    Some("d"),
                    "key \"d\" appears twice in data".into(),
                )),
                Some("d"),
                "appears twice",
            ),
            (
                Err(Refused::new(None, "data is not an object".into())),
                None,
                "not an object",
            ),
        ];
        for (i, (content, key, why)) in table.iter().enumerate() {
            let r = refused(s.judge(1, &format!("v{i}"), content.clone()));
            assert_eq!(r.object, obj("b"), "row {i}");
            assert_eq!(r.refused.key.as_deref(), *key, "row {i}");
            assert!(r.refused.why.contains(why), "row {i}: {r}");
        }
        assert!(s.snapshot().is_none(), "b never accepted");
    }

    #[test]
    fn the_guard_covers_emptied_and_removed_keys_unless_allowed() {
        let last = files(&[("lds.yaml", LDS), ("cds.yaml", CDS), ("other", "x")]);
        let table: &[(&[(&str, &str)], Option<&str>)] = &[
            (&[("lds.yaml", LDS), ("cds.yaml", CDS)], None), // "other" carried nothing
            (&[("lds.yaml", "version_info: \"2\"\nresources: []\n"), ("cds.yaml", CDS)], Some("lds.yaml")),
            (&[("lds.yaml", LDS), ("cds.yaml", "resources:\n")], Some("cds.yaml")),
            (&[("lds.yaml", LDS)], Some("cds.yaml")), // removed
            (&[("cds.yaml", CDS), ("other", "y")], Some("lds.yaml")), // removed
            (&[("lds.yaml", "resources: []\n# - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n"), ("cds.yaml", CDS)], Some("lds.yaml")),
            (&[("lds.yaml", "{\"resources\":[{\"@type\":\"type.googleapis.com/envoy.config.listener.v3.Listener\",\"name\":\"l#1\"}]}"), ("cds.yaml", CDS)], None),
        ];
        for allow in [false, true] {
            for (i, (next, want)) in table.iter().enumerate() {
                let mut s = State::new(vec![obj("a")], allow);
                s.judge(0, "1", Ok(last.clone()));
                let j = s.judge(0, "2", Ok(files(next)));
                match (want, allow) {
                    (Some(key), false) => {
                        let r = refused(j);
                        assert_eq!(r.refused.key.as_deref(), Some(*key), "row {i}");
                        assert!(
                            r.refused.why.contains("-allow-empty-resources"),
                            "row {i}: {r}"
                        );
                    }
                    _ => assert_eq!(j, Judged::Accepted, "row {i}, allow {allow}"),
                }
            }
        }
    }

    #[test]
    fn restore_takes_each_objects_keys_from_disk() {
        let disk = files(&[("k", "1"), ("j", "2"), ("gone", "3")]);
        let record = b"configmap ns/a\tk\nconfigmap ns/b\tj\nconfigmap ns/old\tgone\n";
        // both followed objects on disk: complete; an object no longer followed is left out
        let mut s = State::new(vec![obj("a"), obj("b")], false);
        assert!(s.restore(disk.clone(), record));
        let (merged, record_now) = s.snapshot().unwrap();
        assert_eq!(*merged, files(&[("k", "1"), ("j", "2")]));
        assert_eq!(record_now, b"configmap ns/a\tk\nconfigmap ns/b\tj\n");
        // a new object: incomplete until it is seen
        let mut s = State::new(vec![obj("a"), obj("new")], false);
        assert!(!s.restore(disk.clone(), record));
        assert!(s.has_files(0) && !s.has_files(1));
        // an object with no keys is on record too
        let mut s = State::new(vec![obj("e")], false);
        assert!(s.restore(Files::new(), b"configmap ns/e\n"));
        // records that do not match the files restore nothing
        for bad in [
            &b"configmap ns/a\tk\nconfigmap ns/b\tj\n"[..], // "gone" has no object
            b"configmap ns/a\tk\tmissing\nconfigmap ns/b\tj\nconfigmap ns/old\tgone\n",
            b"configmap ns/a\tk\nconfigmap ns/a\tj\tgone\n",
            b"\xff\n",
            b"configmap ns/a\t../k\n",
        ] {
            let mut s = State::new(vec![obj("a"), obj("b")], false);
            assert!(
                !s.restore(disk.clone(), bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(!s.has_files(0) && !s.has_files(1));
        }
    }

    #[test]
    fn restored_files_are_guarded_like_accepted_ones() {
        let disk = files(&[("lds.yaml", LDS)]);
        let mut s = State::new(vec![obj("a")], false);
        assert!(s.restore(disk, b"configmap ns/a\tlds.yaml\n"));
        let r = refused(s.judge(0, "9", Ok(files(&[("other", "x")]))));
        assert_eq!(r.refused.key.as_deref(), Some("lds.yaml"));
    }
}
