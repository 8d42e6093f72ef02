//! Errors, with the context an on-call engineer needs to act on them.
//!
//! Every error says what failed and where: the source (base, replica, target), the table and the
//! key range when there is one, chained as lowercase clauses the way tokio-postgres and ripgrep
//! print them ("reading public.orders from target, range [1000, 2000): connection reset"). The
//! [`ErrorKind`] tells a user's mistake (bad URL, missing table, no primary key) from trouble
//! outside us (unreachable server, lost connection) and from our own bugs, because the hint the
//! binary prints differs for each. Every kind ends the run with exit status 2.

use std::fmt;

/// What kind of failure this is; decides the hint shown under the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The user asked for something that cannot be done as asked (bad URL, missing table,
    /// table without a key, unsupported key type, mismatched schemas).
    Usage,
    /// A server or the network failed us (unreachable, authentication, lost connection).
    Source,
    /// Reading or writing a local file failed.
    Io,
    /// A check inside pgsalvage failed: a bug, to be reported.
    Internal,
}

/// An error with its chain of context, outermost first when displayed.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    context: Vec<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            context: Vec::new(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }

    pub fn source(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Source, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{what}: {err}"))
    }

    /// Wraps a PostgreSQL client error, keeping the server's message and SQLSTATE hint.
    pub fn pg(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => Error::server(db.severity(), db.message(), db.hint()),
            None => Error::source(chain_text(&err)),
        }
    }

    /// An error the server reported: its severity, message and hint, as [`Error::pg`] shows them.
    pub fn server(severity: &str, message: &str, hint: Option<&str>) -> Self {
        let mut e = Error::source(format!("{}: {message}", severity.to_lowercase()));
        e.hint = hint.map(str::to_string);
        e
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds an outer clause ("reading public.orders from target").
    pub fn context(mut self, clause: impl Into<String>) -> Self {
        self.context.push(clause.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for clause in self.context.iter().rev() {
            write!(f, "{clause}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<crate::shape::ValueError> for Error {
    fn from(err: crate::shape::ValueError) -> Self {
        Error::internal(err.to_string())
    }
}

/// Joins an error and its sources into one line, skipping repeats.
fn chain_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// Extension to add context to results in one call.
pub trait Context<T> {
    fn context(self, clause: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, clause: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.context(clause()))
    }
}

impl<T> Context<T> for std::result::Result<T, tokio_postgres::Error> {
    fn context(self, clause: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::pg(e).context(clause()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_context_outermost_first() {
        let e = Error::source("connection reset")
            .context("range [1000, 2000)")
            .context("reading public.orders from target");
        assert_eq!(
            e.to_string(),
            "reading public.orders from target: range [1000, 2000): connection reset"
        );
    }
}
