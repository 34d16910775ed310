"""A participant on the official LiveKit Python SDK for the RPC interop tests.

Usage: rpc_peer.py ROOM IDENTITY

Serves the methods:
  echo   returns the payload
  fail   raises RpcError(4001, "nope", "data: <payload>")
  boom   raises ValueError (the SDK sends 1500 APPLICATION_ERROR)
  big    returns 16000 bytes (over the 15 KiB limit: 1504)
  slow   sleeps the payload's seconds, then returns "late"
Reads commands on stdin, one per line, and prints `OK <command>` (or `ERR <command> <why>`):
  call DEST METHOD PAYLOAD TIMEOUT [RTT]   perform_rpc (seconds); prints `RESULT ok <payload>`
                                           or `RESULT err <code> <message>|<data>` first
  bench DEST N                             N echo calls one after another; prints
                                           `BENCH <p50 ms> <p95 ms>`
  leave                                    disconnect and exit
PAYLOAD `-` is empty, `@N` is N bytes of "p". Prints `READY <participant_sid>` once connected.
"""

import asyncio
import os
import sys
import time

from livekit import rtc
from scripted_peer import join_token, serve_commands


def payload_of(arg: str) -> str:
    if arg == "-":
        return ""
    if arg.startswith("@"):
        return "p" * int(arg[1:])
    return arg


async def main() -> None:
    room_name, identity = sys.argv[1], sys.argv[2]
    token = join_token(room_name, identity)
    room = rtc.Room()

    async def echo(data: rtc.RpcInvocationData) -> str:
        return data.payload

    async def fail(data: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(4001, "nope", "data: " + data.payload)

    async def boom(data: rtc.RpcInvocationData) -> str:
        raise ValueError("boom")

    async def big(data: rtc.RpcInvocationData) -> str:
        return "b" * 16000

    async def slow(data: rtc.RpcInvocationData) -> str:
        await asyncio.sleep(float(data.payload))
        return "late"

    await room.connect(os.environ["LIVEKIT_URL"], token, rtc.RoomOptions(auto_subscribe=False))
    lp = room.local_participant
    for name, handler in [("echo", echo), ("fail", fail), ("boom", boom), ("big", big),
                          ("slow", slow)]:
        room.local_participant.register_rpc_method(name, handler)
    print("READY", lp.sid, flush=True)

    async def run(cmd: str, args: list) -> None:
        if cmd == "call":
            dest, method, payload, timeout = args[0], args[1], payload_of(args[2]), float(args[3])
            rtt = float(args[4]) if len(args) > 4 else None
            try:
                out = await lp.perform_rpc(destination_identity=dest, method=method,
                                           payload=payload, response_timeout=timeout,
                                           max_round_trip_latency=rtt)
                print("RESULT ok", out if len(out) < 100 else f"<{len(out)} bytes>", flush=True)
            except rtc.RpcError as e:
                print("RESULT err", e.code, f"{e.message}|{e.data or ''}", flush=True)
        elif cmd == "bench":
            dest, n = args[0], int(args[1])
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                await lp.perform_rpc(destination_identity=dest, method="echo",
                                     payload=f"ping {i}", response_timeout=10.0)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            p50 = times[len(times) // 2]
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print("BENCH", f"{p50:.2f}", f"{p95:.2f}", flush=True)
        else:
            raise ValueError("unknown command")

    await serve_commands(room, run)


if __name__ == "__main__":
    asyncio.run(main())
