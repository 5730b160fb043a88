"""A trivial endpoint: what ``POST /api/emails`` costs when it does nothing but
parse the JSON and answer 202 (bench/enqueue.py's baseline)."""

from __future__ import annotations

import uuid

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/emails")
    def create_email():
        data = request.get_json()
        return jsonify(email_id=uuid.uuid4().hex, to=data["to"], status="queued"), 202

    return app
