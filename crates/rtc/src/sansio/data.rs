//! Data packets: sending on our publisher channels, decoding what arrives.

use super::*;
use crate::data_message::DataMessage;
use crate::wire::Incoming;

impl Core {
    pub(super) fn send_data(
        &mut self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> Result<(), EngineError> {
        #[allow(deprecated)]
        let value = proto::data_packet::Value::User(proto::UserPacket {
            participant_sid: self.local.sid.clone(),
            participant_identity: self.local.identity.clone(),
            payload,
            destination_identities: options.destination_identities.clone(),
            topic: options.topic,
            ..Default::default()
        });
        self.send_packet(value, options.reliable, options.destination_identities)
    }

    /// Send a data-stream or RPC packet on the reliable channel.
    pub(super) fn send_message(
        &mut self,
        message: DataMessage,
        destination_identities: Vec<String>,
    ) -> Result<(), EngineError> {
        self.send_packet(message.into_proto(), true, destination_identities)
    }

    fn send_packet(
        &mut self,
        value: proto::data_packet::Value,
        reliable: bool,
        destination_identities: Vec<String>,
    ) -> Result<(), EngineError> {
        let (id, label) = if reliable {
            (self.data.reliable, "_reliable")
        } else {
            (self.data.lossy, "_lossy")
        };
        let Some(id) = id else {
            return Err(EngineError::ChannelNotOpen { label });
        };
        // End to end: sealed with the session's key, never sent in clear when that fails.
        let value = match &self.options.data_sealer {
            None => value,
            Some(sealer) => match sealer.seal(&self.local.identity, &value) {
                Ok(Some(sealed)) => sealed,
                Ok(None) => value,
                Err(()) => return Err(EngineError::DataNotEncrypted),
            },
        };
        let sequence = if reliable {
            self.data.reliable_seq += 1;
            self.data.reliable_seq
        } else {
            0
        };
        let kind = if reliable {
            proto::data_packet::Kind::Reliable
        } else {
            proto::data_packet::Kind::Lossy
        };
        #[allow(deprecated)]
        let packet = proto::DataPacket {
            kind: kind as i32,
            participant_identity: self.local.identity.clone(),
            destination_identities,
            sequence,
            participant_sid: self.local.sid.clone(),
            value: Some(value),
        };
        let bytes = packet.encode_to_vec();
        if bytes.len() > MAX_DATA_PACKET {
            return Err(EngineError::DataTooLarge {
                len: bytes.len(),
                max: MAX_DATA_PACKET,
            });
        }
        if reliable {
            if self.data.reliable_backlog.len() >= RELIABLE_BACKLOG {
                return Err(EngineError::DataBufferFull {
                    label,
                    queued: self.data.reliable_backlog.len(),
                });
            }
            // Keep order: everything goes through the backlog, which flushes what SCTP accepts.
            self.data.reliable_backlog.push_back(bytes);
            return self.flush_reliable();
        }
        let Some(mut ch) = self.publisher.rtc.channel(id) else {
            return Err(EngineError::ChannelNotOpen { label });
        };
        let accepted = ch.write(true, &bytes).map_err(|source| EngineError::Rtc {
            role: PeerRole::Publisher,
            what: "writing to a data channel",
            source,
        })?;
        if !accepted {
            // Lossy data: a full send buffer drops the packet.
            self.data.lossy_drops += 1;
        }
        self.publisher.drain()
    }

    /// Write queued reliable packets while SCTP accepts them.
    pub(super) fn flush_reliable(&mut self) -> Result<(), EngineError> {
        let Some(id) = self.data.reliable else {
            return Ok(());
        };
        while let Some(bytes) = self.data.reliable_backlog.front() {
            let Some(mut ch) = self.publisher.rtc.channel(id) else {
                return Ok(()); // not open yet: keep them queued
            };
            let accepted = ch.write(true, bytes).map_err(|source| EngineError::Rtc {
                role: PeerRole::Publisher,
                what: "writing to the reliable data channel",
                source,
            })?;
            self.publisher.drain()?;
            if !accepted {
                break;
            }
            self.data.reliable_backlog.pop_front();
        }
        Ok(())
    }

    pub(super) fn on_data_packet(&mut self, bytes: &[u8], reliable: bool) {
        match crate::wire::decode_data_packet(bytes) {
            Ok(Incoming::User {
                participant_identity,
                topic,
                payload,
            }) => self.emit(EngineEvent::DataReceived {
                participant_identity,
                topic,
                payload,
                reliable,
            }),
            Ok(Incoming::Speakers(list)) => self.emit(EngineEvent::ActiveSpeakers(list)),
            Ok(Incoming::Message {
                participant_identity,
                message,
            }) => self.emit(EngineEvent::DataMessage {
                participant_identity,
                message: Box::new(message),
            }),
            Ok(Incoming::Encrypted {
                participant_identity,
                packet,
            }) => self.emit(EngineEvent::EncryptedData {
                participant_identity,
                packet: Box::new(packet),
                reliable,
            }),
            Ok(Incoming::Other) => trace!("data packet of another kind ignored"),
            Err(e) => debug!("undecodable data packet ({} bytes): {e}", bytes.len()),
        }
    }
}
