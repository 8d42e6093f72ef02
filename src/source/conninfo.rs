//! Connection strings the way libpq users expect them.
//!
//! tokio-postgres parses URIs and `key=value` strings but knows only a few keys, reads no `PG*`
//! environment variables and no `.pgpass`, and has no `verify-ca`/`verify-full`. This module is the
//! thin libpq-compatible layer in front of it: it parses either form, fills what is missing from the
//! environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`, `PGPASSFILE`) and from `.pgpass`, and
//! produces a [`ConnInfo`] whose `Display` never shows the password. Pure: the environment and the
//! files come in through [`Env`], so tests need no process state.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// How hard to insist on TLS, as libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::usage(format!("invalid sslmode \"{other}\""))
                    .with_hint("use disable, allow, prefer, require, verify-ca or verify-full"))
            }
        })
    }
}

/// A resolved connection description.
#[derive(Clone, PartialEq)]
pub struct ConnInfo {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<String>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    pub connect_timeout: Option<u64>,
    pub application_name: String,
}

impl ConnInfo {
    /// Whether the server is on this machine: a Unix socket or a loopback address.
    pub fn is_local(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.starts_with('/')
            || host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({self})")
    }
}

/// `user@host:port/db`, never the password.
impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

/// What the process environment contributes; a trait so tests can supply their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &str) -> Option<String>;
    fn home(&self) -> Option<String>;
    fn os_user(&self) -> String;
}

/// The real environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn read_file(&self, path: &str) -> Option<String> {
        pgpass_readable(path)
            .then(|| std::fs::read_to_string(path).ok())
            .flatten()
    }
    fn home(&self) -> Option<String> {
        self.var("HOME")
    }
    fn os_user(&self) -> String {
        self.var("USER")
            .or_else(|| self.var("LOGNAME"))
            .unwrap_or_else(|| "postgres".into())
    }
}

/// libpq ignores a password file that group or others can read; so do we.
fn pgpass_readable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o077 == 0,
        Err(_) => false,
    }
}

/// Parses a URI or `key=value` string and completes it from the environment.
pub fn resolve(text: &str, env: &dyn Env) -> Result<ConnInfo> {
    let params = if text.starts_with("postgresql://") || text.starts_with("postgres://") {
        parse_uri(text)?
    } else {
        parse_keyvalue(text)?
    };
    complete(params, env)
}

fn complete(mut p: BTreeMap<String, String>, env: &dyn Env) -> Result<ConnInfo> {
    let mut take = |key: &str, var: &str| p.remove(key).or_else(|| env.var(var));
    let host = take("host", "PGHOST").unwrap_or_else(default_socket_dir);
    let port = take("port", "PGPORT").unwrap_or_else(|| "5432".into());
    let port = port.parse::<u16>().map_err(|_| {
        Error::usage(format!("invalid port \"{port}\"")).with_hint("a port is a number 1-65535")
    })?;
    let user = take("user", "PGUSER").unwrap_or_else(|| env.os_user());
    let dbname = take("dbname", "PGDATABASE").unwrap_or_else(|| user.clone());
    let password = take("password", "PGPASSWORD");
    let sslmode = SslMode::parse(&take("sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".into()))?;
    let sslrootcert = take("sslrootcert", "PGSSLROOTCERT");
    let connect_timeout = take("connect_timeout", "PGCONNECT_TIMEOUT")
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| Error::usage(format!("invalid connect_timeout \"{t}\"")))
        })
        .transpose()?;
    let application_name =
        take("application_name", "PGAPPNAME").unwrap_or_else(|| "pgsalvage".into());
    let passfile = take("passfile", "PGPASSFILE");
    reject_unknown(&p)?;
    let mut info = ConnInfo {
        host,
        port,
        user,
        dbname,
        password,
        sslmode,
        sslrootcert,
        connect_timeout,
        application_name,
    };
    if info.password.is_none() {
        info.password = pgpass_lookup(&info, passfile, env);
    }
    Ok(info)
}

/// Keys libpq knows that change nothing for a read-only client are accepted and ignored; anything
/// else is a typo worth stopping for.
fn reject_unknown(rest: &BTreeMap<String, String>) -> Result<()> {
    const IGNORED: &[&str] = &[
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "gssencmode",
        "sslcert",
        "sslkey",
        "sslcompression",
        "client_encoding",
        "fallback_application_name",
        "hostaddr",
    ];
    match rest.keys().find(|k| !IGNORED.contains(&k.as_str())) {
        Some(key) => Err(
            Error::usage(format!("unknown connection parameter \"{key}\"")).with_hint(
                "use libpq names: host, port, user, password, dbname, sslmode, sslrootcert",
            ),
        ),
        None => Ok(()),
    }
}

fn default_socket_dir() -> String {
    let debian = "/var/run/postgresql";
    if std::path::Path::new(debian).is_dir() {
        debian.into()
    } else {
        "/tmp".into()
    }
}

/// Finds a password in a `.pgpass` file: `host:port:db:user:password`, `*` matches anything,
/// `\:` and `\\` escape.
fn pgpass_lookup(info: &ConnInfo, passfile: Option<String>, env: &dyn Env) -> Option<String> {
    let path = passfile.or_else(|| env.home().map(|h| format!("{h}/.pgpass")))?;
    let text = env.read_file(&path)?;
    let port = info.port.to_string();
    let host = if info.host.starts_with('/') {
        "localhost"
    } else {
        info.host.as_str()
    };
    let wanted = [
        host,
        port.as_str(),
        info.dbname.as_str(),
        info.user.as_str(),
    ];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(split_pgpass_line)
        .find(|fields| {
            fields.len() == 5 && fields.iter().zip(wanted).all(|(f, w)| f == "*" || f == w)
        })
        .map(|mut fields| fields.pop().unwrap_or_default())
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// `postgresql://user:pass@host:port/db?key=value`, percent-decoded.
fn parse_uri(text: &str) -> Result<BTreeMap<String, String>> {
    let bad = |why: &str| {
        Error::usage(format!("invalid connection URI: {why}"))
            .with_hint("expected postgresql://user:password@host:port/dbname?sslmode=...")
    };
    let rest = text
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| bad("no scheme"))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut p = BTreeMap::new();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let (user, pass) = userinfo
            .split_once(':')
            .map_or((userinfo, None), |(u, p)| (u, Some(p)));
        insert_nonempty(
            &mut p,
            "user",
            &percent_decode(user).ok_or_else(|| bad("bad escape"))?,
        );
        if let Some(pass) = pass {
            p.insert(
                "password".into(),
                percent_decode(pass).ok_or_else(|| bad("bad escape"))?,
            );
        }
    }
    let (host, port) = split_host_port(hostport).ok_or_else(|| bad("bad host or port"))?;
    insert_nonempty(
        &mut p,
        "host",
        &percent_decode(host).ok_or_else(|| bad("bad escape"))?,
    );
    insert_nonempty(&mut p, "port", port);
    insert_nonempty(
        &mut p,
        "dbname",
        &percent_decode(path).ok_or_else(|| bad("bad escape"))?,
    );
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad("query parameter without '='"))?;
        let v = percent_decode(v).ok_or_else(|| bad("bad escape"))?;
        p.insert(k.to_string(), v);
    }
    Ok(p)
}

fn insert_nonempty(p: &mut BTreeMap<String, String>, key: &str, value: &str) {
    if !value.is_empty() {
        p.insert(key.into(), value.into());
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `:port`.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').unwrap_or(after);
        return Some((host, port));
    }
    Some(text.rsplit_once(':').unwrap_or((text, "")))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `host=a port=5 password='it''s' dbname=x`: values may be single-quoted with `\'` and `\\`.
fn parse_keyvalue(text: &str) -> Result<BTreeMap<String, String>> {
    let bad = |why: String| {
        Error::usage(format!("invalid connection string: {why}")).with_hint(
            "expected a URI (postgresql://host/db) or key=value pairs (host=... dbname=...)",
        )
    };
    let mut p = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(p);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(format!("\"{key}\" has no value")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let value = read_value(&mut chars)
            .ok_or_else(|| bad(format!("unterminated quote in \"{key}\"")))?;
        p.insert(key, value);
    }
}

fn read_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut value = String::new();
    if chars.next_if_eq(&'\'').is_none() {
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            value.push(if c == '\\' { chars.next()? } else { c });
        }
        return Some(value);
    }
    loop {
        match chars.next()? {
            '\\' => value.push(chars.next()?),
            '\'' => return Some(value),
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_local_on_a_socket_or_a_loopback_address() {
        let local = |url: &str| resolve(url, &FakeEnv::default()).unwrap().is_local();
        assert!(local("postgresql:///x?host=/tmp/sock"));
        assert!(local("postgresql://localhost/x"));
        assert!(local("postgresql://127.0.0.2/x"));
        assert!(local("postgresql://[::1]:5433/x"));
        assert!(!local("postgresql://10.0.0.5/x"));
        assert!(!local("postgresql://db.example.com/x"));
    }

    #[derive(Default)]
    struct FakeEnv {
        vars: BTreeMap<String, String>,
        pgpass: Option<String>,
    }

    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn read_file(&self, path: &str) -> Option<String> {
            (path == "/home/u/.pgpass")
                .then(|| self.pgpass.clone())
                .flatten()
        }
        fn home(&self) -> Option<String> {
            Some("/home/u".into())
        }
        fn os_user(&self) -> String {
            "osuser".into()
        }
    }

    #[test]
    fn parses_uri_with_everything() {
        let info = resolve(
            "postgresql://al%40ice:p%3Ass@db.example:6543/app%20db?sslmode=require&application_name=x",
            &FakeEnv::default(),
        )
        .unwrap();
        assert_eq!(info.user, "al@ice");
        assert_eq!(info.password.as_deref(), Some("p:ss"));
        assert_eq!((info.host.as_str(), info.port), ("db.example", 6543));
        assert_eq!(info.dbname, "app db");
        assert_eq!(info.sslmode, SslMode::Require);
        assert_eq!(info.to_string(), "al@ice@db.example:6543/app db");
        assert!(!format!("{info:?}").contains("p:ss"));
    }

    #[test]
    fn parses_ipv6_and_socket_hosts() {
        let info = resolve("postgresql://[::1]:5433/x", &FakeEnv::default()).unwrap();
        assert_eq!((info.host.as_str(), info.port), ("::1", 5433));
        let info = resolve("postgresql:///x?host=/tmp/sock", &FakeEnv::default()).unwrap();
        assert_eq!(info.host, "/tmp/sock");
    }

    #[test]
    fn parses_keyvalue_with_quotes() {
        let info = resolve(
            r"host=h port=1 dbname='my db' password='it\'s'",
            &FakeEnv::default(),
        )
        .unwrap();
        assert_eq!(info.dbname, "my db");
        assert_eq!(info.password.as_deref(), Some("it's"));
        assert_eq!(info.user, "osuser");
    }

    #[test]
    fn fills_from_environment_and_pgpass() {
        let mut env = FakeEnv::default();
        env.vars.insert("PGHOST".into(), "envhost".into());
        env.vars.insert("PGUSER".into(), "bob".into());
        env.pgpass = Some("# comment\nother:*:*:*:no\nenvhost:5432:*:bob:s\\:ecret\n".into());
        let info = resolve("dbname=app", &env).unwrap();
        assert_eq!(info.host, "envhost");
        assert_eq!(info.password.as_deref(), Some("s:ecret"));
    }

    #[test]
    fn rejects_bad_input_with_hints() {
        let env = FakeEnv::default();
        assert!(resolve("postgresql://h:notaport/db", &env)
            .unwrap_err()
            .to_string()
            .contains("invalid port"));
        assert!(resolve("host=h sslmode=maybe", &env)
            .unwrap_err()
            .to_string()
            .contains("sslmode"));
        assert!(resolve("host=h colour=blue", &env)
            .unwrap_err()
            .to_string()
            .contains("colour"));
        assert!(resolve("host=h dbname='x", &env).is_err());
        assert!(resolve("justaword", &env).is_err());
    }
}
