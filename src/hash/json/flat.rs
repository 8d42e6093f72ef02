//! The common JSON shapes canonicalized without building a tree: a scalar, or one object or array
//! whose values are all scalars (`{"n": 42, "channel": "web"}`, `["a", "b"]`).
//!
//! Most `jsonb` columns in practice hold small flat documents, and the general parser's arena,
//! work stack and per-call buffer hand-off cost more than the parse itself for them. Here the
//! values are encoded straight into the output behind where the value will start, the members
//! are sorted in a small array on the stack, and the finished encoding is moved down over the
//! scratch. Anything else (nesting, an escaped key, more than [`MEMBERS`] members, and every
//! syntax error) returns `false` with the output untouched, and the general parser takes the
//! text, so errors are reported in one place and this path never accepts what that one refuses.
//! The bytes written are the general parser's, which a differential test checks on random texts.

use super::{
    keep_last_of_runs, put_len, Cursor, TAG_ARRAY, TAG_FALSE, TAG_NULL, TAG_OBJECT, TAG_STRING,
    TAG_TRUE,
};

/// The most members of one object taken here; larger objects go to the general parser.
const MEMBERS: usize = 16;

/// Appends the canonical encoding of `text` if it has a flat shape; `false` (and `out` as it was)
/// otherwise.
pub(super) fn canonicalize(text: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut cur = Cursor { text, pos: 0 };
    cur.skip_ws();
    let done = match cur.peek() {
        Some(b'{') => object(&mut cur, out),
        Some(b'[') => array(&mut cur, out),
        _ => scalar(&mut cur, out),
    } && {
        cur.skip_ws();
        cur.at_end()
    };
    if !done {
        out.truncate(start);
    }
    done
}

/// One member: the key's bytes in the text and the encoded value's in the output.
#[derive(Clone, Copy, Default)]
struct Member {
    key: (usize, usize),
    value: (usize, usize),
}

fn object(cur: &mut Cursor<'_>, out: &mut Vec<u8>) -> bool {
    cur.pos += 1;
    let scratch = out.len();
    let mut members = [Member::default(); MEMBERS];
    let mut count = 0;
    cur.skip_ws();
    if !cur.eat(b'}') {
        loop {
            cur.skip_ws();
            let Some(key) = plain_string(cur) else {
                return false;
            };
            cur.skip_ws();
            if !cur.eat(b':') || count == MEMBERS {
                return false;
            }
            cur.skip_ws();
            let at = out.len();
            if !scalar(cur, out) {
                return false;
            }
            members[count] = Member {
                key,
                value: (at, out.len()),
            };
            count += 1;
            match after_item(cur, b'}') {
                Some(true) => {}
                Some(false) => break,
                None => return false,
            }
        }
    }
    let text = cur.text;
    let key = |m: &Member| &text[m.key.0..m.key.1];
    let kept = sort_members(&mut members[..count], key);
    let head = out.len();
    out.push(TAG_OBJECT);
    put_len(out, kept);
    for member in &members[..kept] {
        let name = key(member);
        put_len(out, name.len());
        out.extend_from_slice(name);
        out.extend_from_within(member.value.0..member.value.1);
    }
    out.drain(scratch..head);
    true
}

fn array(cur: &mut Cursor<'_>, out: &mut Vec<u8>) -> bool {
    cur.pos += 1;
    let scratch = out.len();
    let mut count = 0;
    cur.skip_ws();
    if !cur.eat(b']') {
        loop {
            cur.skip_ws();
            if !scalar(cur, out) {
                return false;
            }
            count += 1;
            match after_item(cur, b']') {
                Some(true) => {}
                Some(false) => break,
                None => return false,
            }
        }
    }
    let head = out.len();
    out.push(TAG_ARRAY);
    put_len(out, count);
    out.extend_from_within(scratch..head);
    out.drain(scratch..head);
    true
}

/// After a member or element: `Some(true)` at a `,`, `Some(false)` at the container's `close`,
/// `None` at anything else.
fn after_item(cur: &mut Cursor<'_>, close: u8) -> Option<bool> {
    cur.skip_ws();
    if cur.eat(b',') {
        return Some(true);
    }
    cur.eat(close).then_some(false)
}

/// Sorts members by key bytes, stably, and keeps the last of each run of equal keys (as jsonb
/// does with duplicates); the number kept, at the front.
fn sort_members<'t>(members: &mut [Member], key: impl Fn(&Member) -> &'t [u8]) -> usize {
    // Insertion sort: a handful of members, often in order already (jsonb's own output is
    // sorted by length first, then bytes).
    for i in 1..members.len() {
        let mut j = i;
        while j > 0 && key(&members[j - 1]) > key(&members[j]) {
            members.swap(j - 1, j);
            j -= 1;
        }
    }
    keep_last_of_runs(members, key)
}

/// A scalar value encoded as the general parser encodes it; `false` for a container, an escaped
/// string or an error.
fn scalar(cur: &mut Cursor<'_>, out: &mut Vec<u8>) -> bool {
    match cur.peek() {
        Some(b'"') => match plain_string(cur) {
            Some((start, end)) => {
                let bytes = &cur.text[start..end];
                out.push(TAG_STRING);
                put_len(out, bytes.len());
                out.extend_from_slice(bytes);
                true
            }
            None => false,
        },
        Some(b't') => cur.literal(b"true", TAG_TRUE, out).is_ok(),
        Some(b'f') => cur.literal(b"false", TAG_FALSE, out).is_ok(),
        Some(b'n') => cur.literal(b"null", TAG_NULL, out).is_ok(),
        Some(b'-' | b'0'..=b'9') => match cur.number() {
            Ok(number) => {
                number.encode(out);
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

/// The bytes between the quotes of a string without escapes or control characters (at its
/// opening quote), as positions in the text; `None` for any other string.
fn plain_string(cur: &mut Cursor<'_>) -> Option<(usize, usize)> {
    if cur.peek() != Some(b'"') {
        return None;
    }
    let start = cur.pos + 1;
    let run = cur.text[start..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if cur.text[start + run] != b'"' {
        return None;
    }
    cur.pos = start + run + 1;
    Some((start, start + run))
}
