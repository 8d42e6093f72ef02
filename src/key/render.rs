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

use std::cmp::Ordering;
use std::fmt::Write;

use crate::shape::{TypeKind, ValueError};
use crate::value::{
    fixed, jsonb_text, kind_name, parse_inet, parse_numeric, read_bool, read_float, read_int,
    Array, Decimal, Inet, Numeric,
};

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
    restoring_on_error(out, |out| write_text(kind, raw, out))
}

/// Renders a value as a JSON value: Int and finite Numeric as JSON numbers written exactly
/// (numeric keeps its dscale: 3000.00 stays 3000.00; never through floats); Bool as true/false;
/// NaN/Infinity numerics and floats that are not finite as JSON strings; everything else as a JSON
/// string of render_text (properly JSON-escaped); Json/Jsonb as the JSON text itself (jsonb
/// without its version byte).
pub fn render_json(kind: &TypeKind, raw: &[u8], out: &mut String) -> Result<(), ValueError> {
    restoring_on_error(out, |out| write_json(kind, raw, out))
}

/// Renders a key, one binary field per key column, as a JSON array of exact values (`[42]`,
/// `[10,"a"]`): how findings, baselines and reports all write keys.
pub fn render_key_json<'a>(
    kinds: &[TypeKind],
    fields: impl IntoIterator<Item = Option<&'a [u8]>>,
    out: &mut String,
) -> Result<(), ValueError> {
    out.push('[');
    let mut n = 0;
    for (kind, raw) in kinds.iter().zip(fields) {
        if n > 0 {
            out.push(',');
        }
        let raw = raw.ok_or(ValueError::new("key", "NULL in a key column"))?;
        render_json(kind, raw, out)?;
        n += 1;
    }
    if n != kinds.len() {
        return Err(ValueError::new(
            "key",
            "key fields do not match the key columns",
        ));
    }
    out.push(']');
    Ok(())
}

/// The key of row `row` of a batch whose first columns are the key, as [`render_key_json`].
pub fn row_key_json(
    kinds: &[TypeKind],
    rows: &crate::rows::batch::RowBatch,
    row: usize,
) -> Result<String, ValueError> {
    let mut out = String::new();
    render_key_json(
        kinds,
        (0..kinds.len()).map(|col| rows.field(row, col)),
        &mut out,
    )?;
    Ok(out)
}

/// Runs `write`, leaving `out` as it was when it fails part way (say, at a later array element).
fn restoring_on_error(
    out: &mut String,
    write: impl FnOnce(&mut String) -> Result<(), ValueError>,
) -> Result<(), ValueError> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_text(kind: &TypeKind, raw: &[u8], out: &mut String) -> Result<(), ValueError> {
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

fn write_json(kind: &TypeKind, raw: &[u8], out: &mut String) -> Result<(), ValueError> {
    let number = match kind {
        TypeKind::Bool => {
            out.push_str(if read_bool(raw)? { "true" } else { "false" });
            return Ok(());
        }
        TypeKind::Json | TypeKind::Jsonb => return write_text(kind, raw, out),
        TypeKind::Other => return push_json_hex(out, raw),
        TypeKind::Int(_) => true,
        TypeKind::Float4 | TypeKind::Float8 => read_float(kind, raw)?.is_finite(),
        TypeKind::Numeric => matches!(parse_numeric(raw)?, Numeric::Finite(_)),
        _ => false,
    };
    if number {
        return write_text(kind, raw, out);
    }
    let mut text = String::new();
    write_text(kind, raw, &mut text)?;
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

/// `text` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
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

/// float4out/float8out with extra_float_digits > 0: the shortest digits that read back exactly,
/// in fixed notation for decimal exponents in -4..`fixed_below` (6 for float4, 15 for float8),
/// else as `d.ddde+XX`. `x` is a float4 widened to f64 when `fixed_below` is 6.
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
    let (digits, exp) = shortest_digits(Float {
        x: x.abs(),
        single: fixed_below == 6,
    });
    push_float_digits(out, &digits, exp, fixed_below);
}

/// A positive finite float, and whether it is a float4 (whose own digits are printed).
#[derive(Clone, Copy)]
struct Float {
    x: f64,
    single: bool,
}

impl Float {
    /// `{:e}` of the value, at `precision` digits after the first or else the shortest, split
    /// into its digits and the decimal exponent of the first digit.
    fn scientific(self, precision: Option<usize>) -> (Vec<u8>, i32) {
        let text = match (self.single, precision) {
            (true, None) => format!("{:e}", self.x as f32),
            (true, Some(p)) => format!("{:.p$e}", self.x as f32),
            (false, None) => format!("{:e}", self.x),
            (false, Some(p)) => format!("{:.p$e}", self.x),
        };
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        (
            mantissa.bytes().filter(u8::is_ascii_digit).collect(),
            exp.parse().unwrap_or(0),
        )
    }

    fn parse(self, text: &str) -> f64 {
        if self.single {
            text.parse::<f32>().map_or(f64::NAN, f64::from)
        } else {
            text.parse().unwrap_or(f64::NAN)
        }
    }

    fn even(self) -> bool {
        let bits = if self.single {
            u64::from((self.x as f32).to_bits())
        } else {
            self.x.to_bits()
        };
        bits & 1 == 0
    }

    /// Where `0.digits × 10^(exp+1)` lies against the open interval of decimals that round to the
    /// value: `Equal` strictly inside, else the side it is on (a boundary counts as outside).
    fn locate(self, digits: &[u8], exp: i32) -> Ordering {
        let text = |digits: &[u8], tail: &str| {
            format!("0.{}{tail}e{}", String::from_utf8_lossy(digits), exp + 1)
        };
        let value = self.parse(&text(digits, ""));
        if value != self.x {
            return value.partial_cmp(&self.x).unwrap_or(Ordering::Greater);
        }
        // A boundary is a midpoint between two floats. Moving the decimal by far less than any
        // gap between it and a midpoint (about 10^-1100 relative; gaps are at least 10^-350
        // relative) crosses the midpoint only if the decimal sat on it.
        let nudge = format!("{}1", "0".repeat(1100));
        if self.parse(&text(digits, &nudge)) != self.x {
            return Ordering::Greater;
        }
        let below = text(&decrement(digits), &"9".repeat(1101));
        if self.parse(&below) != self.x {
            return Ordering::Less;
        }
        Ordering::Equal
    }
}

/// PostgreSQL's Ryu digits: the fewest digits strictly inside the rounding interval (its
/// boundaries excluded, unlike Rust's shortest formatting for even mantissas), the nearest to
/// the value among those.
fn shortest_digits(f: Float) -> (Vec<u8>, i32) {
    let (digits, exp) = f.scientific(None);
    // Rust excludes the boundaries for odd mantissas too, so only even ones can differ in length.
    if !f.even() || f.locate(&digits, exp) == Ordering::Equal {
        // Of two decimals of that length equally near, Rust may pick the upper one where Ryu
        // rounds half to even, as exact-precision formatting does.
        let (nearest, near_exp) = trim_zeros(f.scientific(Some(digits.len() - 1)));
        if (nearest != digits || near_exp != exp) && f.locate(&nearest, near_exp) == Ordering::Equal
        {
            return (nearest, near_exp);
        }
        return (digits, exp);
    }
    let max = if f.single { 9 } else { 17 };
    for len in digits.len()..=max {
        let (digits, exp) = f.scientific(Some(len - 1));
        // If any decimal of this length is inside, the nearest one or its neighbor toward the
        // value is.
        let (digits, exp) = match f.locate(&digits, exp) {
            Ordering::Equal => return trim_zeros((digits, exp)),
            Ordering::Less => step(&digits, exp, true),
            Ordering::Greater => step(&digits, exp, false),
        };
        if f.locate(&digits, exp) == Ordering::Equal {
            return trim_zeros((digits, exp));
        }
    }
    f.scientific(Some(max - 1))
}

fn trim_zeros((mut digits, exp): (Vec<u8>, i32)) -> (Vec<u8>, i32) {
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, exp)
}

/// The digit string as an integer minus one (`100` → `099`).
fn decrement(digits: &[u8]) -> Vec<u8> {
    let mut out = digits.to_vec();
    for d in out.iter_mut().rev() {
        if *d > b'0' {
            *d -= 1;
            break;
        }
        *d = b'9';
    }
    out
}

/// The next decimal of the same length up or down: `9.99e4` up is `1.00e5`, `1.00e5` down is
/// `9.99e4`.
fn step(digits: &[u8], exp: i32, up: bool) -> (Vec<u8>, i32) {
    if !up {
        let lower = decrement(digits);
        return match lower.split_first() {
            Some((b'0', _)) => (vec![b'9'; digits.len()], exp - 1),
            _ => (lower, exp),
        };
    }
    let mut out = digits.to_vec();
    for d in out.iter_mut().rev() {
        if *d < b'9' {
            *d += 1;
            return (out, exp);
        }
        *d = b'0';
    }
    out.insert(0, b'1');
    out.pop();
    (out, exp + 1)
}

/// Places the decimal point in `digits` × 10^(`exp` − len + 1) as to_chars in d2s.c does.
fn push_float_digits(out: &mut String, digits: &[u8], exp: i32, fixed_below: i32) {
    let digits = std::str::from_utf8(digits).unwrap_or("0");
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
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
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
        parts.push_clock(out, time);
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

    /// The time part: `-` when negative, `+` after a negative part, then `H:MM:SS[.ffffff]` with
    /// at least two hour digits.
    fn push_clock(&self, out: &mut String, time: i64) {
        let space = if self.is_zero { "" } else { " " };
        let sign = match (time < 0, self.is_before) {
            (true, _) => "-",
            (false, true) => "+",
            (false, false) => "",
        };
        let _ = write!(out, "{space}{sign}");
        let time = time.unsigned_abs();
        push_padded(out, (time / USECS_PER_HOUR as u64) as i64, 2);
        out.push(':');
        push_padded(out, (time / USECS_PER_MINUTE as u64 % 60) as i64, 2);
        out.push(':');
        push_seconds(out, (time % USECS_PER_MINUTE as u64) as i64);
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
    push_bounds(out, &array.dims);
    let strides = strides(&array.dims);
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
        write_text(elem, bytes, &mut text)?;
        push_array_item(out, &text);
    }
    out.extend(std::iter::repeat_n('}', ndim));
    Ok(())
}

/// `[lb:ub]...=` when some lower bound is not the default 1.
fn push_bounds(out: &mut String, dims: &[(i32, i32)]) {
    if dims.iter().all(|&(_, lower)| lower == 1) {
        return;
    }
    for &(len, lower) in dims {
        let _ = write!(out, "[{lower}:{}]", i64::from(lower) + i64::from(len) - 1);
    }
    out.push('=');
}

/// The element counts of the inner dimensions: an element whose index is a multiple of `n` of
/// them closes and reopens `n` levels of braces.
fn strides(dims: &[(i32, i32)]) -> Vec<usize> {
    (1..dims.len())
        .map(|k| dims[k..].iter().map(|&(len, _)| len as usize).product())
        .collect()
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
    push_quoted_array_item(out, text);
}

/// An array element in double quotes, `"` and `\` escaped: reads back as itself whatever it holds.
pub fn push_quoted_array_item(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::testing::{array_bytes, inet_bytes, numeric_from_str};
    use proptest::prelude::*;

    fn text(kind: &TypeKind, raw: &[u8]) -> String {
        let mut out = String::new();
        render_text(kind, raw, &mut out).unwrap_or_else(|e| panic!("{kind:?} {raw:?}: {e}"));
        out
    }

    fn json(kind: &TypeKind, raw: &[u8]) -> String {
        let mut out = String::new();
        render_json(kind, raw, &mut out).unwrap_or_else(|e| panic!("{kind:?} {raw:?}: {e}"));
        out
    }

    /// Checks rows of (kind, binary form, what PostgreSQL 15 prints).
    fn check(rows: &[(TypeKind, Vec<u8>, &str)]) {
        for (kind, raw, expected) in rows {
            assert_eq!(text(kind, raw), *expected, "{kind:?} {raw:02x?}");
        }
    }

    fn be<const N: usize>(bytes: [u8; N]) -> Vec<u8> {
        bytes.to_vec()
    }

    fn f8(x: f64) -> (TypeKind, Vec<u8>) {
        (TypeKind::Float8, be(x.to_be_bytes()))
    }

    fn f4(x: f32) -> (TypeKind, Vec<u8>) {
        (TypeKind::Float4, be(x.to_be_bytes()))
    }

    fn row((kind, raw): (TypeKind, Vec<u8>), expected: &str) -> (TypeKind, Vec<u8>, &str) {
        (kind, raw, expected)
    }

    #[test]
    fn renders_scalars() {
        check(&[
            (TypeKind::Bool, vec![1], "t"),
            (TypeKind::Bool, vec![0], "f"),
            (TypeKind::Int(2), be((-32768i16).to_be_bytes()), "-32768"),
            (TypeKind::Int(4), be(i32::MAX.to_be_bytes()), "2147483647"),
            (
                TypeKind::Int(8),
                be(i64::MIN.to_be_bytes()),
                "-9223372036854775808",
            ),
            (
                TypeKind::Int(8),
                be(i64::MAX.to_be_bytes()),
                "9223372036854775807",
            ),
            (TypeKind::Text, b"".to_vec(), ""),
            (
                TypeKind::Text,
                "日本語 e\u{301}".as_bytes().to_vec(),
                "日本語 e\u{301}",
            ),
            (TypeKind::Bpchar, b"ab   ".to_vec(), "ab   "),
            (TypeKind::Bytea, vec![0x00, 0xff, 0x10], "\\x00ff10"),
            (TypeKind::Bytea, vec![], "\\x"),
            (
                TypeKind::Uuid,
                hex("a0eebc999c0b4ef8bb6d6bb9bd380a11"),
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            ),
            (TypeKind::Json, b" {\"a\" : 1} ".to_vec(), " {\"a\" : 1} "),
            (
                TypeKind::Jsonb,
                b"\x01{\"a\": [true, null]}".to_vec(),
                "{\"a\": [true, null]}",
            ),
        ]);
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn renders_floats_as_float8out_does() {
        check(&[
            row(f8(0.1), "0.1"),
            row(f8(-0.0), "-0"),
            row(f8(0.0), "0"),
            row(f8(f64::NAN), "NaN"),
            row(f8(f64::INFINITY), "Infinity"),
            row(f8(f64::NEG_INFINITY), "-Infinity"),
            row(f8(1e-5), "1e-05"),
            row(f8(1e-4), "0.0001"),
            row(f8(0.00012), "0.00012"),
            row(f8(100.0), "100"),
            row(f8(-2.5), "-2.5"),
            row(f8(123456789012345.0), "123456789012345"),
            row(f8(1e15), "1e+15"),
            row(f8(1.2345678901234568e17), "1.2345678901234568e+17"),
            row(f8(1234567890123456789.0), "1.2345678901234568e+18"),
            row(f8(9007199254740993.0), "9.007199254740992e+15"),
            row(f8(1e100), "1e+100"),
            row(f8(1.5e-7), "1.5e-07"),
            row(f8(5e-324), "5e-324"),
            row(f8(f64::MAX), "1.7976931348623157e+308"),
            row(f8(f64::from(0.1f32)), "0.10000000149011612"),
            // On a rounding boundary, which Rust's shortest form accepts and the server refuses.
            row(
                (TypeKind::Float8, hex("c39d7a09ee4c1a66")),
                "-5.3100527333556877e+17",
            ),
            // A tie between two shortest decimals: the server rounds half to even.
            row(
                (TypeKind::Float8, hex("c3149f07bdf4ef45")),
                "-1.4510887836866092e+15",
            ),
            row(f4(0.1), "0.1"),
            row(f4(3.0e-5), "3e-05"),
            row(f4(100000.0), "100000"),
            row(f4(1e6), "1e+06"),
            row(f4(1234567.0), "1.234567e+06"),
            row(f4(33554432.0), "3.3554432e+07"),
            row(f4(1.1754944e-38), "1.1754944e-38"),
            row(f4(3.4028235e38), "3.4028235e+38"),
            row(f4(1.4e-45), "1e-45"),
            row(f4(-0.0), "-0"),
            row(f4(f32::NAN), "NaN"),
            row(f4(f32::NEG_INFINITY), "-Infinity"),
        ]);
    }

    #[test]
    fn renders_numerics_with_their_scale() {
        let big = format!("1{}", "0".repeat(999));
        let long_fraction = format!("-0.{}7", "0".repeat(998));
        let cases = [
            ("3000.00", "3000.00"),
            ("-0.000", "0.000"),
            ("0.00000000000000000001", "0.00000000000000000001"),
            ("-12.3400", "-12.3400"),
            ("10000", "10000"),
            ("9999.9999", "9999.9999"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
            ("-0.05", "-0.05"),
            ("0", "0"),
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
            (big.as_str(), big.as_str()),
            (long_fraction.as_str(), long_fraction.as_str()),
        ];
        for (input, expected) in cases {
            assert_eq!(text(&TypeKind::Numeric, &numeric_from_str(input)), expected);
        }
        // 1.5 with dscale 3 (digits [1, 5000]): zeros are padded up to the scale.
        assert_eq!(
            text(
                &TypeKind::Numeric,
                &[0, 2, 0, 0, 0, 0, 0, 3, 0, 1, 0x13, 0x88]
            ),
            "1.500"
        );
        // 10000.0 from the server, and 1e-20 as numeric_send writes it.
        assert_eq!(
            text(&TypeKind::Numeric, &hex("00010001000000010001")),
            "10000.0"
        );
        assert_eq!(
            text(&TypeKind::Numeric, &hex("0001fffb000000140001")),
            "0.00000000000000000001"
        );
    }

    fn date(days: i32) -> (TypeKind, Vec<u8>) {
        (TypeKind::Date, be(days.to_be_bytes()))
    }

    fn stamp(kind: TypeKind, micros: i64) -> (TypeKind, Vec<u8>) {
        (kind, be(micros.to_be_bytes()))
    }

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn renders_dates_and_timestamps() {
        check(&[
            row(date(0), "2000-01-01"),
            row(date(-1), "1999-12-31"),
            row(date(-730_119), "0001-01-01"),
            row(date(-730_120), "0001-12-31 BC"),
            row(date(-730_485), "0001-01-01 BC"),
            row(date(-2_451_179), "4713-11-24 BC"),
            row(date(2_145_031_948), "5874897-12-31"),
            row(date(2_921_939), "9999-12-31"),
            row(date(2_921_940), "10000-01-01"),
            row(date(59), "2000-02-29"),
            row(date(60), "2000-03-01"),
            row(date(-36_465), "1900-03-01"),
            row(date(i32::MAX), "infinity"),
            row(date(i32::MIN), "-infinity"),
            row(stamp(TypeKind::Timestamp, 0), "2000-01-01 00:00:00"),
            row(stamp(TypeKind::Timestamp, -1), "1999-12-31 23:59:59.999999"),
            row(
                stamp(TypeKind::Timestamp, -63_082_368_000_000_000),
                "0001-12-31 00:00:00 BC",
            ),
            row(
                stamp(TypeKind::Timestamp, -63_082_324_800_000_000),
                "0001-12-31 12:00:00 BC",
            ),
            row(
                stamp(TypeKind::Timestamp, -211_781_865_600_000_000),
                "4713-11-24 00:00:00 BC",
            ),
            row(
                stamp(TypeKind::Timestamp, 9_223_371_331_199_999_999),
                "294276-12-31 23:59:59.999999",
            ),
            row(
                stamp(TypeKind::Timestamp, 1_500_000),
                "2000-01-01 00:00:01.5",
            ),
            row(
                stamp(TypeKind::Timestamp, DAY + 10),
                "2000-01-02 00:00:00.00001",
            ),
            row(stamp(TypeKind::Timestamp, i64::MAX), "infinity"),
            row(stamp(TypeKind::Timestamp, i64::MIN), "-infinity"),
            row(
                stamp(TypeKind::TimestampTz, 636_294_896_500_000),
                "2020-02-29 12:34:56.5+00",
            ),
            row(
                stamp(TypeKind::TimestampTz, -64_464_465_600_000_000),
                "0044-03-15 12:00:00+00 BC",
            ),
            row(stamp(TypeKind::TimestampTz, i64::MIN), "-infinity"),
        ]);
    }

    fn timetz(micros: i64, zone: i32) -> (TypeKind, Vec<u8>) {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend_from_slice(&zone.to_be_bytes());
        (TypeKind::TimeTz, raw)
    }

    fn interval(micros: i64, days: i32, months: i32) -> (TypeKind, Vec<u8>) {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend_from_slice(&days.to_be_bytes());
        raw.extend_from_slice(&months.to_be_bytes());
        (TypeKind::Interval, raw)
    }

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn renders_times_and_intervals() {
        check(&[
            row(stamp(TypeKind::Time, 0), "00:00:00"),
            row(stamp(TypeKind::Time, DAY), "24:00:00"),
            row(stamp(TypeKind::Time, 1), "00:00:00.000001"),
            row(stamp(TypeKind::Time, DAY - 1), "23:59:59.999999"),
            // timetz_send('12:34:56+05:30'): the zone is stored west-positive.
            row(
                (TypeKind::TimeTz, hex("0000000a8bda1c00ffffb2a8")),
                "12:34:56+05:30",
            ),
            row(
                timetz(12 * HOUR + 34 * 60_000_000 + 56_000_000, 8 * 3600),
                "12:34:56-08",
            ),
            row(timetz(0, 0), "00:00:00+00"),
            row(
                timetz(HOUR + 123_400_000, -(5 * 3600 + 30 * 60 + 15)),
                "01:02:03.4+05:30:15",
            ),
            row(
                timetz(HOUR + 120_000_000, 15 * 3600 + 59 * 60),
                "01:02:00-15:59",
            ),
            row(interval(0, 0, 0), "00:00:00"),
            row(
                interval(4 * HOUR + 5 * 60_000_000 + 6_700_000, 3, 14),
                "1 year 2 mons 3 days 04:05:06.7",
            ),
            row(interval(2 * HOUR, -1, 0), "-1 days +02:00:00"),
            row(interval(0, 0, -14), "-1 years -2 mons"),
            row(interval(0, -1, 1), "1 mon -1 days"),
            row(interval(-500_000, 0, 0), "-00:00:00.5"),
            row(interval(-1_000_000, 1, 0), "1 day -00:00:01"),
            row(interval(0, -1, 0), "-1 days"),
            row(interval(-2 * HOUR, 1, 11), "11 mons 1 day -02:00:00"),
            row(interval(i64::MAX, 0, 0), "2562047788:00:54.775807"),
            row(interval(i64::MIN, 0, 0), "-2562047788:00:54.775808"),
            row(interval(0, 0, -13), "-1 years -1 mons"),
            row(interval(HOUR, -1, 0), "-1 days +01:00:00"),
            row(interval(-HOUR, 1, 0), "1 day -01:00:00"),
            row(interval(HOUR, 0, -12), "-1 years +01:00:00"),
            row(interval(HOUR, 1, -1), "-1 mons +1 day 01:00:00"),
            row(interval(0, 0, 1), "1 mon"),
            row(interval(0, 30, 0), "30 days"),
            row(interval(i64::MAX, i32::MAX, i32::MAX), "infinity"),
            row(interval(i64::MIN, i32::MIN, i32::MIN), "-infinity"),
        ]);
    }

    fn v6(text: &str) -> Vec<u8> {
        let groups: Vec<&str> = text.split(':').collect();
        groups
            .iter()
            .flat_map(|g| u16::from_str_radix(g, 16).unwrap().to_be_bytes())
            .collect()
    }

    #[test]
    fn renders_inet_and_cidr_as_inet_net_ntop() {
        let inet = |bits, cidr, addr: &[u8]| {
            (
                TypeKind::Inet,
                inet_bytes(if addr.len() == 4 { 2 } else { 3 }, bits, cidr, addr),
            )
        };
        check(&[
            row(inet(32, false, &[1, 2, 3, 4]), "1.2.3.4"),
            row(inet(24, false, &[1, 2, 3, 4]), "1.2.3.4/24"),
            row(inet(32, true, &[1, 2, 3, 4]), "1.2.3.4/32"),
            row(inet(8, true, &[10, 0, 0, 0]), "10.0.0.0/8"),
            row(inet(0, false, &[0, 0, 0, 0]), "0.0.0.0/0"),
            row(inet(128, false, &v6("0:0:0:0:0:0:0:0")), "::"),
            row(inet(128, false, &v6("0:0:0:0:0:0:0:1")), "::1"),
            row(inet(128, false, &v6("0:0:0:0:0:0:0:2")), "::2"),
            row(
                inet(128, false, &v6("0:0:0:0:0:ffff:102:304")),
                "::ffff:1.2.3.4",
            ),
            row(
                inet(120, false, &v6("0:0:0:0:0:ffff:102:304")),
                "::ffff:1.2.3.4/120",
            ),
            row(inet(128, false, &v6("0:0:0:0:0:0:102:304")), "::1.2.3.4"),
            row(
                inet(128, false, &v6("0:0:0:0:0:ffff:0:0")),
                "::ffff:0.0.0.0",
            ),
            row(inet(128, false, &v6("0:0:0:0:0:1:0:0")), "::1:0:0"),
            row(inet(128, false, &v6("1:0:0:1:0:0:0:1")), "1:0:0:1::1"),
            row(inet(128, false, &v6("1:0:0:1:0:0:1:1")), "1::1:0:0:1:1"),
            row(inet(128, false, &v6("1:0:0:0:0:0:0:0")), "1::"),
            row(inet(128, false, &v6("0:0:1:0:0:0:0:0")), "0:0:1::"),
            row(inet(128, false, &v6("1:2:3:4:5:6:7:8")), "1:2:3:4:5:6:7:8"),
            row(inet(128, false, &v6("1:0:2:0:3:0:4:0")), "1:0:2:0:3:0:4:0"),
            row(
                inet(64, false, &v6("fe80:0:0:0:1:2:3:4")),
                "fe80::1:2:3:4/64",
            ),
            row(inet(32, true, &v6("2001:db8:0:0:0:0:0:0")), "2001:db8::/32"),
            row(
                inet(128, true, &v6("2001:db8:0:0:0:0:0:1")),
                "2001:db8::1/128",
            ),
        ]);
    }

    fn int4s(dims: &[(i32, i32)], values: &[Option<i32>]) -> Vec<u8> {
        let elems: Vec<_> = values
            .iter()
            .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
            .collect();
        array_bytes(23, dims, &elems)
    }

    fn texts(values: &[Option<&str>]) -> Vec<u8> {
        let elems: Vec<_> = values
            .iter()
            .map(|v| v.map(|v| v.as_bytes().to_vec()))
            .collect();
        array_bytes(25, &[(values.len() as i32, 1)], &elems)
    }

    #[test]
    fn renders_arrays_as_array_out() {
        let ai = TypeKind::Array(Box::new(TypeKind::Int(4)));
        let at = TypeKind::Array(Box::new(TypeKind::Text));
        let array = |elem: TypeKind| TypeKind::Array(Box::new(elem));
        let one = |oid, raw: Vec<u8>| array_bytes(oid, &[(1, 1)], &[Some(raw)]);
        check(&[
            (
                ai.clone(),
                int4s(&[(3, 1)], &[Some(1), Some(2), None]),
                "{1,2,NULL}",
            ),
            (
                ai.clone(),
                int4s(&[(2, 1), (2, 1)], &[Some(1), Some(2), Some(3), Some(4)]),
                "{{1,2},{3,4}}",
            ),
            (
                ai.clone(),
                int4s(&[(2, -2), (2, 3)], &[Some(1), Some(2), Some(3), Some(4)]),
                "[-2:-1][3:4]={{1,2},{3,4}}",
            ),
            (
                ai.clone(),
                int4s(&[(2, 1), (2, 1)], &[None, None, None, Some(1)]),
                "{{NULL,NULL},{NULL,1}}",
            ),
            (
                ai.clone(),
                int4s(
                    &[(2, 1), (1, 1), (2, 1)],
                    &[Some(1), Some(2), Some(3), Some(4)],
                ),
                "{{{1,2}},{{3,4}}}",
            ),
            (ai.clone(), int4s(&[], &[]), "{}"),
            (ai.clone(), int4s(&[(0, 1)], &[]), "{}"),
            (
                at.clone(),
                array_bytes(25, &[(2, 0)], &[Some(b"a".to_vec()), Some(b"b".to_vec())]),
                "[0:1]={a,b}",
            ),
            (
                at.clone(),
                texts(&[
                    Some(""),
                    Some(" "),
                    Some("NULL"),
                    Some("null"),
                    Some("a\"b"),
                    Some("a\\b"),
                    Some("a,b"),
                    Some("{x}"),
                    Some("é"),
                    Some("tab\there"),
                    Some("plain"),
                    None,
                ]),
                r#"{""," ","NULL","null","a\"b","a\\b","a,b","{x}",é,"tab	here",plain,NULL}"#,
            ),
            (
                array(TypeKind::Timestamp),
                array_bytes(
                    1114,
                    &[(2, 1)],
                    &[Some(be((36_000_000_000i64).to_be_bytes())), None],
                ),
                "{\"2000-01-01 10:00:00\",NULL}",
            ),
            (
                array(TypeKind::Numeric),
                array_bytes(
                    1700,
                    &[(3, 1)],
                    &[
                        Some(numeric_from_str("1.50")),
                        None,
                        Some(numeric_from_str("NaN")),
                    ],
                ),
                "{1.50,NULL,NaN}",
            ),
            (array(TypeKind::Bytea), one(17, vec![1]), "{\"\\\\x01\"}"),
            (
                array(TypeKind::Bpchar),
                one(1042, b"ab  ".to_vec()),
                "{\"ab  \"}",
            ),
            (
                array(TypeKind::Jsonb),
                one(3802, b"\x01{\"a\": [1, 2]}".to_vec()),
                r#"{"{\"a\": [1, 2]}"}"#,
            ),
            (
                array(TypeKind::Bool),
                array_bytes(16, &[(2, 1)], &[Some(vec![1]), Some(vec![0])]),
                "{t,f}",
            ),
            (
                array(TypeKind::Interval),
                one(
                    1186,
                    [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0].to_vec(),
                ),
                "{\"1 day\"}",
            ),
            (
                array(TypeKind::Inet),
                one(650, inet_bytes(2, 8, true, &[10, 0, 0, 0])),
                "{10.0.0.0/8}",
            ),
        ]);
    }

    #[test]
    fn renders_json_values() {
        let cases: Vec<(TypeKind, Vec<u8>, &str)> = vec![
            (TypeKind::Bool, vec![1], "true"),
            (TypeKind::Bool, vec![0], "false"),
            (
                TypeKind::Int(8),
                be(i64::MIN.to_be_bytes()),
                "-9223372036854775808",
            ),
            (TypeKind::Numeric, numeric_from_str("3000.00"), "3000.00"),
            (TypeKind::Numeric, numeric_from_str("-0.05"), "-0.05"),
            (TypeKind::Numeric, numeric_from_str("NaN"), "\"NaN\""),
            (
                TypeKind::Numeric,
                numeric_from_str("-Infinity"),
                "\"-Infinity\"",
            ),
            row(f8(1e100), "1e+100"),
            row(f8(-0.0), "-0"),
            row(f8(f64::INFINITY), "\"Infinity\""),
            row(f4(f32::NAN), "\"NaN\""),
            (
                TypeKind::Text,
                b"a\"b\\c\nd\te\x01\x08\x0c/\xc3\xa9".to_vec(),
                "\"a\\\"b\\\\c\\nd\\te\\u0001\\b\\f/é\"",
            ),
            (TypeKind::Bytea, vec![0xab], "\"\\\\xab\""),
            row(date(0), "\"2000-01-01\""),
            row(
                stamp(TypeKind::TimestampTz, 0),
                "\"2000-01-01 00:00:00+00\"",
            ),
            (TypeKind::Json, b"{\"a\": 1.50}".to_vec(), "{\"a\": 1.50}"),
            (TypeKind::Jsonb, b"\x01[1, \"x\"]".to_vec(), "[1, \"x\"]"),
            (TypeKind::Other, vec![0xde, 0xad], "\"\\\\xdead\""),
            (
                TypeKind::Array(Box::new(TypeKind::Int(4))),
                int4s(&[(2, 1)], &[Some(1), None]),
                "\"{1,NULL}\"",
            ),
        ];
        for (kind, raw, expected) in cases {
            let rendered = json(&kind, &raw);
            assert_eq!(rendered, expected, "{kind:?}");
            crate::hash::json::canonicalize(rendered.as_bytes(), &mut Vec::new()).unwrap();
        }
    }

    #[test]
    fn refuses_what_has_no_text_form_or_is_malformed() {
        let composite = TypeKind::Composite(vec![TypeKind::Int(4)]);
        let mut out = String::new();
        assert!(render_text(&composite, &[0, 0, 0, 0], &mut out).is_err());
        assert!(render_json(&composite, &[0, 0, 0, 0], &mut out).is_err());
        assert!(render_text(&TypeKind::Other, &[1], &mut out).is_err());
        assert!(render_text(&TypeKind::Text, b"\xff", &mut out).is_err());
        assert!(render_text(&TypeKind::Jsonb, b"\x02{}", &mut out).is_err());
        assert!(render_text(&TypeKind::Date, &[0; 3], &mut out).is_err());
        assert!(render_text(&TypeKind::Inet, &[2, 33, 0, 4, 1, 2, 3, 4], &mut out).is_err());
        assert!(render_json(&TypeKind::Numeric, &[0; 7], &mut out).is_err());
        assert_eq!(out, "");
        // An array whose second element is malformed leaves nothing behind.
        let elems = [Some(vec![0, 0, 0, 1]), Some(vec![1])];
        let raw = array_bytes(23, &[(2, 1)], &elems);
        out.push_str("kept");
        assert!(render_text(&TypeKind::Array(Box::new(TypeKind::Int(4))), &raw, &mut out).is_err());
        assert_eq!(out, "kept");
    }

    #[test]
    fn steps_decimals_across_powers_of_ten() {
        assert_eq!(step(b"999", 4, true), (b"100".to_vec(), 5));
        assert_eq!(step(b"100", 5, false), (b"999".to_vec(), 4));
        assert_eq!(step(b"129", 0, true), (b"130".to_vec(), 0));
        assert_eq!(step(b"120", 0, false), (b"119".to_vec(), 0));
        assert_eq!(decrement(b"1"), b"0");
    }

    /// Hinnant's days_from_civil, to check civil_from_days against an independent inverse.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    proptest! {
        #[test]
        fn numerics_print_back_as_written(int in "[1-9][0-9]{0,30}|0", frac in "[0-9]{0,30}", negative in any::<bool>()) {
            let zero = int == "0" && frac.bytes().all(|b| b == b'0');
            let sign = if negative && !zero { "-" } else { "" };
            let literal = if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
            let body = if negative { format!("-{}", &literal[sign.len()..]) } else { literal.clone() };
            prop_assert_eq!(text(&TypeKind::Numeric, &numeric_from_str(&body)), literal);
        }

        #[test]
        fn floats_read_back_exactly(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            let printed = text(&TypeKind::Float8, &bits.to_be_bytes());
            let back: f64 = printed.replace("Infinity", "inf").parse().unwrap();
            prop_assert!(back == x || (x.is_nan() && back.is_nan()), "{} {}", x, printed);
            prop_assert!(x.is_nan() || back.is_sign_negative() == x.is_sign_negative());
        }

        #[test]
        fn dates_follow_the_gregorian_calendar(days in -2_451_545i32..2_914_000) {
            let (y, m, d) = civil_from_days(i64::from(days) + PG_EPOCH_UNIX_DAYS);
            prop_assert_eq!(days_from_civil(y, m, d), i64::from(days) + PG_EPOCH_UNIX_DAYS);
            prop_assert!((1..=12).contains(&m) && (1..=31).contains(&d));
        }
    }
}
