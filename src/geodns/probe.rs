//! A minimal DNS client: one A question over UDP from a chosen source address.
//! Enough to tell when PowerDNS answers and to send its warm-up query, without a
//! resolver library in the binary.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed DNS response")
}

fn question(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(32 + name.len());
    packet.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (a plain query, no recursion wanted); one question.
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    // QTYPE A, QCLASS IN.
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}

/// Skips a (possibly compressed) name at `pos`; returns the position after it.
fn skip_name(buf: &[u8], mut pos: usize) -> io::Result<usize> {
    loop {
        let len = *buf.get(pos).ok_or_else(malformed)?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xC0 == 0xC0 => return Ok(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

fn u16_at(buf: &[u8], pos: usize) -> io::Result<u16> {
    let bytes = buf.get(pos..pos + 2).ok_or_else(malformed)?;
    Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// The A records of a response to query `id`; an error for any RCODE but NOERROR.
fn answers(buf: &[u8], id: u16) -> io::Result<Option<Vec<Ipv4Addr>>> {
    if buf.len() < 12 || u16_at(buf, 0)? != id || buf[2] & 0x80 == 0 {
        return Ok(None);
    }
    let rcode = buf[3] & 0x0F;
    if rcode != 0 {
        return Err(io::Error::other(format!("DNS error, RCODE {rcode}")));
    }
    let mut pos = 12;
    for _ in 0..u16_at(buf, 4)? {
        pos = skip_name(buf, pos)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..u16_at(buf, 6)? {
        pos = skip_name(buf, pos)?;
        let rtype = u16_at(buf, pos)?;
        let rdlen = usize::from(u16_at(buf, pos + 8)?);
        let rdata = buf.get(pos + 10..pos + 10 + rdlen).ok_or_else(malformed)?;
        if let (1, [a, b, c, d]) = (rtype, rdata) {
            found.push(Ipv4Addr::new(*a, *b, *c, *d));
        }
        pos += 10 + rdlen;
    }
    Ok(Some(found))
}

/// Asks `server` for the A records of `name`, sending from `source` (port 0).
pub fn query_a(
    server: SocketAddr,
    source: IpAddr,
    name: &str,
    timeout: Duration,
) -> io::Result<Vec<Ipv4Addr>> {
    let socket = UdpSocket::bind((source, 0))?;
    let nanos = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = ((nanos >> 10) ^ std::process::id()) as u16;
    socket.send_to(&question(id, name), server)?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no DNS answer"));
        }
        socket.set_read_timeout(Some(left))?;
        let (len, from) = socket.recv_from(&mut buf)?;
        if from != server {
            continue;
        }
        if let Some(found) = answers(&buf[..len], id)? {
            return Ok(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_a_records_of_a_compressed_answer() {
        let mut response = question(7, "api.meridian.test");
        response[2] = 0x84; // QR, AA
        response[7] = 1; // one answer
        // Name: pointer to the question's name at offset 12; A IN TTL 5; 4 bytes.
        response.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 0, 0, 21]);
        let found = answers(&response, 7).unwrap().unwrap();
        assert_eq!(found, vec![Ipv4Addr::new(127, 0, 0, 21)]);
        assert!(
            answers(&response, 8).unwrap().is_none(),
            "another query's id"
        );
        response[3] = 5; // REFUSED
        assert!(answers(&response, 7).is_err());
    }
}
