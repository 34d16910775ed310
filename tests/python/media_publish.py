"""Publish one video track with the official LiveKit Python SDK: a chosen codec, simulcast or not.

Interop peer and bench baseline for wavecast's media-breadth tests. Joins --room as --identity and
publishes a camera track of --width x --height at --fps, encoded by the SDK (libwebrtc) with
--codec (vp8, vp9, h264, av1) and, with --simulcast, as simulcast layers (the SDK's own layer
choice; VP9 and AV1 simulcast are what the SDK makes of them). The pictures are either a Y4M file
(--y4m, 4:2:0, looped; its size wins over --width/--height) or a synthetic moving pattern (a few
precomputed I420 frames cycled, so making pictures costs almost nothing). No audio.

Runs for --seconds (or until SIGTERM/SIGINT), then reports. Prints, one per line:
  READY {"participant_sid", "track_sid", "codec", "simulcast", "width", "height", "fps"}
  STATS {"at_unix_s", "frames_captured", "layers": [...]}   every --stats-every seconds (0: never)
  RESULT {"frames_captured", "late_frames", "wall_s", "cpu_user_s", "cpu_system_s", "cpu_s",
          "cpu_per_wall", "max_rss_kb", "layers": [{"rid", "codec", "width", "height",
          "frames_encoded", "frames_sent", "bytes_sent", "fps", "encoder", "scalability_mode",
          "quality_limitation"}]}
The CPU figures are this whole process's (resource.getrusage: the SDK's encoder threads run in
it), from just before publishing to the end; compare them per published stream with another
publisher in the same run. A failure prints ERROR and exits 1.
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time

from livekit import rtc
from livekit.rtc._proto import stats_pb2

from scripted_peer import join_token

CODECS = {
    "vp8": rtc.VideoCodec.VP8,
    "vp9": rtc.VideoCodec.VP9,
    "h264": rtc.VideoCodec.H264,
    "av1": rtc.VideoCodec.AV1,
}


class Y4m:
    """A 4:2:0 Y4M file read frame by frame, looped at its end."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "rb")
        header = self.file.readline().decode("ascii").split()
        if not header or header[0] != "YUV4MPEG2":
            raise ValueError(f"{path}: not a Y4M file")
        fields = {t[0]: t[1:] for t in header[1:]}
        colour = fields.get("C", "420")
        if not colour.startswith("420"):
            raise ValueError(f"{path}: colour space C{colour}, only 4:2:0 is read")
        self.width, self.height = int(fields["W"]), int(fields["H"])
        self.size = self.width * self.height + 2 * ((self.width + 1) // 2) * ((self.height + 1) // 2)
        self.start = self.file.tell()

    def next(self) -> bytes:
        for _ in range(2):
            marker = self.file.readline()
            if marker.startswith(b"FRAME"):
                data = self.file.read(self.size)
                if len(data) == self.size:
                    return data
            self.file.seek(self.start)
        raise ValueError("the Y4M file has no whole frame")


class Pattern:
    """Synthetic I420 pictures: a bright bar and a dark bar crossing a textured grey field; a
    cycle of precomputed frames (moving content, so the encoder has work like a camera's)."""

    CYCLE = 60

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        cw, ch = (width + 1) // 2, (height + 1) // 2
        chroma = bytes([128]) * (cw * ch) * 2
        base = bytearray(((x * 7 + y * 3) % 64) + 64 for y in range(height) for x in range(16))
        rows = [bytes(base[y * 16 : y * 16 + 16]) * (width // 16 + 1) for y in range(height)]
        field = b"".join(r[:width] for r in rows)
        self.frames = []
        bar = max(width // 20, 4)
        for n in range(self.CYCLE):
            y = bytearray(field)
            x0 = (n * width // self.CYCLE) % (width - bar)
            x1 = width - bar - x0
            for row in range(height):
                o = row * width
                y[o + x0 : o + x0 + bar] = b"\xeb" * bar
                y[o + x1 : o + x1 + bar] = b"\x20" * bar
            self.frames.append(bytes(y) + chroma)
        self.n = 0

    def next(self) -> bytes:
        f = self.frames[self.n % self.CYCLE]
        self.n += 1
        return f


def stamp_band(data: bytes, width: int, frame_number: int, micros: int) -> bytes:
    """`data` (an I420 picture) with wavecast's frame stamp drawn into its luma: a 48 x 2 grid
    of black (16) / white (235) cells across the top, 96 bits = frame number (32) + capture
    time in microseconds since the UNIX epoch (56) + CRC-8 (polynomial 0x07, output XOR 0x55),
    most significant bit first; cell edges at i * width // 48 (crates/media/src/stamp.rs). Our
    viewers read it back for the frame's age on arrival."""
    payload = frame_number.to_bytes(4, "big") + micros.to_bytes(8, "big")[1:]
    crc = 0
    for b in payload:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    bits = payload + bytes([crc ^ 0x55])
    y = bytearray(data)
    edge = lambda i: i * width // 48
    for row in range(2):
        for col in range(48):
            bit = row * 48 + col
            on = bits[bit // 8] & (0x80 >> (bit % 8))
            value = b"\xeb" if on else b"\x10"
            x0, x1 = edge(col), edge(col + 1)
            for line in range(edge(row), edge(row + 1)):
                o = line * width
                y[o + x0 : o + x1] = value * (x1 - x0)
    return bytes(y)


def cpu() -> tuple:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_maxrss


async def layer_stats(track: rtc.LocalVideoTrack) -> list:
    stats = await track.get_stats()
    codecs = {s.codec.rtc.id: s.codec.codec.mime_type for s in stats if s.HasField("codec")}
    layers = []
    for s in stats:
        if not s.HasField("outbound_rtp"):
            continue
        o = s.outbound_rtp
        layers.append(
            {
                "rid": o.outbound.rid or None,
                "codec": codecs.get(o.stream.codec_id),
                "width": o.outbound.frame_width,
                "height": o.outbound.frame_height,
                "frames_encoded": o.outbound.frames_encoded,
                "frames_sent": o.outbound.frames_sent,
                "bytes_sent": o.sent.bytes_sent,
                "fps": o.outbound.frames_per_second,
                "encoder": o.outbound.encoder_implementation or None,
                "scalability_mode": o.outbound.scalability_mode or None,
                "quality_limitation": stats_pb2.QualityLimitationReason.Name(
                    o.outbound.quality_limitation_reason
                ),
            }
        )
    layers.sort(key=lambda l: l["width"])
    return layers


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--codec", choices=sorted(CODECS), default="vp8")
    p.add_argument("--simulcast", action="store_true")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--y4m", help="a 4:2:0 Y4M file to send instead of the synthetic pattern")
    p.add_argument("--max-bitrate", type=int, default=0, help="top layer's bits/s (0: SDK default)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--stats-every", type=float, default=0.0)
    p.add_argument(
        "--stamp",
        action="store_true",
        help="draw wavecast's frame stamp (number, capture time) into each picture",
    )
    args = p.parse_args()

    source = Y4m(args.y4m) if args.y4m else Pattern(args.width, args.height)
    width, height = source.width, source.height

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    room = rtc.Room()
    await room.connect(os.environ["LIVEKIT_URL"], join_token(args.room, args.identity))
    video = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("camera", video)
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        simulcast=args.simulcast,
        video_codec=CODECS[args.codec],
    )
    if args.max_bitrate:
        options.video_encoding.max_bitrate = args.max_bitrate
        options.video_encoding.max_framerate = args.fps
    utime0, stime0, _ = cpu()
    wall0 = time.monotonic()
    publication = await room.local_participant.publish_track(track, options)
    print(
        "READY",
        json.dumps(
            {
                "participant_sid": room.local_participant.sid,
                "track_sid": publication.sid,
                "codec": args.codec,
                "simulcast": args.simulcast,
                "width": width,
                "height": height,
                "fps": args.fps,
            }
        ),
        flush=True,
    )

    start = loop.time()
    end = start + args.seconds
    counts = {"captured": 0, "late": 0}

    async def send() -> None:
        n = 0
        while not stop.is_set():
            due = start + n / args.fps
            if due >= end:
                break
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0 / args.fps:
                counts["late"] += 1
            data = source.next()
            if args.stamp:
                data = stamp_band(data, width, n, time.time_ns() // 1000)
            frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, data)
            video.capture_frame(frame)
            counts["captured"] += 1
            n += 1
        stop.set()

    async def report() -> None:
        if args.stats_every <= 0:
            return
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), args.stats_every)
            except asyncio.TimeoutError:
                pass
            stats = {
                "at_unix_s": round(time.time(), 3),
                "frames_captured": counts["captured"],
                "layers": await layer_stats(track),
            }
            print("STATS", json.dumps(stats), flush=True)

    await asyncio.gather(send(), report())
    layers = await layer_stats(track)
    utime, stime, rss = cpu()
    wall = time.monotonic() - wall0
    cpu_s = (utime - utime0) + (stime - stime0)
    result = {
        "frames_captured": counts["captured"],
        "late_frames": counts["late"],
        "wall_s": round(wall, 3),
        "cpu_user_s": round(utime - utime0, 3),
        "cpu_system_s": round(stime - stime0, 3),
        "cpu_s": round(cpu_s, 3),
        "cpu_per_wall": round(cpu_s / wall, 4) if wall > 0 else None,
        "max_rss_kb": rss,
        "layers": layers,
    }
    print("RESULT", json.dumps(result), flush=True)
    await room.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # reported to the test
        print("ERROR", repr(e), flush=True)
        sys.exit(1)
