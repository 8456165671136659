//! Envoy's admin interface, for the acknowledged apply (`-envoy-admin`): `GET /stats` over
//! plain HTTP/1.1 (by hand, like the API client), the counters of Envoy's xDS
//! subscriptions by resource type, and the one rule that says when Envoy has taken a phase.
//!
//! What Envoy 1.40 counts (measured): every file subscription has `update_attempt`,
//! `update_success`, `update_rejected` (the file parsed but a resource was refused, e.g. a
//! negative `connect_timeout`; the old config stays) and `update_failure` (the file could
//! not be read or parsed). CDS is `cluster_manager.cds.*`, LDS `listener_manager.lds.*`,
//! each route configuration `http.<stat_prefix>.rds.<name>.*`, each EDS cluster
//! `cluster.<name>.*`, each secret `sds.<name>.*`. A reload counts its attempt and its
//! outcome in one call on Envoy's main thread, which also answers the admin, so a reading
//! never shows an attempt without its outcome. A new cluster counts in
//! `cluster_manager.warming_clusters` until it has read its endpoints, a new listener in
//! `listener_manager.total_listeners_warming`.
//!
//! [`verdict`] is pure and table-tested; [`Admin::stats`] is the only I/O.

use crate::config::EnvoyAdmin;
use crate::http::{self, Request};
use crate::tls;
use crate::xds::Types;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest `/stats` answer read (about 100 bytes a line; 40,000 clusters).
const MAX_STATS_BYTES: usize = 16 << 20;

/// The stats asked for (the regex of `/stats?filter=`, percent-encoded): the subscriptions'
/// outcomes and the two warming gauges.
const STATS_PATH: &str = "/stats?filter=%28update_%28attempt%7Csuccess%7Crejected%7Cfailure%29%7Cwarming_clusters%7Ctotal_listeners_warming%29%24";

/// One subscription's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    attempt: u64,
    success: u64,
    rejected: u64,
    failure: u64,
}

impl Counters {
    fn refused(&self) -> u64 {
        self.rejected + self.failure
    }

    /// Every attempt has its outcome.
    fn concluded(&self) -> bool {
        self.attempt == self.success + self.refused()
    }
}

/// One reading of Envoy's stats: each subscription (by its stat prefix) with its type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    subscriptions: BTreeMap<String, (Types, Counters)>,
    warming_clusters: u64,
    warming_listeners: u64,
}

/// The type of the subscription whose stat prefix is `prefix`.
fn subscription_type(prefix: &str) -> Option<Types> {
    match prefix {
        "cluster_manager.cds" => Some(Types::CLUSTERS),
        "listener_manager.lds" => Some(Types::LISTENERS),
        _ if prefix.starts_with("http.")
            && (prefix.contains(".rds.") || prefix.contains(".scoped_rds.")) =>
        {
            Some(Types::ROUTES)
        }
        _ if prefix.starts_with("cluster.") => Some(Types::ENDPOINTS),
        _ if prefix.starts_with("sds.") => Some(Types::SECRETS),
        _ => None,
    }
}

impl Stats {
    /// Reads `/stats` text (`name: value` per line); lines it does not know are skipped.
    pub fn parse(body: &[u8]) -> Stats {
        let mut stats = Stats::default();
        let text = String::from_utf8_lossy(body);
        for line in text.lines() {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            match name {
                "cluster_manager.warming_clusters" => stats.warming_clusters = value,
                "listener_manager.total_listeners_warming" => stats.warming_listeners = value,
                _ => {
                    let Some((prefix, field)) = name.rsplit_once(".update_") else {
                        continue;
                    };
                    let Some(t) = subscription_type(prefix) else {
                        continue;
                    };
                    let (_, c) = stats
                        .subscriptions
                        .entry(prefix.to_string())
                        .or_insert((t, Counters::default()));
                    match field {
                        "attempt" => c.attempt = value,
                        "success" => c.success = value,
                        "rejected" => c.rejected = value,
                        "failure" => c.failure = value,
                        _ => {}
                    }
                }
            }
        }
        stats
    }

    /// The types Envoy has any subscription of.
    pub fn subscribed(&self) -> Types {
        self.subscriptions
            .values()
            .fold(Types::NONE, |all, (t, _)| all.with(*t))
    }

    /// Every subscription's attempts have their outcome, and no cluster or listener warms:
    /// nothing is in flight.
    fn settled(&self) -> bool {
        self.warming_clusters == 0
            && self.warming_listeners == 0
            && self.subscriptions.values().all(|(_, c)| c.concluded())
    }

    /// Nothing in flight, and Envoy has never refused a file since it started: everything
    /// it read is what it runs.
    pub fn clean(&self) -> bool {
        self.settled() && self.subscriptions.values().all(|(_, c)| c.refused() == 0)
    }
}

/// What a reading says of a phase that asked Envoy to take `types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet: a type has no new attempt, or a cluster or listener still warms.
    Pending,
    /// Envoy reloaded every type asked for; `refused`: the types it rejected (or could not
    /// read) in that reload.
    Taken { refused: Types },
}

/// Compares a reading taken after a phase's write (`now`) with one taken before it, for a
/// phase whose files name `types`, of which its changed (not new) files name `reloads`.
///
/// Each type of `reloads` that Envoy subscribes to (before or now) must show a new attempt
/// (a subscription whose attempts grew, or a new one); a type Envoy does not subscribe to
/// is not waited for (no file of it is read). A new file shows as warming instead: clusters
/// must be warm when `types` holds clusters or endpoints, listeners when it holds routes
/// or listeners. A type of `types` is refused when one of its subscriptions counts more
/// rejections or failures than before.
pub fn verdict(before: &Stats, now: &Stats, types: Types, reloads: Types) -> Verdict {
    let subscribed = before.subscribed().with(now.subscribed());
    let mut wanted = Types::EACH
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| reloads.meets(*t) && subscribed.meets(*t));
    let of = |s: &Stats, prefix: &str| s.subscriptions.get(prefix).map(|(_, c)| *c);
    let mut moved = Types::NONE;
    let mut refused = Types::NONE;
    for (prefix, (t, c)) in &now.subscriptions {
        let was = of(before, prefix).unwrap_or_default();
        if c.attempt > was.attempt {
            moved = moved.with(*t);
        }
        if c.refused() > was.refused() {
            refused = refused.with(*t);
        }
    }
    let clusters = Types::CLUSTERS.with(Types::ENDPOINTS);
    let listeners = Types::LISTENERS.with(Types::ROUTES);
    let warm = (!types.meets(clusters) || now.warming_clusters == 0)
        && (!types.meets(listeners) || now.warming_listeners == 0);
    let in_flight = now
        .subscriptions
        .values()
        .any(|(t, c)| types.meets(*t) && !c.concluded());
    if wanted.all(|t| moved.meets(t)) && warm && !in_flight {
        Verdict::Taken {
            refused: types.and(refused),
        }
    } else {
        Verdict::Pending
    }
}

/// Why a reading failed.
#[derive(Debug)]
pub enum Unread {
    /// Nothing listens on the admin address: Envoy is not running (starting, restarting,
    /// crashed).
    Refused(String),
    /// Anything else: a timeout, a reset, an answer that is not 200.
    Failed(String),
}

impl Unread {
    pub fn text(&self) -> &str {
        match self {
            Unread::Refused(e) | Unread::Failed(e) => e,
        }
    }
}

/// Envoy's admin at one address.
pub struct Admin {
    at: EnvoyAdmin,
}

impl Admin {
    pub fn new(at: EnvoyAdmin) -> Admin {
        Admin { at }
    }

    /// The longest wait for one phase (`-envoy-timeout`).
    pub fn timeout(&self) -> Duration {
        self.at.timeout
    }

    pub fn address(&self) -> &EnvoyAdmin {
        &self.at
    }

    /// One reading of the stats, within `within` for the connection and each read.
    pub fn stats(&self, within: Duration) -> Result<Stats, Unread> {
        let within = within.max(Duration::from_millis(1));
        let mut stream = tls::connect(&self.at.host, self.at.port, None, within, within).map_err(
            |e| match e {
                tls::Error::Connect(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Unread::Refused(format!("{}: connection refused", self.at))
                }
                e => Unread::Failed(format!("{}: {e}", self.at)),
            },
        )?;
        let host = self.at.host_header();
        let failed = |e: http::Error| Unread::Failed(format!("GET {}/stats: {e}", self.at));
        http::write_request(
            &mut stream,
            &Request {
                method: "GET",
                host: &host,
                path_and_query: STATS_PATH,
                headers: &[],
                body: b"",
            },
        )
        .map_err(failed)?;
        // by value, as the API client reads: one copy of the reader's code
        let mut response = http::read_response(stream, false).map_err(failed)?;
        let body = response.read_body(MAX_STATS_BYTES).map_err(failed)?;
        if response.head.status != 200 {
            return Err(Unread::Failed(format!(
                "GET {}/stats: status {}",
                self.at, response.head.status
            )));
        }
        Ok(Stats::parse(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stats of the end-to-end bootstrap (clusters blue and green, route canary), as
    /// Envoy 1.40 printed them, with `extra` lines added.
    fn reading(extra: &str) -> Stats {
        let base = "cluster.blue.update_attempt: 1\ncluster.blue.update_failure: 0\ncluster.blue.update_rejected: 0\ncluster.blue.update_success: 1\ncluster_manager.cds.update_attempt: 1\ncluster_manager.cds.update_failure: 0\ncluster_manager.cds.update_rejected: 0\ncluster_manager.cds.update_success: 1\ncluster_manager.warming_clusters: 0\nhttp.ingress.rds.canary.update_attempt: 1\nhttp.ingress.rds.canary.update_failure: 0\nhttp.ingress.rds.canary.update_rejected: 0\nhttp.ingress.rds.canary.update_success: 1\nlistener_manager.lds.update_attempt: 1\nlistener_manager.lds.update_failure: 0\nlistener_manager.lds.update_rejected: 0\nlistener_manager.lds.update_success: 1\nlistener_manager.total_listeners_warming: 0\n";
        Stats::parse(format!("{base}{extra}").as_bytes())
    }

    #[test]
    fn parse_sorts_subscriptions_by_type() {
        let s = reading("sds.cert.update_attempt: 2\nserver.uptime: 5\ngarbage\ncluster.x.update_attempt: many\nhttp.ingress.downstream_rq_total: 9\n");
        let types: Vec<(&str, Types)> = s
            .subscriptions
            .iter()
            .map(|(p, (t, _))| (p.as_str(), *t))
            .collect();
        assert_eq!(
            types,
            [
                ("cluster.blue", Types::ENDPOINTS),
                ("cluster_manager.cds", Types::CLUSTERS),
                ("http.ingress.rds.canary", Types::ROUTES),
                ("listener_manager.lds", Types::LISTENERS),
                ("sds.cert", Types::SECRETS),
            ]
        );
        assert_eq!(s.subscriptions["sds.cert"].1.attempt, 2);
        // a value that is no number is no reading
        assert!(!s.subscriptions.contains_key("cluster.x"));
        assert!(!s.clean(), "sds.cert has attempts without outcome");
        assert!(reading("").clean());
        assert!(!reading("cluster_manager.warming_clusters: 1\n").clean());
        assert!(!reading("cluster.blue.update_rejected: 1\n").clean());
        assert_eq!(Stats::parse(b""), Stats::default());
    }

    #[test]
    fn verdict_table() {
        let before = reading("");
        let (c, e, r, l, s) = (
            Types::CLUSTERS,
            Types::ENDPOINTS,
            Types::ROUTES,
            Types::LISTENERS,
            Types::SECRETS,
        );
        let cds_ok =
            "cluster_manager.cds.update_attempt: 2\ncluster_manager.cds.update_success: 2\n";
        let new_cluster = "cluster.c3.update_attempt: 1\ncluster.c3.update_success: 1\n";
        let taken = |refused| Verdict::Taken { refused };
        let cases: &[(&str, &str, Types, Verdict)] = &[
            ("nothing moved", "", c, Verdict::Pending),
            ("nothing asked", "", Types::NONE, taken(Types::NONE)),
            ("cds reloaded", cds_ok, c, taken(Types::NONE)),
            (
                "a new cluster still warming",
                &format!("{cds_ok}cluster_manager.warming_clusters: 1\n"),
                c,
                Verdict::Pending,
            ),
            (
                "a new cluster and its endpoints",
                &format!("{cds_ok}{new_cluster}"),
                c.with(e),
                taken(Types::NONE),
            ),
            ("endpoints asked, only cds moved", cds_ok, c.with(e), Verdict::Pending),
            (
                "cds rejected",
                "cluster_manager.cds.update_attempt: 2\ncluster_manager.cds.update_rejected: 1\n",
                c,
                taken(c),
            ),
            (
                "cds unreadable",
                "cluster_manager.cds.update_attempt: 2\ncluster_manager.cds.update_failure: 1\n",
                c,
                taken(c),
            ),
            (
                "a refusal of a type not asked for is not this phase's",
                "cluster_manager.cds.update_attempt: 2\ncluster_manager.cds.update_rejected: 1\nhttp.ingress.rds.canary.update_attempt: 2\nhttp.ingress.rds.canary.update_success: 2\n",
                r,
                taken(Types::NONE),
            ),
            (
                "a listener warming",
                "listener_manager.lds.update_attempt: 2\nlistener_manager.lds.update_success: 2\nlistener_manager.total_listeners_warming: 1\n",
                l,
                Verdict::Pending,
            ),
            (
                "secrets: Envoy reads none, nothing to wait for",
                "",
                s,
                taken(Types::NONE),
            ),
            (
                "an attempt without its outcome",
                "cluster_manager.cds.update_attempt: 2\n",
                c,
                Verdict::Pending,
            ),
        ];
        for (what, after, types, want) in cases {
            let got = verdict(&before, &reading(after), *types, *types);
            assert_eq!(got, *want, "{what}");
        }
        // A new endpoints file is not reloaded: its new cluster warms, then is warm.
        let warming = format!("{cds_ok}cluster_manager.warming_clusters: 1\n");
        assert_eq!(
            verdict(&before, &reading(&warming), c.with(e), c),
            Verdict::Pending
        );
        assert_eq!(
            verdict(&before, &reading(cds_ok), c.with(e), c),
            taken(Types::NONE)
        );
        // A rejected cluster never reads its new endpoints: taken, refused.
        let rejected =
            "cluster_manager.cds.update_attempt: 2\ncluster_manager.cds.update_rejected: 1\n";
        assert_eq!(verdict(&before, &reading(rejected), c.with(e), c), taken(c));
        // A cluster removed takes its stats along; the others still count.
        let mut gone = reading(cds_ok);
        gone.subscriptions.remove("cluster.blue");
        assert_eq!(verdict(&before, &gone, c, c), taken(Types::NONE));
    }
}
