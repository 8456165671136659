//! The writer's one-file path (a large snapshot with one key changed, replaced inside the
//! current version): what it does and does not take, and a kill or a failure at each of
//! its modifying syscalls.

use super::faults::write_with_fault;
use super::*;

/// A snapshot of `n` files `f000`… with `x` in each, and `f007` holding `seven`.
fn many(n: usize, seven: &[u8]) -> Files {
    (0..n)
        .map(|i| {
            let bytes = if i == 7 {
                seven.to_vec()
            } else {
                b"x".to_vec()
            };
            (format!("f{i:03}"), bytes)
        })
        .collect()
}

#[test]
fn one_changed_key_of_a_large_snapshot_is_replaced_where_it_is() {
    let t = TempDir::new("one-file");
    let dir = t.path();
    let mut w = Writer::new(dir);
    let n = REPLACE_FROM_FILES;
    w.write(&many(n, b"1")).unwrap();
    let version = fs::read_link(dir.join(DATA)).unwrap();
    let (data_ino, seven_ino, other_ino) = (
        link_ino(&dir.join(DATA)).0,
        link_ino(&dir.join("f007")).0,
        link_ino(&dir.join("f008")).0,
    );
    let out = w.write(&many(n, b"2")).unwrap();
    let Outcome::Written {
        version: v,
        changed,
        added,
        removed,
        ..
    } = &out
    else {
        panic!("{out:?}")
    };
    assert_eq!(
        (changed.as_slice(), added.len(), removed.len()),
        (&["f007".to_string()][..], 0, 0)
    );
    // The same version, its one file replaced; `..data` and the key's link renamed anew
    // (their events), no other link touched.
    assert_eq!(fs::read_link(dir.join(DATA)).unwrap(), version);
    assert_eq!(v, version.to_str().unwrap());
    assert_ne!(link_ino(&dir.join(DATA)).0, data_ino, "..data named again");
    assert_ne!(
        link_ino(&dir.join("f007")).0,
        seven_ino,
        "the key's link renamed"
    );
    assert_eq!(link_ino(&dir.join("f008")).0, other_ino);
    assert_converged(dir, &many(n, b"2"), &[]);
    assert_eq!(w.write(&many(n, b"2")).unwrap(), Outcome::Unchanged);
    // Two keys changed, a key added or removed, or a smaller snapshot: a new version.
    let mut two = many(n, b"3");
    two.insert("f008".into(), b"y".to_vec());
    let mut added = many(n, b"2");
    added.insert("new".into(), b"n".to_vec());
    for next in [two, added, many(n, b"2")] {
        w.write(&next).unwrap();
        assert_ne!(
            fs::read_link(dir.join(DATA)).unwrap(),
            version,
            "{:?}",
            next.len()
        );
        assert_converged(dir, &next, &[]);
    }
    let small = TempDir::new("one-file-small");
    let mut w = Writer::new(small.path());
    w.write(&many(n - 1, b"1")).unwrap();
    let version = fs::read_link(small.path().join(DATA)).unwrap();
    w.write(&many(n - 1, b"2")).unwrap();
    assert_ne!(fs::read_link(small.path().join(DATA)).unwrap(), version);
}

/// The one-file path killed, or failing, at each of its modifying syscalls: the old or the
/// new snapshot, whole; a failure before the file's rename leaves the directory as it was;
/// and when the file was replaced but its link not renamed, the next write renames it.
#[test]
fn the_one_file_path_killed_or_failing_at_every_step() {
    let old = files(&[("lds.yaml", LDS), ("cds.json", CDS), ("eds-a.yaml", EDS)]);
    let new = files(&[("lds.yaml", LDS), ("cds.json", CDS2), ("eds-a.yaml", EDS)]);
    for kill in [true, false] {
        let mut points = 0;
        for at in 0.. {
            let t = TempDir::new("one-file-fault");
            let dir = t.path();
            let mut w = Writer::new(dir);
            w.replace_from = 2;
            w.write(&old).unwrap();
            let version = fs::read_link(dir.join(DATA)).unwrap();
            let before = kept(dir);
            let cds = link_ino(&dir.join("cds.json")).0;
            let Some(result) = write_with_fault(&mut w, &new, at, kill) else {
                break;
            };
            points += 1;
            assert!(result.is_err(), "at {at}: {result:?}");
            assert_eq!(fs::read_link(dir.join(DATA)).unwrap(), version, "at {at}");
            let mut next = if kill { Writer::new(dir) } else { w };
            let seen = next.current().unwrap().unwrap();
            assert!(seen == old || seen == new, "at {at}: {seen:?}");
            for (key, bytes) in &seen {
                assert_eq!(&fs::read(dir.join(key)).unwrap(), bytes, "at {at}: {key}");
            }
            let renamed = link_ino(&dir.join("cds.json")).0 != cds;
            if seen == old {
                assert!(!renamed, "at {at}: the link renamed before the file");
                if !kill {
                    assert_eq!(kept(dir), before, "failed at {at}");
                }
            }
            if kill {
                next.sweep().unwrap();
            }
            let out = next.write(&new).unwrap();
            assert_converged(dir, &new, &[]);
            if seen == new && !renamed {
                let Outcome::Written { changed, .. } = &out else {
                    panic!("at {at}: the link was never renamed: {out:?}")
                };
                assert!(changed.iter().any(|c| c == "cds.json"), "at {at}: {out:?}");
            }
            assert_eq!(next.write(&new).unwrap(), Outcome::Unchanged, "at {at}");
        }
        assert!(points >= 6, "kill {kill}: only {points} points");
    }
}
