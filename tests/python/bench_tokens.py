"""Tokens minted and verified per second with the official Python livekit-api (one core).

The same claims as crates/token/benches/tokens.rs; run by `just bench` right after the criterion
bench so the two figures come from one run on one machine.
"""

import datetime
import time

from livekit import api


def mint() -> str:
    return (
        api.AccessToken("devkey", "secret")
        .with_identity("bench-user")
        .with_name("Bench User")
        .with_metadata('{"seat":1}')
        .with_attributes({"team": "blue"})
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room="bench-room",
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
                can_publish_sources=["camera", "microphone", "screen_share", "screen_share_audio"],
            )
        )
        .with_ttl(datetime.timedelta(hours=6))
        .to_jwt()
    )


def rate(fn, seconds: float = 3.0) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def main() -> None:
    token = mint()
    verifier = api.TokenVerifier("devkey", "secret")
    for _ in range(1000):  # warm-up
        mint()
        verifier.verify(token)
    m = rate(mint)
    v = rate(lambda: verifier.verify(token))
    print(f"python livekit-api mint:   {m:10.0f} tokens/s  ({1e6 / m:7.2f} µs/token)")
    print(f"python livekit-api verify: {v:10.0f} tokens/s  ({1e6 / v:7.2f} µs/token)")


if __name__ == "__main__":
    main()
