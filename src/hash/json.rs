//! JSON text in, a canonical byte encoding of its jsonb meaning out.
//!
//! `json` and `jsonb` columns are one family, so a migration from one to the other must compare
//! by value, and a `jsonb` must compare equal however its text happens to be spelled. This module
//! parses JSON text (the `json` value itself, or the text after a `jsonb` version byte) and writes
//! a tree encoding that is equal for two texts exactly when jsonb would hold equal values:
//! whitespace is ignored; object keys are unique (the last duplicate wins, as in jsonb) and
//! sorted by their bytes; strings are compared after unescaping; numbers are compared as exact
//! decimals (`1.0` = `1` = `10E-1`, `-0` = `0`), never through floats and at any length.
//!
//! Every node starts with a tag byte, and strings, digit runs and containers carry their length or
//! count (as LEB128 varints, which have one form per number), so no two different trees share an
//! encoding.
//!
//! The parser is iterative (an explicit stack of open containers) and writes the tree once at the
//! end, splicing nested containers in, so time and memory stay linear in the text and nesting is
//! limited by memory only, never by the thread's stack: jsonb itself accepts nesting as deep as
//! its stack-depth check allows, and refusing a value the server stored would stop a diff for no
//! good reason.
//!
//! The `json` type accepts texts that jsonb refuses: `\u0000` (kept as a 0 byte: no text can
//! contain one, so it cannot collide) and lone UTF-16 surrogate escapes (kept as their 3-byte
//! generalized UTF-8 form, which valid UTF-8 text never contains). Exponents of any length are
//! kept exactly as well (`1e99999999999999999999` is valid `json`).
//!
//! Small flat documents (a scalar, or an object or array of scalars, the usual content of a
//! `jsonb` column) take a shorter path in [`flat`] that writes the same bytes without the tree.

use crate::shape::ValueError;

mod flat;

const TAG_NULL: u8 = b'n';
const TAG_FALSE: u8 = b'f';
const TAG_TRUE: u8 = b't';
const TAG_NUMBER: u8 = b'd';
const TAG_STRING: u8 = b's';
const TAG_ARRAY: u8 = b'a';
const TAG_OBJECT: u8 = b'o';

fn err(reason: &'static str) -> ValueError {
    ValueError::new("json", reason)
}

/// Appends the canonical encoding of the JSON text `text`; on error `out` is left as it was.
pub fn canonicalize(text: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    if flat::canonicalize(text, out) {
        return Ok(());
    }
    canonicalize_tree(text, out)
}

/// The general parser, for any text (and every error).
fn canonicalize_tree(text: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    let start = out.len();
    // The parser's buffers live on between calls (one set per thread): a JSON column is
    // canonicalized once per row, and allocating them afresh each time cost more than parsing.
    let spare = SPARE.with(|s| s.take());
    let mut parser = Parser {
        cur: Cursor { text, pos: 0 },
        arena: spare.arena,
        used: 0,
        open: spare.open,
        scratch: spare.scratch,
        work: spare.work,
    };
    parser.open.clear();
    let result = parser.run(out);
    if result.is_err() {
        out.truncate(start);
    }
    SPARE.with(|s| {
        s.replace(Spare {
            arena: parser.arena,
            open: parser.open,
            scratch: parser.scratch,
            work: parser.work,
        })
    });
    result
}

/// A parser's buffers between two calls.
#[derive(Default)]
struct Spare {
    arena: Vec<Container>,
    open: Vec<usize>,
    scratch: Vec<u8>,
    work: Vec<Work>,
}

thread_local! {
    static SPARE: std::cell::Cell<Spare> = std::cell::Cell::new(Spare::default());
}

/// An array or object as parsed. Scalars and keys are encoded into `buf` as they are read; nested
/// containers stay separate nodes of the arena and are spliced in when the tree is written, so no
/// byte is copied once per nesting level.
#[derive(Default)]
struct Container {
    object: bool,
    buf: Vec<u8>,
    /// Arrays: the element count, and where in `buf` each nested container goes.
    count: usize,
    splices: Vec<(usize, usize)>,
    /// Objects: the key being filled, and every member so far in text order.
    key: (usize, usize),
    members: Vec<Member>,
}

#[derive(Clone, Copy)]
struct Member {
    key: (usize, usize),
    value: Value,
}

/// A complete value: a range of its container's `buf` (or of the output, at the top level), or a
/// container of the arena.
#[derive(Clone, Copy)]
enum Value {
    Bytes(usize, usize),
    Node(usize),
}

enum Step {
    Complete(Value),
    /// A container was opened and its first value comes next.
    Opened,
}

/// One piece of the output still to be written, in order.
enum Work {
    Node(usize),
    Bytes(usize, usize, usize),
    Key(usize, usize, usize),
}

struct Parser<'a> {
    cur: Cursor<'a>,
    /// Containers of this value are `arena[..used]`; the rest are spares from earlier calls.
    arena: Vec<Container>,
    used: usize,
    /// The open containers, innermost last.
    open: Vec<usize>,
    /// A string value being unescaped (its length is written before it).
    scratch: Vec<u8>,
    /// The output still to write, while the tree is emitted.
    work: Vec<Work>,
}

impl Parser<'_> {
    fn run(&mut self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        let root = loop {
            if let Step::Complete(value) = self.value(out)? {
                if let Some(root) = self.after_value(value)? {
                    break root;
                }
            }
        };
        self.cur.skip_ws();
        if !self.cur.at_end() {
            return Err(err("text after the value"));
        }
        match root {
            Value::Node(id) => self.emit(id, out),
            Value::Bytes(..) => {}
        }
        Ok(())
    }

    /// Files a completed value into its container and closes the containers that end after it;
    /// the root value once the top level is complete, `None` when another value follows.
    fn after_value(&mut self, mut value: Value) -> Result<Option<Value>, ValueError> {
        while let Some(&id) = self.open.last() {
            attach(&mut self.arena[id], value);
            self.cur.skip_ws();
            let object = self.arena[id].object;
            match self.cur.peek() {
                Some(b',') => {
                    self.cur.pos += 1;
                    if object {
                        self.key()?;
                    }
                    return Ok(None);
                }
                Some(b']') if !object => self.cur.pos += 1,
                Some(b'}') if object => self.cur.pos += 1,
                _ => return Err(err("expected ',' or the end of a container")),
            }
            self.open.pop();
            value = Value::Node(id);
        }
        Ok(Some(value))
    }

    fn value(&mut self, out: &mut Vec<u8>) -> Result<Step, ValueError> {
        self.cur.skip_ws();
        let first = self.cur.peek();
        if let Some(open @ (b'{' | b'[')) = first {
            return self.open(open == b'{');
        }
        let target = match self.open.last() {
            Some(&id) => &mut self.arena[id].buf,
            None => out,
        };
        let start = target.len();
        match first {
            Some(b'"') => {
                self.scratch.clear();
                self.cur.string(&mut self.scratch)?;
                target.push(TAG_STRING);
                put_len(target, self.scratch.len());
                target.extend_from_slice(&self.scratch);
            }
            Some(b't') => self.cur.literal(b"true", TAG_TRUE, target)?,
            Some(b'f') => self.cur.literal(b"false", TAG_FALSE, target)?,
            Some(b'n') => self.cur.literal(b"null", TAG_NULL, target)?,
            Some(b'-' | b'0'..=b'9') => self.cur.number()?.encode(target),
            _ => return Err(err("expected a value")),
        }
        Ok(Step::Complete(Value::Bytes(start, target.len())))
    }

    fn open(&mut self, object: bool) -> Result<Step, ValueError> {
        self.cur.pos += 1;
        let id = self.used;
        self.used += 1;
        if id == self.arena.len() {
            self.arena.push(Container::default());
        }
        self.arena[id].reset(object);
        self.cur.skip_ws();
        if self.cur.eat(if object { b'}' } else { b']' }) {
            return Ok(Step::Complete(Value::Node(id)));
        }
        self.open.push(id);
        if object {
            self.key()?;
        }
        Ok(Step::Opened)
    }

    /// Parses `"key" :` into the innermost (object) container.
    fn key(&mut self) -> Result<(), ValueError> {
        self.cur.skip_ws();
        if self.cur.peek() != Some(b'"') {
            return Err(err("expected an object key"));
        }
        let id = *self
            .open
            .last()
            .ok_or_else(|| err("key outside an object"))?;
        let container = &mut self.arena[id];
        let start = container.buf.len();
        self.cur.string(&mut container.buf)?;
        container.key = (start, container.buf.len());
        self.cur.skip_ws();
        if !self.cur.eat(b':') {
            return Err(err("expected ':' after an object key"));
        }
        Ok(())
    }

    /// Writes the tree under container `root`, children in order, object members sorted.
    fn emit(&mut self, root: usize, out: &mut Vec<u8>) {
        let mut work = std::mem::take(&mut self.work);
        work.clear();
        work.push(Work::Node(root));
        while let Some(item) = work.pop() {
            match item {
                Work::Node(id) => self.emit_container(id, out, &mut work),
                Work::Bytes(id, start, end) => {
                    out.extend_from_slice(&self.arena[id].buf[start..end])
                }
                Work::Key(id, start, end) => {
                    put_len(out, end - start);
                    out.extend_from_slice(&self.arena[id].buf[start..end]);
                }
            }
        }
        self.work = work;
    }

    /// Writes a container's tag and count, and queues its children (reversed: `work` is a stack).
    fn emit_container(&mut self, id: usize, out: &mut Vec<u8>, work: &mut Vec<Work>) {
        let container = &mut self.arena[id];
        if container.object {
            sort_members(container);
        }
        let container = &self.arena[id];
        let slot = |value: Value| match value {
            Value::Bytes(start, end) => Work::Bytes(id, start, end),
            Value::Node(child) => Work::Node(child),
        };
        if container.object {
            out.push(TAG_OBJECT);
            put_len(out, container.members.len());
            for member in container.members.iter().rev() {
                work.push(slot(member.value));
                work.push(Work::Key(id, member.key.0, member.key.1));
            }
            return;
        }
        out.push(TAG_ARRAY);
        put_len(out, container.count);
        let mut end = container.buf.len();
        for &(at, child) in container.splices.iter().rev() {
            work.push(Work::Bytes(id, at, end));
            work.push(Work::Node(child));
            end = at;
        }
        work.push(Work::Bytes(id, 0, end));
    }
}

impl Container {
    /// Makes a spare container a new, empty one, keeping its buffers' capacity.
    fn reset(&mut self, object: bool) {
        self.object = object;
        self.buf.clear();
        self.count = 0;
        self.splices.clear();
        self.key = (0, 0);
        self.members.clear();
    }
}

/// Records a completed value as the container's next element or member.
fn attach(container: &mut Container, value: Value) {
    container.count += 1;
    if container.object {
        container.members.push(Member {
            key: container.key,
            value,
        });
    } else if let Value::Node(child) = value {
        container.splices.push((container.buf.len(), child));
    }
}

/// Sorts an object's members by key bytes in place, keeping the last of duplicate keys (as jsonb
/// does).
fn sort_members(container: &mut Container) {
    let buf = &container.buf;
    let key = |m: &Member| &buf[m.key.0..m.key.1];
    // Stable, so duplicates keep their text order and the last one of each run wins.
    container.members.sort_by(|a, b| key(a).cmp(key(b)));
    let kept = keep_last_of_runs(&mut container.members, key);
    container.members.truncate(kept);
}

/// Of each run of sorted members with equal keys, keeps the last (moved to the front, in
/// order); how many are kept.
fn keep_last_of_runs<'k, M: Copy>(members: &mut [M], key: impl Fn(&M) -> &'k [u8]) -> usize {
    let mut kept = 0;
    for i in 0..members.len() {
        if kept > 0 && key(&members[kept - 1]) == key(&members[i]) {
            members[kept - 1] = members[i];
        } else {
            members[kept] = members[i];
            kept += 1;
        }
    }
    kept
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    put_varint(out, len as u64);
}

/// A LEB128 varint: self-delimiting, and one form per number.
fn put_varint(out: &mut Vec<u8>, value: u64) {
    let mut rest = value;
    while rest >= 0x80 {
        out.push((rest as u8) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a code point as UTF-8; a lone surrogate gets the same 3-byte pattern (see module doc).
fn push_code_point(dst: &mut Vec<u8>, cp: u32) {
    match cp {
        0..0x80 => dst.push(cp as u8),
        0x80..0x800 => dst.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..0x10000 => dst.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        _ => dst.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
    }
}

/// A position in the JSON text; the scanning of strings, numbers and literals.
struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, word: &[u8], tag: u8, out: &mut Vec<u8>) -> Result<(), ValueError> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(err("invalid literal"));
        }
        self.pos += word.len();
        out.push(tag);
        Ok(())
    }

    /// Parses a string literal (at its opening quote), appending the unescaped bytes to `dst`.
    fn string(&mut self, dst: &mut Vec<u8>) -> Result<(), ValueError> {
        self.pos += 1;
        loop {
            let rest = &self.text[self.pos..];
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            let Some(run) = run else {
                return Err(err("unterminated string"));
            };
            dst.extend_from_slice(&rest[..run]);
            self.pos += run + 1;
            match rest[run] {
                b'"' => return Ok(()),
                b'\\' => self.escape(dst)?,
                _ => return Err(err("control character in a string must be escaped")),
            }
        }
    }

    /// Decodes the escape after a backslash.
    fn escape(&mut self, dst: &mut Vec<u8>) -> Result<(), ValueError> {
        let byte = self.peek().ok_or_else(|| err("unterminated escape"))?;
        self.pos += 1;
        let plain = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode_escape(dst),
            _ => return Err(err("invalid escape sequence")),
        };
        dst.push(plain);
        Ok(())
    }

    /// Decodes `XXXX` after `\u`, joining a surrogate pair into one character.
    fn unicode_escape(&mut self, dst: &mut Vec<u8>) -> Result<(), ValueError> {
        let unit = self.hex4()?;
        if (0xD800..0xDC00).contains(&unit) && self.text[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                push_code_point(dst, 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
                return Ok(());
            }
            self.pos = save;
        }
        push_code_point(dst, unit);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ValueError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| err("short \\u escape"))?;
        let mut value = 0;
        for &d in digits {
            let nibble = (d as char)
                .to_digit(16)
                .ok_or_else(|| err("invalid \\u escape"))?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    /// Scans a number by JSON's grammar (no leading zeros, no bare '.', no '+' sign).
    fn number(&mut self) -> Result<Number<'a>, ValueError> {
        let negative = self.eat(b'-');
        let int = self.digits();
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return Err(err("invalid number"));
        }
        let frac = if self.eat(b'.') {
            self.nonempty_digits()?
        } else {
            &[]
        };
        let mut exp_negative = false;
        let mut exp: &[u8] = &[];
        if self.eat(b'e') || self.eat(b'E') {
            exp_negative = self.eat(b'-');
            if !exp_negative {
                self.eat(b'+');
            }
            exp = self.nonempty_digits()?;
        }
        Ok(Number {
            negative,
            int,
            frac,
            exp,
            exp_negative,
        })
    }

    fn digits(&mut self) -> &'a [u8] {
        let text = self.text;
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        &text[start..self.pos]
    }

    fn nonempty_digits(&mut self) -> Result<&'a [u8], ValueError> {
        let digits = self.digits();
        if digits.is_empty() {
            return Err(err("invalid number"));
        }
        Ok(digits)
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }
}

/// A JSON number as written: `-int.frac e-exp`, digit runs borrowed from the text.
struct Number<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: &'a [u8],
    exp_negative: bool,
}

impl Number<'_> {
    /// Writes the value as sign, exponent and significant digits: `digits × 10^exponent` with no
    /// leading or trailing zero digit, so equal values (at any scale) write equal bytes.
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(TAG_NUMBER);
        if self.frac.is_empty() && self.exp.is_empty() && self.int != b"0" {
            // A plain integer (the commonest number, and JSON allows it no leading zero): the
            // general path's bytes, without its iterator chains and i128 exponent.
            let digits = self.int;
            let trailing = digits.iter().rev().take_while(|&&d| d == b'0').count();
            out.push(if self.negative { b'-' } else { b'+' });
            out.push(0);
            put_varint(out, 2 * trailing as u64);
            put_len(out, digits.len() - trailing);
            out.extend_from_slice(&digits[..digits.len() - trailing]);
            return;
        }
        let all = || self.int.iter().chain(self.frac);
        let Some(first) = all().position(|&d| d != b'0') else {
            out.push(b'0');
            return;
        };
        let len = self.int.len() + self.frac.len();
        let last = len - 1 - all().rev().position(|&d| d != b'0').unwrap_or(0);
        out.push(if self.negative { b'-' } else { b'+' });
        // value = digits[first..=last] × 10^(exp − frac.len() + trailing zeros dropped)
        let shift = (len - 1 - last) as i128 - self.frac.len() as i128;
        match exponent(self.exp_negative, self.exp, shift) {
            Exponent::Small(e) => {
                out.push(0);
                // Zigzag: small exponents of either sign take one byte.
                put_varint(out, ((e << 1) ^ (e >> 63)) as u64);
            }
            Exponent::Huge { negative, digits } => {
                out.extend_from_slice(&[1, u8::from(negative)]);
                put_len(out, digits.len());
                out.extend_from_slice(&digits);
            }
        }
        put_len(out, last + 1 - first);
        out.extend(all().skip(first).take(last + 1 - first));
    }
}

/// A number's exact decimal exponent: zigzag-varint sized when it fits in i64 (always, outside
/// of contrived `json` texts), else its sign and decimal digits. Which form is used depends on
/// the value only, so each exponent has one encoding.
#[derive(Debug, PartialEq)]
enum Exponent {
    Small(i64),
    Huge { negative: bool, digits: Vec<u8> },
}

/// The exponent `±digits + shift`, exact for exponents of any length.
fn exponent(negative: bool, digits: &[u8], shift: i128) -> Exponent {
    let digits = &digits[digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len())..];
    if digits.len() <= 30 {
        let value = digits
            .iter()
            .fold(0i128, |v, &d| v * 10 + i128::from(d - b'0'));
        let value = if negative { -value } else { value } + shift;
        return match i64::try_from(value) {
            Ok(small) => Exponent::Small(small),
            Err(_) => Exponent::Huge {
                negative: value < 0,
                digits: value.unsigned_abs().to_string().into_bytes(),
            },
        };
    }
    // |shift| < 10^30 <= |exponent|: the sign stays and the magnitude moves by ±shift.
    let delta = if negative { -shift } else { shift };
    Exponent::Huge {
        negative,
        digits: add_small(digits, delta),
    }
}

/// Adds `delta` to the decimal `digits`, whose value exceeds `|delta|`.
fn add_small(digits: &[u8], delta: i128) -> Vec<u8> {
    let mut result: Vec<i32> = digits.iter().rev().map(|&d| i32::from(d - b'0')).collect();
    let mut carry = delta;
    for digit in result.iter_mut() {
        if carry == 0 {
            break;
        }
        let sum = i128::from(*digit) + carry;
        *digit = sum.rem_euclid(10) as i32;
        carry = sum.div_euclid(10);
    }
    while carry > 0 {
        result.push((carry % 10) as i32);
        carry /= 10;
    }
    while result.len() > 1 && result.last() == Some(&0) {
        result.pop();
    }
    result.iter().rev().map(|&d| b'0' + d as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn canon(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        canonicalize(text.as_bytes(), &mut out).unwrap_or_else(|e| panic!("{text}: {e}"));
        out
    }

    #[test]
    fn encodes_tagged_length_prefixed_trees() {
        assert_eq!(canon("null"), b"n");
        assert_eq!(canon(" true "), b"t");
        assert_eq!(canon("\"ab\""), b"s\x02ab");
        assert_eq!(canon("[false, []]"), b"a\x02fa\x00");
        assert_eq!(canon("{\"k\": 0}"), b"o\x01\x01kd0");
        // 12.50 = 125 × 10^-1 (zigzag -1 = 1); 1e-64 has exponent zigzag 127; 1e64 128 (2 bytes).
        assert_eq!(canon("12.50"), b"d+\x00\x01\x03125");
        assert_eq!(canon("-1e-64"), b"d-\x00\x7f\x011");
        assert_eq!(canon("1e64"), b"d+\x00\x80\x01\x011");
        assert_eq!(
            canon(&format!("\"{}\"", "x".repeat(300))).len(),
            1 + 2 + 300
        );
    }

    /// Each row holds texts of one jsonb value; different rows hold different values.
    const CLASSES: &[&[&str]] = &[
        &[
            "1",
            "1.0",
            "1.00",
            "1e0",
            "10E-1",
            "0.1e1",
            "100e-2",
            "1E+0",
            "0.00001e5",
        ],
        &["-1", "-1.000", "-0.1e1"],
        &["0", "-0", "0.0", "-0.0e5", "0e-7", "0E0"],
        &["10", "1e1", "1.0e+1", "100e-1"],
        &["0.1", "1e-1", "0.10"],
        &["12"],
        &["1.2"],
        &[
            "123456789012345678901234567890",
            "1.23456789012345678901234567890e29",
        ],
        &["123456789012345678901234567891"],
        &[
            "1e100000000000000000000000000000000000",
            "10e99999999999999999999999999999999999",
        ],
        &["1e99999999999999999999999999999999999"],
        &[
            "1e-100000000000000000000000000000000000",
            "0.1e-99999999999999999999999999999999999",
        ],
        &["true"],
        &["false"],
        &["null"],
        &["\"1\""],
        &["\"\""],
        &["\"A\"", "\"\\u0041\"", "\"\\u0041\""],
        &["\"é\"", "\"\\u00e9\"", "\"\\u00E9\""],
        &["\"e\u{301}\""],
        &["\"😀\"", "\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\""],
        &["\"\\ud83d\""],
        &["\"\\ude00\""],
        &["\"\\ude00\\ud83d\""],
        &["\"\\u0000\""],
        &[
            "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
            "\"a\\u0022b\\u005cc/d\\u0008\\u000c\\u000a\\u000d\\u0009\"",
        ],
        &["[]", "[ ]", " [\n\t] "],
        &["{}", "{ }"],
        &["[[]]"],
        &["[{}]"],
        &["[1,2]", "[1.0, 2.00]", "[ 1 , 2 ]"],
        &["[2,1]"],
        &["[1,[2]]"],
        &["[[1],2]"],
        &["[\"a\",\"b\"]"],
        &["[\"ab\"]"],
        &[
            "{\"a\":1,\"b\":2}",
            "{\"b\":2,\"a\":1}",
            "{\"b\":2,\"a\":1,\"b\":2}",
            "{\"a\":5,\"b\":2,\"a\":1}",
        ],
        &["{\"a\":1}", "{\"a\":{\"x\":1},\"a\":1}"],
        &["{\"a\":1,\"b\":null}"],
        &["{\"a\":\"1\"}"],
        &["{\"\":1}"],
        &["{\"ab\":1}", "{\"a\\u0062\":1}"],
        &[
            "{\"a\":{\"b\":[1,{\"c\":true}]}}",
            "{\"a\":{\"b\":[1e0,{\"c\":false,\"c\":true}]}}",
        ],
    ];

    #[test]
    fn equal_values_encode_alike_and_different_ones_differ() {
        let encoded: Vec<Vec<Vec<u8>>> = CLASSES
            .iter()
            .map(|class| class.iter().map(|t| canon(t)).collect())
            .collect();
        for (i, class) in encoded.iter().enumerate() {
            for (j, value) in class.iter().enumerate() {
                assert_eq!(value, &class[0], "{} vs {}", CLASSES[i][j], CLASSES[i][0]);
            }
            for (k, other) in encoded.iter().enumerate().skip(i + 1) {
                assert_ne!(class[0], other[0], "{} vs {}", CLASSES[i][0], CLASSES[k][0]);
            }
        }
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        let invalid = [
            "",
            " ",
            "01",
            "-01",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "-",
            "--1",
            "0x10",
            "1 2",
            "[1 2]",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1,}",
            "{1:1}",
            "[",
            "]",
            "{",
            "}",
            "[}",
            "{]",
            "[1}",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12\"",
            "\"\\uZZZZ\"",
            "\"a\tb\"",
            "\"a\nb\"",
            "tru",
            "truex",
            "nul",
            "True",
            "NaN",
            "Infinity",
            "'a'",
            "[1]]",
            "{}{}",
            "1true",
            "\"\\",
            "[\"a\"",
            "{\"a\":1",
        ];
        for text in invalid {
            let mut out = vec![42];
            assert!(
                canonicalize(text.as_bytes(), &mut out).is_err(),
                "accepted {text:?}"
            );
            assert_eq!(out, [42], "{text:?} left output behind");
        }
    }

    #[test]
    fn deep_nesting_does_not_exhaust_the_stack() {
        let depth = 200_000;
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let out = canon(&text);
        assert_eq!(out.len(), 2 * depth);
        let text = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert!(!canon(&text).is_empty());
        assert!(canonicalize(
            format!("{}1", "[".repeat(depth)).as_bytes(),
            &mut Vec::new()
        )
        .is_err());
    }

    #[test]
    fn adds_small_shifts_to_long_exponents() {
        assert_eq!(add_small(b"999", 5), b"1004");
        assert_eq!(add_small(b"1000", -1), b"999");
        assert_eq!(add_small(b"1000", -999), b"1");
        assert_eq!(exponent(true, b"0005", 2), Exponent::Small(-3));
        assert_eq!(exponent(false, b"", -3), Exponent::Small(-3));
        let max = i64::MAX.to_string();
        assert_eq!(
            exponent(false, max.as_bytes(), 0),
            Exponent::Small(i64::MAX)
        );
        let huge = Exponent::Huge {
            negative: false,
            digits: b"9223372036854775808".to_vec(),
        };
        assert_eq!(exponent(false, max.as_bytes(), 1), huge);
        // -(10^40) + 9 = -(999…991).
        let long = format!("1{}", "0".repeat(40));
        let digits = format!("{}1", "9".repeat(39)).into_bytes();
        assert_eq!(
            exponent(true, long.as_bytes(), 9),
            Exponent::Huge {
                negative: true,
                digits
            }
        );
    }

    /// A model of a jsonb value, kept normalized: numbers as (mantissa without trailing zeros,
    /// exponent), objects as sorted maps.
    #[derive(Clone, Debug, PartialEq)]
    enum Model {
        Null,
        Bool(bool),
        Number(i64, i32),
        Str(String),
        Array(Vec<Model>),
        Object(BTreeMap<String, Model>),
    }

    fn model() -> impl Strategy<Value = Model> {
        let number = (-1000i64..1000, -3i32..3).prop_map(|(m, e)| normalize_number(m, e));
        let leaf = prop_oneof![
            Just(Model::Null),
            any::<bool>().prop_map(Model::Bool),
            number,
            "[a-c\"\\\\é😀\u{1}]{0,3}".prop_map(Model::Str),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Model::Array),
                prop::collection::btree_map("[a-c]{0,2}", inner, 0..4).prop_map(Model::Object),
            ]
        })
    }

    fn normalize_number(mut m: i64, mut e: i32) -> Model {
        if m == 0 {
            return Model::Number(0, 0);
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        Model::Number(m, e)
    }

    /// Writes the model as JSON text, spelled in one of several equivalent ways chosen by `style`.
    fn write(model: &Model, style: u32, out: &mut String) {
        let ws = if style % 2 == 1 { " \n" } else { "" };
        match model {
            Model::Null => out.push_str("null"),
            Model::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Model::Number(m, e) => write_number(*m, *e, style, out),
            Model::Str(s) => write_string(s, style, out),
            Model::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i > 0 { "," } else { "" });
                    out.push_str(ws);
                    write(item, style.rotate_left(3) ^ i as u32, out);
                }
                out.push_str(ws);
                out.push(']');
            }
            Model::Object(members) => write_object(members, style, out),
        }
    }

    fn write_object(members: &BTreeMap<String, Model>, style: u32, out: &mut String) {
        out.push('{');
        let mut entries: Vec<_> = members.iter().collect();
        if style.is_multiple_of(3) {
            entries.reverse();
        }
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if style.is_multiple_of(5) {
                // A shadowed duplicate first: the last occurrence wins.
                write_string(key, style, out);
                out.push_str(":[\"shadowed\"],");
            }
            write_string(key, style.rotate_left(5), out);
            out.push_str(if style % 2 == 1 { " : " } else { ":" });
            write(value, style.rotate_left(7) ^ i as u32, out);
        }
        out.push('}');
    }

    fn write_number(m: i64, e: i32, style: u32, out: &mut String) {
        // Zero takes no padding: "0000" is not a JSON number.
        let extra = if m == 0 { 0 } else { (style % 4) as i32 };
        let sign = if m < 0 { "-" } else { "" };
        let digits = format!("{}{}", m.unsigned_abs(), "0".repeat(extra as usize));
        match style % 3 {
            0 => out.push_str(&format!("{sign}{digits}e{}", e - extra)),
            1 if e - extra < 0 => {
                let frac = (extra - e) as usize;
                let padded = format!("{digits:0>width$}", width = frac + 1);
                let (int, frac) = padded.split_at(padded.len() - frac);
                out.push_str(&format!("{sign}{int}.{frac}"));
            }
            _ => out.push_str(&format!("{sign}{digits}E{:+}", e - extra)),
        }
    }

    fn write_string(s: &str, style: u32, out: &mut String) {
        out.push('"');
        for (i, c) in s.chars().enumerate() {
            let escape = (style >> (i % 16)) & 1 == 1;
            match c {
                '"' | '\\' => out.extend(['\\', c]),
                '\u{1}' => out.push_str("\\u0001"),
                c if escape => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// The general parser alone, as the reference for the flat path.
    fn tree(text: &[u8]) -> Result<Vec<u8>, ValueError> {
        let mut out = b"prefix".to_vec();
        canonicalize_tree(text, &mut out)?;
        Ok(out)
    }

    /// Both paths together, as every caller sees them.
    fn both(text: &[u8]) -> Result<Vec<u8>, ValueError> {
        let mut out = b"prefix".to_vec();
        canonicalize(text, &mut out)?;
        Ok(out)
    }

    fn takes_flat(text: &str) -> bool {
        let mut out = b"prefix".to_vec();
        let taken = flat::canonicalize(text.as_bytes(), &mut out);
        if !taken {
            assert_eq!(out, b"prefix", "{text}: a declined text left output behind");
        }
        taken
    }

    #[test]
    fn flat_path_takes_the_common_shapes_and_declines_the_rest() {
        for text in [
            r#"{"n": 42, "channel": "web"}"#,
            r#"{"b":1,"a":2,"b":3}"#,
            r#" { } "#,
            r#"[1, "x", null, true, false, -0.5e3]"#,
            "[]",
            r#""plain""#,
            "12.50",
            r#"{"k": "é😀"}"#,
        ] {
            assert!(takes_flat(text), "{text}");
            assert_eq!(
                both(text.as_bytes()).unwrap(),
                tree(text.as_bytes()).unwrap()
            );
        }
        let many: Vec<String> = (0..17).map(|i| format!("\"k{i}\": {i}")).collect();
        let many = format!("{{{}}}", many.join(", "));
        for text in [
            r#"{"a": {"b": 1}}"#,
            r#"[[1]]"#,
            r#"{"a\u0062": 1}"#,
            r#"{"a": "x\ny"}"#,
            many.as_str(),
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            "[1 2]",
            "01",
            "tru",
            "true x",
            "\"open",
            "",
        ] {
            assert!(!takes_flat(text), "{text}");
        }
    }

    /// A flat model: scalars only, in an object (keys may repeat) or an array.
    fn flat_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            (-1000i64..1000, -3i32..3, any::<u32>()).prop_map(|(m, e, style)| {
                let mut out = String::new();
                write_number(m, e, style, &mut out);
                out
            }),
            ("[a-c\"\\\\é\u{1}]{0,3}", any::<u32>()).prop_map(|(s, style)| {
                let mut out = String::new();
                write_string(&s, style & 0xff00, &mut out);
                out
            }),
        ];
        let ws = prop_oneof![Just(""), Just(" "), Just("\n\t ")];
        let member = ("[a-c\\\\]{0,2}", scalar.clone(), ws.clone()).prop_map(|(k, v, w)| {
            let mut key = String::new();
            write_string(&k, 0, &mut key);
            format!("{w}{key}{w}:{w}{v}{w}")
        });
        prop_oneof![
            prop::collection::vec(member, 0..20).prop_map(|m| format!("{{{}}}", m.join(","))),
            (prop::collection::vec(scalar.clone(), 0..6), ws.clone())
                .prop_map(|(items, w)| format!("[{w}{}{w}]", items.join(","))),
            (scalar, ws).prop_map(|(s, w)| format!("{w}{s}{w}")),
        ]
    }

    proptest! {
        #[test]
        fn flat_path_writes_what_the_tree_writes(text in flat_text()) {
            let fast = both(text.as_bytes());
            let reference = tree(text.as_bytes());
            prop_assert_eq!(fast.as_ref().ok(), reference.as_ref().ok(), "{}", text);
            prop_assert!(reference.is_ok(), "{}", text);
        }

        /// Damaged texts: the paths together accept exactly what the tree accepts, alike.
        #[test]
        fn flat_path_refuses_what_the_tree_refuses(
            text in flat_text(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[]\",:\\ 0-.eEatfnu\x01".to_vec()),
            cut in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                if cut { bytes.truncate(i) } else { bytes[i] = byte }
            }
            let fast = both(&bytes);
            let reference = tree(&bytes);
            prop_assert_eq!(fast.is_ok(), reference.is_ok(), "{:?}", String::from_utf8_lossy(&bytes));
            prop_assert_eq!(fast.ok(), reference.ok());
        }

        #[test]
        fn spellings_of_one_value_encode_alike(value in model(), a in any::<u32>(), b in any::<u32>()) {
            let (mut x, mut y) = (String::new(), String::new());
            write(&value, a, &mut x);
            write(&value, b, &mut y);
            prop_assert_eq!(canon(&x), canon(&y), "{} vs {}", x, y);
        }

        #[test]
        fn different_values_encode_differently(p in model(), q in model(), a in any::<u32>(), b in any::<u32>()) {
            let (mut x, mut y) = (String::new(), String::new());
            write(&p, a, &mut x);
            write(&q, b, &mut y);
            prop_assert_eq!(p == q, canon(&x) == canon(&y), "{} vs {}", x, y);
        }
    }
}
