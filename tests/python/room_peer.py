"""A scripted participant on the official LiveKit Python SDK, for the Room API tests.

Usage: room_peer.py ROOM IDENTITY

Reads commands on stdin, one per line, performs each and prints `OK <command>` (or
`ERR <command> <why>`):
  publish-audio NAME [FREQ]   publish a microphone track carrying a tone (default 440 Hz)
  publish-video NAME          publish a 320x240 VP8 camera track (moving bar, 15 fps)
  mute NAME / unmute NAME     mute or unmute one of our tracks
  unpublish NAME              stop publishing a track
  data TEXT                   send TEXT as reliable data on topic "chat"
  leave                       disconnect and exit
Prints `READY <participant_sid>` once connected. Reads LIVEKIT_URL, LIVEKIT_API_KEY and
LIVEKIT_API_SECRET from the environment (set by wavecast-testbed). Exits when stdin closes.
"""

import asyncio
import math
import os
import sys

import numpy as np
from livekit import rtc
from scripted_peer import join_token, serve_commands

SAMPLE_RATE = 48000
WIDTH, HEIGHT, FPS = 320, 240, 15


async def pump_audio(source: rtc.AudioSource, freq: float) -> None:
    n = 0
    spf = SAMPLE_RATE // 100
    while True:
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, spf)
        idx = np.arange(n, n + spf)
        data = (np.sin(2 * math.pi * freq * idx / SAMPLE_RATE) * 12000).astype(np.int16)
        np.copyto(np.frombuffer(frame.data, dtype=np.int16), data)
        await source.capture_frame(frame)
        n += spf


async def pump_video(source: rtc.VideoSource) -> None:
    frames = 0
    buf = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    while True:
        buf[:, :, :3] = 60
        buf[:, :, 3] = 255
        x = (frames * 4) % WIDTH
        buf[:, x:x + 16, :3] = 255
        source.capture_frame(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, buf.tobytes()))
        frames += 1
        await asyncio.sleep(1 / FPS)


async def main() -> None:
    room_name, identity = sys.argv[1], sys.argv[2]
    token = join_token(room_name, identity)
    room = rtc.Room()
    await room.connect(os.environ["LIVEKIT_URL"], token, rtc.RoomOptions(auto_subscribe=False))
    print("READY", room.local_participant.sid, flush=True)

    pubs: dict = {}
    pumps: dict = {}
    async def run(cmd: str, args: list) -> None:
        if cmd == "publish-audio":
            source = rtc.AudioSource(SAMPLE_RATE, 1)
            track = rtc.LocalAudioTrack.create_audio_track(args[0], source)
            pumps[args[0]] = asyncio.ensure_future(
                pump_audio(source, float(args[1]) if len(args) > 1 else 440.0))
            pubs[args[0]] = await room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        elif cmd == "publish-video":
            source = rtc.VideoSource(WIDTH, HEIGHT)
            track = rtc.LocalVideoTrack.create_video_track(args[0], source)
            pumps[args[0]] = asyncio.ensure_future(pump_video(source))
            pubs[args[0]] = await room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.VP8,
                    simulcast=False))
        elif cmd in ("mute", "unmute"):
            pub = pubs[args[0]]
            if cmd == "mute":
                pub.track.mute()
            else:
                pub.track.unmute()
        elif cmd == "unpublish":
            pub = pubs.pop(args[0])
            await room.local_participant.unpublish_track(pub.sid)
            pumps.pop(args[0]).cancel()
        elif cmd == "data":
            await room.local_participant.publish_data(
                " ".join(args).encode(), reliable=True, topic="chat")
        else:
            raise ValueError("unknown command")

    await serve_commands(room, run)


if __name__ == "__main__":
    asyncio.run(main())
