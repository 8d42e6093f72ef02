//! Binary COPY key fields in, order-preserving byte strings out.
//!
//! Sources stream their rows in primary-key order and the diff merges those streams, so the
//! client must order keys exactly as the server's btree does. Each key part is encoded so that
//! `memcmp` on the encodings has the sign of PostgreSQL's comparison (text under a byte-order
//! collation), and two encodings are equal exactly when `=` says the values are. Every part is
//! self-delimiting (no encoding is a proper prefix of another of its kind), so the concatenated
//! parts of a composite key compare as the tuple does.
//!
//! Only kinds whose order the client can reproduce exactly are accepted, the ones for which
//! [`TypeKind::orderable`] holds.

use crate::hash::canonical::{
    fixed, kind_name, parse_numeric, read_bool, read_float, read_int, trim_bpchar, Decimal, Numeric,
};
use crate::shape::{TypeKind, ValueError};

const SIGN_64: u64 = 1 << 63;

/// Appends an order-preserving encoding of one key value: for any two values a, b of kinds in one
/// family, memcmp(enc(a), enc(b)) has the sign of PostgreSQL's btree comparison under a byte-order
/// ("C") collation, and enc(a) == enc(b) iff PostgreSQL's `=` says equal. Concatenating the parts of
/// a composite key must preserve lexicographic order, so each part is self-delimiting.
pub fn encode_key_part(kind: &TypeKind, raw: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    match kind {
        TypeKind::Int(width) => push_i64(read_int(*width, raw)?, out),
        TypeKind::Text => encode_text(raw, out)?,
        TypeKind::Bytea => encode_bytea(raw, out),
        TypeKind::Timestamp | TypeKind::TimestampTz | TypeKind::Time => {
            push_i64(i64::from_be_bytes(fixed(kind, raw)?), out)
        }
        TypeKind::Uuid => out.extend_from_slice(&fixed::<16>(kind, raw)?),
        TypeKind::Date => {
            let days = i32::from_be_bytes(fixed(kind, raw)?);
            out.extend_from_slice(&((days as u32) ^ (1 << 31)).to_be_bytes());
        }
        TypeKind::Bool => out.push(u8::from(read_bool(raw)?)),
        TypeKind::Float4 | TypeKind::Float8 => {
            out.extend_from_slice(&float_key(read_float(kind, raw)?).to_be_bytes())
        }
        TypeKind::Numeric => encode_numeric(&parse_numeric(raw)?, out),
        TypeKind::Bpchar => encode_text(trim_bpchar(raw), out)?,
        _ => {
            return Err(ValueError::new(
                kind_name(kind),
                "values of this type cannot be ordered",
            ))
        }
    }
    Ok(())
}

/// Flipping the sign bit makes two's complement order unsigned byte order.
fn push_i64(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&((value as u64) ^ SIGN_64).to_be_bytes());
}

/// Text compares by bytes under "C" and holds no NUL, so a 0 byte ends it and sorts first.
fn encode_text(raw: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    if raw.contains(&0) {
        return Err(ValueError::new("text", "contains a NUL byte"));
    }
    out.extend_from_slice(raw);
    out.push(0);
    Ok(())
}

/// bytea may hold NULs: 0x00 becomes 0x00 0xFF and 0x00 0x00 ends the value, which sorts below
/// any continuation, so "ab" < "ab\0" < "abc" as byteacmp says.
fn encode_bytea(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len() + 2);
    let mut parts = raw.split(|&b| b == 0);
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    for part in parts {
        out.extend_from_slice(&[0x00, 0xFF]);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

/// Orders floats as float8 comparison does: -0 = +0 and NaN (all equal) above +Infinity.
fn float_key(x: f64) -> u64 {
    if x.is_nan() {
        return u64::MAX;
    }
    let bits = if x == 0.0 { 0 } else { x.to_bits() };
    if bits & SIGN_64 == 0 {
        bits ^ SIGN_64
    } else {
        !bits
    }
}

// Numeric classes in PostgreSQL's order: -Infinity < negative < 0 < positive < Infinity < NaN.
const NUM_NEG_INF: u8 = 1;
const NUM_NEGATIVE: u8 = 2;
const NUM_ZERO: u8 = 3;
const NUM_POSITIVE: u8 = 4;
const NUM_INF: u8 = 5;
const NUM_NAN: u8 = 6;

fn encode_numeric(value: &Numeric<'_>, out: &mut Vec<u8>) {
    match value {
        Numeric::NegInfinity => out.push(NUM_NEG_INF),
        Numeric::Infinity => out.push(NUM_INF),
        Numeric::NaN => out.push(NUM_NAN),
        Numeric::Finite(d) if d.digits.is_empty() => out.push(NUM_ZERO),
        Numeric::Finite(d) if d.negative => {
            out.push(NUM_NEGATIVE);
            let start = out.len();
            push_magnitude(d, out);
            // Magnitude encodings are prefix-free, so inverting them reverses their order.
            out[start..].iter_mut().for_each(|b| *b = !*b);
        }
        Numeric::Finite(d) => {
            out.push(NUM_POSITIVE);
            push_magnitude(d, out);
        }
    }
}

/// A nonzero magnitude: the weight (a larger weight is a larger number, since the first digit is
/// nonzero), then each digit + 1 and a 0 terminator, so a shorter digit string (whose missing
/// digits are zeros) sorts below any longer one with the same prefix.
fn push_magnitude(d: &Decimal<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&((d.weight as u32) ^ (1 << 31)).to_be_bytes());
    for i in 0..d.len() {
        out.extend_from_slice(&(d.digit(i) + 1).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
}
