"""Joins a room with a token handed out by `wavecast serve`, on the official LiveKit Python SDK.

Usage: service_peer.py MODE TOKEN [SECONDS]

Modes:
  join     connect, try to publish a microphone track (a viewer token must be refused), then stay
           connected for SECONDS or until the server disconnects us
  publish  connect, publish a 440 Hz tone for SECONDS or until the server disconnects us

Prints `CONNECT_FAILED <error>` (exit 2) when the server refuses the token, otherwise
`JOINED <identity>`, `PUBLISH ok` or `PUBLISH refused <error>`, `READY` once settled,
`DISCONNECTED <reason>` when the server disconnects us, and `RESULT {json}` at the end.
Reads LIVEKIT_URL from the environment (set by wavecast-testbed).
"""

import asyncio
import json
import math
import os
import sys

import numpy as np
from livekit import rtc

SAMPLE_RATE = 48000


async def main() -> None:
    mode, token = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    room = rtc.Room()
    disconnected = asyncio.Event()
    reason = {"value": None}

    def on_disconnected(r):
        reason["value"] = str(r)
        print(f"DISCONNECTED {r}", flush=True)
        disconnected.set()

    room.on("disconnected", on_disconnected)
    try:
        await asyncio.wait_for(room.connect(os.environ["LIVEKIT_URL"], token), 15)
    except Exception as e:  # the SDK raises ConnectError; a timeout is a refusal too
        print(f"CONNECT_FAILED {type(e).__name__}: {e}", flush=True)
        sys.exit(2)
    print(f"JOINED {room.local_participant.identity}", flush=True)

    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    published = False
    try:
        await asyncio.wait_for(
            room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)),
            8)
        published = True
        print("PUBLISH ok", flush=True)
    except Exception as e:
        print(f"PUBLISH refused {type(e).__name__}: {e}", flush=True)
    if mode == "publish" and not published:
        sys.exit(3)
    print("READY", flush=True)

    async def tone():
        n = 0
        spf = SAMPLE_RATE // 100
        while not disconnected.is_set():
            frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, spf)
            idx = np.arange(n, n + spf)
            data = (np.sin(2 * math.pi * 440.0 * idx / SAMPLE_RATE) * 12000).astype(np.int16)
            np.copyto(np.frombuffer(frame.data, dtype=np.int16), data)
            await source.capture_frame(frame)
            n += spf

    sender = asyncio.create_task(tone()) if published else None
    try:
        await asyncio.wait_for(disconnected.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    if sender:
        sender.cancel()
    print("RESULT " + json.dumps({"published": published, "disconnected": reason["value"]}),
          flush=True)
    if not disconnected.is_set():
        await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
