"""Custom activity endpoints of the fake Marketo: type catalogue and activities/external.json."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.leads import parse_datetime
from app.devtools.fake_marketo.leads import records_of
from app.devtools.fake_marketo.leads import valid_value
from app.devtools.fake_marketo.state import STANDARD_ACTIVITY_TYPES
from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import LeadField
from app.devtools.fake_marketo.state import envelope
from app.devtools.fake_marketo.state import iso
from app.devtools.fake_marketo.state import skip

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo
    from app.devtools.fake_marketo.server import Req

# Marketo refuses activity attributes larger than 64 KB in total (1049).
MAX_ATTRIBUTE_BYTES = 65536
REQUIRED = ("leadId", "activityDate", "activityTypeId", "primaryAttributeValue")


def define_type(
    fake: FakeMarketo,
    type_id: int,
    api_name: str,
    name: str | None,
    primary: tuple[str, str],
    attributes: tuple[tuple[str, ...], ...],
    status: str,
) -> None:
    """Store a custom activity type in the shape types.json and describe.json return."""
    label = name or api_name
    now = iso(fake.clock.now())
    fake.activity_types[type_id] = {
        "id": type_id,
        "apiName": api_name,
        "name": label,
        "description": f"{label} (fake)",
        "triggerName": label,
        "filterName": f"{label} was done",
        "status": status,
        "createdAt": now,
        "updatedAt": now,
        "primaryAttribute": {
            "apiName": primary[0],
            "name": primary[0][:1].upper() + primary[0][1:],
            "dataType": primary[1],
        },
        "attributes": [
            {
                "apiName": attr[0],
                "name": attr[2] if len(attr) > 2 else attr[0][:1].upper() + attr[0][1:],
                "dataType": attr[1],
            }
            for attr in attributes
        ],
    }


def external_types(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET activities/external/types.json: every custom type with its status."""
    return envelope(list(fake.activity_types.values()))


def describe_type(fake: FakeMarketo, req: Req, api_name: str) -> dict[str, Any]:
    """GET activities/external/type/{apiName}/describe.json: one type with attributes."""
    for entry in fake.activity_types.values():
        if entry["apiName"] == api_name:
            return envelope([entry])
    raise ApiError("1013", f"Activity type '{api_name}' not found")


def all_types(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET activities/types.json: standard and approved custom types together."""
    custom = [
        {
            "id": entry["id"],
            "name": entry["name"],
            "description": entry["description"],
            "primaryAttribute": {k: entry["primaryAttribute"][k] for k in ("name", "dataType")},
            "attributes": [
                {"name": a["name"], "dataType": a["dataType"]} for a in entry["attributes"]
            ],
        }
        for entry in fake.activity_types.values()
        if entry["status"] == "approved"
    ]
    return envelope(STANDARD_ACTIVITY_TYPES + custom)


def check_activity(fake: FakeMarketo, item: Any) -> tuple[str, str] | None:
    """Return (code, message) when an activity cannot be added, else None."""
    if not isinstance(item, dict):
        return "1003", "Activity must be an object"
    for name in REQUIRED:
        if item.get(name) in (None, ""):
            return "1002", f"Missing value for required parameter '{name}'"
    kind = (
        fake.activity_types.get(item["activityTypeId"])
        if isinstance(item["activityTypeId"], int)
        else None
    )
    if kind is None:
        return "1013", f"Activity type '{item['activityTypeId']}' not found"
    if kind["status"] != "approved":
        return "1013", f"Activity type '{kind['apiName']}' is not approved"
    if parse_datetime(item["activityDate"]) is None:
        return "1001", f"Invalid activityDate '{item['activityDate']}'"
    attributes = item.get("attributes") or []
    if not isinstance(attributes, list):
        return "1003", "attributes must be an array"
    if len(json.dumps(attributes).encode()) > MAX_ATTRIBUTE_BYTES:
        return "1049", "Attributes exceed 65536 bytes"
    for attribute in attributes:
        key = (
            attribute.get("apiName") or attribute.get("name")
            if isinstance(attribute, dict)
            else None
        )
        spec = next((a for a in kind["attributes"] if key in (a["apiName"], a["name"])), None)
        if spec is None:
            return "1006", f"Attribute '{key}' not found for activity type '{kind['apiName']}'"
        field = LeadField(0, spec["apiName"], "", "", spec["dataType"])
        if not valid_value(field, attribute.get("value")):
            return "1001", f"Invalid value '{attribute.get('value')}' for '{key}'"
    if not isinstance(item["leadId"], int) or item["leadId"] not in fake.leads:
        return "1004", "Lead not found"
    return None


def add_activities(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST activities/external.json: add up to 300 custom activities, skips under ``errors``."""
    key = fake.activity_skip_key
    results = []
    for index, item in enumerate(records_of(req.json_object())):
        problem = (req.forced[index], None) if index in req.forced else check_activity(fake, item)
        if problem:
            results.append(skip(problem[0], problem[1], key=key))
            continue
        activity_id = fake.next_id("activity")
        fake.activities.append({**item, "id": activity_id, "marketoGUID": str(activity_id)})
        results.append({"id": activity_id, "marketoGUID": str(activity_id), "status": "added"})
    return envelope(results)


ROUTES = [
    (r"/rest/v1/activities/external/types\.json", {"GET": external_types}),
    (
        r"/rest/v1/activities/external/type/(?P<api_name>[^/]+)/describe\.json",
        {"GET": describe_type},
    ),
    (r"/rest/v1/activities/types\.json", {"GET": all_types}),
    (r"/rest/v1/activities/external\.json", {"POST": add_activities}),
]
