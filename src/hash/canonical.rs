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
//! The readers of the binary forms live in [`crate::value`], shared with `key` and the sinks.

use crate::shape::{TypeKind, ValueError};
use crate::value::{
    fixed, jsonb_text, parse_inet, parse_numeric, read_bool, read_float, read_int, take_u32,
    trim_bpchar, Array, Inet, Numeric,
};

/// Appends one field: NULL → byte 0; a value → LEB128 varint of (length + 1), then its canonical
/// bytes. The NULL flag and the length share one varint, so a field costs one byte of framing in
/// the common case (values under 127 bytes): framing bytes are hashed bytes, and blake3's cost per
/// row grows with every 64 of them. On error `out` is left as it was.
// Inlined into the per-field loops: the call's register saves and restores cost about as much
// as encoding an integer (18 instructions a field, by callgrind).
#[inline(always)]
pub fn encode_field(
    kind: &TypeKind,
    raw: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    let Some(raw) = raw else {
        out.push(0);
        return Ok(());
    };
    // The commonest kinds have a canonical length known up front: their prefix is written first
    // instead of patched afterwards. Same bytes as the general path below (a unit test holds it).
    match kind {
        TypeKind::Int(width) => {
            let value = read_int(*width, raw)?;
            out.push(9);
            out.extend_from_slice(&value.to_be_bytes());
            return Ok(());
        }
        TypeKind::Text | TypeKind::Bytea | TypeKind::Other if raw.len() < 127 => {
            out.push(raw.len() as u8 + 1);
            out.extend_from_slice(raw);
            return Ok(());
        }
        TypeKind::Timestamp | TypeKind::TimestampTz | TypeKind::Time => {
            let value = fixed::<8>(kind, raw)?;
            out.push(9);
            out.extend_from_slice(&value);
            return Ok(());
        }
        TypeKind::Float4 | TypeKind::Float8 => {
            let value = canonical_float(read_float(kind, raw)?);
            out.push(9);
            out.extend_from_slice(&value.to_be_bytes());
            return Ok(());
        }
        TypeKind::Uuid => {
            let value = fixed::<16>(kind, raw)?;
            out.push(17);
            out.extend_from_slice(&value);
            return Ok(());
        }
        TypeKind::Date => {
            let value = fixed::<4>(kind, raw)?;
            out.push(5);
            out.extend_from_slice(&value);
            return Ok(());
        }
        TypeKind::Bool => {
            let value = read_bool(raw)?;
            out.extend_from_slice(&[2, u8::from(value)]);
            return Ok(());
        }
        _ => {}
    }
    encode_framed(kind, raw, out)
}

/// The general path of [`encode_field`]: a placeholder prefix, the value, then the real prefix.
#[inline(never)]
fn encode_framed(kind: &TypeKind, raw: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    let start = out.len();
    out.push(0);
    if let Err(e) = encode_value(kind, raw, out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 1;
    if len < 127 {
        out[start] = len as u8 + 1;
    } else {
        let mut prefix = [0u8; 10];
        let n = varint(len as u64 + 1, &mut prefix);
        out.splice(start..start + 1, prefix[..n].iter().copied());
    }
    Ok(())
}

/// For a value whose canonical encoding is its binary form as it is (text, bytea, and the kinds
/// compared by their bytes) behind a length prefix: that prefix. Lets a large value be hashed
/// where it lies, without copying it into an encoding buffer (same bytes as [`encode_field`]).
pub fn verbatim_prefix(kind: &TypeKind, raw: &[u8]) -> Option<([u8; 10], usize)> {
    match kind {
        TypeKind::Text | TypeKind::Bytea | TypeKind::Other => {
            let mut prefix = [0u8; 10];
            let n = varint(raw.len() as u64 + 1, &mut prefix);
            Some((prefix, n))
        }
        _ => None,
    }
}

/// LEB128: seven bits a byte, low bits first, high bit set on all but the last byte.
fn varint(mut value: u64, out: &mut [u8; 10]) -> usize {
    let mut n = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[n] = byte;
            return n + 1;
        }
        out[n] = byte | 0x80;
        n += 1;
    }
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

fn encode_inet(inet: &Inet<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[inet.family, inet.bits]);
    out.extend_from_slice(inet.address);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::value::testing::*;
    use proptest::prelude::*;

    fn canon(kind: &TypeKind, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_field(kind, Some(raw), &mut out).unwrap_or_else(|e| panic!("{kind:?} {raw:?}: {e}"));
        out
    }

    fn int(width: u8, value: i64) -> Vec<u8> {
        value.to_be_bytes()[8 - usize::from(width)..].to_vec()
    }

    fn jsonb(text: &str) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(text.as_bytes());
        out
    }

    fn num(text: &str) -> Vec<u8> {
        numeric_from_str(text)
    }

    const INT4: TypeKind = TypeKind::Int(4);
    const INT8: TypeKind = TypeKind::Int(8);

    #[test]
    fn helpers_write_what_the_server_sends() {
        // Checked against numeric_send() and array_send() on PostgreSQL 15.
        assert_eq!(
            num("-12.3400"),
            [0, 2, 0, 0, 0x40, 0, 0, 4, 0, 12, 0x0d, 0x48]
        );
        assert_eq!(num("0.000"), [0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(
            num("0.00000000000000000001"),
            [0, 1, 0xff, 0xfb, 0, 0, 0, 20, 0, 1]
        );
        assert_eq!(num("10000.0"), [0, 1, 0, 1, 0, 0, 0, 1, 0, 1]);
        assert_eq!(num("-Infinity"), [0, 0, 0, 0, 0xf0, 0, 0, 0]);
        let array = array_bytes(20, &[(2, 1)], &[None, Some(int(8, 1))]);
        let expected = "0000000100000001000000140000000200000001ffffffff000000080000000000000001";
        assert_eq!(hex(&array), expected);
    }

    use crate::tree::hex;

    /// Each row is a group of values that must all encode alike, and unlike every other group.
    fn assert_classes(classes: &[&[(TypeKind, Vec<u8>)]]) {
        let encoded: Vec<Vec<Vec<u8>>> = classes
            .iter()
            .map(|c| c.iter().map(|(k, raw)| canon(k, raw)).collect())
            .collect();
        for (i, class) in encoded.iter().enumerate() {
            for (j, value) in class.iter().enumerate() {
                assert_eq!(
                    value, &class[0],
                    "class {i}: member {j} differs: {:?}",
                    classes[i][j]
                );
            }
            for (k, other) in encoded.iter().enumerate().skip(i + 1) {
                assert_ne!(class[0], other[0], "classes {i} and {k} collide");
            }
        }
    }

    #[test]
    fn fields_are_flagged_and_length_prefixed() {
        let mut out = Vec::new();
        encode_field(&INT4, None, &mut out).unwrap();
        encode_field(&TypeKind::Text, Some(b"ab"), &mut out).unwrap();
        encode_field(&TypeKind::Text, Some(b""), &mut out).unwrap();
        assert_eq!(out, [0, 3, b'a', b'b', 1]);
        // A failed field leaves the row buffer as it was.
        assert!(encode_field(&INT4, Some(&[1, 2, 3]), &mut out).is_err());
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn long_fields_get_multi_byte_lengths() {
        for len in [125usize, 126, 127, 128, 16_383, 16_384, 3_000_000] {
            let mut out = vec![9];
            encode_field(&TypeKind::Bytea, Some(&vec![7u8; len]), &mut out).unwrap();
            let (mut value, mut shift, mut i) = (0u64, 0, 1);
            loop {
                value |= u64::from(out[i] & 0x7f) << shift;
                shift += 7;
                i += 1;
                if out[i - 1] & 0x80 == 0 {
                    break;
                }
            }
            assert_eq!(value as usize, len + 1, "length {len}");
            assert_eq!(out.len() - i, len);
            assert!(out[i..].iter().all(|&b| b == 7));
        }
    }

    #[test]
    fn integers_compare_by_value_across_widths() {
        assert_classes(&[
            &[
                (TypeKind::Int(2), int(2, 5)),
                (INT4, int(4, 5)),
                (INT8, int(8, 5)),
            ],
            &[
                (TypeKind::Int(2), int(2, -1)),
                (INT4, int(4, -1)),
                (INT8, int(8, -1)),
            ],
            &[
                (TypeKind::Int(2), int(2, i16::MIN.into())),
                (INT8, int(8, i16::MIN.into())),
            ],
            &[
                (INT4, int(4, i32::MAX.into())),
                (INT8, int(8, i32::MAX.into())),
            ],
            &[(INT8, int(8, i64::MIN))],
            &[(INT8, int(8, i64::MAX))],
            &[(INT8, int(8, 0))],
        ]);
        assert!(encode_value(&INT4, &int(8, 5), &mut Vec::new()).is_err());
        assert!(encode_value(&TypeKind::Int(2), &[], &mut Vec::new()).is_err());
    }

    #[test]
    fn floats_compare_as_float_equality_does() {
        let f4 = |x: f32| (TypeKind::Float4, x.to_be_bytes().to_vec());
        let f8 = |x: f64| (TypeKind::Float8, x.to_be_bytes().to_vec());
        let f8_bits = |b: u64| (TypeKind::Float8, b.to_be_bytes().to_vec());
        let f4_bits = |b: u32| (TypeKind::Float4, b.to_be_bytes().to_vec());
        assert_classes(&[
            &[f8(0.0), f8(-0.0), f4(0.0), f4(-0.0)],
            &[
                f8(f64::NAN),
                f8_bits(0xfff8_0000_0000_0000),
                f8_bits(0x7ff0_0000_0000_0001),
            ],
            &[f8(f64::INFINITY), f4(f32::INFINITY)],
            &[f8(f64::NEG_INFINITY), f4(f32::NEG_INFINITY)],
            &[f8(0.5), f4(0.5)],
            &[f8(0.1)],
            &[f4(0.1), f8(f64::from(0.1f32))],
            &[f8(f64::MAX)],
            &[f8(f64::MIN_POSITIVE)],
            &[f8(5e-324)],
            &[f8(-5e-324)],
            &[f4(f32::MAX), f8(f64::from(f32::MAX))],
        ]);
        assert_classes(&[&[
            f4(f32::NAN),
            f4_bits(0xffc0_0000),
            f4_bits(0x7f80_0001),
            f8(f64::NAN),
        ]]);
    }

    #[test]
    fn numerics_compare_by_value_not_scale() {
        let n = |text: &str| (TypeKind::Numeric, num(text));
        let padded =
            |text: &str, lead, trail| (TypeKind::Numeric, numeric_padded(text, lead, trail));
        let negative_zero = (TypeKind::Numeric, vec![0, 0, 0, 0, 0x40, 0, 0, 1]);
        let big = format!("1{}", "0".repeat(999));
        let big_plus_one = format!("1{}1", "0".repeat(998));
        let tiny = format!("0.{}1", "0".repeat(999));
        assert_classes(&[
            &[
                n("3000"),
                n("3000.0"),
                n("3000.00"),
                padded("3000.00", 2, 3),
            ],
            &[
                n("0"),
                n("0.000"),
                n("-0.0"),
                negative_zero,
                padded("0", 1, 1),
            ],
            &[n("NaN")],
            &[n("Infinity")],
            &[n("-Infinity")],
            &[n("-3000"), n("-3000.000")],
            &[n("0.3")],
            &[n("0.03")],
            &[n("3")],
            &[n("30000"), n("30000.0000")],
            &[n("12345678.9"), n("12345678.90000")],
            &[
                n(&big),
                n(&format!("{big}.{}", "0".repeat(500))),
                padded(&big, 7, 0),
            ],
            &[n(&big_plus_one)],
            &[n(&format!("-{big}"))],
            &[n(&tiny), padded(&tiny, 0, 4)],
            &[n("0.0001"), n("0.000100")],
            &[n("10000")],
            &[n("1")],
        ]);
    }

    #[test]
    fn malformed_numerics_are_refused() {
        let bad = |raw: &[u8]| encode_value(&TypeKind::Numeric, raw, &mut Vec::new()).unwrap_err();
        assert_eq!(
            bad(&[0, 1, 0, 0, 0, 0, 0, 0]).reason,
            "digit count does not match the length"
        );
        assert_eq!(
            bad(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).reason,
            "digit count does not match the length"
        );
        assert_eq!(
            bad(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).reason,
            "invalid digit"
        );
        assert_eq!(
            bad(&[0, 1, 0, 0, 0, 0, 0, 0, 0x80, 0x00]).reason,
            "invalid digit"
        );
        assert_eq!(bad(&[0, 0, 0, 0, 0x12, 0x34, 0, 0]).reason, "invalid sign");
        assert_eq!(bad(&[0, 0, 0, 0, 0, 0, 0x40, 0]).reason, "invalid scale");
        assert_eq!(bad(&[0, 0, 0, 0, 0, 0]).reason, "short header");
        // 1.5 claimed with no fraction digits: a stored numeric never hides digits.
        assert_eq!(
            bad(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0x13, 0x88]).reason,
            "digits beyond the display scale"
        );
        // 1.5000 with dscale 1 is fine: only zeros lie beyond the scale.
        assert!(encode_value(
            &TypeKind::Numeric,
            &[0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, 0x88],
            &mut Vec::new()
        )
        .is_ok());
    }

    #[test]
    fn text_compares_bytes_and_bpchar_ignores_trailing_spaces() {
        let t = |s: &str| (TypeKind::Text, s.as_bytes().to_vec());
        let bp = |s: &str| (TypeKind::Bpchar, s.as_bytes().to_vec());
        assert_classes(&[
            &[t("ab"), bp("ab"), bp("ab   ")],
            &[t("ab   ")],
            &[t(""), bp(""), bp("   ")],
            &[t(" ab"), bp(" ab ")],
            &[t("ab\t"), bp("ab\t  ")],
            &[t("\u{e9}")],
            &[t("e\u{301}")],
            &[t("日本語"), bp("日本語 ")],
        ]);
    }

    #[test]
    fn byte_kinds_compare_their_bytes() {
        let b = |kind: TypeKind, raw: &[u8]| (kind, raw.to_vec());
        let timetz = |micros: i64, zone: i32| {
            let mut raw = micros.to_be_bytes().to_vec();
            raw.extend_from_slice(&zone.to_be_bytes());
            (TypeKind::TimeTz, raw)
        };
        let interval = |micros: i64, days: i32, months: i32| {
            let mut raw = micros.to_be_bytes().to_vec();
            raw.extend_from_slice(&days.to_be_bytes());
            raw.extend_from_slice(&months.to_be_bytes());
            (TypeKind::Interval, raw)
        };
        assert_classes(&[
            &[b(TypeKind::Bytea, b"")],
            &[b(TypeKind::Bytea, b"\0")],
            &[b(TypeKind::Bytea, b"\0\0")],
            &[b(TypeKind::Bytea, &[0xde, 0xad])],
        ]);
        // 12:00+01 and 11:00+00 are the same instant, but timetz `=` also wants the same zone.
        assert_classes(&[
            &[timetz(12 * 3_600_000_000, -3600)],
            &[timetz(11 * 3_600_000_000, 0)],
        ]);
        // 1 mon, 30 days and 720 hours are `=` in PostgreSQL; here they differ (see module doc).
        assert_classes(&[
            &[interval(0, 0, 1)],
            &[interval(0, 30, 0)],
            &[interval(720 * 3_600_000_000, 0, 0)],
            &[interval(0, 0, 0)],
        ]);
        let kinds = [
            (TypeKind::Date, 4),
            (TypeKind::Time, 8),
            (TypeKind::TimeTz, 12),
            (TypeKind::Timestamp, 8),
            (TypeKind::TimestampTz, 8),
            (TypeKind::Interval, 16),
            (TypeKind::Uuid, 16),
            (TypeKind::Bool, 1),
            (TypeKind::Float4, 4),
            (TypeKind::Float8, 8),
        ];
        for (kind, len) in kinds {
            assert!(
                encode_value(&kind, &vec![7; len], &mut Vec::new()).is_ok(),
                "{kind:?}"
            );
            assert!(
                encode_value(&kind, &vec![7; len + 1], &mut Vec::new()).is_err(),
                "{kind:?}"
            );
            assert!(
                encode_value(&kind, &vec![7; len - 1], &mut Vec::new()).is_err(),
                "{kind:?}"
            );
        }
        assert_eq!(canon(&TypeKind::Bool, &[1]), canon(&TypeKind::Bool, &[7]));
        assert_ne!(canon(&TypeKind::Bool, &[1]), canon(&TypeKind::Bool, &[0]));
        assert_eq!(canon(&TypeKind::Other, b"\x01\x02"), [3, 1, 2]);
    }

    #[test]
    fn json_and_jsonb_compare_by_jsonb_meaning() {
        let j = |s: &str| (TypeKind::Json, s.as_bytes().to_vec());
        let jb = |s: &str| (TypeKind::Jsonb, jsonb(s));
        assert_classes(&[
            &[
                j(r#"{"b": [1, 2.0], "a": null}"#),
                jb(r#"{"a":null,"b":[1.00,2]}"#),
            ],
            &[j(r#"{"a": 1, "a": 2}"#), jb(r#"{"a": 2}"#)],
            &[j(r#""\u0041""#), jb(r#""A""#)],
            &[j("1e2"), jb("100"), j(" 100.000 ")],
            &[j("[]"), jb("[]")],
            &[j("{}"), jb("{}")],
            &[j("null")],
            &[j(r#""null""#)],
        ]);
        let err = encode_value(&TypeKind::Jsonb, b"\x02{}", &mut Vec::new()).unwrap_err();
        assert_eq!(err.reason, "unknown jsonb version");
        assert!(encode_value(&TypeKind::Jsonb, b"", &mut Vec::new()).is_err());
        assert!(encode_value(&TypeKind::Json, b"{", &mut Vec::new()).is_err());
    }

    #[test]
    fn inet_ignores_the_cidr_flag() {
        let inet = |family, bits, cidr, addr: &[u8]| {
            (TypeKind::Inet, inet_bytes(family, bits, cidr, addr))
        };
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_classes(&[
            &[
                inet(2, 8, true, &[10, 0, 0, 0]),
                inet(2, 8, false, &[10, 0, 0, 0]),
            ],
            &[inet(2, 16, false, &[10, 0, 0, 0])],
            &[inet(2, 8, false, &[10, 0, 0, 1])],
            &[inet(2, 32, false, &[10, 0, 0, 1])],
            &[inet(3, 32, true, &v6), inet(3, 32, false, &v6)],
            &[inet(3, 128, false, &v6)],
        ]);
        for bad in [
            inet_bytes(2, 33, false, &[1, 2, 3, 4]),
            inet_bytes(3, 8, false, &[1, 2, 3, 4]),
            inet_bytes(4, 8, false, &[1, 2, 3, 4]),
            vec![2, 8, 0, 4, 1, 2, 3],
            vec![2, 8, 0],
        ] {
            assert!(
                encode_value(&TypeKind::Inet, &bad, &mut Vec::new()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn arrays_compare_shape_bounds_and_elements() {
        let a4 = TypeKind::Array(Box::new(INT4));
        let a8 = TypeKind::Array(Box::new(INT8));
        let an = TypeKind::Array(Box::new(TypeKind::Numeric));
        let ints4 = |dims: &[(i32, i32)], v: &[Option<i64>]| {
            (
                a4.clone(),
                array_bytes(
                    23,
                    dims,
                    &v.iter().map(|x| x.map(|x| int(4, x))).collect::<Vec<_>>(),
                ),
            )
        };
        let ints8 = |dims: &[(i32, i32)], v: &[Option<i64>]| {
            (
                a8.clone(),
                array_bytes(
                    20,
                    dims,
                    &v.iter().map(|x| x.map(|x| int(8, x))).collect::<Vec<_>>(),
                ),
            )
        };
        assert_classes(&[
            &[
                ints4(&[(2, 1)], &[Some(1), Some(2)]),
                ints8(&[(2, 1)], &[Some(1), Some(2)]),
            ],
            &[ints4(&[(2, 0)], &[Some(1), Some(2)])],
            &[ints4(&[(1, 1), (2, 1)], &[Some(1), Some(2)])],
            &[ints4(&[(2, 1), (1, 1)], &[Some(1), Some(2)])],
            &[ints4(&[(2, 1)], &[Some(2), Some(1)])],
            &[
                ints4(&[], &[]),
                ints8(&[], &[]),
                ints4(&[(0, 1)], &[]),
                ints4(&[(2, 1), (0, 1)], &[]),
            ],
            &[ints4(&[(1, 1)], &[None])],
            &[ints4(&[(2, 2), (2, 1)], &[Some(1), None, None, Some(4)])],
            &[ints4(&[(2, 1), (2, 1)], &[Some(1), None, None, Some(4)])],
            &[
                (
                    an.clone(),
                    array_bytes(1700, &[(1, 1)], &[Some(num("1.0"))]),
                ),
                (an.clone(), array_bytes(1700, &[(1, 1)], &[Some(num("1"))])),
            ],
        ]);
        assert!(canon(&a4, &ints4(&[], &[]).1) != vec![0]);
        let truncated = &ints4(&[(2, 1)], &[Some(1), Some(2)]).1[..30];
        assert!(encode_value(&a4, truncated, &mut Vec::new()).is_err());
        let mut trailing = ints4(&[(1, 1)], &[Some(1)]).1;
        trailing.push(0);
        assert!(encode_value(&a4, &trailing, &mut Vec::new()).is_err());
        let wrong_element = array_bytes(23, &[(1, 1)], &[Some(vec![1, 2])]);
        assert!(encode_value(&a4, &wrong_element, &mut Vec::new()).is_err());
        let seven_dims = array_bytes(23, &[(1, 1); 7], &[Some(int(4, 1))]);
        assert!(encode_value(&a4, &seven_dims, &mut Vec::new()).is_err());
        let huge = array_bytes(23, &[(i32::MAX, 1), (i32::MAX, 1)], &[]);
        assert!(encode_value(&a4, &huge, &mut Vec::new()).is_err());
    }

    #[test]
    fn composites_compare_fields_by_their_kinds() {
        let kind = TypeKind::Composite(vec![INT8, TypeKind::Bpchar]);
        let row = |oid: u32, a: Option<i64>, b: Option<&str>| {
            let fields = [
                (oid, a.map(|a| int(8, a))),
                (25, b.map(|b| b.as_bytes().to_vec())),
            ];
            (kind.clone(), composite_bytes(&fields))
        };
        assert_classes(&[
            &[
                row(20, Some(1), Some("x")),
                row(99999, Some(1), Some("x  ")),
            ],
            &[row(20, Some(1), None)],
            &[row(20, None, Some("x"))],
            &[row(20, None, None)],
            &[row(20, Some(1), Some(""))],
        ]);
        let short = composite_bytes(&[(20, Some(int(8, 1)))]);
        let err = encode_value(&kind, &short, &mut Vec::new()).unwrap_err();
        assert_eq!(err.reason, "field count does not match the type");
        let mut trailing = row(20, Some(1), None).1;
        trailing.push(9);
        assert!(encode_value(&kind, &trailing, &mut Vec::new()).is_err());
    }

    proptest! {
        #[test]
        fn numeric_scale_is_not_significant(m in any::<i64>(), scale in 0u32..20, extra in 0usize..9, lead in 0usize..3, trail in 0usize..3) {
            let plain = decimal_string(m, scale);
            let longer = format!("{}{}", decimal_string(m, scale), if scale == 0 { "." } else { "" }) + &"0".repeat(extra);
            let a = canon(&TypeKind::Numeric, &numeric_from_str(&plain));
            let b = canon(&TypeKind::Numeric, &numeric_padded(longer.trim_end_matches('.'), lead, trail));
            prop_assert_eq!(a, b);
        }

        #[test]
        fn different_numerics_encode_differently(a in any::<i64>(), sa in 0u32..19, b in any::<i64>(), sb in 0u32..19, derive in 0u32..4) {
            // Often make b a rescaling of a (equal), or a rescaling off by one unit (unequal).
            let (b, sb) = match a.checked_mul(10i64.pow(derive)) {
                Some(scaled) if derive > 0 && sa + derive <= 18 => (scaled + i64::from(b % 2 == 0), sa + derive),
                _ => (b, sb),
            };
            let same = i128::from(a) * 10i128.pow(18 - sa) == i128::from(b) * 10i128.pow(18 - sb);
            let ea = canon(&TypeKind::Numeric, &numeric_from_str(&decimal_string(a, sa)));
            let eb = canon(&TypeKind::Numeric, &numeric_from_str(&decimal_string(b, sb)));
            prop_assert_eq!(same, ea == eb);
        }

        #[test]
        fn floats_encode_equal_iff_float_equality(a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (f64::from_bits(a), f64::from_bits(b));
            let same = x == y || (x.is_nan() && y.is_nan());
            let ea = canon(&TypeKind::Float8, &a.to_be_bytes());
            let eb = canon(&TypeKind::Float8, &b.to_be_bytes());
            prop_assert_eq!(same, ea == eb);
        }
    }

    #[test]
    fn fast_paths_write_what_the_general_path_writes() {
        let text = b"customer-42@example.com".to_vec();
        let cases: Vec<(TypeKind, Vec<u8>)> = vec![
            (TypeKind::Int(2), (-7i16).to_be_bytes().to_vec()),
            (TypeKind::Int(4), i32::MIN.to_be_bytes().to_vec()),
            (TypeKind::Int(8), i64::MAX.to_be_bytes().to_vec()),
            (TypeKind::Text, text.clone()),
            (TypeKind::Text, Vec::new()),
            (TypeKind::Text, vec![b'x'; 126]),
            (TypeKind::Text, vec![b'x'; 127]),
            (TypeKind::Bytea, vec![0, 1, 2]),
            (TypeKind::Other, text),
            (TypeKind::Timestamp, 123i64.to_be_bytes().to_vec()),
            (TypeKind::TimestampTz, (-1i64).to_be_bytes().to_vec()),
            (TypeKind::Time, 86_400_000_000i64.to_be_bytes().to_vec()),
            (TypeKind::Float8, (-0.0f64).to_be_bytes().to_vec()),
            (TypeKind::Float8, f64::NAN.to_be_bytes().to_vec()),
            (TypeKind::Float8, 0.1f64.to_be_bytes().to_vec()),
            (TypeKind::Float4, 0.1f32.to_be_bytes().to_vec()),
            (TypeKind::Uuid, (7u128 << 100 | 3).to_be_bytes().to_vec()),
            (TypeKind::Date, (-730i32).to_be_bytes().to_vec()),
            (TypeKind::Bool, vec![0]),
            (TypeKind::Bool, vec![5]),
        ];
        for (kind, raw) in cases {
            let (mut fast, mut general) = (vec![7], vec![7]);
            encode_field(&kind, Some(&raw), &mut fast).unwrap();
            encode_framed(&kind, &raw, &mut general).unwrap();
            assert_eq!(fast, general, "{kind:?} {raw:?}");
        }
        let mut out = vec![1, 2];
        assert!(encode_field(&TypeKind::Int(4), Some(&[0, 0, 1]), &mut out).is_err());
        assert!(encode_field(&TypeKind::TimestampTz, Some(&[0; 7]), &mut out).is_err());
        assert!(encode_field(&TypeKind::Float8, Some(&[0; 4]), &mut out).is_err());
        assert!(encode_field(&TypeKind::Uuid, Some(&[0; 15]), &mut out).is_err());
        assert!(encode_field(&TypeKind::Bool, Some(&[]), &mut out).is_err());
        assert_eq!(out, [1, 2], "a failed field leaves nothing behind");
    }
}
