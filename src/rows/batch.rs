//! Binary COPY bytes → [`RowBatch`]es: one shared buffer plus the offsets of every field.
//!
//! PostgreSQL's binary COPY stream is a header, then per row an `i16` field count and per field an
//! `i32` length (-1 for NULL) and the bytes, then an `i16` -1 trailer. [`CopyDecoder`] takes the
//! stream's chunks as they arrive (they need not align with rows), records where each field lies,
//! and cuts a batch once enough bytes are buffered; the batch keeps the bytes (`Bytes`, no copy)
//! and values are read lazily through [`RowBatch::field`], as tokio-postgres's `BinaryCopyOutRow`
//! does, so no value is allocated on the way. Sans-I/O: the caller feeds the chunks.

use bytes::{Bytes, BytesMut};

use crate::shape::ValueError;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const NULL_LEN: i32 = -1;

/// Rows of one COPY stream: the raw bytes and, per row and column, `(offset, length)`.
#[derive(Clone, Debug)]
pub struct RowBatch {
    buf: Bytes,
    fields: Vec<(u32, i32)>,
    ncols: usize,
}

impl RowBatch {
    pub fn len(&self) -> usize {
        self.fields.len().checked_div(self.ncols).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// The bytes of one value, `None` for NULL.
    #[inline]
    pub fn field(&self, row: usize, col: usize) -> Option<&[u8]> {
        let (start, len) = self.fields[row * self.ncols + col];
        (len != NULL_LEN).then(|| &self.buf[start as usize..start as usize + len as usize])
    }

    /// Every field of one row, in column order, for walking a row without indexing each field.
    #[inline]
    pub fn row_fields(&self, row: usize) -> impl Iterator<Item = Option<&[u8]>> {
        self.fields[row * self.ncols..(row + 1) * self.ncols]
            .iter()
            .map(|&(start, len)| {
                (len != NULL_LEN).then(|| &self.buf[start as usize..start as usize + len as usize])
            })
    }

    /// The bytes of one row's values.
    pub fn row_byte_len(&self, row: usize) -> usize {
        self.fields[row * self.ncols..(row + 1) * self.ncols]
            .iter()
            .map(|&(_, len)| len.max(0) as usize)
            .sum()
    }

    /// The size of the buffer held, for byte-bounded queues.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
}

/// Incremental parser of one binary COPY stream.
///
/// Its bytes come in one of two ways. [`CopyDecoder::push`] copies in chunks of the stream
/// itself (tokio-postgres's `CopyData` payloads). Or the protocol's bytes are read straight into
/// [`CopyDecoder::buffer`], and [`CopyDecoder::payload`] marks where each `CopyData` payload
/// lies in it: the rows are then parsed where they landed, and a batch is a slice of the very
/// buffer the socket filled, message headers and all, without a copy. (A row that runs on from
/// one payload into the next, which PostgreSQL does not send but the protocol allows, has its
/// first part moved up against the second, over the header between.)
#[derive(Debug)]
pub struct CopyDecoder {
    ncols: usize,
    batch_bytes: usize,
    pending: BytesMut,
    /// Where the next unparsed row starts in `pending`.
    parsed: usize,
    /// The end of the bytes rows may be parsed from: all of `pending` for pushed chunks, the end
    /// of the last payload marked for read-in bytes.
    window_end: usize,
    /// Read-in bytes: where the next protocol message starts (kept by the caller, moved here
    /// when a batch is cut).
    framed_to: usize,
    fields: Vec<(u32, i32)>,
    header_done: bool,
    trailer_seen: bool,
}

impl CopyDecoder {
    pub fn new(ncols: usize) -> Self {
        Self::with_capacity(ncols, 64 * 1024)
    }

    /// A decoder whose buffer is sized for batches of about `batch_bytes`, so a batch fills one
    /// allocation instead of growing (and copying) through several.
    pub fn with_capacity(ncols: usize, batch_bytes: usize) -> Self {
        let batch_bytes = batch_bytes.max(4096);
        CopyDecoder {
            ncols,
            batch_bytes,
            pending: BytesMut::with_capacity(Self::buffer_size(batch_bytes)),
            parsed: 0,
            window_end: 0,
            framed_to: 0,
            fields: Vec::new(),
            header_done: false,
            trailer_seen: false,
        }
    }

    /// A batch's bytes and the reads that overshoot it.
    fn buffer_size(batch_bytes: usize) -> usize {
        batch_bytes + 512 * 1024
    }

    /// Appends a chunk and parses every row it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ValueError> {
        if self.trailer_seen && !chunk.is_empty() {
            return Err(copy_error("data after the end-of-copy trailer"));
        }
        self.pending.extend_from_slice(chunk);
        self.window_end = self.pending.len();
        self.parse()
    }

    /// The buffer protocol bytes are read into, with at least `room` bytes free.
    pub fn buffer(&mut self, room: usize) -> &mut BytesMut {
        if self.pending.capacity() - self.pending.len() < room {
            self.pending.reserve(room);
        }
        &mut self.pending
    }

    /// The bytes read in so far (since the last batch was cut).
    pub fn bytes(&self) -> &[u8] {
        &self.pending
    }

    /// Read-in bytes: where the next protocol message starts.
    pub fn framed_to(&self) -> usize {
        self.framed_to
    }

    pub fn set_framed_to(&mut self, at: usize) {
        self.framed_to = at;
    }

    /// Read-in bytes: the `CopyData` payload at `start..end` of [`CopyDecoder::bytes`], after
    /// every payload marked before; parses the rows it completes.
    pub fn payload(&mut self, start: usize, end: usize) -> Result<(), ValueError> {
        if self.trailer_seen && end > start {
            return Err(copy_error("data after the end-of-copy trailer"));
        }
        if self.parsed < self.window_end {
            // A row began in the last payload: close the gap (this message's header, and any
            // message between) by moving the row's first part up against the rest.
            let gap = start - self.window_end;
            self.pending
                .copy_within(self.parsed..self.window_end, self.parsed + gap);
            self.parsed += gap;
        } else {
            self.parsed = start;
        }
        self.window_end = end;
        self.parse()
    }

    fn parse(&mut self) -> Result<(), ValueError> {
        if !self.header_done && !self.parse_header()? {
            return Ok(());
        }
        while !self.trailer_seen && self.parse_row()? {}
        Ok(())
    }

    /// Bytes held that belong to complete rows.
    pub fn complete_bytes(&self) -> usize {
        self.parsed
    }

    /// Cuts the complete rows parsed so far into a batch (none when there are none), without
    /// copying them. Once the buffer's remaining room is short of half a batch's buffer, the
    /// bytes after the rows move to a new one, so reads never grow (and copy) an allocation.
    pub fn take_batch(&mut self) -> Option<RowBatch> {
        if self.fields.is_empty() {
            return None;
        }
        let buf = self.pending.split_to(self.parsed).freeze();
        let size = Self::buffer_size(self.batch_bytes);
        if self.pending.capacity() < size / 2 {
            let mut next = BytesMut::with_capacity(size);
            next.extend_from_slice(&self.pending);
            self.pending = next;
        }
        self.window_end -= self.parsed;
        self.framed_to = self.framed_to.saturating_sub(self.parsed);
        self.parsed = 0;
        let capacity = self.fields.len();
        let fields = std::mem::replace(&mut self.fields, Vec::with_capacity(capacity));
        Some(RowBatch {
            buf,
            fields,
            ncols: self.ncols,
        })
    }

    /// Ends the stream: the trailer must have been seen and no partial row left.
    pub fn finish(mut self) -> Result<Option<RowBatch>, ValueError> {
        if !self.trailer_seen || self.parsed != self.window_end {
            return Err(copy_error("stream ended in the middle of a row"));
        }
        Ok(self.take_batch())
    }

    fn parse_header(&mut self) -> Result<bool, ValueError> {
        let buf = &self.pending[self.parsed..self.window_end];
        if buf.len() < SIGNATURE.len() + 8 {
            return Ok(false);
        }
        if &buf[..SIGNATURE.len()] != SIGNATURE {
            return Err(copy_error("bad binary COPY signature"));
        }
        let ext = read_i32(buf, SIGNATURE.len() + 4);
        if ext < 0 {
            return Err(copy_error("negative header extension length"));
        }
        let end = SIGNATURE.len() + 8 + ext as usize;
        if buf.len() < end {
            return Ok(false);
        }
        self.parsed += end;
        self.header_done = true;
        Ok(true)
    }

    /// Parses one row at `parsed` if it is complete; returns whether it advanced.
    fn parse_row(&mut self) -> Result<bool, ValueError> {
        let buf = &self.pending[..self.window_end];
        let mut pos = self.parsed;
        let Some(&[hi, lo]) = buf.get(pos..pos + 2) else {
            return Ok(false);
        };
        let count = i16::from_be_bytes([hi, lo]);
        pos += 2;
        if count == -1 {
            self.parsed = pos;
            self.trailer_seen = true;
            return Ok(true);
        }
        if count as usize != self.ncols {
            return Err(copy_error("row has an unexpected number of fields"));
        }
        let first = self.fields.len();
        self.fields.reserve(self.ncols);
        for _ in 0..self.ncols {
            let Some(len) = buf.get(pos..pos + 4) else {
                self.fields.truncate(first);
                return Ok(false);
            };
            let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
            pos += 4;
            if len < NULL_LEN {
                return Err(copy_error("negative field length"));
            }
            self.fields.push((pos as u32, len));
            pos += len.max(0) as usize;
        }
        if buf.len() < pos {
            self.fields.truncate(first);
            return Ok(false);
        }
        if pos > u32::MAX as usize {
            return Err(copy_error("a batch grew beyond 4 GiB"));
        }
        self.parsed = pos;
        Ok(true)
    }
}

fn read_i32(buf: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]])
}

fn copy_error(reason: &'static str) -> ValueError {
    ValueError::new("binary COPY", reason)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a binary COPY stream of rows of optional byte strings.
    pub(crate) fn copy_stream<F: AsRef<[u8]>>(rows: &[Vec<Option<F>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        let v = v.as_ref();
                        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn rows() -> Vec<Vec<Option<&'static [u8]>>> {
        vec![
            vec![Some(b"a"), None],
            vec![Some(b""), Some(b"hello")],
            vec![Some(b"xyz"), Some(&[0, 1, 2])],
        ]
    }

    #[test]
    fn decodes_any_chunking() {
        let stream = copy_stream(&rows());
        for chunk in 1..stream.len() {
            let mut d = CopyDecoder::new(2);
            let mut batches = Vec::new();
            for piece in stream.chunks(chunk) {
                d.push(piece).unwrap();
                batches.extend(d.take_batch());
            }
            batches.extend(d.finish().unwrap());
            let got: Vec<Vec<Option<Vec<u8>>>> = batches
                .iter()
                .flat_map(|b| {
                    (0..b.len())
                        .map(move |r| (0..2).map(|c| b.field(r, c).map(<[u8]>::to_vec)).collect())
                })
                .collect();
            let want: Vec<Vec<Option<Vec<u8>>>> = rows()
                .iter()
                .map(|r| r.iter().map(|f| f.map(<[u8]>::to_vec)).collect())
                .collect();
            assert_eq!(got, want, "chunk size {chunk}");
        }
    }

    #[test]
    fn refuses_truncated_and_foreign_streams() {
        let stream = copy_stream(&rows());
        let mut d = CopyDecoder::new(2);
        d.push(&stream[..stream.len() - 3]).unwrap();
        assert!(d.finish().is_err());
        let mut d = CopyDecoder::new(3);
        assert!(d.push(&stream).is_err());
        let mut d = CopyDecoder::new(2);
        assert!(d.push(b"PGCOPY\nXXXXXXXXXXXXXXXXXXXXX").is_err());
    }
}
