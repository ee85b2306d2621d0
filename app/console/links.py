"""One-time console sign-in links, so `flask demo` can print a URL that lands its user signed in.

A link carries a token signed with the settings' `secret_key` (itsdangerous, with a timestamp)
that names an admin key and a random nonce. The token opens a session only while this process
holds the nonce: the process that minted it (the demo's CLI, which also serves the app) keeps it
until the link is used once or `LINK_MAX_AGE_S` passes. A production server mints none, so
every link there leads to the sign-in form; knowing `secret_key` alone is not enough either.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from flask import Flask
from flask import current_app
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Response

from app.console import console
from app.console.auth import start_session
from app.http import current_settings
from app.settings import Settings
from app.settings import settings_holder

EXTENSION = "console_sign_in_links"
#: Where a link points, under the gateway's base URL.
LINK_PATH = "/console/sign-in/link"
#: How long a printed link works: long enough to read the demo's output, short if it leaks.
LINK_MAX_AGE_S = 15 * 60
SALT = "gateway-console-sign-in-link"
REFUSED = "That sign-in link is used, expired or not valid: sign in with an admin key."


class SignInLinks:
    """The links this process minted and nobody used yet, by nonce, with their admin key."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._pending: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, settings: Settings, key_id: str) -> str:
        """Mint a one-time token that signs in as the admin key `key_id`.

        :raises ValueError: `key_id` is not an admin key, or the settings have no `secret_key`.
        """
        key = settings.key_by_id(key_id)
        if key is None or key.kind != "admin":
            raise ValueError(f"{key_id!r} is not an admin key")
        if not settings.secret_key:
            raise ValueError("sign-in links need secret_key to be set")
        nonce = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._pending = {n: e for n, e in self._pending.items() if e[1] > now}
            self._pending[nonce] = (key_id, now + LINK_MAX_AGE_S)
        return _serializer(settings.secret_key).dumps({"k": key_id, "n": nonce})

    def redeem(self, settings: Settings, token: str) -> str | None:
        """Use up a token; return its admin key id, or None when it is forged, stale or used."""
        if not settings.secret_key or not token:
            return None
        try:
            claims = _serializer(settings.secret_key).loads(token, max_age=LINK_MAX_AGE_S)
        except BadSignature:  # SignatureExpired included
            return None
        if not isinstance(claims, dict):
            return None
        with self._lock:
            entry = self._pending.pop(str(claims.get("n")), None)
        if entry is None or entry[0] != claims.get("k") or entry[1] <= self._clock():
            return None
        key = settings.key_by_id(entry[0])
        return key.id if key is not None and key.kind == "admin" else None


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def init_links(app: Flask) -> None:
    """Give the app its (empty) set of pending sign-in links, timed by its wall clock."""
    app.extensions[EXTENSION] = SignInLinks(lambda: (app.config.get("WALL_CLOCK") or time.time)())


def sign_in_url(app: Flask, base_url: str, key_id: str) -> str:
    """Return a one-time console URL under `base_url` that signs in as admin key `key_id`.

    :raises ValueError: `key_id` is not an admin key, or no `secret_key` is set.
    """
    settings = settings_holder(app).get()
    token = app.extensions[EXTENSION].issue(settings, key_id)
    return f"{base_url.rstrip('/')}{LINK_PATH}?token={token}"


@console.get("/sign-in/link")
def sign_in_link() -> Response:
    """Open a session from a one-time link; a refused link leads to the sign-in form."""
    links: SignInLinks = current_app.extensions[EXTENSION]
    key_id = links.redeem(current_settings(), request.args.get("token", ""))
    if key_id is None:
        session["flash"] = REFUSED
        return redirect(url_for("console.sign_in"))
    start_session(key_id)
    return redirect(url_for("console.overview"))
