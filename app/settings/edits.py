"""Pure edits of a raw settings document, used by `flask config` and `flask keys`."""

from __future__ import annotations

import json
import secrets
from dataclasses import fields
from datetime import UTC
from datetime import datetime
from typing import Any

from app.settings.model import Settings
from app.settings.model import hash_secret

# Keys whose values are always text (`config set client_id 12345` means "12345"): the
# settings fields typed as strings.
TEXT_KEYS = frozenset(f.name for f in fields(Settings) if f.type in ("str", "str | None"))


def parse_value(text: str, key: str | None = None) -> Any:
    """Read a CLI value as JSON when it parses (numbers, booleans, objects), else as a string.

    For a key that only holds text, a value that parses as a number or boolean stays text.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if key in TEXT_KEYS and not isinstance(value, str) and value is not None:
        return text
    return value


def _split(dotted: str) -> list[str]:
    parts = dotted.split(".")
    if not all(parts):
        raise KeyError(f"{dotted!r} is not a dotted key like limits.calls_per_20s")
    return parts


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key, creating intermediate objects.

    :raises KeyError: the key is malformed or passes through a non-object.
    """
    parts = _split(dotted)
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise KeyError(f"{part!r} in {dotted!r} is not an object")
        node = child
    node[parts[-1]] = value


def unset_path(raw: dict[str, Any], dotted: str) -> None:
    """Remove a dotted key.

    :raises KeyError: the key is not set.
    """
    parts = _split(dotted)
    node: Any = raw
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or parts[-1] not in node:
        raise KeyError(f"{dotted} is not set")
    del node[parts[-1]]


def parse_property(spec: str) -> tuple[str, dict[str, str]]:
    """Read `PROP=ATTRIBUTE[:TYPE]` into (property path, {attribute, type}).

    :raises ValueError: the spec has no '='.
    """
    prop, sep, rest = spec.partition("=")
    if not sep or not prop or not rest:
        raise ValueError(f"{spec!r} is not PROP=ATTRIBUTE[:TYPE]")
    attribute, _, type_ = rest.partition(":")
    return prop, {"attribute": attribute, "type": type_ or "string"}


def map_event(
    raw: dict[str, Any],
    event: str,
    activity_type_id: int,
    primary: str | None,
    properties: list[str],
) -> None:
    """Map a track event to a custom activity type, replacing any earlier mapping."""
    mapping: dict[str, Any] = {"activity_type_id": activity_type_id, "properties": {}}
    if primary:
        mapping["primary"] = primary
    for spec in properties:
        prop, attr = parse_property(spec)
        mapping["properties"][prop] = attr
    raw.setdefault("events", {})[event] = mapping


def unmap(raw: dict[str, Any], section: str, name: str) -> None:
    """Remove one entry of `events` or `traits`.

    :raises KeyError: nothing is mapped under that name.
    """
    entries = raw.get(section) or {}
    if name not in entries:
        raise KeyError(f"{name!r} is not mapped in {section}")
    del entries[name]


def map_field(raw: dict[str, Any], trait: str, field: str, type_: str) -> None:
    """Map a trait (dotted path) to a Marketo lead field."""
    raw.setdefault("traits", {})[trait] = {"field": field, "type": type_}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def create_key(
    raw: dict[str, Any], kind: str, origins: list[str], label: str
) -> tuple[dict[str, Any], str]:
    """Add a key; return (entry, value to hand out). Server and admin secrets are kept hashed."""
    entry: dict[str, Any] = {
        "id": "key_" + secrets.token_hex(4),
        "kind": kind,
        "label": label,
        "created": _now(),
    }
    if kind == "browser":
        value = "bk_" + secrets.token_urlsafe(16)
        entry["key"] = value
        entry["allowed_origins"] = [o.rstrip("/") for o in origins]
    else:  # server and admin (operator console) keys: a secret kept only as its hash
        value = ("ak_" if kind == "admin" else "sk_") + secrets.token_urlsafe(32)
        entry["secret_hash"] = hash_secret(value)
    raw.setdefault("keys", []).append(entry)
    return entry, value


def revoke_key(raw: dict[str, Any], key_id: str) -> dict[str, Any]:
    """Remove a key by id and return it.

    :raises KeyError: no key has that id.
    """
    keys = raw.get("keys") or []
    for i, entry in enumerate(keys):
        if entry.get("id") == key_id:
            return keys.pop(i)
    raise KeyError(f"no key with id {key_id!r}")


def initial_document(munchkin_id: str) -> dict[str, Any]:
    """Return a fresh settings document with a signing secret and every section present.

    Keys an operator has to fill in are present as null placeholders (`flask config set`).
    """
    return {
        "munchkin_id": munchkin_id,
        "public_url": None,
        "client_id": None,
        "client_secret": None,
        "form_id": None,
        "form_base_url": None,
        "secret_key": secrets.token_urlsafe(32),
        "keys": [],
        "events": {},
        "traits": {},
        "lead_fields": {"user_id": None, "anonymous_id": None},
        "limits": {
            "calls_per_20s": 90,
            "concurrency": 8,
            "daily_quota": 45000,
            "quota_reset_tz": "America/Chicago",
            "batch_size": 300,
            "batch_wait_s": 2.0,
            "linger_ms": 400,
            "timeout_s": 30,
        },
        "intake": {
            "max_event_bytes": 32768,
            "max_batch_bytes": 512000,
            "browser_rate_per_ip": "60/minute",
            "dedupe_window_h": 24,
            "proxy_hops": 0,
        },
    }
