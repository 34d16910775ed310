"""The chat seed's token endpoint, written the way the seed wrote it (Flask + flask-jwt-extended +
the official livekit-api), as the baseline of `wavecast-service`'s token bench.

From ../shared/seeds (the chat app's LiveKit plan): `POST /token` behind `@jwt_required()`, the
caller's identity from the login JWT, a LiveKit token with join/publish/subscribe for the asked
room. Like the service, the login JWT's issuer and audience are checked. There is no access policy:
that is the seed's design (and its bug), kept as is.

Run (the bench does this): gunicorn -w 2 -k gthread --threads 4 -b 127.0.0.1:PORT \
    --chdir tests/python token_seed_app:app
Environment: LOGIN_SECRET, LOGIN_ISSUER, LOGIN_AUDIENCE, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
LIVEKIT_URL.
"""

import os

from flask import Flask, jsonify, request
from flask_jwt_extended import JWTManager, get_jwt_identity, jwt_required
from livekit import api

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["LOGIN_SECRET"]
app.config["JWT_DECODE_ISSUER"] = os.environ["LOGIN_ISSUER"]
app.config["JWT_DECODE_AUDIENCE"] = os.environ["LOGIN_AUDIENCE"]
JWTManager(app)


class LiveKitService:
    def __init__(self):
        self.api_key = os.getenv("LIVEKIT_API_KEY", "devkey")
        self.api_secret = os.getenv("LIVEKIT_API_SECRET", "secret")
        self.url = os.getenv("LIVEKIT_URL", "ws://localhost:7880")

    def create_token(self, room_name, participant_name, metadata=None):
        token = api.AccessToken(self.api_key, self.api_secret)
        token.with_identity(participant_name)
        token.with_name(participant_name)
        token.with_grants(api.VideoGrants(
            room_join=True,
            room=room_name,
            can_publish=True,
            can_subscribe=True,
        ))
        if metadata:
            token.with_metadata(metadata)
        return token.to_jwt()


livekit_service = LiveKitService()


@app.route("/token", methods=["POST"])
@jwt_required()
def create_room_token():
    user_id = get_jwt_identity()
    data = request.get_json()
    room_name = data.get("room_name")
    participant_name = data.get("participant_name", user_id)
    token = livekit_service.create_token(room_name, participant_name)
    return jsonify({"token": token, "url": livekit_service.url})
