//! Binary COPY field bytes in, canonical bytes for the row hash out.
//!
//! Two sources agree on a row when the blake3 hashes of its canonical encoding agree, so this
//! encoding decides what "equal" means: two values get identical bytes exactly when they are the
//! same logical value, across every kind of one [`Family`](crate::shape::Family) (int4 and int8,
//! varchar and bpchar, json and jsonb, cidr and inet compare by value).
//!
//! Per kind:
//! - integers as i64; float4 widened exactly to float8, with `-0` = `+0` and all NaNs equal as
//!   PostgreSQL's `=` says (so `0.1::float4` and `0.1::float8` differ, as they do in PostgreSQL);
//! - numeric normalized (no leading or trailing zero base-10000 digit), so scale is not
//!   significant: `3000.00` = `3000`, `0.000` = `-0`, NaN = NaN;
//! - text as its bytes (deterministic collations compare bytes; NFC and NFD differ); bpchar with
//!   trailing spaces stripped, as bpchar comparison ignores them;
//! - bytea, date, time, timestamp, timestamptz and uuid as their bytes: each binary form is a
//!   plain integer or byte string with exactly one form per value, and equality on these types is
//!   equality of that integer or string. timetz too: PostgreSQL's `=` on timetz requires the same
//!   time *and* the same zone (`12:00+01` ≠ `11:00+00`), which is equality of all 12 bytes;
//! - interval as its bytes. This is a deliberate departure: PostgreSQL's `=` says
//!   `'1 mon'` = `'30 days'` = `'720 hours'`, but those values add differently to dates and
//!   timestamps, so a migration that turned one into another changed the data;
//! - json and jsonb through [`crate::hash::json`], which encodes their jsonb meaning;
//! - inet and cidr as family, bits and address, without the cidr flag that `=` ignores;
//! - arrays as dimensions, lower bounds (array `=` compares them) and each element with a NULL
//!   flag, through the element's kind; the element type oid is left out, as it differs between
//!   databases for user types and between `int4[]` and `int8[]`;
//! - composites as each field with a NULL flag, through the field's kind; field oids left out;
//! - any other type as its bytes.
//!
//! The numeric, inet and array readers here are shared with `key::encode` and `key::render`.

use crate::shape::{TypeKind, ValueError};

/// Appends one field: NULL → byte 0; a value → byte 1, the u32 little-endian length of its
/// canonical bytes, then those bytes. On error `out` is left as it was.
pub fn encode_field(
    kind: &TypeKind,
    raw: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    let Some(raw) = raw else {
        out.push(0);
        return Ok(());
    };
    let start = out.len();
    out.push(1);
    out.extend_from_slice(&[0; 4]);
    let result = encode_value(kind, raw, out).and_then(|()| {
        let len = u32::try_from(out.len() - start - 5)
            .map_err(|_| ValueError::new(kind_name(kind), "value too large"))?;
        out[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
        Ok(())
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends the canonical encoding of one non-NULL value of `kind` from its binary form.
pub fn encode_value(kind: &TypeKind, raw: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    match kind {
        TypeKind::Int(width) => out.extend_from_slice(&read_int(*width, raw)?.to_be_bytes()),
        TypeKind::Text | TypeKind::Bytea | TypeKind::Other => out.extend_from_slice(raw),
        TypeKind::Timestamp | TypeKind::TimestampTz | TypeKind::Time => {
            out.extend_from_slice(&fixed::<8>(kind, raw)?)
        }
        TypeKind::Uuid => out.extend_from_slice(&fixed::<16>(kind, raw)?),
        TypeKind::Date => out.extend_from_slice(&fixed::<4>(kind, raw)?),
        TypeKind::TimeTz => out.extend_from_slice(&fixed::<12>(kind, raw)?),
        TypeKind::Interval => out.extend_from_slice(&fixed::<16>(kind, raw)?),
        TypeKind::Bool => out.push(u8::from(read_bool(raw)?)),
        TypeKind::Float4 | TypeKind::Float8 => {
            out.extend_from_slice(&canonical_float(read_float(kind, raw)?).to_be_bytes())
        }
        TypeKind::Bpchar => out.extend_from_slice(trim_bpchar(raw)),
        TypeKind::Numeric => encode_numeric(&parse_numeric(raw)?, out),
        TypeKind::Json => crate::hash::json::canonicalize(raw, out)?,
        TypeKind::Jsonb => crate::hash::json::canonicalize(jsonb_text(raw)?, out)?,
        TypeKind::Inet => encode_inet(&parse_inet(raw)?, out),
        TypeKind::Array(elem) => encode_array(elem, raw, out)?,
        TypeKind::Composite(fields) => encode_composite(fields, raw, out)?,
    }
    Ok(())
}

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
    match (width, raw.len()) {
        (8, 8) => Ok(i64::from_be_bytes(raw.try_into().unwrap_or_default())),
        (4, 4) => Ok(i64::from(i32::from_be_bytes(
            raw.try_into().unwrap_or_default(),
        ))),
        (2, 2) => Ok(i64::from(i16::from_be_bytes(
            raw.try_into().unwrap_or_default(),
        ))),
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

/// The bits that stand for `x` under PostgreSQL's float `=`: `-0` = `+0` and all NaNs equal.
fn canonical_float(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
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
    let last = decimal.digit(decimal.len() - 1);
    let zeros = [10, 100, 1000]
        .iter()
        .take_while(|&&p| last % p == 0)
        .count() as i64;
    let last_power = i64::from(weight) - (decimal.len() as i64 - 1);
    if -last_power * 4 - zeros > i64::from(dscale) {
        return Err(numeric_error("digits beyond the display scale"));
    }
    Ok(Numeric::Finite(decimal))
}

fn encode_numeric(value: &Numeric<'_>, out: &mut Vec<u8>) {
    match value {
        Numeric::NaN => out.push(b'N'),
        Numeric::Infinity => out.push(b'I'),
        Numeric::NegInfinity => out.push(b'i'),
        Numeric::Finite(d) if d.digits.is_empty() => out.push(b'0'),
        Numeric::Finite(d) => {
            out.push(if d.negative { b'-' } else { b'+' });
            out.extend_from_slice(&d.weight.to_be_bytes());
            out.extend_from_slice(d.digits);
        }
    }
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

fn encode_inet(inet: &Inet<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[inet.family, inet.bits]);
    out.extend_from_slice(inet.address);
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
fn take_u32(raw: &[u8], at: &mut usize) -> Result<u32, ValueError> {
    let bytes = raw
        .get(*at..*at + 4)
        .ok_or_else(|| array_error("truncated"))?;
    *at += 4;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
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
        let mut dims = Vec::with_capacity(ndim as usize);
        let mut items: usize = 1;
        for _ in 0..ndim {
            let (len, lower) = (
                take_u32(raw, &mut at)? as i32,
                take_u32(raw, &mut at)? as i32,
            );
            if len < 0 || lower.checked_add(len).is_none() {
                return Err(array_error("invalid dimension"));
            }
            items = items
                .checked_mul(len as usize)
                .ok_or_else(|| array_error("too large"))?;
            dims.push((len, lower));
        }
        if ndim == 0 || items == 0 {
            (dims, items) = (Vec::new(), 0);
        }
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

fn encode_array(elem: &TypeKind, raw: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    let array = Array::parse(raw)?;
    out.extend_from_slice(&(array.dims.len() as u32).to_be_bytes());
    for (len, lower) in &array.dims {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&lower.to_be_bytes());
    }
    for element in array.elements() {
        encode_field(elem, element, out)?;
    }
    Ok(())
}

fn encode_composite(fields: &[TypeKind], raw: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    let bad = |reason| ValueError::new("record", reason);
    let mut at = 0;
    let count = take_u32(raw, &mut at).map_err(|_| bad("truncated"))?;
    if count as usize != fields.len() {
        return Err(bad("field count does not match the type"));
    }
    out.extend_from_slice(&count.to_be_bytes());
    for kind in fields {
        take_u32(raw, &mut at).map_err(|_| bad("truncated"))?; // field oid
        let len = take_u32(raw, &mut at).map_err(|_| bad("truncated"))? as i32;
        let value = match len {
            -1 => None,
            0.. => Some(
                raw.get(at..at + len as usize)
                    .ok_or_else(|| bad("truncated"))?,
            ),
            _ => return Err(bad("invalid field length")),
        };
        at += len.max(0) as usize;
        encode_field(kind, value, out)?;
    }
    if at != raw.len() {
        return Err(bad("field lengths do not match the length"));
    }
    Ok(())
}
