"""Console sign-in: admin keys only, a signed session cookie, CSRF tokens, rate-limited attempts."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import abort
from flask import current_app
from flask import has_request_context
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.sessions import SecureCookieSession
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Response

from app.errors import SettingsInvalid
from app.http import client_ip
from app.settings import settings_holder

log = logging.getLogger(__name__)

COOKIE_NAME = "gateway_console"
CSRF_FIELD = "csrf_token"
#: Endpoints reachable without a session (the sign-in form and link, the console's assets).
OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.sign_in_link", "console.asset"})
#: How long a console session lasts without signing in again.
SESSION_MAX_AGE_S = 12 * 3600

# Headers on every console page: no framing, no inline script, nothing cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _settings(app: Flask) -> Any | None:
    try:
        return settings_holder(app).get()
    except SettingsInvalid:
        return None


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, keyed by the settings' `secret_key` (re-read as it changes),
    opened only for /console requests so intake never pays for it."""

    salt = "gateway-console-session"

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Sign with a key derived from `secret_key`; None (no session) when it is unset."""
        settings = _settings(app)
        if settings is None or not settings.secret_key:
            return None
        derived = hashlib.sha256(b"console\x00" + settings.secret_key.encode()).hexdigest()
        return URLSafeTimedSerializer(
            derived,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )

    def open_session(self, app: Flask, request: Any) -> SecureCookieSession | None:
        """Open the console session; other paths get an empty one that is never saved."""
        if not request.path.startswith("/console"):
            return self.session_class()
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        value = request.cookies.get(COOKIE_NAME)
        if not value:
            return self.session_class()
        try:
            return self.session_class(serializer.loads(value, max_age=SESSION_MAX_AGE_S))
        except Exception:  # a bad or expired signature is just "not signed in"
            return self.session_class()

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def get_cookie_path(self, app: Flask) -> str:
        return "/console"

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure whenever the gateway is served over https (`public_url`)."""
        settings = _settings(app)
        return bool(settings and (settings.public_url or "").startswith("https://"))


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse (400) a POST whose form token does not match the session's."""
    sent = request.form.get(CSRF_FIELD, "")
    known = session.get("csrf") or ""
    if not known or not hmac.compare_digest(sent.encode(), known.encode()):
        abort(400, description="the form's CSRF token is missing or stale; reload the page")


def signed_in_key_id() -> str | None:
    """Return the admin key id of this session while that key still exists, else None."""
    key_id = session.get("admin")
    settings = _settings(current_app)
    if not key_id or settings is None:
        return None
    key = settings.key_by_id(key_id)
    return key_id if key is not None and key.kind == "admin" else None


def sign_in_allowed() -> float:
    """Charge one attempt to the caller's address; return 0 or seconds to wait."""
    from app.console import SIGN_IN_RULE

    settings = _settings(current_app)
    hops = settings.intake.proxy_hops if settings else 0
    limiter = current_app.extensions["console_sign_in_limiter"]
    return limiter.hit("console", client_ip(hops), SIGN_IN_RULE)


def start_session(key_id: str) -> None:
    """Begin a fresh session for this admin key (new CSRF token, no fixation)."""
    session.clear()
    session["admin"] = key_id
    session["csrf"] = secrets.token_urlsafe(32)


def safe_next(target: str | None) -> str:
    """Return a console path to go back to after sign-in; anything else means the overview."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.overview")


def init_auth(bp: Blueprint) -> None:
    """Guard every console endpoint: session first, then CSRF on POST; add security headers."""

    @bp.before_request
    def _guard() -> Response | None:
        if request.endpoint in OPEN_ENDPOINTS:
            if request.method == "POST":
                check_csrf()
            return None
        if signed_in_key_id() is None:
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        if request.method == "POST":
            check_csrf()
        return None

    @bp.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @bp.app_context_processor
    def _inject() -> dict[str, Any]:
        if not has_request_context() or not request.path.startswith("/console"):
            return {}
        return {
            "csrf_token": csrf_token,
            "CSRF_FIELD": CSRF_FIELD,
            "flash": session.pop("flash", None),
            "signed_in": signed_in_key_id() is not None,
        }
