//! Which side of a comparison a source stands on: the vocabulary every stage shares, from the
//! table plan (which source's columns are the reference) to the report (rows read per role).

use std::fmt;

use serde::Serialize;

/// Which side of the comparison a source stands on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The known-good side: a restored pre-migration backup.
    Base,
    /// A copy that saw the legitimate writes but not the damage.
    Replica,
    /// The side under suspicion: the damaged primary.
    Target,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Base => "base",
            Role::Replica => "replica",
            Role::Target => "target",
        })
    }
}
