//! One `COPY … TO STDOUT` statement read straight off a session's socket (see [`super::socket`]):
//! the query goes out as a simple-protocol `Query`, and the replies are framed here, the rows'
//! bytes passed on without a message object each.
//!
//! [`Replies`] is the sans-I/O part: given the bytes at the front of the read buffer it walks the
//! complete messages, hands every `CopyData` payload to the caller, keeps the first
//! `ErrorResponse`, skips what may arrive at any time (notices, parameter changes,
//! notifications), and stops at `ReadyForQuery`, where the session is in step again.
//! [`TappedCopy`] drives it: it reads the socket into one buffer, walks it, and at the end hands
//! the socket back to the connection task with whatever followed the statement.

use bytes::{Buf, BytesMut};
use postgres_protocol::message::frontend;

use super::socket::Diverted;
use crate::error::{Error, Result};
use crate::shape::ValueError;

/// Room made in the read buffer before each read; the buffer is twice that, so the room is made
/// by moving a partial message to its front rather than by allocating.
const READ_SPACE: usize = 256 * 1024;

/// Where a statement's replies stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before `CopyOutResponse`.
    Starting,
    /// Between `CopyOutResponse` and `CopyDone`.
    Copying,
    /// After `CopyDone`, until `ReadyForQuery`.
    Done,
}

/// The replies to one `COPY … TO STDOUT` statement, walked as their bytes arrive.
#[derive(Debug)]
pub struct Replies {
    phase: Phase,
    /// The first error the server reported; the statement still ends at `ReadyForQuery`.
    failed: Option<Error>,
}

/// How far one walk got.
#[derive(Debug, PartialEq, Eq)]
pub struct Walked {
    /// Bytes of complete messages walked.
    pub consumed: usize,
    /// `ReadyForQuery` was reached: the statement is over, and `consumed` ends with it.
    pub ready: bool,
    /// The size of the incomplete message that follows, when its header is in (so the buffer
    /// can be made big enough for it).
    pub incomplete: Option<usize>,
}

impl Default for Replies {
    fn default() -> Self {
        Replies {
            phase: Phase::Starting,
            failed: None,
        }
    }
}

impl Replies {
    /// Walks the complete messages at the front of `buf`, passing each row payload to `data`.
    /// An error here (a message out of place, or one `data` refuses) leaves the protocol out of
    /// step: the session cannot be used again.
    pub fn walk(
        &mut self,
        buf: &[u8],
        data: &mut impl FnMut(&[u8]) -> Result<(), ValueError>,
    ) -> Result<Walked> {
        let mut pos = 0;
        loop {
            let Some(header) = buf.get(pos..pos + 5) else {
                return Ok(self.walked(pos, false, None));
            };
            let tag = header[0];
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l >= 4)
                .ok_or_else(|| protocol(format!("a message of length {len}")))?;
            let Some(body) = buf.get(pos + 5..pos + 1 + len) else {
                return Ok(self.walked(pos, false, Some(1 + len)));
            };
            pos += 1 + len;
            if self.message(tag, body, data)? {
                return Ok(self.walked(pos, true, None));
            }
        }
    }

    fn walked(&self, consumed: usize, ready: bool, incomplete: Option<usize>) -> Walked {
        Walked {
            consumed,
            ready,
            incomplete,
        }
    }

    /// Takes one message; whether it was `ReadyForQuery`.
    fn message(
        &mut self,
        tag: u8,
        body: &[u8],
        data: &mut impl FnMut(&[u8]) -> Result<(), ValueError>,
    ) -> Result<bool> {
        match (tag, self.phase) {
            (b'd', Phase::Copying) => data(body).map_err(Error::from)?,
            (b'H', Phase::Starting) => {
                if body.first() != Some(&1) {
                    return Err(protocol("a COPY in text format where binary was asked for"));
                }
                self.phase = Phase::Copying;
            }
            (b'c', Phase::Copying) => self.phase = Phase::Done,
            (b'E', phase) => {
                let error = server_error(body);
                // Refused before any row (no such table, no privilege) reads as tokio-postgres's
                // errors of the same kind do.
                let error = match phase {
                    Phase::Starting => error.context("starting COPY"),
                    _ => error,
                };
                self.failed.get_or_insert(error);
            }
            // CommandComplete; and what the server may send at any time: notices, parameter
            // changes, notifications.
            (b'C' | b'N' | b'S' | b'A', _) => {}
            (b'Z', phase) => {
                if phase != Phase::Done && self.failed.is_none() {
                    return Err(protocol("the statement ended without a complete COPY"));
                }
                return Ok(true);
            }
            (tag, phase) => {
                return Err(protocol(format!(
                    "message '{}' while {phase:?}",
                    char::from(tag).escape_default()
                )))
            }
        }
        Ok(false)
    }

    /// What the statement came to, once `ReadyForQuery` was walked.
    pub fn outcome(&mut self) -> Result<()> {
        self.failed.take().map_or(Ok(()), Err)
    }
}

fn protocol(what: impl std::fmt::Display) -> Error {
    Error::source(format!("protocol error in a COPY's replies: {what}"))
        .with_hint("the server sent what PostgreSQL's protocol does not allow here; is it PostgreSQL, or a proxy in between?")
}

/// An `ErrorResponse`'s severity, message and hint, shown like tokio-postgres's errors are.
fn server_error(body: &[u8]) -> Error {
    let (mut severity, mut message, mut hint) = ("ERROR".to_string(), String::new(), None);
    let mut fields = body;
    while let Some((&kind, rest)) = fields.split_first() {
        if kind == 0 {
            break;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        match kind {
            b'S' => severity = value,
            b'M' => message = value,
            b'H' => hint = Some(value),
            _ => {}
        }
        fields = rest.get(end + 1..).unwrap_or_default();
    }
    Error::server(&severity, &message, hint.as_deref())
}

/// A statement in flight on a diverted session.
#[derive(Debug)]
pub struct TappedCopy {
    /// `None` once the statement ended and the socket went back.
    socket: Option<Diverted>,
    buf: BytesMut,
    replies: Replies,
}

impl TappedCopy {
    /// Sends `query` (a `COPY … TO STDOUT (FORMAT binary)`) on the diverted session.
    pub async fn start(mut socket: Diverted, query: &str) -> Result<TappedCopy> {
        let mut message = BytesMut::new();
        frontend::query(query, &mut message)
            .map_err(|e| Error::usage(format!("the COPY statement cannot be sent: {e}")))?;
        socket
            .write_all(&message)
            .await
            .map_err(|e| Error::source(format!("sending the COPY statement: {e}")))?;
        Ok(TappedCopy {
            socket: Some(socket),
            buf: BytesMut::with_capacity(2 * READ_SPACE),
            replies: Replies::default(),
        })
    }

    /// Reads what the socket holds and passes every row payload in it to `data`; `false` once
    /// the statement has ended (and the socket is back with the session).
    pub async fn feed(
        &mut self,
        data: &mut impl FnMut(&[u8]) -> Result<(), ValueError>,
    ) -> Result<bool> {
        let Some(socket) = self.socket.as_mut() else {
            return Ok(false);
        };
        let read = socket
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Error::source(format!("reading a COPY stream: {e}")))?;
        if read == 0 {
            return Err(
                Error::source("the server closed the connection during a COPY").with_hint(
                    "the server may have restarted or terminated the session; see its log",
                ),
            );
        }
        let walked = self.replies.walk(&self.buf, data)?;
        if walked.ready {
            let socket = self.socket.take().expect("checked above");
            socket.finish(&self.buf[walked.consumed..]);
            self.buf = BytesMut::new();
            self.replies.outcome()?;
            return Ok(false);
        }
        self.buf.advance(walked.consumed);
        // Room for the next read, and for all of a message longer than that. Asking for no more
        // than the allocation can give once the partial message is moved to its front keeps the
        // one allocation: a new one per read cost a sixth of the client's CPU in page faults.
        let missing = walked.incomplete.map_or(0, |size| size - self.buf.len());
        let want = missing.max(READ_SPACE);
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// The replies to a COPY of two rows, with a notice and a parameter change among them.
    fn replies() -> Vec<u8> {
        [
            message(b'H', &[1, 0, 1, 0, 1]),
            message(b'd', b"row one"),
            message(b'N', b"SNOTICE\0Mhello\0\0"),
            message(b'd', b"row two"),
            message(b'S', b"in_hot_standby\0on\0"),
            message(b'c', b""),
            message(b'C', b"COPY 2\0"),
            message(b'Z', b"T"),
        ]
        .concat()
    }

    fn walk_all(stream: &[u8], step: usize) -> (Vec<Vec<u8>>, Result<usize>) {
        let mut replies = Replies::default();
        let mut rows = Vec::new();
        let mut start = 0;
        let mut end = 0;
        loop {
            end = (end + step).min(stream.len());
            let walked = replies.walk(&stream[start..end], &mut |row| {
                rows.push(row.to_vec());
                Ok(())
            });
            let walked = match walked {
                Ok(w) => w,
                Err(e) => return (rows, Err(e)),
            };
            start += walked.consumed;
            if walked.ready {
                return (rows, replies.outcome().map(|()| start));
            }
            if end == stream.len() {
                return (rows, Err(Error::internal("stream ended early")));
            }
        }
    }

    #[test]
    fn walks_any_split_of_the_replies_and_stops_at_ready_for_query() {
        let mut stream = replies();
        let statement = stream.len();
        stream.extend_from_slice(&message(b'A', b"later"));
        for step in 1..stream.len() {
            let (rows, end) = walk_all(&stream, step);
            assert_eq!(
                rows,
                [b"row one".to_vec(), b"row two".to_vec()],
                "step {step}"
            );
            assert_eq!(end.unwrap(), statement, "step {step}");
        }
    }

    #[test]
    fn reports_the_server_error_after_ready_for_query() {
        let stream = [
            message(b'H', &[1, 0, 1, 0, 1]),
            message(b'd', b"row one"),
            message(
                b'E',
                b"SERROR\0VERROR\0C57014\0Mcanceling statement due to user request\0Htry again\0\0",
            ),
            message(b'Z', b"E"),
        ]
        .concat();
        let (rows, end) = walk_all(&stream, 7);
        assert_eq!(rows.len(), 1);
        let err = end.unwrap_err();
        assert_eq!(
            err.to_string(),
            "error: canceling statement due to user request"
        );
        assert_eq!(err.hint(), Some("try again"));
    }

    #[test]
    fn refuses_messages_out_of_place() {
        for stream in [
            // rows before the COPY began, a text COPY, a statement that was no COPY, a bad length
            [message(b'd', b"x"), message(b'Z', b"I")].concat(),
            [message(b'H', &[0, 0, 0]), message(b'Z', b"I")].concat(),
            [message(b'C', b"SELECT 1\0"), message(b'Z', b"I")].concat(),
            [message(b'H', &[1, 0, 0]), message(b'T', b"")].concat(),
            vec![b'd', 0, 0, 0, 2],
        ] {
            let (_, end) = walk_all(&stream, stream.len());
            let err = end.unwrap_err().to_string();
            assert!(err.contains("protocol error"), "{err}");
        }
    }

    #[test]
    fn says_how_long_an_incomplete_message_is() {
        let stream = message(b'd', &[7; 1000]);
        let walked = Replies::default()
            .walk(&stream[..100], &mut |_| Ok(()))
            .unwrap();
        assert_eq!(
            walked,
            Walked {
                consumed: 0,
                ready: false,
                incomplete: Some(1005)
            }
        );
    }
}
