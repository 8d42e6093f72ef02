//! PostgreSQL's binary values, read: the one place that knows how `*_send` lays out a numeric,
//! an inet, an array, a float or a jsonb.
//!
//! Every stage that looks inside a binary COPY field reads it through here: the canonical row
//! encoding (`hash::canonical`), the order-preserving key encoding (`key::encode`), the SQL
//! renderer (`key::render`) and the Parquet sink. The readers check what they read (a numeric
//! whose scale hides digits, an array whose element count disagrees with its dimensions) and
//! say what is wrong in a [`ValueError`]; they never allocate.

use crate::shape::{TypeKind, ValueError};

/// The name a [`ValueError`] gives for a kind.
pub(crate) fn kind_name(kind: &TypeKind) -> &'static str {
    match kind {
        TypeKind::Bool => "bool",
        TypeKind::Int(2) => "int2",
        TypeKind::Int(4) => "int4",
        TypeKind::Int(_) => "int8",
        TypeKind::Float4 => "float4",
        TypeKind::Float8 => "float8",
        TypeKind::Numeric => "numeric",
        TypeKind::Text => "text",
        TypeKind::Bpchar => "bpchar",
        TypeKind::Bytea => "bytea",
        TypeKind::Date => "date",
        TypeKind::Time => "time",
        TypeKind::TimeTz => "timetz",
        TypeKind::Timestamp => "timestamp",
        TypeKind::TimestampTz => "timestamptz",
        TypeKind::Interval => "interval",
        TypeKind::Uuid => "uuid",
        TypeKind::Json => "json",
        TypeKind::Jsonb => "jsonb",
        TypeKind::Inet => "inet",
        TypeKind::Array(_) => "array",
        TypeKind::Composite(_) => "record",
        TypeKind::Other => "other",
    }
}

/// The value's bytes when they are exactly `N` long.
pub(crate) fn fixed<const N: usize>(kind: &TypeKind, raw: &[u8]) -> Result<[u8; N], ValueError> {
    raw.try_into()
        .map_err(|_| ValueError::new(kind_name(kind), "wrong length"))
}

/// An int2, int4 or int8 (by `width`) as i64.
pub(crate) fn read_int(width: u8, raw: &[u8]) -> Result<i64, ValueError> {
    match (width, raw) {
        (8, &[a, b, c, d, e, f, g, h]) => Ok(i64::from_be_bytes([a, b, c, d, e, f, g, h])),
        (4, &[a, b, c, d]) => Ok(i32::from_be_bytes([a, b, c, d]).into()),
        (2, &[a, b]) => Ok(i16::from_be_bytes([a, b]).into()),
        _ => Err(ValueError::new(
            kind_name(&TypeKind::Int(width)),
            "wrong length",
        )),
    }
}

/// A bool as boolrecv reads it: any nonzero byte is true.
pub(crate) fn read_bool(raw: &[u8]) -> Result<bool, ValueError> {
    Ok(fixed::<1>(&TypeKind::Bool, raw)?[0] != 0)
}

/// A float4 or float8 as f64; widening float4 is exact.
pub(crate) fn read_float(kind: &TypeKind, raw: &[u8]) -> Result<f64, ValueError> {
    if *kind == TypeKind::Float4 {
        Ok(f64::from(f32::from_be_bytes(fixed(kind, raw)?)))
    } else {
        Ok(f64::from_be_bytes(fixed(kind, raw)?))
    }
}

/// A bpchar without the trailing spaces its comparisons ignore.
pub(crate) fn trim_bpchar(raw: &[u8]) -> &[u8] {
    let len = raw.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &raw[..len]
}

/// The JSON text of a jsonb value: after its version byte, which must be 1.
pub(crate) fn jsonb_text(raw: &[u8]) -> Result<&[u8], ValueError> {
    match raw.split_first() {
        Some((1, text)) => Ok(text),
        _ => Err(ValueError::new("jsonb", "unknown jsonb version")),
    }
}

/// A numeric from its binary form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Numeric<'a> {
    NaN,
    Infinity,
    NegInfinity,
    Finite(Decimal<'a>),
}

/// A finite numeric, normalized: `digits` (base 10000, two bytes big-endian each) have no
/// leading or trailing zero digit, so equal values have equal `negative`, `weight` and `digits`
/// whatever their scale. Zero has no digits, weight 0 and is not negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimal<'a> {
    pub negative: bool,
    /// The power of 10000 of the first digit.
    pub weight: i32,
    pub digits: &'a [u8],
    /// The number of decimal digits after the point that numeric_out prints.
    pub dscale: u16,
}

impl Decimal<'_> {
    pub fn len(&self) -> usize {
        self.digits.len() / 2
    }

    /// The base-10000 digit at `index` (0 beyond the stored digits).
    pub fn digit(&self, index: usize) -> u16 {
        match self.digits.get(2 * index..2 * index + 2) {
            Some(pair) => u16::from_be_bytes([pair[0], pair[1]]),
            None => 0,
        }
    }
}

fn numeric_error(reason: &'static str) -> ValueError {
    ValueError::new("numeric", reason)
}

/// Reads a numeric as numeric_send writes it, refusing what numeric_recv would refuse and digits
/// hidden by the display scale (which no stored numeric has).
pub(crate) fn parse_numeric(raw: &[u8]) -> Result<Numeric<'_>, ValueError> {
    let header = raw.get(..8).ok_or_else(|| numeric_error("short header"))?;
    let field = |i: usize| u16::from_be_bytes([header[2 * i], header[2 * i + 1]]);
    let (ndigits, weight, sign, dscale) = (field(0), field(1) as i16, field(2), field(3));
    if dscale & 0x3FFF != dscale {
        return Err(numeric_error("invalid scale"));
    }
    let digits = &raw[8..];
    if digits.len() != 2 * usize::from(ndigits) {
        return Err(numeric_error("digit count does not match the length"));
    }
    if digits
        .chunks_exact(2)
        .any(|d| u16::from_be_bytes([d[0], d[1]]) >= 10000)
    {
        return Err(numeric_error("invalid digit"));
    }
    match sign {
        0xC000 => Ok(Numeric::NaN),
        0xD000 => Ok(Numeric::Infinity),
        0xF000 => Ok(Numeric::NegInfinity),
        0x0000 | 0x4000 => normalize(sign == 0x4000, i32::from(weight), digits, dscale),
        _ => Err(numeric_error("invalid sign")),
    }
}

/// Strips zero digits at both ends (moving the weight) and checks the scale hides no digit.
fn normalize(
    negative: bool,
    mut weight: i32,
    mut digits: &[u8],
    dscale: u16,
) -> Result<Numeric<'_>, ValueError> {
    while let [0, 0, rest @ ..] = digits {
        digits = rest;
        weight -= 1;
    }
    while let [rest @ .., 0, 0] = digits {
        digits = rest;
    }
    if digits.is_empty() {
        return Ok(Numeric::Finite(Decimal {
            negative: false,
            weight: 0,
            digits,
            dscale,
        }));
    }
    let decimal = Decimal {
        negative,
        weight,
        digits,
        dscale,
    };
    if hides_digits(&decimal) {
        return Err(numeric_error("digits beyond the display scale"));
    }
    Ok(Numeric::Finite(decimal))
}

/// Whether a nonzero decimal digit lies past `dscale` places after the point (its last digit is
/// nonzero after normalizing, so only its trailing decimal zeros can fall past the scale).
fn hides_digits(d: &Decimal<'_>) -> bool {
    let last = d.digit(d.len() - 1);
    let zeros = [10, 100, 1000]
        .iter()
        .take_while(|&&p| last.is_multiple_of(p))
        .count() as i64;
    let last_power = i64::from(d.weight) - (d.len() as i64 - 1);
    -last_power * 4 - zeros > i64::from(d.dscale)
}

/// An inet or cidr value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inet<'a> {
    /// 2 for IPv4, 3 for IPv6 (PostgreSQL's own numbering).
    pub family: u8,
    pub bits: u8,
    pub is_cidr: bool,
    pub address: &'a [u8],
}

pub(crate) fn parse_inet(raw: &[u8]) -> Result<Inet<'_>, ValueError> {
    let bad = || ValueError::new("inet", "malformed address");
    let [family, bits, is_cidr, len, address @ ..] = raw else {
        return Err(bad());
    };
    let (want_len, max_bits) = match family {
        2 => (4, 32),
        3 => (16, 128),
        _ => return Err(bad()),
    };
    if usize::from(*len) != want_len || address.len() != want_len || *bits > max_bits {
        return Err(bad());
    }
    Ok(Inet {
        family: *family,
        bits: *bits,
        is_cidr: *is_cidr != 0,
        address,
    })
}

/// An array value: its dimensions and its elements' bytes, checked to be well formed.
pub(crate) struct Array<'a> {
    /// (length, lower bound) per dimension, outermost first; empty for an empty array.
    pub dims: Vec<(i32, i32)>,
    pub items: usize,
    body: &'a [u8],
}

fn array_error(reason: &'static str) -> ValueError {
    ValueError::new("array", reason)
}

/// Reads 4 big-endian bytes at `*at`, moving past them.
pub(crate) fn take_u32(raw: &[u8], at: &mut usize) -> Result<u32, ValueError> {
    let bytes = raw
        .get(*at..*at + 4)
        .ok_or_else(|| array_error("truncated"))?;
    *at += 4;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Reads `ndim` (length, lower bound) pairs and the element count they imply; no dimensions
/// when there are no elements.
fn read_dims(
    raw: &[u8],
    at: &mut usize,
    ndim: u32,
) -> Result<(Vec<(i32, i32)>, usize), ValueError> {
    let mut dims = Vec::with_capacity(ndim as usize);
    let mut items: usize = 1;
    for _ in 0..ndim {
        let len = take_u32(raw, at)? as i32;
        let lower = take_u32(raw, at)? as i32;
        if len < 0 || lower.checked_add(len).is_none() {
            return Err(array_error("invalid dimension"));
        }
        items = items
            .checked_mul(len as usize)
            .ok_or_else(|| array_error("too large"))?;
        dims.push((len, lower));
    }
    if ndim == 0 || items == 0 {
        return Ok((Vec::new(), 0));
    }
    Ok((dims, items))
}

impl<'a> Array<'a> {
    /// Reads the header as array_send writes it and checks every element fits. An array with a
    /// zero-length dimension is read as the empty array, as array_recv does.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ValueError> {
        let mut at = 0;
        let ndim = take_u32(raw, &mut at)?;
        let flags = take_u32(raw, &mut at)?;
        take_u32(raw, &mut at)?; // element type oid: differs between databases
        if ndim > 6 || flags > 1 {
            return Err(array_error("invalid header"));
        }
        let (dims, items) = read_dims(raw, &mut at, ndim)?;
        let array = Array {
            dims,
            items,
            body: &raw[at..],
        };
        array.check_elements()?;
        Ok(array)
    }

    fn check_elements(&self) -> Result<(), ValueError> {
        if self.items > self.body.len() / 4 {
            return Err(array_error("truncated"));
        }
        let mut at = 0;
        for _ in 0..self.items {
            let len = take_u32(self.body, &mut at)? as i32;
            if len >= 0 {
                at = at
                    .checked_add(len as usize)
                    .ok_or_else(|| array_error("truncated"))?;
            } else if len != -1 {
                return Err(array_error("invalid element length"));
            }
        }
        if at != self.body.len() {
            return Err(array_error("element lengths do not match the length"));
        }
        Ok(())
    }

    /// The elements in row-major order; `None` for NULL.
    pub fn elements(&self) -> impl Iterator<Item = Option<&'a [u8]>> + '_ {
        let mut at = 0;
        (0..self.items).map(move |_| {
            let len = take_u32(self.body, &mut at).unwrap_or(u32::MAX) as i32;
            let start = at;
            at += len.max(0) as usize;
            (len >= 0).then(|| &self.body[start..at])
        })
    }
}

/// Builders of the bytes PostgreSQL's `*_send` functions write, for the unit tests of every
/// stage that reads them.
#[cfg(test)]
pub(crate) mod testing {
    /// numeric_send's bytes for a decimal literal (`-12.3400`, `NaN`, `Infinity`, `-Infinity`),
    /// with `dscale` the number of digits written after the point.
    pub(crate) fn numeric_from_str(text: &str) -> Vec<u8> {
        numeric_padded(text, 0, 0)
    }

    /// As [`numeric_from_str`], with `lead` and `trail` extra zero base-10000 digits, which
    /// numeric_recv accepts and numeric_send never writes.
    pub(crate) fn numeric_padded(text: &str, lead: usize, trail: usize) -> Vec<u8> {
        let special = |sign: u16| [0, 0, 0, 0, (sign >> 8) as u8, 0, 0, 0].to_vec();
        match text {
            "NaN" => return special(0xC000),
            "Infinity" => return special(0xD000),
            "-Infinity" => return special(0xF000),
            _ => {}
        }
        let (negative, body) = text.strip_prefix('-').map_or((false, text), |b| (true, b));
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let int_pad = (4 - int.len() % 4) % 4;
        let frac_pad = (4 - frac.len() % 4) % 4;
        let all = format!("{}{int}{frac}{}", "0".repeat(int_pad), "0".repeat(frac_pad));
        let groups: Vec<u16> = all.as_bytes().chunks(4).map(group_value).collect();
        let mut weight = ((int.len() + int_pad) / 4) as i32 - 1;
        let first = groups.iter().position(|&g| g != 0);
        let last = groups.iter().rposition(|&g| g != 0);
        let digits: Vec<u16> = match (first, last) {
            (Some(first), Some(last)) => {
                weight -= first as i32;
                groups[first..=last].to_vec()
            }
            _ => {
                weight = 0;
                Vec::new()
            }
        };
        let negative = negative && !digits.is_empty();
        let mut padded = vec![0u16; lead];
        padded.extend(&digits);
        padded.extend(vec![0u16; trail]);
        weight += lead as i32;
        let sign: u16 = if negative { 0x4000 } else { 0 };
        let mut out = Vec::new();
        for field in [
            padded.len() as u16,
            weight as i16 as u16,
            sign,
            frac.len() as u16,
        ] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        padded
            .iter()
            .for_each(|d| out.extend_from_slice(&d.to_be_bytes()));
        out
    }

    fn group_value(group: &[u8]) -> u16 {
        group.iter().fold(0, |v, &d| v * 10 + u16::from(d - b'0'))
    }

    /// array_send's bytes: `dims` as (length, lower bound), elements in row-major order.
    pub(crate) fn array_bytes(oid: u32, dims: &[(i32, i32)], elems: &[Option<Vec<u8>>]) -> Vec<u8> {
        let has_null = elems.iter().any(Option::is_none);
        let mut out = Vec::new();
        out.extend_from_slice(&(dims.len() as i32).to_be_bytes());
        out.extend_from_slice(&i32::from(has_null).to_be_bytes());
        out.extend_from_slice(&oid.to_be_bytes());
        for (len, lower) in dims {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&lower.to_be_bytes());
        }
        for elem in elems {
            push_len_value(&mut out, elem.as_deref());
        }
        out
    }

    /// record_send's bytes: each field with its type oid.
    pub(crate) fn composite_bytes(fields: &[(u32, Option<Vec<u8>>)]) -> Vec<u8> {
        let mut out = (fields.len() as i32).to_be_bytes().to_vec();
        for (oid, value) in fields {
            out.extend_from_slice(&oid.to_be_bytes());
            push_len_value(&mut out, value.as_deref());
        }
        out
    }

    fn push_len_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    pub(crate) fn inet_bytes(family: u8, bits: u8, cidr: bool, address: &[u8]) -> Vec<u8> {
        let mut out = vec![family, bits, u8::from(cidr), address.len() as u8];
        out.extend_from_slice(address);
        out
    }

    /// A decimal string for `mantissa × 10^-scale`, written with exactly `scale` fraction digits.
    pub(crate) fn decimal_string(mantissa: i64, scale: u32) -> String {
        let digits = mantissa.unsigned_abs().to_string();
        let sign = if mantissa < 0 { "-" } else { "" };
        let scale = scale as usize;
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{sign}{int}.{frac}")
    }
}
