//! Comparing one table's rows across sources, after the table plan decided what is compared: the
//! N-way merge of digest streams by key ([`merge`]), what it counts per range and table
//! ([`tally`]; where in the key space, [`strip`]), and for recover runs what restoring each
//! differing key takes ([`restore`]). Tables without a key are counted as multisets of rows
//! ([`multiset`]).

pub mod merge;
pub mod multiset;
pub mod range;
pub mod restore;
pub mod strip;
pub mod tally;
