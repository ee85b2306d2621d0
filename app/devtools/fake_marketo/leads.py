"""Lead database endpoints of the fake Marketo: sync, filter, describe, associate, merge, forms."""

from __future__ import annotations

import base64
import re
from datetime import date
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import LeadField
from app.devtools.fake_marketo.state import envelope
from app.devtools.fake_marketo.state import iso
from app.devtools.fake_marketo.state import skip

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo
    from app.devtools.fake_marketo.server import Req

# Marketo accepts at most 300 records, filter values or page rows per call.
MAX_RECORDS = 300
# A filter matching more than 1,000 leads is refused with 1003.
MAX_FILTER_MATCHES = 1000
ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")
DEFAULT_FIELDS = "id,email,updatedAt,createdAt,firstName,lastName"
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
COOKIE_RE = re.compile(r"^id:[0-9A-Za-z]{3}-[0-9A-Za-z]{3}-[0-9A-Za-z]{3}&token:_mch-[^&\s]+$")


def valid_value(spec: LeadField, value: Any) -> bool:
    """Return whether ``value`` fits the field's data type (None always fits)."""
    if value is None:
        return True
    kind = spec.data_type
    if kind == "email":
        return isinstance(value, str) and (value == "" or bool(EMAIL_RE.match(value)))
    if kind == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
    if kind in ("float", "currency"):
        if isinstance(value, bool):
            return False
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return True
    if kind == "boolean":
        return isinstance(value, bool) or str(value).lower() in ("true", "false", "0", "1")
    if kind == "date":
        try:
            date.fromisoformat(str(value))
        except ValueError:
            return False
        return True
    if kind == "datetime":
        return parse_datetime(value) is not None
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def parse_datetime(value: Any) -> datetime | None:
    """Parse an ISO-8601 date-time (``Z`` allowed); None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def cookie_token(cookie: str) -> str:
    """Return the ``_mch-...`` token part of a ``_mkto_trk`` value, for matching."""
    match = re.search(r"token:([^&,]+)", cookie)
    return match.group(1) if match else cookie


def matches(fake: FakeMarketo, field: str, value: Any) -> list[int]:
    """Return ids of leads whose ``field`` equals ``value`` (email case-insensitive)."""
    if value is None or value == "":
        return []
    if field == "id":
        try:
            lead_id = int(value)
        except (TypeError, ValueError):
            return []
        return [lead_id] if lead_id in fake.leads else []
    if field == "cookies":
        token = cookie_token(str(value))
        return [i for i, lead in fake.leads.items() if token in map(cookie_token, lead["cookies"])]
    wanted = str(value).lower() if field == "email" else str(value)
    found = []
    for lead_id, lead in fake.leads.items():
        have = lead.get(field)
        if have is None:
            continue
        have = str(have).lower() if field == "email" else str(have)
        if have == wanted:
            found.append(lead_id)
    return found


def create_lead(fake: FakeMarketo, fields: dict[str, Any]) -> int:
    """Store a new lead and return its id."""
    lead_id = fake.next_id("lead")
    now = iso(fake.clock.now())
    lead: dict[str, Any] = {"id": lead_id, "createdAt": now, "updatedAt": now, "cookies": []}
    lead.update({k: v for k, v in fields.items() if k not in ("id", "cookies")})
    lead["cookies"] = list(fields.get("cookies") or [])
    fake.leads[lead_id] = lead
    return lead_id


def update_lead(fake: FakeMarketo, lead_id: int, fields: dict[str, Any]) -> None:
    """Apply ``fields`` to an existing lead and touch ``updatedAt``."""
    lead = fake.leads[lead_id]
    lead.update({k: v for k, v in fields.items() if k != "id"})
    lead["updatedAt"] = iso(fake.clock.now())


def check_record(fake: FakeMarketo, record: Any, action: str) -> dict[str, Any] | None:
    """Return a skipped row if ``record`` has unknown, read-only or mistyped fields."""
    if not isinstance(record, dict):
        return skip("1003", "Record must be an object")
    for name, value in record.items():
        spec = fake.fields.get(name)
        if spec is None:
            return skip(fake.unknown_field_code, f"Field '{name}' not found")
        if name == "id":
            if action != "updateOnly":
                return skip("1003", f"Field 'id' not allowed for action '{action}'")
        elif spec.read_only:
            return skip("1011", f"Field '{name}' not supported")
        if not valid_value(spec, value):
            return skip("1001", f"Invalid value '{value}' for field '{name}'")
    return None


def upsert(fake: FakeMarketo, record: dict[str, Any], action: str, lookup: str) -> dict[str, Any]:
    """Apply one sync record and return its result row (statuses per marketo-reference §5.1)."""
    bad = check_record(fake, record, action)
    if bad:
        return bad
    if action == "createDuplicate":
        return {"id": create_lead(fake, record), "status": "created"}
    value = record.get(lookup)
    if value is None or value == "":
        return skip("1003", f"Value for lookup field '{lookup}' not specified")
    found = matches(fake, lookup, value)
    if len(found) > 1 and action != "createOnly":
        return skip("1007")
    if action == "createOnly":
        if found:
            return skip("1005")
        return {"id": create_lead(fake, record), "status": "created"}
    if not found:
        if action == "updateOnly":
            return skip("1004")
        return {"id": create_lead(fake, record), "status": "created"}
    update_lead(fake, found[0], record)
    return {"id": found[0], "status": "updated"}


def check_lookup(fake: FakeMarketo, lookup: str, action: str) -> None:
    """Refuse a lookup field that is unknown, not searchable or ``id`` outside updateOnly."""
    spec = fake.fields.get(lookup)
    if spec is None:
        raise ApiError("1006", f"Lookup field '{lookup}' not found")
    if not spec.searchable or lookup == "cookies":
        raise ApiError("1011", f"Field '{lookup}' not supported as lookup field")
    if lookup == "id" and action != "updateOnly":
        raise ApiError("1003", "Lookup field 'id' needs action 'updateOnly'")


def records_of(body: dict[str, Any]) -> list[Any]:
    """Return ``input`` checked for 1 to 300 entries."""
    records = body.get("input")
    if not isinstance(records, list) or not records:
        raise ApiError("1003", "Input must be a non-empty array")
    if len(records) > MAX_RECORDS:
        raise ApiError("1003", f"Input exceeds {MAX_RECORDS} records")
    return records


def sync_leads(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST /rest/v1/leads.json: upsert up to 300 leads, results in input order."""
    body = req.json_object()
    action = body.get("action") or "createOrUpdate"
    if action not in ACTIONS:
        raise ApiError("1003", f"Invalid action '{action}'")
    lookup = body.get("lookupField") or "email"
    check_lookup(fake, lookup, action)
    from app.devtools.fake_marketo.lookup_index import LookupIndex  # imports this module

    lookup_index = LookupIndex(fake, lookup)
    results = []
    for index, record in enumerate(records_of(body)):
        if index in req.forced:
            results.append(skip(req.forced[index]))
        else:
            results.append(lookup_index.upsert(record, action))
    return envelope(results)


def project(fake: FakeMarketo, lead: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Return a lead row with only the requested fields (missing values as null)."""
    row: dict[str, Any] = {"id": lead["id"]}
    for name in fields:
        if name == "cookies":
            row[name] = ",".join(lead["cookies"]) or None
        elif name != "id":
            row[name] = lead.get(name)
    return row


def requested_fields(fake: FakeMarketo, raw: str | None) -> list[str]:
    """Parse the ``fields`` parameter, refusing unknown names with 1006."""
    names = [n.strip() for n in (raw or DEFAULT_FIELDS).split(",") if n.strip()]
    for name in names:
        if name not in fake.fields:
            raise ApiError("1006", f"Field '{name}' not found")
    return names


def page(req: Req, rows: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Slice ``rows`` by ``batchSize`` and ``nextPageToken``; return the page and paging keys."""
    try:
        size = int(req.args.get("batchSize") or MAX_RECORDS)
        token = req.args.get("nextPageToken")
        start = int(base64.urlsafe_b64decode(token.encode()).decode()[5:]) if token else 0
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("1003", "Invalid batchSize or nextPageToken") from exc
    if not 1 <= size <= MAX_RECORDS:
        raise ApiError("1003", f"batchSize must be 1-{MAX_RECORDS}")
    chunk = rows[start : start + size]
    extra: dict[str, Any] = {}
    if start + size < len(rows):
        extra["moreResult"] = True
        extra["nextPageToken"] = base64.urlsafe_b64encode(f"fake:{start + size}".encode()).decode()
    return chunk, extra


def get_leads(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/leads.json: leads by filterType/filterValues with fields and paging."""
    filter_type = req.args.get("filterType")
    raw_values = req.args.get("filterValues")
    if not filter_type or raw_values is None:
        raise ApiError("1003", "filterType and filterValues are required")
    spec = fake.fields.get(filter_type)
    if spec is None or not spec.searchable:
        raise ApiError("1003", f"Invalid filterType '{filter_type}'")
    values = [v for v in raw_values.split(",") if v != ""]
    if len(values) > MAX_RECORDS:
        raise ApiError("1003", f"More than {MAX_RECORDS} filter values")
    fields = requested_fields(fake, req.args.get("fields"))
    found: set[int] = set()
    if filter_type in ("id", "cookies"):
        for value in values:
            found.update(matches(fake, filter_type, value))
    else:
        # One pass over the leads, not one per value: filters carry up to 300 values.
        fold = str.lower if filter_type == "email" else str
        wanted = {fold(v) for v in values}
        for lead_id, lead in fake.leads.items():
            have = lead.get(filter_type)
            if have not in (None, "") and fold(str(have)) in wanted:
                found.add(lead_id)
    if len(found) > MAX_FILTER_MATCHES:
        raise ApiError("1003", "Too many results match the filter")
    rows = [project(fake, fake.leads[i], fields) for i in sorted(found)]
    chunk, extra = page(req, rows)
    return envelope(chunk, **extra)


def get_lead(fake: FakeMarketo, req: Req, lead_id: str) -> dict[str, Any]:
    """GET /rest/v1/lead/{id}.json: one lead or an empty result."""
    fields = requested_fields(fake, req.args.get("fields"))
    lead = fake.leads.get(int(lead_id))
    return envelope([project(fake, lead, fields)] if lead else [])


def describe(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/leads/describe.json: fields with REST and SOAP names."""
    rows = []
    for spec in fake.fields.values():
        row: dict[str, Any] = {
            "id": spec.id,
            "displayName": spec.display,
            "dataType": spec.data_type,
        }
        if spec.length:
            row["length"] = spec.length
        row["rest"] = {"name": spec.rest, "readOnly": spec.read_only}
        row["soap"] = {"name": spec.soap, "readOnly": spec.read_only}
        rows.append(row)
    return envelope(rows)


def describe2(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/leads/describe2.json: the same table with searchable fields."""
    fields = [
        {
            "name": spec.rest,
            "displayName": spec.display,
            "dataType": spec.data_type,
            "length": spec.length,
            "updateable": not spec.read_only,
            "crmManaged": False,
        }
        for spec in fake.fields.values()
    ]
    searchable = [[spec.rest] for spec in fake.fields.values() if spec.searchable]
    return envelope([{"name": "API Lead", "searchableFields": searchable, "fields": fields}])


ROUTES = [
    (r"/rest/v1/leads\.json", {"POST": sync_leads, "GET": get_leads}),
    (r"/rest/v1/lead/(?P<lead_id>\d+)\.json", {"GET": get_lead}),
    (r"/rest/v1/leads/describe\.json", {"GET": describe}),
    (r"/rest/v1/leads/describe2\.json", {"GET": describe2}),
]
