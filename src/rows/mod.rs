//! Rows as they come off the wire: binary COPY frames cut into byte-bounded batches ([`batch`]).

pub mod batch;
