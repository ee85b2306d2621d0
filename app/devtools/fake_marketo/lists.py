"""Static lists, Asset API folders and lists, and campaign triggers of the fake Marketo."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.leads import MAX_RECORDS
from app.devtools.fake_marketo.leads import page
from app.devtools.fake_marketo.leads import project
from app.devtools.fake_marketo.leads import requested_fields
from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import asset_time
from app.devtools.fake_marketo.state import envelope
from app.devtools.fake_marketo.state import skip

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo
    from app.devtools.fake_marketo.server import Req

# Request Campaign takes at most 100 leads and 100 tokens per call.
MAX_CAMPAIGN_LEADS = 100
NO_ASSETS = "No assets found for the given search criteria."


def create_folder(
    fake: FakeMarketo, name: str, parent_id: int | None, folder_id: int | None = None
) -> int:
    """Store a folder and return its id."""
    folder_id = folder_id or fake.next_id("folder")
    now = asset_time(fake.clock.now())
    parent = fake.folders.get(parent_id) if parent_id else None
    fake.folders[folder_id] = {
        "id": folder_id,
        "name": name,
        "description": "",
        "type": "Folder",
        "folderType": "Folder",
        "parent": {"id": parent_id, "type": "Folder"} if parent_id else None,
        "path": f"{parent['path'] if parent else ''}/{name}",
        "folderId": {"id": folder_id, "type": "Folder"},
        "isArchive": False,
        "isSystem": False,
        "createdAt": now,
        "updatedAt": now,
    }
    return folder_id


def create_list(fake: FakeMarketo, name: str, folder_id: int) -> int:
    """Store a static list and return its id."""
    list_id = fake.next_id("list")
    now = asset_time(fake.clock.now())
    fake.lists[list_id] = {
        "id": list_id,
        "name": name,
        "description": "",
        "folder": {"id": folder_id, "type": "Folder"},
        "members": set(),
        "createdAt": now,
        "updatedAt": now,
        "computedUrl": f"https://app-xx01.marketo.com/#ST{list_id}A1",
    }
    return list_id


def list_view(static: dict[str, Any]) -> dict[str, Any]:
    """Return a list as the Asset and Lead DB APIs show it (without members)."""
    return {k: v for k, v in static.items() if k != "members"}


def static_list(fake: FakeMarketo, list_id: str) -> dict[str, Any]:
    """Return the list or raise 1013."""
    static = fake.lists.get(int(list_id))
    if static is None:
        raise ApiError("1013", f"Static list '{list_id}' not found")
    return static


def lead_ids(req: Req) -> list[Any]:
    """Read lead ids from repeated ``id`` parameters or a JSON ``input`` array (≤ 300)."""
    if req.args.getlist("id"):
        ids: list[Any] = req.args.getlist("id")
    else:
        body = req.json_object()
        records = body.get("input")
        if not isinstance(records, list):
            raise ApiError("1003", "input must be an array")
        ids = [r.get("id") if isinstance(r, dict) else None for r in records]
    if not ids:
        raise ApiError("1003", "No lead ids given")
    if len(ids) > MAX_RECORDS:
        raise ApiError("1003", f"More than {MAX_RECORDS} lead ids")
    return ids


def as_lead(fake: FakeMarketo, value: Any) -> int | None:
    """Return the lead id for ``value`` when that lead exists."""
    try:
        lead_id = int(value)
    except (TypeError, ValueError):
        return None
    return lead_id if lead_id in fake.leads else None


def change_members(fake: FakeMarketo, req: Req, list_id: str) -> dict[str, Any]:
    """POST/DELETE lists/{id}/leads.json: add or remove members, one row per input."""
    static = static_list(fake, list_id)
    adding = req.method == "POST"
    rows = []
    for index, value in enumerate(lead_ids(req)):
        lead_id = as_lead(fake, value)
        if index in req.forced:
            rows.append({"id": value, **skip(req.forced[index])})
        elif lead_id is None:
            rows.append({"id": value, **skip("1004")})
        elif adding:
            static["members"].add(lead_id)
            rows.append({"id": lead_id, "status": "added"})
        elif lead_id in static["members"]:
            static["members"].discard(lead_id)
            rows.append({"id": lead_id, "status": "removed"})
        else:
            rows.append({"id": lead_id, **skip("1015")})
    return envelope(rows)


def members(fake: FakeMarketo, req: Req, list_id: str) -> dict[str, Any]:
    """GET lists/{id}/leads.json: member leads, paged."""
    static = static_list(fake, list_id)
    fields = requested_fields(fake, req.args.get("fields"))
    rows = [project(fake, fake.leads[i], fields) for i in sorted(static["members"])]
    chunk, extra = page(req, rows)
    return envelope(chunk, **extra)


def is_member(fake: FakeMarketo, req: Req, list_id: str) -> dict[str, Any]:
    """GET lists/{id}/leads/ismember.json?id=: memberof / notmemberof / skipped 1004."""
    static = static_list(fake, list_id)
    rows = []
    for value in lead_ids(req):
        lead_id = as_lead(fake, value)
        if lead_id is None:
            rows.append({"id": value, **skip("1004")})
        else:
            status = "memberof" if lead_id in static["members"] else "notmemberof"
            rows.append({"id": lead_id, "status": status})
    return envelope(rows)


def lists_index(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/lists.json: lists, optionally filtered by repeated ``name``/``id``."""
    names = set(req.args.getlist("name"))
    ids = {int(v) for v in req.args.getlist("id") if v.isdigit()}
    rows = [
        list_view(s)
        for s in fake.lists.values()
        if (not names or s["name"] in names) and (not ids or s["id"] in ids)
    ]
    chunk, extra = page(req, rows)
    return envelope(chunk, **extra)


def folder_ref(raw: str | None, label: str) -> int:
    """Parse an Asset API ``{"id": 31, "type": "Folder"}`` JSON string and return the id."""
    if not raw:
        raise ApiError("701", f"{label} cannot be blank")
    try:
        ref = json.loads(raw)
        return int(ref["id"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ApiError("609", f"Invalid {label} value '{raw}'") from exc


def name_search(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer an Asset search: rows, or success with a string warning and no result."""
    if not rows:
        return envelope(None, errors=[], warnings=[NO_ASSETS])
    return envelope(rows, errors=[], warnings=[])


def folder_by_id(fake: FakeMarketo, req: Req, folder_id: str) -> dict[str, Any]:
    """GET /rest/asset/v1/folder/{id}.json: one folder, or an empty search."""
    folder = fake.folders.get(int(folder_id))
    return name_search([folder] if folder else [])


def form_by_id(fake: FakeMarketo, req: Req, form_id: str) -> dict[str, Any]:
    """GET /rest/asset/v1/form/{id}.json: one form asset, or an empty search."""
    form = fake.forms.get(int(form_id))
    return name_search([form] if form else [])


def folder_by_name(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/asset/v1/folder/byName.json?name=: exact-name folder search."""
    name = req.args.get("name") or ""
    return name_search([f for f in fake.folders.values() if f["name"] == name])


def create_folder_call(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST /rest/asset/v1/folders.json (form): create a folder under ``parent``."""
    form = req.form()
    name = form.get("name")
    if not name:
        raise ApiError("701", "name cannot be blank")
    parent_id = folder_ref(form.get("parent"), "parent")
    if parent_id not in fake.folders:
        raise ApiError("710", f"Parent folder '{parent_id}' not found")
    if any(f["name"] == name for f in fake.folders.values()):
        raise ApiError("709", f"Folder name '{name}' is already in use")
    folder_id = create_folder(fake, name, parent_id)
    return envelope([fake.folders[folder_id]], errors=[], warnings=[])


def list_by_name(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/asset/v1/staticList/byName.json?name=: exact-name list search."""
    name = req.args.get("name") or ""
    return name_search([list_view(s) for s in fake.lists.values() if s["name"] == name])


def list_by_id(fake: FakeMarketo, req: Req, list_id: str) -> dict[str, Any]:
    """GET /rest/asset/v1/staticList/{id}.json."""
    static = fake.lists.get(int(list_id))
    return name_search([list_view(static)] if static else [])


def static_lists(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET lists (optionally in ``folder``) or POST (form) to create one with a unique name."""
    if req.method == "GET":
        raw = req.args.get("folder")
        folder = folder_ref(raw, "folder") if raw else None
        rows = [list_view(s) for s in fake.lists.values() if folder in (None, s["folder"]["id"])]
        return name_search(rows)
    form = req.form()
    name = form.get("name")
    if not name:
        raise ApiError("701", "name cannot be blank")
    folder_id = folder_ref(form.get("folder"), "folder")
    if folder_id not in fake.folders:
        raise ApiError("710", f"Folder '{folder_id}' not found")
    if any(s["name"] == name for s in fake.lists.values()):
        raise ApiError("709", f"Static list name '{name}' is already in use")
    list_id = create_list(fake, name, folder_id)
    fake.lists[list_id]["description"] = form.get("description") or ""
    return envelope([list_view(fake.lists[list_id])], errors=[], warnings=[])


def campaigns(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/campaigns.json: the campaign fixtures (optionally by repeated ``id``)."""
    ids = {int(v) for v in req.args.getlist("id") if v.isdigit()}
    rows = [c for c in fake.campaigns.values() if not ids or c["id"] in ids]
    return envelope(rows)


def trigger(fake: FakeMarketo, req: Req, campaign_id: str) -> dict[str, Any]:
    """POST campaigns/{id}/trigger.json: record a Request Campaign for up to 100 leads."""
    campaign = fake.campaigns.get(int(campaign_id))
    if campaign is None:
        raise ApiError("1013", f"Campaign '{campaign_id}' not found")
    body = req.json_object()
    spec = body.get("input")
    if not isinstance(spec, dict):
        raise ApiError("1003", "input must be an object with leads and tokens")
    leads = spec.get("leads") or []
    tokens = spec.get("tokens") or []
    if not leads or not all(isinstance(x, dict) and "id" in x for x in leads):
        raise ApiError("1003", "input.leads must list objects with an id")
    if len(leads) > MAX_CAMPAIGN_LEADS or len(tokens) > MAX_CAMPAIGN_LEADS:
        raise ApiError("1003", f"More than {MAX_CAMPAIGN_LEADS} leads or tokens")
    if campaign["type"] != "trigger" or not campaign["isRequestable"]:
        raise ApiError("1003", f"Trigger campaign '{campaign_id}' cannot be requested")
    fake.campaign_triggers.append(
        {"campaign_id": campaign["id"], "leads": [x["id"] for x in leads], "tokens": tokens}
    )
    return envelope([{"id": campaign["id"]}])


ROUTES = [
    (
        r"/rest/v1/lists/(?P<list_id>\d+)/leads\.json",
        {"POST": change_members, "DELETE": change_members, "GET": members},
    ),
    (r"/rest/v1/lists/(?P<list_id>\d+)/leads/ismember\.json", {"GET": is_member}),
    (r"/rest/v1/lists\.json", {"GET": lists_index}),
    (r"/rest/asset/v1/folder/byName\.json", {"GET": folder_by_name}),
    (r"/rest/asset/v1/folder/(?P<folder_id>\d+)\.json", {"GET": folder_by_id}),
    (r"/rest/asset/v1/form/(?P<form_id>\d+)\.json", {"GET": form_by_id}),
    (r"/rest/asset/v1/folders\.json", {"POST": create_folder_call}),
    (r"/rest/asset/v1/staticList/byName\.json", {"GET": list_by_name}),
    (r"/rest/asset/v1/staticList/(?P<list_id>\d+)\.json", {"GET": list_by_id}),
    (r"/rest/asset/v1/staticLists\.json", {"GET": static_lists, "POST": static_lists}),
    (r"/rest/v1/campaigns\.json", {"GET": campaigns}),
    (r"/rest/v1/campaigns/(?P<campaign_id>\d+)/trigger\.json", {"POST": trigger}),
]
