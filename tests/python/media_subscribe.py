"""Subscribe to a participant's video with the official LiveKit Python SDK and report what decodes.

Interop peer for wavecast's media-breadth tests. Joins --room as --identity, waits (up to
--timeout seconds) for --participant's video tracks (--tracks of them, default 1), decodes each for
--seconds from its subscription, and reports per track the codec the publication announces
(mime_type), the codec the receiver actually decodes (inbound-rtp codecId → codec mime type, from
WebRTC statistics), the decoded frame sizes seen and the frame count. --quality low|medium|high
asks the server for that simulcast layer (the SDK's set_video_quality) instead of its default.

Prints, one per line:
  READY {"sid"}
  TRACK {"sid", "mime_type", "simulcasted", "width", "height"}    once per subscribed video track
  RESULT {"tracks": [{"sid", "name", "mime_type", "simulcasted", "received_codec", "frames",
          "fps", "first_frame_s", "sizes": [{"width", "height", "frames"}], "first_size",
          "last_size", "inbound": {"frames_decoded", "frames_dropped", "decoder", "packets_lost"}}]}
`first_frame_s` counts from the subscription; `fps` is over the time after the first frame. A
failure prints ERROR and exits 1.
"""

import argparse
import asyncio
import json
import os
import sys

from livekit import rtc

from scripted_peer import join_token

QUALITY = {
    "low": rtc.VideoQuality.VIDEO_QUALITY_LOW,
    "medium": rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    "high": rtc.VideoQuality.VIDEO_QUALITY_HIGH,
}


async def inbound(track: rtc.Track) -> dict:
    stats = await track.get_stats()
    codecs = {s.codec.rtc.id: s.codec.codec.mime_type for s in stats if s.HasField("codec")}
    out = {}
    for s in stats:
        if s.HasField("inbound_rtp") and s.inbound_rtp.stream.kind == "video":
            i = s.inbound_rtp
            out = {
                "codec": codecs.get(i.stream.codec_id),
                "frames_decoded": i.inbound.frames_decoded,
                "frames_dropped": i.inbound.frames_dropped,
                "frame_width": i.inbound.frame_width,
                "frame_height": i.inbound.frame_height,
                "decoder": i.inbound.decoder_implementation or None,
                "packets_lost": i.received.packets_lost,
            }
    return out


async def measure(track: rtc.Track, publication, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    subscribed = loop.time()
    sizes = []  # [width, height, frames] runs, in order
    frames = 0
    first = None
    last = subscribed

    async def read() -> None:
        nonlocal frames, first, last
        async for ev in rtc.VideoStream(track):
            now = loop.time()
            if first is None:
                first = now
            last = now
            frames += 1
            w, h = ev.frame.width, ev.frame.height
            if sizes and sizes[-1][0] == w and sizes[-1][1] == h:
                sizes[-1][2] += 1
            else:
                sizes.append([w, h, 1])

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(seconds)
    reader.cancel()
    stats = await inbound(track)
    span = last - first if first is not None else 0.0
    return {
        "sid": publication.sid,
        "name": publication.name,
        "mime_type": publication.mime_type,
        "simulcasted": publication.simulcasted,
        "received_codec": stats.pop("codec", None),
        "frames": frames,
        "fps": round((frames - 1) / span, 2) if span > 0 else 0.0,
        "first_frame_s": round(first - subscribed, 3) if first is not None else None,
        "sizes": [{"width": w, "height": h, "frames": n} for w, h, n in sizes],
        "first_size": {"width": sizes[0][0], "height": sizes[0][1]} if sizes else None,
        "last_size": {"width": sizes[-1][0], "height": sizes[-1][1]} if sizes else None,
        "inbound": stats,
    }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--participant", required=True)
    p.add_argument("--tracks", type=int, default=1)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--quality", choices=sorted(QUALITY))
    args = p.parse_args()

    room = rtc.Room()
    measuring = []

    def on_track(track, publication, participant) -> None:
        if participant.identity != args.participant or track.kind != rtc.TrackKind.KIND_VIDEO:
            return
        if len(measuring) >= args.tracks:
            return
        if args.quality and publication.simulcasted:
            publication.set_video_quality(QUALITY[args.quality])
        info = {
            "sid": publication.sid,
            "mime_type": publication.mime_type,
            "simulcasted": publication.simulcasted,
            "width": publication.width,
            "height": publication.height,
        }
        print("TRACK", json.dumps(info), flush=True)
        measuring.append(asyncio.ensure_future(measure(track, publication, args.seconds)))

    room.on("track_subscribed", on_track)
    await room.connect(os.environ["LIVEKIT_URL"], join_token(args.room, args.identity))
    print("READY", json.dumps({"sid": room.local_participant.sid}), flush=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    while len(measuring) < args.tracks:
        if loop.time() > deadline:
            raise TimeoutError(
                f"{len(measuring)} of {args.tracks} video tracks of {args.participant} "
                f"within {args.timeout} s"
            )
        await asyncio.sleep(0.05)
    tracks = await asyncio.gather(*measuring)
    print("RESULT", json.dumps({"tracks": tracks}), flush=True)
    await room.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # reported to the test
        print("ERROR", repr(e), flush=True)
        sys.exit(1)
