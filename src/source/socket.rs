//! The socket under one session: TCP (with keepalives) or a Unix socket, read through a buffer.
//!
//! tokio-postgres reads its socket 8 KiB at a time. On a binary COPY stream of a few hundred MB/s
//! that is tens of thousands of `recv` calls and wake-ups a second per session, all of them taken
//! from the servers' CPU when they share the machine. Opening the socket here and handing it to
//! `connect_raw` behind a 256 KiB read buffer lets one call take whatever the kernel holds.
//! Addresses are resolved and tried in turn like libpq does, within `connect_timeout`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::conninfo::ConnInfo;

/// Bytes read from the kernel at once.
const READ_BUFFER: usize = 256 * 1024;

/// What a session's protocol runs over.
pub type Stream = BufReader<Socket>;

/// A connected socket of either kind.
#[derive(Debug)]
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Connects to the host of `info`: a directory (starting with `/`) names a Unix socket's
/// directory, anything else a host name or address.
pub async fn open(info: &ConnInfo) -> io::Result<Stream> {
    let timeout = Duration::from_secs(info.connect_timeout.unwrap_or(30).max(1));
    let socket = tokio::time::timeout(timeout, connect(info))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timeout expired"))??;
    Ok(BufReader::with_capacity(READ_BUFFER, socket))
}

async fn connect(info: &ConnInfo) -> io::Result<Socket> {
    if info.host.starts_with('/') {
        let path = format!("{}/.s.PGSQL.{}", info.host, info.port);
        return match UnixStream::connect(&path).await {
            Ok(stream) => Ok(Socket::Unix(stream)),
            Err(e) => Err(io::Error::new(e.kind(), format!("socket {path}: {e}"))),
        };
    }
    let stream = TcpStream::connect((info.host.as_str(), info.port)).await?;
    stream.set_nodelay(true)?;
    // A session can sit idle for a long time while others stream: keepalives notice a vanished
    // server instead of waiting forever.
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(30));
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(Socket::Tcp(stream))
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
