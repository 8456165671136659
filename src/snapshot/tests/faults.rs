//! A fault at every modifying syscall of a write, with the next version ready (a writer
//! that wrote before) and without (a fresh one after a restart): killed there, the
//! directory holds the old or the new complete snapshot and the next process converges;
//! failing there and living on, it rolls back or converges.

use super::*;

/// `w.write(new)` with modifying syscall number `at` failing (`kill`: and every later one,
/// as if the process died there). `None` when the write made fewer syscalls: it then
/// succeeded and converged, and there is no later point to try.
pub(super) fn write_with_fault(
    w: &mut Writer,
    new: &Files,
    at: usize,
    kill: bool,
) -> Option<Result<Outcome, Error>> {
    w.faults.plan = Some(FaultPlan {
        at,
        kill,
        seen: 0,
        hit: false,
    });
    let result = w.write(new);
    if w.faults.plan.take().is_some_and(|p| p.hit) {
        return Some(result);
    }
    assert!(result.is_ok(), "{result:?}");
    assert_converged(w.dir(), new, &[]);
    None
}

/// The writers a fault is tried with: (`fresh`, `placed`). Fresh: a new writer after a
/// restart's sweep, which reads the directory first. Not fresh: the same writer, its next
/// version ready, with the empty file in it at `placed` (the key its last write changed):
/// a key the write changes again, one it keeps, one it removes, or (`None`) the first key
/// of a first write.
const WRITERS: [(bool, Option<&str>); 5] = [
    (false, None),
    (false, Some("cds.json")),
    (false, Some("eds-a.yaml")),
    (false, Some("gone.txt")),
    (true, None),
];

/// A writer that has written `old` into `dir` (after a version where only `placed`
/// differed, when given) and is as [`WRITERS`] describes it.
fn after_writing(dir: &Path, old: &Files, fresh: bool, placed: Option<&str>) -> Writer {
    let mut w = Writer::new(dir);
    if let Some(key) = placed {
        let mut before = old.clone();
        before.insert(key.to_string(), b"before".to_vec());
        w.write(&before).unwrap();
    }
    w.write(old).unwrap();
    let ready = w.next.as_ref().and_then(|n| n.placed.as_deref());
    assert!(ready.is_some(), "an empty file in the version made ready");
    if placed.is_some() {
        assert_eq!(ready, placed, "the empty file of the version made ready");
    }
    if fresh {
        w = Writer::new(dir);
        w.sweep().unwrap();
    }
    w
}

/// Kills the writer after each modifying syscall in turn: what is left on disk must be
/// the old or the new complete snapshot, readable through every link, and a fresh
/// process's sweep + write must converge (renaming what the killed one may not have).
#[test]
fn killed_at_every_step_leaves_a_complete_snapshot() {
    let old = files(&[
        ("lds.yaml", LDS),
        ("cds.json", CDS),
        ("eds-a.yaml", EDS),
        ("cert.pem", b"old cert"),
        ("gone.txt", b"bye"),
    ]);
    let new = files(&[
        ("lds.yaml", LDS2),
        ("cds.json", CDS2),
        ("eds-a.yaml", EDS),
        ("eds-b.yaml", EDS2),
        ("cert.pem", b"new cert"),
    ]);
    let order = ["cert.pem", "cds.json", "lds.yaml"];
    let mut points = 0;
    // Writers with their next version ready, and a fresh one after a restart.
    for (fresh, placed) in WRITERS {
        for at in 0.. {
            let t = TempDir::new("kill");
            let dir = t.path();
            let mut w = after_writing(dir, &old, fresh, placed);
            let old_version = fs::read_link(dir.join(DATA)).unwrap();
            let inodes: BTreeMap<&str, u64> = order
                .iter()
                .map(|k| (*k, link_ino(&dir.join(k)).0))
                .collect();
            let Some(result) = write_with_fault(&mut w, &new, at, true) else {
                break;
            };
            points += 1;
            // Killed while it made the next version ready: the write itself was done.
            let done = result.is_ok();

            // The next process.
            let mut next = Writer::new(dir);
            let seen = next.current().unwrap().unwrap();
            assert!(seen == old || seen == new, "killed at {at}: {seen:?}");
            assert!(!done || seen == new, "killed at {at}: Ok, yet {seen:?}");
            for (key, bytes) in &seen {
                assert_eq!(
                    &fs::read(dir.join(key)).unwrap(),
                    bytes,
                    "killed at {at}: {key}"
                );
            }
            let renamed: Vec<&str> = order
                .iter()
                .copied()
                .filter(|k| link_ino(&dir.join(k)).0 != inodes[k])
                .collect();
            if seen == old {
                assert!(
                    renamed.is_empty(),
                    "killed at {at}: renamed {renamed:?} before the switch"
                );
            } else {
                assert_eq!(
                    renamed,
                    order[..renamed.len()],
                    "killed at {at}: rename order"
                );
            }
            let old_left = dir.join(&old_version).exists();
            next.sweep().unwrap();
            assert_converged(dir, &seen, &[]);
            let out = next.write(&new).unwrap();
            assert_converged(dir, &new, &[]);
            if seen == new && old_left {
                let Outcome::Written { changed, .. } = &out else {
                    panic!("killed at {at} after the switch: {out:?}")
                };
                for key in order {
                    assert!(
                        changed.iter().any(|c| c == key),
                        "killed at {at}: {key} not renamed"
                    );
                }
            }
            assert_eq!(next.write(&new).unwrap(), Outcome::Unchanged);
        }
    }
    assert!(points > 40, "only {points} kill points");
}

/// Fails each modifying syscall in turn (the process lives on): before the switch the
/// directory is exactly as before; after it the new snapshot is live and the next write
/// converges.
#[test]
fn failure_at_every_step_rolls_back_or_converges() {
    let old = files(&[
        ("lds.yaml", LDS),
        ("cds.json", CDS),
        ("eds-a.yaml", EDS),
        ("gone.txt", b"bye"),
    ]);
    let new = files(&[
        ("lds.yaml", LDS2),
        ("cds.json", CDS2),
        ("eds-a.yaml", EDS),
        ("eds-b.yaml", EDS2),
    ]);
    let mut points = 0;
    // Writers with their next version ready, and a fresh one after a restart.
    for (fresh, placed) in WRITERS {
        for at in 0.. {
            let t = TempDir::new("fail");
            let dir = t.path();
            let mut w = after_writing(dir, &old, fresh, placed);
            let before = kept(dir);
            let Some(result) = write_with_fault(&mut w, &new, at, false) else {
                break;
            };
            points += 1;
            match result {
                // Only a failed hard link is absorbed (the file is written instead).
                Ok(_) => {
                    assert_converged(dir, &new, &[]);
                }
                Err(e) => {
                    assert!(e.to_string().contains("injected fault"), "{e}");
                    let seen = w.current().unwrap().unwrap();
                    if seen == old {
                        assert_eq!(kept(dir), before, "failed at {at}: {e}");
                    } else {
                        assert_eq!(seen, new, "failed at {at}");
                    }
                    let out = w.write(&new).unwrap();
                    if seen == old {
                        assert!(matches!(out, Outcome::Written { .. }), "{out:?}");
                    }
                    assert_converged(dir, &new, &[]);
                }
            }
            assert_eq!(w.write(&new).unwrap(), Outcome::Unchanged);
        }
    }
    assert!(points > 30, "only {points} failure points");
}
