"""What the scripted Python SDK peers share: a join token and the stdin command loop.

Imported by room_peer.py, rpc_peer.py and stream_peer.py (Python puts the script's own directory
on the import path). Reads LIVEKIT_API_KEY and LIVEKIT_API_SECRET from the environment (set by
wavecast-testbed).
"""

import asyncio
import os
import sys
from typing import Awaitable, Callable, List

from livekit import api, rtc


def join_token(room_name: str, identity: str) -> str:
    """A token that joins `room_name` as `identity` and may publish, subscribe and send data."""
    return (
        api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room_name, can_publish=True,
                                     can_subscribe=True, can_publish_data=True,
                                     can_update_own_metadata=True))
        .to_jwt()
    )


async def serve_commands(room: rtc.Room,
                         run: Callable[[str, List[str]], Awaitable[None]]) -> None:
    """Run the commands read on stdin, one per line, until stdin closes or `leave`.

    `run(cmd, args)` performs one command and raises for an unknown or failed one. Each command
    is answered `OK <line>` or `ERR <line> <why>` (the test decides what an error means);
    `leave` disconnects and ends. The room is left when stdin closes.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            if reader.at_eof():
                break
            continue
        cmd, *args = line.split()
        if cmd == "leave":
            await room.disconnect()
            print("OK", line, flush=True)
            return
        try:
            await run(cmd, args)
            print("OK", line, flush=True)
        except Exception as e:  # report and go on: the test decides
            print("ERR", line, repr(e), flush=True)
    await room.disconnect()
