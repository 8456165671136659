//! What the loader knows of Envoy's files, in one place and by one rule: which xDS
//! resource types a file names (for the order of the per-key renames, providers before
//! consumers, and for the phases of an acknowledged apply) and whether it carries Listener
//! or Cluster resources (for the guard against an update that would make Envoy remove them
//! all).
//!
//! A sniff, not a YAML or JSON parser: a type counts where its type URL (`…/envoy.NAME`
//! followed by a byte that cannot continue a name) occurs outside a YAML comment (`#` at
//! the start of a line or after white space). Pure functions over bytes; they never
//! allocate beyond the result and read each byte a bounded number of times.

use crate::bytes::find_bytes;
use std::collections::BTreeMap;

/// xDS resource types and their place in [`rename_order`]: providers before consumers.
const XDS_RANKS: [(&[u8], u8); 7] = [
    (b"envoy.extensions.transport_sockets.tls.v3.Secret", 1),
    (b"envoy.config.endpoint.v3.ClusterLoadAssignment", 2),
    (b"envoy.config.cluster.v3.Cluster", 3),
    (b"envoy.config.route.v3.RouteConfiguration", 4),
    (b"envoy.config.route.v3.ScopedRouteConfiguration", 4),
    (b"envoy.config.route.v3.VirtualHost", 4),
    (b"envoy.config.listener.v3.Listener", 5),
];

const CLUSTER_RANK: u8 = 3;
const LISTENER_RANK: u8 = 5;
const LISTENERS_OR_CLUSTERS: u8 = 1 << LISTENER_RANK | 1 << CLUSTER_RANK;

/// The ranks (bit `1 << rank`) of the xDS types that `content` names in code; the scan
/// ends at the first type whose bit is in `enough` (0: it reads the whole content).
fn ranks_named(content: &[u8], enough: u8) -> u8 {
    let name_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.';
    let mut ranks = 0u8;
    for at in CodeMatches::new(content, b"/envoy.") {
        let rest = content.get(at + 1..).unwrap_or_default();
        for (name, r) in XDS_RANKS {
            if rest.starts_with(name) && !rest.get(name.len()).is_some_and(name_byte) {
                ranks |= 1 << r;
            }
        }
        if ranks & enough != 0 {
            break;
        }
    }
    ranks
}

/// The highest rank of the xDS types a file's content names, 0 when it names none.
pub fn xds_rank(content: &[u8]) -> u8 {
    match ranks_named(content, 0) {
        0 => 0,
        ranks => 7 - ranks.leading_zeros() as u8,
    }
}

/// Whether a file carries Listener or Cluster resources: a `resources` key and a Listener or
/// Cluster type URL, both in code. Envoy reads such a file with none left as "remove every
/// listener / cluster".
pub fn carries_listeners_or_clusters(content: &[u8]) -> bool {
    CodeMatches::new(content, b"resources").next().is_some()
        && ranks_named(content, LISTENERS_OR_CLUSTERS) & LISTENERS_OR_CLUSTERS != 0
}

/// A set of xDS resource types: what a file names, what Envoy must acknowledge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    pub const NONE: Types = Types(0);
    pub const SECRETS: Types = Types(1 << 1);
    pub const ENDPOINTS: Types = Types(1 << 2);
    pub const CLUSTERS: Types = Types(1 << 3);
    pub const ROUTES: Types = Types(1 << 4);
    pub const LISTENERS: Types = Types(1 << 5);
    /// Each type with its name in logs, providers first.
    pub const EACH: [(Types, &'static str); 5] = [
        (Types::SECRETS, "Secret"),
        (Types::ENDPOINTS, "ClusterLoadAssignment"),
        (Types::CLUSTERS, "Cluster"),
        (Types::ROUTES, "RouteConfiguration"),
        (Types::LISTENERS, "Listener"),
    ];

    /// The types `content` names in code (rank 4 counts as routes: RouteConfiguration,
    /// ScopedRouteConfiguration, VirtualHost).
    pub fn of(content: &[u8]) -> Types {
        Types(ranks_named(content, 0))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the two sets share a type.
    pub fn meets(self, other: Types) -> bool {
        self.0 & other.0 != 0
    }

    pub fn with(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    /// The types in both sets.
    pub fn and(self, other: Types) -> Types {
        Types(self.0 & other.0)
    }

    /// `Cluster,ClusterLoadAssignment`-style names, providers first; empty for none.
    pub fn names(self) -> String {
        let names: Vec<&str> = Types::EACH
            .iter()
            .filter(|(t, _)| self.meets(*t))
            .map(|(_, n)| *n)
            .collect();
        names.join(",")
    }
}

/// How many resources `content` declares: its type URLs of known xDS types, in code.
fn resources(content: &[u8]) -> usize {
    let name_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.';
    CodeMatches::new(content, b"/envoy.")
        .filter(|&at| {
            let rest = content.get(at + 1..).unwrap_or_default();
            XDS_RANKS.iter().any(|(name, _)| {
                rest.starts_with(name) && !rest.get(name.len()).is_some_and(name_byte)
            })
        })
        .count()
}

/// One step of an update applied in phases: the keys it brings to their new state (new or
/// changed content, or gone), the types its new and changed files name (what Envoy may
/// reject, and what must be warm after it), and the types of its changed files alone:
/// those Envoy reloads for sure. A new file is read only by a config that names it (a new
/// cluster reads its new endpoints file), so its reading shows as warming, not as a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub keys: Vec<String>,
    pub types: Types,
    pub reloads: Types,
}

/// The phases that take `old` to `new`, make before break:
///
/// 1. providers that come or grow: Secrets, endpoints, clusters, and files of no xDS type
///    (certificates), new or changed with at least as many resources as before;
/// 2. consumers: route configurations and listeners, new, changed or gone;
/// 3. providers that shrink: gone, or changed with fewer resources (a cluster removed).
///
/// So an update that adds a cluster and routes to it shows Envoy the cluster first, and one
/// that routes away from a cluster and removes it moves the route first. A phase with
/// nothing to acknowledge (no xDS type in its new files) joins the next one; an update
/// that touches one phase has one. No phase when nothing changed.
pub fn phases(old: &BTreeMap<String, Vec<u8>>, new: &BTreeMap<String, Vec<u8>>) -> Vec<Phase> {
    let mut buckets: [Phase; 3] = std::array::from_fn(|_| Phase {
        keys: Vec::new(),
        types: Types::NONE,
        reloads: Types::NONE,
    });
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (before, after) = (old.get(key), new.get(key));
        if before == after {
            continue;
        }
        let rank = xds_rank(after.or(before).map_or(&[][..], |c| c.as_slice()));
        let bucket = match (before, after) {
            _ if rank >= 4 => 1,
            (_, None) => 2,
            (Some(b), Some(a)) if resources(a) < resources(b) => 2,
            _ => 0,
        };
        let phase = &mut buckets[bucket];
        phase.keys.push(key.clone());
        if let Some(a) = after {
            phase.types = phase.types.with(Types::of(a));
            if before.is_some() {
                phase.reloads = phase.reloads.with(Types::of(a));
            }
        }
    }
    let mut out: Vec<Phase> = Vec::new();
    let mut pending: Option<Phase> = None;
    for phase in buckets.into_iter().filter(|p| !p.keys.is_empty()) {
        let phase = match pending.take() {
            Some(mut p) => {
                p.keys.extend(phase.keys);
                p.keys.sort();
                p.types = p.types.with(phase.types);
                p.reloads = p.reloads.with(phase.reloads);
                p
            }
            None => phase,
        };
        if phase.types.is_empty() {
            pending = Some(phase);
        } else {
            out.push(phase);
        }
    }
    out.extend(pending);
    out
}

/// The order in which changed keys' links are renamed after the switch: providers before
/// consumers, by the xDS type each file's content names (its `@type` URL):
///
/// | rank | content |
/// |---|---|
/// | 0 | no xDS type: certificates, scripts, anything else |
/// | 1 | `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS) |
/// | 2 | `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS) |
/// | 3 | `envoy.config.cluster.v3.Cluster` (CDS) |
/// | 4 | `envoy.config.route.v3.RouteConfiguration`, `ScopedRouteConfiguration`, `VirtualHost` (RDS) |
/// | 5 | `envoy.config.listener.v3.Listener` (LDS) |
///
/// A file naming several types takes its highest rank; a key missing from `files` ranks 0;
/// ties go by key name; a key given twice appears once.
pub fn rename_order<'a>(files: &'a BTreeMap<String, Vec<u8>>, keys: &[&'a str]) -> Vec<&'a str> {
    if let [] | [_] = keys {
        // Nothing to order: no file needs reading (a large one would cost a scan).
        return keys.to_vec();
    }
    let mut ranked: Vec<(u8, &'a str)> = keys
        .iter()
        .map(|k| (files.get(*k).map_or(0, |c| xds_rank(c)), *k))
        .collect();
    ranked.sort_unstable();
    ranked.dedup();
    ranked.into_iter().map(|(_, k)| k).collect()
}

/// The offsets where `needle` (which holds neither '\n' nor '#') occurs outside a YAML
/// comment. An occurrence is in code when no comment starts before it on its line (none
/// can start inside it: it holds no '#'). Linear: the search, the line starts and the
/// comment starts each look at every byte once.
struct CodeMatches<'a> {
    content: &'a [u8],
    needle: &'a [u8],
    from: usize,
    line_start: usize,
    /// content[line_start..checked] is known to hold no comment start.
    checked: usize,
}

impl<'a> CodeMatches<'a> {
    fn new(content: &'a [u8], needle: &'a [u8]) -> CodeMatches<'a> {
        CodeMatches {
            content,
            needle,
            from: 0,
            line_start: 0,
            checked: 0,
        }
    }
}

impl Iterator for CodeMatches<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let content = self.content;
        while let Some(at) = content
            .get(self.from..)
            .and_then(|rest| find_bytes(rest, self.needle))
            .map(|i| self.from + i)
        {
            let unseen = content.get(self.checked..at).unwrap_or_default();
            if let Some(nl) = unseen.iter().rposition(|&b| b == b'\n') {
                self.line_start = self.checked + nl + 1;
            }
            let comment = (self.checked.max(self.line_start)..at).any(|i| {
                content.get(i) == Some(&b'#')
                    && (i == self.line_start
                        || content.get(i - 1).is_some_and(u8::is_ascii_whitespace))
            });
            if comment {
                // The rest of the line is comment too: go on from the next line.
                let nl = content
                    .get(at..)
                    .and_then(|rest| rest.iter().position(|&b| b == b'\n'))?;
                let next_line = at + nl + 1;
                (self.from, self.line_start, self.checked) = (next_line, next_line, next_line);
                continue;
            }
            (self.from, self.checked) = (at + 1, at);
            return Some(at);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDS: &[u8] = b"version_info: \"1\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: l\n";
    const CDS: &[u8] = b"resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n";
    const EDS: &[u8] = b"resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: c\n";

    fn files(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn xds_rank_table() {
        // The ranks are found where "/envoy." occurs.
        assert!(XDS_RANKS
            .iter()
            .all(|(name, _)| name.starts_with(b"envoy.")));
        let cases: &[(&[u8], u8)] = &[
            (b"", 0),
            (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0),
            (b"#!/bin/sh\necho hi /\n", 0),
            (b"resources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: cert\n", 1),
            (EDS, 2),
            (CDS, 3),
            (b"resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n", 4),
            (b"resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration\n", 4),
            (b"{\"resources\":[{\"@type\":\"type.googleapis.com/envoy.config.route.v3.VirtualHost\"}]}", 4),
            (LDS, 5),
            // A listener embedding other types keeps its own, the highest.
            (b"- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  filter_chains:\n  - transport_socket:\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n", 5),
            // Several resource types in one file: the highest.
            (b"- '@type': type.googleapis.com/envoy.config.cluster.v3.Cluster\n- '@type': type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n", 3),
            // Longer names that start like a known one are other types.
            (b"\"@type\": type.googleapis.com/envoy.config.cluster.v3.ClusterCollection\n", 0),
            (b"\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener.Sub\n", 0),
            (b"\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig\n", 0),
            // A bare name is not a type URL.
            (b"envoy.config.listener.v3.Listener", 0),
            // JSON's escaped slash, and a URL at the very end.
            (b"\"type.googleapis.com\\/envoy.config.cluster.v3.Cluster\"", 3),
            (b"type.googleapis.com/envoy.config.route.v3.VirtualHost", 4),
            // A type in a YAML comment is no type: the same rule as the guard's.
            (b"resources:\n# - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n", 3),
            (b"resources: [] # type.googleapis.com/envoy.config.listener.v3.Listener\n", 0),
            // Truncated and binary content.
            (b"type.googleapis.com/envoy.config.listener.v3.Liste", 0),
            (b"/", 0),
            (&[0xff, b'/', 0xfe, b'/'], 0),
        ];
        for (content, want) in cases {
            assert_eq!(
                xds_rank(content),
                *want,
                "{:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    #[test]
    fn rename_order_table() {
        let eds2: &[u8] = b"resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: d\n";
        let snapshot = files(&[
            ("z-cert.pem", b"-----BEGIN CERTIFICATE-----\n"),
            ("a-lds.yaml", LDS),
            ("b-cds.json", CDS),
            ("c-eds.yaml", EDS),
            ("d-eds.yaml", eds2),
            ("e-rds.yaml", b"\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n"),
            ("f-sds.yaml", b"\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n"),
            ("run.sh", b"#!/bin/sh\n"),
        ]);
        let cases: &[(&[&str], &[&str])] = &[
            (&[], &[]),
            (&["a-lds.yaml"], &["a-lds.yaml"]),
            (
                &[
                    "a-lds.yaml",
                    "b-cds.json",
                    "c-eds.yaml",
                    "e-rds.yaml",
                    "f-sds.yaml",
                    "z-cert.pem",
                ],
                &[
                    "z-cert.pem",
                    "f-sds.yaml",
                    "c-eds.yaml",
                    "b-cds.json",
                    "e-rds.yaml",
                    "a-lds.yaml",
                ],
            ),
            // Ties by name, data files first.
            (
                &["d-eds.yaml", "run.sh", "c-eds.yaml", "z-cert.pem"],
                &["run.sh", "z-cert.pem", "c-eds.yaml", "d-eds.yaml"],
            ),
            // Unknown keys rank 0; duplicates appear once.
            (
                &["a-lds.yaml", "missing", "a-lds.yaml"],
                &["missing", "a-lds.yaml"],
            ),
        ];
        for (keys, want) in cases {
            assert_eq!(rename_order(&snapshot, keys), *want, "keys {keys:?}");
        }
    }

    #[test]
    fn phases_table() {
        let cds2: &[u8] = b"resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: d\n";
        let rds: &[u8] = b"resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r\n";
        let rds_b: &[u8] = b"resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: r # to d\n";
        let cert: &[u8] = b"-----BEGIN CERTIFICATE-----\n";
        let base = files(&[
            ("cds.yaml", CDS),
            ("eds-c.yaml", EDS),
            ("rds.yaml", rds),
            ("lds.yaml", LDS),
        ]);
        let edit = |changes: &[(&str, Option<&[u8]>)]| {
            let mut f = base.clone();
            for (k, v) in changes {
                match v {
                    Some(v) => f.insert(k.to_string(), v.to_vec()),
                    None => f.remove(*k),
                };
            }
            f
        };
        let (c, e, r, l, none) = (
            Types::CLUSTERS,
            Types::ENDPOINTS,
            Types::ROUTES,
            Types::LISTENERS,
            Types::NONE,
        );
        // (keys, types, reloads) of each phase
        let cases: &[(&str, &[(&str, Option<&[u8]>)], &[(&[&str], Types, Types)])] = &[
            ("nothing changed", &[], &[]),
            ("one consumer", &[("rds.yaml", Some(rds_b))], &[(&["rds.yaml"], r, r)]),
            ("one provider", &[("eds-c.yaml", Some(b"x: 1\n- type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n"))], &[(&["eds-c.yaml"], e, e)]),
            (
                "a new cluster, its endpoints and a route to it: providers first",
                &[("cds.yaml", Some(cds2)), ("eds-d.yaml", Some(EDS)), ("rds.yaml", Some(rds_b))],
                &[(&["cds.yaml", "eds-d.yaml"], c.with(e), c), (&["rds.yaml"], r, r)],
            ),
            (
                "a route moved away and its cluster removed: consumers first",
                &[("cds.yaml", Some(b"resources: []\n")), ("eds-c.yaml", None), ("rds.yaml", Some(rds_b))],
                &[(&["rds.yaml"], r, r), (&["cds.yaml", "eds-c.yaml"], none, none)],
            ),
            (
                "add, route, remove: three phases",
                &[("eds-d.yaml", Some(EDS)), ("eds-c.yaml", None), ("lds.yaml", Some(b"# new\n- type.googleapis.com/envoy.config.listener.v3.Listener\n"))],
                &[(&["eds-d.yaml"], e, none), (&["lds.yaml"], l, l), (&["eds-c.yaml"], none, none)],
            ),
            (
                "a certificate has nothing to acknowledge: it joins the listener",
                &[("cert.pem", Some(cert)), ("lds.yaml", Some(b"# new\n- type.googleapis.com/envoy.config.listener.v3.Listener\n"))],
                &[(&["cert.pem", "lds.yaml"], l, l)],
            ),
            (
                "only removals: consumers and providers in one write",
                &[("rds.yaml", None), ("eds-c.yaml", None)],
                &[(&["eds-c.yaml", "rds.yaml"], none, none)],
            ),
            (
                "a consumer gone is a consumer: ranked by its old content",
                &[("rds.yaml", None), ("cds.yaml", Some(cds2))],
                &[(&["cds.yaml"], c, c), (&["rds.yaml"], none, none)],
            ),
            (
                "a file that changes type is ranked by its new content",
                &[("eds-c.yaml", Some(rds))],
                &[(&["eds-c.yaml"], r, r)],
            ),
        ];
        for (what, changes, want) in cases {
            let got = phases(&base, &edit(changes));
            let want: Vec<Phase> = want
                .iter()
                .map(|(keys, types, reloads)| Phase {
                    keys: keys.iter().map(|k| k.to_string()).collect(),
                    types: *types,
                    reloads: *reloads,
                })
                .collect();
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(c.with(e).names(), "ClusterLoadAssignment,Cluster");
        assert_eq!(none.names(), "");
        assert_eq!(resources(cds2), 2);
        assert_eq!(
            resources(b"resources: [] # type.googleapis.com/envoy.config.cluster.v3.Cluster\n"),
            0
        );
    }

    /// The sniff line by line, as simple as it can be written: what the fast one must match.
    fn carries_reference(content: &[u8]) -> bool {
        let name_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.';
        let (mut resources, mut typed) = (false, false);
        for line in content.split(|b| *b == b'\n') {
            let code = match line
                .iter()
                .enumerate()
                .position(|(i, b)| *b == b'#' && (i == 0 || line[i - 1].is_ascii_whitespace()))
            {
                Some(i) => &line[..i],
                None => line,
            };
            let at = |needle: &[u8]| {
                (0..code.len())
                    .filter(|&i| code[i..].starts_with(needle))
                    .map(|i| i + needle.len())
                    .collect::<Vec<_>>()
            };
            resources |= !at(b"resources").is_empty();
            for name in [
                &b"/envoy.config.listener.v3.Listener"[..],
                b"/envoy.config.cluster.v3.Cluster",
            ] {
                // the byte after the name is read from the whole line: it may be a '#'
                typed |= at(name)
                    .iter()
                    .any(|&end| !line.get(end).is_some_and(name_byte));
            }
        }
        resources && typed
    }

    #[test]
    fn the_sniff_matches_the_line_by_line_reading() {
        let pieces: &[&[u8]] = &[
            b"resources",
            b"resources: []",
            b"type.googleapis.com/envoy.config.",
            b"type.googleapis.com/envoy.config.listener.v3.Listener",
            b"type.googleapis.com/envoy.config.cluster.v3.Cluster",
            b"type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            b"listener.v3.Listener",
            b"cluster.v3.Cluster",
            b"#",
            b" #",
            b"a#",
            b" ",
            b"\t",
            b"\n",
            b"\r\n",
            b"x",
            b"\"@type\": ",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut yes, mut no) = (0, 0);
        for _ in 0..20_000 {
            let mut content = Vec::new();
            for _ in 0..next() % 12 {
                content.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let want = carries_reference(&content);
            assert_eq!(
                carries_listeners_or_clusters(&content),
                want,
                "{:?}",
                String::from_utf8_lossy(&content)
            );
            if want {
                yes += 1;
            } else {
                no += 1;
            }
        }
        // Both answers were exercised.
        assert!(yes > 100 && no > 100, "{yes} {no}");
    }
}
