//! Which addresses a process listens on, read from `/proc` (Linux).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{TestbedError, io_err};

/// A socket a process can receive on from anyone: a listening TCP socket, or a UDP socket that is
/// not connected to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listener {
    /// `"tcp"` or `"udp"`.
    pub protocol: &'static str,
    /// The bound address.
    pub addr: SocketAddr,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.protocol, self.addr)
    }
}

/// Every listening TCP socket and unconnected UDP socket of process `pid`, from its open file
/// descriptors and `/proc/net/{tcp,tcp6,udp,udp6}` (so: in this network namespace).
pub fn listening_sockets(pid: u32) -> Result<Vec<Listener>, TestbedError> {
    let fd_dir = format!("/proc/{pid}/fd");
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(&fd_dir).map_err(io_err(format!("read {fd_dir}")))? {
        let Ok(entry) = entry else { continue };
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
        {
            inodes.insert(inode);
        }
    }
    let mut out = Vec::new();
    for (file, protocol, wanted_state) in [
        ("tcp", "tcp", "0A"),  // TCP_LISTEN
        ("tcp6", "tcp", "0A"), // TCP_LISTEN
        ("udp", "udp", "07"),  // TCP_CLOSE: bound, not connected
        ("udp6", "udp", "07"),
    ] {
        let path = format!("/proc/net/{file}");
        let table = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // no IPv6
            Err(e) => return Err(io_err(format!("read {path}"))(e)),
        };
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            if *state != wanted_state || !inode.parse().is_ok_and(|i| inodes.contains(&i)) {
                continue;
            }
            if let Some(addr) = parse_proc_addr(local) {
                out.push(Listener { protocol, addr });
            }
        }
    }
    Ok(out)
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6), as the kernel prints them: the address
/// as native-endian 32-bit words, the port big-endian.
fn parse_proc_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    #[test]
    fn proc_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_proc_addr("nonsense"), None);
    }

    /// Our own sockets show up with the address they were bound to.
    #[test]
    fn finds_this_process_sockets() {
        let tcp = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let found = listening_sockets(std::process::id()).unwrap();
        for want in [
            Listener {
                protocol: "tcp",
                addr: tcp.local_addr().unwrap(),
            },
            Listener {
                protocol: "udp",
                addr: udp.local_addr().unwrap(),
            },
        ] {
            assert!(found.contains(&want), "{want} not in {found:?}");
        }
    }
}
