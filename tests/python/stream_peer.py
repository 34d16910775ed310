"""A participant on the official LiveKit Python SDK for the data-stream interop tests.

Usage: stream_peer.py ROOM IDENTITY

Receives: text streams on topic "lk.chat" (kept in order) and byte streams on topic "files"
(each printed as `BYTES <sender> <name> <length> <sha256>` once read whole).
Reads commands on stdin, one per line, and prints `OK <command>` (or `ERR <command> <why>`):
  chat-report N        wait (60 s at most) for N chat messages, then print
                       `CHAT <count> <sender> <sha256 of the messages joined by newlines>`
  send-chat N [DEST]   send N chat messages "py 0" .. "py N-1", one after the other (to
                       everyone, or to participant DEST only)
  send-file SIZE SEED [DEST]
                       send SIZE deterministic bytes (seeded) as a file on topic "files" (to
                       everyone, or to DEST only); prints `SENT <sha256>` first
  set-attr KEY VALUE   set one of our attributes
  attr-report WHO KEY  wait (30 s at most) until participant WHO has attribute KEY, then
                       print `ATTR <value>`
Prints `READY <participant_sid>` once connected. Reads LIVEKIT_URL, LIVEKIT_API_KEY and
LIVEKIT_API_SECRET from the environment (set by wavecast-testbed). Exits when stdin closes.
"""

import asyncio
import hashlib
import os
import random
import sys
import tempfile

from livekit import rtc
from scripted_peer import join_token, serve_commands


async def main() -> None:
    room_name, identity = sys.argv[1], sys.argv[2]
    token = join_token(room_name, identity)
    room = rtc.Room()
    chats: list = []
    senders: set = set()
    got_chat = asyncio.Event()
    tasks: set = set()

    done = [0]

    async def read_chat(slot: int, reader: rtc.TextStreamReader, sender: str) -> None:
        chats[slot] = await reader.read_all()
        senders.add(sender)
        done[0] += 1
        got_chat.set()

    async def read_file(reader: rtc.ByteStreamReader, sender: str) -> None:
        h = hashlib.sha256()
        n = 0
        async for chunk in reader:
            h.update(chunk)
            n += len(chunk)
        print("BYTES", sender, reader.info.name, n, h.hexdigest(), flush=True)

    def on_chat(reader, sender):
        # The slot is taken in arrival order, whenever each reader finishes.
        chats.append(None)
        t = asyncio.ensure_future(read_chat(len(chats) - 1, reader, sender))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    def on_file(reader, sender):
        t = asyncio.ensure_future(read_file(reader, sender))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    room.register_text_stream_handler("lk.chat", on_chat)
    room.register_byte_stream_handler("files", on_file)
    await room.connect(os.environ["LIVEKIT_URL"], token, rtc.RoomOptions(auto_subscribe=False))
    print("READY", room.local_participant.sid, flush=True)

    async def run(cmd: str, args: list) -> None:
        if cmd == "chat-report":
            want = int(args[0])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while done[0] < want and loop.time() < deadline:
                got_chat.clear()
                try:
                    await asyncio.wait_for(got_chat.wait(), 1)
                except asyncio.TimeoutError:
                    pass
            text = "\n".join(c if c is not None else "<missing>" for c in chats)
            digest = hashlib.sha256(text.encode()).hexdigest()
            print("CHAT", done[0], ",".join(sorted(senders)) or "-", digest, flush=True)
        elif cmd == "send-chat":
            dest = args[1:2] or None
            for i in range(int(args[0])):
                await room.local_participant.send_text(f"py {i}", topic="lk.chat",
                                                       destination_identities=dest)
        elif cmd == "send-file":
            size, seed = int(args[0]), int(args[1])
            data = random.Random(seed).randbytes(size)
            print("SENT", hashlib.sha256(data).hexdigest(), flush=True)
            with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
                f.write(data)
                path = f.name
            try:
                await room.local_participant.send_file(path, topic="files",
                                                       destination_identities=args[2:3] or None)
            finally:
                os.unlink(path)
        elif cmd == "set-attr":
            await room.local_participant.set_attributes({args[0]: " ".join(args[1:])})
        elif cmd == "attr-report":
            who, key = args[0], args[1]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30

            def value():
                p = room.remote_participants.get(who)
                return None if p is None else p.attributes.get(key)

            while value() is None:
                if loop.time() > deadline:
                    raise ValueError(f"no attribute {key} of {who} within 30 s")
                await asyncio.sleep(0.02)
            print("ATTR", value(), flush=True)
        else:
            raise ValueError("unknown command")

    await serve_commands(room, run)


if __name__ == "__main__":
    asyncio.run(main())
