//! One line per event on stderr: `TIME level=LEVEL msg="..." key=value ...`.
//!
//! Each line is formatted in full and written with one `write_all` on a locked stderr, so
//! lines from different threads never interleave. Values with spaces, quotes or control
//! characters are quoted and escaped. Callers never pass tokens or file contents.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

pub fn info(msg: &str, kv: &[(&str, &dyn Display)]) {
    emit(Level::Info, msg, kv)
}

pub fn warn(msg: &str, kv: &[(&str, &dyn Display)]) {
    emit(Level::Warn, msg, kv)
}

pub fn error(msg: &str, kv: &[(&str, &dyn Display)]) {
    emit(Level::Error, msg, kv)
}

/// Lends owned field values as the `kv` of [`info`], [`warn`] and [`error`].
pub fn owned<'a>(kv: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a dyn Display)> {
    kv.iter().map(|(k, v)| (*k, v as &dyn Display)).collect()
}

pub fn emit(level: Level, msg: &str, kv: &[(&str, &dyn Display)]) {
    let line = format_line(SystemTime::now(), level, msg, kv);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Formats one log line, newline included.
pub fn format_line(
    now: SystemTime,
    level: Level,
    msg: &str,
    kv: &[(&str, &dyn Display)],
) -> String {
    let mut line = String::with_capacity(128);
    line.push_str(&rfc3339_millis(now));
    line.push_str(" level=");
    line.push_str(level.as_str());
    line.push_str(" msg=");
    push_value(&mut line, msg, true);
    for (k, v) in kv {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        push_value(&mut line, &v.to_string(), false);
    }
    line.push('\n');
    line
}

fn push_value(line: &mut String, v: &str, always_quote: bool) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain && !always_quote {
        line.push_str(v);
        return;
    }
    line.push('"');
    for c in v.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{:04x}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// `2026-11-25T13:08:55.123Z`, from the civil-from-days algorithm (no time crate).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, mo, da, h, mi, s) = civil(secs);
    format!(
        "{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// Seconds since the epoch to (year, month, day, hour, minute, second), UTC.
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        ((rem / 60) % 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let table: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_795_093_735, "2026-11-19T13:08:55.000Z"),
            (4_102_444_799, "2099-12-31T23:59:59.000Z"),
        ];
        for (secs, want) in table {
            assert_eq!(
                rfc3339_millis(UNIX_EPOCH + Duration::from_secs(*secs)),
                *want
            );
        }
    }

    #[test]
    fn lines_are_single_and_quoted() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        let line = format_line(
            t,
            Level::Warn,
            "watch ended",
            &[
                ("object", &"configmap default/envoy"),
                ("rv", &42),
                ("err", &"a \"b\"\nc"),
            ],
        );
        assert_eq!(
            line,
            "1970-01-01T00:00:01.500Z level=warn msg=\"watch ended\" object=\"configmap default/envoy\" rv=42 err=\"a \\\"b\\\"\\nc\"\n"
        );
        let line = format_line(t, Level::Info, "x", &[("empty", &"")]);
        assert!(line.ends_with("empty=\"\"\n"), "{line}");
    }
}
