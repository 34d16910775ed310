//! ICE over TCP for the driver: one TCP connection per (media connection, remote address),
//! made when the core first sends to that address, with RFC 4571 framing (each packet after
//! its length as two big-endian bytes). The connections' tasks belong to [`TcpLinks`] and end
//! with it (the engine task).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, trace};

use crate::error::PeerRole;

/// How long making a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Packets waiting to be written on one connection; past it a packet is dropped, as a full
/// UDP socket buffer drops a datagram (ICE, DTLS, SCTP and RTP all cope with loss).
const SEND_QUEUE: usize = 512;

/// Frames read from all connections, waiting for the engine; a full queue holds the readers
/// back (TCP's own flow control then slows the server down).
const RECV_QUEUE: usize = 1024;

/// A frame that arrived: on which media connection, from where, what.
pub(super) type Arrived = (PeerRole, SocketAddr, Vec<u8>);

/// The TCP connections of one engine.
pub(super) struct TcpLinks {
    links: HashMap<(PeerRole, SocketAddr), mpsc::Sender<Vec<u8>>>,
    arrived_tx: mpsc::Sender<Arrived>,
    /// Frames that arrived, for the driver's loop.
    pub arrived: mpsc::Receiver<Arrived>,
    tasks: JoinSet<()>,
    /// Packets dropped because a connection's queue was full.
    pub drops: u64,
}

impl TcpLinks {
    pub(super) fn new() -> Self {
        let (arrived_tx, arrived) = mpsc::channel(RECV_QUEUE);
        Self {
            links: HashMap::new(),
            arrived_tx,
            arrived,
            tasks: JoinSet::new(),
            drops: 0,
        }
    }

    /// Close `role`'s connections (their tasks end when their queues do): the next packets go
    /// on new ones.
    pub(super) fn reset(&mut self, role: PeerRole) {
        self.links.retain(|(r, _), _| *r != role);
    }

    /// Send one packet from `from` (our address: the connection binds its IP) to `to` over
    /// `role`'s connection to it, made now if there is none (or the last one ended). Never waits.
    pub(super) fn send(&mut self, role: PeerRole, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let Ok(len) = u16::try_from(data.len()) else {
            self.drops += 1; // cannot be framed (never happens at our packet sizes)
            return;
        };
        let mut frame = Vec::with_capacity(2 + data.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(data);
        // Reap finished connection tasks so the set does not grow.
        while self.tasks.try_join_next().is_some() {}
        let key = (role, to);
        if let Some(tx) = self.links.get(&key) {
            match tx.try_send(frame) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.drops += 1;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(f)) => {
                    debug!(%role, %to, "TCP connection ended; making a new one");
                    frame = f;
                }
            }
        }
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let _ = tx.try_send(frame);
        self.links.insert(key, tx);
        self.tasks
            .spawn(link(role, from, to, rx, self.arrived_tx.clone()));
    }
}

/// One connection: connect, then write what is queued and read frames until either side ends.
async fn link(
    role: PeerRole,
    from: SocketAddr,
    to: SocketAddr,
    mut queued: mpsc::Receiver<Vec<u8>>,
    arrived: mpsc::Sender<Arrived>,
) {
    let connect = async {
        let socket = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(from.ip(), 0))?;
        let stream = socket.connect(to).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(%role, %to, "TCP connection failed: {e}");
            return;
        }
        Err(_) => {
            debug!(%role, %to, "TCP connection timed out");
            return;
        }
    };
    debug!(%role, %to, "TCP connection up");
    let (mut rd, mut wr) = stream.into_split();
    let reader = async {
        loop {
            let mut len = [0u8; 2];
            rd.read_exact(&mut len).await?;
            let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
            rd.read_exact(&mut packet).await?;
            if arrived.send((role, to, packet)).await.is_err() {
                return Ok::<(), std::io::Error>(()); // the engine ended
            }
        }
    };
    let writer = async {
        while let Some(frame) = queued.recv().await {
            wr.write_all(&frame).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let ended = tokio::select! {
        r = reader => r,
        r = writer => r,
    };
    trace!(%role, %to, "TCP connection ended: {ended:?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Packets go out framed (length first) on one connection per peer and address, frames
    /// that come back arrive whole and in order, and a reset closes the connection (the next
    /// packet makes a new one).
    #[tokio::test]
    async fn frames_both_ways_and_a_reset_makes_a_new_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut links = TcpLinks::new();
        links.send(PeerRole::Publisher, from, server, b"one");
        links.send(PeerRole::Publisher, from, server, &[7u8; 1500]);
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; 2 + 3 + 2 + 1500];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..5], &[0, 3, b'o', b'n', b'e']);
        assert_eq!(&got[5..7], &1500u16.to_be_bytes());
        assert!(got[7..].iter().all(|b| *b == 7));

        // Two frames back, the second split across writes.
        conn.write_all(&[0, 2, b'h', b'i', 0, 4, b'a', b'b'])
            .await
            .unwrap();
        conn.write_all(b"cd").await.unwrap();
        let a = links.arrived.recv().await.unwrap();
        let b = links.arrived.recv().await.unwrap();
        assert_eq!(
            (a.0, a.1, a.2.as_slice()),
            (PeerRole::Publisher, server, &b"hi"[..])
        );
        assert_eq!(b.2, b"abcd");

        links.reset(PeerRole::Publisher);
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap(); // EOF: the old connection closed
        assert!(rest.is_empty());
        links.send(PeerRole::Publisher, from, server, b"again");
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = [0u8; 7];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\0\x05again");
        assert_eq!(links.drops, 0);
    }
}
