//! Media routing: mapping subscriber media sections to remote tracks, frames in and out.

use super::*;

/// At most one keyframe request (PLI) per remote track in this interval.
pub(super) const MIN_PLI_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a keyframe request for a remote track may go out now: somebody reads the track (its
/// queue's receiver is alive and has room: a parked or abandoned subscription whose queue
/// filled up asks for nothing), and the last request is at least [`MIN_PLI_INTERVAL`] old.
pub(super) fn pli_due(
    last: Option<Instant>,
    now: Instant,
    reader_alive: bool,
    queue_free: usize,
) -> bool {
    reader_alive
        && queue_free > 0
        && last.is_none_or(|t| now.saturating_duration_since(t) >= MIN_PLI_INTERVAL)
}

impl Core {
    /// Match the offer's media sections to remote tracks: new msid on a mid → new subscription.
    pub(super) fn map_remote_tracks(&mut self, sdp_text: &str) {
        for s in sdp::sections(sdp_text) {
            let kind = match s.kind {
                SectionKind::Audio => TrackKind::Audio,
                SectionKind::Video => TrackKind::Video,
                _ => continue,
            };
            let mid = Mid::from(s.mid.as_str());
            let sending = s.remote_sends();
            let track_sid = s.track_sid().map(str::to_owned);
            let current = self.remote.get(&mid).map(|r| r.sid.clone());
            match (sending, track_sid, current) {
                (true, Some(sid), Some(cur)) if sid == cur => {}
                (true, Some(sid), cur) => {
                    if let Some(old) = cur {
                        self.remote.remove(&mid);
                        self.emit(EngineEvent::TrackUnsubscribed { track_sid: old });
                    }
                    let participant_sid = s.participant_sid().unwrap_or_default().to_owned();
                    let (identity, (name, encrypted)) = self
                        .participants
                        .get(&participant_sid)
                        .map(|p| {
                            (
                                p.info.identity.clone(),
                                p.tracks
                                    .get(&sid)
                                    .map(|t| (t.name.clone(), t.encrypted))
                                    .unwrap_or_default(),
                            )
                        })
                        .unwrap_or_default();
                    let (track, frames, dropped) = RemoteTrack::open(
                        crate::track::RemoteTrackInfo {
                            sid: sid.clone(),
                            participant_sid: participant_sid.clone(),
                            participant_identity: identity,
                            name,
                            kind,
                            encrypted,
                        },
                        self.options.track_capacity.max(1),
                        self.commands.clone(),
                    );
                    self.remote.insert(
                        mid,
                        RemoteState {
                            sid: sid.clone(),
                            kind,
                            frames,
                            dropped,
                            need_keyframe: kind == TrackKind::Video,
                            last_pli: None,
                        },
                    );
                    info!("subscribed {kind:?} track {sid} of {participant_sid} on mid {mid}");
                    // Never dropped: held until the reader makes room (see `emit`).
                    self.emit(EngineEvent::TrackSubscribed(track));
                }
                (false, _, Some(old)) | (true, None, Some(old)) => {
                    self.remote.remove(&mid);
                    self.emit(EngineEvent::TrackUnsubscribed { track_sid: old });
                }
                _ => {}
            }
        }
    }

    /// Sends a PLI for `mid` when [`pli_due`] allows it.
    pub(super) fn request_keyframe(&mut self, mid: Mid) -> Result<(), EngineError> {
        let now = self.now;
        if let Some(r) = self.remote.get_mut(&mid) {
            if !pli_due(r.last_pli, now, r.frames.reader_alive(), r.frames.free()) {
                return Ok(());
            }
            r.last_pli = Some(now);
        }
        if let Some(mut w) = self.subscriber.rtc.writer(mid)
            && let Err(e) = w.request_keyframe(None, KeyframeRequestKind::Pli)
        {
            debug!("keyframe request on mid {mid}: {e}");
        }
        self.subscriber.drain()
    }

    pub(super) fn on_media_write(&mut self, m: MediaWrite) -> Result<(), EngineError> {
        let Some(t) = self.local_tracks.get(&m.cid) else {
            return Ok(()); // unpublished meanwhile
        };
        let (Some(mid), false) = (t.mid, t.muted) else {
            return Ok(());
        };
        if !self.publisher.connected {
            return Ok(());
        }
        let freq = match t.kind {
            TrackKind::Audio => str0m::media::Frequency::FORTY_EIGHT_KHZ,
            TrackKind::Video => str0m::media::Frequency::NINETY_KHZ,
        };
        let codec = t.codec.to_str0m();
        // A simulcast layer goes out under its rid; one the track was not published with (or
        // a plain write to a simulcast track) has no stream to go to.
        let rid = match (m.layer, t.layers.is_empty()) {
            (None, true) => None,
            (Some(l), false) if t.layers.iter().any(|x| x.quality == l) => {
                Some(str0m::media::Rid::from(l.rid()))
            }
            (layer, _) => {
                trace!(
                    "frame for layer {layer:?} of {} dropped: not published",
                    t.sid
                );
                return Ok(());
            }
        };
        let rtp_time = m.rtp_time.wrapping_add(t.rtp_offset);
        if t.encrypted && t.kind == TrackKind::Audio {
            // Chromium hands its frame decryptor the whole RED payload: plain Opus only (as
            // livekit-client sends it with E2EE). A no-op after the first time.
            self.publisher.rtc.direct_api().set_red_send(mid, false);
        }
        let Some(writer) = self.publisher.rtc.writer(mid) else {
            return Ok(());
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            warn!("no negotiated {codec:?} payload type on mid {mid}");
            return Ok(());
        };
        let writer = match rid {
            Some(rid) => writer.rid(rid),
            None => writer,
        };
        writer
            .write(pt, m.capture, MediaTime::new(rtp_time, freq), m.data)
            .map_err(|source| EngineError::Rtc {
                role: PeerRole::Publisher,
                what: "writing media",
                source,
            })?;
        self.publisher.drain()
    }

    pub(super) fn on_media_data(&mut self, md: str0m::media::MediaData) -> Result<(), EngineError> {
        let mid = md.mid;
        let keyframe = md.is_keyframe();
        let Some(codec) = crate::track::MediaCodec::from_str0m(md.params.spec().codec) else {
            trace!("media in codec {:?} on mid {mid}", md.params.spec().codec);
            return Ok(());
        };
        let Some(r) = self.remote.get_mut(&mid) else {
            trace!("media on unmapped mid {mid}");
            return Ok(());
        };
        let mut want_pli = false;
        // The keyframe that ends a wait follows frames dropped here: it is not contiguous with
        // the last frame the reader got (readers count the loss from this flag).
        let mut contiguous = md.contiguous;
        if r.kind == TrackKind::Video {
            if !md.contiguous {
                r.need_keyframe = true;
            }
            if r.need_keyframe {
                if keyframe {
                    r.need_keyframe = false;
                    contiguous = false;
                } else {
                    want_pli = true;
                }
            }
        }
        if !want_pli {
            let frame = EncodedFrame {
                data: md.data,
                codec,
                rtp_time: md.time.numer(),
                received_at: md.network_time,
                keyframe,
                contiguous,
            };
            match r.frames.push(frame) {
                Ok(()) => {}
                Err(QueueError::Full) => {
                    r.dropped.fetch_add(1, Ordering::Relaxed);
                    if r.kind == TrackKind::Video {
                        r.need_keyframe = true;
                        want_pli = true;
                    }
                }
                Err(QueueError::Closed) => {}
            }
        }
        if want_pli {
            self.request_keyframe(mid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: parked subscriptions (queue full, nobody reading) sent a PLI every 300 ms.
    #[test]
    fn no_keyframe_requests_for_tracks_nobody_reads() {
        let now = Instant::now();
        assert!(pli_due(None, now, true, 1));
        assert!(!pli_due(None, now, true, 0), "queue full: nobody consumes");
        assert!(!pli_due(None, now, false, 256), "receiver dropped");
    }

    #[test]
    fn keyframe_requests_are_at_most_one_per_second() {
        let t0 = Instant::now();
        let mut sent = 0;
        let mut last = None;
        // A decoder asking on every frame at 30 fps for 10 s.
        for i in 0..300u64 {
            let now = t0 + Duration::from_millis(i * 33);
            if pli_due(last, now, true, 10) {
                last = Some(now);
                sent += 1;
            }
        }
        assert_eq!(sent, 10);
        // A clock that went backwards never panics and never floods.
        assert!(!pli_due(Some(t0 + Duration::from_secs(5)), t0, true, 1));
    }
}
