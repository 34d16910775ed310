//! The I/O driver: the engine task's loop. It owns the two UDP sockets, the timer, the command
//! and media queues and the event stream, feeds each wake-up to the sans-IO core and carries
//! out what the core asks for (datagrams to send, signal requests).

use tokio::sync::mpsc::error::TrySendError;
use tracing::{trace, warn};

use super::signal_link::SignalLink;
use super::*;
use crate::sansio::{EventSink, Input, Offer, Output, SignalIn};
use crate::track::MediaWrite;

/// Largest UDP datagram we read.
const RECV_BUF: usize = 2048;

/// The event stream as the core's [`EventSink`].
pub(super) struct EventStream(pub mpsc::Sender<EngineEvent>);

impl EventSink for EventStream {
    fn offer(&mut self, ev: EngineEvent) -> Offer {
        match self.0.try_send(ev) {
            Ok(()) => Offer::Sent,
            Err(TrySendError::Full(ev)) => Offer::Full(ev),
            Err(TrySendError::Closed(_)) => Offer::Closed,
        }
    }
}

/// What the driver owns.
pub(super) struct Io {
    pub publisher: UdpSocket,
    pub subscriber: UdpSocket,
    pub signal: SignalLink,
    pub commands: mpsc::Receiver<Command>,
    pub media: mpsc::Receiver<MediaWrite>,
    pub events: mpsc::Sender<EngineEvent>,
}

enum Wake {
    Datagram(PeerRole, std::io::Result<(usize, SocketAddr)>),
    /// A frame from a TCP connection (ICE over TCP).
    Tcp(Option<super::tcp::Arrived>),
    Signal(Option<SignalIn>),
    Command(Option<Command>),
    Media(Option<MediaWrite>),
    /// The reader made room for the oldest held event (`None`: the reader is gone).
    Deliver(Option<()>),
    Timeout,
}

pub(super) async fn run(mut core: Core, io: Io) {
    let Io {
        publisher,
        subscriber,
        signal,
        mut commands,
        mut media,
        events,
    } = io;
    let SignalLink {
        requests,
        mut updates,
        task: signal_task,
    } = signal;
    let mut pub_buf = vec![0u8; RECV_BUF];
    let mut sub_buf = vec![0u8; RECV_BUF];
    let mut send_drops: u64 = 0;
    let mut tcp = super::tcp::TcpLinks::new();
    loop {
        // Carry out what the core asks for, up to the time it wants to be woken.
        let deadline = loop {
            match core.poll_output() {
                Output::ResetTcp(role) => tcp.reset(role),
                Output::Transmit(role, t) if t.proto != str0m::net::Protocol::Udp => {
                    tcp.send(role, t.source, t.destination, &t.contents);
                }
                Output::Transmit(role, t) => {
                    let socket = match role {
                        PeerRole::Publisher => &publisher,
                        PeerRole::Subscriber => &subscriber,
                    };
                    if socket.try_send_to(&t.contents, t.destination).is_err() {
                        // UDP is lossy anyway; a full socket buffer drops this datagram.
                        send_drops += 1;
                        trace!(%role, send_drops, "datagram dropped by the socket");
                    }
                }
                Output::Signal(s) => {
                    let _ = requests.send(s);
                }
                Output::Timeout(t) => break t,
            }
        };
        if core.is_stopped() {
            break;
        }
        // Never wait for the reader here: held events go out when it has room.
        let holding = core.holding_events();
        let deliver = holding.then(|| events.clone());
        let deliver = async move {
            match deliver {
                // The permit is dropped at once: the slot it frees is the core's to fill.
                Some(tx) => tx.reserve_owned().await.ok().map(drop),
                None => std::future::pending().await,
            }
        };
        let wake = tokio::select! {
            r = publisher.recv_from(&mut pub_buf) => Wake::Datagram(PeerRole::Publisher, r),
            r = subscriber.recv_from(&mut sub_buf) => Wake::Datagram(PeerRole::Subscriber, r),
            f = tcp.arrived.recv() => Wake::Tcp(f),
            u = updates.recv() => Wake::Signal(u),
            c = commands.recv() => Wake::Command(c),
            m = media.recv() => Wake::Media(m),
            p = deliver, if holding => Wake::Deliver(p),
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        let now = Instant::now();
        match wake {
            Wake::Datagram(role, Ok((n, source))) => {
                let buf = match role {
                    PeerRole::Publisher => &pub_buf,
                    PeerRole::Subscriber => &sub_buf,
                };
                core.handle(
                    now,
                    Input::Datagram {
                        role,
                        proto: str0m::net::Protocol::Udp,
                        source,
                        data: &buf[..n],
                    },
                );
            }
            Wake::Tcp(Some((role, source, data))) => core.handle(
                now,
                Input::Datagram {
                    role,
                    proto: str0m::net::Protocol::Tcp,
                    source,
                    data: &data,
                },
            ),
            Wake::Tcp(None) => {} // never: the links hold a sender
            Wake::Datagram(role, Err(e)) => {
                // ICMP errors (port unreachable) surface here on Linux; not fatal.
                trace!(%role, "udp recv error: {e}");
            }
            Wake::Signal(Some(s)) => core.handle(now, Input::Signal(s)),
            Wake::Signal(None) => core.handle(now, Input::Signal(SignalIn::Ended)),
            Wake::Command(Some(c)) => core.handle(now, Input::Command(c)),
            Wake::Command(None) => {
                // Every handle is gone: leave.
                let reply: crate::sansio::Reply<()> = Box::new(|_| {});
                core.handle(now, Input::Command(Command::Close { reply }));
            }
            Wake::Media(Some(m)) => core.handle(now, Input::Media(m)),
            Wake::Media(None) => {}
            Wake::Deliver(Some(())) => core.handle(now, Input::ReaderReady),
            Wake::Deliver(None) => core.handle(now, Input::ReaderGone),
            Wake::Timeout => core.handle(now, Input::Timeout),
        }
    }
    // The network loop is over: hand the reader what is held (`Disconnected` last), waiting a
    // bounded time for room (a reader that stalls longer sees the stream end instead, which
    // reads as a lost engine).
    let held = core.take_held();
    let flush = async {
        for ev in held {
            if events.send(ev).await.is_err() {
                break;
            }
        }
    };
    if tokio::time::timeout(FINAL_FLUSH, flush).await.is_err() {
        warn!("event reader stalled for {FINAL_FLUSH:?} after the engine stopped");
    }
    // The signal task closes the connection once it has sent what it was given.
    drop(requests);
    if tokio::time::timeout(FINAL_FLUSH, signal_task)
        .await
        .is_err()
    {
        warn!("the signal connection did not close within {FINAL_FLUSH:?}");
    }
}
