//! The socket under one session: TCP (with keepalives) or a Unix socket, read through a buffer,
//! with a tap that lets a COPY stream be read off it directly.
//!
//! tokio-postgres reads its socket 8 KiB at a time. On a binary COPY stream of a few hundred MB/s
//! that is tens of thousands of `recv` calls and wake-ups a second per session, all of them taken
//! from the servers' CPU when they share the machine. Opening the socket here and handing it to
//! `connect_raw` behind a 256 KiB read buffer lets one call take whatever the kernel holds.
//! Addresses are resolved and tried in turn like libpq does, within `connect_timeout`.
//!
//! Even so, tokio-postgres turns every row of a COPY into a message object, a reference-counted
//! buffer and a hop from its connection task to the reader: a sixth of the client's CPU on a
//! baseline, which on a 2-core machine is taken from the servers. The [`Tap`] lets the reader
//! take the socket over for one statement ([`Tap::divert`]): while diverted, the connection task
//! is parked (its reads and writes wait), the reader writes the query and reads the replies up to
//! `ReadyForQuery` itself, then hands the socket back with whatever it read beyond. Reads of the
//! connection task happen under the tap's lock, so a diversion never races a read in flight. A
//! reader dropped midway breaks the session (the connection task sees an error) rather than
//! leaving the protocol out of step. The socket itself moves: it lives under the tap's lock, and a
//! diversion takes it out and puts it back, so each side reads it with tokio's own `poll_read`.
//! Encrypted sessions are not tapped: the bytes on the socket are TLS records.
//!
//! The server flushes a COPY stream 8 KiB at a time, and each flush woke the reader: a hundred
//! thousand context switches on a 1e7-row baseline, a fifth of the client's CPU. Once a
//! statement's replies run past [`HOT_AFTER`], a diversion raises the socket's low-water mark
//! (`SO_RCVLOWAT`) so that the kernel wakes the reader only when half a megabyte is waiting, and
//! a short timer catches the statement's tail, which stays below the mark. The mark comes down
//! before the socket goes back, or the session's next short reply would never be reported.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::conninfo::ConnInfo;

/// Bytes read from the kernel at once.
const READ_BUFFER: usize = 256 * 1024;

/// A diverted read wakes only once the kernel holds this much (`SO_RCVLOWAT`)...
const LOW_WATER: i32 = 512 * 1024;
/// ...or this long has passed, whichever comes first: the tail of a statement never reaches the
/// mark, and at a few hundred MB/s this is a few hundred KB.
const LOW_WATER_WAIT: Duration = Duration::from_millis(2);
/// A statement's replies are read with a low-water mark once this much has come in, so short
/// statements are never delayed.
const HOT_AFTER: usize = 1 << 20;

/// What a session's protocol runs over.
pub type Stream = BufReader<Socket>;

/// The connection task's side of a session's socket.
#[derive(Debug)]
pub struct Socket {
    tap: Tap,
}

/// A connected socket of either kind.
#[derive(Debug)]
enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// The handle through which a reader takes a session's socket over for one statement.
#[derive(Clone, Debug)]
pub struct Tap {
    state: Arc<Mutex<TapState>>,
}

#[derive(Debug, Default)]
struct TapState {
    /// The socket, while the connection task has it: `None` during a diversion, and for good
    /// once one broke the session.
    io: Option<Io>,
    /// A reader has the socket.
    diverted: bool,
    encrypted: bool,
    /// Bytes a diversion read past the end of its statement, for the connection task.
    leftover: BytesMut,
    /// The connection task, to wake when a diversion ends.
    parked: Option<Waker>,
}

/// Where the socket is, as the connection task finds it.
enum Holder<'a> {
    Here(&'a mut Io),
    Diverted,
    Broken,
}

impl TapState {
    fn holder(&mut self) -> Holder<'_> {
        match (&mut self.io, self.diverted) {
            (Some(io), _) => Holder::Here(io),
            (None, true) => Holder::Diverted,
            (None, false) => Holder::Broken,
        }
    }
}

/// Connects to the host of `info`: a directory (starting with `/`) names a Unix socket's
/// directory, anything else a host name or address.
pub async fn open(info: &ConnInfo) -> io::Result<(Stream, Tap)> {
    let timeout = Duration::from_secs(info.connect_timeout.unwrap_or(30).max(1));
    let io = tokio::time::timeout(timeout, connect(info))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timeout expired"))??;
    let tap = Tap {
        state: Arc::new(Mutex::new(TapState {
            io: Some(io),
            ..TapState::default()
        })),
    };
    let socket = Socket { tap: tap.clone() };
    Ok((BufReader::with_capacity(READ_BUFFER, socket), tap))
}

async fn connect(info: &ConnInfo) -> io::Result<Io> {
    if info.host.starts_with('/') {
        let path = format!("{}/.s.PGSQL.{}", info.host, info.port);
        return match UnixStream::connect(&path).await {
            Ok(stream) => Ok(Io::Unix(stream)),
            Err(e) => Err(io::Error::new(e.kind(), format!("socket {path}: {e}"))),
        };
    }
    let stream = TcpStream::connect((info.host.as_str(), info.port)).await?;
    stream.set_nodelay(true)?;
    // A session can sit idle for a long time while others stream: keepalives notice a vanished
    // server instead of waiting forever.
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(30));
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(Io::Tcp(stream))
}

impl Tap {
    fn lock(&self) -> MutexGuard<'_, TapState> {
        // A panic while holding the lock leaves only plain fields behind: still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the session as encrypted: its socket carries TLS records, never to be tapped.
    pub fn set_encrypted(&self) {
        self.lock().encrypted = true;
    }

    /// Whether [`Tap::divert`] would take the socket: not encrypted, diverted or broken.
    pub fn tappable(&self) -> bool {
        let state = self.lock();
        !state.encrypted && state.io.is_some()
    }

    /// Takes the socket over for one statement, or `None` when the session is encrypted (or
    /// already diverted or broken). The caller must have no request of the session's client in
    /// flight: everything sent before has been answered up to its `ReadyForQuery`, which
    /// [`super::Session::divert`] makes sure of.
    pub fn divert(&self) -> Option<Diverted> {
        let mut state = self.lock();
        if state.encrypted {
            return None;
        }
        let io = state.io.take()?;
        state.diverted = true;
        let leftover = std::mem::take(&mut state.leftover);
        Some(Diverted {
            tap: self.clone(),
            io: Some(io),
            leftover,
            read: 0,
            low_water: false,
        })
    }

    /// Remembers the connection task's waker (cloned only when it changed).
    fn park(state: &mut TapState, cx: &Context<'_>) {
        if !state
            .parked
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.parked = Some(cx.waker().clone());
        }
    }

    fn wake_connection(state: &mut TapState) {
        if let Some(waker) = state.parked.take() {
            waker.wake();
        }
    }
}

/// The socket while a reader has it: bytes go straight between the reader and the kernel.
#[derive(Debug)]
pub struct Diverted {
    tap: Tap,
    /// `None` once handed back.
    io: Option<Io>,
    /// Bytes the connection task had left unread when the diversion began (normally none).
    leftover: BytesMut,
    /// Bytes read so far in this diversion.
    read: usize,
    /// The socket's low-water mark is raised (and must come down before it goes back).
    low_water: bool,
}

impl Diverted {
    fn io(&mut self) -> &mut Io {
        self.io
            .as_mut()
            .expect("a diversion holds its socket until it ends")
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io().write_all(bytes).await
    }

    /// Appends what the kernel holds to `buf` (at least one byte; 0 at the end of the stream).
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if !self.leftover.is_empty() {
            let n = self.leftover.len();
            buf.extend_from_slice(&self.leftover);
            self.leftover.clear();
            return Ok(n);
        }
        if !self.low_water && self.read >= HOT_AFTER {
            if let Some(Io::Tcp(s)) = &self.io {
                set_low_water(s, LOW_WATER)?;
                self.low_water = true;
            }
        }
        let n = match (self.low_water, self.io()) {
            (true, Io::Tcp(s)) => read_coalesced(s, buf).await?,
            (_, io) => io.read_buf(buf).await?,
        };
        self.read += n;
        Ok(n)
    }

    /// Hands the socket back to the connection task, with the bytes read past the statement's
    /// `ReadyForQuery` (which belong to it).
    pub fn finish(mut self, beyond: &[u8]) {
        let mut io = self.io.take();
        if let (true, Some(Io::Tcp(s))) = (self.low_water, &io) {
            // A socket left with a raised mark would stall the session's next short reply: one
            // that cannot be lowered is not handed back (the session reports it closed).
            if set_low_water(s, 1).is_err() {
                io = None;
            }
        }
        let mut state = self.tap.lock();
        state.io = io;
        state.diverted = false;
        state.leftover.extend_from_slice(&self.leftover);
        state.leftover.extend_from_slice(beyond);
        Tap::wake_connection(&mut state);
    }
}

impl Drop for Diverted {
    fn drop(&mut self) {
        if self.io.is_none() {
            return;
        }
        // The statement's replies were not read to their end: nothing can tell where the next
        // reply would start, so the session ends here (the socket closes with `io`), and its
        // client reports a closed connection.
        self.io = None;
        let mut state = self.tap.lock();
        state.diverted = false;
        Tap::wake_connection(&mut state);
    }
}

/// Sets `SO_RCVLOWAT`: the kernel then reports the socket readable, and wakes its poller, only
/// once it holds `bytes` (or the stream ended).
fn set_low_water(stream: &TcpStream, bytes: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain integer option on a socket this stream owns for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// One read of a socket with a raised low-water mark: it waits for the mark or for
/// [`LOW_WATER_WAIT`], then takes whatever the kernel holds. The read goes to the kernel
/// directly: tokio's own `try_read` does not call it until the poller reported the socket
/// readable, which below the mark it never does.
async fn read_coalesced(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    use bytes::BufMut;
    loop {
        if let Ok(ready) = tokio::time::timeout(LOW_WATER_WAIT, stream.readable()).await {
            ready?;
        }
        if buf.capacity() == buf.len() {
            buf.reserve(READ_BUFFER);
        }
        let spare = buf.chunk_mut();
        // SAFETY: `UninitSlice` is a view of `buf`'s spare capacity; recv only writes into it.
        let room = unsafe { spare.as_uninit_slice_mut() };
        let got = socket2::SockRef::from(stream).recv(room);
        // Clears tokio's readiness, so that the next wait sleeps until the poller reports the
        // mark reached (or the wait runs out) instead of taking a few bytes at once.
        let _ = stream.try_io(Interest::READABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
        match got {
            Ok(n) => {
                // SAFETY: the kernel initialized the first `n` bytes of the spare capacity.
                unsafe { buf.advance_mut(n) };
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The error the connection task sees on a session a diversion broke.
fn broken() -> io::Error {
    io::Error::other("the session was closed after a COPY stream was abandoned midway")
}

/// Runs `op` on the socket when the connection task has it; waits out a diversion (woken at its
/// end, which may have taken the socket's readiness registration over); fails on a broken
/// session.
fn poll_socket<R>(
    state: &mut TapState,
    cx: &mut Context<'_>,
    op: impl FnOnce(Pin<&mut Io>, &mut Context<'_>) -> Poll<io::Result<R>>,
) -> Poll<io::Result<R>> {
    Tap::park(state, cx);
    match state.holder() {
        Holder::Here(io) => op(Pin::new(io), cx),
        Holder::Diverted => Poll::Pending,
        Holder::Broken => Poll::Ready(Err(broken())),
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.tap.lock();
        if !state.leftover.is_empty() {
            let n = state.leftover.len().min(buf.remaining());
            buf.put_slice(&state.leftover.split_to(n));
            return Poll::Ready(Ok(()));
        }
        // The read happens under the lock, so a diversion starts either before it (and this
        // read waits) or after it (and finds no read in flight).
        poll_socket(&mut state, cx, |io, cx| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_socket(&mut self.tap.lock(), cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.lock().io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.lock().io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
