"""A speaker and a transcribing agent on the official LiveKit Python SDK, for the caption tests.

Usage: caption_peer.py ROOM SPEAKER

Joins ROOM twice from one process: SPEAKER publishes a dark grey VP8 camera track (320x180,
10 fps); `agent` publishes nothing and sends transcriptions of the speaker the way LiveKit's
agents do: text streams on topic `lk.transcription` with the attributes `lk.segment_id`,
`lk.transcription_final` and `lk.transcribed_track_id` (the speaker's track).
Prints `READY <speaker's video track sid>` once both are in the room, then reads commands on
stdin, one per line, answered `OK <command>` (or `ERR <command> <why>`):
  transcribe SEGMENT FINAL TEXT...   send TEXT as one stream for SEGMENT (FINAL: true/false)
  deltas SEGMENT WORD...             write the words one by one into one stream for SEGMENT and
                                     mark it final only in its trailer (the agents' own speech)
  repeat SEGMENT TEXT...             send TEXT for SEGMENT again every 0.5 s (interim, as a
                                     speech-to-text engine refines a segment) until stdin closes
  chat TEXT...                       the speaker sends TEXT on `lk.chat`
Reads LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET from the environment (set by
wavecast-testbed).
"""

import asyncio
import os
import sys

from livekit import rtc
from scripted_peer import join_token, serve_commands

WIDTH, HEIGHT, FPS = 320, 180, 10


async def publish_dark_video(room: rtc.Room) -> str:
    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=rtc.VideoCodec.VP8
    )
    publication = await room.local_participant.publish_track(track, options)
    frame = rtc.VideoFrame(
        WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, bytes(b"\x30\x30\x30\xff") * (WIDTH * HEIGHT)
    )

    async def run() -> None:
        while True:
            source.capture_frame(frame)
            await asyncio.sleep(1 / FPS)

    asyncio.get_running_loop().create_task(run())
    return publication.sid


async def main() -> None:
    room_name, speaker_identity = sys.argv[1], sys.argv[2]
    url = os.environ["LIVEKIT_URL"]
    speaker, agent = rtc.Room(), rtc.Room()
    await speaker.connect(url, join_token(room_name, speaker_identity))
    await agent.connect(url, join_token(room_name, "agent"), rtc.RoomOptions(auto_subscribe=False))
    track_sid = await publish_dark_video(speaker)
    print("READY", track_sid, flush=True)
    repeats: set = set()

    async def transcribe(segment: str, final: bool, text: str) -> None:
        writer = await agent.local_participant.stream_text(
            topic="lk.transcription",
            attributes={
                "lk.segment_id": segment,
                "lk.transcription_final": "true" if final else "false",
                "lk.transcribed_track_id": track_sid,
            },
        )
        await writer.write(text)
        await writer.aclose()

    async def deltas(segment: str, words: list) -> None:
        writer = await agent.local_participant.stream_text(
            topic="lk.transcription",
            attributes={
                "lk.segment_id": segment,
                "lk.transcription_final": "false",
                "lk.transcribed_track_id": track_sid,
            },
        )
        for i, word in enumerate(words):
            await writer.write(word if i == 0 else " " + word)
            await asyncio.sleep(0.05)
        await writer.aclose(
            attributes={"lk.transcription_final": "true", "lk.transcribed_track_id": track_sid}
        )

    async def repeat(segment: str, text: str) -> None:
        while True:
            await transcribe(segment, False, text)
            await asyncio.sleep(0.5)

    async def run(cmd: str, args: list) -> None:
        if cmd == "transcribe":
            await transcribe(args[0], args[1] == "true", " ".join(args[2:]))
        elif cmd == "deltas":
            await deltas(args[0], args[1:])
        elif cmd == "repeat":
            t = asyncio.ensure_future(repeat(args[0], " ".join(args[1:])))
            repeats.add(t)
        elif cmd == "chat":
            await speaker.local_participant.send_text(" ".join(args), topic="lk.chat")
        else:
            raise ValueError("unknown command")

    await serve_commands(speaker, run)
    for t in repeats:
        t.cancel()
    await agent.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
