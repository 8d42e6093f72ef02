//! What restoring one differing key takes, computed in the merge while both rows are at hand.
//!
//! For recover runs the merge attaches a [`RestoreKey`] to each finding: the key as typed SQL
//! literals (to fetch and address the row later), the digest of the target's row now (the guard
//! `apply` checks before touching it) and the digest the row will have after the restore (what
//! `apply` re-verifies). Rows are restored from the restore source: the base in a two-way run,
//! the replica in a three-way one. The "after" digest of a partial update (`--columns`) is the
//! hash of the row the update produces: source values in the restored columns, target values
//! elsewhere.

use crate::classify::{Action, Class, ConflictPolicy, RestoreKey};
use crate::hash::canonical::encode_field;
use crate::hash::digest::{row_digest, Digest, DigestBatch};
use crate::key::render::render_text;
use crate::plan::TablePlan;
use crate::shape::ValueError;

/// One source's row of the current key: its batch and row index, `None` when absent.
pub type Row<'a> = Option<(&'a DigestBatch, usize)>;

/// How a recover run turns classes into actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureSpec {
    pub no_delete: bool,
    /// `--new-on-target delete`.
    pub delete_new_on_target: bool,
    pub on_conflict: ConflictPolicy,
    /// The source whose rows are restored: the replica in a three-way run, else the base.
    pub source: usize,
    /// Keep this key whatever its class (a target row written after the replica).
    pub keep_all: bool,
}

/// Builds the restore record of one key from every source's row (`rows[last]` is the target).
pub fn restore_key(
    plan: &TablePlan,
    mask: Option<&[bool]>,
    class: Class,
    spec: CaptureSpec,
    rows: &[Row<'_>],
) -> Result<RestoreKey, ValueError> {
    let last = rows.len() - 1;
    let (source, target) = (rows[spec.source], rows[last]);
    let action = match spec.keep_all {
        true => Action::Keep,
        false if class == Class::NewOnTarget && spec.delete_new_on_target => Action::Delete,
        false => Action::for_class(
            class,
            spec.no_delete,
            spec.on_conflict,
            source.is_some(),
            target.is_some(),
        ),
    };
    let holder_index = rows
        .iter()
        .position(Option::is_some)
        .ok_or(ValueError::new("key", "a finding without rows"))?;
    let holder = rows[holder_index].expect("present");
    let texts = key_texts(plan, holder_index, holder)?;
    let literals = plan
        .key_columns
        .iter()
        .zip(&texts)
        .map(|(c, t)| {
            format!(
                "{}::{}",
                postgres_protocol::escape::escape_literal(t),
                c.type_name
            )
        })
        .collect();
    let order_key = holder.0.key(holder.1).to_vec();
    let before = target.map(|(b, i)| b.digests[i]);
    let after = match (action, source, target) {
        (Action::Insert, Some((b, i)), _) => Some(b.digests[i]),
        (Action::Update, Some(s), Some(t)) => Some(updated_digest(plan, mask, spec.source, s, t)?),
        (Action::Keep, _, _) => before,
        _ => None,
    };
    Ok(RestoreKey {
        action,
        literals,
        texts,
        order_key,
        before,
        after,
        ctid: None,
        copies: None,
    })
}

/// The key columns of a row as PostgreSQL's text output.
fn key_texts(
    plan: &TablePlan,
    source: usize,
    (batch, row): (&DigestBatch, usize),
) -> Result<Vec<String>, ValueError> {
    let codec = plan.codecs[source]
        .as_ref()
        .expect("the holder has the table");
    let mut texts = Vec::with_capacity(plan.nkey);
    for col in 0..plan.nkey {
        let raw = batch
            .rows
            .field(row, col)
            .ok_or(ValueError::new("key", "NULL in a key column"))?;
        let mut text = String::new();
        render_text(&codec.kinds[col], raw, &mut text)?;
        texts.push(text);
    }
    Ok(texts)
}

/// The digest of the target row after a (possibly partial) update from the base row.
fn updated_digest(
    plan: &TablePlan,
    mask: Option<&[bool]>,
    source: usize,
    (bb, bi): (&DigestBatch, usize),
    (tb, ti): (&DigestBatch, usize),
) -> Result<Digest, ValueError> {
    let Some(mask) = mask else {
        return Ok(bb.digests[bi]);
    };
    let (base, target) = (
        plan.codecs[source].as_ref().expect("the restore source"),
        plan.codecs[plan.codecs.len() - 1].as_ref().expect("target"),
    );
    let mut row = Vec::with_capacity(256);
    for (col, &restored) in mask.iter().enumerate() {
        if col < plan.nkey || restored {
            encode_field(&base.kinds[col], bb.rows.field(bi, col), &mut row)?;
        } else {
            encode_field(&target.kinds[col], tb.rows.field(ti, col), &mut row)?;
        }
    }
    Ok(row_digest(&row))
}
