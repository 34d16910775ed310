"""Join a room with the official LiveKit Python SDK and publish a microphone track carrying a tone.

Interop peer for the integration tests. Prints, one per line:
  READY {"participant_sid": ..., "track_sid": ...}   once the track is published
  MUTED <track_sid> / UNMUTED <track_sid>            when the server mutes or unmutes it
  DISCONNECTED <reason>                              when the server removes us (then exits 0)
Stops by itself after --seconds.
"""

import argparse
import asyncio
import json
import math
import os

from livekit import api, rtc

SAMPLE_RATE = 48000
FRAME = SAMPLE_RATE // 100  # 10 ms


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--frequency", type=float, default=440.0)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()

    token = (
        api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
        .with_identity(args.identity)
        .with_name(args.name or args.identity)
        .with_grants(api.VideoGrants(room_join=True, room=args.room))
        .to_jwt()
    )
    room = rtc.Room()
    gone = asyncio.Event()

    @room.on("disconnected")
    def _on_disconnected(reason) -> None:
        print("DISCONNECTED", reason, flush=True)
        gone.set()

    @room.on("track_muted")
    def _on_muted(participant, publication) -> None:
        if participant.identity == args.identity:
            print("MUTED", publication.sid, flush=True)

    @room.on("track_unmuted")
    def _on_unmuted(participant, publication) -> None:
        if participant.identity == args.identity:
            print("UNMUTED", publication.sid, flush=True)

    await room.connect(os.environ["LIVEKIT_URL"], token)
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track, options)
    print(
        "READY",
        json.dumps({"participant_sid": room.local_participant.sid, "track_sid": publication.sid}),
        flush=True,
    )

    frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME)
    samples = frame.data  # int16 view of the frame buffer
    phase = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + args.seconds
    while not gone.is_set() and loop.time() < end:
        for i in range(FRAME):
            samples[i] = int(8000 * math.sin(2 * math.pi * args.frequency * (phase + i) / SAMPLE_RATE))
        phase += FRAME
        await source.capture_frame(frame)
    if not gone.is_set():
        await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
