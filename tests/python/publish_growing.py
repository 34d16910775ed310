"""Publish VP8 video whose resolution grows mid-stream, with the official LiveKit Python SDK.

Interop peer for the resolution-growth tests: a camera track of SMALL (320x180) frames for
--small-seconds, then LARGE (1280x720) frames until --seconds, as browsers do when their bandwidth
estimate ramps up. Resolution is kept (no CPU/bandwidth downscaling) so the receiver sees exactly
these two sizes. Each picture is flat blue-ish with a white bar that moves, different per size.

Prints, one per line:
  READY                       once the track is published
  SWITCH <unix time, seconds> when the first large frame is handed to the SDK
  DONE {json}                 at the end (frames of each size)
Reads LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET from the environment.
"""

import argparse
import asyncio
import json
import os
import time

import numpy as np
from livekit import api, rtc

SMALL = (320, 180)
LARGE = (1280, 720)


def picture(size, n):
    w, h = size
    buf = np.empty((h, w, 4), dtype=np.uint8)
    buf[:, :, 0] = 40
    buf[:, :, 1] = 120
    buf[:, :, 2] = 200
    buf[:, :, 3] = 255
    x = (n * 4) % max(1, w - 16)
    buf[:, x:x + 16, :3] = 255
    return rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, buf.tobytes())


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--small-seconds", type=float, default=4.0)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--fps", type=int, default=30)
    args = p.parse_args()

    token = (
        api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
        .with_identity(args.identity)
        .with_grants(api.VideoGrants(room_join=True, room=args.room))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(os.environ["LIVEKIT_URL"], token)
    source = rtc.VideoSource(*LARGE)
    track = rtc.LocalVideoTrack.create_video_track("growing", source)
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        video_codec=rtc.VideoCodec.VP8,
        simulcast=False,
        video_encoding=rtc.VideoEncoding(max_framerate=args.fps, max_bitrate=2_500_000),
        degradation_preference=rtc.DegradationPreference.MAINTAIN_RESOLUTION,
    )
    await room.local_participant.publish_track(track, options)
    print("READY", flush=True)

    counts = {"small": 0, "large": 0}
    t0 = time.monotonic()
    n = 0
    switched = False
    while time.monotonic() - t0 < args.seconds:
        large = time.monotonic() - t0 >= args.small_seconds
        if large and not switched:
            switched = True
            print("SWITCH", f"{time.time():.3f}", flush=True)
        source.capture_frame(picture(LARGE if large else SMALL, n))
        counts["large" if large else "small"] += 1
        n += 1
        await asyncio.sleep(max(0.0, t0 + n / args.fps - time.monotonic()))
    print("DONE", json.dumps(counts), flush=True)
    await room.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
