"""Request plumbing shared by every route: body parsing, key checks, CORS, rate limits, errors."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import get_content_length

from app.errors import BadRequest
from app.errors import Forbidden
from app.errors import GatewayError
from app.errors import PayloadTooLarge
from app.errors import TooManyRequests
from app.errors import Unauthorized
from app.errors import UnsupportedMediaType
from app.settings import IntakeLimits
from app.settings import Settings
from app.settings import SettingsHolder
from app.settings import SourceKey
from app.settings import settings_holder

log = logging.getLogger(__name__)

# Content types a JSON body may arrive with; sendBeacon sends text/plain to avoid a preflight.
JSON_TYPES = ("application/json", "text/plain", "")

# How long browsers may cache a CORS preflight answer.
PREFLIGHT_MAX_AGE_S = 600

# Request headers a browser page may send cross-origin. analytics.js adds `Authorization: Basic
# base64(writeKey:)` (a public browser key, never a cookie: no credentials mode is ever allowed)
# and may add `X-Retry-Count`; a preflight echoes back only those of these the page asked for.
SAFE_REQUEST_HEADERS = frozenset(
    {"content-type", "authorization", "x-requested-with", "x-retry-count"}
)


def current_settings() -> Settings:
    """Return the settings in force for this app.

    :raises SettingsInvalid: the settings file is missing or invalid (503).
    """
    holder: SettingsHolder = settings_holder(current_app)
    return holder.get()


def parse_authorization(value: str | None) -> tuple[str, str | None] | None:
    """Return an Authorization header's (lower-case scheme, HTTP Basic user name or None).

    Parsed as werkzeug's `Authorization.from_header` parses it (None when the header is absent
    or empty, or Basic credentials that do not decode), from the header text directly: the
    request's parsed headers and Authorization object cost more than the rest of the key check.
    Basic credentials with non-ASCII characters count as undecodable rather than raising.
    """
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    scheme = scheme.lower()
    if scheme != "basic":
        return scheme, None
    try:
        user = base64.b64decode(rest.strip()).decode().partition(":")[0]
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text; UnicodeError: not UTF-8
        return None
    return scheme, user


def _decompress(body: bytes, max_bytes: int) -> bytes:
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest("the gzip body is corrupt", code="bad_encoding") from exc
    if len(out) > max_bytes or decoder.unconsumed_tail:
        raise PayloadTooLarge(f"the body is over {max_bytes} bytes once decompressed")
    if not decoder.eof:
        raise BadRequest("the gzip body is truncated", code="bad_encoding")
    return out


# A refused body is still read (and dropped) up to this multiple of the limit, so a client on a
# keep-alive connection reads its 413 instead of a reset; a larger body is not read at all.
DISCARD_FACTOR = 10

# Read size while discarding: memory stays bounded whatever the declared length.
DISCARD_CHUNK = 64 * 1024


def _discard_body(environ: dict[str, Any], length: int, max_bytes: int) -> None:
    """Read and drop a body declared too long, up to DISCARD_FACTOR x the limit.

    Beyond that the 413 goes out unread: the server then drops the connection or drains it.
    """
    if length > DISCARD_FACTOR * max_bytes:
        return
    stream = environ["wsgi.input"]
    left = length
    while left > 0:
        chunk = stream.read(min(DISCARD_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)


def read_json_body(max_bytes: int, any_type: bool = False) -> Any:
    """Return the request's JSON body (JSON or text/plain, optionally gzip), capped at max_bytes.

    `any_type` reads the body as JSON whatever Content-Type it is labelled with: server SDKs
    mislabel it (rudder-sdk-node sends gzip JSON as application/x-www-form-urlencoded) and,
    authenticated by a server key, are not a browser form that the label would protect.

    :raises PayloadTooLarge: the body is over the limit.
    :raises UnsupportedMediaType: the content type or encoding is not accepted.
    :raises BadRequest: the body is empty or not JSON.
    """
    environ = request.environ
    # The environ directly: werkzeug's parsed headers, mimetype and wrapped stream cost more than
    # the rest of this function on a small event.
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if mimetype not in JSON_TYPES and not any_type:
        raise UnsupportedMediaType(f"send JSON (application/json or text/plain), not {mimetype}")
    length = get_content_length(
        environ.get("CONTENT_LENGTH"), environ.get("HTTP_TRANSFER_ENCODING")
    )
    if length is not None and length > max_bytes:
        _discard_body(environ, length, max_bytes)
        raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
    if length is not None:
        raw = environ["wsgi.input"].read(length)  # exactly the declared body, never beyond it
    else:
        raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
    encoding = (environ.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
    if encoding == "gzip":
        raw = _decompress(raw, max_bytes)
    elif encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding} is not supported; use gzip")
    if not raw.strip():
        raise BadRequest("the body is empty", code="empty_body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from exc


def browser_key_from(settings: Settings, value: Any) -> SourceKey:
    """Return the browser key named by a `writeKey` or `k` value.

    :raises Unauthorized: no browser key has that value.
    """
    key = settings.browser_key(value) if isinstance(value, str) else None
    if key is None:
        raise Unauthorized("unknown browser key", code="unknown_key")
    return key


def basic_user() -> str | None:
    """Return the HTTP Basic user name of this request (Segment clients put their key there)."""
    auth = parse_authorization(request.environ.get("HTTP_AUTHORIZATION"))
    return auth[1] if auth is not None else None


def server_key_from_auth(settings: Settings) -> SourceKey:
    """Return the server key sent as the HTTP Basic user name (password empty), Segment-style.

    A browser key there is refused too: it is public, so it never gets the server API's powers.

    :raises Unauthorized: no credentials, or not a known server key.
    """
    user = basic_user()
    key = settings.server_key(user)
    if key is None:
        if isinstance(user, str) and settings.browser_key(user) is not None:
            raise Unauthorized(
                "a browser key cannot call the server API; send browser events to /v1/t, "
                "/v1/p, /v1/i, /v1/a, /v1/g, /v1/b or /v1/batch",
                code="browser_key_not_allowed",
            )
        raise Unauthorized("send a server key as the HTTP Basic user name", code="unknown_key")
    return key


def check_origin(key: SourceKey) -> None:
    """Refuse a browser request whose Origin is present and not allowed for its key.

    :raises Forbidden: the Origin header names a foreign site.
    """
    origin = request.headers.get("Origin")
    if origin is not None and not key.allows_origin(origin):
        raise Forbidden(f"origin {origin} is not allowed for this key", code="origin_not_allowed")


def apply_cors(response: Response, key: SourceKey | None) -> Response:
    """Echo the request's Origin when it is allowed for `key`; never a wildcard for credentials."""
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if key is not None and key.allows_origin(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        # A page must read a 429's Retry-After to wait it out (analytics.js does).
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
    return response


def preflight_response(keys: list[SourceKey]) -> Response:
    """Answer a CORS preflight: allowed when any of the candidate keys allows the Origin."""
    response = current_app.response_class(status=204)
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if any(k.allows_origin(origin) for k in keys):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = _allowed_request_headers()
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return response


def _allowed_request_headers() -> str:
    """Return the safe subset of the headers a preflight asks for (always Content-Type)."""
    asked = request.headers.get("Access-Control-Request-Headers", "")
    names = {part.strip().lower() for part in asked.split(",") if part.strip()}
    allowed = sorted((names & SAFE_REQUEST_HEADERS) | {"content-type"})
    return ", ".join(allowed)


class IpRateLimiter:
    """Per-(key, IP) token buckets held in this process; the clock is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000):
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def hit(self, key_id: str, ip: str, rule: tuple[int, float], cost: int = 1) -> float:
        """Spend `cost` (events); return 0 when allowed, else seconds until it would be.

        IPv6 callers are counted per /64, the block one subscriber usually holds, so walking
        through addresses of one's own block does not reset the budget.
        """
        count, period = rule
        rate = count / period
        now = self._clock()
        bucket = (key_id, _subscriber(ip))
        with self._lock:
            if len(self._buckets) >= self._max_entries and bucket not in self._buckets:
                self._evict(now, period)
            tokens, last = self._buckets.get(bucket, (float(count), now))
            tokens = min(float(count), tokens + (now - last) * rate)
            if tokens < cost:
                self._buckets[bucket] = (tokens, now)
                return (cost - tokens) / rate
            self._buckets[bucket] = (tokens - cost, now)
            return 0.0

    def __len__(self) -> int:
        """Return how many (key, subscriber) buckets this process holds (memory is bounded)."""
        with self._lock:
            return len(self._buckets)

    def _evict(self, now: float, period: float) -> None:
        """Make room: forget buckets idle for a whole period (they are full again anyway), else
        the least recently used half. Never all at once: a blocked caller stays blocked."""
        idle = [b for b, (_, last) in self._buckets.items() if now - last >= period]
        for b in idle:
            del self._buckets[b]
        if len(self._buckets) >= self._max_entries:
            by_age = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for b, _ in by_age[: len(by_age) // 2]:
                del self._buckets[b]


def _subscriber(ip: str) -> str:
    """Return the address itself for IPv4, its /64 network for IPv6."""
    if ":" not in ip:
        return ip
    try:
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    except ValueError:
        return ip


def client_ip(proxy_hops: int) -> str:
    """Return the caller's address: the socket peer, or behind `proxy_hops` trusted proxies the
    address the outermost of them saw (X-Forwarded-For, counted from the right, so entries a
    client wrote itself are never taken)."""
    if proxy_hops > 0:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")
        hops = [part.strip() for part in forwarded if part.strip()]
        if len(hops) >= proxy_hops:
            return hops[-proxy_hops]
    return request.remote_addr or "-"


def check_ip_rate(key: SourceKey, intake: IntakeLimits, events: int = 1) -> None:
    """Charge `events` to the caller's IP for this browser key (a batch costs each event).

    :raises PayloadTooLarge: more events in one request than the rule allows at all.
    :raises TooManyRequests: the IP is over the rule; `retry_after` says when to return.
    """
    rule = intake.browser_rate
    if events > rule[0]:
        raise PayloadTooLarge(
            f"a browser request may carry at most {rule[0]} events (intake.browser_rate_per_ip)",
            code="too_many_events",
        )
    limiter: IpRateLimiter = current_app.extensions["ip_rate_limiter"]
    wait = limiter.hit(key.id, client_ip(intake.proxy_hops), rule, max(1, events))
    if wait > 0:
        raise TooManyRequests("too many requests from this address", retry_after=wait)


def error_response(status: int, code: str, message: str) -> Response:
    """Build the one error shape every route answers with.

    `code` and `message` also sit at the top level: rudder-sdk-python reads them there (and took
    a 401 for a network failure, retrying it, when they were missing).
    """
    response = jsonify(
        {"success": False, "error": {"code": code, "message": message}, "code": code,
         "message": message}
    )  # fmt: skip
    response.status_code = status
    return response


def _handle_gateway_error(exc: GatewayError) -> Response:
    if exc.status >= 500:
        log.warning("request failed: %s", exc.message)
    response = error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Basic realm="gateway"'
    return response


def _handle_http_exception(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    response = error_response(exc.code or 500, code, exc.description or exc.name)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def init_app(app: Flask) -> None:
    """Register the JSON error handlers and the per-IP limiter."""
    app.extensions["ip_rate_limiter"] = IpRateLimiter(app.config.get("CLOCK") or time.monotonic)
    app.register_error_handler(GatewayError, _handle_gateway_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
