"""Additions to the fake Marketo from the lists/bulk work: an indexed upsert for bulk jobs.

A bulk job applies tens of thousands of rows; looking each one up by scanning every lead makes a
50,000-row import quadratic. `LookupIndex` builds the lookup field's index once per job and keeps
it current as the job creates leads, with the same outcomes as `leads.upsert`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.leads import check_record
from app.devtools.fake_marketo.leads import create_lead
from app.devtools.fake_marketo.leads import update_lead
from app.devtools.fake_marketo.leads import upsert
from app.devtools.fake_marketo.state import skip

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo


class LookupIndex:
    """Lookup value → lead ids for one field, for the duration of one bulk job."""

    def __init__(self, fake: FakeMarketo, field: str) -> None:
        self.fake = fake
        self.field = field
        self.ids: dict[str, list[int]] = {}
        for lead_id, lead in fake.leads.items():
            value = lead.get(field)
            if value not in (None, ""):
                self.ids.setdefault(self._key(value), []).append(lead_id)

    def _key(self, value: Any) -> str:
        return str(value).lower() if self.field == "email" else str(value)

    def upsert(self, record: dict[str, Any], action: str) -> dict[str, Any]:
        """Apply one row like `leads.upsert` (createOrUpdate or updateOnly)."""
        if self.field == "id" or action not in ("createOrUpdate", "updateOnly"):
            return upsert(self.fake, record, action, self.field)
        bad = check_record(self.fake, record, action)
        if bad:
            return bad
        value = record.get(self.field)
        if value is None or value == "":
            return skip("1003", f"Value for lookup field '{self.field}' not specified")
        found = self.ids.get(self._key(value), [])
        if len(found) > 1:
            return skip("1007")
        if found:
            update_lead(self.fake, found[0], record)
            return {"id": found[0], "status": "updated"}
        if action == "updateOnly":
            return skip("1004")
        lead_id = create_lead(self.fake, record)
        self.ids[self._key(value)] = [lead_id]
        return {"id": lead_id, "status": "created"}
