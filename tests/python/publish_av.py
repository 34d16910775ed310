"""Publish a tone (microphone) and VP8 video (camera) with the official LiveKit Python SDK.

Interop peer for the recorder tests. The video is a moving bar on grey at --width x --height
and, from --switch-at seconds on, at --switch-width x --switch-height (a resolution change in
the middle of the stream, as browsers do when their bandwidth estimate grows). No simulcast.
Prints, one per line:
  READY {"participant_sid": ..., "audio_sid": ..., "video_sid": ...}
  SENT <unix seconds> <frames_sent>      the encoder's frames sent (WebRTC stats), twice a second
  DONE {"video_frames": n, "audio_frames": m}
Stops by itself after --seconds. --e2ee-key KEY encrypts end to end with a shared key.
"""

import argparse
import asyncio
import json
import math
import os
import time

from livekit import api, rtc

SAMPLE_RATE = 48000
FRAME = SAMPLE_RATE // 100  # 10 ms


def picture(width: int, height: int, n: int) -> bytearray:
    buf = bytearray(b"\x60\x60\x60\xff") * (width * height)
    x0 = (n * 4) % width
    bar = bytes(b"\xff\x40\x20\xff") * min(16, width - x0)
    for y in range(0, height):
        start = (y * width + x0) * 4
        buf[start : start + len(bar)] = bar
    return buf


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--frequency", type=float, default=440.0)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--switch-at", type=float, default=0.0)
    p.add_argument("--switch-width", type=int, default=640)
    p.add_argument("--switch-height", type=int, default=360)
    p.add_argument("--e2ee-key", help="end-to-end encryption with this shared key (PBKDF2)")
    args = p.parse_args()

    token = (
        api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
        .with_identity(args.identity)
        .with_name(args.identity)
        .with_grants(api.VideoGrants(room_join=True, room=args.room))
        .to_jwt()
    )
    room = rtc.Room()
    options = rtc.RoomOptions()
    if args.e2ee_key:
        options.encryption = rtc.E2EEOptions(
            key_provider_options=rtc.KeyProviderOptions(shared_key=args.e2ee_key.encode())
        )
    await room.connect(os.environ["LIVEKIT_URL"], token, options)
    audio = rtc.AudioSource(SAMPLE_RATE, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("microphone", audio)
    apub = await room.local_participant.publish_track(
        atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    video = rtc.VideoSource(args.width, args.height)
    vtrack = rtc.LocalVideoTrack.create_video_track("camera", video)
    vopts = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=rtc.VideoCodec.VP8
    )
    vopts.degradation_preference = 2  # MAINTAIN_RESOLUTION: size changes only when we change it
    vpub = await room.local_participant.publish_track(vtrack, vopts)
    print(
        "READY",
        json.dumps(
            {
                "participant_sid": room.local_participant.sid,
                "audio_sid": apub.sid,
                "video_sid": vpub.sid,
            }
        ),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + args.seconds
    counts = {"video": 0, "audio": 0}

    async def send_audio() -> None:
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME)
        samples = frame.data
        phase = 0
        while loop.time() < end:
            for i in range(FRAME):
                samples[i] = int(
                    8000 * math.sin(2 * math.pi * args.frequency * (phase + i) / SAMPLE_RATE)
                )
            phase += FRAME
            await audio.capture_frame(frame)
            counts["audio"] += 1

    async def send_video() -> None:
        n = 0
        while True:
            due = start + n / args.fps
            if due >= end:
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            switched = args.switch_at > 0 and due - start >= args.switch_at
            w, h = (args.switch_width, args.switch_height) if switched else (args.width, args.height)
            video.capture_frame(rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, picture(w, h, n)))
            counts["video"] += 1
            n += 1

    async def report() -> None:
        while loop.time() < end + 0.6:
            await asyncio.sleep(0.5)
            sent = 0
            for s in await vtrack.get_stats():
                if s.HasField("outbound_rtp"):
                    sent = max(sent, s.outbound_rtp.outbound.frames_sent)
            print("SENT", f"{time.time():.3f}", sent, flush=True)

    await asyncio.gather(send_audio(), send_video(), report())
    print("DONE", json.dumps({"video_frames": counts["video"], "audio_frames": counts["audio"]}), flush=True)
    await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
