"""Baseline subscriber for the wavecast-session probe, on the official LiveKit Python SDK.

Usage: probe_subscriber.py URL TOKEN SECONDS

Joins, subscribes to the first video track, decodes every frame (libwebrtc, I420), reads the
wavecast frame stamp (48x2 cells on the top band: frame number 32 bits + capture time in µs since
the UNIX epoch 56 bits + CRC-8) and prints `RESULT {json}` with join-to-first-frame, glass-to-glass
latency percentiles and CPU use. The decoder mirrors crates/media/src/stamp.rs.
"""

import asyncio
import json
import resource
import sys
import time

import numpy as np
from livekit import rtc

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


async def main() -> None:
    url, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    room = rtc.Room()
    got_track: asyncio.Future = asyncio.get_event_loop().create_future()

    def on_sub(track, pub, participant):
        if track.kind == rtc.TrackKind.KIND_VIDEO and not got_track.done():
            got_track.set_result(track)

    room.on("track_subscribed", on_sub)
    t_join = time.monotonic()
    await room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
    print("READY", flush=True)
    track = await asyncio.wait_for(got_track, 20)
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
    first = None
    latencies = []
    frames = stamped = 0
    width = height = 0
    warm_cpu = warm_at = None
    deadline = None
    async for ev in stream:
        now_us = time.time_ns() // 1000
        f = ev.frame
        frames += 1
        width, height = f.width, f.height
        plane = np.frombuffer(f.get_plane(0), dtype=np.uint8)
        stride = len(plane) // height
        s = read_stamp(plane.reshape(height, stride)[:, :width], width)
        if first is None:
            first = time.monotonic() - t_join
            deadline = time.monotonic() + seconds
        if warm_at is None and time.monotonic() - t_join - first >= 2.0:
            warm_at, warm_cpu = time.monotonic(), cpu_seconds()
            latencies.clear()
        if s is not None:
            stamped += 1
            latencies.append((now_us - s[1]) / 1000.0)
        if time.monotonic() >= deadline:
            break
    end_at, end_cpu = time.monotonic(), cpu_seconds()
    await stream.aclose()
    await room.disconnect()
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    window = end_at - warm_at
    print("RESULT " + json.dumps({
        "sdk": "python " + rtc.__version__ if hasattr(rtc, "__version__") else "python",
        "join_to_first_frame_ms": first * 1000.0,
        "frames": frames,
        "stamped": stamped,
        "width": width,
        "height": height,
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_max_ms": float(np.max(lat)),
        "cpu_window_s": window,
        "cpu_s": end_cpu - warm_cpu,
        "cpu_percent": 100.0 * (end_cpu - warm_cpu) / window,
        "fps": len(latencies) / window,
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
