"""The REST endpoints delivery and validation use, one method each, over `request`.

A mixin of `MarketoClient`, which supplies `request` (token, limiter, error classes); here only
the paths and bodies of each Marketo call, so the client module keeps to one HTTP exchange.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.marketo.sizing import MAX_RECORDS_PER_CALL


@dataclass(frozen=True)
class LeadPage:
    """One page of leads read by filter."""

    rows: list[dict[str, Any]]
    next_page_token: str | None


class Endpoints:
    """One method per Marketo endpoint the gateway calls."""

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Make one call and return its body (MarketoClient implements it)."""
        raise NotImplementedError

    def sync_leads(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        lookup_field: str = "email",
        partition: str | None = None,
    ) -> list[dict[str, Any]]:
        """Create or update up to 300 leads; return one result row per record, in order."""
        body: dict[str, Any] = {
            "action": action,
            "lookupField": lookup_field,
            "input": list(records),
        }
        if partition and action != "updateOnly":
            body["partitionName"] = partition
        return list(self.request("POST", "/rest/v1/leads.json", json=body).get("result") or [])

    def leads_by_filter(
        self,
        filter_type: str,
        values: Sequence[str],
        fields: Sequence[str],
        next_page_token: str | None = None,
    ) -> LeadPage:
        """Read one page of leads whose `filter_type` is one of up to 300 `values`."""
        params: dict[str, Any] = {
            "filterType": filter_type,
            "filterValues": ",".join(values),
            "fields": ",".join(fields),
            "batchSize": MAX_RECORDS_PER_CALL,
        }
        if next_page_token:
            params["nextPageToken"] = next_page_token
        body = self.request("GET", "/rest/v1/leads.json", params=params)
        return LeadPage(list(body.get("result") or []), body.get("nextPageToken") or None)

    def associate(self, lead_id: int, cookie: str) -> None:
        """Tie a Munchkin `_mkto_trk` cookie (and its anonymous history) to a lead."""
        self.request(
            "POST", f"/rest/v1/leads/{int(lead_id)}/associate.json", params={"cookie": cookie}
        )

    def delete_leads(self, lead_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Delete up to 300 leads by id; return one result row per id (`deleted` or skipped)."""
        body = {"input": [{"id": int(i)} for i in lead_ids]}
        answer = self.request("POST", "/rest/v1/leads/delete.json", json=body)
        return list(answer.get("result") or [])

    def add_activities(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Add up to 300 custom activities; return one result row per item, in order."""
        body = self.request(
            "POST", "/rest/v1/activities/external.json", json={"input": list(items)}
        )
        return list(body.get("result") or [])

    def describe2(self) -> dict[str, Any]:
        """Return the lead schema (fields and searchable fields)."""
        result = self.request("GET", "/rest/v1/leads/describe2.json").get("result") or [{}]
        return dict(result[0])

    def activity_types(self) -> list[dict[str, Any]]:
        """Return the custom activity types."""
        return list(
            self.request("GET", "/rest/v1/activities/external/types.json").get("result") or []
        )

    def describe_activity_type(self, api_name: str) -> dict[str, Any]:
        """Return one custom activity type with its primary attribute and attributes."""
        path = f"/rest/v1/activities/external/type/{api_name}/describe.json"
        result = self.request("GET", path).get("result") or [{}]
        return dict(result[0])

    def usage(self) -> list[dict[str, Any]]:
        """Return today's API usage as Marketo counts it."""
        return list(self.request("GET", "/rest/v1/stats/usage.json").get("result") or [])
