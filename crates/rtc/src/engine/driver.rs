//! The I/O driver: the engine task's loop (sockets, signal, commands, media, timers) and the
//! hand-off of events to the reader.

use super::resume::ResumeCause;
use super::*;

/// How long a failed publisher connection waits for the server's Leave before the engine stops.
const LEAVE_GRACE: Duration = Duration::from_millis(1000);

enum Wake {
    Datagram(PeerRole, std::io::Result<(usize, SocketAddr)>),
    Signal(Option<SignalEvent>),
    Command(Option<Command>),
    Media(Option<MediaWrite>),
    /// The reader made room for the oldest held event (`Err`: the reader is gone).
    Deliver(Option<mpsc::OwnedPermit<EngineEvent>>),
    Timeout,
}

impl Core {
    pub(super) async fn run(
        mut self,
        mut signal_events: SignalEvents,
        mut commands: mpsc::Receiver<Command>,
        mut media: mpsc::Receiver<MediaWrite>,
    ) {
        let pub_sock = self.publisher.socket.clone();
        let sub_sock = self.subscriber.socket.clone();
        let mut pub_buf = vec![0u8; RECV_BUF];
        let mut sub_buf = vec![0u8; RECV_BUF];
        let mut failed_at: Option<Instant> = None;
        let reason = loop {
            let now = Instant::now();
            let deadline = self
                .publisher
                .next_timeout
                .min(self.subscriber.next_timeout)
                .min(now + Duration::from_millis(100))
                .max(now);
            // Never wait for the reader here: held events go out when a permit is ready.
            let holding = !self.held.is_empty();
            let deliver = holding.then(|| self.events.clone());
            let deliver = async move {
                match deliver {
                    Some(tx) => tx.reserve_owned().await.ok(),
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                r = pub_sock.recv_from(&mut pub_buf) => Wake::Datagram(PeerRole::Publisher, r),
                r = sub_sock.recv_from(&mut sub_buf) => Wake::Datagram(PeerRole::Subscriber, r),
                e = signal_events.recv() => Wake::Signal(e),
                c = commands.recv() => Wake::Command(c),
                m = media.recv() => Wake::Media(m),
                p = deliver, if holding => Wake::Deliver(p),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
            };
            let result = match wake {
                Wake::Datagram(role, Ok((n, from))) => {
                    let (peer, buf) = match role {
                        PeerRole::Publisher => (&mut self.publisher, &pub_buf),
                        PeerRole::Subscriber => (&mut self.subscriber, &sub_buf),
                    };
                    peer.receive(from, &buf[..n])
                }
                Wake::Datagram(role, Err(e)) => {
                    // ICMP errors (port unreachable) surface here on Linux; not fatal.
                    trace!(%role, "udp recv error: {e}");
                    Ok(())
                }
                Wake::Signal(Some(SignalEvent::Message(msg))) => self.on_signal(*msg).await,
                Wake::Signal(Some(SignalEvent::Close(why))) => {
                    let why = format!("signal lost ({why})");
                    match self
                        .resume(&mut signal_events, &why, ResumeCause::SignalLost)
                        .await
                    {
                        Ok(()) => Ok(()),
                        Err(why) => break DisconnectReason::SignalClosed(why),
                    }
                }
                Wake::Signal(None) => {
                    break DisconnectReason::SignalClosed("signal client ended".into());
                }
                Wake::Command(Some(Command::Close { reply })) => {
                    self.leave().await;
                    let _ = reply.send(());
                    break DisconnectReason::ClientInitiated;
                }
                Wake::Command(Some(c)) => self.on_command(c).await,
                Wake::Command(None) => {
                    self.leave().await;
                    break DisconnectReason::ClientInitiated;
                }
                Wake::Media(Some(m)) => self.on_media_write(m),
                Wake::Media(None) => Ok(()),
                Wake::Deliver(Some(permit)) => {
                    if let Some(ev) = self.held.pop_front() {
                        permit.send(ev);
                    }
                    // And whatever else fits now.
                    while let Some(ev) = self.held.pop_front() {
                        match self.events.try_send(ev) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(ev)) => {
                                self.held.push_front(ev);
                                break;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => self.held.clear(),
                        }
                    }
                    Ok(())
                }
                Wake::Deliver(None) => {
                    self.held.clear(); // nobody reads any more
                    Ok(())
                }
                Wake::Timeout => Ok(()),
            };
            if let Err(e) = result {
                warn!("engine: {e}");
            }
            if let Some(reason) = self.stop.take() {
                self.signal.close().await;
                break reason;
            }
            if std::mem::take(&mut self.resume_requested)
                && let Err(why) = self
                    .resume(
                        &mut signal_events,
                        "the server asked us to resume",
                        ResumeCause::ServerAsked,
                    )
                    .await
            {
                break DisconnectReason::SignalClosed(why);
            }
            let now = Instant::now();
            if let Err(e) = self.publisher.tick(now) {
                warn!("engine: {e}");
            }
            if let Err(e) = self.subscriber.tick(now) {
                warn!("engine: {e}");
            }
            if let Err(e) = self.handle_peer_events().await {
                warn!("engine: {e}");
            }
            if let Err(reason) = self.check_media_path(now, &mut signal_events).await {
                break reason;
            }
            self.expire_pending_publish(now);
            if !self.reliable_backlog.is_empty()
                && let Err(e) = self.flush_reliable()
            {
                warn!("engine: {e}");
            }
            if !self.publisher.rtc.is_alive() && self.publisher.connected {
                // When the server removes us it closes the connections (an SCTP abort over
                // UDP) and sends a Leave over the signal; the abort often arrives first. Wait
                // a moment for the Leave so we follow it instead of rejoining.
                let since = *failed_at.get_or_insert(now);
                if now.duration_since(since) >= LEAVE_GRACE {
                    break DisconnectReason::TransportFailed(PeerRole::Publisher);
                }
            }
        };
        info!("engine stopped: {reason:?}");
        // The network loop is over: hand the reader what is held, then Disconnected, waiting a
        // bounded time for room (a reader that stalls longer sees the stream end instead, which
        // reads as a lost engine).
        self.held.push_back(EngineEvent::Disconnected(reason));
        let events = self.events.clone();
        let held = std::mem::take(&mut self.held);
        let flush = async move {
            for ev in held {
                if events.send(ev).await.is_err() {
                    break;
                }
            }
        };
        if tokio::time::timeout(FINAL_FLUSH, flush).await.is_err() {
            warn!("event reader stalled for {FINAL_FLUSH:?} after the engine stopped");
        }
    }

    /// Hand an event to the reader without waiting (see [`EngineEvent`] for the policy).
    ///
    /// Droppable events (speaker and quality updates, lossy data) go out only when the stream
    /// has room and nothing is held; otherwise they are dropped and counted. Every other event
    /// (roster changes, subscriptions, transport states, reliable data) is never dropped: when
    /// the stream is full it is held, in order, and the loop delivers it as the reader makes
    /// room.
    pub(super) fn emit(&mut self, ev: EngineEvent) {
        let droppable = ev.is_droppable();
        if !self.held.is_empty() {
            if droppable {
                self.count_drop(&ev);
            } else {
                self.held.push_back(ev);
                self.note_held();
            }
            return;
        }
        match self.events.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) if droppable => self.count_drop(&ev),
            Err(mpsc::error::TrySendError::Full(ev)) => {
                self.held.push_back(ev);
                self.note_held();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn count_drop(&self, ev: &EngineEvent) {
        self.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
        debug!("event stream full, dropped {ev:?}");
    }

    fn note_held(&self) {
        self.counters
            .held_peak
            .fetch_max(self.held.len() as u64, Ordering::Relaxed);
    }

    pub(super) async fn handle_peer_events(&mut self) -> Result<(), EngineError> {
        while let Some(ev) = self.publisher.events.pop_front() {
            self.on_peer_event(PeerRole::Publisher, ev).await?;
        }
        while let Some(ev) = self.subscriber.events.pop_front() {
            self.on_peer_event(PeerRole::Subscriber, ev).await?;
        }
        Ok(())
    }

    pub(super) async fn on_peer_event(
        &mut self,
        role: PeerRole,
        ev: Event,
    ) -> Result<(), EngineError> {
        match ev {
            Event::Connected => {
                info!(%role, "connected (ICE + DTLS)");
                match role {
                    PeerRole::Publisher => self.publisher.connected = true,
                    PeerRole::Subscriber => self.subscriber.connected = true,
                }
                self.emit(EngineEvent::Transport {
                    role,
                    state: TransportState::Connected,
                });
            }
            Event::IceConnectionStateChange(s) => {
                debug!(%role, "ICE {s:?}");
                if s == IceConnectionState::Disconnected {
                    self.emit(EngineEvent::Transport {
                        role,
                        state: TransportState::Disconnected,
                    });
                }
            }
            Event::ChannelOpen(id, label) => {
                info!(%role, "data channel {label} open");
                if role == PeerRole::Subscriber {
                    self.sub_channels.insert(id, label != "_lossy");
                }
                self.emit(EngineEvent::DataChannelOpen { role, label });
            }
            Event::ChannelData(d) => {
                let reliable = match role {
                    PeerRole::Subscriber => self.sub_channels.get(&d.id).copied().unwrap_or(true),
                    PeerRole::Publisher => Some(d.id) == self.reliable,
                };
                self.on_data_packet(&d.data, reliable);
            }
            Event::MediaData(md) => self.on_media_data(md)?,
            Event::KeyframeRequest(kr) if role == PeerRole::Publisher => {
                if let Some(t) = self.local_tracks.values().find(|t| t.mid == Some(kr.mid)) {
                    debug!("keyframe requested for {} ({:?})", t.sid, kr.kind);
                    t.shared.keyframe_requested.store(true, Ordering::Relaxed);
                }
            }
            Event::EgressBitrateEstimate(bwe) => {
                let bps = match bwe {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => estimate.as_u64(),
                    str0m::bwe::BweKind::Remb { estimate, .. } => estimate.as_u64(),
                    _ => 0,
                };
                for t in self.local_tracks.values() {
                    t.shared.target_bitrate.store(bps, Ordering::Relaxed);
                }
            }
            Event::MediaIngressStats(st) => {
                let way = rtp_stats::Way::In;
                self.counters.rtp.note_rtt(way, st.rtt);
                let key = (role, way, st.mid, st.rid);
                let counts = [st.nacks, st.plis, st.packets];
                self.rtp_acc.add(&self.counters.rtp, key, counts);
            }
            Event::MediaEgressStats(st) => {
                let way = rtp_stats::Way::Out;
                self.counters.rtp.note_rtt(way, st.rtt);
                let key = (role, way, st.mid, st.rid);
                let counts = [st.nacks, st.plis, st.packets];
                self.rtp_acc.add(&self.counters.rtp, key, counts);
            }
            Event::MediaAdded(m) => debug!(%role, "media added: mid {} {:?}", m.mid, m.kind),
            other => trace!(%role, "rtc event {other:?}"),
        }
        Ok(())
    }
}
