//! Checking a key in the snapshots: no NULL and no duplicate in the rows the comparison reads.
//!
//! `plan::key` says which keys a source's catalog leaves in doubt: a `--key` (any columns), and a
//! unique index's key where its columns allow NULL or where that source lacks the index. For each
//! such table and source (the sources at once), one query in a [`visit`] of that source's
//! snapshot (the transaction, lock and rewrite check a range read has, with the table's `--where`
//! predicate) counts the rows holding NULL in the key's nullable columns and looks for one key
//! that two rows share. The
//! search for duplicates is left out where a unique index inside the key rules them out (once no
//! NULL is found). So the check sees exactly the rows compared, and holds the table's ACCESS SHARE
//! lock for that query only: a DDL that arrives meanwhile waits for one scan of the table, as it
//! would for a keyless table's read (a scan and a hash aggregate: 1.1 s for 2e6 rows; the NULL
//! count alone, where an index rules duplicates out, 70 ms).
//!
//! A named key that fails stops the run (exit 2) naming the table, the source, the columns and
//! what was found; a unique index's key that fails leaves its table compared as a multiset, with a
//! note saying why ([`settle`]).

use tokio_postgres::Client;

use super::visit::{self, Patience};
use super::{Session, Source};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::plan::key::{choose, Doubt, KeyOrigin};
use crate::plan::TablePlan;
use crate::role::Role;
use crate::shape::{quote_ident, TableName, TableShape};

/// What a source's snapshot shows against a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This many rows hold NULL in a key column.
    Nulls(u64),
    /// `rows` rows share the key `key` (as PostgreSQL prints a row of the key's values).
    Duplicate { key: String, rows: u64 },
}

/// A key that does not hold on one source: where, what was in doubt, what was found.
#[derive(Clone, Debug)]
pub struct Found {
    pub role: Role,
    pub doubt: Doubt,
    pub fault: Fault,
}

/// Checks keys on one source, on one worker session reused from table to table (as
/// `sample::Planner` cuts them).
pub struct KeyCheck<'a> {
    source: &'a Source,
    session: Option<Session>,
}

impl<'a> KeyCheck<'a> {
    pub fn new(source: &'a Source) -> Self {
        KeyCheck {
            source,
            session: None,
        }
    }

    /// What `plan`'s table on this source (source `at` of the plan) shows against its key:
    /// `None` when its catalog vouches for the key or its rows bear the key out. A failure drops
    /// the session, so the next table starts on a new one.
    pub async fn look(
        &mut self,
        plan: &TablePlan,
        at: usize,
        patience: &Patience<'_>,
    ) -> Result<Option<Found>> {
        // A primary key is trusted as declared; a keyless table has nothing to check.
        if matches!(
            plan.key_origin,
            KeyOrigin::Primary | KeyOrigin::Keyless { .. }
        ) {
            return Ok(None);
        }
        let shape = plan.shapes.get(at).and_then(Option::as_ref);
        let Some(doubt) = shape.and_then(|s| Doubt::of(plan.key(), s)) else {
            return Ok(None);
        };
        if self.session.is_none() {
            self.session = Some(self.source.worker().await?);
        }
        let session = self.session.as_ref().expect("connected");
        let looked = in_visit(self.source, session, plan, &doubt, patience).await;
        if looked.is_err() {
            self.session = None;
        }
        let role = self.source.role;
        Ok(looked?.map(|fault| Found { role, doubt, fault }))
    }

    /// [`KeyCheck::look`], a key that does not hold being an error (a named key's).
    pub async fn require(
        &mut self,
        plan: &TablePlan,
        at: usize,
        patience: &Patience<'_>,
    ) -> Result<()> {
        match self.look(plan, at, patience).await? {
            Some(found) => Err(refusal(plan, &found)),
            None => Ok(()),
        }
    }
}

/// Checks the key of every plan whose key is in doubt on every source that has its table
/// (`sources` in the plans' order): a named key that does not hold is the run's error; a unique
/// index's leaves its table keyless, said through `patience.reporter`. A table whose check could
/// not run (its lock did not come within `--lock-wait`, a lost connection) is returned apart with
/// why, as tables that cannot be compared are.
pub async fn settle(
    sources: &[Source],
    plans: Vec<TablePlan>,
    patience: &Patience<'_>,
) -> Result<(Vec<TablePlan>, Vec<(TableName, Error)>)> {
    let roles: Vec<Role> = sources.iter().map(|s| s.role).collect();
    let mut checks: Vec<KeyCheck> = sources.iter().map(KeyCheck::new).collect();
    let (mut kept, mut refused) = (Vec::with_capacity(plans.len()), Vec::new());
    for plan in plans {
        match settle_one(&mut checks, &roles, plan, patience).await {
            Ok(plan) => kept.push(plan),
            Err((_, e)) if e.kind() == ErrorKind::Usage => return Err(e),
            Err((name, e)) => refused.push((name, e)),
        }
    }
    Ok((kept, refused))
}

async fn settle_one(
    checks: &mut [KeyCheck<'_>],
    roles: &[Role],
    plan: TablePlan,
    patience: &Patience<'_>,
) -> Result<TablePlan, (TableName, Error)> {
    let refuse = |e: Error| (plan.name.clone(), e);
    // Every source at once, each in its own visit: the check takes one scan's time, not one
    // per source.
    let looks = checks
        .iter_mut()
        .enumerate()
        .filter(|(at, _)| plan.codecs.get(*at).is_some_and(Option::is_some))
        .map(|(at, check)| check.look(&plan, at, patience));
    let looked = futures_util::future::join_all(looks).await;
    let mut found = None;
    for look in looked {
        found = found.or(look.map_err(refuse)?);
    }
    let Some(found) = found else {
        return Ok(plan);
    };
    if plan.key_origin == KeyOrigin::Named {
        return Err(refuse(refusal(&plan, &found)));
    }
    let why = keyless_note(&plan, &found);
    patience.reporter.message(&format!("{}: {why}", plan.name));
    let name = plan.name.clone();
    plan.without_key(roles, why).map_err(|e| (name, e))
}

/// Enters a visit of the table, runs the check, leaves.
async fn in_visit(
    source: &Source,
    session: &Session,
    plan: &TablePlan,
    doubt: &Doubt,
    patience: &Patience<'_>,
) -> Result<Option<Fault>> {
    let stops = [source.stop(session)];
    visit::enter_all(&stops, &plan.name, " to check its key", patience).await?;
    let looked = run_check(session, plan, doubt).await;
    let left = match &looked {
        Ok(_) => visit::leave(session).await,
        Err(_) => session.batch_execute("ROLLBACK").await.map_err(Error::pg),
    };
    let fault = looked.map_err(|e| {
        e.context(format!(
            "checking the key of {} on {}",
            plan.name, source.role
        ))
    })?;
    left.map_err(|e| e.context(format!("ending the key check of {}", plan.name)))?;
    Ok(fault)
}

async fn run_check(client: &Client, plan: &TablePlan, doubt: &Doubt) -> Result<Option<Fault>> {
    let sql = check_sql(plan, doubt);
    crate::log!(2, "sql: {sql}");
    let row = client
        .query_one(&sql, &[])
        .await
        .context(|| "looking for NULLs and duplicates".into())?;
    let nulls: i64 = row.get(0);
    if nulls > 0 {
        return Ok(Some(Fault::Nulls(nulls as u64)));
    }
    let shared: Option<String> = row.get(1);
    let rows: Option<i64> = row.get(2);
    Ok(shared.map(|key| Fault::Duplicate {
        key,
        rows: rows.unwrap_or(0) as u64,
    }))
}

/// One statement: the rows with NULL in a nullable key column, and one key two rows share with
/// how many rows share it (grouped by the key's order expressions, so text compares by bytes as
/// the key encoding does). Either part is a constant where it is not in doubt.
fn check_sql(plan: &TablePlan, doubt: &Doubt) -> String {
    let table = plan.name.sql();
    let nulls = match doubt.nullable.is_empty() {
        true => "0::int8".to_string(),
        false => {
            let any: Vec<String> = doubt
                .nullable
                .iter()
                .map(|c| format!("{} IS NULL", quote_ident(c)))
                .collect();
            let cond = format!("({})", any.join(" OR "));
            format!(
                "(SELECT count(*) FROM {table}{})",
                plan.where_clause(Some(&cond))
            )
        }
    };
    if !doubt.duplicates {
        return format!("SELECT {nulls}, NULL::text, NULL::int8");
    }
    let keys = plan.key_exprs().join(", ");
    let shown = match plan.nkey {
        1 => format!("({keys})::text"),
        _ => format!("ROW({keys})::text"),
    };
    format!(
        "SELECT {nulls}, d.key, d.rows FROM (SELECT 1) one LEFT JOIN \
           (SELECT {shown}, count(*) FROM {table}{} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1) \
           d(key, rows) ON true",
        plan.where_clause(None)
    )
}

/// "3 rows hold NULL in b or c" / "2 rows share the key (1,x)".
fn fault_text(found: &Found) -> String {
    let rows = |n: u64| match n {
        1 => "1 row holds".to_string(),
        n => format!("{n} rows hold"),
    };
    match &found.fault {
        Fault::Nulls(n) => format!("{} NULL in {}", rows(*n), found.doubt.nullable.join(" or ")),
        Fault::Duplicate { key, rows } => format!("{rows} rows share the key {key}"),
    }
}

/// A named key that does not hold: the table, the source, the columns, what was found.
pub fn refusal(plan: &TablePlan, found: &Found) -> Error {
    let name = &plan.name;
    let message = format!(
        "key ({}) of {name} does not hold on {}: {}",
        plan.key().join(", "),
        found.role,
        fault_text(found)
    );
    let otherwise = plan
        .shapes
        .iter()
        .flatten()
        .next()
        .map(without_named_key)
        .unwrap_or_default();
    Error::usage(message).with_hint(format!(
        "a key must be NOT NULL and unique in the rows compared; choose other columns with --key {name}=col1,col2, or leave --key out to compare {name} {otherwise}"
    ))
}

/// How a table is compared without `--key`: "by its primary key", "as a keyless multiset".
fn without_named_key(reference: &TableShape) -> String {
    match choose(reference, None).1 {
        KeyOrigin::Primary => "by its primary key".into(),
        origin @ KeyOrigin::Index { .. } => {
            format!("by its {}", origin.index_phrase().unwrap_or_default())
        }
        _ => "as a keyless multiset".into(),
    }
}

/// Why a table keyed by a unique index is compared as a multiset after all.
fn keyless_note(plan: &TablePlan, found: &Found) -> String {
    let lacks = match found.doubt.duplicates && matches!(found.fault, Fault::Duplicate { .. }) {
        true => " (it lacks that index)",
        false => "",
    };
    let cannot = match found.fault {
        Fault::Nulls(_) => ", and a key cannot address NULL",
        Fault::Duplicate { .. } => "",
    };
    format!(
        "compared as a multiset: key ({}) of {} does not hold on {}{lacks}: {}{cannot}",
        plan.key().join(", "),
        plan.key_origin.index_phrase().unwrap_or_default(),
        found.role,
        fault_text(found)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Column, TypeKind, UniqueIndex};

    fn column(name: &str, kind: TypeKind, not_null: bool) -> Column {
        Column {
            name: name.into(),
            type_name: "integer".into(),
            family: kind.family("integer"),
            kind,
            not_null,
            bytewise: false,
            generated: false,
            identity_always: false,
        }
    }

    fn plan(key: Option<&[&str]>, unique: Vec<UniqueIndex>) -> TablePlan {
        let shape = TableShape {
            name: TableName::new("public", "t"),
            columns: vec![
                column("a", TypeKind::Int(4), true),
                column("b", TypeKind::Text, false),
                column("v", TypeKind::Int(4), false),
            ],
            key: Vec::new(),
            est_rows: 0,
            never_analyzed: false,
            parents: Vec::new(),
            unique,
        };
        let key: Option<Vec<String>> = key.map(|k| k.iter().map(|c| c.to_string()).collect());
        let roles = [Role::Base, Role::Target];
        crate::plan::reconcile(
            &shape.name,
            &roles,
            &[Some(&shape), Some(&shape)],
            key.as_deref(),
        )
        .unwrap()
    }

    fn doubt(nullable: &[&str], duplicates: bool) -> Doubt {
        Doubt {
            nullable: nullable.iter().map(|c| c.to_string()).collect(),
            duplicates,
        }
    }

    #[test]
    fn one_statement_counts_nulls_and_finds_one_shared_key_within_the_where_predicate() {
        let mut p = plan(Some(&["a", "b"]), Vec::new());
        p.rows = Some("v > 0".into());
        assert_eq!(
            check_sql(&p, &doubt(&["b"], true)),
            "SELECT (SELECT count(*) FROM \"public\".\"t\" WHERE (v > 0) AND ((\"b\" IS NULL))), \
             d.key, d.rows FROM (SELECT 1) one LEFT JOIN \
             (SELECT ROW(\"a\", \"b\" COLLATE \"C\")::text, count(*) FROM \"public\".\"t\" WHERE (v > 0) \
             GROUP BY \"a\", \"b\" COLLATE \"C\" HAVING count(*) > 1 LIMIT 1) d(key, rows) ON true"
        );
        let p = plan(Some(&["b"]), Vec::new());
        assert_eq!(
            check_sql(&p, &doubt(&["b"], false)),
            "SELECT (SELECT count(*) FROM \"public\".\"t\" WHERE (\"b\" IS NULL)), NULL::text, NULL::int8"
        );
        assert!(check_sql(&p, &doubt(&[], true)).starts_with("SELECT 0::int8, d.key"));
    }

    #[test]
    fn a_named_key_that_does_not_hold_names_table_source_columns_and_what_was_found() {
        let p = plan(Some(&["a", "b"]), Vec::new());
        let found = Found {
            role: Role::Target,
            doubt: doubt(&["b"], true),
            fault: Fault::Nulls(3),
        };
        let e = refusal(&p, &found);
        assert_eq!(
            e.to_string(),
            "key (a, b) of public.t does not hold on target: 3 rows hold NULL in b"
        );
        assert!(e
            .hint()
            .unwrap()
            .ends_with("or leave --key out to compare public.t as a keyless multiset"));
        let found = Found {
            role: Role::Base,
            doubt: doubt(&[], true),
            fault: Fault::Duplicate {
                key: "(1,x)".into(),
                rows: 2,
            },
        };
        assert_eq!(
            refusal(&p, &found).to_string(),
            "key (a, b) of public.t does not hold on base: 2 rows share the key (1,x)"
        );
    }

    #[test]
    fn an_index_key_that_does_not_hold_says_why_the_table_is_keyless() {
        let index = UniqueIndex {
            name: "t_b".into(),
            columns: vec!["b".into()],
            nulls_not_distinct: true,
        };
        let p = plan(None, vec![index]);
        let found = Found {
            role: Role::Target,
            doubt: doubt(&["b"], false),
            fault: Fault::Nulls(1),
        };
        assert_eq!(
            keyless_note(&p, &found),
            "compared as a multiset: key (b) of unique index t_b (NULLS NOT DISTINCT) does not \
             hold on target: 1 row holds NULL in b, and a key cannot address NULL"
        );
    }
}
