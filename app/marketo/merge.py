"""Lead merges: fold loser leads into a winner, and keep the identity cache pointing at the winner.

With `merge_on_alias`, an alias (previousId → userId) that finds two different leads merges the
previousId lead into the userId lead, so the visitor's anonymous history and list memberships
end up on one record. After a merge Marketo deletes the losers: every cached identity that named
a loser is repointed to the winner, or later deliveries would hit 1004 "lead not found".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from typing import Protocol

from app.marketo.errors import RequestRejected
from app.marketo.lists import Requester
from app.marketo.lists import chunks

log = logging.getLogger(__name__)

# Marketo merges at most 25 losers into a winner per call (1080 above that).
MAX_LOSERS_PER_MERGE = 25

# Marketo's merge can take minutes on large leads (server timeout 180 s); wait a little longer.
MERGE_TIMEOUT_S = 190.0


class LeadCache(Protocol):
    """The part of the shared identity cache a merge needs (SharedState provides it)."""

    def repoint_leads(self, scope: str, losers: Any, winner: int) -> int:
        """Point identities of merged-away leads at the winner; return how many moved."""


def merge_leads(
    client: Requester,
    winner: int,
    losers: Sequence[int],
    *,
    merge_in_crm: bool = False,
    cache: LeadCache | None = None,
    scope: str = "",
) -> int:
    """Merge `losers` into `winner`, 25 per call, repointing cached identities after each call.

    Returns how many cached identities moved.

    :raises RequestRejected: the winner is among the losers, or no loser was given.
    :raises MarketoError: Marketo refused a call (1076–1080 merge rules, limits).
    """
    unique = [int(x) for x in dict.fromkeys(losers)]
    if not unique:
        raise RequestRejected("give at least one loser lead id to merge")
    if int(winner) in unique:
        raise RequestRejected(f"lead {winner} cannot be merged into itself")
    moved = 0
    for part in chunks(unique, MAX_LOSERS_PER_MERGE):
        params: dict[str, Any] = {"mergeInCRM": "true" if merge_in_crm else "false"}
        if len(part) == 1:
            params["leadId"] = part[0]
        else:
            params["leadIds"] = ",".join(str(x) for x in part)
        client.request(
            "POST",
            f"/rest/v1/leads/{int(winner)}/merge.json",
            params=params,
            timeout=MERGE_TIMEOUT_S,
        )
        log.info("merged %d lead(s) into %s", len(part), winner)
        if cache is not None:
            moved += cache.repoint_leads(scope, list(part), int(winner))
    return moved
