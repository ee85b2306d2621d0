"""`flask config validate --online`: check the mappings against the Marketo instance itself.

Lists every mismatch rather than the first. Other areas (lists, campaigns, form) append their own
checks, each `fn(settings, client) -> list[str]`, to `extra_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.marketo.client import MarketoClient
from app.marketo.errors import MarketoError
from app.marketo.names import MarketoNames
from app.marketo.names import listed
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


def field_problems(
    settings: Settings, names: MarketoNames, traits: Iterable[str] | None = None, fresh: bool = True
) -> list[str]:
    """Mapped trait fields (all, or the `traits` named) exist and are writable; ids searchable."""
    schema = names.lead_fields(fresh=fresh)
    fields = {str(f.get("name")): f for f in schema.get("fields") or [] if isinstance(f, dict)}
    searchable = set(_flatten(schema.get("searchableFields") or []))
    problems = []
    chosen = settings.traits if traits is None else {t: settings.traits[t] for t in traits}
    for path, mapping in chosen.items():
        if mapping.field not in fields:
            problems.append(
                f"traits.{path}: Marketo has no lead field {mapping.field!r}"
                + listed(mapping.field, list(fields), "its lead fields")
            )
        elif fields[mapping.field].get("updateable") is False:
            problems.append(f"traits.{path}: lead field {mapping.field!r} is read-only")
    if traits is not None:
        return problems
    ids = settings.lead_fields
    for name, field in (("user_id", ids.user_id), ("anonymous_id", ids.anonymous_id)):
        if field and field not in fields:
            problems.append(
                f"lead_fields.{name}: Marketo has no lead field {field!r}"
                + listed(field, sorted(searchable or fields), "its searchable fields")
            )
        elif field and searchable and field not in searchable:
            problems.append(
                f"lead_fields.{name}: lead field {field!r} is not searchable"
                + listed(field, sorted(searchable), "its searchable fields")
            )
    lookup = settings.lead_lookup_field
    if lookup not in fields:
        problems.append(
            f"lead_lookup_field: Marketo has no lead field {lookup!r}"
            + listed(lookup, list(fields), "its lead fields")
        )
    return problems


def check_fields(settings: Settings, client: MarketoClient) -> list[str]:
    """Mapped trait fields exist; id and lookup fields exist and are searchable."""
    return field_problems(settings, MarketoNames(client))


def _check_mapping(
    label: str, mapping: EventMapping, types: dict[int, dict], names: MarketoNames, fresh: bool
) -> list[str]:
    found = types.get(int(mapping.activity_type_id))
    if found is None:
        known = [f"{t} {v.get('apiName')}" for t, v in sorted(types.items())]
        return [
            f"{label}: no custom activity type {mapping.activity_type_id}"
            + listed(str(mapping.activity_type_id), known, "its activity types")
        ]
    problems = []
    if str(found.get("status", "")).lower() != "approved":
        problems.append(
            f"{label}: activity type {found.get('apiName')} is {found.get('status')}, not approved"
        )
    described = names.activity_type(str(found.get("apiName")), fresh=fresh)
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
                + listed(
                    attr.attribute, [f"{a} ({k})" for a, k in attributes.items()], "its attributes"
                )
            )
        elif kind and kind not in COMPATIBLE.get(attr.type, {attr.type}):
            problems.append(
                f"{label}.properties.{path}: attribute {attr.attribute!r} is {kind}, "
                f"mapped as {attr.type}"
            )
    return problems


def activity_problems(
    settings: Settings,
    names: MarketoNames,
    events: Iterable[str] | None = None,
    page: bool = True,
    fresh: bool = True,
) -> list[str]:
    """Mapped activity types (all, or the `events` named) exist, are approved, fit their types."""
    chosen = settings.events if events is None else {e: settings.events[e] for e in events}
    page_mapping = settings.page_activity if page else None
    if not chosen and page_mapping is None:
        return []
    types = {int(t["id"]): t for t in names.activity_types(fresh=fresh) if "id" in t}
    problems = []
    for name, mapping in chosen.items():
        problems += _check_mapping(f"events.{name}", mapping, types, names, fresh)
    if page_mapping is not None:
        problems += _check_mapping("page_activity", page_mapping, types, names, fresh)
    return problems


def check_activities(settings: Settings, client: MarketoClient) -> list[str]:
    """Mapped activity types exist, are approved, and have the mapped attributes and types."""
    return activity_problems(settings, MarketoNames(client))


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


def _written(settings: Settings, names: MarketoNames, changed: Changed, fresh: bool) -> list[str]:
    problems: list[str] = []
    if changed.traits:
        problems += field_problems(settings, names, changed.traits, fresh)
    if changed.lead_fields:
        ids = field_problems(settings, names, None, fresh)
        problems += [p for p in ids if p.startswith("lead_fields.")]
    if changed.events or changed.page:
        problems += activity_problems(settings, names, changed.events, changed.page, fresh)
    return problems


@dataclass(frozen=True)
class Changed:
    """The mapping entries one `flask config` command wrote (the ones to check)."""

    events: tuple[str, ...] = ()
    traits: tuple[str, ...] = ()
    page: bool = False
    lead_fields: bool = False

    def __bool__(self) -> bool:
        return bool(self.events or self.traits or self.page or self.lead_fields)


def _differs(before: Any, after: Any, name: str) -> tuple[str, ...]:
    old = before.get(name) if isinstance(before, dict) else None
    new = after.get(name) if isinstance(after, dict) else None
    old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
    return tuple(k for k, v in new.items() if old.get(k) != v)


def changed_mappings(before: dict[str, Any], after: dict[str, Any]) -> Changed:
    """Return which events, traits, page activity and id fields differ between two documents."""
    return Changed(
        events=_differs(before, after, "events"),
        traits=_differs(before, after, "traits"),
        page=after.get("page_activity") is not None
        and before.get("page_activity") != after.get("page_activity"),
        lead_fields=before.get("lead_fields") != after.get("lead_fields"),
    )


def written_problems(settings: Settings, names: MarketoNames, changed: Changed) -> list[str]:
    """Check the mappings just written; a name missing from cached answers is asked again."""
    problems = _written(settings, names, changed, fresh=False)
    return _written(settings, names, changed, fresh=True) if problems else problems


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
