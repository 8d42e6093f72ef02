//! Tables without a key, compared as multisets of rows.
//!
//! A table with no primary key (and no `--key`) has no order two sources agree on, and may hold
//! the same row several times. Each row is reduced to its canonical digest and the physical
//! place it was read from (its `ctid`, a [`Copy`]); the sources' copies are gathered by digest
//! (hash-partitioned by the digest's leading bits, so a partition fits in memory whatever the
//! table's size: see `pipeline::spill`) and counted. Copy `k` of a row content is present on a
//! source when that source holds more than `k` copies: comparing presence copy by copy is the
//! keyed classification with `(digest, k)` as the key, so a duplicate lost on the target is one
//! missing row, a duplicate added is one extra row, and three-way classes follow the same table.
//! Nothing here is approximate: two copies are the same row exactly when their canonical
//! encodings (typed, length-prefixed, NULLs explicit) are equal, as for keyed rows' values.

use crate::classify::{self, Action, Class, RestoreKey};
use crate::compare::restore::CaptureSpec;
use crate::hash::digest::Digest;

/// One row as read from one source: its digest and where it lies there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Copy {
    pub digest: Digest,
    pub source: u8,
    /// The `tid` in its binary form: block number (u32) and line pointer (u16), big-endian.
    pub ctid: [u8; 6],
}

/// The bytes of a [`Copy`] on disk.
pub const COPY_BYTES: usize = 40;

impl Copy {
    pub fn to_bytes(&self) -> [u8; COPY_BYTES] {
        let mut out = [0u8; COPY_BYTES];
        out[..32].copy_from_slice(&self.digest);
        out[32] = self.source;
        out[34..].copy_from_slice(&self.ctid);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Copy {
        Copy {
            digest: bytes[..32].try_into().expect("32 bytes"),
            source: bytes[32],
            ctid: bytes[34..40].try_into().expect("6 bytes"),
        }
    }

    /// The partition of `1 << bits` this copy's digest falls in.
    pub fn partition(&self, bits: u8) -> usize {
        partition_of(&self.digest, bits)
    }
}

/// The partition of `1 << bits` (at most 32 bits) a digest falls in: its leading bits.
pub fn partition_of(digest: &Digest, bits: u8) -> usize {
    if bits == 0 {
        return 0;
    }
    let lead = u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"));
    (lead >> (32 - u32::from(bits))) as usize
}

/// The `tid` as PostgreSQL prints it: `(block,line)`.
pub fn ctid_text(ctid: &[u8; 6]) -> String {
    let block = u32::from_be_bytes(ctid[..4].try_into().expect("4 bytes"));
    let line = u16::from_be_bytes(ctid[4..].try_into().expect("2 bytes"));
    format!("({block},{line})")
}

/// One row content whose copies differ in number between the sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Differing {
    pub digest: Digest,
    /// Per source, where its copies lie (as many as it holds).
    pub ctids: Vec<Vec<[u8; 6]>>,
    /// The differing copies: copy index and class.
    pub copies: Vec<(u64, Class)>,
}

impl Differing {
    /// The order key of copy `k`: the digest, then `k` counted from the least count (the first
    /// copy some source lacks is 0); lists a row's copies together. Counted so, it does not
    /// depend on how many equal copies were matched away before counting (`pipeline::matching`).
    pub fn order_key(&self, k: u64) -> Vec<u8> {
        let least = self.ctids.iter().map(Vec::len).min().unwrap_or(0) as u64;
        let mut key = self.digest.to_vec();
        key.extend_from_slice(&(k - least).to_be_bytes());
        key
    }

    /// Where to read the row's values: the first source holding a copy, and that copy.
    pub fn sample(&self) -> (usize, [u8; 6]) {
        self.ctids
            .iter()
            .enumerate()
            .find_map(|(s, c)| c.first().map(|c| (s, *c)))
            .expect("a differing row has a copy somewhere")
    }

    /// How many copies each source holds.
    pub fn counts(&self) -> Vec<u64> {
        self.ctids.iter().map(|c| c.len() as u64).collect()
    }
}

/// Counts one partition's copies (from every source, in any order) by digest. `same` sees each
/// row content every source holds equally often, with that count; `differ` the others.
pub fn count(
    copies: &mut [Copy],
    sources: usize,
    mut same: impl FnMut(&Digest, u64),
    mut differ: impl FnMut(Differing),
) {
    // The digest's leading eight bytes order almost every pair; the rest breaks ties.
    copies.sort_unstable_by(|a, b| {
        let lead = |c: &Copy| u64::from_be_bytes(c.digest[..8].try_into().expect("8 bytes"));
        lead(a).cmp(&lead(b)).then_with(|| a.cmp(b))
    });
    let mut start = 0;
    while start < copies.len() {
        let digest = copies[start].digest;
        let end = start
            + copies[start..]
                .iter()
                .take_while(|c| c.digest == digest)
                .count();
        let group = &copies[start..end];
        let mut counts = vec![0u64; sources];
        for c in group {
            counts[usize::from(c.source)] += 1;
        }
        if counts.iter().all(|&n| n == counts[0]) {
            same(&digest, counts[0]);
        } else {
            let mut ctids = vec![Vec::new(); sources];
            for c in group {
                ctids[usize::from(c.source)].push(c.ctid);
            }
            let copies = copy_classes(&counts);
            differ(Differing {
                digest,
                ctids,
                copies,
            });
        }
        start = end;
    }
}

/// The class of every copy whose presence differs between the sources: copy `k` is on a source
/// holding more than `k` copies. Two sources are (base, target), three (base, replica, target).
pub fn copy_classes(counts: &[u64]) -> Vec<(u64, Class)> {
    let most = counts.iter().copied().max().unwrap_or(0);
    let least = counts.iter().copied().min().unwrap_or(0);
    let present = |k: u64, s: usize| (counts[s] > k).then_some(&[0u8; 32]);
    (least..most)
        .filter_map(|k| {
            let class = match counts.len() {
                2 => classify::two_way(present(k, 0), present(k, 1)),
                _ => classify::three_way(present(k, 0), present(k, 1), present(k, 2)),
            };
            class.map(|c| (k, c))
        })
        .collect()
}

/// What a recovery does with copy `k` of a differing row: the keyed rules of
/// [`Action::for_class`] on the copy's presence on the restore source and the target. A keyless
/// row is its whole content, so there is nothing to update: a copy both sides hold is kept. The
/// record carries where the copy lies on the side its section reads it from (the source for an
/// insert, the target otherwise) and the target's count of the row, which `apply` guards.
pub fn restore_copy(d: &Differing, k: u64, class: Class, spec: CaptureSpec) -> RestoreKey {
    let counts = d.counts();
    let last = counts.len() - 1;
    let (on_source, on_target) = (counts[spec.source] > k, counts[last] > k);
    let action = match class {
        Class::NewOnTarget if spec.delete_new_on_target => Action::Delete,
        _ => Action::for_class(
            class,
            spec.no_delete,
            spec.on_conflict,
            on_source,
            on_target,
        ),
    };
    let action = match action {
        Action::Update => Action::Keep,
        a => a,
    };
    let side = match action {
        Action::Insert => spec.source,
        _ => last,
    };
    let after = match action {
        Action::Insert => true,
        Action::Delete => false,
        _ => on_target,
    };
    RestoreKey {
        action,
        literals: Vec::new(),
        texts: Vec::new(),
        order_key: d.order_key(k),
        before: on_target.then_some(d.digest),
        after: after.then_some(d.digest),
        ctid: d.ctids[side].get(k as usize).copied(),
        copies: Some(counts[last]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(content: u8, source: u8, at: u16) -> Copy {
        Copy {
            digest: *blake3::hash(&[content]).as_bytes(),
            source,
            ctid: [0, 0, 0, 1, (at >> 8) as u8, at as u8],
        }
    }

    #[test]
    fn duplicates_count_copy_by_copy() {
        assert_eq!(
            copy_classes(&[3, 1]),
            [(1, Class::Missing), (2, Class::Missing)]
        );
        assert_eq!(
            copy_classes(&[1, 3]),
            [(1, Class::Extra), (2, Class::Extra)]
        );
        assert_eq!(copy_classes(&[0, 1]), [(0, Class::Extra)]);
        assert_eq!(copy_classes(&[2, 2]), []);
        // Three-way: base 2, replica 3, target 1: the second copy was on the base and the
        // replica (lost), the third was new since the backup and is lost too.
        assert_eq!(
            copy_classes(&[2, 3, 1]),
            [(1, Class::Lost), (2, Class::LostNewRow)]
        );
        assert_eq!(copy_classes(&[1, 1, 2]), [(1, Class::NewOnTarget)]);
    }

    #[test]
    fn partitions_count_every_copy_exactly() {
        // Content 1: 2 copies on the base, 2 on the target; 2: 3 and 1; 3: 0 and 2; 4: 1 and 0.
        let mut copies = vec![
            copy(1, 0, 1),
            copy(2, 1, 9),
            copy(1, 1, 2),
            copy(2, 0, 3),
            copy(3, 1, 4),
            copy(2, 0, 5),
            copy(1, 0, 6),
            copy(3, 1, 7),
            copy(4, 0, 8),
            copy(2, 0, 10),
            copy(1, 1, 11),
        ];
        let (mut same, mut differ) = (Vec::new(), Vec::new());
        count(
            &mut copies,
            2,
            |d, n| same.push((*d, n)),
            |d| differ.push(d),
        );
        assert_eq!(same, [(copy(1, 0, 0).digest, 2)]);
        differ.sort_by_key(|d| d.counts());
        let got: Vec<_> = differ
            .iter()
            .map(|d| (d.counts(), d.copies.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (vec![0, 2], vec![(0, Class::Extra), (1, Class::Extra)]),
                (vec![1, 0], vec![(0, Class::Missing)]),
                (vec![3, 1], vec![(1, Class::Missing), (2, Class::Missing)]),
            ]
        );
        let twice = differ.iter().find(|d| d.counts() == [3, 1]).unwrap();
        assert_eq!(twice.sample(), (0, copy(2, 0, 3).ctid));
        assert_eq!(ctid_text(&twice.ctids[1][0]), "(1,9)");
    }

    #[test]
    fn copies_round_trip_their_bytes_and_partition_by_leading_bits() {
        let c = copy(7, 2, 300);
        assert_eq!(Copy::from_bytes(&c.to_bytes()), c);
        let mut digest = [0u8; 32];
        digest[0] = 0b1011_0000;
        assert_eq!(partition_of(&digest, 0), 0);
        assert_eq!(partition_of(&digest, 1), 1);
        assert_eq!(partition_of(&digest, 4), 0b1011);
    }

    #[test]
    fn copies_restore_by_count_and_keep_the_target_only_unless_told() {
        let at = |n: u16| [0, 0, 0, 1, 0, n as u8];
        // Base holds 3 copies, the target 1: copies 1 and 2 are inserted from the base's places.
        let d = Differing {
            digest: [7; 32],
            ctids: vec![vec![at(1), at(2), at(3)], vec![at(9)]],
            copies: copy_classes(&[3, 1]),
        };
        let spec = CaptureSpec::default();
        let r = restore_copy(&d, 2, Class::Missing, spec);
        assert_eq!(r.action, Action::Insert);
        assert_eq!((r.ctid, r.copies), (Some(at(3)), Some(1)));
        assert_eq!((r.before, r.after), (None, Some([7; 32])));
        // The other way round: the target's surplus copies are deleted, named by their place.
        let d = Differing {
            digest: [7; 32],
            ctids: vec![vec![at(1)], vec![at(4), at(5)]],
            copies: copy_classes(&[1, 2]),
        };
        let r = restore_copy(&d, 1, Class::Extra, spec);
        assert_eq!(r.action, Action::Delete);
        assert_eq!((r.ctid, r.copies), (Some(at(5)), Some(2)));
        assert_eq!((r.before, r.after), (Some([7; 32]), None));
        let keep = CaptureSpec {
            no_delete: true,
            ..spec
        };
        assert_eq!(restore_copy(&d, 1, Class::Extra, keep).action, Action::Keep);
        // Three-way: a copy new on the target is kept unless --new-on-target delete.
        let d = Differing {
            digest: [7; 32],
            ctids: vec![vec![], vec![], vec![at(6)]],
            copies: copy_classes(&[0, 0, 1]),
        };
        let three = CaptureSpec { source: 1, ..spec };
        let class = d.copies[0].1;
        assert_eq!(restore_copy(&d, 0, class, three).action, Action::Keep);
        let delete = CaptureSpec {
            delete_new_on_target: true,
            ..three
        };
        assert_eq!(class, Class::NewOnTarget);
        assert_eq!(restore_copy(&d, 0, class, delete).action, Action::Delete);
    }
}
