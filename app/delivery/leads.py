"""Lead resolution in batches: cache, then batched lookups, then batched creation (SPEC §6.3).

Identities are tried in `lead_lookup` order against the durable cache (scoped by Munchkin ID).
Each identity kind is tried in turn, cache first, then Marketo with at most one call per filter
type per 300 values; leads still missing are created with one `createOrUpdate` per 300. A cookie
lookup costs a call per cookie: Marketo's rows do not say which cookie matched, and several
cookies per call are unconfirmed (marketo-reference §5), so the cookie → lead cache carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from app.coordination.state import Identity
from app.coordination.state import SharedState
from app.delivery.mapping import email_of
from app.delivery.mapping import get_path
from app.marketo.client import MarketoClient
from app.marketo.errors import Busy
from app.marketo.errors import LimiterBusy
from app.marketo.errors import MarketoError
from app.marketo.errors import Permanent
from app.marketo.lead_records import create_leads
from app.marketo.lead_records import find_leads
from app.outbox.store import TRUST_KEY
from app.outbox.store import StoredEvent
from app.settings import Settings

logger = logging.getLogger(__name__)

LOCK_NAME = "lead-resolution"
#: The shared counter of events whose identities named two different leads.
IDENTITY_CONFLICT = "identity_conflict"
#: The shared budget of Marketo lookups made for untrusted (browser) events, and the counter of
#: the lookups it refused (`flask status`, /metrics).
BROWSER_LOOKUPS = "browser_lookups"
BROWSER_LOOKUPS_DEFERRED = "browser_lookups_deferred"
#: The budget's window (`limits.browser_lookups_per_hour`).
BROWSER_LOOKUP_WINDOW_S = 3600.0
#: Why an untrusted event's lead was not looked up: the hour's budget was spent.
LOOKUP_BUDGET_SPENT = "lookup_budget_spent"


class LookupBudgetSpent(LimiterBusy):
    """The hour's budget of Marketo lookups for browser events is spent: the event waits,
    uncharged, for the next hour (Marketo was not asked)."""

    @property
    def reason(self) -> str:
        """Return the reason its attempts show on the console."""
        return LOOKUP_BUDGET_SPENT


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
    #: May this event create a lead, cache its identities and associate its cookie? False for a
    #: browser event without an identity token: it may only follow bindings that exist.
    trusted: bool = True
    #: May it replace bindings others made? Only a server key's event may.
    overwrite: bool = True

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


def who_for(stored: StoredEvent) -> Who:
    """Return the identities delivery may use for an event, under the trust rule (SPEC §5.4).

    A server key's event is trusted whole. A browser event keeps its cookie and anonymousId
    (to follow bindings a trusted path made); its email and userId count only when its identity
    token named them, and only then may it create, bind or associate.
    """
    who = who_of(stored.event.payload)
    if stored.event.source_kind != "browser":
        return who
    trust = stored.event.payload.get(TRUST_KEY) or {}
    user_id = who.user_id if who.user_id and who.user_id == trust.get("userId") else None
    return Who(
        cookie=who.cookie,
        email=trust.get("email"),
        user_id=user_id,
        anonymous_id=who.anonymous_id,
        trusted=bool(trust),
        overwrite=False,
    )


@dataclass(frozen=True)
class Resolution:
    """A lead id, or why there is none (`error` for Marketo's reason, `reason` for ours)."""

    lead_id: int | None = None
    error: MarketoError | None = None
    reason: str | None = None
    #: The id came from the identity cache, so Marketo may have merged or deleted it since.
    cached: bool = False
    #: The identity kind that found the lead ("cookie", "email", "userId", "anonymousId").
    via: str | None = None


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
        self._cookie_misses: set[str] = set()
        self._deferred: set[int] = set()
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
        """Resolve every event's lead, trying identities in `lead_lookup` order.

        For each identity in turn the cache answers first, then Marketo (one call per filter
        type per 300 values; a cookie costs one call each). The first identity that finds a lead
        wins, so a later one that names another lead never decides (SPEC §6.3, README "Lead
        resolution"). Leads still missing are created, and identities cached, for trusted
        events only: an untrusted browser event follows existing bindings and makes none.

        :raises Retryable: a call failed in a way worth retrying; nothing was cached wrongly.
        """
        create = self.settings.create_leads if create is None else create
        self._cookie_misses = set()
        self._deferred = set()
        results: list[Resolution | None] = [None] * len(whos)
        if not (
            self._walk(whos, results, marketo=False)
            or (create and any(r is None and w.trusted for w, r in zip(whos, results, strict=True)))
        ):
            return self._settled(whos, results)
        # Single-flight across processes, so two workers never create one lead twice; the lock
        # dies with its holder (flock / advisory lock), so a killed worker blocks no one. What
        # was found is cached before the lock goes, so the next holder finds it in the cache.
        with self.shared.exclusive(LOCK_NAME) as held:
            if not held:
                raise Busy("another worker is resolving leads")
            self._walk(whos, results, marketo=True)
            if create:
                self._create(whos, results)
            return self._settled(whos, results)

    def _settled(self, whos: Sequence[Who], results: list[Resolution | None]) -> list[Resolution]:
        """Name why a lead was not found, and cache what trusted events found."""
        out: list[Resolution] = []
        for index, (who, result) in enumerate(zip(whos, results, strict=True)):
            if index in self._deferred and result is None:
                result = Resolution(error=self._budget_spent())
            elif result is None:
                reason = "lead_not_found" if self.ordered(who) else "no_lead_identity"
                result = Resolution(reason=reason)
            elif result.lead_id is not None and who.trusted:
                # A cookie is cached only once Marketo ties it to the lead (found by it, or
                # associated after the event): until then it may still belong to another.
                kept = who if result.via == "cookie" else replace(who, cookie=None)
                self.remember(kept, result.lead_id)
            out.append(result)
        return out

    def _lookupable(self, kind: str) -> bool:
        return kind == "cookie" or bool(self.filter_fields.get(kind))

    def _walk(self, whos: Sequence[Who], results: list[Resolution | None], marketo: bool) -> bool:
        """Fill `results` kind by kind in order; return whether Marketo must be asked.

        A who stops at its first identity that the cache does not know but Marketo could: that
        identity's answer comes first. Without `marketo` only the cache is read.
        """
        todo = [i for i, r in enumerate(results) if r is None]
        wanted = [x for i in todo for x in self.ordered(whos[i])]
        known = self.shared.get_leads(self.scope, wanted) if wanted else {}
        blocked: set[int] = set()
        for kind in self.order:
            for i in todo:
                value = dict(self.ordered(whos[i])).get(kind)
                if results[i] is not None or i in blocked or value is None:
                    continue
                lead = known.get((kind, value))
                if lead is not None:
                    results[i] = Resolution(lead, cached=True, via=kind)
                elif self._lookupable(kind):
                    blocked.add(i)
            if not marketo:
                continue
            asking = [i for i in todo if i in blocked and results[i] is None]
            values = [dict(self.ordered(whos[i])).get(kind) for i in asking]
            distinct = list(dict.fromkeys(v for v in values if v is not None))
            if distinct:
                self._ask(kind, distinct, whos, results, asking)
            blocked.clear()
        return bool(blocked)

    def _ask(
        self,
        kind: str,
        values: list[str],
        whos: Sequence[Who],
        results: list[Resolution | None],
        asking: list[int],
    ) -> None:
        """Look `values` of one kind up in Marketo and fill the results they answer."""
        if kind == "cookie":
            values = self._within_budget(values, whos, asking)
            found: dict[str, int] = {}
            for cookie in values:
                found.update(self._find("cookies", None, [cookie]))
            self._cookie_misses.update(v for v in values if v not in found)
        else:
            field = self.filter_fields[kind]
            found = self._find(field, field, values)
        for i in asking:
            value = dict(self.ordered(whos[i])).get(kind)
            if value is None:
                continue
            lead = found.get(value, found.get(value.lower()) if kind == "email" else None)
            if lead is not None:
                results[i] = Resolution(lead, via=kind)

    def _within_budget(
        self, cookies: list[str], whos: Sequence[Who], asking: list[int]
    ) -> list[str]:
        """Return the cookies to look up: every one a trusted event names, and as many of the
        rest as the hour's budget for untrusted events allows.

        A browser key is public: without this, beacons with made-up `_mkto_trk` values would
        each cost one Marketo call (up to the per-IP beacon rate, from any number of
        addresses) and could spend the instance's daily quota. A cookie left out is not looked
        up now; its events wait, uncharged, for the next hour's budget (`lookup_budget_spent`).
        """
        trusted = {dict(self.ordered(whos[i])).get("cookie") for i in asking if whos[i].trusted}
        paid = [c for c in cookies if c not in trusted]
        if not paid:
            return cookies
        limit = int(self.settings.limits.browser_lookups_per_hour)
        granted = self.shared.spend(
            BROWSER_LOOKUPS, len(paid), limit, BROWSER_LOOKUP_WINDOW_S, self.clock()
        )
        refused = set(paid[granted:])
        if not refused:
            return cookies
        self.shared.count(BROWSER_LOOKUPS_DEFERRED, len(refused))
        logger.info("%d cookie lookups for browser events wait for the next hour", len(refused))
        self._deferred.update(
            i for i in asking if dict(self.ordered(whos[i])).get("cookie") in refused
        )
        return [c for c in cookies if c not in refused]

    def _budget_spent(self) -> LookupBudgetSpent:
        """The wait for the next hour's budget: the event goes again then, uncharged."""
        now = self.clock()
        next_window = (now // BROWSER_LOOKUP_WINDOW_S + 1) * BROWSER_LOOKUP_WINDOW_S
        return LookupBudgetSpent(
            "this hour's lookups for browser events are spent", retry_after=next_window - now
        )

    def cookie_owner(self, cookie: str) -> int | None:
        """Return the lead Marketo ties `cookie` to, from the cache or one lookup; None if none.

        A lead found is cached (Marketo's own binding is a trusted one); a miss already seen in
        this batch's resolution is not asked again.
        """
        cached = self.shared.get_leads(self.scope, [("cookie", cookie)])
        if cached:
            return next(iter(cached.values()))
        if cookie in self._cookie_misses:
            return None
        lead = self._find("cookies", None, [cookie]).get(cookie)
        if lead is None:
            self._cookie_misses.add(cookie)
            return None
        self.shared.put_leads(self.scope, {("cookie", cookie): lead}, self.clock())
        return lead

    def _find(self, filter_type: str, field: str | None, values: list[str]) -> dict[str, int]:
        return find_leads(self.client, filter_type, values, field)

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
            key = self._create_key(who) if result is None and who.trusted else None
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
                key = self._create_key(who) if results[index] is None and who.trusted else None
                if key is not None and key[0] == field and key[1] in outcome:
                    results[index] = outcome[key[1]]

    def associate(self, pairs: Sequence[tuple[str, int]], *, move: bool = True) -> int:
        """Associate each (cookie, lead) not yet associated, once; return how many were sent.

        With `move` false (a track, not an identify), a cookie Marketo already ties to a lead is
        never moved: its own lead needs nothing, another lead counts an identity conflict. A
        refused cookie (1012) is remembered as done: it must never block an event.
        """
        wanted = list(dict.fromkeys(pairs))
        done = self.shared.associated(self.scope, wanted)
        sent = 0
        for cookie, lead in wanted:
            if (cookie, lead) in done:
                continue
            owner = None if move else self.cookie_owner(cookie)
            if owner is not None:
                if owner != lead:
                    self.shared.count(IDENTITY_CONFLICT)
                    logger.info("cookie kept on lead %s; the event went to lead %s", owner, lead)
                else:
                    self.shared.mark_associated(self.scope, [(cookie, lead)])
                continue
            try:
                self.client.associate(lead, cookie)
                sent += 1
                self.shared.put_leads(self.scope, {("cookie", cookie): lead}, self.clock())
            except Permanent as exc:
                logger.warning("cookie not associated with lead %s: %s", lead, exc)
            self.shared.mark_associated(self.scope, [(cookie, lead)])
        return sent
