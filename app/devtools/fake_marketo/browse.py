"""`GET /` of the fake Marketo: a read-only JSON view of what it holds and the calls it received."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.state import iso

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo

# The listing shows the newest rows only, so a long benchmark run stays quick to read.
RECENT = 50


def browse(fake: FakeMarketo) -> dict[str, Any]:
    """Return the listing a developer reads to see what the gateway sent (no secret in it)."""
    with fake.lock:
        leads = [_lead(lead) for lead in list(fake.leads.values())[-RECENT:]]
        activities = fake.activities[-RECENT:]
        data = {
            "leads": {"total": len(fake.leads), "newest": leads},
            "activities": {"total": len(fake.activities), "newest": list(activities)},
            "activity_types": [
                {"id": t["id"], "apiName": t["apiName"], "name": t["name"], "status": t["status"]}
                for t in fake.activity_types.values()
            ],
            "lists": [
                {
                    "id": s["id"],
                    "name": s["name"],
                    "folder": s.get("folder"),
                    "members": len(s["members"]),
                }
                for s in fake.lists.values()
            ],
            "folders": [{"id": f["id"], "name": f["name"]} for f in fake.folders.values()],
            "campaigns": [{"id": c["id"], "name": c["name"]} for c in fake.campaigns.values()],
            "campaign_triggers": len(fake.campaign_triggers),
        }
    with fake._meta:
        calls = list(fake.calls)
        data["calls"] = {
            "total": len(calls),
            "in_flight": fake.in_flight,
            "max_in_flight": fake.max_concurrency_seen,
            "newest": [
                {
                    "time": iso(c.time),
                    "method": c.method,
                    "path": c.path,
                    "status": c.status,
                    "code": c.code,
                }
                for c in calls[-RECENT:]
            ],
        }
    data["instance"] = {
        "url": fake.url,
        "munchkin_id": fake.munchkin_id,
        "latency_s": fake.latency_s,
        "calls_per_20s": fake.calls_per_20s,
        "concurrency": fake.concurrency,
        "daily_quota": fake.daily_quota,
    }
    return data


def _lead(lead: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in lead.items() if v not in (None, "", [])}
