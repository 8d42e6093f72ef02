//! A keyless table's copies from one source, hash-partitioned by digest: in memory up to a
//! budget, then appended to one file per partition in a temporary directory.
//!
//! Memory stays at the budget whatever the table's size; the comparison then reads one
//! partition at a time from every source (see [`crate::compare::multiset`]). A partition that
//! came out larger than planned (the table's size estimate was low) is read in several passes,
//! each keeping the copies of the next digest bits, so no pass holds more than a budget.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

use crate::compare::multiset::{partition_of, Copy, COPY_BYTES};

pub struct Spill {
    bits: u8,
    /// Per partition, copies not yet written out.
    held: Vec<Vec<u8>>,
    held_bytes: usize,
    budget: usize,
    /// Per partition, bytes in its file.
    on_disk: Vec<u64>,
    dir: Option<tempfile::TempDir>,
}

impl Spill {
    /// A spill of `1 << bits` partitions holding up to `budget` bytes in memory.
    pub fn new(bits: u8, budget: usize) -> Spill {
        let n = 1usize << bits;
        Spill {
            bits,
            held: vec![Vec::new(); n],
            held_bytes: 0,
            budget,
            on_disk: vec![0; n],
            dir: None,
        }
    }

    pub fn partitions(&self) -> usize {
        self.held.len()
    }

    /// Adds a copy; past the budget, every partition's copies go to its file.
    pub fn push(&mut self, copy: &Copy) -> std::io::Result<()> {
        let p = copy.partition(self.bits);
        self.held[p].extend_from_slice(&copy.to_bytes());
        self.held_bytes += COPY_BYTES;
        if self.held_bytes >= self.budget {
            self.write_out()?;
        }
        Ok(())
    }

    /// Whether anything went to disk.
    pub fn spilled(&self) -> bool {
        self.dir.is_some()
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        if self.dir.is_none() {
            self.dir = Some(
                tempfile::Builder::new()
                    .prefix("pgsalvage-spill")
                    .tempdir()?,
            );
        }
        for p in 0..self.held.len() {
            if self.held[p].is_empty() {
                continue;
            }
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(p))?;
            file.write_all(&self.held[p])?;
            self.on_disk[p] += self.held[p].len() as u64;
            self.held[p].clear();
        }
        self.held_bytes = 0;
        Ok(())
    }

    fn path(&self, p: usize) -> PathBuf {
        self.dir
            .as_ref()
            .expect("a spill directory")
            .path()
            .join(format!("{p:05}"))
    }

    /// The bytes partition `p` holds, in memory and on disk.
    pub fn bytes_in(&self, p: usize) -> u64 {
        self.on_disk[p] + self.held[p].len() as u64
    }

    /// Appends partition `p`'s copies whose digest falls in sub-partition `sub` of
    /// `1 << sub_bits` (the next bits after the partition's) to `out`.
    pub fn read(
        &self,
        p: usize,
        sub: usize,
        sub_bits: u8,
        out: &mut Vec<Copy>,
    ) -> std::io::Result<()> {
        let bits = self.bits + sub_bits;
        let mask = (1usize << sub_bits) - 1;
        let mut keep = |bytes: &[u8]| {
            for chunk in bytes.chunks_exact(COPY_BYTES) {
                let copy = Copy::from_bytes(chunk);
                if sub_bits == 0 || partition_of(&copy.digest, bits) & mask == sub {
                    out.push(copy);
                }
            }
        };
        if self.on_disk[p] > 0 {
            let mut file = BufReader::with_capacity(1 << 20, File::open(self.path(p))?);
            let mut buf = vec![0u8; COPY_BYTES * 8192];
            loop {
                let n = read_full(&mut file, &mut buf)?;
                keep(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
        }
        keep(&self.held[p]);
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns how much it read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(i: u32) -> Copy {
        Copy {
            digest: *blake3::hash(&i.to_le_bytes()).as_bytes(),
            source: (i % 3) as u8,
            ctid: [0, 0, 0, 0, 0, (i % 251) as u8],
        }
    }

    #[test]
    fn every_copy_comes_back_once_in_its_partition_and_sub_partition() {
        // A budget of 100 copies: most go to disk, some stay in memory.
        let mut spill = Spill::new(3, 100 * COPY_BYTES);
        for i in 0..5000 {
            spill.push(&copy(i)).unwrap();
        }
        assert!(spill.spilled());
        let mut all = Vec::new();
        for p in 0..spill.partitions() {
            let mut whole = Vec::new();
            spill.read(p, 0, 0, &mut whole).unwrap();
            assert_eq!(whole.len() as u64 * COPY_BYTES as u64, spill.bytes_in(p));
            assert!(whole.iter().all(|c| c.partition(3) == p));
            let mut parts = Vec::new();
            for sub in 0..4 {
                spill.read(p, sub, 2, &mut parts).unwrap();
            }
            parts.sort();
            whole.sort();
            assert_eq!(parts, whole);
            all.extend(whole);
        }
        let mut want: Vec<Copy> = (0..5000).map(copy).collect();
        want.sort();
        all.sort();
        assert_eq!(all, want);
    }
}
