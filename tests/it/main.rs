//! pgsalvage's integration tests: one binary, real PostgreSQL clusters started by the tests.
//! Modules are listed here; shared helpers live in `support`.

mod baseline;
mod check;
mod cli;
mod cluster_test;
mod concurrency;
mod deploy;
mod habits;
mod hostile;
mod html;
mod integrity;
mod keyless;
mod keys;
mod layers;
mod live;
mod majors;
mod narrow;
mod random;
mod recover;
mod scope;
mod shards;
mod status;
mod support;
mod tapped_copy;
mod three_way;
mod tls;
mod types;
mod values;
