"""Subscribe with end-to-end encryption (the official Python SDK's frame cryptor, a shared key)
and measure what decrypts.

Interop peer for wavecast's E2EE tests. Joins --room as --identity with
E2EEOptions(shared_key=--e2ee-key), waits for --participant's video and audio, reads them for
--seconds and prints, one per line:
  READY {}
  RESULT {"video_frames": n, "width": w, "height": h, "audio_frames": m, "tone_hz": f,
          "e2ee_states": ["OK", ...]}
The tone is estimated from zero crossings of the decoded audio after its first second. A failure prints
ERROR and exits 1.
"""

import argparse
import asyncio
import json
import os
import sys

from livekit import rtc
from livekit.rtc._proto import e2ee_pb2

from scripted_peer import join_token


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--participant", required=True)
    p.add_argument("--e2ee-key", required=True)
    p.add_argument("--seconds", type=float, default=6.0)
    args = p.parse_args()

    states = []
    room = rtc.Room()
    room.on(
        "e2ee_state_changed",
        lambda participant, state: states.append(e2ee_pb2.EncryptionState.Name(state)),
    )
    tracks = {}
    got = asyncio.Event()

    def on_track(track, _publication, participant) -> None:
        if participant.identity != args.participant:
            return
        tracks[track.kind] = track
        if rtc.TrackKind.KIND_VIDEO in tracks and rtc.TrackKind.KIND_AUDIO in tracks:
            got.set()

    room.on("track_subscribed", on_track)
    options = rtc.RoomOptions(
        encryption=rtc.E2EEOptions(
            key_provider_options=rtc.KeyProviderOptions(shared_key=args.e2ee_key.encode())
        )
    )
    await room.connect(os.environ["LIVEKIT_URL"], join_token(args.room, args.identity), options)
    print("READY {}", flush=True)
    await asyncio.wait_for(got.wait(), 20)

    result = {"video_frames": 0, "width": 0, "height": 0, "audio_frames": 0}
    crossings = 0
    samples = 0
    last = 0

    async def read_video() -> None:
        async for ev in rtc.VideoStream(tracks[rtc.TrackKind.KIND_VIDEO]):
            result["video_frames"] += 1
            result["width"], result["height"] = ev.frame.width, ev.frame.height

    async def read_audio() -> None:
        nonlocal crossings, samples, last
        stream = rtc.AudioStream(tracks[rtc.TrackKind.KIND_AUDIO], sample_rate=48000, num_channels=1)
        async for ev in stream:
            result["audio_frames"] += 1
            # The first second is the stream starting up (silence, concealment): not counted.
            if result["audio_frames"] <= 100:
                continue
            for s in ev.frame.data:
                if (s >= 0) != (last >= 0):
                    crossings += 1
                last = s
            samples += ev.frame.samples_per_channel

    readers = [asyncio.ensure_future(read_video()), asyncio.ensure_future(read_audio())]
    await asyncio.sleep(args.seconds)
    for r in readers:
        r.cancel()
    result["tone_hz"] = crossings / 2 / (samples / 48000) if samples else 0.0
    result["e2ee_states"] = states
    print("RESULT", json.dumps(result), flush=True)
    await room.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # reported to the test
        print("ERROR", repr(e), flush=True)
        sys.exit(1)
