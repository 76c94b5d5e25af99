//! Export archives at rest: the plaintext archive is cut into chunks of
//! [`CHUNK`] bytes, each sealed with the tenant's data key (AES-256-GCM through
//! `crypto::envelope`) and bound to (tenant, export id, chunk index, last or
//! not). So a chunk copied to another position, export or tenant does not open,
//! and a file cut at a chunk boundary is caught (its last chunk is missing).
//! Every chunk but the last holds exactly `CHUNK` bytes and the last is always
//! written (possibly empty), so plaintext offset `o` lives in chunk `o / CHUNK`
//! and a ranged download decrypts only the chunks it serves.

use std::io::{self, Write};

use ring::digest::{Context, SHA256};
use zeroize::Zeroizing;

use crate::crypto::envelope::{Binding, Dek};
use crate::ids::TenantId;

/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
/// What sealing adds to a chunk (format byte, version, nonce, tag).
pub const OVERHEAD: usize = crate::crypto::messages::SEALED_OVERHEAD as usize;

/// The binding of chunk `index` of `export`.
fn row(export: uuid::Uuid, index: u64, last: bool) -> String {
    if last {
        format!("{export}:{index}:last")
    } else {
        format!("{export}:{index}")
    }
}

fn binding<'a>(tenant: TenantId, row: &'a str) -> Binding<'a> {
    Binding {
        tenant,
        table: "exports",
        column: "archive",
        row,
    }
}

/// How many chunks an archive of `size` plaintext bytes has, and the last's index.
pub fn last_chunk(size: u64) -> u64 {
    size / CHUNK as u64
}

/// Opens chunk `index` of an archive of `size` bytes.
pub fn open_chunk(
    dek: &Dek,
    tenant: TenantId,
    export: uuid::Uuid,
    index: u64,
    size: u64,
    sealed: &[u8],
) -> io::Result<Zeroizing<Vec<u8>>> {
    let row = row(export, index, index == last_chunk(size));
    dek.open(&binding(tenant, &row), sealed)
        .map_err(|e| io::Error::other(format!("export {export} chunk {index}: {e}")))
}

/// Seals what is written into `W`, chunk by chunk.
pub struct SealedWriter<W: Write> {
    out: W,
    dek: std::sync::Arc<Dek>,
    tenant: TenantId,
    export: uuid::Uuid,
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    size: u64,
    sha: Context,
}

impl<W: Write> SealedWriter<W> {
    pub fn new(out: W, dek: std::sync::Arc<Dek>, tenant: TenantId, export: uuid::Uuid) -> Self {
        Self {
            out,
            dek,
            tenant,
            export,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK)),
            index: 0,
            size: 0,
            sha: Context::new(&SHA256),
        }
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let row = row(self.export, self.index, last);
        let sealed = self
            .dek
            .seal(&binding(self.tenant, &row), &self.buf)
            .map_err(io::Error::other)?;
        self.out.write_all(&sealed)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk; returns the sink, the plaintext size and its SHA-256.
    pub fn finish(mut self) -> io::Result<(W, u64, String)> {
        self.seal(true)?;
        self.out.flush()?;
        let digest = super::archive::hex(self.sha.clone().finish().as_ref());
        Ok((self.out, self.size, digest))
    }
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len();
        self.sha.update(bytes);
        self.size += n as u64;
        while !bytes.is_empty() {
            let room = CHUNK - self.buf.len();
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == CHUNK {
                self.seal(false)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dek() -> std::sync::Arc<Dek> {
        std::sync::Arc::new(Dek::new(1, Zeroizing::new([7u8; 32])))
    }

    #[test]
    fn chunks_open_only_in_place_and_a_cut_file_is_caught() {
        let (tenant, export) = (TenantId::new_random(), uuid::Uuid::now_v7());
        for size in [0, 10, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut w = SealedWriter::new(Vec::new(), dek(), tenant, export);
            w.write_all(&plain).unwrap();
            let (file, n, _) = w.finish().unwrap();
            assert_eq!(n, size as u64);
            let sealed = CHUNK + OVERHEAD;
            let chunks: Vec<&[u8]> = file.chunks(sealed).collect();
            assert_eq!(chunks.len() as u64, last_chunk(n) + 1, "size {size}");
            let mut back = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                back.extend_from_slice(
                    &open_chunk(&dek(), tenant, export, i as u64, n, c).unwrap(),
                );
            }
            assert_eq!(back, plain);
            // Cut after the first chunk: the reader, told a shorter size, finds
            // chunk 0 not marked last (or, with the true size, chunk 1 missing).
            if chunks.len() > 1 {
                assert!(open_chunk(&dek(), tenant, export, 0, 10, chunks[0]).is_err());
                assert!(open_chunk(&dek(), tenant, export, 1, n, chunks[0]).is_err());
            }
            // Another export's or tenant's binding does not open it.
            let other = uuid::Uuid::now_v7();
            assert!(open_chunk(&dek(), tenant, other, 0, n, chunks[0]).is_err());
            assert!(open_chunk(&dek(), TenantId::new_random(), export, 0, n, chunks[0]).is_err());
        }
    }
}
