//! Opening one session to one source: TCP or Unix socket, TLS as `sslmode` asks, session settings.
//!
//! Every connection pgsalvage opens goes through [`connect`], so every session has the same
//! settings: UTC, ISO dates, no statement timeout, an application name that shows up in
//! `pg_stat_activity`. The connection task is spawned on the runtime and a lost connection surfaces
//! as an error on the next query, with the source's name attached by the caller.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};

use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{config::SslMode as PgSslMode, Client, Config, NoTls};

use super::conninfo::{ConnInfo, SslMode};
use super::socket::{self, Diverted, Tap};
use crate::error::{Error, Result};

/// The settings every session starts with, so that output functions and timeouts never depend
/// on the server's or the role's defaults. JIT is off: it compiles expressions of the queries the
/// planner finds costly, which ours are only through their output, and each compile takes 100 ms
/// and more of server time (measured on a fetch by key of 100 k rows: 535 ms with, 316 without).
const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET statement_timeout = 0; \
     SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
     SELECT set_config('jit', 'off', false) WHERE current_setting('jit', true) IS NOT NULL";

/// One session: its client, the tap its COPY readers can take its socket over with, and the
/// byte budget of its source that those readers are charged against (`--max-rate`).
pub struct Session {
    client: Client,
    tap: Tap,
    rate: Option<std::sync::Arc<super::throttle::RateLimit>>,
}

impl Session {
    pub fn tap(&self) -> &Tap {
        &self.tap
    }

    pub fn rate(&self) -> Option<&std::sync::Arc<super::throttle::RateLimit>> {
        self.rate.as_ref()
    }

    pub fn set_rate(&mut self, rate: Option<std::sync::Arc<super::throttle::RateLimit>>) {
        self.rate = rate;
    }

    /// Takes the session's socket over for one statement ([`Tap::divert`]), `None` when it is
    /// encrypted. First an empty query's round trip: tokio-postgres closes the statements it
    /// drops with messages it sends without waiting for their replies, and only a reply to a
    /// later request proves those read, and the connection task idle.
    pub async fn divert(&self) -> Result<Option<Diverted>> {
        if !self.tap.tappable() {
            return Ok(None);
        }
        self.client.batch_execute("").await.map_err(Error::pg)?;
        Ok(self.tap.divert())
    }
}

impl std::ops::Deref for Session {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Connects, starts the connection task and applies the session settings, all within
/// `connect_timeout` (libpq's meaning: the whole connection, not only the TCP handshake, so a
/// server that accepts and never answers is given up on; 30 s when not set, since an unattended
/// run must never hang silently).
pub async fn connect(info: &ConnInfo) -> Result<Session> {
    crate::log!(1, "connect {info}");
    let secs = info.connect_timeout.unwrap_or(30).max(1);
    match tokio::time::timeout(std::time::Duration::from_secs(secs), connect_now(info)).await {
        Ok(session) => session,
        Err(_) => Err(Error::source(format!(
            "cannot connect to {info}: no answer within {secs} s (connect_timeout)"
        ))
        .with_hint("check that a PostgreSQL server answers at that host and port; raise connect_timeout in the URL or PGCONNECT_TIMEOUT if it is slow")),
    }
}

async fn connect_now(info: &ConnInfo) -> Result<Session> {
    let config = pg_config(info);
    let (stream, tap) = socket::open(info).await.map_err(|e| {
        Error::source(format!("cannot connect to {info}: {e}"))
            .with_hint("check that the server is running and reachable at that host and port")
    })?;
    let client = match info.sslmode {
        SslMode::Disable => {
            let (client, conn) = config
                .connect_raw(stream, NoTls)
                .await
                .map_err(|e| connect_error(info, e))?;
            tokio::spawn(conn);
            client
        }
        _ => {
            let tls = LazyTls {
                info: info.clone(),
                tap: tap.clone(),
            };
            let (client, conn) = config
                .connect_raw(stream, tls)
                .await
                .map_err(|e| connect_error(info, e))?;
            tokio::spawn(conn);
            client
        }
    };
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(|e| connect_error(info, e))?;
    Ok(Session {
        client,
        tap,
        rate: None,
    })
}

fn pg_config(info: &ConnInfo) -> Config {
    let mut config = Config::new();
    config
        .host(&info.host)
        .port(info.port)
        .user(&info.user)
        .dbname(&info.dbname)
        .application_name(&info.application_name)
        .ssl_mode(match info.sslmode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
    if let Some(password) = &info.password {
        config.password(password);
    }
    config
}

/// The TLS side of a session, set up only when the server agrees to TLS. Building a connector
/// loads OpenSSL's certificate bundle whatever the settings (40 ms and more of CPU, measured), and
/// with `sslmode=prefer` (the default) against a server without TLS it would go unused.
struct LazyTls {
    info: ConnInfo,
    tap: Tap,
}

impl<S> TlsConnect<S> for LazyTls
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Stream = postgres_native_tls::TlsStream<S>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        // Called only when the server agreed to TLS: from here on the socket carries records.
        self.tap.set_encrypted();
        Box::pin(async move {
            let mut make = tls_connector(&self.info)?;
            let tls = MakeTlsConnect::<S>::make_tls_connect(&mut make, &self.info.host)?;
            Ok(tls.connect(stream).await?)
        })
    }
}

/// libpq semantics: `require` encrypts without checking the certificate (unless a root
/// certificate is given, which upgrades it to `verify-ca`), `verify-ca` checks the chain,
/// `verify-full` also the host name.
fn tls_connector(info: &ConnInfo) -> Result<MakeTlsConnector> {
    // Building a connector parses certificate stores: tens of milliseconds of CPU, which a run
    // opening a dozen sessions would pay a dozen times. One per TLS configuration serves all.
    type Cache = Mutex<HashMap<(String, Option<String>), MakeTlsConnector>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (format!("{:?}", info.sslmode), info.sslrootcert.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().expect("tls cache lock").get(&key) {
        return Ok(found.clone());
    }
    let made = build_tls_connector(info)?;
    cache
        .lock()
        .expect("tls cache lock")
        .insert(key, made.clone());
    Ok(made)
}

fn build_tls_connector(info: &ConnInfo) -> Result<MakeTlsConnector> {
    let mut builder = TlsConnector::builder();
    let verify_mode = matches!(info.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    // libpq trusts sslrootcert (default ~/.postgresql/root.crt), not the system store, unless
    // told `sslrootcert=system`; not loading the system bundle also saves parsing it per session.
    let root = match (info.sslrootcert.as_deref(), verify_mode) {
        (Some(path), _) => Some(path.to_string()),
        (None, true) => Some(default_root_cert()),
        (None, false) => None,
    };
    let system = root.as_deref() == Some("system");
    builder.disable_built_in_roots(!system);
    let verify_chain = verify_mode || (info.sslmode == SslMode::Require && root.is_some());
    if let Some(path) = root.as_deref().filter(|_| verify_chain && !system) {
        for cert in read_root_certs(path)? {
            builder.add_root_certificate(cert);
        }
    }
    builder.danger_accept_invalid_certs(!verify_chain);
    builder.danger_accept_invalid_hostnames(info.sslmode != SslMode::VerifyFull);
    let connector = builder
        .build()
        .map_err(|e| Error::source(format!("setting up TLS for {info}: {e}")))?;
    Ok(MakeTlsConnector::new(connector))
}

fn default_root_cert() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    format!("{home}/.postgresql/root.crt")
}

/// Every certificate of a PEM file (a root bundle may hold several).
fn read_root_certs(path: &str) -> Result<Vec<Certificate>> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::io(format!("reading sslrootcert {path}"), e).with_hint(
            "give the CA certificate with sslrootcert=/path/root.crt, or sslrootcert=system",
        )
    })?;
    Certificate::stack_from_pem(&pem)
        .map_err(|e| Error::usage(format!("sslrootcert {path} is not a PEM certificate: {e}")))
}

fn connect_error(info: &ConnInfo, err: tokio_postgres::Error) -> Error {
    let fallback = if err.as_db_error().is_some() {
        "check the user, password (.pgpass, PGPASSWORD) and database name"
    } else {
        "check that the server is running and reachable at that host and port"
    };
    let inner = Error::pg(err);
    let text = inner.to_string();
    let tls = ["TLS", "SSL", "certificate"]
        .iter()
        .any(|w| text.contains(w));
    let fallback = if tls {
        "check sslmode and sslrootcert: the server's TLS or its certificate did not match what was asked"
    } else {
        fallback
    };
    let hint = inner.hint().unwrap_or(fallback).to_string();
    Error::source(format!("cannot connect to {info}: {inner}")).with_hint(hint)
}
