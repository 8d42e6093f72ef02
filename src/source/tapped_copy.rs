//! One `COPY … TO STDOUT` statement read straight off a session's socket (see [`super::socket`]):
//! the query goes out as a simple-protocol `Query`, and the replies are framed here, the rows'
//! bytes passed on without a message object each.
//!
//! [`frame_at`] and [`Replies`] are the sans-I/O part: one frames the messages, the other takes
//! them in order, tells which are `CopyData` payloads, keeps the first `ErrorResponse`, skips what
//! may arrive at any time (notices, parameter changes, notifications), and stops at
//! `ReadyForQuery`, where the session is in step again. [`TappedCopy`] drives them: it reads the
//! socket straight into the row decoder's buffer, which parses each payload's rows where they
//! landed (see [`CopyDecoder`]), and at the end hands the socket back to the connection task with
//! whatever followed the statement.

use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{Header, Message};
use postgres_protocol::message::frontend;

use super::socket::Diverted;
use crate::error::{Error, Result};
use crate::rows::batch::CopyDecoder;

/// Room made in the read buffer before each read.
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

/// One protocol message at the front of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message: its tag, and where its body starts and ends.
    Whole { tag: u8, start: usize, end: usize },
    /// The start of a message of `size` bytes, not all of it in yet.
    Partial { size: usize },
}

/// The message at `at` of `buf`, `None` when not even its header is in.
pub fn frame_at(buf: &[u8], at: usize) -> Result<Option<Frame>> {
    let header = Header::parse(&buf[at.min(buf.len())..])
        .map_err(|e| protocol(format!("a message header: {e}")))?;
    let Some(header) = header else {
        return Ok(None);
    };
    let len = header.len() as usize;
    let (start, end) = (at + 5, at + 1 + len);
    if buf.len() < end {
        return Ok(Some(Frame::Partial { size: 1 + len }));
    }
    Ok(Some(Frame::Whole {
        tag: header.tag(),
        start,
        end,
    }))
}

/// What the bytes read so far came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The statement goes on; the next read must make `room` bytes (0: any) of room for the
    /// message that was cut short.
    More { room: usize },
    /// `ReadyForQuery` ends at `end`: what follows belongs to the session.
    Ready { end: usize },
}

/// What a message asks of the reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Its body is a `CopyData` payload: rows.
    Rows,
    Next,
    /// It was `ReadyForQuery`: the statement is over.
    Ready,
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
    /// Takes one message. An error here (a message out of place) leaves the protocol out of
    /// step: the session cannot be used again.
    pub fn message(&mut self, tag: u8, body: &[u8]) -> Result<Action> {
        match (tag, self.phase) {
            (b'd', Phase::Copying) => return Ok(Action::Rows),
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
                return Ok(Action::Ready);
            }
            (tag, phase) => {
                return Err(protocol(format!(
                    "message '{}' while {phase:?}",
                    char::from(tag).escape_default()
                )))
            }
        }
        Ok(Action::Next)
    }

    /// Takes every whole message in `decoder`'s buffer from where the last call stopped, the
    /// decoder parsing the rows of each `CopyData` where they lie.
    pub fn take(&mut self, decoder: &mut CopyDecoder) -> Result<Taken> {
        loop {
            let at = decoder.framed_to();
            let (tag, start, end) = match frame_at(decoder.bytes(), at)? {
                Some(Frame::Whole { tag, start, end }) => (tag, start, end),
                Some(Frame::Partial { size }) => {
                    let room = size - (decoder.bytes().len() - at);
                    return Ok(Taken::More { room });
                }
                None => return Ok(Taken::More { room: 0 }),
            };
            let action = self.message(tag, &decoder.bytes()[start..end])?;
            decoder.set_framed_to(end);
            match action {
                Action::Rows => decoder.payload(start, end)?,
                Action::Next => {}
                Action::Ready => return Ok(Taken::Ready { end }),
            }
        }
    }

    /// What the statement came to, once `ReadyForQuery` was taken.
    pub fn outcome(&mut self) -> Result<()> {
        self.failed.take().map_or(Ok(()), Err)
    }
}

fn protocol(what: impl std::fmt::Display) -> Error {
    Error::source(format!("protocol error in a COPY's replies: {what}"))
        .with_hint("the server sent what PostgreSQL's protocol does not allow here; is it PostgreSQL, or a proxy in between?")
}

/// An `ErrorResponse`'s severity, message and hint (read by postgres-protocol), shown like
/// tokio-postgres's errors are.
fn server_error(body: &[u8]) -> Error {
    let mut message = BytesMut::with_capacity(body.len() + 5);
    message.put_u8(b'E');
    message.put_i32(body.len() as i32 + 4);
    message.extend_from_slice(body);
    let (mut severity, mut text, mut hint) = ("ERROR".to_string(), String::new(), None);
    if let Ok(Some(Message::ErrorResponse(error))) = Message::parse(&mut message) {
        let mut fields = error.fields();
        while let Ok(Some(field)) = fields.next() {
            let value = || String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'S' => severity = value(),
                b'M' => text = value(),
                b'H' => hint = Some(value()),
                _ => {}
            }
        }
    }
    Error::server(&severity, &text, hint.as_deref())
}

/// A statement in flight on a diverted session.
#[derive(Debug)]
pub struct TappedCopy {
    /// `None` once the statement ended and the socket went back.
    socket: Option<Diverted>,
    replies: Replies,
    /// Room to make in the buffer before the next read: a read's worth, or all of a message
    /// longer than that.
    room: usize,
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
            replies: Replies::default(),
            room: READ_SPACE,
        })
    }

    /// Reads what the socket holds into `decoder`'s buffer and has it parse the rows of every
    /// whole `CopyData` in it where they lie; `false` once the statement has ended (and the
    /// socket is back with the session).
    pub async fn feed(&mut self, decoder: &mut CopyDecoder) -> Result<bool> {
        let Some(socket) = self.socket.as_mut() else {
            return Ok(false);
        };
        let read = socket
            .read_buf(decoder.buffer(self.room))
            .await
            .map_err(|e| Error::source(format!("reading a COPY stream: {e}")))?;
        if read == 0 {
            return Err(
                Error::source("the server closed the connection during a COPY").with_hint(
                    "the server may have restarted or terminated the session; see its log",
                ),
            );
        }
        match self.replies.take(decoder)? {
            Taken::More { room } => {
                self.room = room.max(READ_SPACE);
                Ok(true)
            }
            Taken::Ready { end } => {
                let socket = self.socket.take().expect("checked above");
                socket.finish(&decoder.bytes()[end..]);
                self.replies.outcome()?;
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::batch::tests::copy_stream;
    use crate::rows::batch::RowBatch;

    type Rows = Vec<Vec<Option<Vec<u8>>>>;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Rows of two columns, some NULL, of varying widths.
    fn rows(n: usize) -> Rows {
        (0..n)
            .map(|i| {
                let text = "x".repeat(i % 7).into_bytes();
                vec![
                    Some((i as u64).to_be_bytes().to_vec()),
                    (i % 3 != 0).then_some(text),
                ]
            })
            .collect()
    }

    const COPY_OUT: &[u8] = &[1, 0, 2, 0, 1, 0, 1];

    /// The replies to a COPY of `rows`, its stream cut into `CopyData` payloads every `cut`
    /// bytes (so rows straddle them), with a notice and a parameter change among them and a
    /// notification after; and where the statement's replies end.
    fn replies(rows: &Rows, cut: usize) -> (Vec<u8>, usize) {
        let mut out = message(b'H', COPY_OUT);
        for (i, piece) in copy_stream(rows).chunks(cut).enumerate() {
            out.extend(message(b'd', piece));
            if i == 2 {
                out.extend(message(b'N', b"SNOTICE\0Mhello\0\0"));
            }
        }
        out.extend(message(b'S', b"in_hot_standby\0on\0"));
        out.extend(message(b'c', b""));
        out.extend(message(b'C', b"COPY 2\0"));
        out.extend(message(b'Z', b"T"));
        let statement = out.len();
        out.extend(message(b'A', b"later"));
        (out, statement)
    }

    /// Feeds `stream` `step` bytes at a time, cutting a batch after every `every`-th read as
    /// the reader does; the rows decoded, and where `ReadyForQuery` ended in the stream.
    fn take_all(stream: &[u8], step: usize, every: usize) -> Result<(Rows, usize)> {
        let mut replies = Replies::default();
        let mut decoder = CopyDecoder::new(2);
        let mut batches = Vec::new();
        let mut cut_off = 0;
        for (i, chunk) in stream.chunks(step).enumerate() {
            decoder.buffer(chunk.len()).extend_from_slice(chunk);
            if let Taken::Ready { end } = replies.take(&mut decoder)? {
                replies.outcome()?;
                let statement = cut_off + end;
                batches.extend(decoder.finish()?);
                return Ok((decoded(&batches), statement));
            }
            if i % every == 0 {
                let before = decoder.bytes().len();
                batches.extend(decoder.take_batch());
                cut_off += before - decoder.bytes().len();
            }
        }
        Err(Error::internal("the stream ended before ReadyForQuery"))
    }

    fn decoded(batches: &[RowBatch]) -> Rows {
        batches
            .iter()
            .flat_map(|b| {
                (0..b.len())
                    .map(move |r| (0..2).map(|c| b.field(r, c).map(<[u8]>::to_vec)).collect())
            })
            .collect()
    }

    #[test]
    fn decodes_rows_in_place_across_any_reads_payload_cuts_and_batches() {
        let want = rows(40);
        for cut in [1, 3, 17, 64, 10_000] {
            let (stream, statement) = replies(&want, cut);
            for step in [1, 2, 5, 31, 200, stream.len()] {
                for every in [1, 3, 1000] {
                    let at = format!("cut {cut} step {step} every {every}");
                    let (got, end) =
                        take_all(&stream, step, every).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(got, want, "{at}");
                    assert_eq!(end, statement, "{at}");
                }
            }
        }
    }

    #[test]
    fn reports_the_server_error_after_ready_for_query() {
        let mut stream = message(b'H', COPY_OUT);
        stream.extend(message(b'd', &copy_stream(&rows(3))[..40]));
        stream.extend(message(
            b'E',
            b"SERROR\0VERROR\0C57014\0Mcanceling statement due to user request\0Htry again\0\0",
        ));
        stream.extend(message(b'Z', b"E"));
        let err = take_all(&stream, 7, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error: canceling statement due to user request"
        );
        assert_eq!(err.hint(), Some("try again"));
        let refused = [
            message(b'E', b"SERROR\0Mpermission denied for table t\0\0"),
            message(b'Z', b"I"),
        ]
        .concat();
        let err = take_all(&refused, 100, 1).unwrap_err().to_string();
        assert_eq!(err, "starting COPY: error: permission denied for table t");
    }

    #[test]
    fn refuses_messages_out_of_place_and_rows_cut_short() {
        let copy = copy_stream(&rows(2));
        for stream in [
            // rows before the COPY began, a text COPY, a statement that was no COPY, a bad
            // length, a row-description in a COPY
            [message(b'd', b"x"), message(b'Z', b"I")].concat(),
            [message(b'H', &[0, 0, 0]), message(b'Z', b"I")].concat(),
            [message(b'C', b"SELECT 1\0"), message(b'Z', b"I")].concat(),
            [message(b'H', COPY_OUT), message(b'T', b"")].concat(),
            vec![b'd', 0, 0, 0, 2],
        ] {
            let err = take_all(&stream, stream.len(), 1).unwrap_err().to_string();
            assert!(err.contains("protocol error"), "{err}");
        }
        let cut_short = [
            message(b'H', COPY_OUT),
            message(b'd', &copy[..copy.len() - 5]),
            message(b'c', b""),
            message(b'Z', b"I"),
        ]
        .concat();
        let err = take_all(&cut_short, 9, 1).unwrap_err().to_string();
        assert!(err.contains("middle of a row"), "{err}");
    }

    #[test]
    fn says_how_much_room_a_cut_short_message_needs() {
        let stream = [message(b'H', &[1, 0, 0]), message(b'd', &[7; 1000])].concat();
        let mut decoder = CopyDecoder::new(1);
        decoder.buffer(200).extend_from_slice(&stream[..108]);
        let taken = Replies::default().take(&mut decoder).unwrap();
        // The CopyData message is 1005 bytes; 100 of them are in.
        assert_eq!(taken, Taken::More { room: 905 });
    }
}
