"""The operator console under /console: server-rendered pages for status, events, dead letters.

Only operators with an admin key sign in (app/console/auth.py), or with a one-time link that
`flask demo` prints (app/console/links.py); every page and action is behind a signed session
cookie scoped to /console, and every form carries a CSRF token.
"""

from __future__ import annotations

import time

from flask import Blueprint
from flask import Flask

from app.console.auth import ConsoleSessionInterface
from app.console.auth import init_auth
from app.http import IpRateLimiter

console = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")

init_auth(console)

#: Sign-in attempts one address may make: 10 a minute, then it waits.
SIGN_IN_RULE = (10, 60.0)


def init_app(app: Flask) -> None:
    """Register the console blueprint, its session cookie and its sign-in rate limiter."""
    app.session_interface = ConsoleSessionInterface()
    clock = app.config.get("CLOCK") or time.monotonic
    app.extensions["console_sign_in_limiter"] = IpRateLimiter(clock)
    links.init_links(app)
    app.register_blueprint(console)


from app.console import links  # noqa: E402  (registers the sign-in link route)
from app.console import pages  # noqa: E402, F401  (registers the routes on the blueprint)
