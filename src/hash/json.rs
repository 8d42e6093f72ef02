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
//! Every node starts with a tag byte and strings, digit runs and containers carry their length or
//! count, so no two different trees share an encoding.
//!
//! The parser is iterative (an explicit stack of open containers), so nesting is limited by memory
//! only, never by the thread's stack: jsonb itself accepts nesting as deep as its stack-depth check
//! allows, and refusing a value the server stored would stop a diff for no good reason.
//!
//! The `json` type accepts texts that jsonb refuses: `\u0000` (kept as a 0 byte: no text can
//! contain one, so it cannot collide) and lone UTF-16 surrogate escapes (kept as their 3-byte
//! generalized UTF-8 form, which valid UTF-8 text never contains). Exponents of any length are
//! kept exactly as well (`1e99999999999999999999` is valid `json`).

use crate::shape::ValueError;

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
    let start = out.len();
    let result = Parser {
        cur: Cursor { text, pos: 0 },
        stack: Vec::new(),
    }
    .run(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// An open array or object: its children's encodings so far.
struct Frame {
    object: bool,
    buf: Vec<u8>,
    /// Where the value being parsed starts in `buf`.
    slot: usize,
    count: usize,
    /// Objects only: the current key's range in `buf`, and every finished member.
    key: (usize, usize),
    members: Vec<Member>,
}

struct Member {
    key: (usize, usize),
    value: (usize, usize),
}

/// What parsing the start of a value left behind.
enum Step {
    /// A scalar or an empty container: the value is complete.
    Complete,
    /// A container was opened and its first value comes next.
    Opened,
}

struct Parser<'a> {
    cur: Cursor<'a>,
    stack: Vec<Frame>,
}

impl Parser<'_> {
    fn run(mut self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        loop {
            if let Step::Opened = self.value(out)? {
                continue;
            }
            if !self.after_value(out)? {
                break;
            }
        }
        self.cur.skip_ws();
        if !self.cur.at_end() {
            return Err(err("text after the value"));
        }
        Ok(())
    }

    /// Closes the containers that end after a completed value; true when another value follows.
    fn after_value(&mut self, out: &mut Vec<u8>) -> Result<bool, ValueError> {
        while let Some(frame) = self.stack.last_mut() {
            finish_slot(frame);
            self.cur.skip_ws();
            let object = frame.object;
            match self.cur.peek() {
                Some(b',') => {
                    self.cur.pos += 1;
                    if object {
                        self.key()?;
                    }
                    return Ok(true);
                }
                Some(b']') if !object => self.close(out)?,
                Some(b'}') if object => self.close(out)?,
                _ => return Err(err("expected ',' or the end of a container")),
            }
        }
        Ok(false)
    }

    fn value(&mut self, out: &mut Vec<u8>) -> Result<Step, ValueError> {
        self.cur.skip_ws();
        let first = self.cur.peek();
        if let Some(open @ (b'{' | b'[')) = first {
            return self.open(open == b'{', out);
        }
        let target = target(&mut self.stack, out);
        match first {
            Some(b'"') => {
                target.push(TAG_STRING);
                let at = target.len();
                target.extend_from_slice(&[0; 4]);
                self.cur.string(target)?;
                patch_len(target, at)?;
            }
            Some(b't') => self.cur.literal(b"true", TAG_TRUE, target)?,
            Some(b'f') => self.cur.literal(b"false", TAG_FALSE, target)?,
            Some(b'n') => self.cur.literal(b"null", TAG_NULL, target)?,
            Some(b'-' | b'0'..=b'9') => self.cur.number()?.encode(target)?,
            _ => return Err(err("expected a value")),
        }
        Ok(Step::Complete)
    }

    fn open(&mut self, object: bool, out: &mut Vec<u8>) -> Result<Step, ValueError> {
        self.cur.pos += 1;
        let frame = Frame {
            object,
            buf: Vec::new(),
            slot: 0,
            count: 0,
            key: (0, 0),
            members: Vec::new(),
        };
        self.stack.push(frame);
        self.cur.skip_ws();
        let end = if object { b'}' } else { b']' };
        if self.cur.peek() == Some(end) {
            self.close(out)?;
            return Ok(Step::Complete);
        }
        if object {
            self.key()?;
        }
        Ok(Step::Opened)
    }

    /// Parses `"key" :` into the open object and marks where its value starts.
    fn key(&mut self) -> Result<(), ValueError> {
        self.cur.skip_ws();
        if self.cur.peek() != Some(b'"') {
            return Err(err("expected an object key"));
        }
        let frame = self
            .stack
            .last_mut()
            .ok_or_else(|| err("key outside an object"))?;
        let start = frame.buf.len();
        self.cur.string(&mut frame.buf)?;
        frame.key = (start, frame.buf.len());
        frame.slot = frame.buf.len();
        self.cur.skip_ws();
        if !self.cur.eat(b':') {
            return Err(err("expected ':' after an object key"));
        }
        Ok(())
    }

    /// Pops the innermost container (its closing bracket is next) and encodes it into its parent.
    fn close(&mut self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        self.cur.pos += 1;
        let frame = self
            .stack
            .pop()
            .ok_or_else(|| err("unbalanced container"))?;
        let target = target(&mut self.stack, out);
        if frame.object {
            return emit_object(frame, target);
        }
        target.push(TAG_ARRAY);
        put_len(target, frame.count)?;
        target.extend_from_slice(&frame.buf);
        Ok(())
    }
}

/// Where a finished value goes: the innermost open container, or the output at the top level.
fn target<'v>(stack: &'v mut [Frame], out: &'v mut Vec<u8>) -> &'v mut Vec<u8> {
    match stack.last_mut() {
        Some(frame) => &mut frame.buf,
        None => out,
    }
}

/// Records the value just parsed as the container's next element or member.
fn finish_slot(frame: &mut Frame) {
    frame.count += 1;
    if frame.object {
        frame.members.push(Member {
            key: frame.key,
            value: (frame.slot, frame.buf.len()),
        });
    }
    frame.slot = frame.buf.len();
}

/// Writes an object with its members sorted by key, keeping the last of duplicate keys (jsonb).
fn emit_object(frame: Frame, out: &mut Vec<u8>) -> Result<(), ValueError> {
    let buf = &frame.buf;
    let key = |m: &Member| &buf[m.key.0..m.key.1];
    let mut members = frame.members;
    // Stable, so duplicates keep their text order and the last one of each run wins.
    members.sort_by(|a, b| key(a).cmp(key(b)));
    let kept: Vec<&Member> = members
        .iter()
        .enumerate()
        .filter(|(i, m)| members.get(i + 1).is_none_or(|next| key(next) != key(m)))
        .map(|(_, m)| m)
        .collect();
    out.push(TAG_OBJECT);
    put_len(out, kept.len())?;
    for member in kept {
        put_len(out, member.key.1 - member.key.0)?;
        out.extend_from_slice(key(member));
        out.extend_from_slice(&buf[member.value.0..member.value.1]);
    }
    Ok(())
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), ValueError> {
    let len = u32::try_from(len).map_err(|_| err("value too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Fills the 4-byte length reserved at `at` with the count of bytes written after it.
fn patch_len(out: &mut [u8], at: usize) -> Result<(), ValueError> {
    let len = u32::try_from(out.len() - at - 4).map_err(|_| err("value too large"))?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
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
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        out.push(TAG_NUMBER);
        let all = || self.int.iter().chain(self.frac);
        let Some(first) = all().position(|&d| d != b'0') else {
            out.push(b'0');
            return Ok(());
        };
        let len = self.int.len() + self.frac.len();
        let last = len - 1 - all().rev().position(|&d| d != b'0').unwrap_or(0);
        out.push(if self.negative { b'-' } else { b'+' });
        // value = digits[first..=last] × 10^(exp − frac.len() + trailing zeros dropped)
        let shift = (len - 1 - last) as i128 - self.frac.len() as i128;
        let (exp_negative, magnitude) = exponent(self.exp_negative, self.exp, shift);
        out.push(if exp_negative { b'-' } else { b'+' });
        put_len(out, magnitude.len())?;
        out.extend_from_slice(&magnitude);
        put_len(out, last + 1 - first)?;
        out.extend(all().skip(first).take(last + 1 - first));
        Ok(())
    }
}

/// `±digits + shift` as a sign and decimal magnitude without leading zeros ("0" for zero), exact
/// for exponents of any length.
fn exponent(negative: bool, digits: &[u8], shift: i128) -> (bool, Vec<u8>) {
    let digits = &digits[digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len())..];
    if digits.len() <= 30 {
        let value = digits
            .iter()
            .fold(0i128, |v, &d| v * 10 + i128::from(d - b'0'));
        let value = if negative { -value } else { value } + shift;
        return (value < 0, value.unsigned_abs().to_string().into_bytes());
    }
    // |shift| < 10^30 <= |exponent|: the sign stays and the magnitude moves by ±shift.
    let delta = if negative { -shift } else { shift };
    (negative, add_small(digits, delta))
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
