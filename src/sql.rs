//! SQL text built from identifiers and literals: column lists, key predicates, temporary table
//! names. Identifiers are always quoted by `shape::quote_ident`; values arrive as SQL literals
//! rendered by `key::render`. Shared by the scripts recover writes, the queries apply and check
//! run, and the fetches of differing rows.

use crate::shape::{quote_ident, TableName};

/// A string literal that stays on one line: a text with control characters is written as an
/// `E''` string with backslash escapes (a newline as `\n`), others as a plain quoted literal.
pub fn literal(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return postgres_protocol::escape::escape_literal(text);
    }
    let mut out = String::from("E'");
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `table` as a `regclass` the server resolves by its exact schema and name, whatever they hold
/// (the text form of a regclass cannot spell a name with a newline as `U&""` quoting does).
pub fn regclass(table: &TableName) -> String {
    let plain = !(table.schema.chars().chain(table.name.chars())).any(char::is_control);
    if plain {
        return format!(
            "{}::regclass",
            postgres_protocol::escape::escape_literal(&table.sql())
        );
    }
    format!(
        "format('%I.%I', {}, {})::regclass",
        literal(&table.schema),
        literal(&table.name)
    )
}

/// Temporary tables are named after the table's index in the plan and what they hold.
pub fn temp_name(table: usize, what: &str) -> String {
    format!("pgsalvage_{table}_{what}")
}

pub fn list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn qualified(alias: &str, cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("{alias}.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `t.k1 = s.k1 AND t.k2 = s.k2`
pub fn key_match(key: &[String]) -> String {
    key.iter()
        .map(|k| format!("t.{0} = s.{0}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The `SELECT` list of a fetch, for reuse by callers building queries.
pub fn select_list(cols: &[String]) -> String {
    list(cols)
}

/// `s.a, s.b`, for callers building joins.
pub fn qualified_list(alias: &str, cols: &[String]) -> String {
    qualified(alias, cols)
}

/// `(k1, k2) IN ((..), (..))` or `k IN (..)` for a chunk of keys.
pub fn key_filter(key: &[String], keys: &[Vec<String>]) -> String {
    let lhs = match key {
        [one] => crate::shape::quote_ident(one),
        many => format!("({})", select_list(many)),
    };
    let tuples: Vec<String> = keys
        .iter()
        .map(|k| {
            if k.len() == 1 {
                k[0].clone()
            } else {
                format!("({})", k.join(", "))
            }
        })
        .collect();
    format!("{lhs} IN ({})", tuples.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_stay_on_one_line() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\nb\\c'd"), "E'a\\nb\\\\c''d'");
        assert_eq!(literal("x\u{7}"), "E'x\\u0007'");
        assert!(!regclass(&TableName::new("s\n", "t\r")).contains(['\n', '\r']));
    }

    #[test]
    fn filters_single_and_composite_keys() {
        let one = vec!["id".to_string()];
        assert_eq!(
            key_filter(
                &one,
                &[vec!["'1'::bigint".into()], vec!["'2'::bigint".into()]]
            ),
            "\"id\" IN ('1'::bigint, '2'::bigint)"
        );
        let two = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            key_filter(&two, &[vec!["1".into(), "'x'".into()]]),
            "(\"a\", \"b\") IN ((1, 'x'))"
        );
    }
}
