"""Interop peer for the wavecast engine tests, on the official LiveKit Python SDK.

Usage: engine_peer.py MODE ROOM IDENTITY [SECONDS]

Modes:
  publish    publish a 440 Hz tone (48 kHz mono) and a 320x240 VP8 test video for SECONDS
  subscribe  subscribe to everything for SECONDS; report per track: frames, resolution,
             dominant audio frequency
  data-echo  count reliable data packets in order and send N numbered ones back

Prints `READY` once connected and `RESULT {json}` at the end. Reads LIVEKIT_URL,
LIVEKIT_API_KEY, LIVEKIT_API_SECRET from the environment (set by wavecast-testbed).
"""

import asyncio
import json
import math
import os
import sys
import time

import numpy as np
from livekit import api, rtc

SAMPLE_RATE = 48000
TONE_HZ = 440.0
WIDTH, HEIGHT, FPS = 320, 240, 30


def token(room: str, identity: str) -> str:
    return (
        api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room, can_publish=True,
                                     can_subscribe=True, can_publish_data=True))
        .to_jwt()
    )


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    if len(samples) < rate // 2:
        return 0.0
    x = samples.astype(np.float64)
    x = x * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x))
    spec[:5] = 0
    k = int(np.argmax(spec))
    return k * rate / len(x)


async def publish(room: rtc.Room, seconds: float) -> dict:
    audio = rtc.AudioSource(SAMPLE_RATE, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("tone", audio)
    await room.local_participant.publish_track(
        atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    video = rtc.VideoSource(WIDTH, HEIGHT)
    vtrack = rtc.LocalVideoTrack.create_video_track("pattern", video)
    await room.local_participant.publish_track(
        vtrack, rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.VP8, simulcast=False,
            # The default encoding for a 320x240 track caps the frame rate below 30 fps.
            video_encoding=rtc.VideoEncoding(max_framerate=FPS, max_bitrate=600_000)))
    print("READY", flush=True)

    async def audio_loop():
        n = 0
        spf = SAMPLE_RATE // 100
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, spf)
            idx = np.arange(n, n + spf)
            data = (np.sin(2 * math.pi * TONE_HZ * idx / SAMPLE_RATE) * 12000).astype(np.int16)
            np.copyto(np.frombuffer(frame.data, dtype=np.int16), data)
            await audio.capture_frame(frame)
            n += spf

    async def video_loop():
        frames = 0
        t0 = time.monotonic()
        buf = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
        while time.monotonic() - t0 < seconds:
            x = (frames * 4) % WIDTH
            buf[:, :, 0] = 40
            buf[:, :, 1] = 120
            buf[:, :, 2] = 200
            buf[:, :, 3] = 255
            buf[:, x:x + 16, :3] = 255
            video.capture_frame(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, buf.tobytes()))
            frames += 1
            next_at = t0 + frames / FPS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        return frames

    _, frames = await asyncio.gather(audio_loop(), video_loop())
    return {"video_frames_sent": frames}


async def subscribe(room: rtc.Room, seconds: float) -> dict:
    tracks: dict = {}
    tasks = []
    audio_chunks: dict = {}

    async def read_audio(track: rtc.Track, key: str):
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        chunks = audio_chunks.setdefault(key, [])
        async for ev in stream:
            chunks.append(np.frombuffer(ev.frame.data, dtype=np.int16).copy())
            tracks[key]["frames"] += 1

    async def read_video(track: rtc.Track, key: str):
        stream = rtc.VideoStream(track)
        async for ev in stream:
            info = tracks[key]
            info["frames"] += 1
            info["width"] = ev.frame.width
            info["height"] = ev.frame.height

    def on_sub(track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant):
        key = f"{p.identity}/{pub.name}"
        tracks[key] = {"kind": "audio" if track.kind == rtc.TrackKind.KIND_AUDIO else "video",
                       "frames": 0}
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(read_audio(track, key)))
        else:
            tasks.append(asyncio.ensure_future(read_video(track, key)))

    room.on("track_subscribed", on_sub)
    for p in room.remote_participants.values():
        for pub in p.track_publications.values():
            if pub.track is not None:
                on_sub(pub.track, pub, p)
    print("READY", flush=True)
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    for key, chunks in audio_chunks.items():
        if not chunks:
            continue
        allx = np.concatenate(chunks).astype(np.float64)
        # Analyse the loudest second: the publisher may start late or stop early.
        best, best_rms = 0, -1.0
        for start in range(0, max(1, len(allx) - SAMPLE_RATE), SAMPLE_RATE // 4):
            r = float(np.sqrt(np.mean(allx[start:start + SAMPLE_RATE] ** 2)))
            if r > best_rms:
                best, best_rms = start, r
        window = allx[best:best + SAMPLE_RATE]
        tracks[key]["rms"] = best_rms
        tracks[key]["freq"] = dominant_frequency(window, SAMPLE_RATE) if best_rms > 0 else 0.0
        tracks[key]["voiced_seconds"] = float(sum(
            1 for c in chunks if np.sqrt(np.mean(c.astype(np.float64) ** 2)) > 300) * 0.01)
    return {"tracks": tracks}


async def data_echo(room: rtc.Room, seconds: float, count: int) -> dict:
    got = []
    lossy = []
    done = asyncio.Event()

    def on_data(pkt: rtc.DataPacket):
        if pkt.topic == "lossy":
            lossy.append(int(pkt.data.decode()))
            return
        if pkt.topic != "seq":
            return
        got.append(int(pkt.data.decode()))
        if len(got) >= count:
            done.set()

    room.on("data_received", on_data)
    print("READY", flush=True)
    try:
        await asyncio.wait_for(done.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    # Lossy packets were sent before the reliable ones finished: give stragglers a moment.
    await asyncio.sleep(0.5)
    in_order = got == list(range(len(got)))
    for i in range(count):
        await room.local_participant.publish_data(str(i).encode(), reliable=True, topic="seq")
    for i in range(200):
        await room.local_participant.publish_data(str(i).encode(), reliable=False, topic="lossy")
    await asyncio.sleep(2.0)
    return {"received": len(got), "in_order": in_order, "sent": count, "lossy_received": len(lossy)}


async def main() -> None:
    mode, room_name, identity = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    room = rtc.Room()
    await room.connect(os.environ["LIVEKIT_URL"], token(room_name, identity),
                       rtc.RoomOptions(auto_subscribe=True))
    try:
        if mode == "publish":
            result = await publish(room, seconds)
        elif mode == "subscribe":
            result = await subscribe(room, seconds)
        elif mode == "data-echo":
            count = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
            result = await data_echo(room, seconds, count)
        else:
            raise SystemExit(f"unknown mode {mode}")
        print("RESULT " + json.dumps(result), flush=True)
    finally:
        await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
