//! Keys the sources disagree on → [`Finding`]s with a class.
//!
//! The merge hands over, per key, which sources hold a row and their digests. With two sources
//! (base and target) a key is missing (only on the base), extra (only on the target) or divergent
//! (on both, different rows); identical keys produce nothing. Pure and tiny on purpose: the
//! three-way classes grow here, next to the two-way ones, so every consumer (report, CSV,
//! restore plan) sees one vocabulary.

use serde::Serialize;

use crate::hash::digest::Digest;

/// What is wrong with one key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// On the base only.
    Missing,
    /// On the target only.
    Extra,
    /// On both, with different values.
    Divergent,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Missing => "missing",
            Class::Extra => "extra",
            Class::Divergent => "divergent",
        }
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

/// One differing key of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the table in the run's plan.
    pub table: usize,
    pub class: Class,
    /// The key as a JSON array of its exact values (`[42]`, `["café-3", 2]`).
    pub key: String,
    /// Indexes of the differing compared columns (divergent rows only).
    pub columns: Vec<u16>,
    /// What a restore needs (recover runs only).
    pub restore: Option<Box<RestoreKey>>,
}

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
    /// The default action for a two-way class.
    pub fn for_class(class: Class, no_delete: bool) -> Action {
        match class {
            Class::Missing => Action::Insert,
            Class::Divergent => Action::Update,
            Class::Extra if no_delete => Action::Keep,
            Class::Extra => Action::Delete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_classes() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(two_way(Some(&a), Some(&a)), None);
        assert_eq!(two_way(Some(&a), Some(&b)), Some(Class::Divergent));
        assert_eq!(two_way(Some(&a), None), Some(Class::Missing));
        assert_eq!(two_way(None, Some(&b)), Some(Class::Extra));
    }
}
