//! A local node's memory from `/proc`: which process listens on an address, and
//! its resident set (VmRSS) and peak resident set (VmHWM).

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context, bail};

/// Every process: its pid and its `/proc/<pid>` directory.
pub(crate) fn processes() -> std::io::Result<impl Iterator<Item = (u32, std::path::PathBuf)>> {
    Ok(std::fs::read_dir("/proc")?.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry.path()))
    }))
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub fn rss_hwm(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .with_context(|| format!("{path} has no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The process with a TCP socket listening on `base`'s address (IPv4, local only).
pub fn listening_pid(base: &str) -> anyhow::Result<u32> {
    let authority = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let address: SocketAddrV4 = authority.parse().with_context(|| {
        format!("`{authority}` is not an IPv4 address and port; pass the node's --pid")
    })?;
    let inode = listening_inode(address)?;
    let wanted = format!("socket:[{inode}]");
    for (pid, dir) in processes()? {
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str() == std::ffi::OsStr::new(&wanted))
            {
                return Ok(pid);
            }
        }
    }
    bail!("no process holds the socket listening on {address}; pass the node's --pid")
}

/// The inode of the socket listening on `address` (or on 0.0.0.0 and its port).
fn listening_inode(address: SocketAddrV4) -> anyhow::Result<u64> {
    const LISTEN: &str = "0A";
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    let wanted = [*address.ip(), Ipv4Addr::UNSPECIFIED].map(|ip| {
        // The kernel prints the address in host byte order (little-endian here).
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            address.port()
        )
    });
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, local, _, state, _, _, _, _, _, inode, ..] = fields[..]
            && state == LISTEN
            && wanted.iter().any(|w| w == local)
        {
            return inode.parse().context("bad inode in /proc/net/tcp");
        }
    }
    bail!("nothing listens on {address} (is the node running?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_by_its_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = listening_pid(&format!("http://127.0.0.1:{port}/x")).unwrap();
        assert_eq!(pid, std::process::id());
        let (rss, hwm) = rss_hwm(pid).unwrap();
        assert!(rss > 0 && hwm >= rss);
    }
}
