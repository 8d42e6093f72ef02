//! Canonical rows and their digests.
//!
//! [`canonical`] defines the typed, length-prefixed encoding that makes equal values equal bytes
//! ([`json`] canonicalizes JSON for it); [`digest`] hashes whole rows with blake3 on the rayon
//! pool, the one place where CPU work leaves the async runtime.

pub mod canonical;
pub mod digest;
pub mod json;
