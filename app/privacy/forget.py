"""Forget a person: suppress their identifiers, delete their events and cache entries, and
optionally their lead in Marketo. Logged by hash only."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from app.privacy.identity import KINDS
from app.privacy.identity import hashes_of
from app.settings import Settings

log = logging.getLogger(__name__)

# Marketo deletes (and looks up) at most 300 leads per call.
MAX_LEADS_PER_CALL = 300


@dataclass
class ForgetResult:
    """What one forget removed, by count (never the identifiers themselves)."""

    events_removed: int = 0
    cached_leads: list[int] = field(default_factory=list)
    suppressed: int = 0
    marketo_deleted: list[int] = field(default_factory=list)
    marketo_skipped: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the answer `flask privacy forget --json` and the API give."""
        return {
            "events_removed": self.events_removed,
            "cached_leads": self.cached_leads,
            "suppressed": self.suppressed,
            "marketo_deleted": self.marketo_deleted,
            "marketo_skipped": self.marketo_skipped,
        }


def tag(hashes: Iterable[str]) -> str:
    """Return a short, stable reference to hashed identifiers for the logs."""
    return ",".join(sorted(h[:12] for h in hashes))


def _marketo_leads(client: Any, settings: Settings, identifiers: set[tuple[str, str]]) -> set[int]:
    """Look the person up in Marketo by email and by the fields holding our ids."""
    by_field = {"email": "email"}
    if settings.lead_fields.user_id:
        by_field["userId"] = settings.lead_fields.user_id
    if settings.lead_fields.anonymous_id:
        by_field["anonymousId"] = settings.lead_fields.anonymous_id
    found: set[int] = set()
    for kind, field_name in by_field.items():
        values = sorted(v for k, v in identifiers if k == kind)
        for start in range(0, len(values), MAX_LEADS_PER_CALL):
            page = client.leads_by_filter(
                field_name, values[start : start + MAX_LEADS_PER_CALL], ["id"]
            )
            found.update(int(row["id"]) for row in page.rows if "id" in row)
    return found


def forget(
    shared: Any,
    settings: Settings,
    identifiers: set[tuple[str, str]],
    now: float,
    client: Any = None,
) -> ForgetResult:
    """Forget the person these (kind, value) pairs name, everywhere the gateway keeps them.

    Suppression comes first, so an event arriving meanwhile is dropped rather than stored.
    Every other identity the lead cache held for the same leads is forgotten as well. With a
    `client`, the leads (cached, or found by email and id fields) are deleted in Marketo.
    """
    for kind, _ in identifiers:
        if kind not in KINDS:
            raise ValueError(f"unknown identifier kind {kind!r}")
    given = hashes_of(identifiers)
    result = ForgetResult()
    result.suppressed = shared.suppress(given, now)
    leads, related = shared.forget_identities(identifiers)
    personal = {(k, v) for k, v in related if k in KINDS} | identifiers
    related_hashes = hashes_of(personal) - given
    result.suppressed += shared.suppress(related_hashes, now)
    result.events_removed = shared.forget_events(personal | related)
    result.cached_leads = leads
    try:
        if client is not None:
            targets = sorted(set(leads) | _marketo_leads(client, settings, personal))
            for start in range(0, len(targets), MAX_LEADS_PER_CALL):
                rows = client.delete_leads(targets[start : start + MAX_LEADS_PER_CALL])
                for lead_id, row in zip(targets[start:], rows, strict=False):
                    deleted = row.get("status") == "deleted"
                    (result.marketo_deleted if deleted else result.marketo_skipped).append(lead_id)
    finally:
        shared.scrub()
        log.info(
            "privacy forget: identifiers %s (sha256), %d events removed, %d cached lead(s),"
            " %d Marketo lead(s) deleted",
            tag(given | related_hashes),
            result.events_removed,
            len(result.cached_leads),
            len(result.marketo_deleted),
        )
    return result


def unsuppress(shared: Any, identifiers: set[tuple[str, str]]) -> int:
    """Lift the suppression of these identifiers; return how many hashes were listed."""
    hashes = hashes_of(identifiers)
    removed = shared.unsuppress(hashes)
    log.info("privacy unsuppress: identifiers %s (sha256), %d lifted", tag(hashes), removed)
    return removed
