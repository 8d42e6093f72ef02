//! What every stage agrees a table is.
//!
//! The catalog reader (`source::catalog`) builds a [`TableShape`] per source; the table plan
//! (`plan::reconcile`) then lines up the shapes of one table across sources into a `TablePlan`:
//! the columns compared (by name, in the base's order, key columns first), the schema
//! differences, and the per-source [`TypeKind`] of every compared column. The decoders, the
//! canonical encoding, the key encoding and the reports only ever see these types, never the
//! catalog queries behind them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A schema-qualified table name, kept unquoted; [`TableName::sql`] quotes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// The name as SQL: both parts quoted as identifiers.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Parses `schema.name` or `name` (schema `public`); a part may be double-quoted.
    pub fn parse(text: &str) -> Option<TableName> {
        let parts = split_qualified(text)?;
        match parts.as_slice() {
            [name] => Some(TableName::new("public", name.clone())),
            [schema, name] => Some(TableName::new(schema.clone(), name.clone())),
            _ => None,
        }
    }
}

impl TableName {
    /// A file name stem for this table, safe and unique in a directory of a run's tables:
    /// `<index>_<schema.name>` with every character but ASCII letters, digits, `.`, `_` and `-`
    /// replaced by `_`, cut at 100 characters. The index keeps names that map alike apart and
    /// the stem from starting with a dot; the real name goes in the file's metadata.
    pub fn file_stem(&self, index: usize) -> String {
        let text: String = format!("{}.{}", self.schema, self.name)
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
                true => c,
                false => '_',
            })
            .take(100)
            .collect();
        format!("{index:04}_{text}")
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Splits `a.b` at dots outside double quotes; `""` inside quotes is a literal quote.
fn split_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut()?.push('"');
            }
            ('"', true) => quoted = false,
            ('.', false) => parts.push(String::new()),
            (c, _) => parts.last_mut()?.push(c),
        }
    }
    let ok = !quoted && parts.iter().all(|p| !p.is_empty());
    ok.then_some(parts)
}

/// Quotes an identifier the way PostgreSQL's `quote_ident` does, always.
pub fn quote_ident(ident: &str) -> String {
    if !ident.chars().any(char::is_control) {
        return postgres_protocol::escape::escape_identifier(ident);
    }
    // A name with a newline or another control character is written with Unicode escapes
    // (`U&"line\000abreak"`), so every statement stays on one line of a script and no
    // character of a name can end a line or a comment early.
    let mut out = String::from("U&\"");
    for c in ident.chars() {
        match c {
            '"' => out.push_str("\"\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The family a column's values belong to, as the canonical encoding sees them.
///
/// Domains are resolved to their base type and enums to their labels, so a kind is what the
/// binary COPY bytes mean. Types that change their family across a migration (int4 → text) make a
/// column incomparable; types that stay inside one (int4 → int8, varchar → text, json → jsonb,
/// cidr → inet) compare by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypeKind {
    Bool,
    /// int2, int4 or int8; the payload is the width in bytes (2, 4 or 8).
    Int(u8),
    Float4,
    Float8,
    Numeric,
    /// text, varchar, name, citext and enum labels: UTF-8 bytes compared as they are.
    Text,
    /// bpchar: trailing spaces are not significant, as PostgreSQL compares them.
    Bpchar,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    /// json: text, canonicalized for comparison with jsonb.
    Json,
    /// jsonb: version byte 1 and text.
    Jsonb,
    /// inet and cidr: compared by family, bits and address as PostgreSQL's `=` does.
    Inet,
    /// An array of the element kind.
    Array(Box<TypeKind>),
    /// A composite value; the field kinds in attribute order.
    Composite(Vec<TypeKind>),
    /// Any other type: its binary form compared byte for byte; the type name must match on
    /// every side.
    Other,
}

/// The comparison family of a kind: two columns are comparable when their families are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    Bool,
    Int,
    Float,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Inet,
    Array(Box<Family>),
    Composite(Vec<Family>),
    /// Binary comparison; the type's name (schema-qualified) must match.
    Other(String),
}

impl TypeKind {
    /// The family of this kind; `type_name` names `Other` types.
    pub fn family(&self, type_name: &str) -> Family {
        match self {
            TypeKind::Bool => Family::Bool,
            TypeKind::Int(_) => Family::Int,
            TypeKind::Float4 | TypeKind::Float8 => Family::Float,
            TypeKind::Numeric => Family::Numeric,
            TypeKind::Text | TypeKind::Bpchar => Family::Text,
            TypeKind::Bytea => Family::Bytea,
            TypeKind::Date => Family::Date,
            TypeKind::Time => Family::Time,
            TypeKind::TimeTz => Family::TimeTz,
            TypeKind::Timestamp => Family::Timestamp,
            TypeKind::TimestampTz => Family::TimestampTz,
            TypeKind::Interval => Family::Interval,
            TypeKind::Uuid => Family::Uuid,
            TypeKind::Json | TypeKind::Jsonb => Family::Json,
            TypeKind::Inet => Family::Inet,
            TypeKind::Array(elem) => Family::Array(Box::new(elem.family(type_name))),
            TypeKind::Composite(fields) => {
                Family::Composite(fields.iter().map(|f| f.family(type_name)).collect())
            }
            TypeKind::Other => Family::Other(type_name.to_string()),
        }
    }

    /// Whether a key column of this kind can be ordered on the client exactly as the server
    /// orders it (see `key::encode`).
    pub fn orderable(&self) -> bool {
        matches!(
            self,
            TypeKind::Bool
                | TypeKind::Int(_)
                | TypeKind::Float4
                | TypeKind::Float8
                | TypeKind::Numeric
                | TypeKind::Text
                | TypeKind::Bpchar
                | TypeKind::Bytea
                | TypeKind::Date
                | TypeKind::Time
                | TypeKind::Timestamp
                | TypeKind::TimestampTz
                | TypeKind::Uuid
        )
    }

    /// Whether the type takes a collation (its order depends on one).
    pub fn collatable(&self) -> bool {
        matches!(self, TypeKind::Text | TypeKind::Bpchar)
    }
}

/// A value whose binary form is not what its type promises (a bug or a protocol surprise, never
/// a user mistake): the decoders refuse it rather than guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {type_name} value: {reason}")]
pub struct ValueError {
    pub type_name: &'static str,
    pub reason: &'static str,
}

impl ValueError {
    pub fn new(type_name: &'static str, reason: &'static str) -> Self {
        ValueError { type_name, reason }
    }
}

/// One column as a source's catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, schema-qualified where the type is not in pg_catalog.
    pub type_name: String,
    pub kind: TypeKind,
    /// The comparison family (see [`TypeKind::family`]), from the type name without modifiers.
    pub family: Family,
    pub not_null: bool,
    /// Whether the column's effective collation orders by bytes (C or POSIX); false for
    /// non-collatable types.
    pub bytewise: bool,
    /// A stored generated column: never written by a restore.
    pub generated: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: inserts need `OVERRIDING SYSTEM VALUE`.
    pub identity_always: bool,
}

/// A table as one source's catalog describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableShape {
    pub name: TableName,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order; empty when there is none.
    pub key: Vec<usize>,
    /// The planner's row estimate (`reltuples`; 0 when never analyzed).
    pub est_rows: u64,
    /// Never analyzed (`reltuples` < 0): `est_rows` is unknown until the table is sized from its
    /// files, which takes its lock, so that is done in a visit (see `pipeline::plan_ranges`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never_analyzed: bool,
    /// Tables this one references through foreign keys (its parents), self-references excluded.
    pub parents: Vec<TableName>,
    /// Its valid unique indexes over plain columns, without a predicate, the primary key's
    /// left out: the keys a table without a primary key can be compared by (see `plan::key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<UniqueIndex>,
}

/// A unique index as the catalog describes it: what makes a set of columns a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueIndex {
    pub name: String,
    /// Its key columns by name, in index order (INCLUDE columns left out).
    pub columns: Vec<String>,
    /// `NULLS NOT DISTINCT` (PostgreSQL 15+): NULLs count as equal, so even rows with NULL in
    /// these columns are unique; without it any number of rows may share a key holding NULL.
    pub nulls_not_distinct: bool,
}

impl TableShape {
    pub fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualified_names() {
        assert_eq!(
            TableName::parse("orders"),
            Some(TableName::new("public", "orders"))
        );
        assert_eq!(
            TableName::parse("app.orders"),
            Some(TableName::new("app", "orders"))
        );
        assert_eq!(
            TableName::parse(r#""my.schema"."we""ird""#),
            Some(TableName::new("my.schema", r#"we"ird"#))
        );
        assert_eq!(TableName::parse("a.b.c"), None);
        assert_eq!(TableName::parse("a."), None);
        assert_eq!(TableName::parse("\"open"), None);
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(TableName::new("public", "a\"b").sql(), r#""public"."a""b""#);
    }

    #[test]
    fn families_tolerate_migrations_within_a_family() {
        assert_eq!(
            TypeKind::Int(4).family("int4"),
            TypeKind::Int(8).family("int8")
        );
        assert_eq!(
            TypeKind::Json.family("json"),
            TypeKind::Jsonb.family("jsonb")
        );
        assert_ne!(TypeKind::Other.family("a.t"), TypeKind::Other.family("b.t"));
    }
}
