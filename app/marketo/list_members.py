"""Leads named by email or any lookup field, resolved to ids and put in or out of a static list.

Back-office list operations (the server API, `flask lists add|remove`) and audience sync name
leads by a field value, not by id. `resolve` turns values into lead ids with one filter call per
300 values, creating the missing leads with the configured lead action when asked;
`change_members` then applies adds and removes to one list and reports every value's fate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.marketo.errors import MarketoError
from app.marketo.errors import RecordRejected
from app.marketo.errors import record_error
from app.marketo.lead_records import create_leads
from app.marketo.lead_records import find_leads
from app.marketo.lists import ListDirectory
from app.marketo.lists import Requester
from app.marketo.lists import RowResult
from app.marketo.lists import add_leads
from app.marketo.lists import remove_leads

log = logging.getLogger(__name__)

LEADS_PATH = "/rest/v1/leads.json"


@dataclass(frozen=True)
class LeadWrite:
    """How missing leads are created: the lead action, lookup field and partition from settings."""

    action: str = "createOrUpdate"
    partition: str | None = None


def _key(field: str, value: Any) -> str:
    text = str(value).strip()
    return text.lower() if field.lower() == "email" else text


def _not_found(field: str, value: Any) -> RecordRejected:
    return RecordRejected(
        f"Marketo 1004: no lead has {field} {value}",
        reasons=[{"code": "1004", "message": "Lead not found"}],
        marketo_code="1004",
    )


def lookup(client: Requester, field: str, values: Sequence[Any]) -> dict[str, int]:
    """Return the lead id of each value found (most recently updated lead when several match)."""
    keys = list(dict.fromkeys(_key(field, v) for v in values))
    if field == "id":
        return {k: int(k) for k in keys if k.isdigit()}
    found = find_leads(client, field, keys, field)
    return {k: found[k] for k in keys if k in found}


def create(
    client: Requester, field: str, values: Sequence[Any], write: LeadWrite
) -> dict[str, int | MarketoError]:
    """Create leads holding only the lookup value; return each value's id or its rejection.

    A lead Marketo cannot create (required fields missing, 1002; partition errors) is a
    `RecordRejected` with Marketo's reason, never retried.
    """
    keys = list(dict.fromkeys(_key(field, v) for v in values))
    partition = write.partition if write.action != "updateOnly" else None
    results = create_leads(
        client,
        [{field: key} for key in keys],
        lookup_field=field,
        action=write.action,
        partition=partition,
    )
    return dict(zip(keys, results, strict=True))


def resolve(
    client: Requester,
    field: str,
    values: Iterable[Any],
    *,
    create_missing: bool = False,
    write: LeadWrite | None = None,
) -> dict[str, int | MarketoError]:
    """Map each value (keyed as `key_of` would) to its lead id or the error explaining why not."""
    wanted = list(dict.fromkeys(_key(field, v) for v in values if str(v).strip()))
    found: dict[str, int | MarketoError] = dict(lookup(client, field, wanted))
    missing = [v for v in wanted if v not in found]
    if missing and create_missing and field != "id":
        found.update(create(client, field, missing, write or LeadWrite()))
    for value in wanted:
        found.setdefault(value, _not_found(field, value))
    return found


def key_of(field: str, value: Any) -> str:
    """Return the key `resolve` uses for a value (emails compare case-insensitively)."""
    return _key(field, value)


def _row_error(row: RowResult) -> RecordRejected:
    return record_error(list(row.reasons))


def change_members(
    client: Requester,
    directory: ListDirectory,
    name: str,
    *,
    add: Sequence[Any] = (),
    remove: Sequence[Any] = (),
    field: str = "email",
    create_missing: bool = False,
    create_list: bool | None = None,
    write: LeadWrite | None = None,
) -> dict[str, Any]:
    """Add and remove leads (named by `field`) on the list called `name`; report each value.

    Returns `{"list": {"id", "name"}, "added": [...], "removed": [...], "failed": [{"value",
    "action", "code", "message"}]}`. Only leads being added are created when missing.

    :raises ListNotFound: no such list and it may not be created.
    :raises MarketoError: a call failed as a whole.
    """
    list_id = directory.list_id(name, create=create_list)
    ids_add = resolve(client, field, add, create_missing=create_missing, write=write)
    ids_remove = resolve(client, field, remove) if remove else {}
    report: dict[str, Any] = {"list": {"id": list_id, "name": name}, "added": [], "removed": []}
    failed: list[dict[str, str]] = []
    for action, ids, call in (("add", ids_add, add_leads), ("remove", ids_remove, remove_leads)):
        good = {v: i for v, i in ids.items() if isinstance(i, int)}
        for value, err in ids.items():
            if isinstance(err, MarketoError):
                if action == "remove" and err.marketo_code == "1004":
                    report["removed"].append(value)  # no such lead: it is not in the list
                    continue
                failed.append({"value": value, "action": action, **_describe(err)})
        rows: Mapping[int, RowResult] = call(client, list_id, list(good.values())) if good else {}
        for value, lead_id in good.items():
            row = rows[lead_id]
            if row.ok:
                report["added" if action == "add" else "removed"].append(value)
            else:
                failed.append({"value": value, "action": action, **_describe(_row_error(row))})
    report["failed"] = failed
    return report


def _describe(err: MarketoError) -> dict[str, str]:
    return {"code": err.marketo_code or err.code, "message": err.message}
