//! A streaming zip writer: entries are written as they are produced (stored,
//! not compressed, with a data descriptor after each entry's bytes, APPNOTE
//! 4.3.9), so an entry's size need not be known before its first byte and no
//! entry is ever held in memory. Each entry's SHA-256 and line count are kept
//! for the export's `manifest.json`.
//!
//! Limits: no ZIP64, so an archive (and every offset in it) stays below 4 GiB;
//! [`ZipWriter`] refuses to pass it rather than write a corrupt file.

use std::io::{self, Write};

use ring::digest::{Context, SHA256};

/// One finished entry, for the central directory and the manifest.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub crc32: u32,
    pub sha256: String,
    /// Newline-terminated lines written (NDJSON: rows).
    pub lines: u64,
    offset: u64,
}

struct Open {
    name: String,
    offset: u64,
    size: u64,
    lines: u64,
    crc: crc32fast::Hasher,
    sha: Context,
}

/// Writes a zip archive into `W` entry by entry.
pub struct ZipWriter<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Entry>,
    open: Option<Open>,
}

const LIMIT: u64 = u32::MAX as u64;
/// General purpose flags: bit 3 (sizes in a data descriptor), bit 11 (UTF-8 names).
const FLAGS: u16 = 0x0808;
/// 1980-01-01 00:00 in DOS format: the archive's content, not its mtime, matters.
const DOS_DATE: u16 = (1 << 5) | 1;

fn too_large() -> io::Error {
    io::Error::other("the export archive would exceed 4 GiB (ZIP64 is not supported)")
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            entries: Vec::new(),
            open: None,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written > LIMIT {
            return Err(too_large());
        }
        Ok(())
    }

    /// Starts an entry (finishing the one before).
    pub fn start(&mut self, name: &str) -> io::Result<()> {
        self.finish_entry()?;
        let offset = self.written;
        let mut header = Vec::with_capacity(30 + name.len());
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&20u16.to_le_bytes());
        header.extend_from_slice(&FLAGS.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // stored
        header.extend_from_slice(&0u16.to_le_bytes()); // time
        header.extend_from_slice(&DOS_DATE.to_le_bytes());
        header.extend_from_slice(&[0u8; 12]); // crc, sizes: in the descriptor
        header.extend_from_slice(&name_len(name)?.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        header.extend_from_slice(name.as_bytes());
        self.put(&header)?;
        self.open = Some(Open {
            name: name.to_owned(),
            offset,
            size: 0,
            lines: 0,
            crc: crc32fast::Hasher::new(),
            sha: Context::new(&SHA256),
        });
        Ok(())
    }

    /// Appends bytes to the open entry.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Err(io::Error::other("zip: no entry is open"));
        };
        open.size += bytes.len() as u64;
        open.lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        open.crc.update(bytes);
        open.sha.update(bytes);
        self.put(bytes)
    }

    fn finish_entry(&mut self) -> io::Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let crc32 = open.crc.finalize();
        let size = u32::try_from(open.size).map_err(|_| too_large())?;
        let mut descriptor = Vec::with_capacity(16);
        descriptor.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        descriptor.extend_from_slice(&crc32.to_le_bytes());
        descriptor.extend_from_slice(&size.to_le_bytes());
        descriptor.extend_from_slice(&size.to_le_bytes());
        self.put(&descriptor)?;
        self.entries.push(Entry {
            name: open.name,
            size: open.size,
            crc32,
            sha256: hex(open.sha.finish().as_ref()),
            lines: open.lines,
            offset: open.offset,
        });
        Ok(())
    }

    /// The entries finished so far.
    pub fn entries(&mut self) -> io::Result<&[Entry]> {
        self.finish_entry()?;
        Ok(&self.entries)
    }

    /// Writes the central directory and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_entry()?;
        let start = self.written;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let mut h = Vec::with_capacity(46 + e.name.len());
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            h.extend_from_slice(&20u16.to_le_bytes()); // made by
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&FLAGS.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&DOS_DATE.to_le_bytes());
            h.extend_from_slice(&e.crc32.to_le_bytes());
            let size = u32::try_from(e.size).map_err(|_| too_large())?;
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&name_len(&e.name)?.to_le_bytes());
            h.extend_from_slice(&[0u8; 8]); // extra, comment, disk, internal attrs
            h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
            let offset = u32::try_from(e.offset).map_err(|_| too_large())?;
            h.extend_from_slice(&offset.to_le_bytes());
            h.extend_from_slice(e.name.as_bytes());
            self.put(&h)?;
        }
        let count = u16::try_from(entries.len()).map_err(|_| too_large())?;
        let cd_size = u32::try_from(self.written - start).map_err(|_| too_large())?;
        let cd_start = u32::try_from(start).map_err(|_| too_large())?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&[0u8; 4]); // disk numbers
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&cd_size.to_le_bytes());
        end.extend_from_slice(&cd_start.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.put(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn name_len(name: &str) -> io::Result<u16> {
    u16::try_from(name.len()).map_err(|_| io::Error::other("zip: entry name too long"))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_sizes_lines_and_digests_and_the_end_record_points_at_the_directory() {
        let mut zip = ZipWriter::new(Vec::new());
        zip.start("a.ndjson").unwrap();
        zip.write(b"{\"x\":1}\n{\"x\":2}\n").unwrap();
        zip.start("manifest.json").unwrap();
        zip.write(b"{}").unwrap();
        let entries = zip.entries().unwrap().to_vec();
        assert_eq!(entries[0].lines, 2);
        assert_eq!(entries[0].size, 16);
        assert_eq!(
            entries[1].sha256,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let bytes = zip.finish().unwrap();
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(&end[..4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2);
        let cd = u32::from_le_bytes([end[16], end[17], end[18], end[19]]) as usize;
        assert_eq!(&bytes[cd..cd + 4], &0x0201_4b50u32.to_le_bytes());
        assert_eq!(&bytes[..4], &0x0403_4b50u32.to_le_bytes());
    }
}
