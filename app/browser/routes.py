"""Routes served to browsers: the loader, the form config, the associateLead hash; and tokens."""

from __future__ import annotations

import json
import time

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from flask import request

from app.browser import loader
from app.browser import tokens
from app.errors import BadRequest
from app.errors import Conflict
from app.errors import GatewayError
from app.errors import TooManyRequests
from app.http import IpRateLimiter
from app.http import apply_cors
from app.http import browser_key_from
from app.http import check_origin
from app.http import client_ip
from app.http import current_settings
from app.http import preflight_response
from app.http import read_json_body
from app.http import server_key_from_auth

bp = Blueprint("browser", __name__)

# Browsers and CDNs may reuse a loader this long; a settings change shows within 5 minutes.
LOADER_MAX_AGE_S = 300
# An on-demand module (identify, TCF) at its versioned URL never changes.
MODULE_MAX_AGE_S = 365 * 24 * 3600

# /v1/hash per (key, IP): a page needs one hash per identify, so 10 a minute is generous,
# and it slows anyone probing tokens.
HASH_RATE = (10, 60.0)

# Bodies of /v1/hash and /v1/identity-tokens are a few hundred bytes.
MAX_SMALL_BODY = 4096


def wall_clock() -> float:
    """Return the time tokens are signed and checked with (`WALL_CLOCK` in tests)."""
    return (current_app.config.get("WALL_CLOCK") or time.time)()


def gateway_url() -> str:
    """Return the gateway's public base URL: `public_url`, else the URL this request came to."""
    return current_settings().public_url or request.host_url.rstrip("/")


def _js_comment(status: int, message: str) -> Response:
    body = f"/* gateway: {message} */\n"
    return Response(body, status=status, content_type="text/javascript; charset=utf-8")


@bp.after_request
def _cors(response: Response) -> Response:
    """Answer browsers with CORS for the key the request named, errors included."""
    return apply_cors(response, g.get("browser_key"))


@bp.get("/v1/loader.js")
def loader_js() -> Response:
    """Serve the library with this key's public config; cacheable, 304 on a matching ETag."""
    try:
        settings = current_settings()
        key = browser_key_from(settings, request.args.get("k"))
    except GatewayError as exc:
        return _js_comment(404 if exc.status < 500 else exc.status, exc.message)
    body = loader.render_loader(settings, key, gateway_url())
    response = Response(body, content_type="text/javascript; charset=utf-8")
    response.set_etag(loader.etag_for(body))
    if settings.public_url:
        response.cache_control.public = True
    else:
        # The beacon URL came from this request's Host header: a shared cache must not hand
        # it to other visitors (a forged Host would send their beacons elsewhere).
        response.cache_control.private = True
        response.vary.add("Host")
    response.cache_control.max_age = LOADER_MAX_AGE_S
    return response.make_conditional(request)


@bp.get("/v1/identify.js")
def identify_js() -> Response:
    """Serve the identify module the library loads on the first identify that needs Marketo.

    It holds no key and no config, so any cache may keep it; for a year when the URL names the
    version being served (the loader links to that URL, and a new version gets a new one).
    """
    return _module_response(loader.identify_module())


@bp.get("/v1/tcf.js")
def tcf_js() -> Response:
    """Serve the TCF module the library loads on pages with an IAB TCF consent manager.

    It holds the site's category -> TCF purposes map, which is public (no key, no secret), and
    is cached like the identify module: a new map is a new version, so a new URL.
    """
    return _module_response(loader.tcf_module(current_settings()))


def _module_response(module: loader.Module) -> Response:
    """Answer with an on-demand module: for a year at its versioned URL, else for minutes."""
    response = Response(module.body, content_type="text/javascript; charset=utf-8")
    response.set_etag(module.etag)
    response.cache_control.public = True
    if request.args.get("v") == module.version:
        response.cache_control.max_age = MODULE_MAX_AGE_S
        response.cache_control.immutable = True
    else:
        response.cache_control.max_age = LOADER_MAX_AGE_S
    return response.make_conditional(request)


@bp.get("/v1/form-config")
def form_config() -> Response:
    """Return the Forms 2.0 background-submission config as JSON."""
    settings = current_settings()
    g.browser_key = browser_key_from(settings, request.args.get("k"))
    # Not jsonify: it sorts keys, and the field map's order is its precedence.
    body = json.dumps(loader.form_config(settings), separators=(",", ":"))
    return Response(body, mimetype="application/json")


@bp.route("/v1/hash", methods=["POST", "OPTIONS"])
def munchkin_hash() -> Response:
    """Exchange an identity token for its email and the associateLead hash."""
    settings = current_settings()
    if request.method == "OPTIONS":
        return preflight_response([k for k in settings.keys if k.kind == "browser"])
    body = read_json_body(MAX_SMALL_BODY)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object {k, token}")
    key = browser_key_from(settings, body.get("k"))
    g.browser_key = key
    check_origin(key)
    limiter: IpRateLimiter = current_app.extensions["hash_rate_limiter"]
    wait = limiter.hit(key.id, client_ip(settings.intake.proxy_hops), HASH_RATE)
    if wait > 0:
        raise TooManyRequests("too many hash requests from this address", retry_after=wait)
    if settings.identify_mode != "associate_lead" or not settings.api_private_key:
        raise Conflict("identify_mode is not associate_lead", code="wrong_identify_mode")
    email = tokens.verify(settings.secret_key, body.get("token"), clock=wall_clock)
    return jsonify({"email": email, "hash": tokens.munchkin_hash(settings.api_private_key, email)})


@bp.post("/v1/identity-tokens")
def identity_tokens() -> Response:
    """Mint an identity token for one email and optionally one userId (site back ends)."""
    settings = current_settings()
    server_key_from_auth(settings)
    body = read_json_body(MAX_SMALL_BODY)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object {email}")
    ttl = body.get("ttl", tokens.DEFAULT_TTL_S)
    minted = tokens.mint(
        settings.secret_key, body.get("email"), ttl, user_id=body.get("userId"), clock=wall_clock
    )
    return jsonify(minted.as_json())
