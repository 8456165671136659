//! Every watched object's last accepted files, and the snapshot made of them. Pure: no
//! I/O, no logging, no clock.
//!
//! It holds two kinds of object. The NAMED ones are fixed at start and keep their last
//! files when they are deleted. The MEMBERS of label selections come and go: a source is
//! one selector in one namespace (or in all), and a member is held while at least one
//! source selects it; when the last one lets it go (a DELETED event, or a complete list
//! without it) it leaves and its keys go with it.
//!
//! A new version of an object is judged on its own: its content decoded, every key valid,
//! no key that another object's accepted files already hold (the incumbent wins; the
//! newcomer is refused as a whole), and (unless `-allow-empty-resources`) no key that
//! carried Listener or Cluster resources left with none or gone. The same guard holds for
//! a member that leaves: refused, it stays with its files. Refused, an object keeps its
//! last accepted files and every other object goes on updating. A version refused only
//! because another object held one of its keys waits: once that key is free it is judged
//! again, so a collision never outlives its cause. Objects seen together (one list) are
//! judged oldest first: creationTimestamp, then namespace, then name.
//!
//! Invariants: the snapshot is always the merge of the accepted files, no two objects'
//! accepted files share a key, and the snapshot (its `Arc` and its record) changes only
//! when some accepted files do, so a relist that finds the same versions changes nothing.
//! It is written with a record of which object each key came from, so that a restarted
//! loader starts from what is on disk ([`State::restore`]). It never reads the clock or
//! the disk, never logs, and never decides when to list or write: its callers do.

use crate::config::{Kind, ObjectRef};
use crate::kube::{Member, Refused};
use crate::snapshot::{self, Files};
use crate::{bytes, xds};
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Content refused: the object to blame, and why (with the key when one is to blame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub object: ObjectRef,
    pub refused: Refused,
    /// For a collision: the object that holds the key (the incumbent).
    pub held_by: Option<ObjectRef>,
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

/// The named objects and the members, their accepted files and the versions last judged.
#[derive(Debug)]
pub struct State {
    /// The named objects, in the order of the command line (their index is `idx`).
    named: Vec<ObjectRef>,
    /// Every object held: the named ones, and the members while a source selects them
    /// (or while the guard keeps them).
    held: BTreeMap<ObjectRef, Held>,
    /// Which object's accepted files hold each key.
    owners: BTreeMap<String, ObjectRef>,
    /// Per source: its first list is done; the members its current list has named.
    lists: Vec<Listing>,
    allow_empty: bool,
    /// The snapshot restored from disk was complete: ready before the sources list.
    from_disk: bool,
    /// The snapshot and its record, made once per change of the accepted files.
    made: OnceCell<(Arc<Files>, Vec<u8>)>,
}

#[derive(Debug)]
struct Held {
    accepted: Option<Arc<Files>>,
    version: Option<String>,
    /// The content of the latest version, while it waits for a key another object holds.
    waiting: Option<Files>,
    /// `None` for a named object.
    member: Option<Membership>,
}

#[derive(Debug, Default)]
struct Membership {
    sources: BTreeSet<usize>,
    /// creationTimestamp as the server wrote it (empty when unknown: sorts oldest).
    created: String,
    /// Taken from the disk and not listed by any source yet.
    restored: bool,
}

#[derive(Debug, Default)]
struct Listing {
    done: bool,
    seen: BTreeSet<ObjectRef>,
}

/// Why a check refused content: a key held by another object (which may clear), or
/// anything else (which only a new version clears).
enum Verdict {
    Taken(Refused, ObjectRef),
    Other(Refused),
}

impl State {
    /// `named`: the objects of the command line; `sources`: how many selections (each
    /// one selector in one namespace, or in all), numbered from 0.
    pub fn new(named: Vec<ObjectRef>, sources: usize, allow_empty_resources: bool) -> State {
        let held = named.iter().map(|o| (o.clone(), Held::named())).collect();
        State {
            named,
            held,
            owners: BTreeMap::new(),
            lists: (0..sources).map(|_| Listing::default()).collect(),
            allow_empty: allow_empty_resources,
            from_disk: false,
            made: OnceCell::new(),
        }
    }

    pub fn object(&self, idx: usize) -> &ObjectRef {
        &self.named[idx]
    }

    /// What the snapshot comes from, for the log: `configmap ns/a,secret ns/b`, and with
    /// selections `+N selected`.
    pub fn names(&self) -> String {
        let mut names: Vec<String> = self.named.iter().map(ToString::to_string).collect();
        if !self.lists.is_empty() {
            let members = self
                .members()
                .filter(|(_, m)| !m.sources.is_empty())
                .count();
            names.push(format!("+{members} selected"));
        }
        names.join(",")
    }

    /// How many objects source `source` selects now.
    pub fn selected_by(&self, source: usize) -> usize {
        self.members()
            .filter(|(_, m)| m.sources.contains(&source))
            .count()
    }

    /// The object whose accepted files hold `key`.
    pub fn owner(&self, key: &str) -> Option<&ObjectRef> {
        self.owners.get(key)
    }

    /// Whether named object `idx` has accepted files (seen, or restored from disk).
    pub fn has_files(&self, idx: usize) -> bool {
        self.held[&self.named[idx]].accepted.is_some()
    }

    /// Takes the accepted files of the objects named in `record` from `files`, the snapshot
    /// on disk. A recorded object that is not named is, when there are sources, restored
    /// as a member of no source yet (it leaves once every source has listed without it),
    /// and without sources left out (its keys go at the next write). A record that does
    /// not match the files (a key it names is missing, or a key of the files has no
    /// object) restores nothing. Returns whether every named object now has files: then
    /// the snapshot on disk counts as complete, and is ready before the sources list (the
    /// members on disk stand for the selections until their lists come).
    pub fn restore(&mut self, mut files: Files, record: &[u8]) -> bool {
        let Some(owners) = parse_record(record) else {
            return false;
        };
        // Every key of the files on record, once: the record maps the files one to one.
        let keys: BTreeSet<&str> = owners.iter().flat_map(|(_, k)| k.iter().copied()).collect();
        let recorded: usize = owners.iter().map(|(_, k)| k.len()).sum();
        if recorded != keys.len()
            || keys.len() != files.len()
            || !keys.iter().all(|k| files.contains_key(*k))
        {
            return false;
        }
        for (name, keys) in owners {
            let object = match self.named.iter().find(|o| o.to_string() == name) {
                Some(o) => o.clone(),
                None if self.lists.is_empty() => continue,
                None => match parse_object(name) {
                    Some(o) => o,
                    None => continue,
                },
            };
            let mine: Files = keys.iter().filter_map(|k| files.remove_entry(*k)).collect();
            let held = self.held.entry(object.clone()).or_insert_with(|| Held {
                member: Some(Membership {
                    restored: true,
                    ..Membership::default()
                }),
                ..Held::named()
            });
            held.accepted = Some(Arc::new(mine));
            self.owners
                .extend(keys.iter().map(|k| (k.to_string(), object.clone())));
        }
        self.made = OnceCell::new();
        self.from_disk = (0..self.named.len()).all(|i| self.has_files(i));
        self.from_disk
    }

    /// Judges version `version` of named object `idx`, with its decoded content.
    pub fn judge(&mut self, idx: usize, version: &str, files: Result<Files, Refused>) -> Judged {
        let object = self.named[idx].clone();
        let judged = self.judge_version(&object, version, files);
        self.rejudge();
        judged
    }

    /// Judges what source `source` listed (one page, or every page of a list): the members
    /// oldest first (creationTimestamp, namespace, name), so that among objects seen
    /// together the older one gets a contested key. The list ends with
    /// [`listed`](State::listed). Returns the refusals, in that order.
    pub fn judge_page(&mut self, source: usize, mut members: Vec<Member>) -> Vec<Refusal> {
        members.sort_by(|a, b| {
            (&a.created, &a.object.namespace, &a.object.name).cmp(&(
                &b.created,
                &b.object.namespace,
                &b.object.name,
            ))
        });
        let mut refusals = Vec::new();
        for member in members {
            self.lists[source].seen.insert(member.object.clone());
            if let Judged::Refused(r) = self.judge_selected(source, member) {
                refusals.push(r);
            }
        }
        self.rejudge();
        refusals
    }

    /// Source `source` has finished a list: its members that no page of that list held
    /// leave (see [`leave`](State::leave)); once every source has finished its first list,
    /// so do the members restored from disk that no source listed. Returns the refused
    /// leavings.
    pub fn listed(&mut self, source: usize) -> Vec<Refusal> {
        let seen = std::mem::take(&mut self.lists[source].seen);
        self.lists[source].done = true;
        let gone: Vec<ObjectRef> = self
            .members()
            .filter(|(o, m)| m.sources.contains(&source) && !seen.contains(o))
            .map(|(o, _)| o.clone())
            .collect();
        let mut refusals: Vec<Refusal> = gone
            .iter()
            .filter_map(|o| self.unselect(source, o))
            .collect();
        if self.lists.iter().all(|l| l.done) {
            let stale: Vec<ObjectRef> = self
                .members()
                .filter(|(_, m)| m.restored && m.sources.is_empty())
                .map(|(o, _)| o.clone())
                .collect();
            refusals.extend(stale.iter().filter_map(|o| self.depart(o).err()));
        }
        self.rejudge();
        refusals
    }

    /// Judges a member as a watch of source `source` delivers it (ADDED, MODIFIED).
    pub fn judge_member(&mut self, source: usize, member: Member) -> Judged {
        let judged = self.judge_selected(source, member);
        self.rejudge();
        judged
    }

    /// Source `source` no longer selects `object` (DELETED: deleted, or no longer
    /// matching). The object leaves once no source selects it: its keys go, unless one of
    /// its files carried Listener or Cluster resources (and not `-allow-empty-resources`):
    /// then the leaving is refused and its files stay. A named object never leaves.
    pub fn leave(&mut self, source: usize, object: &ObjectRef) -> Option<Refusal> {
        let refusal = self.unselect(source, object);
        self.rejudge();
        refusal
    }

    /// The snapshot and its record, once every named object has files and every source
    /// has finished its first list (or the snapshot on disk was complete): one object's
    /// files are shared as they are, several objects' merged (their keys never collide:
    /// each was checked against the others when accepted). The same until some accepted
    /// files change.
    pub fn snapshot(&self) -> Option<(Arc<Files>, Vec<u8>)> {
        let named_ready = (0..self.named.len()).all(|i| self.has_files(i));
        if !named_ready || !(self.from_disk || self.lists.iter().all(|l| l.done)) {
            return None;
        }
        let (files, record) = self.made.get_or_init(|| {
            let all: Vec<&Arc<Files>> = self.recorded().filter_map(|(_, f)| f).collect();
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
            (merged, self.record())
        });
        Some((Arc::clone(files), record.clone()))
    }

    fn members(&self) -> impl Iterator<Item = (&ObjectRef, &Membership)> {
        self.held
            .iter()
            .filter_map(|(o, h)| h.member.as_ref().map(|m| (o, m)))
    }

    /// The objects on record, in order: the named ones as on the command line, then the
    /// members that have accepted files.
    fn recorded(&self) -> impl Iterator<Item = (&ObjectRef, Option<&Arc<Files>>)> {
        let named = self
            .named
            .iter()
            .map(|o| (o, self.held[o].accepted.as_ref()));
        let members = self
            .held
            .iter()
            .filter(|(_, h)| h.member.is_some() && h.accepted.is_some())
            .map(|(o, h)| (o, h.accepted.as_ref()));
        named.chain(members)
    }

    /// One line per object: its name, then each of its keys, separated by tabs (neither a
    /// name nor a key can hold one).
    fn record(&self) -> Vec<u8> {
        let mut out = String::new();
        for (obj, files) in self.recorded() {
            out.push_str(&obj.to_string());
            for key in files.iter().flat_map(|f| f.keys()) {
                out.push('\t');
                out.push_str(key);
            }
            out.push('\n');
        }
        out.into_bytes()
    }

    /// A member of source `source` judged; a named object selected too is judged as the
    /// named object (its files stay when the selection lets it go).
    fn judge_selected(&mut self, source: usize, member: Member) -> Judged {
        let Member {
            object,
            created,
            content,
        } = member;
        let held = self.held.entry(object.clone()).or_insert_with(|| Held {
            member: Some(Membership::default()),
            ..Held::named()
        });
        if let Some(m) = held.member.as_mut() {
            m.sources.insert(source);
            m.created = created;
            m.restored = false;
        }
        self.judge_version(&object, &content.resource_version, content.files)
    }

    fn judge_version(
        &mut self,
        object: &ObjectRef,
        version: &str,
        files: Result<Files, Refused>,
    ) -> Judged {
        let held = self.held.get_mut(object).expect("judged objects are held");
        if held.version.as_deref() == Some(version) {
            return Judged::Same;
        }
        held.version = Some(version.to_string());
        held.waiting = None;
        let (refused, held_by) = match files {
            Err(refused) => (refused, None),
            Ok(files) => match self.check(object, &files) {
                Ok(()) => {
                    self.accept(object, files);
                    return Judged::Accepted;
                }
                Err(Verdict::Other(refused)) => (refused, None),
                Err(Verdict::Taken(refused, holder)) => {
                    self.held.get_mut(object).expect("held").waiting = Some(files);
                    (refused, Some(holder))
                }
            },
        };
        Judged::Refused(Refusal {
            object: object.clone(),
            refused,
            held_by,
        })
    }

    fn check(&self, object: &ObjectRef, files: &Files) -> Result<(), Verdict> {
        for key in files.keys() {
            snapshot::validate_key(key).map_err(|e| Verdict::Other(Refused::new(Some(key), e)))?;
        }
        let taken = files
            .keys()
            .find_map(|k| self.owners.get(k).filter(|o| *o != object).map(|o| (k, o)));
        if let Some((key, other)) = taken {
            let why = format!("key {key:?} is also in {other}, which had it first");
            return Err(Verdict::Taken(Refused::new(Some(key), why), other.clone()));
        }
        match &self.held[object].accepted {
            Some(last) if !self.allow_empty => guard(last, Some(files)).map_err(Verdict::Other),
            _ => Ok(()),
        }
    }

    fn accept(&mut self, object: &ObjectRef, files: Files) {
        let held = self
            .held
            .get_mut(object)
            .expect("accepted objects are held");
        for key in held.accepted.iter().flat_map(|f| f.keys()) {
            self.owners.remove(key);
        }
        self.owners
            .extend(files.keys().map(|k| (k.clone(), object.clone())));
        held.accepted = Some(Arc::new(files));
        held.waiting = None;
        self.made = OnceCell::new();
    }

    /// Source `source` lets `object` go; it departs when no source holds it any more.
    fn unselect(&mut self, source: usize, object: &ObjectRef) -> Option<Refusal> {
        let m = self.held.get_mut(object)?.member.as_mut()?;
        if !m.sources.remove(&source) || !m.sources.is_empty() {
            return None;
        }
        self.depart(object).err()
    }

    /// A member leaves with its keys, unless the guard keeps it (then with no source, its
    /// waiting content dropped: it is not selected).
    fn depart(&mut self, object: &ObjectRef) -> Result<(), Refusal> {
        let held = self
            .held
            .get_mut(object)
            .expect("departing objects are held");
        if let (false, Some(last)) = (self.allow_empty, &held.accepted) {
            if let Err(refused) = guard(last, None) {
                held.waiting = None;
                if let Some(m) = held.member.as_mut() {
                    m.restored = false;
                }
                return Err(Refusal {
                    object: object.clone(),
                    refused,
                    held_by: None,
                });
            }
        }
        let held = self.held.remove(object).expect("held");
        if let Some(files) = held.accepted {
            for key in files.keys() {
                self.owners.remove(key);
            }
            self.made = OnceCell::new();
        }
        Ok(())
    }

    /// Judges again every version waiting for a key, until none is accepted: named objects
    /// first, then members oldest first. A waiting version refused again stays refused
    /// (it was reported when it came).
    fn rejudge(&mut self) {
        loop {
            let mut waiting: Vec<(usize, &str, &str, &str, &ObjectRef)> = self
                .held
                .iter()
                .filter(|(_, h)| h.waiting.is_some())
                .map(|(o, h)| {
                    let named = self.named.iter().position(|n| n == o);
                    let created = h.member.as_ref().map_or("", |m| m.created.as_str());
                    (
                        named.unwrap_or(usize::MAX),
                        created,
                        &*o.namespace,
                        &*o.name,
                        o,
                    )
                })
                .collect();
            waiting.sort();
            let order: Vec<ObjectRef> = waiting.into_iter().map(|w| w.4.clone()).collect();
            let mut accepted = false;
            for object in order {
                let files = self.held.get_mut(&object).and_then(|h| h.waiting.take());
                let Some(files) = files else { continue };
                match self.check(&object, &files) {
                    Ok(()) => {
                        self.accept(&object, files);
                        accepted = true;
                    }
                    Err(Verdict::Taken(..)) => {
                        self.held.get_mut(&object).expect("held").waiting = Some(files);
                    }
                    Err(Verdict::Other(_)) => {}
                }
            }
            if !accepted {
                return;
            }
        }
    }
}

impl Held {
    fn named() -> Held {
        Held {
            accepted: None,
            version: None,
            waiting: None,
            member: None,
        }
    }
}

/// The empty-resources guard: no key of `last` that carried Listener or Cluster
/// resources may be gone from `next` (`None`: every key goes) or carry none there.
fn guard(last: &Files, next: Option<&Files>) -> Result<(), Refused> {
    for (key, old) in last.iter() {
        let new = next.map(|n| n.get(key));
        // An unchanged file is compared, not read for its types (a large one costs a scan).
        if new.flatten().is_some_and(|new| bytes::same_bytes(old, new))
            || !xds::carries_listeners_or_clusters(old)
        {
            continue;
        }
        let why = match new {
            None => "it carried Listener or Cluster resources and would be gone as its object leaves the selection, which makes Envoy remove them, or refuse to start",
            Some(None) => "it carried Listener or Cluster resources and would be gone, which makes Envoy remove them, or refuse to start",
            Some(Some(new)) if !xds::carries_listeners_or_clusters(new) => {
                "it carried Listener or Cluster resources and would carry none, which makes Envoy remove them all"
            }
            Some(Some(_)) => continue,
        };
        let why = format!("key {key:?}: {why} (use -allow-empty-resources to allow it)");
        return Err(Refused::new(Some(key), why));
    }
    Ok(())
}

/// An object as its `Display` names it: `configmap ns/name`.
fn parse_object(text: &str) -> Option<ObjectRef> {
    let (kind, rest) = text.split_once(' ')?;
    let kind = [Kind::ConfigMap, Kind::Secret]
        .into_iter()
        .find(|k| k.flag() == kind)?;
    let (namespace, name) = rest.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && !s.contains(['/', ' ']);
    (ok(namespace) && ok(name)).then(|| ObjectRef {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// A record's objects and their keys; `None` when it is not one (every key valid, every
/// object once).
pub(super) fn parse_record(record: &[u8]) -> Option<Vec<(&str, Vec<&str>)>> {
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
        let mut s = State::new(vec![obj("a"), obj("b")], 0, false);
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
        let mut s = State::new(vec![obj("a")], 0, false);
        s.judge(0, "1", Ok(files(&[("k", "v")])));
        let (one, _) = s.snapshot().unwrap();
        let (again, _) = s.snapshot().unwrap();
        assert!(Arc::ptr_eq(&one, &again), "not copied");
    }

    #[test]
    fn a_refused_object_keeps_its_files_and_freezes_no_other() {
        let mut s = State::new(vec![obj("a"), obj("b")], 0, false);
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
        let mut s = State::new(vec![obj("a"), obj("b")], 0, false);
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
                let mut s = State::new(vec![obj("a")], 0, allow);
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
        let mut s = State::new(vec![obj("a"), obj("b")], 0, false);
        assert!(s.restore(disk.clone(), record));
        let (merged, record_now) = s.snapshot().unwrap();
        assert_eq!(*merged, files(&[("k", "1"), ("j", "2")]));
        assert_eq!(record_now, b"configmap ns/a\tk\nconfigmap ns/b\tj\n");
        // a new object: incomplete until it is seen
        let mut s = State::new(vec![obj("a"), obj("new")], 0, false);
        assert!(!s.restore(disk.clone(), record));
        assert!(s.has_files(0) && !s.has_files(1));
        // an object with no keys is on record too
        let mut s = State::new(vec![obj("e")], 0, false);
        assert!(s.restore(Files::new(), b"configmap ns/e\n"));
        // records that do not match the files restore nothing
        for bad in [
            &b"configmap ns/a\tk\nconfigmap ns/b\tj\n"[..], // "gone" has no object
            b"configmap ns/a\tk\tmissing\nconfigmap ns/b\tj\nconfigmap ns/old\tgone\n",
            b"configmap ns/a\tk\nconfigmap ns/a\tj\tgone\n",
            b"\xff\n",
            b"configmap ns/a\t../k\n",
        ] {
            let mut s = State::new(vec![obj("a"), obj("b")], 0, false);
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
        let mut s = State::new(vec![obj("a")], 0, false);
        assert!(s.restore(disk, b"configmap ns/a\tlds.yaml\n"));
        let r = refused(s.judge(0, "9", Ok(files(&[("other", "x")]))));
        assert_eq!(r.refused.key.as_deref(), Some("lds.yaml"));
    }

    // Members of selections.

    fn cm(ns: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::ConfigMap,
            namespace: ns.into(),
            name: name.into(),
        }
    }

    /// Member `name` of namespace `ns`, created at day `day` of 2024, at version `version`.
    fn member(ns: &str, name: &str, day: u8, version: &str, pairs: &[(&str, &str)]) -> Member {
        Member {
            object: cm(ns, name),
            created: format!("2024-01-{day:02}T00:00:00Z"),
            content: crate::kube::Object {
                resource_version: version.into(),
                files: Ok(files(pairs)),
            },
        }
    }

    fn merged(s: &State) -> Files {
        (*s.snapshot().expect("ready").0).clone()
    }

    fn record_of(s: &State) -> String {
        String::from_utf8(s.snapshot().expect("ready").1).unwrap()
    }

    #[test]
    fn members_join_by_list_and_watch_and_leave_by_watch_and_relist() {
        let mut s = State::new(vec![], 1, false);
        let listed = vec![
            member("ns", "b", 1, "1", &[("j", "2")]),
            member("ns", "a", 2, "1", &[("k", "1")]),
        ];
        assert_eq!(s.judge_page(0, listed), vec![]);
        assert!(s.snapshot().is_none(), "the list is not finished");
        assert_eq!(s.listed(0), vec![]);
        assert_eq!(merged(&s), files(&[("k", "1"), ("j", "2")]));
        assert_eq!(record_of(&s), "configmap ns/a\tk\nconfigmap ns/b\tj\n");
        // joins by watch
        let c = member("other", "c", 3, "4", &[("i", "3")]);
        assert_eq!(s.judge_member(0, c.clone()), Judged::Accepted);
        assert_eq!(s.judge_member(0, c), Judged::Same);
        assert_eq!(merged(&s), files(&[("k", "1"), ("j", "2"), ("i", "3")]));
        // leaves by watch; an object that is no member changes nothing
        assert_eq!(s.leave(0, &cm("ns", "a")), None);
        assert_eq!(s.leave(0, &cm("ns", "nobody")), None);
        assert_eq!(merged(&s), files(&[("j", "2"), ("i", "3")]));
        // leaves by relist: c is in the list no more
        let relist = vec![member("ns", "b", 1, "1", &[("j", "2")])];
        assert_eq!(s.judge_page(0, relist), vec![]);
        assert_eq!(
            merged(&s),
            files(&[("j", "2"), ("i", "3")]),
            "not before its end"
        );
        assert_eq!(s.listed(0), vec![]);
        assert_eq!(merged(&s), files(&[("j", "2")]));
        assert_eq!(record_of(&s), "configmap ns/b\tj\n");
        // an empty list empties the selection
        assert_eq!(s.listed(0), vec![]);
        assert_eq!(merged(&s), Files::new());
    }

    #[test]
    fn a_member_of_two_sources_leaves_when_neither_holds_it() {
        let a = || member("ns", "a", 1, "1", &[("k", "1")]);
        // ways for the two sources to let it go, in order
        let ways: &[[bool; 2]] = &[[true, true], [false, false], [true, false], [false, true]];
        for (i, by_watch) in ways.iter().enumerate() {
            let mut s = State::new(vec![], 2, false);
            s.judge_page(0, vec![a()]);
            s.listed(0);
            assert!(s.snapshot().is_none(), "row {i}: source 1 has not listed");
            assert_eq!(s.judge_page(1, vec![a()]), vec![]);
            s.listed(1);
            for (source, watch) in by_watch.iter().enumerate() {
                assert_eq!(merged(&s), files(&[("k", "1")]), "row {i}, source {source}");
                match watch {
                    true => assert_eq!(s.leave(source, &cm("ns", "a")), None),
                    false => assert_eq!(s.listed(source), vec![]),
                }
            }
            assert_eq!(merged(&s), Files::new(), "row {i}");
        }
    }

    #[test]
    fn the_guard_keeps_a_leaving_member_that_carried_listeners() {
        for (allow, by_watch) in [(false, true), (false, false), (true, true), (true, false)] {
            let row = format!("allow {allow}, by watch {by_watch}");
            let mut s = State::new(vec![], 1, allow);
            let a = member("ns", "a", 1, "1", &[("lds.yaml", LDS), ("x", "1")]);
            let b = member("ns", "b", 1, "1", &[("y", "1")]);
            s.judge_page(0, vec![a, b]);
            s.listed(0);
            let relist_b = |s: &mut State| {
                s.judge_page(0, vec![member("ns", "b", 1, "1", &[("y", "1")])]);
                s.listed(0)
            };
            let refusals: Vec<Refusal> = match by_watch {
                true => s.leave(0, &cm("ns", "a")).into_iter().collect(),
                false => relist_b(&mut s),
            };
            if allow {
                assert_eq!(refusals, vec![], "{row}");
                assert_eq!(merged(&s), files(&[("y", "1")]), "{row}");
                continue;
            }
            let [r] = &refusals[..] else {
                panic!("{row}: one refusal, got {refusals:?}")
            };
            assert_eq!(r.object, cm("ns", "a"), "{row}");
            assert_eq!(r.refused.key.as_deref(), Some("lds.yaml"), "{row}");
            assert!(r.refused.why.contains("leaves the selection"), "{row}: {r}");
            assert!(
                r.refused.why.contains("-allow-empty-resources"),
                "{row}: {r}"
            );
            let all = files(&[("lds.yaml", LDS), ("x", "1"), ("y", "1")]);
            assert_eq!(merged(&s), all, "{row}: its files stay");
            // refused once: the next relist without it says nothing more
            assert_eq!(relist_b(&mut s), vec![], "{row}");
            assert_eq!(merged(&s), all, "{row}");
        }
    }

    #[test]
    fn among_objects_seen_together_the_older_gets_a_contested_key() {
        // (namespace, name, day created) of two members listed together, in list order;
        // the winner is the one at index `wins`.
        type Pair = [(&'static str, &'static str, u8); 2];
        let table: &[(Pair, usize)] = &[
            ([("ns", "a", 2), ("ns", "b", 1)], 1), // older created
            ([("ns", "b", 1), ("ns", "a", 2)], 0), // whatever the list order
            ([("y", "a", 1), ("x", "z", 1)], 1),   // then namespace
            ([("ns", "b", 1), ("ns", "a", 1)], 1), // then name
            ([("ns", "a", 1), ("ns", "b", 1)], 0),
        ];
        for (i, (pair, wins)) in table.iter().enumerate() {
            let mut s = State::new(vec![], 1, false);
            let members = pair
                .iter()
                .map(|(ns, name, day)| member(ns, name, *day, "1", &[("k", name), (name, "own")]))
                .collect();
            let refusals = s.judge_page(0, members);
            s.listed(0);
            let (winner, loser) = (pair[*wins], pair[1 - wins]);
            let [r] = &refusals[..] else {
                panic!("row {i}: one refusal, got {refusals:?}")
            };
            assert_eq!(r.object, cm(loser.0, loser.1), "row {i}");
            assert_eq!(r.refused.key.as_deref(), Some("k"), "row {i}");
            let why = format!("is also in {}, which had it first", cm(winner.0, winner.1));
            assert!(r.refused.why.contains(&why), "row {i}: {r}");
            // refused as a whole: none of the loser's keys
            assert_eq!(
                merged(&s),
                files(&[("k", winner.1), (winner.1, "own")]),
                "row {i}"
            );
        }
    }

    #[test]
    fn the_incumbent_wins_and_the_newcomer_gets_the_key_once_it_is_free() {
        // How the incumbent frees the key: 0 leaves by watch, 1 drops the key, 2 is
        // relisted no more, 3 is named and drops the key.
        for way in 0..4 {
            let named = if way == 3 {
                vec![cm("ns", "a")]
            } else {
                vec![]
            };
            let mut s = State::new(named, 1, false);
            let a = member("ns", "a", 9, "1", &[("k", "a")]);
            let c = |v: &str| member("ns", "c", 1, v, &[("c", v)]);
            match way {
                3 => assert_eq!(s.judge(0, "1", Ok(files(&[("k", "a")]))), Judged::Accepted),
                _ => assert_eq!(s.judge_page(0, vec![a.clone()]), vec![]),
            }
            s.judge_page(0, vec![c("1")]);
            s.listed(0);
            // b, older than a, comes later: refused as a whole; c goes on updating
            let b = member("ns", "b", 1, "1", &[("k", "b"), ("b", "own")]);
            let r = refused(s.judge_member(0, b.clone()));
            assert_eq!(r.object, cm("ns", "b"), "way {way}");
            assert!(
                r.refused.why.contains("configmap ns/a, which had it first"),
                "{r}"
            );
            assert_eq!(s.judge_member(0, b.clone()), Judged::Same, "way {way}");
            assert_eq!(s.judge_member(0, c("2")), Judged::Accepted, "way {way}");
            assert_eq!(merged(&s), files(&[("k", "a"), ("c", "2")]), "way {way}");
            match way {
                0 => assert_eq!(s.leave(0, &cm("ns", "a")), None),
                1 => {
                    let a2 = member("ns", "a", 9, "2", &[("other", "a")]);
                    assert_eq!(s.judge_member(0, a2), Judged::Accepted);
                }
                2 => {
                    s.judge_page(0, vec![b, c("2")]);
                    assert_eq!(s.listed(0), vec![]);
                }
                _ => assert_eq!(
                    s.judge(0, "2", Ok(files(&[("other", "a")]))),
                    Judged::Accepted
                ),
            }
            let mut want = files(&[("k", "b"), ("b", "own"), ("c", "2")]);
            if way == 1 || way == 3 {
                want.insert("other".into(), b"a".to_vec());
            }
            assert_eq!(merged(&s), want, "way {way}: b judged again");
        }
    }

    #[test]
    fn only_the_latest_refused_version_is_judged_again() {
        let mut s = State::new(vec![obj("a"), obj("b")], 0, false);
        s.judge(0, "1", Ok(files(&[("x", "a")])));
        refused(s.judge(1, "1", Ok(files(&[("x", "b")]))));
        // b's next version is refused for itself: the collision's content no longer waits
        refused(s.judge(1, "2", Ok(files(&[("x", "b"), ("..bad", "b")]))));
        assert_eq!(s.judge(0, "2", Ok(files(&[("y", "a")]))), Judged::Accepted);
        assert!(!s.has_files(1), "b's version 1 is not its latest");
        assert!(s.snapshot().is_none());
        // a collision among named objects clears with its cause too
        refused(s.judge(1, "3", Ok(files(&[("y", "b")]))));
        assert_eq!(s.judge(0, "3", Ok(files(&[("z", "a")]))), Judged::Accepted);
        assert_eq!(merged(&s), files(&[("z", "a"), ("y", "b")]));
    }

    #[test]
    fn a_relist_that_changes_nothing_changes_nothing() {
        let mut s = State::new(vec![obj("n")], 1, false);
        s.judge(0, "1", Ok(files(&[("n", "1")])));
        let list = || {
            vec![
                member("ns", "a", 1, "1", &[("k", "1")]),
                member("ns", "b", 2, "1", &[("k", "2")]), // refused: a has k
                member("ns", "c", 3, "1", &[("j", "3")]),
            ]
        };
        assert_eq!(s.judge_page(0, list()).len(), 1);
        assert_eq!(s.listed(0), vec![]);
        let (before, record) = s.snapshot().unwrap();
        let mut again = list();
        again.reverse();
        assert_eq!(s.judge_page(0, again), vec![], "no refusal repeated");
        assert_eq!(s.listed(0), vec![]);
        assert_eq!(s.judge_member(0, list().remove(2)), Judged::Same);
        let (after, record_after) = s.snapshot().unwrap();
        assert!(Arc::ptr_eq(&before, &after), "the same snapshot");
        assert_eq!(record, record_after);
        // a new version is a new snapshot
        s.judge_member(0, member("ns", "c", 3, "2", &[("j", "3")]));
        assert!(!Arc::ptr_eq(&before, &s.snapshot().unwrap().0));
    }

    #[test]
    fn restored_members_stay_until_every_source_has_listed_without_them() {
        // the disk as the loader left it: named n, members a (a Secret), b and l
        let mut s = State::new(vec![obj("n")], 1, false);
        s.judge(0, "1", Ok(files(&[("n", "1")])));
        let mut secret = member("ns", "a", 1, "1", &[("k", "1")]);
        secret.object.kind = Kind::Secret;
        let b = member("ns", "b", 1, "1", &[("j", "2")]);
        let l = member("ns", "l", 1, "1", &[("lds.yaml", LDS)]);
        s.judge_page(0, vec![secret.clone(), b, l]);
        s.listed(0);
        let (disk, record) = s.snapshot().unwrap();
        let text =
            "configmap ns/n\tn\nconfigmap ns/b\tj\nconfigmap ns/l\tlds.yaml\nsecret ns/a\tk\n";
        assert_eq!(String::from_utf8(record.clone()).unwrap(), text);
        // restarted with two sources: complete from disk, ready before any list
        let mut s = State::new(vec![obj("n")], 2, false);
        assert!(s.restore((*disk).clone(), &record));
        assert_eq!(merged(&s), *disk);
        assert_eq!(record_of(&s), text);
        // source 0 lists the Secret only; b and l stay until source 1 has listed
        assert_eq!(s.judge_page(0, vec![secret.clone()]), vec![]);
        assert_eq!(s.listed(0), vec![]);
        assert_eq!(merged(&s), *disk);
        assert_eq!(s.judge_page(1, vec![]), vec![]);
        // b goes; l carried a listener: the guard keeps it
        let refusals = s.listed(1);
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].object, cm("ns", "l"));
        assert_eq!(
            merged(&s),
            files(&[("n", "1"), ("k", "1"), ("lds.yaml", LDS)])
        );
        assert_eq!(s.leave(0, &secret.object), None);
        assert_eq!(merged(&s), files(&[("n", "1"), ("lds.yaml", LDS)]));
        // a named object missing from disk: not complete, and not ready until it is seen
        let mut s = State::new(vec![obj("n"), obj("new")], 1, false);
        assert!(!s.restore((*disk).clone(), &record));
        s.listed(0);
        assert!(s.snapshot().is_none());
    }

    #[test]
    fn ready_once_every_named_object_has_files_and_every_source_has_listed() {
        // steps: 'n' judges the named object, '0' and '1' finish a source's list
        for steps in ["n01", "0n1", "01n", "10n", "1n0"] {
            let mut s = State::new(vec![obj("n")], 2, false);
            for (i, step) in steps.chars().enumerate() {
                assert!(s.snapshot().is_none(), "{steps}: before step {i}");
                match step {
                    'n' => assert_eq!(s.judge(0, "1", Ok(files(&[("n", "1")]))), Judged::Accepted),
                    source => assert_eq!(s.listed(source as usize - '0' as usize), vec![]),
                }
            }
            assert_eq!(merged(&s), files(&[("n", "1")]), "{steps}");
        }
        // sources only: ready once each has listed, even with nothing selected
        let mut s = State::new(vec![], 1, false);
        assert!(s.snapshot().is_none());
        s.listed(0);
        assert_eq!(merged(&s), Files::new());
    }

    #[test]
    fn a_named_object_that_is_selected_too_stays_named() {
        let mut s = State::new(vec![cm("ns", "a")], 1, false);
        assert_eq!(s.judge(0, "1", Ok(files(&[("k", "1")]))), Judged::Accepted);
        let a = member("ns", "a", 1, "1", &[("k", "1")]);
        assert_eq!(s.judge_page(0, vec![a.clone()]), vec![]);
        assert_eq!(
            s.judge_member(0, a),
            Judged::Same,
            "the named object's version"
        );
        s.listed(0);
        assert_eq!(s.leave(0, &cm("ns", "a")), None);
        assert_eq!(s.listed(0), vec![]);
        assert_eq!(
            merged(&s),
            files(&[("k", "1")]),
            "a named object keeps its files"
        );
        assert_eq!(record_of(&s), "configmap ns/a\tk\n");
    }
}
