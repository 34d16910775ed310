"""Baseline subscriber for the wavecast-session probe, on the official LiveKit Python SDK.

Usage: probe_subscriber.py URL TOKEN   (then `WINDOW start_us end_us` on stdin)

Joins with no ICE servers, subscribes to the first video track and every audio track, decodes
every frame (libwebrtc, I420; audio as 48 kHz mono), reads the wavecast frame stamp (48x2 cells on
the top band: frame number 32 bits + capture time in µs since the UNIX epoch 56 bits + CRC-8),
prints `FIRST` at the first picture, waits for the measurement window on stdin and prints
`RESULT {json}` for it: join-to-first-frame, stamped frames/s, glass-to-glass latency
percentiles, audio decoded per second (and the part carrying the tone) and CPU use. The stamp
decoder mirrors crates/media/src/stamp.rs.
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


TONE_AMPLITUDE = 8000.0


def has_tone(block: np.ndarray) -> bool:
    """RMS at least half the probe tone's (mirrors `has_tone` in probe.rs)."""
    if block.size == 0:
        return False
    rms = float(np.sqrt(np.mean(block.astype(np.float64) ** 2)))
    return rms >= 0.5 * TONE_AMPLITUDE / np.sqrt(2.0)


async def read_window() -> tuple[int, int]:
    """The measurement window `WINDOW start_us end_us` the orchestrator writes on stdin."""
    loop = asyncio.get_event_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            raise SystemExit("stdin closed before a WINDOW line")
        parts = line.split()
        if len(parts) == 3 and parts[0] == "WINDOW":
            return int(parts[1]), int(parts[2])


async def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    room = rtc.Room()
    got_track: asyncio.Future = asyncio.get_event_loop().create_future()
    audio = {"samples": [], "tasks": []}

    async def read_audio(track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
        async for ev in stream:
            now_us = time.time_ns() // 1000
            pcm = np.frombuffer(ev.frame.data, dtype=np.int16)
            tone = sum(480 for i in range(0, pcm.size - 479, 480) if has_tone(pcm[i:i + 480]))
            audio["samples"].append((now_us, pcm.size, min(tone, pcm.size)))

    def on_sub(track, pub, participant):
        if track.kind == rtc.TrackKind.KIND_VIDEO and not got_track.done():
            got_track.set_result(track)
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            audio["tasks"].append(asyncio.ensure_future(read_audio(track)))

    room.on("track_subscribed", on_sub)
    t_join = time.monotonic()
    # No ICE servers: the server hands out public STUN even in dev mode; everything here is
    # inside a private namespace or on loopback.
    await room.connect(url, token, rtc.RoomOptions(
        auto_subscribe=True, rtc_config=rtc.RtcConfiguration(ice_servers=[])))
    track = await asyncio.wait_for(got_track, 20)
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
    seen = []  # (decoded at µs, stamp or None)
    state = {"first": None, "width": 0, "height": 0}

    async def read_video() -> None:
        async for ev in stream:
            now_us = time.time_ns() // 1000
            f = ev.frame
            state["width"], state["height"] = f.width, f.height
            plane = np.frombuffer(f.get_plane(0), dtype=np.uint8)
            stride = len(plane) // f.height
            s = read_stamp(plane.reshape(f.height, stride)[:, :f.width], f.width)
            if state["first"] is None:
                state["first"] = time.monotonic() - t_join
                print("FIRST", flush=True)
            seen.append((now_us, s))

    reader = asyncio.ensure_future(read_video())
    start_us, end_us = await read_window()
    await asyncio.sleep(max(0.0, start_us / 1e6 - time.time()))
    cpu_start, at_start = cpu_seconds(), time.monotonic()
    await asyncio.sleep(max(0.0, end_us / 1e6 - time.time()))
    cpu_end, at_end = cpu_seconds(), time.monotonic()
    reader.cancel()
    for t in audio["tasks"]:
        t.cancel()
    await room.disconnect()
    latencies, frames, last = [], 0, None
    for at, s in seen:
        if not start_us <= at < end_us:
            continue
        frames += 1
        if s is not None and (last is None or s[0] > last):
            last = s[0]
            latencies.append((at - s[1]) / 1000.0)
    in_window = [(n, t) for at, n, t in audio["samples"] if start_us <= at < end_us]
    window = (end_us - start_us) / 1e6
    lat = np.array(sorted(latencies)) if latencies else np.array([float("nan")])
    print("RESULT " + json.dumps({
        "sdk": "python",
        "join_to_first_frame_ms": (state["first"] or float("nan")) * 1000.0,
        "frames": frames,
        "stamped": len(latencies),
        "width": state["width"],
        "height": state["height"],
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_max_ms": float(np.max(lat)),
        "window_s": window,
        "cpu_s": cpu_end - cpu_start,
        "cpu_percent": 100.0 * (cpu_end - cpu_start) / max(at_end - at_start, 1e-3),
        "fps": len(latencies) / window,
        "audio_s_per_s": sum(n for n, _ in in_window) / 48000.0 / window,
        "tone_s_per_s": sum(t for _, t in in_window) / 48000.0 / window,
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
