//! Following one label selection (a selector in one namespace, or in every namespace): the
//! paged list of its members and the watch of the collection, with the same reflector rules
//! as a named object ([`super::reflector`]); what they find goes to the engine as members
//! that come and go.
//!
//! A list is read page by page ([`PAGE`] objects each, `limit` and `continue`) at the first
//! page's resourceVersion, and handed over whole, so that a relist that finds the same
//! versions changes nothing and one that misses a member lets it go. A continue token that
//! expired (410) starts the list again. There is no safety-net check: a selection relies on
//! its watch (resumed from the last version, bookmarks, a relist on "too old"), as
//! client-go's informers do.

use super::reflector::{Heard, Reflector, Step};
use super::{
    broken, ended, failed, gone, subject, watch_timing, with_err, Engine, Msg, Starts, WatchTiming,
};
use crate::backoff::{Backoff, Rng};
use crate::health::METRICS;
use crate::kube::{self, Client, Member, Selection, SelectionEvent};
use crate::log;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// Objects asked for per page (client-go's default).
pub const PAGE: u32 = 500;
/// Lists started again after an expired continue token before the list counts as failed.
const RESTARTS: u32 = 3;

/// Where a selection's news goes: its number among the selections, and among everything
/// followed (for `/healthz`).
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub source: usize,
    pub progress: usize,
}

/// A selection's complete list: its resourceVersion (the first page's), every member, and
/// how many pages they came in.
pub struct Listing {
    pub version: String,
    pub members: Vec<Member>,
    pub pages: u32,
}

/// Every member of `sel`, page by page, at the first page's resourceVersion. An expired
/// continue token starts the list again, [`RESTARTS`] times at most.
pub fn list_all(client: &Client, sel: &Selection) -> Result<Listing, kube::Error> {
    let mut restarts = 0;
    'list: loop {
        let (mut version, mut members, mut token) = (None, Vec::new(), None::<String>);
        let mut pages = 0u32;
        loop {
            pages += 1;
            let page = match client.list_page(sel, PAGE, token.as_deref()) {
                Ok(page) => page,
                Err(e) if e.is_gone() && token.is_some() && restarts < RESTARTS => {
                    restarts += 1;
                    let mut fields = subject(sel, "list", Some(&e), None);
                    fields.push(("listed", members.len().to_string()));
                    let fields = with_err(fields, Some(&e));
                    log::info(
                        "continue token expired; listing again from the start",
                        &log::owned(&fields),
                    );
                    continue 'list;
                }
                Err(e) => return Err(e),
            };
            let version = version.get_or_insert(page.resource_version);
            members.extend(page.members);
            match page.continue_token {
                Some(next) => token = Some(next),
                None => {
                    let version = version.clone();
                    return Ok(Listing {
                        version,
                        members,
                        pages,
                    });
                }
            }
        }
    }
}

/// One line for a list that starts following `sel` (a one-shot's, a watch's first, a
/// relist): how many members in how many pages. Poll mode's lists, one every
/// `-sync-interval`, log none.
pub fn log_listed(sel: &Selection, l: &Listing) {
    let n = l.members.len();
    let fields: [(&str, &dyn Display); 4] = [
        ("source", sel),
        ("members", &n),
        ("pages", &l.pages),
        ("version", &l.version),
    ];
    log::info("selection listed", &fields);
}

/// One selection's list+watch loop; never returns.
pub fn reflect(
    at: At,
    sel: &Selection,
    client: &Client,
    watch_timeout: Duration,
    engine: &Engine,
) -> ! {
    let mut r = Reflector::new(Backoff::new(Rng::from_entropy()));
    let mut rng = Rng::from_entropy();
    let mut starts = Starts::default();
    let mut step = r.start();
    loop {
        step = match step {
            Step::List => {
                starts.list();
                match list_all(client, sel) {
                    Ok(listing) => {
                        log_listed(sel, &listing);
                        METRICS.progress(at.progress);
                        starts.listed();
                        let next = r.on(Heard::Listed(&listing.version));
                        engine.deliver(Msg::SourceListed(at.source, listing.members));
                        next
                    }
                    Err(e) => failed(sel, "list", &e, &mut r),
                }
            }
            Step::Watch(from) => {
                let timing = watch_timing(&mut rng, watch_timeout, None);
                starts.watch();
                match client.watch_selection(sel, &from, timing.secs, timing.read_timeout) {
                    Err(e) if e.is_gone() => gone(sel, &mut r, Some(&e), None),
                    Err(e) => failed(sel, "watch", &e, &mut r),
                    Ok(mut w) => follow(&mut w, at, sel, engine, &mut r, timing),
                }
            }
            Step::Wait(d) => {
                std::thread::sleep(d);
                r.resume()
            }
            Step::Read => r.resume(),
        };
    }
}

/// Reads one watch of the selection to its end: members that come, change and go, and the
/// version moved on every event; returns the reflector's next step.
fn follow(
    w: &mut kube::SelectionWatch,
    at: At,
    sel: &Selection,
    engine: &Engine,
    r: &mut Reflector,
    timing: WatchTiming,
) -> Step {
    let started = Instant::now();
    let mut events = 0u64;
    loop {
        let version = match w.next() {
            Ok(Some(SelectionEvent::Upsert(member))) => {
                let version = member.content.resource_version.clone();
                engine.deliver(Msg::Selected(at.source, member));
                version
            }
            Ok(Some(SelectionEvent::Deleted {
                object,
                resource_version,
            })) => {
                engine.deliver(Msg::Unselected(at.source, object));
                resource_version
            }
            Ok(Some(SelectionEvent::Bookmark { resource_version })) => resource_version,
            Ok(Some(SelectionEvent::Expired(status))) => return gone(sel, r, None, Some(&status)),
            Ok(Some(SelectionEvent::Error(status))) => {
                return failed(sel, "watch", &kube::Error::Event(status), r);
            }
            Ok(None) => return ended(sel, at.progress, r, events, started.elapsed(), timing),
            Err(e) => return broken(sel, at.progress, e, r, timing.silence_first),
        };
        METRICS.progress(at.progress);
        events += 1;
        match r.on(Heard::Event(&version)) {
            Step::Read => {}
            other => return other,
        }
    }
}
