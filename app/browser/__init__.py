"""The browser subsystem: loader.js, form config, /v1/hash, identity tokens and their CLI."""

from __future__ import annotations

import time

from flask import Flask

from app.browser.cli import identity_token_command
from app.browser.cli import snippet_command
from app.browser.routes import bp
from app.http import IpRateLimiter


def init_app(app: Flask) -> None:
    """Register the browser routes, the hash rate limiter and `flask snippet|identity-token`."""
    app.extensions["hash_rate_limiter"] = IpRateLimiter(app.config.get("CLOCK") or time.monotonic)
    app.register_blueprint(bp)
    app.cli.add_command(snippet_command)
    app.cli.add_command(identity_token_command)
