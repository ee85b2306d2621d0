"""Lead resolution in batches: cache, then batched lookups, then batched creation (SPEC §6.3).

Identities are tried in `lead_lookup` order against the durable cache (scoped by Munchkin ID).
Misses are looked up with at most one call per filter type per 300 values, and leads still
missing are created with one `createOrUpdate` per 300. Cookie lookups come last and cost a call
each, because Marketo's rows do not say which cookie matched.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.coordination.state import Identity
from app.coordination.state import SharedState
from app.delivery.mapping import email_of
from app.delivery.mapping import get_path
from app.marketo.client import MarketoClient
from app.marketo.errors import Busy
from app.marketo.errors import MarketoError
from app.marketo.errors import Permanent
from app.marketo.lead_records import create_leads
from app.marketo.lead_records import find_leads
from app.settings import Settings

logger = logging.getLogger(__name__)

LOCK_NAME = "lead-resolution"
# Names in `lead_lookup` → identity kinds.
LOOKUP_KINDS = {
    "marketo_cookie": "cookie",
    "email": "email",
    "userId": "userId",
    "anonymousId": "anonymousId",
}


@dataclass(frozen=True)
class Who:
    """The identities one event offers."""

    cookie: str | None = None
    email: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None

    def all(self) -> list[Identity]:
        """Return every identity present, whatever the lookup order."""
        pairs = [
            ("cookie", self.cookie),
            ("email", self.email),
            ("userId", self.user_id),
            ("anonymousId", self.anonymous_id),
        ]
        return [(kind, value) for kind, value in pairs if value]


def who_of(message: Mapping[str, Any]) -> Who:
    """Return the identities a Segment message carries."""
    cookie = get_path(message, "context.Marketo.marketoCookie") or get_path(
        message, "context.marketoCookie"
    )
    user_id = message.get("userId")
    anonymous_id = message.get("anonymousId")
    return Who(
        cookie=str(cookie) if cookie else None,
        email=email_of(message),
        user_id=str(user_id) if user_id else None,
        anonymous_id=str(anonymous_id) if anonymous_id else None,
    )


@dataclass(frozen=True)
class Resolution:
    """A lead id, or why there is none (`error` for Marketo's reason, `reason` for ours)."""

    lead_id: int | None = None
    error: MarketoError | None = None
    reason: str | None = None
    #: The id came from the identity cache, so Marketo may have merged or deleted it since.
    cached: bool = False


class LeadResolver:
    """Resolves identities to Marketo lead ids for one instance."""

    def __init__(
        self,
        client: MarketoClient,
        shared: SharedState,
        settings: Settings,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.shared = shared
        self.settings = settings
        self.clock = clock
        self.scope = settings.munchkin_id
        self.owner = uuid.uuid4().hex
        kinds = [LOOKUP_KINDS[name] for name in settings.lead_lookup if name in LOOKUP_KINDS]
        self.order = kinds
        ids = settings.lead_fields
        self.filter_fields = {
            "email": "email",
            "userId": ids.user_id,
            "anonymousId": ids.anonymous_id,
        }

    def ordered(self, who: Who) -> list[Identity]:
        """Return the identities of `who` that the lookup order uses, in that order."""
        present = dict(who.all())
        return [(kind, present[kind]) for kind in self.order if present.get(kind)]

    def cached(self, whos: Sequence[Who]) -> list[int | None]:
        """Return each event's lead id from the cache alone (first identity in order wins)."""
        found = self.shared.get_leads(self.scope, [i for w in whos for i in self.ordered(w)])
        return [next((found[i] for i in self.ordered(w) if i in found), None) for w in whos]

    def remember(self, who: Who, lead_id: int) -> None:
        """Cache every identity of `who` as this lead, keeping identities already cached."""
        identities = who.all()
        known = self.shared.get_leads(self.scope, identities)
        fresh = {i: lead_id for i in identities if i not in known}
        self.shared.put_leads(self.scope, fresh, self.clock())

    def link(self, identities: Sequence[Identity], lead_id: int) -> None:
        """Point identities at a lead, replacing what was cached (identify and alias)."""
        self.shared.put_leads(self.scope, dict.fromkeys(identities, lead_id), self.clock())

    def forget(self, lead_id: int) -> None:
        """Evict a lead Marketo no longer knows (1004) from the cache."""
        self.shared.evict_lead(self.scope, lead_id)

    def resolve(self, whos: Sequence[Who], *, create: bool | None = None) -> list[Resolution]:
        """Resolve every event's lead: cache, batched lookups, then batched creation.

        :raises Retryable: a call failed in a way worth retrying; nothing was cached wrongly.
        """
        create = self.settings.create_leads if create is None else create
        results: list[Resolution | None] = [
            Resolution(lead, cached=True) if lead is not None else None
            for lead in self.cached(whos)
        ]
        missing = [i for i, r in enumerate(results) if r is None]
        if not missing:
            return [r for r in results if r is not None]
        # Single-flight across processes, so two workers never create one lead twice; the lock
        # dies with its holder (flock / advisory lock), so a killed worker blocks no one.
        with self.shared.exclusive(LOCK_NAME) as held:
            if not held:
                raise Busy("another worker is resolving leads")
            again = self.cached([whos[i] for i in missing])
            for index, lead in zip(missing, again, strict=True):
                if lead is not None:
                    results[index] = Resolution(lead, cached=True)
            self._lookup(whos, results)
            if create:
                self._create(whos, results)
        out: list[Resolution] = []
        for who, result in zip(whos, results, strict=True):
            if result is None:
                reason = "lead_not_found" if self.ordered(who) else "no_lead_identity"
                result = Resolution(reason=reason)
            elif result.lead_id is not None:
                self.remember(who, result.lead_id)
            out.append(result)
        return out

    def _lookup(self, whos: Sequence[Who], results: list[Resolution | None]) -> None:
        for kind in self.order:
            field = self.filter_fields.get(kind)
            if kind == "cookie":
                continue
            if not field:
                continue
            wanted = {
                value: None
                for who, result in zip(whos, results, strict=True)
                if result is None
                for k, value in self.ordered(who)
                if k == kind
            }
            found = self._find(field, field, list(wanted))
            self._fill(whos, results, kind, found)
        if "cookie" in self.order:
            cookies = {
                w.cookie for w, r in zip(whos, results, strict=True) if r is None and w.cookie
            }
            for cookie in cookies:
                rows = self._find("cookies", None, [cookie])
                self._fill(whos, results, "cookie", rows)

    def _find(self, filter_type: str, field: str | None, values: list[str]) -> dict[str, int]:
        return find_leads(self.client, filter_type, values, field)

    def _fill(
        self, whos: Sequence[Who], results: list[Resolution | None], kind: str, found: dict
    ) -> None:
        for index, who in enumerate(whos):
            if results[index] is not None:
                continue
            value = dict(self.ordered(who)).get(kind)
            if value is None:
                continue
            lead = found.get(value, found.get(value.lower()) if kind == "email" else None)
            if lead is not None:
                results[index] = Resolution(lead)

    def _create_key(self, who: Who) -> tuple[str, str] | None:
        ids = self.settings.lead_fields
        if who.email:
            return "email", who.email
        if ids.user_id and who.user_id:
            return ids.user_id, who.user_id
        if ids.anonymous_id and who.anonymous_id:
            return ids.anonymous_id, who.anonymous_id
        return None

    def _create(self, whos: Sequence[Who], results: list[Resolution | None]) -> None:
        ids = self.settings.lead_fields
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        for who, result in zip(whos, results, strict=True):
            key = self._create_key(who) if result is None else None
            if key is None:
                continue
            record = groups.setdefault(key[0], {}).setdefault(key[1], {key[0]: key[1]})
            if who.email:
                record["email"] = who.email
            if ids.user_id and who.user_id:
                record.setdefault(ids.user_id, who.user_id)
            if ids.anonymous_id and who.anonymous_id:
                record.setdefault(ids.anonymous_id, who.anonymous_id)
        for field, records in groups.items():
            keys = list(records)
            created = create_leads(
                self.client,
                [records[k] for k in keys],
                lookup_field=field,
                partition=self.settings.lead_partition,
            )
            outcome = {
                key: Resolution(result) if isinstance(result, int) else Resolution(error=result)
                for key, result in zip(keys, created, strict=True)
            }
            for index, who in enumerate(whos):
                key = self._create_key(who) if results[index] is None else None
                if key is not None and key[0] == field and key[1] in outcome:
                    results[index] = outcome[key[1]]

    def associate(self, pairs: Sequence[tuple[str, int]]) -> int:
        """Associate each (cookie, lead) not yet associated, once; return how many were sent.

        A refused cookie (1012) is remembered as done: it must never block an event.
        """
        wanted = list(dict.fromkeys(pairs))
        done = self.shared.associated(self.scope, wanted)
        sent = 0
        for cookie, lead in wanted:
            if (cookie, lead) in done:
                continue
            try:
                self.client.associate(lead, cookie)
                sent += 1
            except Permanent as exc:
                logger.warning("cookie not associated with lead %s: %s", lead, exc)
            self.shared.mark_associated(self.scope, [(cookie, lead)])
        return sent
