"""The Marketo REST client: one session, one call per method, every failure turned into a class.

The client never retries and never waits: the dispatcher owns both. Other areas (lists, campaigns,
bulk, merge) add endpoints in their own modules on top of `MarketoClient.request`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any
from typing import Protocol
from urllib.parse import urlencode

import requests

from app.marketo.endpoints import Endpoints
from app.marketo.errors import HTTP_CLASSES
from app.marketo.errors import CredentialsRejected
from app.marketo.errors import MarketoError
from app.marketo.errors import RateLimited
from app.marketo.errors import RequestRejected
from app.marketo.errors import TokenInvalid
from app.marketo.errors import Transient
from app.marketo.errors import classify
from app.marketo.token import Token
from app.ratelimit import quota_resets_at
from app.retry import parse_retry_after
from app.settings import Settings

logger = logging.getLogger(__name__)

# Refresh a token this long before Marketo says it expires (marketo-reference §1.3).
TOKEN_REFRESH_MARGIN_S = 60.0
# A token fetched this recently is used even when short-lived (Marketo reuses a dying token).
TOKEN_REUSE_S = 5.0
# Marketo answers 414 above 8 KB of URI; tunnel GETs whose query passes this as POST ?_method=GET.
TUNNEL_QUERY_BYTES = 7000
# Connecting should be quick; the read timeout comes from settings (`limits.timeout_s`).
MAX_CONNECT_TIMEOUT_S = 10.0
# When a 429 or 5xx carries no Retry-After, the limiter pauses this long on 429.
DEFAULT_429_PAUSE_S = 20.0
# While another process fetches the token, look for it in the shared cache this often.
TOKEN_WAIT_POLL_S = 0.05
# ...and fetch one ourselves once its lease (the read timeout plus this) has run out.
TOKEN_WAIT_GRACE_S = 5.0

Observer = Callable[[str, str, float], None]


class TokenCache(Protocol):
    """Where access tokens live; `SharedState` is one, so processes fetch one token between them."""

    def get_token(self, key: str) -> Token | None:
        """Return the cached token."""

    def put_token(self, key: str, token: Token) -> None:
        """Cache a token."""

    def drop_token(self, key: str, value: str) -> None:
        """Forget the token if it is still `value`."""


class Limiter(Protocol):
    """Grants call slots within the shared budget; raises RateLimited/QuotaExhausted to refuse."""

    def acquire(self) -> object:
        """Return a slot handle once a call may start."""

    def release(self, slot: object, counted: bool) -> None:
        """Return the slot; `counted=False` when Marketo did not charge the call."""


class MemoryTokens:
    """A per-process token cache for scripts that have no store."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def get_token(self, key: str) -> Token | None:
        """Return the cached token."""
        return self._tokens.get(key)

    def put_token(self, key: str, token: Token) -> None:
        """Cache a token."""
        self._tokens[key] = token

    def drop_token(self, key: str, value: str) -> None:
        """Forget the token if it is still `value`."""
        if key in self._tokens and self._tokens[key].value == value:
            del self._tokens[key]


def endpoint_name(path: str) -> str:
    """Return a path with numeric ids replaced by `{id}`, for metrics labels."""
    return re.sub(r"/\d+(?=/|\.json|$)", "/{id}", path.split("?", 1)[0])


def records_in(
    json: Any, params: Mapping[str, Any] | None, data: Mapping[str, Any] | None
) -> int | None:
    """Return how many records a call carries: its JSON `input`, else its filter values."""
    if isinstance(json, Mapping) and isinstance(json.get("input"), list):
        return len(json["input"])
    for source in (params, data):
        values = source.get("filterValues") if source else None
        if isinstance(values, str) and values:
            return values.count(",") + 1
    return None


class MarketoClient(Endpoints):
    """Calls Marketo's REST API for one instance, as configured by `settings`."""

    def __init__(
        self,
        settings: Settings,
        *,
        tokens: TokenCache | None = None,
        limiter: Limiter | None = None,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self._tokens = tokens if tokens is not None else MemoryTokens()
        self._limiter = limiter
        self._clock = clock
        self._session = session or requests.Session()
        self._observer = observer
        self._token_lock = threading.Lock()
        self._journal = threading.local()
        self._token_key = f"{settings.identity_url}|{settings.client_id}"
        read = float(settings.limits.timeout_s)
        self.timeout = (min(MAX_CONNECT_TIMEOUT_S, read), read)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    # Authentication ------------------------------------------------------------------------
    def token(self) -> str:
        """Return a valid access token, from the shared cache or fetched with client credentials.

        :raises CredentialsRejected: the identity endpoint refused the client id/secret.
        :raises Transient: the identity endpoint failed or could not be reached.
        """
        cached = self._usable(self._tokens.get_token(self._token_key))
        if cached is not None:
            return cached
        with self._token_lock:
            cached = self._usable(self._tokens.get_token(self._token_key))
            if cached is not None:
                return cached
            return self._fetch_shared()

    def _fetch_shared(self) -> str:
        """Fetch a token, one process at a time: a short shared lease names who fetches.

        Workers starting together would otherwise each fetch one (and Marketo would hand them
        the same token anyway). The others wait for the token the holder puts in the shared
        cache; if it never comes (the holder died or failed), they fetch one themselves.
        """
        try_lock = getattr(self._tokens, "try_lock", None)
        if try_lock is None:
            return self._fetch_token()
        owner = f"{os.getpid()}-{threading.get_ident()}-{id(self)}"
        name = f"token:{self._token_key}"
        deadline = self._clock() + self.timeout[1] + TOKEN_WAIT_GRACE_S
        while not try_lock(name, owner, self.timeout[1] + TOKEN_WAIT_GRACE_S, self._clock()):
            cached = self._usable(self._tokens.get_token(self._token_key))
            if cached is not None:
                return cached
            if self._clock() >= deadline:
                return self._fetch_token()
            time.sleep(TOKEN_WAIT_POLL_S)
        try:
            cached = self._usable(self._tokens.get_token(self._token_key))
            return cached if cached is not None else self._fetch_token()
        finally:
            self._tokens.unlock(name, owner)  # type: ignore[attr-defined]

    def token_age(self) -> float | None:
        """Return seconds since the cached token was first fetched, or None without one."""
        token = self._tokens.get_token(self._token_key)
        return None if token is None else max(0.0, self._clock() - token.fetched_at)

    def _usable(self, token: Token | None) -> str | None:
        if token is None:
            return None
        now = self._clock()
        if token.expires_at - now > TOKEN_REFRESH_MARGIN_S:
            return token.value
        if now - token.fetched_at < TOKEN_REUSE_S and token.expires_at > now:
            return token.value
        return None

    def _fetch_token(self) -> str:
        if not self.settings.has_credentials:
            raise CredentialsRejected("no client_id/client_secret configured", marketo_code="401")
        url = self.settings.identity_url.rstrip("/") + "/oauth/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
        }
        started = self._clock()
        try:
            resp = self._session.post(url, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            self._observe("/identity/oauth/token", "transport", started)
            raise Transient(f"identity endpoint unreachable: {type(exc).__name__}") from exc
        self._observe("/identity/oauth/token", str(resp.status_code), started)
        if resp.status_code in (400, 401, 403):
            raise CredentialsRejected(
                f"identity endpoint refused the credentials (HTTP {resp.status_code})",
                marketo_code=str(resp.status_code),
            )
        if resp.status_code >= 400:
            raise Transient(
                f"identity endpoint answered HTTP {resp.status_code}",
                marketo_code=str(resp.status_code),
                retry_after=parse_retry_after(resp.headers.get("Retry-After"), self._clock()),
            )
        try:
            body = resp.json()
            value = str(body["access_token"])
            expires_in = float(body.get("expires_in", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise Transient("identity endpoint sent no token") from exc
        if expires_in <= 0:
            raise Transient("identity endpoint sent an expired token", retry_after=1.0)
        now = self._clock()
        self._tokens.put_token(self._token_key, Token(value, now + expires_in, now))
        logger.info("fetched a Marketo access token valid for %.0f s", expires_in)
        return value

    # The one generic call ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        raw: bool = False,
    ) -> dict[str, Any]:
        """Make one call to `path` (under the REST host) and return its checked envelope.

        Takes a limiter slot, sends the token as a Bearer header, tunnels long GETs, and raises
        the `MarketoError` subclass matching any HTTP-, transport- or response-level failure.
        With `raw`, a successful non-JSON answer (bulk failure CSVs) comes back as `{"text"}`.
        A raised error carries the number of records the call held (`records_in`).
        """
        started = self._clock()
        error: MarketoError | None = None
        try:
            return self._request(method, path, params, json, data, files, timeout, raw)
        except MarketoError as exc:
            if exc.records is None:
                exc.records = records_in(json, params, data)
            error = exc
            raise
        finally:
            journal = getattr(self._journal, "calls", None)
            if journal is not None:
                journal.append(
                    {
                        "at": started,
                        "method": method.upper(),
                        "endpoint": endpoint_name(path),
                        "status": "success" if error is None else type(error).__name__,
                        "ms": int(max(0.0, self._clock() - started) * 1000),
                        "code": (error.marketo_code or None) if error is not None else None,
                        "message": str(error) if error is not None else None,
                        "records": records_in(json, params, data),
                    }
                )

    @contextmanager
    def journal(self) -> Iterator[list[dict[str, Any]]]:
        """Collect the calls this thread makes inside the block: when, what, and how each ended.

        Delivery wraps each batch in one, so the console can show an event the calls made for
        it. Only names, codes and Marketo's messages are kept, never a body.
        """
        calls: list[dict[str, Any]] = []
        outer = getattr(self._journal, "calls", None)
        self._journal.calls = calls
        try:
            yield calls
        finally:
            self._journal.calls = outer

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        timeout: float | None,
        raw: bool,
    ) -> dict[str, Any]:
        if method.upper() == "GET" and params and len(urlencode(params)) > TUNNEL_QUERY_BYTES:
            method, data, params = "POST", dict(params), {"_method": "GET"}
        token = self.token()
        url = self.settings.rest_base_url.rstrip("/") + "/" + path.lstrip("/")
        read = float(timeout) if timeout is not None else self.timeout[1]
        slot = self._limiter.acquire() if self._limiter is not None else None
        counted = True
        label = "transport"
        started = self._clock()
        try:
            try:
                resp = self._session.request(
                    method.upper(),
                    url,
                    params=params,
                    json=json,
                    data=data,
                    files=files,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=(min(self.timeout[0], read), read),
                )
            except requests.ConnectTimeout as exc:
                counted = False
                raise Transient(f"connect timeout to {path}") from exc
            except requests.ConnectionError as exc:
                counted = False
                raise Transient(f"connection to {path} failed") from exc
            except requests.Timeout as exc:
                raise Transient(
                    f"no answer from {path} in {read:.0f} s", maybe_applied=True
                ) from exc
            except requests.RequestException as exc:
                raise Transient(f"request to {path} failed: {type(exc).__name__}") from exc
            label = str(resp.status_code)
            if raw and resp.ok and "json" not in resp.headers.get("Content-Type", ""):
                label = "success"
                return {"success": True, "text": resp.text}
            body = self._http_level(resp, path)
            if not body.get("success", False):
                counted = False  # Marketo charges neither rate nor quota for errored requests
                error = self._response_level(body, token)
                label = error.marketo_code
                raise error
            label = "success"
            return body
        finally:
            if slot is not None and self._limiter is not None:
                self._limiter.release(slot, counted)
            self._observe(path, label, started)

    def _http_level(self, resp: requests.Response, path: str) -> dict[str, Any]:
        status = resp.status_code
        now = self._clock()
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
        if status == 401:
            raise TokenInvalid(f"HTTP 401 from {path}", marketo_code="601")
        if status == 429:
            pause = retry_after if retry_after is not None else DEFAULT_429_PAUSE_S
            raise RateLimited(f"HTTP 429 from {path}", retry_after=pause, marketo_code="606")
        if status >= 500:
            raise Transient(
                f"HTTP {status} from {path}", retry_after=retry_after, marketo_code=str(status)
            )
        if status >= 400:
            cls = HTTP_CLASSES.get(status, RequestRejected)
            raise cls(f"HTTP {status} from {path}", marketo_code=str(status))
        try:
            body = resp.json()
        except ValueError as exc:
            raise Transient(f"non-JSON answer from {path}", marketo_code=str(status)) from exc
        if not isinstance(body, dict):
            raise Transient(f"unexpected answer from {path}", marketo_code=str(status))
        return body

    def _response_level(self, body: Mapping[str, Any], token: str) -> MarketoError:
        errors = body.get("errors") or [{"code": "", "message": "success:false without errors"}]
        first = errors[0] if isinstance(errors[0], Mapping) else {"message": str(errors[0])}
        code = str(first.get("code", ""))
        error = classify(
            code,
            str(first.get("message", "")),
            request_id=body.get("requestId"),
            resets_at=quota_resets_at(self._clock(), self.settings.limits.quota_reset_tz),
        )
        if isinstance(error, TokenInvalid):
            self._tokens.drop_token(self._token_key, token)
        logger.warning("Marketo refused a request: %s (requestId %s)", error, body.get("requestId"))
        return error

    def _observe(self, path: str, label: str, started: float) -> None:
        if self._observer is not None:
            self._observer(endpoint_name(path), label, max(0.0, self._clock() - started))
