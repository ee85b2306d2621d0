"""The baseline for bench/intake.py: a bare Flask route that answers {"success": true}."""

from __future__ import annotations

from flask import Flask
from flask import jsonify

app = Flask(__name__)


@app.post("/v1/track")
def track():
    """Answer like the gateway does, without reading, validating or storing anything."""
    return jsonify({"success": True})
