//! Binary COPY values in, the text PostgreSQL's output functions print out.
//!
//! Reports name the rows that differ by their keys, and recovery scripts write values back as
//! SQL literals, so a value must be printed exactly as the server prints it (with TimeZone
//! 'UTC', DateStyle 'ISO, MDY', IntervalStyle 'postgres' and extra_float_digits 1): then
//! `'<text>'::type` reads back the same value and a person sees what psql would show.
//! [`render_json`] wraps the same text in JSON, keeping integers and numerics as exact JSON
//! numbers (never through floats).
//!
//! The printing rules follow the server's code: floats as its shortest-exact (Ryu) output with
//! its fixed/exponent thresholds, numerics with exactly `dscale` fraction digits (numeric_out),
//! dates and timestamps in the proleptic Gregorian calendar with ` BC` years, intervals as
//! EncodeInterval's postgres style, inet/cidr as inet_net_ntop, arrays as array_out quotes them.

use std::fmt::Write;

use crate::hash::canonical::{
    fixed, jsonb_text, kind_name, parse_inet, parse_numeric, read_bool, read_float, read_int,
    Array, Decimal, Inet, Numeric,
};
use crate::shape::{TypeKind, ValueError};

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// Days from 1970-01-01 (the calendar algorithm's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_UNIX_DAYS: i64 = 10_957;

/// Renders a value as PostgreSQL's output function prints it with TimeZone = 'UTC' and
/// DateStyle = 'ISO, MDY', IntervalStyle = 'postgres', extra_float_digits = 1 (shortest exact), so
/// that `'<text>'::type` reads back the same value.
pub fn render_text(kind: &TypeKind, raw: &[u8], out: &mut String) -> Result<(), ValueError> {
    match kind {
        TypeKind::Bool => out.push(if read_bool(raw)? { 't' } else { 'f' }),
        TypeKind::Int(width) => push_display(out, read_int(*width, raw)?),
        TypeKind::Float4 => push_float(out, read_float(kind, raw)?, 6),
        TypeKind::Float8 => push_float(out, read_float(kind, raw)?, 15),
        TypeKind::Numeric => push_numeric(out, &parse_numeric(raw)?),
        TypeKind::Text | TypeKind::Bpchar | TypeKind::Json => out.push_str(utf8(kind, raw)?),
        TypeKind::Jsonb => out.push_str(utf8(kind, jsonb_text(raw)?)?),
        TypeKind::Bytea => push_bytea(out, raw),
        TypeKind::Date => push_date_value(out, i32::from_be_bytes(fixed(kind, raw)?)),
        TypeKind::Time => push_clock(out, i64::from_be_bytes(fixed(kind, raw)?)),
        TypeKind::TimeTz => push_timetz(out, fixed(kind, raw)?),
        TypeKind::Timestamp => push_timestamp(out, i64::from_be_bytes(fixed(kind, raw)?), false),
        TypeKind::TimestampTz => push_timestamp(out, i64::from_be_bytes(fixed(kind, raw)?), true),
        TypeKind::Interval => push_interval(out, fixed(kind, raw)?),
        TypeKind::Uuid => push_uuid(out, &fixed(kind, raw)?),
        TypeKind::Inet => push_inet(out, &parse_inet(raw)?),
        TypeKind::Array(elem) => push_array(out, elem, raw)?,
        TypeKind::Composite(_) | TypeKind::Other => {
            return Err(ValueError::new(
                kind_name(kind),
                "no text form for this type",
            ))
        }
    }
    Ok(())
}

/// Renders a value as a JSON value: Int and finite Numeric as JSON numbers written exactly
/// (numeric keeps its dscale: 3000.00 stays 3000.00; never through floats); Bool as true/false;
/// NaN/Infinity numerics and floats that are not finite as JSON strings; everything else as a JSON
/// string of render_text (properly JSON-escaped); Json/Jsonb as the JSON text itself (jsonb
/// without its version byte).
pub fn render_json(kind: &TypeKind, raw: &[u8], out: &mut String) -> Result<(), ValueError> {
    let number = match kind {
        TypeKind::Bool => {
            out.push_str(if read_bool(raw)? { "true" } else { "false" });
            return Ok(());
        }
        TypeKind::Json | TypeKind::Jsonb => return render_text(kind, raw, out),
        TypeKind::Other => return push_json_hex(out, raw),
        TypeKind::Int(_) => true,
        TypeKind::Float4 | TypeKind::Float8 => read_float(kind, raw)?.is_finite(),
        TypeKind::Numeric => matches!(parse_numeric(raw)?, Numeric::Finite(_)),
        _ => false,
    };
    if number {
        return render_text(kind, raw, out);
    }
    let mut text = String::new();
    render_text(kind, raw, &mut text)?;
    push_json_string(out, &text);
    Ok(())
}

fn utf8<'r>(kind: &TypeKind, raw: &'r [u8]) -> Result<&'r str, ValueError> {
    std::str::from_utf8(raw).map_err(|_| ValueError::new(kind_name(kind), "not valid UTF-8"))
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

/// Writes `value` zero-padded to at least `width` digits (values here are never negative).
fn push_padded(out: &mut String, value: i64, width: usize) {
    let _ = write!(out, "{value:0width$}");
}

fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Types without a text form here are written as their binary form in bytea's hex style.
fn push_json_hex(out: &mut String, raw: &[u8]) -> Result<(), ValueError> {
    let mut text = String::with_capacity(2 + 2 * raw.len());
    push_bytea(&mut text, raw);
    push_json_string(out, &text);
    Ok(())
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn push_bytea(out: &mut String, raw: &[u8]) {
    out.push_str("\\x");
    push_hex(out, raw);
}

fn push_uuid(out: &mut String, raw: &[u8; 16]) {
    for (i, group) in [&raw[..4], &raw[4..6], &raw[6..8], &raw[8..10], &raw[10..]]
        .iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        push_hex(out, group);
    }
}

/// float4out/float8out with extra_float_digits > 0: the shortest digits that read back exactly
/// (Rust's shortest formatting picks the same digits as the server's Ryu), in fixed notation for
/// decimal exponents in -4..`fixed_below` (6 for float4, 15 for float8), else as `d.ddde+XX`.
fn push_float(out: &mut String, x: f64, fixed_below: i32) {
    if x.is_nan() {
        return out.push_str("NaN");
    }
    if x.is_infinite() {
        return out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        return out.push('0');
    }
    // A float4 widened to f64 must be printed with float4's shortest digits.
    let shortest = if fixed_below == 6 {
        format!("{:e}", (x as f32).abs())
    } else {
        format!("{:e}", x.abs())
    };
    let (mantissa, exp) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    push_float_digits(out, &digits, exp.parse().unwrap_or(0), fixed_below);
}

/// Places the decimal point in `digits` × 10^(`exp` − len + 1) as to_chars in d2s.c does.
fn push_float_digits(out: &mut String, digits: &str, exp: i32, fixed_below: i32) {
    let len = digits.len() as i32;
    if (-4..fixed_below).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(digits);
        } else if len > exp + 1 {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            let _ = write!(out, "{int}.{frac}");
        } else {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', (exp + 1 - len) as usize));
        }
        return;
    }
    let (first, rest) = digits.split_at(1);
    out.push_str(first);
    if !rest.is_empty() {
        let _ = write!(out, ".{rest}");
    }
    let _ = write!(
        out,
        "e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    );
}

/// numeric_out: no exponent, exactly `dscale` digits after the point.
fn push_numeric(out: &mut String, value: &Numeric<'_>) {
    let d = match value {
        Numeric::NaN => return out.push_str("NaN"),
        Numeric::Infinity => return out.push_str("Infinity"),
        Numeric::NegInfinity => return out.push_str("-Infinity"),
        Numeric::Finite(d) => d,
    };
    if d.negative {
        out.push('-');
    }
    if d.weight < 0 {
        out.push('0');
    }
    for power in (0..=d.weight).rev() {
        let digit = i64::from(digit_at_power(d, power));
        push_padded(out, digit, if power == d.weight { 1 } else { 4 });
    }
    if d.dscale == 0 {
        return;
    }
    out.push('.');
    let end = out.len() + usize::from(d.dscale);
    for k in 1..=(i32::from(d.dscale) + 3) / 4 {
        push_padded(out, i64::from(digit_at_power(d, -k)), 4);
    }
    out.truncate(end);
}

/// The base-10000 digit multiplying 10000^`power`.
fn digit_at_power(d: &Decimal<'_>, power: i32) -> u16 {
    let index = i64::from(d.weight) - i64::from(power);
    usize::try_from(index).map_or(0, |i| d.digit(i))
}

/// Howard Hinnant's civil_from_days: the proleptic Gregorian (year, month, day) of a day count
/// from 1970-01-01, with astronomical years (0 is 1 BC).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `YYYY-MM-DD` for a day count from 2000-01-01; true when the year needs ` BC`.
fn push_date(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days + PG_EPOCH_UNIX_DAYS);
    push_padded(out, if year > 0 { year } else { 1 - year }, 4);
    out.push('-');
    push_padded(out, month, 2);
    out.push('-');
    push_padded(out, day, 2);
    year <= 0
}

fn push_date_value(out: &mut String, days: i32) {
    match days {
        i32::MIN => out.push_str("-infinity"),
        i32::MAX => out.push_str("infinity"),
        _ => {
            if push_date(out, i64::from(days)) {
                out.push_str(" BC");
            }
        }
    }
}

/// `HH:MM:SS[.ffffff]` with trailing fraction zeros dropped, for a time of day in µs.
fn push_clock(out: &mut String, micros: i64) {
    push_padded(out, micros / USECS_PER_HOUR, 2);
    out.push(':');
    push_padded(out, micros / USECS_PER_MINUTE % 60, 2);
    out.push(':');
    push_seconds(out, micros % USECS_PER_MINUTE);
}

/// AppendSeconds: two-digit seconds and, when nonzero, the fraction without trailing zeros;
/// `micros` is below a minute and not negative.
fn push_seconds(out: &mut String, micros: i64) {
    push_padded(out, micros / USECS_PER_SEC, 2);
    let fraction = micros % USECS_PER_SEC;
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
}

/// EncodeTimezone: the zone is stored in seconds west of UTC, printed as east (+HH[:MM[:SS]]).
fn push_zone(out: &mut String, seconds_west: i32) {
    let total = i64::from(seconds_west).abs();
    let (hour, minute, second) = (total / 3600, total / 60 % 60, total % 60);
    out.push(if seconds_west <= 0 { '+' } else { '-' });
    push_padded(out, hour, 2);
    if second != 0 || minute != 0 {
        out.push(':');
        push_padded(out, minute, 2);
    }
    if second != 0 {
        out.push(':');
        push_padded(out, second, 2);
    }
}

fn push_timetz(out: &mut String, raw: [u8; 12]) {
    let (time, zone) = raw.split_at(8);
    push_clock(out, i64::from_be_bytes(time.try_into().unwrap_or_default()));
    push_zone(out, i32::from_be_bytes(zone.try_into().unwrap_or_default()));
}

/// EncodeDateTime in ISO style; timestamptz is shown in UTC, so its zone is always `+00`.
fn push_timestamp(out: &mut String, micros: i64, with_zone: bool) {
    match micros {
        i64::MIN => return out.push_str("-infinity"),
        i64::MAX => return out.push_str("infinity"),
        _ => {}
    }
    let bc = push_date(out, micros.div_euclid(USECS_PER_DAY));
    out.push(' ');
    push_clock(out, micros.rem_euclid(USECS_PER_DAY));
    if with_zone {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

/// EncodeInterval in the postgres style: `1 year 2 mons -3 days +04:05:06.7`; PostgreSQL 17's
/// infinite intervals print as `infinity` and `-infinity`.
fn push_interval(out: &mut String, raw: [u8; 16]) {
    let time = i64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
    let days = i32::from_be_bytes(raw[8..12].try_into().unwrap_or_default());
    let months = i32::from_be_bytes(raw[12..].try_into().unwrap_or_default());
    match (time, days, months) {
        (i64::MAX, i32::MAX, i32::MAX) => return out.push_str("infinity"),
        (i64::MIN, i32::MIN, i32::MIN) => return out.push_str("-infinity"),
        _ => {}
    }
    let mut parts = IntervalParts {
        is_zero: true,
        is_before: false,
    };
    parts.push(out, i64::from(months / 12), "year");
    parts.push(out, i64::from(months % 12), "mon");
    parts.push(out, i64::from(days), "day");
    if parts.is_zero || time != 0 {
        let sign = if time < 0 {
            "-"
        } else if parts.is_before {
            "+"
        } else {
            ""
        };
        let _ = write!(out, "{}{sign}", if parts.is_zero { "" } else { " " });
        let time = time.unsigned_abs();
        let hours = time / USECS_PER_HOUR as u64;
        push_padded(out, hours as i64, 2);
        out.push(':');
        push_padded(out, (time / USECS_PER_MINUTE as u64 % 60) as i64, 2);
        out.push(':');
        push_seconds(out, (time % USECS_PER_MINUTE as u64) as i64);
    }
}

/// AddPostgresIntPart's state: whether anything was printed, and whether the last part printed
/// was negative (then a following positive part gets an explicit `+`).
struct IntervalParts {
    is_zero: bool,
    is_before: bool,
}

impl IntervalParts {
    fn push(&mut self, out: &mut String, value: i64, unit: &str) {
        if value == 0 {
            return;
        }
        let space = if self.is_zero { "" } else { " " };
        let plus = if self.is_before && value > 0 { "+" } else { "" };
        let plural = if value != 1 { "s" } else { "" };
        let _ = write!(out, "{space}{plus}{value} {unit}{plural}");
        self.is_before = value < 0;
        self.is_zero = false;
    }
}

/// network_out: inet_net_ntop's text, with `/bits` always present for cidr.
fn push_inet(out: &mut String, inet: &Inet<'_>) {
    let full = if inet.family == 2 {
        push_ipv4(out, inet.address);
        32
    } else {
        push_ipv6(out, inet.address);
        128
    };
    if inet.bits != full || inet.is_cidr {
        let _ = write!(out, "/{}", inet.bits);
    }
}

fn push_ipv4(out: &mut String, address: &[u8]) {
    for (i, octet) in address.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_display(out, octet);
    }
}

/// inet_net_ntop_ipv6: the first longest run of two or more zero groups becomes `::`; an address
/// with six zero groups, or five and `ffff`, ends in dotted IPv4.
fn push_ipv6(out: &mut String, address: &[u8]) {
    let words: Vec<u16> = address
        .chunks_exact(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    let (base, len) = longest_zero_run(&words);
    let mut i = 0;
    while i < 8 {
        if len >= 2 && i == base {
            out.push(':');
            i += len;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && base == 0 && (len == 6 || (len == 5 && words[5] == 0xffff)) {
            push_ipv4(out, &address[12..]);
            return;
        }
        let _ = write!(out, "{:x}", words[i]);
        i += 1;
    }
    if len >= 2 && base + len == 8 {
        out.push(':');
    }
}

/// The start and length of the first longest run of zero words (length 0 when there is none).
fn longest_zero_run(words: &[u16]) -> (usize, usize) {
    let (mut best, mut current) = ((0, 0), (0, 0));
    for (i, &word) in words.iter().enumerate() {
        if word != 0 {
            current = (i + 1, 0);
            continue;
        }
        current.1 += 1;
        if current.1 > best.1 {
            best = current;
        }
    }
    best
}

/// array_out: nested braces, `[lb:ub]` dimensions when a lower bound is not 1, elements quoted
/// when they would not read back bare.
fn push_array(out: &mut String, elem: &TypeKind, raw: &[u8]) -> Result<(), ValueError> {
    let array = Array::parse(raw)?;
    let ndim = array.dims.len();
    if ndim == 0 {
        out.push_str("{}");
        return Ok(());
    }
    if array.dims.iter().any(|&(_, lower)| lower != 1) {
        for &(len, lower) in &array.dims {
            let _ = write!(out, "[{lower}:{}]", i64::from(lower) + i64::from(len) - 1);
        }
        out.push('=');
    }
    // An element at a multiple of a stride closes and reopens that many inner dimensions.
    let strides: Vec<usize> = (1..ndim)
        .map(|k| {
            array.dims[k..]
                .iter()
                .map(|&(len, _)| len as usize)
                .product()
        })
        .collect();
    let mut text = String::new();
    for (i, element) in array.elements().enumerate() {
        if i == 0 {
            out.extend(std::iter::repeat_n('{', ndim));
        } else {
            let depth = strides.iter().filter(|&&s| i % s == 0).count();
            out.extend(std::iter::repeat_n('}', depth));
            out.push(',');
            out.extend(std::iter::repeat_n('{', depth));
        }
        let Some(bytes) = element else {
            out.push_str("NULL");
            continue;
        };
        text.clear();
        render_text(elem, bytes, &mut text)?;
        push_array_item(out, &text);
    }
    out.extend(std::iter::repeat_n('}', ndim));
    Ok(())
}

fn push_array_item(out: &mut String, text: &str) {
    let special = |c: char| matches!(c, '"' | '\\' | '{' | '}' | ',');
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}');
    let quote = text.is_empty()
        || text.eq_ignore_ascii_case("NULL")
        || text.chars().any(|c| special(c) || space(c));
    if !quote {
        return out.push_str(text);
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}
