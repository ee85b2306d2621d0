"""Identity tokens for /v1/hash and the associateLead hash they unlock."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

from itsdangerous import BadSignature
from itsdangerous import SignatureExpired
from itsdangerous import TimestampSigner
from itsdangerous import URLSafeTimedSerializer

from app.errors import BadRequest
from app.errors import BadToken
from app.errors import Conflict
from app.errors import TokenExpired
from app.ingest.validate import storable_text

# Salt that binds a token to this one purpose: a token signed for anything else fails here.
SALT = "marketo-gateway.identity-token.v1"

# Default and longest token lifetime: the hash lets whoever holds it claim the lead's
# Munchkin identity, so tokens live minutes, just long enough for the page to use them.
DEFAULT_TTL_S = 600
MAX_TTL_S = 3600

# RFC 5321 caps an address at 254 characters.
MAX_EMAIL_CHARS = 254

Clock = Callable[[], float]


@dataclass(frozen=True)
class IdentityToken:
    """A signed token for one email (and optionally one userId), and when it stops working."""

    token: str
    email: str
    expires_at: datetime
    user_id: str | None = None

    def as_json(self) -> dict[str, str]:
        """Return the `/v1/identity-tokens` answer."""
        stamp = self.expires_at.isoformat().replace("+00:00", "Z")
        out = {"token": self.token, "expiresAt": stamp}
        if self.user_id is not None:
            out["userId"] = self.user_id
        return out


@dataclass(frozen=True)
class Claims:
    """What a genuine token lets a browser event do: act for this email (and this userId)."""

    email: str
    user_id: str | None = None


class _ClockedSigner(TimestampSigner):
    """A timestamp signer that reads the time from an injected clock."""

    def __init__(self, *args, clock: Clock = time.time, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        """Return the injected clock's time in whole seconds."""
        return int(self._clock())


def _serializer(secret_key: str | None, clock: Clock) -> URLSafeTimedSerializer:
    if not secret_key:
        raise Conflict("set secret_key to sign identity tokens", code="secret_key_missing")
    return URLSafeTimedSerializer(
        secret_key, salt=SALT, signer=_ClockedSigner, signer_kwargs={"clock": clock}
    )


def clean_email(value: object) -> str:
    """Return a usable email address, stripped.

    :raises BadRequest: not a string that looks like an address.
    """
    email = value.strip() if isinstance(value, str) else ""
    local, at, domain = email.rpartition("@")
    if (
        not (at and local and domain)
        or len(email) > MAX_EMAIL_CHARS
        or any(c.isspace() for c in email)
        or not storable_text(email)
    ):
        raise BadRequest("email must be an email address", code="invalid_email")
    return email


def mint(
    secret_key: str | None,
    email: str,
    ttl_s: int = DEFAULT_TTL_S,
    *,
    user_id: object = None,
    clock: Clock = time.time,
) -> IdentityToken:
    """Sign a token for one email (and userId) that the gateway accepts for `ttl_s` seconds.

    `/v1/hash` exchanges it for the associateLead hash; a browser identify carrying it may write
    that lead and bind that userId (SPEC §5.4).

    :raises BadRequest: the email, userId or ttl is unusable.
    :raises Conflict: no secret_key is configured.
    """
    email = clean_email(email)
    if not isinstance(ttl_s, int) or isinstance(ttl_s, bool) or not 0 < ttl_s <= MAX_TTL_S:
        raise BadRequest(f"ttl must be 1..{MAX_TTL_S} seconds", code="invalid_ttl")
    claims: dict[str, object] = {"email": email, "ttl": ttl_s}
    if user_id is not None:
        if (
            not isinstance(user_id, str)
            or not 0 < len(user_id) <= 255
            or not storable_text(user_id)
        ):
            raise BadRequest("userId must be a string of 1..255 characters", code="invalid_user_id")
        claims["userId"] = user_id
    now = int(clock())
    token = _serializer(secret_key, clock).dumps(claims)
    return IdentityToken(
        token, email, datetime.fromtimestamp(now + ttl_s, UTC), claims.get("userId")
    )


def verify(secret_key: str | None, token: object, *, clock: Clock = time.time) -> str:
    """Return the email a genuine, unexpired token was minted for (see `verify_claims`)."""
    return verify_claims(secret_key, token, clock=clock).email


def verify_claims(secret_key: str | None, token: object, *, clock: Clock = time.time) -> Claims:
    """Return what a genuine, unexpired token was minted for.

    :raises BadToken: malformed, forged, or signed for another purpose or gateway (400).
    :raises TokenExpired: genuine but older than its lifetime (410).
    """
    if not isinstance(token, str) or not token:
        raise BadToken("token is missing")
    if not token.isascii():  # tokens are URL-safe base64: anything else is not one of ours
        raise BadToken("the identity token is not valid")
    serializer = _serializer(secret_key, clock)
    try:
        payload, signed_at = serializer.loads(token, max_age=MAX_TTL_S, return_timestamp=True)
    except SignatureExpired as exc:
        raise TokenExpired("the identity token has expired; mint a new one") from exc
    except BadSignature as exc:
        raise BadToken("the identity token is not valid") from exc
    email = payload.get("email") if isinstance(payload, dict) else None
    ttl = payload.get("ttl") if isinstance(payload, dict) else None
    if not isinstance(email, str) or not isinstance(ttl, int):
        raise BadToken("the identity token is not valid")
    if clock() - signed_at.timestamp() > ttl:
        raise TokenExpired("the identity token has expired; mint a new one")
    user_id = payload.get("userId")
    return Claims(email, user_id if isinstance(user_id, str) else None)


def munchkin_hash(private_key: str, email: str) -> str:
    """Return Munchkin's associateLead hash: lowercase hex SHA-1 of the private key + email."""
    return hashlib.sha1((private_key + email).encode("utf-8")).hexdigest()
