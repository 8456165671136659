//! Label selectors as Kubernetes' `labels.Parse` (k8s.io/apimachinery v1.20) reads them:
//! its lexer, its recursive-descent parser, its key and value validation, and its error
//! texts word for word; plus matching a parsed selector against an object's labels.
//!
//! It never touches the emulator's state and never answers a request itself: errors come
//! back as text for the caller to wrap in a 400 Status.
//!
//! Measured against a real kube-apiserver v1.20.2 (`labelSelector=` on a ConfigMap list),
//! the messages below are the server's, e.g.
//! - `a in x`: "unable to parse requirement: found 'x' expected: '('"
//! - `a in (x`: "unable to parse requirement: found '', expected: ',' or ')'"
//! - `a b`: "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'"
//! - `a=b=c`: "found '=', expected: ',' or 'end of string'" (no "unable to parse" prefix)
//! - `a,` / `a=b,`: "found '', expected: identifier after ','"
//! - `,a`: "found ',', expected: !, identifier, or 'end of string'"
//! - `!`: "unable to parse requirement: found '', expected: identifier"
//! - `a=(b)`: "unable to parse requirement: found '(', expected: identifier"
//! - `-a=b`, `x/y/z`, `A.b/c=d`, a 64-character key or value: "invalid label key ..." /
//!   "invalid label value: ..." with apimachinery's validation texts (below).
//! - accepted: `a==` and `a=` (value ""), `a notin ()` (the set {""}), `a in (x,,y)`,
//!   ` a = b ` (blanks around everything), `a>1` (Gt; `<` is Lt: integer comparisons).

use std::collections::BTreeMap;

/// One requirement of a selector; every value set is sorted and deduplicated, as the
/// server's `sets.String` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LabelReq {
    /// `k=v`, `k==v`.
    Eq(String, String),
    /// `k!=v`: also true without the label.
    Ne(String, String),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)`: also true without the label.
    NotIn(String, Vec<String>),
    /// `k>n`: the label exists and is an integer above n.
    Gt(String, i64),
    /// `k<n`: the label exists and is an integer below n.
    Lt(String, i64),
}

impl LabelReq {
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let int = |k: &str| labels.get(k).and_then(|v| v.parse::<i64>().ok());
        match self {
            LabelReq::Eq(k, v) => labels.get(k) == Some(v),
            LabelReq::Ne(k, v) => labels.get(k) != Some(v),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => !labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::Gt(k, n) => int(k).is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => int(k).is_some_and(|v| v < *n),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// The lexer: identifiers and keywords end at a blank or a special symbol; special symbols
/// take the longest run that is still a token (`!=`, `==`).
fn lex(s: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        let Some(&c) = chars.get(i) else {
            out.push((Tok::End, String::new()));
            return out;
        };
        if is_special(c) {
            let mut buf = String::new();
            let mut last: Option<(Tok, String)> = None;
            while let Some(&c) = chars.get(i).filter(|c| is_special(**c)) {
                buf.push(c);
                match keyword(&buf) {
                    Some(t) => last = Some((t, buf.clone())),
                    None if last.is_some() => break,
                    None => {}
                }
                i += 1;
            }
            // Every single special symbol is a token, so `last` is always set.
            out.push(last.unwrap_or((Tok::End, buf)));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.get(i).filter(|c| !is_blank(**c) && !is_special(**c)) {
                word.push(c);
                i += 1;
            }
            let tok = keyword(&word).unwrap_or(Tok::Identifier);
            out.push((tok, word));
        }
    }
}

/// Where the parser stands: `in`/`notin` are plain identifiers except where an operator
/// is expected.
struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, operator: bool) -> (Tok, String) {
        let (t, l) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        match t {
            Tok::In | Tok::NotIn if !operator => (Tok::Identifier, l),
            _ => (t, l),
        }
    }

    fn next(&mut self, operator: bool) -> (Tok, String) {
        let item = self.peek(operator);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        item
    }

    fn selector(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut out = Vec::new();
        loop {
            let (t, lit) = self.peek(false);
            match t {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    let (t, lit) = self.next(false);
                    match t {
                        Tok::End => return Ok(out),
                        Tok::Comma => {
                            let (t2, lit2) = self.peek(false);
                            if !matches!(t2, Tok::Identifier | Tok::DoesNotExist) {
                                return Err(format!(
                                    "found '{lit2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!("found '{lit}', expected: ',' or 'end of string'"))
                        }
                    }
                }
                Tok::End => return Ok(out),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        let (mut t, mut key) = self.next(false);
        let negated = t == Tok::DoesNotExist;
        if negated {
            (t, key) = self.next(false);
        }
        if t != Tok::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        validate_key(&key)?;
        if negated {
            return Ok(LabelReq::NotExists(key));
        }
        if matches!(self.peek(false).0, Tok::End | Tok::Comma) {
            return Ok(LabelReq::Exists(key));
        }
        let (op, lit) = self.next(true);
        let values = match op {
            Tok::In | Tok::NotIn => self.values()?,
            Tok::Equals | Tok::DoubleEquals | Tok::NotEquals | Tok::GreaterThan | Tok::LessThan => {
                vec![self.exact_value()?]
            }
            _ => {
                return Err(format!(
                    "found '{lit}', expected: '=', '!=', '==', 'in', notin'"
                ))
            }
        };
        let int = if matches!(op, Tok::GreaterThan | Tok::LessThan) {
            let n = values.first().and_then(|v| v.parse::<i64>().ok());
            Some(n.ok_or("for 'Gt', 'Lt' operators, the value must be an integer")?)
        } else {
            None
        };
        // Checked after the integer test, as the server does: `a>-1` fails as a value.
        for v in &values {
            validate_value(&key, v)?;
        }
        Ok(match (op, values.as_slice(), int) {
            (Tok::GreaterThan, _, Some(n)) => LabelReq::Gt(key, n),
            (Tok::LessThan, _, Some(n)) => LabelReq::Lt(key, n),
            (Tok::In, _, _) => LabelReq::In(key, values),
            (Tok::NotIn, _, _) => LabelReq::NotIn(key, values),
            (Tok::NotEquals, [v], _) => LabelReq::Ne(key, v.clone()),
            (_, [v], _) => LabelReq::Eq(key, v.clone()),
            _ => {
                return Err(String::from(
                    "exact-match compatibility requires one single value",
                ))
            }
        })
    }

    /// `(a, b, …)`: sorted, duplicates dropped; `()`, `(,` and `,,` stand for "".
    fn values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.next(false);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.peek(false);
        let mut set = std::collections::BTreeSet::new();
        match t {
            Tok::Identifier | Tok::Comma => {
                self.identifiers(&mut set)?;
                // The server names the token before the list here, not the one it found.
                if self.next(false).0 != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
            }
            Tok::ClosedPar => {
                self.next(false);
                set.insert(String::new());
            }
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
        Ok(set.into_iter().collect())
    }

    fn identifiers(&mut self, set: &mut std::collections::BTreeSet<String>) -> Result<(), String> {
        loop {
            let (t, lit) = self.next(false);
            match t {
                Tok::Identifier => {
                    set.insert(lit);
                    let (t2, lit2) = self.peek(false);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(()),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    match self.peek(false).0 {
                        Tok::ClosedPar => {
                            set.insert(String::new());
                            return Ok(());
                        }
                        Tok::Comma => {
                            self.next(false);
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(false).0, Tok::End | Tok::Comma) {
            return Ok(String::new());
        }
        match self.next(false) {
            (Tok::Identifier, lit) => Ok(lit),
            (_, lit) => Err(format!("found '{lit}', expected: identifier")),
        }
    }
}

/// Parses a `labelSelector`; the error is the server's message.
pub(crate) fn parse(s: &str) -> Result<Vec<LabelReq>, String> {
    Parser {
        items: lex(s),
        pos: 0,
    }
    .selector()
}

// apimachinery's validation texts (pkg/util/validation).
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `RegexError`: the message, examples each followed by ", " (hence the double blanks the
/// server prints), then the pattern.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(b.first())
        && edge(b.last())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        edge(b.first())
            && edge(b.last())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

fn qualified_name_errors(value: &str) -> Vec<String> {
    let name_rx = || {
        regex_error(
            QUALIFIED_NAME_MSG,
            QUALIFIED_NAME_FMT,
            &["MyName", "my.name", "123-abc"],
        )
    };
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(String::from("prefix part must be non-empty"));
            } else {
                if prefix.len() > 253 {
                    errs.push(String::from("prefix part must be no more than 253 characters"));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                name_rx()
            )]
        }
    };
    if name.is_empty() {
        errs.push(String::from("name part must be non-empty"));
    } else if name.len() > 63 {
        errs.push(String::from("name part must be no more than 63 characters"));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {}", name_rx()));
    }
    errs
}

fn validate_key(k: &str) -> Result<(), String> {
    let errs = qualified_name_errors(k);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid label key {k:?}: {}", errs.join("; ")))
    }
}

fn validate_value(k: &str, v: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(String::from("must be no more than 63 characters"));
    }
    if !(v.is_empty() || is_qualified_name_part(v)) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "invalid label value: {v:?}: at key: {k:?}: {}",
            errs.join("; ")
        ))
    }
}
