"""Find and create leads by a field value: the one lookup/create path every caller uses.

Delivery's lead resolver and the back-office list operations both name leads by a value
(email, a custom id field, a Munchkin cookie) and need lead ids. Lookups go at most 300 values a
call, paged; when several leads share a value the most recently updated wins (Marketo's own
dedupe rule for forms). Creation goes 300 records a call and reports each record's fate.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

from app.marketo.errors import MarketoError
from app.marketo.errors import Permanent
from app.marketo.errors import record_error
from app.marketo.errors import record_reasons
from app.marketo.sizing import MAX_RECORDS_PER_CALL


class LeadApi(Protocol):
    """The two lead endpoints this module needs (MarketoClient has them)."""

    def leads_by_filter(
        self,
        filter_type: str,
        values: Sequence[str],
        fields: Sequence[str],
        next_page_token: str | None = None,
    ) -> Any: ...

    def sync_leads(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        lookup_field: str = "email",
        partition: str | None = None,
    ) -> list[dict[str, Any]]: ...


def find_leads(
    client: LeadApi, filter_type: str, values: Sequence[str], field: str | None
) -> dict[str, int]:
    """Return the lead id for each value found, keyed by the value as Marketo returns it.

    `field` names the lead field that holds the value in the answer; with None (a filter such as
    `cookies` whose value is not a field) each call carries one value and keys its answer by it.
    Email keys are also present lower-cased, since Marketo compares emails without case.
    """
    found: dict[str, tuple[str, int]] = {}
    fields = ["id", "updatedAt"] + ([field] if field else [])
    step = MAX_RECORDS_PER_CALL if field else 1
    for start in range(0, len(values), step):
        chunk = list(values[start : start + step])
        token: str | None = None
        while True:
            page = client.leads_by_filter(filter_type, chunk, fields, token)
            for row in page.rows:
                key = str(row.get(field)) if field else chunk[0]
                stamp = str(row.get("updatedAt") or "")
                if "id" in row and (key not in found or stamp > found[key][0]):
                    found[key] = (stamp, int(row["id"]))
            token = page.next_page_token
            if not token or not page.rows:
                break
    folded = {k.lower(): v for k, v in found.items()} if filter_type == "email" else {}
    return {k: v[1] for k, v in {**found, **folded}.items()}


def create_leads(
    client: LeadApi,
    records: Sequence[Mapping[str, Any]],
    *,
    lookup_field: str,
    action: str = "createOrUpdate",
    partition: str | None = None,
) -> list[int | MarketoError]:
    """Create or update `records`; return each one's lead id or Marketo's reason, in order.

    A call refused as a whole for a permanent reason marks each of its records with that error;
    retryable failures propagate so the dispatcher can retry the whole step.
    """
    out: list[int | MarketoError] = []
    for start in range(0, len(records), MAX_RECORDS_PER_CALL):
        chunk = records[start : start + MAX_RECORDS_PER_CALL]
        try:
            rows = client.sync_leads(
                chunk, action=action, lookup_field=lookup_field, partition=partition
            )
        except Permanent as exc:
            out.extend(exc for _ in chunk)
            continue
        for position in range(len(chunk)):
            row = rows[position] if position < len(rows) else {}
            if row.get("id") is not None and row.get("status") in ("created", "updated"):
                out.append(int(row["id"]))
            else:
                out.append(record_error(record_reasons(row)))
    return out
