"""Mint and verify LiveKit access tokens with the official Python SDK (livekit-api).

Interop peer for tests/token_interop.rs:
  token_tool.py mint --identity ID --room ROOM [--name N] [--metadata M] [--attr K=V]... [--ttl SECONDS]
      prints {"token": JWT, "payload": <the JWT payload as the SDK wrote it>}
  token_tool.py verify TOKEN
      verifies with LIVEKIT_API_KEY/LIVEKIT_API_SECRET, prints the claims the SDK read, exit 1 on refusal
"""

import argparse
import dataclasses
import datetime
import json
import os
import sys

import jwt
from livekit import api


def mint(args: argparse.Namespace) -> None:
    grants = api.VideoGrants(
        room_join=True,
        room=args.room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=False,
        hidden=args.hidden,
    )
    attrs = dict(a.split("=", 1) for a in args.attr)
    token = (
        api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
        .with_identity(args.identity)
        .with_name(args.name)
        .with_metadata(args.metadata)
        .with_attributes(attrs)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=args.ttl))
        .to_jwt()
    )
    payload = jwt.decode(token, options={"verify_signature": False})
    print(json.dumps({"token": token, "payload": payload}))


def verify(args: argparse.Namespace) -> None:
    verifier = api.TokenVerifier(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
    try:
        claims = verifier.verify(args.token)
    except Exception as e:  # the SDK raises pyjwt errors; report the class for the test
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        sys.exit(1)
    raw = jwt.decode(args.token, options={"verify_signature": False})
    out = dataclasses.asdict(claims)
    out["exp"] = raw.get("exp")
    out["nbf"] = raw.get("nbf")
    out["iss"] = raw.get("iss")
    print(json.dumps(out, default=str))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mint")
    m.add_argument("--identity", required=True)
    m.add_argument("--room", required=True)
    m.add_argument("--name", default="")
    m.add_argument("--metadata", default="")
    m.add_argument("--attr", action="append", default=[])
    m.add_argument("--ttl", type=int, default=3600)
    m.add_argument("--hidden", action="store_true")
    m.set_defaults(func=mint)
    v = sub.add_parser("verify")
    v.add_argument("token")
    v.set_defaults(func=verify)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
