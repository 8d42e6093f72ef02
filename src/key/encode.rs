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

use crate::shape::{TypeKind, ValueError};
use crate::value::{
    fixed, kind_name, parse_numeric, read_bool, read_float, read_int, trim_bpchar, Decimal, Numeric,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::testing::{decimal_string, numeric_from_str, numeric_padded};
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn key(kind: &TypeKind, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_part(kind, raw, &mut out).unwrap_or_else(|e| panic!("{kind:?} {raw:?}: {e}"));
        out
    }

    /// Asserts the values' keys strictly increase; each row may hold several equal values.
    fn assert_ascending(rows: &[Vec<(TypeKind, Vec<u8>)>]) {
        let keys: Vec<Vec<Vec<u8>>> = rows
            .iter()
            .map(|row| row.iter().map(|(k, raw)| key(k, raw)).collect())
            .collect();
        for (i, row) in keys.iter().enumerate() {
            for (j, k) in row.iter().enumerate() {
                assert_eq!(k, &row[0], "row {i}: member {j} differs: {:?}", rows[i][j]);
            }
            if i > 0 {
                assert!(
                    keys[i - 1][0] < row[0],
                    "row {} !< row {i}: {:?}",
                    i - 1,
                    rows[i]
                );
            }
        }
    }

    fn n(text: &str) -> (TypeKind, Vec<u8>) {
        (TypeKind::Numeric, numeric_from_str(text))
    }

    fn int(width: u8, value: i64) -> (TypeKind, Vec<u8>) {
        (
            TypeKind::Int(width),
            value.to_be_bytes()[8 - usize::from(width)..].to_vec(),
        )
    }

    fn f8(x: f64) -> (TypeKind, Vec<u8>) {
        (TypeKind::Float8, x.to_be_bytes().to_vec())
    }

    fn f4(x: f32) -> (TypeKind, Vec<u8>) {
        (TypeKind::Float4, x.to_be_bytes().to_vec())
    }

    fn text(kind: TypeKind, s: &[u8]) -> (TypeKind, Vec<u8>) {
        (kind, s.to_vec())
    }

    #[test]
    fn integers_order_across_widths() {
        assert_ascending(&[
            vec![int(8, i64::MIN)],
            vec![int(4, i32::MIN.into()), int(8, i32::MIN.into())],
            vec![int(2, -32768), int(4, -32768)],
            vec![int(2, -1), int(4, -1), int(8, -1)],
            vec![int(2, 0), int(4, 0), int(8, 0)],
            vec![int(2, 1), int(8, 1)],
            vec![int(2, 256)],
            vec![int(4, i32::MAX.into())],
            vec![int(8, i64::MAX)],
        ]);
        assert_eq!(
            key(&TypeKind::Int(8), &0i64.to_be_bytes()),
            [0x80, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn floats_order_as_float8_comparison() {
        assert_ascending(&[
            vec![f8(f64::NEG_INFINITY), f4(f32::NEG_INFINITY)],
            vec![f8(f64::MIN)],
            vec![f8(-1.0), f4(-1.0)],
            vec![f8(-5e-324)],
            vec![f8(0.0), f8(-0.0), f4(0.0), f4(-0.0)],
            vec![f8(5e-324)],
            vec![f8(0.1)],
            vec![f4(0.1)],
            vec![f8(1.0), f4(1.0)],
            vec![f8(f64::MAX)],
            vec![f8(f64::INFINITY), f4(f32::INFINITY)],
            vec![
                f8(f64::NAN),
                f8(-f64::NAN),
                f4(f32::NAN),
                f8(f64::from_bits(0x7ff0_0000_0000_0001)),
            ],
        ]);
    }

    #[test]
    fn numerics_order_by_value() {
        let big = format!("1{}", "0".repeat(999));
        let tiny = format!("0.{}1", "0".repeat(999));
        let zero = vec![
            n("0"),
            n("0.000"),
            n("-0.0"),
            (TypeKind::Numeric, vec![0, 0, 0, 0, 0x40, 0, 0, 0]),
        ];
        assert_ascending(&[
            vec![n("-Infinity")],
            vec![n(&format!("-{big}9"))],
            vec![n(&format!("-{big}"))],
            vec![n("-10001")],
            vec![n("-10000"), n("-10000.00")],
            vec![n("-9999.5")],
            vec![n("-9999")],
            vec![n("-1.0001")],
            vec![
                n("-1"),
                n("-1.0"),
                (TypeKind::Numeric, numeric_padded("-1", 2, 2)),
            ],
            vec![n("-0.0001")],
            vec![n(&format!("-{tiny}"))],
            zero,
            vec![n(&tiny)],
            vec![n("0.00000000000000000001")],
            vec![n("0.0001")],
            vec![n("0.5"), n("0.50")],
            vec![
                n("1"),
                n("1.000"),
                (TypeKind::Numeric, numeric_padded("1", 1, 3)),
            ],
            vec![n("1.00001")],
            vec![n("1.0001")],
            vec![n("9999")],
            vec![n("10000")],
            vec![n("10000.5")],
            vec![n(&big)],
            vec![n(&format!("{big}.5"))],
            vec![n("Infinity")],
            vec![n("NaN")],
        ]);
    }

    #[test]
    fn text_orders_by_bytes_and_bpchar_ignores_trailing_spaces() {
        let t = |s: &str| text(TypeKind::Text, s.as_bytes());
        let bp = |s: &str| text(TypeKind::Bpchar, s.as_bytes());
        assert_ascending(&[
            vec![t(""), bp(""), bp("  ")],
            vec![t("\u{1}")],
            vec![t("\t")],
            vec![t(" ")],
            vec![t("A")],
            vec![t("a"), bp("a "), bp("a")],
            vec![t("a\t"), bp("a\t ")],
            vec![t("a ")],
            vec![t("ab"), bp("ab   ")],
            vec![t("abc")],
            vec![t("b")],
            vec![t("\u{e9}")],
            vec![t("\u{65e5}")],
            vec![t("\u{1F600}")],
        ]);
        let err = encode_key_part(&TypeKind::Text, b"a\0b", &mut Vec::new()).unwrap_err();
        assert_eq!(err.reason, "contains a NUL byte");
    }

    #[test]
    fn bytea_orders_by_bytes_with_nuls() {
        let b = |s: &[u8]| text(TypeKind::Bytea, s);
        assert_ascending(&[
            vec![b(b"")],
            vec![b(b"\0")],
            vec![b(b"\0\0")],
            vec![b(b"\0\x01")],
            vec![b(b"\x01")],
            vec![b(b"ab")],
            vec![b(b"ab\0")],
            vec![b(b"ab\0\0")],
            vec![b(b"ab\0\xff")],
            vec![b(b"ab\x01")],
            vec![b(b"abc")],
            vec![b(b"\xff")],
            vec![b(b"\xff\0")],
            vec![b(b"\xff\xff")],
        ]);
        assert_eq!(key(&TypeKind::Bytea, b"a\0"), b"a\0\xff\0\0");
    }

    #[test]
    fn fixed_width_kinds_order_as_integers_or_bytes() {
        let date = |d: i32| (TypeKind::Date, d.to_be_bytes().to_vec());
        assert_ascending(&[
            vec![date(i32::MIN)],
            vec![date(-2_451_545)],
            vec![date(-1)],
            vec![date(0)],
            vec![date(2_914_000)],
            vec![date(i32::MAX)],
        ]);
        for kind in [TypeKind::Timestamp, TypeKind::TimestampTz, TypeKind::Time] {
            let v = |x: i64| (kind.clone(), x.to_be_bytes().to_vec());
            assert_ascending(&[
                vec![v(i64::MIN)],
                vec![v(-1)],
                vec![v(0)],
                vec![v(86_400_000_000)],
                vec![v(i64::MAX)],
            ]);
        }
        let uuid = |first: u8, last: u8| {
            let mut raw = [0u8; 16];
            (raw[0], raw[15]) = (first, last);
            (TypeKind::Uuid, raw.to_vec())
        };
        assert_ascending(&[
            vec![uuid(0, 0)],
            vec![uuid(0, 1)],
            vec![uuid(1, 0)],
            vec![uuid(0xff, 0xff)],
        ]);
        let bool_ = |b: u8| (TypeKind::Bool, vec![b]);
        assert_ascending(&[vec![bool_(0)], vec![bool_(1), bool_(2)]]);
    }

    #[test]
    fn refuses_kinds_that_cannot_be_ordered() {
        let kinds = [
            TypeKind::Interval,
            TypeKind::TimeTz,
            TypeKind::Json,
            TypeKind::Jsonb,
            TypeKind::Inet,
            TypeKind::Array(Box::new(TypeKind::Int(4))),
            TypeKind::Composite(vec![TypeKind::Int(4)]),
            TypeKind::Other,
        ];
        for kind in kinds {
            assert!(!kind.orderable());
            let err = encode_key_part(&kind, &[0; 16], &mut Vec::new()).unwrap_err();
            assert_eq!(
                err.reason, "values of this type cannot be ordered",
                "{kind:?}"
            );
        }
        assert!(encode_key_part(&TypeKind::Int(4), &[0; 8], &mut Vec::new()).is_err());
        assert!(encode_key_part(&TypeKind::Uuid, &[0; 15], &mut Vec::new()).is_err());
        assert!(encode_key_part(&TypeKind::Numeric, &[0; 7], &mut Vec::new()).is_err());
    }

    /// PostgreSQL's float8 order: NaN above everything, -0 = +0.
    fn float_order(x: f64, y: f64) -> Ordering {
        match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        }
    }

    /// Compares two decimal strings (`-?digits(.digits)?`) by value, independently of numerics.
    fn decimal_order(a: &str, b: &str) -> Ordering {
        let sign = |s: &str| s.starts_with('-');
        let is_zero = |s: &str| s.bytes().all(|c| matches!(c, b'0' | b'.' | b'-'));
        let class = |s: &str| {
            if is_zero(s) {
                1
            } else if sign(s) {
                0
            } else {
                2
            }
        };
        match class(a).cmp(&class(b)) {
            Ordering::Equal if class(a) == 1 => Ordering::Equal,
            Ordering::Equal if class(a) == 0 => magnitude_order(&b[1..], &a[1..]),
            Ordering::Equal => magnitude_order(a, b),
            other => other,
        }
    }

    fn magnitude_order(a: &str, b: &str) -> Ordering {
        let split = |s: &str| {
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            (
                int.trim_start_matches('0').to_string(),
                frac.trim_end_matches('0').to_string(),
            )
        };
        let ((ai, af), (bi, bf)) = (split(a), split(b));
        ai.len()
            .cmp(&bi.len())
            .then_with(|| ai.cmp(&bi))
            .then_with(|| af.cmp(&bf))
    }

    fn decimal_text() -> impl Strategy<Value = String> {
        ("-?", "[0-9]{0,40}", "[0-9]{0,40}").prop_map(|(sign, int, frac)| {
            let int = if int.is_empty() { "0".to_string() } else { int };
            if frac.is_empty() {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            }
        })
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()],
            0..8,
        )
    }

    proptest! {
        #[test]
        fn integer_keys_order_as_integers(a in any::<i64>(), b in any::<i64>(), wa in 0usize..3, wb in 0usize..3) {
            let widths = [2u8, 4, 8];
            let narrow = |v: i64, w: u8| match w { 2 => v as i16 as i64, 4 => v as i32 as i64, _ => v };
            let (a, b) = (narrow(a, widths[wa]), narrow(b, widths[wb]));
            let (ka, kb) = (key(&int(widths[wa], a).0, &int(widths[wa], a).1), key(&int(widths[wb], b).0, &int(widths[wb], b).1));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        #[test]
        fn float_keys_order_as_float8(a in any::<u64>(), b in any::<u64>(), same in any::<bool>()) {
            let (x, y) = (f64::from_bits(a), if same { f64::from_bits(a) } else { f64::from_bits(b) });
            prop_assert_eq!(key(&f8(x).0, &f8(x).1).cmp(&key(&f8(y).0, &f8(y).1)), float_order(x, y));
        }

        #[test]
        fn numeric_keys_order_as_numbers(a in any::<i64>(), sa in 0u32..19, b in any::<i64>(), sb in 0u32..19, lead in 0usize..2, trail in 0usize..2) {
            let order = (i128::from(a) * 10i128.pow(18 - sa)).cmp(&(i128::from(b) * 10i128.pow(18 - sb)));
            let ka = key(&TypeKind::Numeric, &numeric_padded(&decimal_string(a, sa), lead, trail));
            let kb = key(&TypeKind::Numeric, &numeric_from_str(&decimal_string(b, sb)));
            prop_assert_eq!(ka.cmp(&kb), order);
        }

        #[test]
        fn long_numeric_keys_order_as_decimal_strings(a in decimal_text(), b in decimal_text()) {
            let ka = key(&TypeKind::Numeric, &numeric_from_str(&a));
            let kb = key(&TypeKind::Numeric, &numeric_from_str(&b));
            prop_assert_eq!(ka.cmp(&kb), decimal_order(&a, &b), "{} vs {}", a, b);
        }

        #[test]
        fn text_and_bytea_keys_order_as_bytes(a in bytes(), b in bytes()) {
            let ka = key(&TypeKind::Bytea, &a);
            let kb = key(&TypeKind::Bytea, &b);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let (ta, tb): (Vec<u8>, Vec<u8>) = (a.iter().map(|&c| c.max(1)).collect(), b.iter().map(|&c| c.max(1)).collect());
            prop_assert_eq!(key(&TypeKind::Text, &ta).cmp(&key(&TypeKind::Text, &tb)), ta.cmp(&tb));
        }

        #[test]
        fn composite_keys_order_as_tuples(
            a in ("[ab]{0,2}", any::<i8>(), bytes(), -3i64..3, 0u32..2),
            b in ("[ab]{0,2}", any::<i8>(), bytes(), -3i64..3, 0u32..2),
        ) {
            let encode = |(t, i, bytes, m, s): &(String, i8, Vec<u8>, i64, u32)| {
                let mut out = Vec::new();
                encode_key_part(&TypeKind::Bpchar, format!("{t}  ").as_bytes(), &mut out).unwrap();
                encode_key_part(&TypeKind::Int(2), &i16::from(*i).to_be_bytes(), &mut out).unwrap();
                encode_key_part(&TypeKind::Bytea, bytes, &mut out).unwrap();
                encode_key_part(&TypeKind::Numeric, &numeric_from_str(&decimal_string(*m, *s)), &mut out).unwrap();
                encode_key_part(&TypeKind::Float4, &f32::from(*i).to_be_bytes(), &mut out).unwrap();
                out
            };
            let tuple = |(t, i, bytes, m, s): &(String, i8, Vec<u8>, i64, u32)| {
                (t.clone(), *i, bytes.clone(), *m * 10i64.pow(1 - s))
            };
            prop_assert_eq!(encode(&a).cmp(&encode(&b)), tuple(&a).cmp(&tuple(&b)));
        }
    }
}
