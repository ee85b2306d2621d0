"""Static lists: find or create a list by name (Asset API), add, remove and read its members.

Lists are named by people (audience keys, back-office names) but addressed by id; the
`ListDirectory` turns a name into an id once per process and remembers it, creating the list in
the configured folder when `create_missing` is set. Membership calls take up to 300 lead ids and
answer one row per id, in input order, which `RowResult` carries back to the caller.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from app.errors import NotFound
from app.marketo.errors import RECORD_OK
from app.marketo.errors import MarketoError
from app.marketo.errors import record_class
from app.marketo.errors import record_reasons
from app.marketo.sizing import MAX_RECORDS_PER_CALL
from app.settings import ListsSettings

log = logging.getLogger(__name__)

# Marketo pages list members 300 at a time at most.
MEMBERS_PAGE_SIZE = MAX_RECORDS_PER_CALL

LIST_BY_NAME = "/rest/asset/v1/staticList/byName.json"
LIST_CREATE = "/rest/asset/v1/staticLists.json"

# Row statuses that mean the membership call did what was asked.
DONE_STATUSES = frozenset({"added", "removed", "memberof", "notmemberof"})


class Requester(Protocol):
    """What list operations need from the Marketo client: one checked call through the limiter."""

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        timeout: float | None = None,
        raw: bool = False,
    ) -> dict[str, Any]:
        """Send one call and return Marketo's envelope, raising on a failed request."""


class ListNotFound(NotFound):
    """No static list has this name, and creating it is not allowed."""

    code = "list_not_found"

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(f"no static list named {name!r}{why}")
        self.name = name

    @property
    def reason(self) -> str:
        """Return the dead-letter reason for events that needed this list."""
        return "list_not_found"


@dataclass(frozen=True)
class StaticList:
    """A static list as the Asset API describes it."""

    id: int
    name: str
    folder: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RowResult:
    """Marketo's answer for one lead id of a membership call."""

    lead_id: int
    status: str
    reasons: tuple[Mapping[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """Tell whether the lead ended as asked (1015 "not in list" on remove counts as done)."""
        if self.status in DONE_STATUSES:
            return True
        return bool(self.reasons) and record_class(list(self.reasons)) == RECORD_OK

    @property
    def code(self) -> str:
        """Return the first reason's code, or an empty string."""
        return str(self.reasons[0].get("code", "")) if self.reasons else ""


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Yield consecutive slices of at most `size` values."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def list_leads_path(list_id: int) -> str:
    """Return the membership path of a list."""
    return f"/rest/v1/lists/{int(list_id)}/leads.json"


def find_list(client: Requester, name: str) -> StaticList | None:
    """Return the static list with exactly this name, or None (an empty search is a warning)."""
    body = client.request("GET", LIST_BY_NAME, params={"name": name})
    for row in body.get("result") or []:
        if row.get("name") == name:
            return StaticList(int(row["id"]), row["name"], row.get("folder"))
    return None


def create_list(client: Requester, name: str, lists: ListsSettings) -> StaticList:
    """Create a static list in the configured folder; on a refusal, re-read it by name.

    Marketo's duplicate-name error is not documented, so any refusal is followed by a lookup:
    another process may have created the list a moment ago.
    """
    folder = json.dumps({"id": lists.folder_id, "type": lists.folder_type})
    try:
        body = client.request("POST", LIST_CREATE, data={"folder": folder, "name": name})
    except MarketoError as exc:
        found = find_list(client, name)
        if found is None:
            raise
        log.info("list %r already existed (%s)", name, exc.marketo_code)
        return found
    row = (body.get("result") or [{}])[0]
    log.info("created static list %r (id %s)", name, row.get("id"))
    return StaticList(int(row["id"]), row.get("name", name), row.get("folder"))


class ListDirectory:
    """Name → list id, looked up once per process and created when missing if allowed."""

    def __init__(self, client: Requester, lists: ListsSettings | None) -> None:
        self._client = client
        self._lists = lists
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def cached(self, name: str) -> int | None:
        """Return a list id already known, without a call."""
        return self._ids.get(name)

    def list_id(self, name: str, *, create: bool | None = None) -> int:
        """Return the id of the list named `name`, creating it when allowed.

        :raises ListNotFound: it does not exist and may not be created.
        """
        with self._lock:
            if name in self._ids:
                return self._ids[name]
            found = find_list(self._client, name)
            if found is None:
                allowed = (
                    create
                    if create is not None
                    else bool(self._lists and self._lists.create_missing)
                )
                if not allowed or self._lists is None:
                    why = "" if self._lists else " (no lists folder is configured)"
                    raise ListNotFound(name, why)
                found = create_list(self._client, name, self._lists)
            self._ids[name] = found.id
            return found.id

    def forget(self, name: str) -> None:
        """Drop a cached id (the list was deleted in Marketo: 1013)."""
        with self._lock:
            self._ids.pop(name, None)


def _change(client: Requester, method: str, list_id: int, lead_ids: Sequence[int]) -> dict:
    out: dict[int, RowResult] = {}
    unique = list(dict.fromkeys(int(i) for i in lead_ids))
    for part in chunks(unique, MAX_RECORDS_PER_CALL):
        body = client.request(
            method, list_leads_path(list_id), json={"input": [{"id": i} for i in part]}
        )
        rows = body.get("result") or []
        for position, lead_id in enumerate(part):
            row = rows[position] if position < len(rows) else {}
            status = str(row.get("status", ""))
            reasons = () if status in DONE_STATUSES else tuple(record_reasons(row))
            out[lead_id] = RowResult(lead_id, status, reasons)
    return out


def add_leads(client: Requester, list_id: int, lead_ids: Sequence[int]) -> dict[int, RowResult]:
    """Add leads to a list, 300 per call; return each lead's row."""
    return _change(client, "POST", list_id, lead_ids)


def remove_leads(client: Requester, list_id: int, lead_ids: Sequence[int]) -> dict[int, RowResult]:
    """Remove leads from a list, 300 per call; return each lead's row (1015 counts as done)."""
    return _change(client, "DELETE", list_id, lead_ids)


def members(
    client: Requester, list_id: int, fields: Sequence[str] = ("id", "email")
) -> Iterator[dict[str, Any]]:
    """Yield every member of a list, following Marketo's paging tokens."""
    params: dict[str, Any] = {"fields": ",".join(fields), "batchSize": MEMBERS_PAGE_SIZE}
    while True:
        body = client.request("GET", list_leads_path(list_id), params=params)
        yield from body.get("result") or []
        token = body.get("nextPageToken")
        if not token or not body.get("result"):
            return
        params = {**params, "nextPageToken": token}
