//! The checksum tree: row digests aggregated into bucketed leaves and one root per table.
//!
//! A row goes to the leaf addressed by the top bits of a stable hash of its order key, so a row
//! keeps its leaf whatever is inserted or deleted around it, and two trees of the same table (two
//! sources, or a source and last night's baseline) line up leaf by leaf. A leaf holds a count and
//! the 256-bit sum (mod 2^256) of its rows' digests: additive, so partial trees built by parallel
//! range workers simply add up; never XOR, under which two equal rows would cancel. Interior
//! levels and the root are blake3 over their children, so equal roots mean equal multisets of
//! (key, row) with overwhelming probability, and unequal leaves say where to look.

pub mod leaves;

use crate::hash::digest::Digest;

/// Count and additive wide sum of a set of row digests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub count: u64,
    /// Little-endian 64-bit limbs of a 256-bit sum.
    pub sum: [u64; 4],
}

impl Fingerprint {
    #[inline]
    pub fn add_digest(&mut self, digest: &Digest) {
        self.count += 1;
        self.add_sum(&limbs_of(digest));
    }

    /// The fingerprint of `count` rows whose sum is `sum` as [`Fingerprint::sum_bytes`] writes it.
    pub fn from_sum(count: u64, sum: &[u8; 32]) -> Fingerprint {
        Fingerprint {
            count,
            sum: limbs_of(sum),
        }
    }

    /// The sum as 32 little-endian bytes.
    pub fn sum_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.sum.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    pub fn merge(&mut self, other: &Fingerprint) {
        self.count += other.count;
        self.add_sum(&other.sum);
    }

    fn add_sum(&mut self, limbs: &[u64; 4]) {
        let mut carry = false;
        for (acc, x) in self.sum.iter_mut().zip(limbs) {
            let (s1, c1) = acc.overflowing_add(*x);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *acc = s2;
            carry = c1 || c2;
        }
    }

    /// 40 bytes: count then the sum, little-endian.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..].copy_from_slice(&self.sum_bytes());
        out
    }
}

/// 32 little-endian bytes as four 64-bit limbs.
fn limbs_of(bytes: &[u8; 32]) -> [u64; 4] {
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        *limb = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    limbs
}

/// A table's leaves; `bits` fixes their number (2^bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecksumTree {
    bits: u8,
    leaves: Vec<Fingerprint>,
}

/// Leaves per interior node.
const FANOUT: usize = 64;

impl ChecksumTree {
    pub fn new(bits: u8) -> Self {
        assert!(bits <= 24, "at most 2^24 leaves");
        ChecksumTree {
            bits,
            leaves: vec![Fingerprint::default(); 1 << bits],
        }
    }

    /// A tree from its leaves (as [`ChecksumTree::leaves`] gave them); `None` unless there are
    /// 2^bits.
    pub fn from_leaves(bits: u8, leaves: Vec<Fingerprint>) -> Option<Self> {
        (bits <= 24 && leaves.len() == 1 << bits).then_some(ChecksumTree { bits, leaves })
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    pub fn leaves(&self) -> &[Fingerprint] {
        &self.leaves
    }

    /// The leaf a key belongs to.
    #[inline]
    pub fn leaf_of(&self, order_key: &[u8]) -> usize {
        (key_hash(order_key) >> (64 - u32::from(self.bits.max(1)))) as usize
            & (self.leaves.len() - 1)
    }

    #[inline]
    pub fn add(&mut self, order_key: &[u8], digest: &Digest) {
        let leaf = self.leaf_of(order_key);
        self.add_to_leaf(leaf, digest);
    }

    /// Adds a row whose leaf is already known (the same key in several trees of one shape).
    #[inline]
    pub fn add_to_leaf(&mut self, leaf: usize, digest: &Digest) {
        self.leaves[leaf].add_digest(digest);
    }

    /// Adds another tree of the same shape (a partial tree of one key range).
    pub fn merge(&mut self, other: &ChecksumTree) {
        assert_eq!(self.bits, other.bits, "trees of different shapes");
        for (a, b) in self.leaves.iter_mut().zip(&other.leaves) {
            a.merge(b);
        }
    }

    pub fn count(&self) -> u64 {
        self.leaves.iter().map(|l| l.count).sum()
    }

    /// blake3 over the interior nodes, each blake3 over `FANOUT` leaves.
    pub fn root(&self) -> Digest {
        let mut root = blake3::Hasher::new();
        root.update(&[self.bits]);
        for chunk in self.leaves.chunks(FANOUT) {
            let mut node = blake3::Hasher::new();
            for leaf in chunk {
                node.update(&leaf.to_bytes());
            }
            root.update(node.finalize().as_bytes());
        }
        *root.finalize().as_bytes()
    }

    /// The leaves whose fingerprints differ.
    pub fn differing_leaves(&self, other: &ChecksumTree) -> Vec<usize> {
        assert_eq!(self.bits, other.bits, "trees of different shapes");
        (0..self.leaves.len())
            .filter(|&i| self.leaves[i] != other.leaves[i])
            .collect()
    }
}

/// A stable 64-bit hash of an order key (FNV-1a then a murmur3 finalizer so the top bits are
/// well mixed). Stable across versions by construction: baselines depend on it.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of bytes (digests in reports, order keys in key records): a table lookup per
/// byte, since this runs for every key a recovery touches.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Whether `text` is [`hex`] of `bytes`, without building that text: the re-verify asks this of
/// every key it reads back.
pub fn is_hex_of(text: &str, bytes: &[u8]) -> bool {
    text.len() == bytes.len() * 2
        && text.as_bytes().chunks_exact(2).zip(bytes).all(|(pair, b)| {
            pair[0] == DIGITS[usize::from(b >> 4)] && pair[1] == DIGITS[usize::from(b & 15)]
        })
}

/// A digest from its hex; `None` for anything but 64 hex digits.
pub fn unhex_digest(text: &str) -> Option<Digest> {
    let mut bytes = Vec::with_capacity(32);
    (unhex_into(text, &mut bytes) && bytes.len() == 32).then(|| bytes.try_into().expect("32 bytes"))
}

/// Decodes lowercase or uppercase hex into `out` (cleared first); false for anything else.
pub fn unhex_into(text: &str, out: &mut Vec<u8>) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    out.clear();
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return false;
    }
    for pair in bytes.chunks_exact(2) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(i: u32, v: u32) -> (Vec<u8>, Digest) {
        let key = i.to_be_bytes().to_vec();
        let digest = *blake3::hash(&[key.as_slice(), &v.to_le_bytes()].concat()).as_bytes();
        (key, digest)
    }

    fn tree_of(rows: &[(Vec<u8>, Digest)]) -> ChecksumTree {
        let mut t = ChecksumTree::new(6);
        for (k, d) in rows {
            t.add(k, d);
        }
        t
    }

    #[test]
    fn duplicate_rows_do_not_cancel() {
        let (k, d) = row(1, 1);
        let once = tree_of(&[(k.clone(), d)]);
        let twice = tree_of(&[(k.clone(), d), (k.clone(), d)]);
        let thrice = tree_of(&[(k.clone(), d), (k.clone(), d), (k, d)]);
        assert_ne!(once.root(), thrice.root());
        assert_ne!(twice.root(), ChecksumTree::new(6).root());
    }

    #[test]
    fn unhex_reads_back_hex_and_refuses_anything_else() {
        let mut out = Vec::new();
        assert!(unhex_into(&hex(&[0, 0xab, 0xff, 7]), &mut out));
        assert_eq!(out, [0, 0xab, 0xff, 7]);
        assert!(unhex_into("ABcd", &mut out) && out == [0xab, 0xcd]);
        assert!(unhex_into("", &mut out) && out.is_empty());
        for bad in ["abc", "0g", "+f", " 0"] {
            assert!(!unhex_into(bad, &mut out), "{bad}");
        }
        assert!(is_hex_of("00abff07", &[0, 0xab, 0xff, 7]));
        assert!(!is_hex_of("00abff0", &[0, 0xab, 0xff, 7]));
        assert!(!is_hex_of("00ABff07", &[0, 0xab, 0xff, 7]));
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn carries_across_limbs() {
        let mut f = Fingerprint {
            count: 0,
            sum: [u64::MAX, u64::MAX, 0, 0],
        };
        f.add_sum(&[1, 0, 0, 0]);
        assert_eq!(f.sum, [0, 0, 1, 0]);
    }

    proptest! {
        /// Order of insertion and splitting into partial trees do not matter; any change does.
        #[test]
        fn roots_are_set_functions(vals in proptest::collection::vec(0u32..5, 1..200), split in 0usize..200, flip in 0usize..200) {
            let rows: Vec<_> = vals.iter().enumerate().map(|(i, v)| row(i as u32, *v)).collect();
            let whole = tree_of(&rows);
            let split = split.min(rows.len());
            let mut parts = tree_of(&rows[split..]);
            parts.merge(&tree_of(&rows[..split]));
            prop_assert_eq!(whole.root(), parts.root());
            let mut changed = rows.clone();
            let i = flip % rows.len();
            changed[i] = row(i as u32, vals[i] + 1);
            let other = tree_of(&changed);
            prop_assert_ne!(whole.root(), other.root());
            prop_assert_eq!(whole.differing_leaves(&other), vec![whole.leaf_of(&rows[i].0)]);
        }
    }
}
