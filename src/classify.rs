//! Keys the sources disagree on → [`Finding`]s with a class.
//!
//! The merge hands over, per key, which sources hold a row and their digests. With two sources
//! (base and target) a key is missing (only on the base), extra (only on the target) or divergent
//! (on both, different rows). With three, the backup is the base (state at T0), the replica saw
//! the legitimate writes but not the damage (T1), the target is the damaged primary (T2):
//!
//! | base | replica | target | class | default action on target |
//! |---|---|---|---|---|
//! | b | b | absent / ≠b | lost / damaged | restore the replica's row |
//! | b | r≠b | r | changed since backup (legitimate) | none |
//! | b | r≠b | b | legit change reverted | restore r |
//! | b | r≠b | absent | lost after change | restore r |
//! | b | r≠b | t∉{b,r} | conflict | per `--on-conflict` (keep the target) |
//! | absent | r | r | new since backup | none |
//! | absent | r | absent / ≠r | lost new row / damaged new row | restore r |
//! | b | absent | absent | deleted since backup | none |
//! | b | absent | b | deleted, resurrected | delete (not with `--no-delete`) |
//! | b | absent | t≠b | conflict | per `--on-conflict` |
//! | absent | absent | t | new on target | none; listed |
//!
//! Identical keys produce nothing. Pure and small: every consumer (report, CSV, restore plan)
//! sees this one vocabulary.

use serde::Serialize;

use crate::hash::digest::Digest;

/// What is wrong (or merely different) with one key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Two-way: on the base only.
    Missing,
    /// Two-way: on the target only.
    Extra,
    /// Two-way: on both, with different values.
    Divergent,
    Lost,
    Damaged,
    ChangedSinceBackup,
    LegitChangeReverted,
    LostAfterChange,
    Conflict,
    NewSinceBackup,
    LostNewRow,
    DamagedNewRow,
    DeletedSinceBackup,
    DeletedResurrected,
    NewOnTarget,
}

impl Class {
    pub const COUNT: usize = 15;

    pub const ALL: [Class; Class::COUNT] = [
        Class::Missing,
        Class::Extra,
        Class::Divergent,
        Class::Lost,
        Class::Damaged,
        Class::ChangedSinceBackup,
        Class::LegitChangeReverted,
        Class::LostAfterChange,
        Class::Conflict,
        Class::NewSinceBackup,
        Class::LostNewRow,
        Class::DamagedNewRow,
        Class::DeletedSinceBackup,
        Class::DeletedResurrected,
        Class::NewOnTarget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Missing => "missing",
            Class::Extra => "extra",
            Class::Divergent => "divergent",
            Class::Lost => "lost",
            Class::Damaged => "damaged",
            Class::ChangedSinceBackup => "changed_since_backup",
            Class::LegitChangeReverted => "legit_change_reverted",
            Class::LostAfterChange => "lost_after_change",
            Class::Conflict => "conflict",
            Class::NewSinceBackup => "new_since_backup",
            Class::LostNewRow => "lost_new_row",
            Class::DamagedNewRow => "damaged_new_row",
            Class::DeletedSinceBackup => "deleted_since_backup",
            Class::DeletedResurrected => "deleted_resurrected",
            Class::NewOnTarget => "new_on_target",
        }
    }

    /// Legitimate differences: reported, never acted on, and not a reason for exit status 1.
    pub fn legitimate(self) -> bool {
        matches!(
            self,
            Class::ChangedSinceBackup
                | Class::NewSinceBackup
                | Class::DeletedSinceBackup
                | Class::NewOnTarget
        )
    }
}

/// Two-way classification of one key; `None` when the rows are identical.
pub fn two_way(base: Option<&Digest>, target: Option<&Digest>) -> Option<Class> {
    match (base, target) {
        (Some(b), Some(t)) if b == t => None,
        (Some(_), Some(_)) => Some(Class::Divergent),
        (Some(_), None) => Some(Class::Missing),
        (None, Some(_)) => Some(Class::Extra),
        (None, None) => None,
    }
}

/// Three-way classification of one key (the table in the module doc); `None` when all agree.
pub fn three_way(
    base: Option<&Digest>,
    replica: Option<&Digest>,
    target: Option<&Digest>,
) -> Option<Class> {
    Some(match (base, replica, target) {
        (Some(b), Some(r), Some(t)) if b == r && r == t => return None,
        (Some(b), Some(r), None) if b == r => Class::Lost,
        (Some(b), Some(r), Some(_)) if b == r => Class::Damaged,
        (Some(_), Some(r), Some(t)) if r == t => Class::ChangedSinceBackup,
        (Some(b), Some(_), Some(t)) if b == t => Class::LegitChangeReverted,
        (Some(_), Some(_), None) => Class::LostAfterChange,
        (Some(_), Some(_), Some(_)) => Class::Conflict,
        (None, Some(r), Some(t)) if r == t => Class::NewSinceBackup,
        (None, Some(_), None) => Class::LostNewRow,
        (None, Some(_), Some(_)) => Class::DamagedNewRow,
        (Some(_), None, None) => Class::DeletedSinceBackup,
        (Some(b), None, Some(t)) if b == t => Class::DeletedResurrected,
        (Some(_), None, Some(_)) => Class::Conflict,
        (None, None, Some(_)) => Class::NewOnTarget,
        (None, None, None) => return None,
    })
}

/// What to do with keys in conflict (`--on-conflict`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Leave the target's row as it is (listed; exit status 1).
    #[default]
    KeepTarget,
    /// Make the target's row what the replica holds.
    TakeReplica,
    /// Refuse to write a recovery while conflicts exist.
    Fail,
}

/// One differing key of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the table in the run's plan.
    pub table: usize,
    pub class: Class,
    /// The key as a JSON array of its exact values (`[42]`, `["café-3", 2]`).
    pub key: String,
    /// The key's order-preserving bytes (`key::encode`): findings are listed in this order.
    pub order_key: Vec<u8>,
    /// Indexes of the differing compared columns (divergent rows only).
    pub columns: Vec<u16>,
    /// What a restore needs (recover runs only).
    pub restore: Option<Box<RestoreKey>>,
    /// `--show-values`: per differing column, each source's value as PostgreSQL prints it
    /// (`None`: the source has no row; `Some(None)`: NULL).
    pub values: Option<Box<ShownValues>>,
}

/// The values of a divergent row's differing columns (see [`Finding::values`]).
pub type ShownValues = Vec<(u16, Vec<Option<Option<String>>>)>;

/// What recovering one key takes: where it is, what the target holds now, what it will hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreKey {
    pub action: Action,
    /// The key as typed SQL literals (`'42'::bigint`), one per key column.
    pub literals: Vec<String>,
    /// The key values as PostgreSQL prints them (unescaped), one per key column.
    pub texts: Vec<String>,
    /// The order-preserving key bytes (`key::encode`), to match rows read back by key.
    pub order_key: Vec<u8>,
    /// The digest of the target's row at diff time (`None`: no row), guarded by `apply`.
    pub before: Option<Digest>,
    /// The digest the target's row will have after the restore (`None`: no row).
    pub after: Option<Digest>,
    /// A keyless table's copy: where the row lies on the side its section reads it from (the
    /// restore source for an insert, the target otherwise), in the comparison's snapshot.
    pub ctid: Option<[u8; 6]>,
    /// A keyless table's copy: how many copies of the row the target held at diff time, what
    /// `apply` guards (a keyless row is one of its equals, not an addressable key).
    pub copies: Option<u64>,
}

/// What a restore does to one key of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Insert,
    Update,
    Delete,
    /// Left as it is (an extra row under `--no-delete`), listed.
    Keep,
}

impl Action {
    /// What the restore does to a key of `class`, given whether the restore source (base or
    /// replica) and the target hold a row.
    pub fn for_class(
        class: Class,
        no_delete: bool,
        policy: ConflictPolicy,
        source: bool,
        target: bool,
    ) -> Action {
        let make_like_source = match (source, target) {
            (true, false) => Action::Insert,
            (true, true) => Action::Update,
            (false, true) if no_delete => Action::Keep,
            (false, true) => Action::Delete,
            (false, false) => Action::Keep,
        };
        match class {
            c if c.legitimate() => Action::Keep,
            Class::Conflict if policy != ConflictPolicy::TakeReplica => Action::Keep,
            _ => make_like_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_way_classes_follow_the_table() {
        let (b, r, t) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let cases = [
            ((Some(&b), Some(&b), None), Some(Class::Lost)),
            ((Some(&b), Some(&b), Some(&t)), Some(Class::Damaged)),
            (
                (Some(&b), Some(&r), Some(&r)),
                Some(Class::ChangedSinceBackup),
            ),
            (
                (Some(&b), Some(&r), Some(&b)),
                Some(Class::LegitChangeReverted),
            ),
            ((Some(&b), Some(&r), None), Some(Class::LostAfterChange)),
            ((Some(&b), Some(&r), Some(&t)), Some(Class::Conflict)),
            ((None, Some(&r), Some(&r)), Some(Class::NewSinceBackup)),
            ((None, Some(&r), None), Some(Class::LostNewRow)),
            ((None, Some(&r), Some(&t)), Some(Class::DamagedNewRow)),
            ((Some(&b), None, None), Some(Class::DeletedSinceBackup)),
            ((Some(&b), None, Some(&b)), Some(Class::DeletedResurrected)),
            ((Some(&b), None, Some(&t)), Some(Class::Conflict)),
            ((None, None, Some(&t)), Some(Class::NewOnTarget)),
            ((Some(&b), Some(&b), Some(&b)), None),
        ];
        for ((base, replica, target), want) in cases {
            assert_eq!(
                three_way(base, replica, target),
                want,
                "{base:?} {replica:?} {target:?}"
            );
        }
    }

    #[test]
    fn actions_restore_the_source_and_respect_policies() {
        let act = |c, nd, p, s, t| Action::for_class(c, nd, p, s, t);
        let keep = ConflictPolicy::KeepTarget;
        assert_eq!(act(Class::Lost, false, keep, true, false), Action::Insert);
        assert_eq!(act(Class::Damaged, false, keep, true, true), Action::Update);
        assert_eq!(
            act(Class::DeletedResurrected, false, keep, false, true),
            Action::Delete
        );
        assert_eq!(
            act(Class::DeletedResurrected, true, keep, false, true),
            Action::Keep
        );
        assert_eq!(
            act(Class::ChangedSinceBackup, false, keep, true, true),
            Action::Keep
        );
        assert_eq!(act(Class::Conflict, false, keep, true, true), Action::Keep);
        assert_eq!(
            act(
                Class::Conflict,
                false,
                ConflictPolicy::TakeReplica,
                true,
                true
            ),
            Action::Update
        );
        assert_eq!(
            act(
                Class::Conflict,
                false,
                ConflictPolicy::TakeReplica,
                false,
                true
            ),
            Action::Delete
        );
        assert_eq!(act(Class::Extra, false, keep, false, true), Action::Delete);
    }

    #[test]
    fn two_way_classes() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(two_way(Some(&a), Some(&a)), None);
        assert_eq!(two_way(Some(&a), Some(&b)), Some(Class::Divergent));
        assert_eq!(two_way(Some(&a), None), Some(Class::Missing));
        assert_eq!(two_way(None, Some(&b)), Some(Class::Extra));
    }
}
