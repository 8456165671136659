//! One object's list+watch rules (client-go's reflector, for one name) as a pure state
//! machine: what was heard goes in ([`Heard`]), the next thing to do comes out ([`Step`]).
//! The loop in `sync` does the requests, the sleeps and the counting; this module does no
//! I/O, never sleeps and never reads the clock.
//!
//! The rules:
//! - a list gives the version to watch from; every event or bookmark moves it forward;
//! - a watch that ends normally (its timeout) is followed by a watch from the last version,
//!   not a list; one that ends at once with no event counts as a failure. "At once" is judged
//!   against the timeout asked for: the client's clock starts at the response's head, the
//!   server's at the request, so a 1 s watch the server ends on time lasts a little under
//!   1 s here, and half of what was asked counts as the whole course;
//! - a watch that heard nothing for the silence bound, before the server's own timeout, is
//!   replaced at once (a dead flow, or a server without bookmarks: cheap either way);
//! - "too old" (an HTTP 410 or an ERROR event with code 410) relists; when 410s repeat with
//!   no event between them, each relist waits the backoff, so an endless-410 server sees
//!   about one list a second at first and one every 30 s after a minute;
//! - any other failure waits the backoff (1 s doubling to 30 s, jittered) or the server's
//!   Retry-After, whichever is longer, then resumes from the last version;
//! - the backoff resets on an event, or on a quiet watch that lasted [`HEALTHY_WATCH`] or
//!   ran its course (watches cut short for the safety-net check never last 30 s).

use crate::backoff::Backoff;
use std::time::Duration;

/// A watch that lasted this long (or ran the course it asked for) resets the backoff, events
/// or not.
pub const HEALTHY_WATCH: Duration = Duration::from_secs(30);
/// A watch that ends sooner than this (or than half the timeout it asked for) with no event
/// has failed.
pub const MIN_WATCH: Duration = Duration::from_secs(1);
/// Longest silence (no byte: no event, no bookmark) before a watch is replaced. Bookmarks are
/// not guaranteed: a kube-apiserver v1.20.2 sends them only in the last 2 s before a watch's
/// timeout, and a quiet watch gets none (tests/real_apiserver.rs' server, measured), so with
/// a long `-watch-timeout` a quiet object's watch is replaced every 90 s: one request from
/// the last version, no relist.
pub const SILENCE: Duration = Duration::from_secs(90);

/// What a request or a watch stream produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// A list answered, at this resourceVersion.
    Listed(&'a str),
    /// A watch event (the object, its deletion, a bookmark, another object's): its version.
    Event(&'a str),
    /// The server ended the watch after `events` events; it lasted `lasted`, measured from
    /// the response's head, of the `asked` timeout.
    Ended {
        events: u64,
        lasted: Duration,
        asked: Duration,
    },
    /// Nothing arrived for the silence bound, before the server's own timeout was due.
    Silent,
    /// "Too old": an HTTP 410, or an ERROR event with code 410.
    Gone,
    /// A list or watch failed: transport, a non-2xx answer, an ERROR event, bad data, or a
    /// watch that outlived its own timeout in silence. With the server's Retry-After.
    Failed { retry_after: Option<Duration> },
    /// The safety-net check found the object differs from what the watch delivered.
    Differs,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// List the object (a consistent read).
    List,
    /// Watch from this resourceVersion.
    Watch(String),
    /// Go on reading the open watch.
    Read,
    /// Sleep this long, then do [`Reflector::resume`].
    Wait(Duration),
}

/// One object's reflector state.
#[derive(Debug)]
pub struct Reflector {
    /// The last version seen; `None`: a list is due.
    version: Option<String>,
    backoff: Backoff,
    /// 410s since the last event or healthy watch.
    gone: u32,
}

impl Reflector {
    pub fn new(backoff: Backoff) -> Reflector {
        Reflector {
            version: None,
            backoff,
            gone: 0,
        }
    }

    /// The first step: a list.
    pub fn start(&self) -> Step {
        Step::List
    }

    /// What to do after a [`Step::Wait`]: watch from the last version, or list.
    pub fn resume(&self) -> Step {
        match &self.version {
            Some(v) => Step::Watch(v.clone()),
            None => Step::List,
        }
    }

    pub fn on(&mut self, outcome: Heard<'_>) -> Step {
        match outcome {
            Heard::Listed(rv) => {
                self.version = Some(rv.to_string());
                Step::Watch(rv.to_string())
            }
            Heard::Event(rv) => {
                self.version = Some(rv.to_string());
                self.backoff.reset();
                self.gone = 0;
                Step::Read
            }
            Heard::Ended {
                events,
                lasted,
                asked,
            } => {
                let course = asked / 2;
                if events > 0 || lasted >= HEALTHY_WATCH.min(course) {
                    self.backoff.reset();
                }
                if events > 0 || lasted >= MIN_WATCH.min(course) {
                    self.gone = 0;
                    self.resume()
                } else {
                    Step::Wait(self.backoff.next_delay())
                }
            }
            Heard::Silent => self.resume(),
            Heard::Gone => {
                self.version = None;
                self.gone = self.gone.saturating_add(1);
                if self.gone == 1 {
                    Step::List
                } else {
                    Step::Wait(self.backoff.next_delay())
                }
            }
            Heard::Failed { retry_after } => Step::Wait(
                self.backoff
                    .next_delay()
                    .max(retry_after.unwrap_or_default()),
            ),
            Heard::Differs => {
                self.version = None;
                Step::List
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Rng;

    fn reflector() -> Reflector {
        Reflector::new(Backoff::new(Rng::new(7)))
    }

    /// A step, with a `Wait` only checked against its range.
    #[derive(Debug)]
    enum Want {
        Is(Step),
        WaitIn(Duration, Duration),
    }

    fn check(outcomes: &[(Heard<'_>, Want)]) {
        let mut r = reflector();
        assert_eq!(r.start(), Step::List);
        for (i, (outcome, want)) in outcomes.iter().enumerate() {
            let step = r.on(*outcome);
            match want {
                Want::Is(s) => assert_eq!(&step, s, "row {i}: {outcome:?}"),
                Want::WaitIn(lo, hi) => match step {
                    Step::Wait(d) => assert!(*lo <= d && d < *hi, "row {i}: {outcome:?}: {d:?}"),
                    other => panic!("row {i}: {outcome:?}: {other:?}, want a wait"),
                },
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn watch(v: &str) -> Want {
        Want::Is(Step::Watch(v.into()))
    }

    use Heard::*;
    use Want::*;

    #[test]
    fn a_list_then_events_and_bookmarks_move_the_version() {
        check(&[
            (Listed("10"), watch("10")),
            (Event("11"), Is(Step::Read)),
            (Event("15"), Is(Step::Read)),
            (
                Ended {
                    events: 2,
                    lasted: ms(300_000),
                    asked: ms(300_000),
                },
                watch("15"),
            ),
        ]);
    }

    #[test]
    fn a_watch_that_ends_at_its_timeout_rewatches_without_a_list() {
        let quiet = Ended {
            events: 0,
            lasted: ms(300_000),
            asked: ms(300_000),
        };
        check(&[
            (Listed("10"), watch("10")),
            (quiet, watch("10")),
            (quiet, watch("10")),
            (Event("12"), Is(Step::Read)),
            (quiet, watch("12")),
        ]);
    }

    #[test]
    fn a_watch_that_ends_at_once_with_no_event_backs_off() {
        let at_once = Ended {
            events: 0,
            lasted: ms(20),
            asked: ms(300_000),
        };
        check(&[
            (Listed("10"), watch("10")),
            (at_once, WaitIn(ms(500), ms(1500))),
            (at_once, WaitIn(ms(1000), ms(3000))),
            (at_once, WaitIn(ms(2000), ms(6000))),
        ]);
        let mut r = reflector();
        r.on(Listed("10"));
        r.on(at_once);
        assert_eq!(
            r.resume(),
            Step::Watch("10".into()),
            "from the same version"
        );
    }

    #[test]
    fn too_old_relists_at_once_then_backs_off_while_it_repeats() {
        check(&[
            (Listed("10"), watch("10")),
            (Gone, Is(Step::List)),
            (Listed("20"), watch("20")),
            (Gone, WaitIn(ms(500), ms(1500))),
            (Listed("21"), watch("21")),
            (Gone, WaitIn(ms(1000), ms(3000))),
            (Listed("22"), watch("22")),
            (Gone, WaitIn(ms(2000), ms(6000))),
            // an event ends the streak: the next 410 relists at once
            (Listed("23"), watch("23")),
            (Event("24"), Is(Step::Read)),
            (Gone, Is(Step::List)),
        ]);
        let mut r = reflector();
        r.on(Listed("10"));
        r.on(Gone);
        assert_eq!(r.resume(), Step::List, "after a wait for a 410: a list");
    }

    #[test]
    fn an_endless_410_server_sees_about_one_list_a_second_at_most() {
        // Every watch answers 410 at once: count the lists of the first 10 s and of 10 min.
        let mut r = reflector();
        let (mut t, mut lists_10s, mut lists) = (Duration::ZERO, 0, 0);
        let mut step = r.start();
        while t < Duration::from_secs(600) {
            // A reflector that never waits would spin here forever: fail instead.
            assert!(
                lists <= 10_000,
                "{lists} lists and the clock at {t:?}: no backoff"
            );
            step = match step {
                Step::List => {
                    lists += 1;
                    if t < Duration::from_secs(10) {
                        lists_10s += 1;
                    }
                    r.on(Listed("1"))
                }
                Step::Watch(_) => r.on(Gone),
                Step::Wait(d) => {
                    t += d;
                    r.resume()
                }
                Step::Read => unreachable!(),
            };
        }
        assert!((3..=6).contains(&lists_10s), "{lists_10s} lists in 10 s");
        assert!(lists <= 40, "{lists} lists in 10 min");
    }

    #[test]
    fn failures_back_off_honour_retry_after_and_resume_from_the_version() {
        let failed = Failed { retry_after: None };
        check(&[
            (Failed { retry_after: None }, WaitIn(ms(500), ms(1500))),
            (Listed("10"), watch("10")),
            (failed, WaitIn(ms(1000), ms(3000))),
            (
                Failed {
                    retry_after: Some(ms(20_000)),
                },
                WaitIn(ms(20_000), ms(20_001)),
            ),
            (Event("11"), Is(Step::Read)),
            (failed, WaitIn(ms(500), ms(1500))),
        ]);
        let mut r = reflector();
        assert_eq!(r.resume(), Step::List, "a failed first list lists again");
        r.on(Listed("10"));
        r.on(failed);
        assert_eq!(r.resume(), Step::Watch("10".into()));
    }

    #[test]
    fn a_long_quiet_watch_resets_the_backoff() {
        let failed = Failed { retry_after: None };
        check(&[
            (Listed("10"), watch("10")),
            (failed, WaitIn(ms(500), ms(1500))),
            (failed, WaitIn(ms(1000), ms(3000))),
            (
                Ended {
                    events: 0,
                    lasted: HEALTHY_WATCH,
                    asked: ms(300_000),
                },
                watch("10"),
            ),
            (failed, WaitIn(ms(500), ms(1500))),
        ]);
    }

    #[test]
    fn a_one_second_watch_the_server_ends_on_time_ran_its_course() {
        // Cut at the safety-net check to 1 s, and measured from the response's head.
        let on_time = Ended {
            events: 0,
            lasted: ms(930),
            asked: ms(1000),
        };
        let at_once = Ended {
            events: 0,
            lasted: ms(20),
            asked: ms(1000),
        };
        let failed = Failed { retry_after: None };
        check(&[
            (Listed("10"), watch("10")),
            (on_time, watch("10")),
            (on_time, watch("10")),
            (at_once, WaitIn(ms(500), ms(1500))),
            (failed, WaitIn(ms(1000), ms(3000))),
            // a short watch that ran its course resets the backoff, as a long one does
            (on_time, watch("10")),
            (failed, WaitIn(ms(500), ms(1500))),
            (
                Ended {
                    events: 0,
                    lasted: ms(800),
                    asked: ms(300_000),
                },
                WaitIn(ms(1000), ms(3000)),
            ),
        ]);
    }

    #[test]
    fn a_silent_watch_is_replaced_at_once_and_a_difference_relists() {
        check(&[
            (Listed("10"), watch("10")),
            (Silent, watch("10")),
            (Event("12"), Is(Step::Read)),
            (Silent, watch("12")),
            (Differs, Is(Step::List)),
            (Listed("30"), watch("30")),
        ]);
    }
}
