//! What every JSON report says about how it was made: which pgsalvage (version and commit),
//! which command line (passwords elided), when it started and how long each phase took.
//!
//! The fields are added to the top level of every report [`write_json_file`](super::write_json_file)
//! writes (verify, recover's comparison, check, status, apply, and the manifest of `baseline
//! --json`), so each report type stays as it is and no caller can forget them:
//!
//! ```text
//! "tool": { "name": "pgsalvage", "version": "0.1.0", "commit": "1a2b3c4d5e6f" | "unknown",
//!           "build_date": "2026-12-05" },
//! "command_line": ["pgsalvage", "verify", "--base", "postgresql://app:***@backup/app", …],
//! "timings": { "started_at": "2026-12-05T14:09:16.120Z", "elapsed_ms": 1234,
//!              "phases": [ { "name": "reading catalogs", "started_ms": 3, "elapsed_ms": 40 }, … ] }
//! ```
//! A report read back by `pgsalvage report` keeps the fields it was written with. The phases are
//! marked by each command with `log::phase` and listed in its JSON schema's documentation.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{json, Value};

/// The binary's identity, stamped by `build.rs`.
#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
    pub commit: &'static str,
    pub build_date: &'static str,
}

pub fn tool() -> Tool {
    Tool {
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("PGSALVAGE_COMMIT"),
        build_date: env!("PGSALVAGE_BUILD_DATE"),
    }
}

/// `0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-05)`: what `--version` prints after the name.
pub fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let t = tool();
        format!(
            "{} (commit {}, built {})",
            t.version, t.commit, t.build_date
        )
    })
}

struct Invocation {
    command_line: Vec<String>,
    started_at: String,
}

static INVOCATION: OnceLock<Invocation> = OnceLock::new();

/// Records the command line (passwords elided) and the start time; the binary calls it once,
/// first thing. Reports written without it (the library used directly) carry an empty command
/// line.
pub fn record_invocation(args: impl IntoIterator<Item = String>) {
    crate::log::epoch();
    let _ = INVOCATION.set(Invocation {
        command_line: args.into_iter().map(|a| elide_secrets(&a)).collect(),
        started_at: now_utc_millis(),
    });
}

/// The provenance fields of a report written now.
pub fn fields() -> Vec<(&'static str, Value)> {
    let inv = INVOCATION.get();
    let phases: Vec<Value> = crate::log::phases()
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "started_ms": p.started.as_millis() as u64,
                "elapsed_ms": p.elapsed.as_millis() as u64,
            })
        })
        .collect();
    vec![
        ("tool", json!(tool())),
        (
            "command_line",
            json!(inv.map(|i| i.command_line.clone()).unwrap_or_default()),
        ),
        (
            "timings",
            json!({
                "started_at": inv.map(|i| i.started_at.clone()),
                "elapsed_ms": crate::log::epoch().elapsed().as_millis() as u64,
                "phases": phases,
            }),
        ),
    ]
}

/// A report as JSON with the provenance fields added at its top level (kept if already there),
/// every other value exactly as the report wrote it: keys' numerics stay exact, where a
/// `serde_json::Value` would read them as floats.
pub fn stamped(
    report: &impl serde::Serialize,
) -> serde_json::Result<Box<serde_json::value::RawValue>> {
    use serde_json::value::{to_raw_value, RawValue};
    let text = serde_json::to_string(report)?;
    let Ok(mut map) =
        serde_json::from_str::<std::collections::BTreeMap<String, Box<RawValue>>>(&text)
    else {
        return RawValue::from_string(text);
    };
    for (name, field) in fields() {
        if !map.contains_key(name) {
            map.insert(name.to_string(), to_raw_value(&field)?);
        }
    }
    to_raw_value(&map)
}

/// Adds the provenance fields to a report's top-level object (kept if already there: a report
/// rendered again keeps the run it came from).
pub fn stamp(value: &mut Value) {
    if let Value::Object(map) = value {
        for (name, field) in fields() {
            map.entry(name).or_insert(field);
        }
    }
}

/// An argument with any password replaced by `***`: in a URL's user info
/// (`postgresql://app:secret@host` → `postgresql://app:***@host`) and as a `password=` keyword
/// value (key=value strings and URL query parameters; quoted values too).
pub fn elide_secrets(arg: &str) -> String {
    elide_keyword(&elide_userinfo(arg))
}

fn elide_userinfo(arg: &str) -> String {
    let Some(scheme_end) = arg.find("://") else {
        return arg.to_string();
    };
    let start = scheme_end + 3;
    let rest = &arg[start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return arg.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return arg.to_string();
    };
    format!(
        "{}{}:***{}",
        &arg[..start],
        &authority[..colon],
        &arg[start + at..]
    )
}

fn elide_keyword(arg: &str) -> String {
    let lower = arg.to_ascii_lowercase();
    let mut out = String::with_capacity(arg.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password") {
        let key_end = i + found + "password".len();
        let after = &arg[key_end..];
        let spaces = after.len() - after.trim_start().len();
        let boundary = keyword_starts(&lower, i + found);
        if !boundary || !after.trim_start().starts_with('=') {
            out.push_str(&arg[i..key_end]);
            i = key_end;
            continue;
        }
        let value_start = key_end + spaces + 1;
        let value = &arg[value_start..];
        let value_ws = value.len() - value.trim_start().len();
        let value_len = value_ws + value_extent(value.trim_start());
        out.push_str(&arg[i..value_start]);
        out.push_str(&" ".repeat(value_ws.min(1)));
        out.push_str("***");
        i = value_start + value_len;
    }
    out.push_str(&arg[i..]);
    out
}

/// Whether `password` at `at` is a keyword of its own, or libpq's `sslpassword`.
fn keyword_starts(lower: &str, at: usize) -> bool {
    let before = &lower.as_bytes()[..at];
    let at = match before.ends_with(b"ssl") {
        true => at - 3,
        false => at,
    };
    at == 0 || !is_word(lower.as_bytes()[at - 1])
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// How long a keyword's value is: a quoted value up to its closing quote (with `\'` escapes),
/// otherwise up to white space or the next URL parameter.
fn value_extent(value: &str) -> usize {
    let bytes = value.as_bytes();
    if bytes.first() == Some(&b'\'') {
        let mut j = 1;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' => j += 2,
                b'\'' => return j + 1,
                _ => j += 1,
            }
        }
        return bytes.len();
    }
    value
        .find(|c: char| c.is_whitespace() || c == '&' || c == '#')
        .unwrap_or(value.len())
}

/// Now, UTC, ISO 8601 with milliseconds.
pub fn now_utc_millis() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = crate::key::render::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamping_keeps_numbers_exactly_as_written() {
        let key = serde_json::value::RawValue::from_string(
            "[123456789012345678901234567890.5,-0.0001,18446744073709551615]".into(),
        )
        .unwrap();
        #[derive(serde::Serialize)]
        struct Report<'a> {
            format: &'a str,
            key: &'a serde_json::value::RawValue,
        }
        let out = super::stamped(&Report {
            format: "x/2",
            key: &key,
        })
        .unwrap();
        let text = out.get();
        assert!(
            text.contains("[123456789012345678901234567890.5,-0.0001,18446744073709551615]"),
            "{text}"
        );
        assert!(text.contains("\"tool\""), "{text}");
        assert!(text.contains("\"format\":\"x/2\""), "{text}");
    }

    use super::elide_secrets;

    #[test]
    fn passwords_are_elided_from_urls_and_keywords() {
        for (arg, want) in [
            (
                "postgresql://app:s3cr%40t@db:5432/app",
                "postgresql://app:***@db:5432/app",
            ),
            (
                "--base=postgres://u:p@h/db?sslmode=require",
                "--base=postgres://u:***@h/db?sslmode=require",
            ),
            ("postgresql://app@db/app", "postgresql://app@db/app"),
            (
                "postgresql://db/app?user=x&password=hunter2&sslmode=disable",
                "postgresql://db/app?user=x&password=***&sslmode=disable",
            ),
            (
                "host=db password=hunter2 dbname=app",
                "host=db password=*** dbname=app",
            ),
            (
                "host=db password = 'a b\\' c' dbname=app",
                "host=db password = *** dbname=app",
            ),
            ("PASSWORD=x", "PASSWORD=***"),
            ("passwordless=x", "passwordless=x"),
            ("sslpassword", "sslpassword"),
            (
                "sslmode=require sslpassword=k",
                "sslmode=require sslpassword=***",
            ),
            ("mysslpassword=k", "mysslpassword=k"),
            ("--tables=public.password", "--tables=public.password"),
            ("", ""),
        ] {
            assert_eq!(elide_secrets(arg), want, "{arg}");
        }
    }
}
