"""Typed, immutable settings: one frozen dataclass per section of the settings document."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from types import MappingProxyType
from typing import Any

from app.settings.consent import ConsentSettings

# Types a trait, property or activity attribute may be coerced to.
FIELD_TYPES = frozenset(
    {
        "string",
        "text",
        "integer",
        "float",
        "currency",
        "boolean",
        "date",
        "datetime",
        "email",
        "phone",
        "url",
        "link",
    }
)

LOOKUP_ORDER_NAMES = ("marketo_cookie", "email", "userId", "anonymousId")

IDENTIFY_MODES = ("form", "associate_lead", "off")

DEFAULT_MUNCHKIN_SCRIPT_URL = "https://munchkin.marketo.net/munchkin.js"


def hash_secret(secret: str) -> str:
    """Return the stored form of a server key: SHA-256 is enough for long random keys."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FieldMapping:
    """A trait (dotted path) written to a Marketo lead field of a declared type."""

    field: str
    type: str = "string"


@dataclass(frozen=True)
class AttributeMapping:
    """An event property (dotted path) written to a custom activity attribute."""

    attribute: str
    type: str = "string"


@dataclass(frozen=True)
class EventMapping:
    """How one track event becomes a Marketo custom activity."""

    activity_type_id: int
    primary: str | None = None
    properties: Mapping[str, AttributeMapping] = field(default_factory=dict)


@dataclass(frozen=True)
class CampaignMapping:
    """An event that requests a trigger campaign, with `{{my.token}}` values from properties."""

    campaign_id: int
    tokens: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListsSettings:
    """Where audience static lists live and whether missing ones are created."""

    folder_id: int
    folder_type: str = "Folder"
    create_missing: bool = True
    names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadFields:
    """Marketo field API names that hold our ids; None means the id is not stored on leads."""

    user_id: str | None = None
    anonymous_id: str | None = None


@dataclass(frozen=True)
class Limits:
    """The Marketo call budget shared by every thread and process of the gateway."""

    calls_per_20s: int = 90
    concurrency: int = 8
    daily_quota: int = 45000
    quota_reset_tz: str = "America/Chicago"
    batch_size: int = 300
    batch_wait_s: float = 2.0
    # How long a partial batch waits for more events to fill its call (capped by batch_wait_s).
    linger_ms: int = 400
    timeout_s: float = 30.0
    max_attempts: int = 12
    # Marketo lookups made for untrusted (browser) events' cookies, per hour, shared by every
    # process: a public key must not be able to spend the daily quota (app/delivery/leads.py).
    browser_lookups_per_hour: int = 600


@dataclass(frozen=True)
class IntakeLimits:
    """Size, rate and dedupe limits applied to incoming events."""

    max_event_bytes: int = 32768
    max_batch_bytes: int = 512000
    browser_rate_per_ip: str = "60/minute"
    dedupe_window_h: float = 24.0
    # Reverse proxies in front of the gateway whose X-Forwarded-For entries are trusted; 0 = the
    # socket peer is the client. Behind a load balancer every visitor would otherwise share its IP.
    proxy_hops: int = 0

    @property
    def browser_rate(self) -> tuple[int, float]:
        """Return the per-IP browser limit as (count, period in seconds)."""
        count, _, unit = self.browser_rate_per_ip.partition("/")
        return int(count), {"second": 1.0, "minute": 60.0, "hour": 3600.0}[unit]


@dataclass(frozen=True)
class SourceKey:
    """A key a website (browser, public) or a server (secret, hashed) sends events with."""

    id: str
    kind: str
    key: str | None = None
    secret_hash: str | None = None
    allowed_origins: tuple[str, ...] = ()
    label: str = ""
    created: str = ""

    def allows_origin(self, origin: str | None) -> bool:
        """Tell whether a browser request from `origin` may use this key."""
        if not origin:
            return False
        return "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins


@dataclass(frozen=True)
class Settings:
    """The effective settings: the file, with secrets from the environment applied."""

    munchkin_id: str
    public_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    rest_base_url: str = ""
    identity_url: str = ""
    api_private_key: str | None = None
    secret_key: str | None = None
    metrics_token: str | None = None
    identify_mode: str = "off"
    form_id: int | None = None
    form_base_url: str | None = None
    munchkin_script_url: str = DEFAULT_MUNCHKIN_SCRIPT_URL
    munchkin_options: Mapping[str, Any] = field(default_factory=dict)
    send_track_server_side: bool = True
    track_anonymous: bool = True
    anonymous_hold_days: float = 7.0
    lead_lookup: tuple[str, ...] = LOOKUP_ORDER_NAMES
    lead_fields: LeadFields = LeadFields()
    create_leads: bool = True
    lead_partition: str | None = None
    lead_action: str = "createOrUpdate"
    lead_lookup_field: str = "email"
    traits: Mapping[str, FieldMapping] = field(default_factory=dict)
    events: Mapping[str, EventMapping] = field(default_factory=dict)
    page_activity: EventMapping | None = None
    lists: ListsSettings | None = None
    campaigns: Mapping[str, CampaignMapping] = field(default_factory=dict)
    merge_on_alias: bool = False
    merge_in_crm: bool = False
    keys: tuple[SourceKey, ...] = ()
    limits: Limits = Limits()
    intake: IntakeLimits = IntakeLimits()
    store_url: str | None = None
    consent: ConsentSettings = ConsentSettings()

    def __post_init__(self) -> None:
        by_key = {k.key: k for k in self.keys if k.kind == "browser" and k.key}
        by_hash = {k.secret_hash: k for k in self.keys if k.kind == "server" and k.secret_hash}
        object.__setattr__(self, "_browser_index", MappingProxyType(by_key))
        object.__setattr__(self, "_server_index", MappingProxyType(by_hash))
        admins = {k.secret_hash: k for k in self.keys if k.kind == "admin" and k.secret_hash}
        object.__setattr__(self, "_admin_index", MappingProxyType(admins))

    @property
    def has_credentials(self) -> bool:
        """Tell whether server-side delivery to Marketo is possible."""
        return bool(self.client_id and self.client_secret)

    def key_by_id(self, key_id: str) -> SourceKey | None:
        """Return the source key with this id, browser or server."""
        return next((k for k in self.keys if k.id == key_id), None)

    def browser_key(self, value: str | None) -> SourceKey | None:
        """Return the browser key whose public value is `value`."""
        if not value:
            return None
        return self._browser_index.get(value)  # type: ignore[attr-defined]

    def server_key(self, secret: str | None) -> SourceKey | None:
        """Return the server key whose secret hashes to a stored hash, in constant time per key."""
        if not secret:
            return None
        digest = hash_secret(secret)
        found = self._server_index.get(digest)  # type: ignore[attr-defined]
        if found is not None and hmac.compare_digest(found.secret_hash or "", digest):
            return found
        return None

    def admin_key(self, secret: str | None) -> SourceKey | None:
        """Return the operator (console) key whose secret hashes to a stored hash."""
        if not secret:
            return None
        digest = hash_secret(secret)
        found = self._admin_index.get(digest)  # type: ignore[attr-defined]
        if found is not None and hmac.compare_digest(found.secret_hash or "", digest):
            return found
        return None
