//! The next version made ready after a write: its layout, an update written into it (the
//! version it switches to is the one made ready, the spare link renamed), and what ends
//! it (a large snapshot, a removed key, a fresh writer).

use super::*;

/// What `..data_tmp` names.
fn ready(dir: &Path) -> Option<String> {
    fs::read_link(dir.join(DATA_TMP))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[test]
fn an_update_switches_to_the_version_made_ready() {
    let t = TempDir::new("next");
    let dir = t.path();
    let v1 = files(&[("lds.yaml", LDS), ("cds.json", CDS), ("eds-a.yaml", EDS)]);
    let mut w = Writer::new(dir);
    w.write(&v1).unwrap();
    let next = ready(dir).expect("a next version after the first write");
    assert_converged(dir, &v1, &[]);
    let spare = dir.join(format!("{SPARE_LINK}cds.json"));
    let spare_ino = link_ino(&spare).0;
    // The first key of a first write has an empty file in the version made ready.
    let blank = fs::symlink_metadata(dir.join(&next).join("cds.json")).unwrap();
    assert!(blank.is_file() && blank.len() == 0, "{blank:?}");
    assert_eq!(blank.permissions().mode() & 0o7777, 0o644);
    // One key changed: written into the version made ready (into that empty file), its
    // spare link renamed.
    let v2 = files(&[("lds.yaml", LDS), ("cds.json", CDS2), ("eds-a.yaml", EDS)]);
    let out = w.write(&v2).unwrap();
    assert!(
        matches!(&out, Outcome::Written { version, changed, .. } if *version == next && changed == &["cds.json"]),
        "{out:?} (ready: {next})"
    );
    assert_eq!(
        link_ino(&dir.join("cds.json")).0,
        spare_ino,
        "the spare link renamed"
    );
    assert_eq!(
        link_ino(&dir.join(&next).join("cds.json")).0,
        blank.ino(),
        "the changed file is the empty one"
    );
    assert_ne!(
        ready(dir).as_deref(),
        Some(next.as_str()),
        "a new one made ready"
    );
    let again = ready(dir).unwrap();
    let again = fs::symlink_metadata(dir.join(again).join("cds.json")).unwrap();
    assert!(
        again.len() == 0 && again.ino() != blank.ino(),
        "a new empty file"
    );
    assert_converged(dir, &v2, &[]);
    // Unchanged files stay hard links of one inode across versions.
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&dir.join("lds.yaml")),
        ino(&dir.join(next).join("lds.yaml"))
    );
    // Keys added and removed, and a record: the version made ready again.
    let next = ready(dir).unwrap();
    let v3 = files(&[("lds.yaml", LDS2), ("eds-b.yaml", EDS2)]);
    let out = w.write_recorded(Arc::new(v3.clone()), b"r\n").unwrap();
    assert!(
        matches!(&out, Outcome::Written { version, removed, .. } if *version == next && removed.len() == 2),
        "{out:?}"
    );
    assert_converged(dir, &v3, &[]);
    assert_eq!(w.current_record().unwrap().as_deref(), Some(&b"r\n"[..]));
    let spares: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(SPARE_LINK))
        .collect();
    assert_eq!(
        spares.len(),
        2,
        "the removed keys' spare links went: {spares:?}"
    );
    assert_eq!(
        w.write_recorded(Arc::new(v3), b"r\n").unwrap(),
        Outcome::Unchanged
    );
}

#[test]
fn a_large_snapshot_or_a_fresh_writer_has_no_next_version() {
    let t = TempDir::new("next-none");
    let dir = t.path();
    let big: Files = (0..REPLACE_FROM_FILES)
        .map(|i| (format!("f{i:03}"), b"x".to_vec()))
        .collect();
    let mut w = Writer::new(dir);
    w.write(&big).unwrap();
    assert_eq!(ready(dir), None, "the one-file path needs none");
    assert!(!dir.join(BLANK).exists(), "nor an empty file beside it");
    assert_converged(dir, &big, &[]);
    let small = files(&[("lds.yaml", LDS)]);
    w.write(&small).unwrap();
    assert!(ready(dir).is_some());
    // A fresh writer (a restart) sweeps it and reads the directory before it trusts it.
    let mut w = Writer::new(dir);
    assert!(w.sweep().unwrap().iter().any(|n| n == DATA_TMP));
    assert_eq!(ready(dir), None);
    assert_eq!(w.write(&small).unwrap(), Outcome::Unchanged);
    let out = w.write(&files(&[("lds.yaml", LDS2)])).unwrap();
    assert!(matches!(out, Outcome::Written { .. }));
    assert!(ready(dir).is_some());
}

#[test]
fn the_key_changed_last_finds_an_empty_file_in_the_version_made_ready() {
    let t = TempDir::new("next-placed");
    let dir = t.path();
    let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
    let placed = |w: &Writer| w.next.as_ref().and_then(|n| n.placed.clone());
    let mut w = Writer::new(dir);
    w.write(&files(&[
        ("lds.yaml", LDS),
        ("cds.json", CDS),
        ("gone", b"x"),
    ]))
    .unwrap();
    assert_eq!(
        placed(&w).as_deref(),
        Some("cds.json"),
        "a first write's first key"
    );
    let v2 = files(&[("lds.yaml", LDS), ("cds.json", CDS2), ("gone", b"x")]);
    w.write(&v2).unwrap();
    assert_eq!(placed(&w).as_deref(), Some("cds.json"));
    // The version made ready holds an empty file for cds.json, the rest hard links.
    let next = ready(dir).unwrap();
    let empty = fs::symlink_metadata(dir.join(&next).join("cds.json")).unwrap();
    assert!(empty.is_file() && empty.len() == 0, "{empty:?}");
    assert_eq!(empty.permissions().mode() & 0o7777, 0o644);
    assert_eq!(
        empty.nlink(),
        1,
        "its own file, not a link of the current one"
    );
    assert_converged(dir, &v2, &[]);
    // cds.json changes again: written into that file.
    let v3 = files(&[("lds.yaml", LDS), ("cds.json", CDS), ("gone", b"x")]);
    w.write(&v3).unwrap();
    assert_eq!(ino(&dir.join(&next).join("cds.json")), empty.ino());
    assert_converged(dir, &v3, &[]);
    // Another key changes: the empty file moves to it, cds.json gets its hard link back.
    let (next, current) = (ready(dir).unwrap(), fs::read_link(dir.join(DATA)).unwrap());
    let empty = ino(&dir.join(&next).join("cds.json"));
    let cds = ino(&dir.join(&current).join("cds.json"));
    let v4 = files(&[("lds.yaml", LDS2), ("cds.json", CDS), ("gone", b"x")]);
    let out = w.write(&v4).unwrap();
    assert!(
        matches!(&out, Outcome::Written { changed, .. } if changed == &["lds.yaml"]),
        "{out:?}"
    );
    assert_eq!(ino(&dir.join(&next).join("lds.yaml")), empty, "moved");
    assert_eq!(ino(&dir.join(&next).join("cds.json")), cds, "linked again");
    assert_converged(dir, &v4, &[]);
    assert_eq!(placed(&w).as_deref(), Some("lds.yaml"));
    // Only a key removed: lds.yaml did not change and gets its hard link back in place of
    // the empty file.
    let (next, current) = (ready(dir).unwrap(), fs::read_link(dir.join(DATA)).unwrap());
    let lds = ino(&dir.join(&current).join("lds.yaml"));
    let v5 = files(&[("lds.yaml", LDS2), ("cds.json", CDS)]);
    let out = w.write(&v5).unwrap();
    assert!(
        matches!(&out, Outcome::Written { changed, removed, .. } if changed.is_empty() && removed == &["gone"]),
        "{out:?}"
    );
    assert_eq!(ino(&dir.join(&next).join("lds.yaml")), lds, "linked again");
    assert_converged(dir, &v5, &[]);
    assert_eq!(placed(&w), None, "no key changed");
    assert_eq!(w.write(&v5).unwrap(), Outcome::Unchanged);
}
