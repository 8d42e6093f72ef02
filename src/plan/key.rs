//! Which columns key a table, and what the rows must bear out before those columns can.
//!
//! The merge pairs rows by key, so a key must name each compared row once: no NULL in it (the key
//! encoding has no place for one, and a range bound such as `k < 100` never selects a NULL, so a
//! ranged read would pass over the row) and no two rows alike. [`choose`] picks a table's key from
//! the reference source's catalog: `--key` when given, else the primary key, else a unique index
//! (one over NOT NULL columns first, then one with `NULLS NOT DISTINCT` over columns that allow
//! NULL, then a plain one over such columns), else none, and the rows are compared as a multiset.
//!
//! The catalog vouches for a primary key and for a unique index over NOT NULL columns. It does
//! not for a `--key` (any columns the user names), nor for an index over columns that hold NULL
//! (a `NULLS NOT DISTINCT` one allows one such row, a plain one any number, and no key can
//! address them), nor on a source that lacks the reference's index. [`Doubt`] says, per source, what its catalog leaves open;
//! `source::key_check` looks in that source's snapshot. A named key the rows do not bear out
//! stops the run; an index's key the rows do not bear out leaves its table keyless, with a note.
//! A primary key is trusted as declared (a source that lost it is reported as `key_changed`).

use crate::shape::{TableShape, UniqueIndex};

/// Where a table's key comes from, which decides what is checked and what a failed check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The reference's primary key.
    Primary,
    /// `--key`, or the key a baseline was taken with: checked where in doubt, and a run stops
    /// when the rows do not bear it out.
    Named,
    /// A unique index of the reference, which has no primary key: checked where in doubt, and
    /// the table is compared without a key when the rows do not bear it out.
    Index {
        name: String,
        nulls_not_distinct: bool,
    },
    /// No key: the rows are compared as a multiset; `why` when a key was given up.
    Keyless { why: Option<String> },
}

impl KeyOrigin {
    /// What the report says about the key, where it is not plain: an index's key, or why the
    /// table is keyless although it has a unique index.
    pub fn note(&self, key: &[String]) -> Option<String> {
        match self {
            KeyOrigin::Index { .. } => Some(format!(
                "key ({}) from {}: the table has no primary key",
                key.join(", "),
                self.index_phrase().unwrap_or_default()
            )),
            KeyOrigin::Keyless { why } => why.clone(),
            KeyOrigin::Primary | KeyOrigin::Named => None,
        }
    }

    /// "unique index t_a_key" or "unique index t_a_key (NULLS NOT DISTINCT)".
    pub fn index_phrase(&self) -> Option<String> {
        let KeyOrigin::Index {
            name,
            nulls_not_distinct,
        } = self
        else {
            return None;
        };
        let nnd = match nulls_not_distinct {
            true => " (NULLS NOT DISTINCT)",
            false => "",
        };
        Some(format!("unique index {name}{nnd}"))
    }
}

/// The key of a table whose reference shape is `reference`, and where it comes from.
pub fn choose(reference: &TableShape, key_override: Option<&[String]>) -> (Vec<String>, KeyOrigin) {
    if let Some(cols) = key_override {
        // A baseline of a keyless table records an empty key.
        let origin = match cols.is_empty() {
            true => KeyOrigin::Keyless { why: None },
            false => KeyOrigin::Named,
        };
        return (cols.to_vec(), origin);
    }
    if !reference.key.is_empty() {
        let names = reference
            .key
            .iter()
            .map(|&i| reference.columns[i].name.clone());
        return (names.collect(), KeyOrigin::Primary);
    }
    match candidate(reference) {
        Some(index) => (
            index.columns.clone(),
            KeyOrigin::Index {
                name: index.name.clone(),
                nulls_not_distinct: index.nulls_not_distinct,
            },
        ),
        None => (Vec::new(), KeyOrigin::Keyless { why: None }),
    }
}

/// The unique index to key a table without a primary key by: one whose columns can all be
/// ordered; NOT NULL ones first (nothing to check), then `NULLS NOT DISTINCT` ones (at most one
/// row can hold NULL), then plain ones over columns that allow NULL (checked to hold none), then
/// the fewest columns, then by name, so every run picks the same.
fn candidate(shape: &TableShape) -> Option<&UniqueIndex> {
    let not_null = |u: &UniqueIndex| {
        u.columns
            .iter()
            .all(|c| shape.column(c).is_some_and(|(_, c)| c.not_null))
    };
    let orderable = |u: &UniqueIndex| {
        u.columns
            .iter()
            .all(|c| shape.column(c).is_some_and(|(_, c)| c.kind.orderable()))
    };
    let class = |u: &UniqueIndex| match (not_null(u), u.nulls_not_distinct) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    };
    shape
        .unique
        .iter()
        .filter(|u| orderable(u))
        .min_by_key(|u| (class(u), u.columns.len(), &u.name))
}

/// What one source's catalog leaves open about a key: the key columns that allow NULL there,
/// and whether no unique index there vouches that no two rows share the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Doubt {
    pub nullable: Vec<String>,
    pub duplicates: bool,
}

impl Doubt {
    /// The doubt about `key` on a source whose shape is `shape`; `None` when its catalog
    /// vouches for the key.
    pub fn of(key: &[String], shape: &TableShape) -> Option<Doubt> {
        if key.is_empty() {
            return None;
        }
        let nullable: Vec<String> = key
            .iter()
            .filter(|k| shape.column(k).is_some_and(|(_, c)| !c.not_null))
            .cloned()
            .collect();
        let duplicates = !vouched(key, shape);
        (!nullable.is_empty() || duplicates).then_some(Doubt {
            nullable,
            duplicates,
        })
    }
}

/// Whether a unique index of `shape` (the primary key among them) lies within `key`. Such an
/// index lets two rows share its columns only where one holds NULL; once the rows are known to
/// hold no NULL in the key, no two share the key either.
fn vouched(key: &[String], shape: &TableShape) -> bool {
    let within =
        |cols: &[&str]| !cols.is_empty() && cols.iter().all(|c| key.iter().any(|k| k == c));
    let primary: Vec<&str> = shape
        .key
        .iter()
        .map(|&i| shape.columns[i].name.as_str())
        .collect();
    within(&primary)
        || shape.unique.iter().any(|u| {
            let cols: Vec<&str> = u.columns.iter().map(String::as_str).collect();
            within(&cols)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Column, TableName, TypeKind};

    fn col(name: &str, kind: TypeKind, not_null: bool) -> Column {
        Column {
            name: name.into(),
            type_name: "t".into(),
            family: kind.family("t"),
            kind,
            not_null,
            bytewise: true,
            generated: false,
            identity_always: false,
        }
    }

    fn index(name: &str, columns: &[&str], nulls_not_distinct: bool) -> UniqueIndex {
        UniqueIndex {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            nulls_not_distinct,
        }
    }

    /// a NOT NULL, b and c nullable, j unorderable; no primary key.
    fn shape(unique: Vec<UniqueIndex>) -> TableShape {
        TableShape {
            name: TableName::new("public", "t"),
            columns: vec![
                col("a", TypeKind::Int(4), true),
                col("b", TypeKind::Int(4), false),
                col("c", TypeKind::Text, false),
                col("j", TypeKind::Jsonb, true),
            ],
            key: Vec::new(),
            est_rows: 0,
            never_analyzed: false,
            parents: Vec::new(),
            unique,
        }
    }

    fn strings(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn a_unique_index_keys_a_table_without_a_primary_key() {
        let nnd = index("t_bc", &["b", "c"], true);
        let plain_nullable = index("t_b", &["b"], false);
        let not_null = index("t_za", &["a", "b"], false);
        let unorderable = index("t_j", &["j"], false);
        // (the indexes, the key chosen, its index)
        let cases = [
            (vec![plain_nullable.clone()], strings(&["b"]), Some("t_b")),
            (vec![unorderable.clone()], vec![], None),
            (
                vec![nnd.clone(), plain_nullable.clone()],
                strings(&["b", "c"]),
                Some("t_bc"),
            ),
            (
                vec![nnd.clone(), index("t_a", &["a"], false)],
                strings(&["a"]),
                Some("t_a"),
            ),
            (
                vec![index("t_y", &["a"], false), index("t_x", &["a"], true)],
                strings(&["a"]),
                Some("t_x"),
            ),
        ];
        for (unique, want, name) in cases {
            let (key, origin) = choose(&shape(unique.clone()), None);
            assert_eq!(key, want, "{unique:?}");
            match (origin, name) {
                (KeyOrigin::Index { name: got, .. }, Some(name)) => assert_eq!(got, name),
                (KeyOrigin::Keyless { why: None }, None) => {}
                (origin, _) => panic!("{unique:?}: {origin:?}"),
            }
        }
        // The primary key and --key come first; an empty --key (a keyless baseline) is keyless.
        let mut pk = shape(vec![not_null]);
        pk.key = vec![2];
        assert_eq!(choose(&pk, None), (strings(&["c"]), KeyOrigin::Primary));
        let named = strings(&["b"]);
        assert_eq!(choose(&pk, Some(&named)), (named, KeyOrigin::Named));
        assert_eq!(
            choose(&pk, Some(&[])),
            (vec![], KeyOrigin::Keyless { why: None })
        );
    }

    #[test]
    fn doubts_are_what_no_not_null_column_and_no_unique_index_settles() {
        let bare = shape(vec![]);
        let doubt = |key: &[&str], s: &TableShape| Doubt::of(&strings(key), s);
        assert_eq!(doubt(&[], &bare), None, "no key, nothing to doubt");
        let both = |nullable: &[&str]| {
            Some(Doubt {
                nullable: strings(nullable),
                duplicates: true,
            })
        };
        assert_eq!(doubt(&["a"], &bare), both(&[]));
        assert_eq!(doubt(&["a", "b"], &bare), both(&["b"]));
        // A unique index within the key settles duplicates (once NULLs are ruled out).
        let indexed = shape(vec![index("t_b", &["b"], false)]);
        assert_eq!(
            doubt(&["a", "b"], &indexed),
            Some(Doubt {
                nullable: strings(&["b"]),
                duplicates: false
            })
        );
        assert_eq!(doubt(&["a"], &indexed), both(&[]));
        let mut pk = bare.clone();
        pk.key = vec![0];
        assert_eq!(doubt(&["a"], &pk), None);
        assert_eq!(
            doubt(&["a", "c"], &pk),
            both(&["c"]).map(|d| Doubt {
                duplicates: false,
                ..d
            })
        );
    }

    #[test]
    fn notes_say_where_the_key_comes_from() {
        let origin = KeyOrigin::Index {
            name: "t_bc".into(),
            nulls_not_distinct: true,
        };
        assert_eq!(
            origin.note(&strings(&["b", "c"])).unwrap(),
            "key (b, c) from unique index t_bc (NULLS NOT DISTINCT): the table has no primary key"
        );
        assert_eq!(KeyOrigin::Named.note(&strings(&["a"])), None);
    }
}
