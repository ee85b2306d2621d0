"""`flask config validate --online`: check the mappings against the Marketo instance itself.

Lists every mismatch rather than the first. Other areas (lists, campaigns, form) append their own
checks, each `fn(settings, client) -> list[str]`, to `extra_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from app.marketo.client import MarketoClient
from app.marketo.errors import MarketoError
from app.settings import EventMapping
from app.settings import Settings

Check = Callable[[Settings, MarketoClient], list[str]]

# Attribute types that accept each mapped type (Marketo's types on the left of the reference).
COMPATIBLE = {
    "string": {"string", "text", "email", "phone", "url", "link"},
    "text": {"string", "text"},
    "integer": {"integer"},
    "float": {"float", "currency", "integer"},
    "currency": {"currency", "float"},
    "boolean": {"boolean"},
    "date": {"date", "datetime"},
    "datetime": {"datetime", "date"},
    "email": {"email", "string"},
    "phone": {"phone", "string"},
    "link": {"link", "url", "string"},
    "url": {"url", "link", "string"},
}


def _flatten(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)


def check_fields(settings: Settings, client: MarketoClient) -> list[str]:
    """Mapped trait fields exist; id and lookup fields exist and are searchable."""
    schema = client.describe2()
    fields = {str(f.get("name")): f for f in schema.get("fields") or [] if isinstance(f, dict)}
    searchable = set(_flatten(schema.get("searchableFields") or []))
    problems = []
    for path, mapping in settings.traits.items():
        if mapping.field not in fields:
            problems.append(f"traits.{path}: Marketo has no lead field {mapping.field!r}")
        elif fields[mapping.field].get("updateable") is False:
            problems.append(f"traits.{path}: lead field {mapping.field!r} is read-only")
    ids = settings.lead_fields
    for name, field in (("user_id", ids.user_id), ("anonymous_id", ids.anonymous_id)):
        if field and field not in fields:
            problems.append(f"lead_fields.{name}: Marketo has no lead field {field!r}")
        elif field and searchable and field not in searchable:
            problems.append(f"lead_fields.{name}: lead field {field!r} is not searchable")
    lookup = settings.lead_lookup_field
    if lookup not in fields:
        problems.append(f"lead_lookup_field: Marketo has no lead field {lookup!r}")
    return problems


def _check_mapping(
    label: str, mapping: EventMapping, types: dict[int, dict], client: MarketoClient
) -> list[str]:
    found = types.get(int(mapping.activity_type_id))
    if found is None:
        return [f"{label}: no custom activity type {mapping.activity_type_id}"]
    problems = []
    if str(found.get("status", "")).lower() != "approved":
        problems.append(
            f"{label}: activity type {found.get('apiName')} is {found.get('status')}, not approved"
        )
    described = client.describe_activity_type(str(found.get("apiName")))
    attributes = {
        str(a.get("apiName")): str(a.get("dataType", "")).lower()
        for a in described.get("attributes") or found.get("attributes") or []
    }
    for path, attr in mapping.properties.items():
        kind = attributes.get(attr.attribute)
        if kind is None:
            problems.append(
                f"{label}.properties.{path}: type {found.get('apiName')} has no attribute "
                f"{attr.attribute!r}"
            )
        elif kind and kind not in COMPATIBLE.get(attr.type, {attr.type}):
            problems.append(
                f"{label}.properties.{path}: attribute {attr.attribute!r} is {kind}, "
                f"mapped as {attr.type}"
            )
    return problems


def check_activities(settings: Settings, client: MarketoClient) -> list[str]:
    """Mapped activity types exist, are approved, and have the mapped attributes and types."""
    if not settings.events and settings.page_activity is None:
        return []
    types = {int(t["id"]): t for t in client.activity_types() if "id" in t}
    problems = []
    for name, mapping in settings.events.items():
        problems += _check_mapping(f"events.{name}", mapping, types, client)
    if settings.page_activity is not None:
        problems += _check_mapping("page_activity", settings.page_activity, types, client)
    return problems


def _asset(
    client: MarketoClient, path: str, params: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Return one Asset API record, or None when Marketo finds nothing (a warning, no result)."""
    rows = client.request("GET", path, params=params).get("result") or []
    return rows[0] if rows else None


def check_assets(settings: Settings, client: MarketoClient) -> list[str]:
    """The identify form, the audience list folder and mapped campaigns exist and are usable."""
    problems: list[str] = []
    if settings.identify_mode == "form" and settings.form_id is not None:
        form = _asset(client, f"/rest/asset/v1/form/{settings.form_id}.json")
        if form is None:
            problems.append(f"form_id: form {settings.form_id} does not exist in Marketo")
        elif str(form.get("status", "")).lower() != "approved":
            status = form.get("status")
            problems.append(f"form_id: form {settings.form_id} is {status}, not approved")
    if settings.lists is not None:
        folder_id = settings.lists.folder_id
        folder = f"/rest/asset/v1/folder/{folder_id}.json"
        if _asset(client, folder, {"type": settings.lists.folder_type}) is None:
            problems.append(f"lists.folder: folder {folder_id} does not exist in Marketo")
    if settings.campaigns:
        ids = sorted({c.campaign_id for c in settings.campaigns.values()})
        rows = client.request("GET", "/rest/v1/campaigns.json", params={"id": ids}).get("result")
        found = {int(row["id"]): row for row in rows or [] if "id" in row}
        for name, mapping in settings.campaigns.items():
            row = found.get(mapping.campaign_id)
            if row is None:
                problems.append(f"campaigns.{name}: campaign {mapping.campaign_id} not found")
            elif row.get("type") != "trigger" or not row.get("isRequestable", True):
                problems.append(
                    f"campaigns.{name}: campaign {mapping.campaign_id} is not a requestable"
                    " trigger campaign (it needs a 'Campaign is Requested' trigger)"
                )
    return problems


BASE_CHECKS: tuple[Check, ...] = (check_fields, check_activities, check_assets)


def validate_online(
    settings: Settings, client: MarketoClient, extra_checks: Sequence[Check] = ()
) -> list[str]:
    """Return every mismatch between the settings and the Marketo instance."""
    if not settings.has_credentials:
        return ["client_id/client_secret: needed to check settings against Marketo"]
    try:
        client.token()
    except MarketoError as exc:
        return [f"cannot authenticate with Marketo: {exc}"]
    problems: list[str] = []
    for check in (*BASE_CHECKS, *extra_checks):
        try:
            problems += check(settings, client)
        except MarketoError as exc:
            problems.append(f"{getattr(check, '__name__', 'check')}: Marketo call failed: {exc}")
    return problems
