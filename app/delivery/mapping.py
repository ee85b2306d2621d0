"""Segment traits and properties → Marketo lead fields and activity attributes. Pure, no I/O.

The standard trait map is marketo-reference §8; settings add custom traits by dotted path and
event properties by the `events` mapping, each with a declared type that values are coerced to.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC
from datetime import date
from datetime import datetime
from typing import Any

from app.settings import EventMapping
from app.settings import Settings

# Marketo rejects an activity whose attributes pass 65,536 bytes (1049); check before sending.
MAX_ATTRIBUTE_BYTES = 65_536

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off"}
STRING_TYPES = {"string", "text", "phone", "url", "link"}

# Marketo's string-typed activity attributes (and the primary attribute) hold 255 characters.
# Intake accepts longer values, as Segment does: a plain string is cut to fit; a link, email or
# phone number that is cut would be wrong, so that event is dead-lettered `value_too_long`.
MAX_STRING_CHARS = 255
CUT_TYPES = {"string"}


class CoercionError(ValueError):
    """A value cannot become its declared type; `reason` is the dead-letter reason."""

    def __init__(self, message: str, reason: str = "bad_property_type") -> None:
        super().__init__(message)
        self.reason = reason


def get_path(data: Any, dotted: str) -> Any:
    """Return the value at a dotted path (`plan.tier`), or None when any step is missing."""
    current = data
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "T", 1)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError("not a date")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def coerce(value: Any, type_: str) -> Any:
    """Return `value` as Marketo expects `type_`.

    :raises CoercionError: the value cannot be read as that type.
    """
    try:
        return _coerce(value, type_)
    except (ValueError, TypeError, OverflowError) as exc:
        raise CoercionError(f"{value!r} is not a valid {type_}") from exc


def _coerce(value: Any, type_: str) -> Any:
    if isinstance(value, Mapping | list | tuple):
        raise ValueError("structured value")
    if type_ in STRING_TYPES:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if type_ == "email":
        text = str(value).strip()
        if not EMAIL_RE.match(text):
            raise ValueError("not an email")
        return text
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError("not a boolean")
    if isinstance(value, bool):
        raise ValueError("boolean given for a number or date")
    if type_ == "integer":
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and (not number.is_integer()):
            raise ValueError("not an integer")
        return int(number)
    if type_ in ("float", "currency"):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError("not a finite number")
        return number
    if type_ == "date":
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return date.fromisoformat(value.strip()).isoformat()
        return _parse_datetime(value).date().isoformat()
    if type_ == "datetime":
        return _parse_datetime(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(f"unknown type {type_}")


def email_of(message: Mapping[str, Any]) -> str | None:
    """Return the email an event carries: traits, context traits, or an email-shaped userId."""
    for candidate in (
        get_path(message, "traits.email"),
        get_path(message, "context.traits.email"),
        message.get("userId"),
    ):
        if isinstance(candidate, str) and EMAIL_RE.match(candidate.strip()):
            return candidate.strip()
    return None


def _standard(traits: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    name = traits.get("name")
    first, _, rest = name.strip().partition(" ") if isinstance(name, str) else ("", "", "")
    out["firstName"] = traits.get("firstName") or first or None
    out["lastName"] = traits.get("lastName") or rest.strip() or None
    for key in ("phone", "title", "website", "gender", "leadSource"):
        out[key] = traits.get(key)
    company = traits.get("company")
    if isinstance(company, Mapping):
        out["company"] = company.get("name")
        out["industry"] = company.get("industry")
        out["numberOfEmployees"] = company.get("employee_count")
    else:
        out["company"] = company
    address = traits.get("address")
    if isinstance(address, Mapping):
        out["address"] = address.get("street")
        for key in ("city", "state", "country"):
            out[key] = address.get(key)
        out["postalCode"] = address.get("postalCode") or address.get("zip")
    else:
        out["address"] = address
    out["dateOfBirth"] = traits.get("birthday")
    return out


# Declared types of the standard fields; anything not listed is a string.
STANDARD_TYPES = {"dateOfBirth": "date", "numberOfEmployees": "integer"}


def lead_fields(message: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Return the REST lead fields an identify (or any event) sets; null values are left out.

    A standard trait that cannot be coerced is left out; a custom trait with a declared type
    that cannot be coerced raises, because the operator asked for that type.

    :raises CoercionError: a custom trait's value does not fit its declared type.
    """
    traits = message.get("traits") or get_path(message, "context.traits") or {}
    if not isinstance(traits, Mapping):
        traits = {}
    fields: dict[str, Any] = {}
    for key, value in _standard(traits).items():
        if value is None or value == "":
            continue
        try:
            fields[key] = coerce(value, STANDARD_TYPES.get(key, "string"))
        except CoercionError:
            continue
    email = email_of(message)
    if email:
        fields["email"] = email
    for path, mapping in settings.traits.items():
        value = get_path(traits, path)
        if value is None:
            continue
        try:
            fields[mapping.field] = coerce(value, mapping.type)
        except CoercionError as exc:
            raise CoercionError(f"trait {path}: {exc}", "bad_trait_type") from exc
    ids = settings.lead_fields
    if ids.user_id and message.get("userId"):
        fields[ids.user_id] = str(message["userId"])
    if ids.anonymous_id and message.get("anonymousId"):
        fields[ids.anonymous_id] = str(message["anonymousId"])
    return fields


def fields_hash(fields: Mapping[str, Any]) -> str:
    """Return a stable digest of a field set, to skip an identify that changes nothing."""
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def activity(
    message: Mapping[str, Any], mapping: EventMapping, lead_id: int, name: str
) -> dict[str, Any]:
    """Return the custom activity for a track (or page) event of lead `lead_id`.

    :raises CoercionError: a mapped property does not fit its type, or attributes are too big.
    """
    properties = message.get("properties") or {}
    primary = get_path(properties, mapping.primary) if mapping.primary else None
    attributes = []
    for path, attr in mapping.properties.items():
        value = get_path(properties, path)
        if value is None:
            continue
        try:
            fitted = _fit(coerce(value, attr.type), attr.type)
            attributes.append({"apiName": attr.attribute, "value": fitted})
        except CoercionError as exc:
            raise CoercionError(f"property {path}: {exc}", exc.reason) from exc
    size = len(json.dumps(attributes, separators=(",", ":")).encode("utf-8"))
    if size > MAX_ATTRIBUTE_BYTES:
        raise CoercionError(f"attributes take {size} bytes", "attributes_too_large")
    try:
        when = coerce(message.get("timestamp"), "datetime")
    except CoercionError as exc:
        raise CoercionError(f"timestamp: {exc}", "bad_timestamp") from exc
    primary_value = name if primary is None or isinstance(primary, Mapping | list) else primary
    return {
        "leadId": int(lead_id),
        "activityDate": when,
        "activityTypeId": int(mapping.activity_type_id),
        "primaryAttributeValue": _fit(coerce(primary_value, "string"), "string"),
        "attributes": attributes,
    }


def _fit(value: Any, type_: str) -> Any:
    """Return a coerced value that fits Marketo's string length, cut when cutting is harmless.

    :raises CoercionError: a link, email or phone value is too long (`value_too_long`).
    """
    if not isinstance(value, str) or len(value) <= MAX_STRING_CHARS or type_ == "text":
        return value
    if type_ in CUT_TYPES:
        return value[:MAX_STRING_CHARS]
    raise CoercionError(
        f"{type_} value is {len(value)} characters; Marketo holds {MAX_STRING_CHARS}",
        "value_too_long",
    )
