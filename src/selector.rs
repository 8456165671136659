//! Kubernetes label selectors, checked: the syntax of `labels.Parse` as the API server
//! accepts it (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`; a comma is
//! AND; blanks around tokens), with the key and value rules of the API (a key is an
//! optional DNS-subdomain prefix and `/`, then a name of at most 63 characters; a value is
//! empty or such a name).
//!
//! It only checks and normalises: the API server evaluates the selector, so the loader
//! never matches labels itself. Pure: no I/O, never panics on any input.

use std::fmt;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    Absent(String),
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches objects without the label).
    NotEquals(String, String),
    /// `key in (v1,v2)`.
    In(String, Vec<String>),
    /// `key notin (v1,v2)` (also matches objects without the label).
    NotIn(String, Vec<String>),
}

/// A checked label selector: its requirements, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

/// Why a selector is not one: the text says which part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Longest selector accepted; far above any real one, and a bound on the work done.
const MAX_LEN: usize = 4096;

/// Checks `text` as a label selector. An empty selector (which selects everything) is an
/// error here: selecting every object of a namespace is never what `-configmap-selector`
/// is for.
pub fn parse(text: &str) -> Result<Selector, Error> {
    if text.len() > MAX_LEN {
        return Err(Error(format!("longer than {MAX_LEN} bytes")));
    }
    if text.trim().is_empty() {
        return Err(Error("empty: it would select every object".into()));
    }
    let mut requirements = Vec::new();
    for part in split_top(text)? {
        requirements.push(requirement(part)?);
    }
    Ok(Selector(requirements))
}

/// Splits at the commas that are not inside parentheses.
fn split_top(text: &str) -> Result<Vec<&str>, Error> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => {
                return Err(Error(format!(
                    "{:?}: nested parenthesis",
                    part_at(text, start)
                )))
            }
            ')' if depth == 1 => depth = 0,
            ')' => return Err(Error(format!("{:?}: unmatched ')'", part_at(text, start)))),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(Error(format!("{:?}: unclosed '('", &text[start..])));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn part_at(text: &str, start: usize) -> &str {
    let rest = &text[start..];
    &rest[..rest.find(',').unwrap_or(rest.len())]
}

fn requirement(part: &str) -> Result<Requirement, Error> {
    let p = part.trim();
    let bad = |why: &str| Error(format!("{p:?}: {why}"));
    if p.is_empty() {
        return Err(bad("empty requirement"));
    }
    if let Some(key) = p.strip_prefix('!') {
        return Ok(Requirement::Absent(key_of(key.trim(), p)?));
    }
    if let Some(i) = p.find("!=") {
        let (k, v) = (&p[..i], &p[i + 2..]);
        return Ok(Requirement::NotEquals(
            key_of(k.trim(), p)?,
            value_of(v.trim(), p)?,
        ));
    }
    if let Some(i) = p.find('=') {
        let v = p[i + 1..].strip_prefix('=').unwrap_or(&p[i + 1..]);
        return Ok(Requirement::Equals(
            key_of(p[..i].trim(), p)?,
            value_of(v.trim(), p)?,
        ));
    }
    if let Some(open) = p.find('(') {
        let head = p[..open].trim_end();
        let close = p
            .rfind(')')
            .filter(|c| *c > open)
            .ok_or_else(|| bad("no ')'"))?;
        if !p[close + 1..].trim().is_empty() {
            return Err(bad("text after ')'"));
        }
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| bad("want KEY in (...) or KEY notin (...)"))?;
        let values = p[open + 1..close]
            .split(',')
            .map(|v| value_of(v.trim(), p))
            .collect::<Result<Vec<_>, _>>()?;
        let key = key_of(key.trim(), p)?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(bad(&format!(
                "unknown operator {other:?}: want in or notin"
            ))),
        };
    }
    if p.contains(char::is_whitespace) {
        return Err(bad(
            "want KEY, !KEY, KEY=VALUE, KEY!=VALUE, KEY in (...) or KEY notin (...)",
        ));
    }
    Ok(Requirement::Exists(key_of(p, p)?))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain of at most 253 characters.
fn key_of(key: &str, part: &str) -> Result<String, Error> {
    let bad = |why: String| Error(format!("{part:?}: key {key:?}: {why}"));
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|w| bad(format!("prefix {w}")))?;
            name
        }
        None => key,
    };
    label_name(name).map_err(|w| bad(w.to_string()))?;
    Ok(key.to_string())
}

/// A label value: empty, or a name of at most 63 characters.
fn value_of(value: &str, part: &str) -> Result<String, Error> {
    if !value.is_empty() {
        label_name(value).map_err(|w| Error(format!("{part:?}: value {value:?}: {w}")))?;
    }
    Ok(value.to_string())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn label_name(s: &str) -> Result<(), &'static str> {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    match s.as_bytes() {
        [] => Err("empty"),
        b if b.len() > 63 => Err("longer than 63 characters"),
        [first, .., last] | [first @ last] if !alnum(*first) || !alnum(*last) => {
            Err("must start and end with a letter or digit")
        }
        b if b.iter().all(|c| alnum(*c) || b"-_.".contains(c)) => Ok(()),
        _ => Err("only letters, digits, '-', '_' and '.'"),
    }
}

/// Lowercase DNS labels joined by dots, at most 253 characters.
fn dns_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    if s.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("must be a lowercase DNS subdomain")
    }
}

impl fmt::Display for Selector {
    /// The canonical text, as it goes into `labelSelector=` (before query escaping).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::Absent(k) => write!(f, "!{k}")?,
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::NotEquals(k, v) => write!(f, "{k}!={v}")?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Requirement::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn every_form_parses_and_prints_canonically() {
        let table: &[(&str, Selector, &str)] = &[
            (
                "app=envoy",
                Selector(vec![Equals(s("app"), s("envoy"))]),
                "app=envoy",
            ),
            (
                "app==envoy",
                Selector(vec![Equals(s("app"), s("envoy"))]),
                "app=envoy",
            ),
            (
                " app = envoy ",
                Selector(vec![Equals(s("app"), s("envoy"))]),
                "app=envoy",
            ),
            (
                "tier!=db",
                Selector(vec![NotEquals(s("tier"), s("db"))]),
                "tier!=db",
            ),
            ("a=", Selector(vec![Equals(s("a"), s(""))]), "a="),
            ("routes", Selector(vec![Exists(s("routes"))]), "routes"),
            ("!legacy", Selector(vec![Absent(s("legacy"))]), "!legacy"),
            ("! legacy", Selector(vec![Absent(s("legacy"))]), "!legacy"),
            (
                "env in (prod, staging)",
                Selector(vec![In(s("env"), vec![s("prod"), s("staging")])]),
                "env in (prod,staging)",
            ),
            (
                "env notin (dev)",
                Selector(vec![NotIn(s("env"), vec![s("dev")])]),
                "env notin (dev)",
            ),
            (
                "app.kubernetes.io/part-of=gateway,team in (a,b),!old",
                Selector(vec![
                    Equals(s("app.kubernetes.io/part-of"), s("gateway")),
                    In(s("team"), vec![s("a"), s("b")]),
                    Absent(s("old")),
                ]),
                "app.kubernetes.io/part-of=gateway,team in (a,b),!old",
            ),
        ];
        for (text, want, canonical) in table {
            let got = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(&got, want, "{text:?}");
            assert_eq!(got.to_string(), *canonical, "{text:?}");
            assert_eq!(parse(canonical).as_ref(), Ok(want), "{canonical:?} again");
        }
    }

    #[test]
    fn bad_selectors_name_the_bad_part() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("a=b,", "\"\": empty requirement"),
            (",a=b", "\"\": empty requirement"),
            ("a=b c", "\"a=b c\": value \"b c\""),
            ("-a=b", "key \"-a\": must start and end"),
            ("a=b-", "value \"b-\": must start and end"),
            ("a=b@c", "value \"b@c\": only letters"),
            (
                "Example.com/a=b",
                "prefix must be a lowercase DNS subdomain",
            ),
            ("/a=b", "prefix must be 1 to 253"),
            ("a in b", "want KEY, !KEY"),
            ("a in (b", "unclosed '('"),
            ("a in (b))", "unmatched ')'"),
            ("a in ((b))", "nested parenthesis"),
            ("a among (b)", "unknown operator \"among\""),
            ("in (b)", "want KEY in (...)"),
            ("a in (b) c", "text after ')'"),
            ("a b", "want KEY, !KEY"),
        ];
        for (text, want) in table {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let long = "a".repeat(64);
        assert!(parse(&format!("{long}=b"))
            .unwrap_err()
            .0
            .contains("longer than 63"));
        assert!(parse(&"a=b,".repeat(2000))
            .unwrap_err()
            .0
            .contains("longer than 4096"));
    }

    #[test]
    fn no_input_makes_it_panic() {
        let alphabet = [
            "a", "=", "!", "(", ")", ",", " ", "in", "notin", "/", "-", ".", "é",
        ];
        let mut rng = crate::backoff::Rng::new(7);
        for _ in 0..20_000 {
            let n = (rng.next_u64() % 12) as usize;
            let text: String = (0..n)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(sel) = parse(&text) {
                assert_eq!(
                    parse(&sel.to_string()),
                    Ok(sel.clone()),
                    "{text:?} round trip"
                );
            }
        }
    }
}
