"""Baseline for the wavecast load test: N subscribers on the official LiveKit Python SDK in one
asyncio process.

Usage: load_subscribers.py --room ROOM --subscribers N --seconds S [--fps 30] [--warmup 1]
(LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET from the environment.)

Each subscriber joins (all at once), decodes every frame of every video track it gets (libwebrtc,
I420), reads the wavecast frame stamp (the decoder mirrors crates/media/src/stamp.rs, as in
crates/session/examples/probe_subscriber.py) and keeps the latency (capture time in the stamp →
frame out of the SDK's VideoStream, same machine clock) and the set of frame numbers seen. The
measurement starts when every subscriber has joined and lasts S seconds. Frames delivered uses
the load test's definition: stamped frame numbers decoded from the first one seen up to the frame
captured one second before the end (estimated from the stamp's capture time and the frame rate).
Prints `RESULT {json}` with totals and the CPU this process used over the measurement.
"""

import argparse
import asyncio
import json
import os
import resource
import time

import numpy as np
from livekit import api, rtc

COLUMNS, ROWS = 48, 2


def crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0x55


def cell_edge(i: int, width: int) -> int:
    return i * width // COLUMNS


def read_stamp(y: np.ndarray, width: int):
    bits = []
    for row in range(ROWS):
        y0, y1 = cell_edge(row, width), cell_edge(row + 1, width)
        cy0, cy1 = y0 + (y1 - y0) // 4, max(y1 - (y1 - y0) // 4, y0 + 1)
        band = y[cy0:cy1]
        for col in range(COLUMNS):
            x0, x1 = cell_edge(col, width), cell_edge(col + 1, width)
            cx0, cx1 = x0 + (x1 - x0) // 4, max(x1 - (x1 - x0) // 4, x0 + 1)
            bits.append(1 if int(band[:, cx0:cx1].mean()) >= 126 else 0)
    raw = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, 96, 8))
    if crc8(raw[:11]) != raw[11]:
        return None
    return int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:11], "big")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Sub:
    def __init__(self, identity: str):
        self.identity = identity
        self.room = rtc.Room()
        self.joined = False
        self.error = None
        self.t_join = 0.0
        self.join_ms = None
        self.first_frame_ms = None
        self.first_at = None
        self.latencies = []
        self.seen = set()
        self.anchor = None  # (frame number, capture µs) of the first stamp
        self.frames = 0
        self.tasks = []


async def consume(sub: Sub, track, stop: asyncio.Event, warmup: float) -> None:
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
    try:
        async for ev in stream:
            if stop.is_set():
                break
            now_us = time.time_ns() // 1000
            f = ev.frame
            sub.frames += 1
            if sub.first_frame_ms is None:
                sub.first_frame_ms = (time.monotonic() - sub.t_join) * 1000.0
                sub.first_at = time.monotonic()
            plane = np.frombuffer(f.get_plane(0), dtype=np.uint8)
            stride = len(plane) // f.height
            s = read_stamp(plane.reshape(f.height, stride)[:, :f.width], f.width)
            if s is None or abs(now_us - s[1]) > 60_000_000:
                continue
            sub.seen.add(s[0])
            if sub.anchor is None:
                sub.anchor = s
            if time.monotonic() - sub.first_at >= warmup:
                sub.latencies.append((now_us - s[1]) / 1000.0)
    finally:
        await stream.aclose()


async def join(sub: Sub, url: str, token: str, stop: asyncio.Event, warmup: float) -> None:
    def on_sub(track, pub, participant):
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            sub.tasks.append(asyncio.ensure_future(consume(sub, track, stop, warmup)))

    sub.room.on("track_subscribed", on_sub)
    sub.t_join = time.monotonic()
    try:
        await asyncio.wait_for(sub.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True)), 15)
        sub.joined = True
        sub.join_ms = (time.monotonic() - sub.t_join) * 1000.0
    except Exception as e:  # noqa: BLE001 - reported, not raised
        sub.error = repr(e)


def pct(values, q):
    return float(np.percentile(np.array(values), q)) if values else None


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--room", required=True)
    p.add_argument("--subscribers", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--prefix", default="py")
    args = p.parse_args()
    url = os.environ["LIVEKIT_URL"]
    key, secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]

    stop = asyncio.Event()
    subs = [Sub(f"{args.prefix}-{i}") for i in range(args.subscribers)]
    tokens = [
        api.AccessToken(key, secret)
        .with_identity(s.identity)
        .with_grants(api.VideoGrants(room_join=True, room=args.room, can_publish=False))
        .to_jwt()
        for s in subs
    ]
    await asyncio.gather(*(join(s, url, t, stop, args.warmup) for s, t in zip(subs, tokens)))
    print("READY", flush=True)
    cpu0, t0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.seconds)
    end_us = time.time_ns() // 1000
    stop.set()
    window = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    for s in subs:
        for t in s.tasks:
            t.cancel()
    await asyncio.gather(*(t for s in subs for t in s.tasks), return_exceptions=True)
    await asyncio.gather(*(s.room.disconnect() for s in subs if s.joined), return_exceptions=True)

    latencies, expected, delivered = [], 0, 0
    for s in subs:
        latencies.extend(s.latencies)
        if not s.joined:
            continue
        if s.anchor is None:
            continue
        n0, t0_us = s.anchor
        cutoff = n0 + int((end_us - 1_000_000 - t0_us) * args.fps / 1_000_000)
        first = min(s.seen)
        if cutoff >= first:
            expected += cutoff - first + 1
            delivered += sum(1 for n in s.seen if first <= n <= cutoff)
    joined = sum(1 for s in subs if s.joined)
    first_frames = [s.first_frame_ms for s in subs if s.first_frame_ms is not None]
    print("RESULT " + json.dumps({
        "sdk": "livekit-python",
        "subscribers": len(subs),
        "joined": joined,
        "errors": [s.error for s in subs if s.error][:3],
        "subscribers_with_video": len(first_frames),
        "first_frame_ms_p50": pct(first_frames, 50),
        "first_frame_ms_p95": pct(first_frames, 95),
        "frames_expected": expected,
        "frames_delivered": delivered,
        "frames_delivered_pct": 100.0 * delivered / expected if expected else None,
        "latency_ms_p50": pct(latencies, 50),
        "latency_ms_p95": pct(latencies, 95),
        "latency_ms_p99": pct(latencies, 99),
        "cpu_s": cpu,
        "window_s": window,
        "cpu_percent_of_one_core": 100.0 * cpu / window,
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
