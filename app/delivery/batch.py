"""Turn a batch of outbox events into Marketo calls and return one outcome per event.

This is what the dispatcher calls. It never retries or waits: a retryable failure becomes a
`retry` outcome carrying the exception, and the dispatcher decides when to try again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app.coordination.state import SharedState
from app.delivery.extras import BatchExtras
from app.delivery.extras import combine
from app.delivery.identify import Identifier
from app.delivery.isolation import PartlyDelivered
from app.delivery.leads import LeadResolver
from app.delivery.leads import Who
from app.delivery.leads import who_for
from app.delivery.mapping import CoercionError
from app.delivery.mapping import activity
from app.delivery.outcomes import DEAD
from app.delivery.outcomes import DROPPED
from app.delivery.outcomes import HELD
from app.delivery.outcomes import OK
from app.delivery.outcomes import RETRY
from app.delivery.outcomes import IdentifyPending
from app.delivery.outcomes import Outcome
from app.delivery.outcomes import delivered_to
from app.delivery.outcomes import failed
from app.marketo.activities import send_activities
from app.marketo.client import MarketoClient
from app.marketo.errors import LeadMoved
from app.marketo.errors import MarketoError
from app.marketo.errors import Retryable
from app.marketo.errors import TooLarge
from app.outbox.store import StoredEvent
from app.settings import EventMapping
from app.settings import Settings

logger = logging.getLogger(__name__)


class Delivery:
    """Delivers batches of events for one settings generation."""

    def __init__(
        self,
        client: MarketoClient,
        shared: SharedState,
        settings: Settings,
        clock: Callable[[], float],
        on_link: Callable[[str | None, str | None], int] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.resolver = LeadResolver(client, shared, settings, clock)
        self.identifier = Identifier(client, shared, settings, self.resolver)
        self.extras = BatchExtras(client, settings, self.resolver)
        self.on_link = on_link

    def deliver(self, events: Sequence[StoredEvent]) -> dict[int, Outcome]:
        """Return an outcome for every event id in `events`."""
        outcomes: dict[int, Outcome] = {}
        naming_failed: set[str] = set()  # ids whose identify or alias here is being retried
        identifies: list[StoredEvent] = []
        aliases: list[StoredEvent] = []
        tracks: list[tuple[StoredEvent, EventMapping, str]] = []
        for stored in events:
            message = stored.event.payload
            kind = stored.event.type
            if kind == "identify":
                identifies.append(stored)
            elif kind == "alias":
                aliases.append(stored)
            elif kind == "track":
                name = str(message.get("event") or "")
                mapping = self.settings.events.get(name)
                if mapping is None:
                    outcomes[stored.id] = Outcome(DROPPED, "event_not_mapped")
                else:
                    tracks.append((stored, mapping, name))
            elif kind == "page" and self.settings.page_activity is not None:
                name = str(message.get("name") or "page")
                tracks.append((stored, self.settings.page_activity, name))
            elif kind == "page":
                outcomes[stored.id] = Outcome(DROPPED, "event_not_mapped")
            else:
                outcomes[stored.id] = Outcome(DROPPED, "unsupported_type")
        # A retryable failure, or a 413 on a lookup: later phases wait for the dispatcher.
        interrupted: Retryable | TooLarge | None = None
        phases: list[tuple[Callable[[Any], dict[int, Outcome]], Sequence[Any]]] = [
            (lambda items: self.identifier.identify(items, self._link), identifies),
            (self._alias, aliases),
            (lambda items: self._track(items, naming_failed), tracks),
        ]
        for handler, items in phases:
            if not items or interrupted is not None:
                continue
            naming_failed.update(
                v
                for s in (*identifies, *aliases)
                if outcomes.get(s.id, OK).status == RETRY
                for v in (s.event.user_id, s.event.anonymous_id)
                if v
            )
            try:
                outcomes.update(handler(items))
            except (Retryable, TooLarge) as exc:
                logger.info("delivery interrupted: %s", exc)
                interrupted = exc
            except MarketoError:
                raise
            except Exception as exc:  # the dispatcher splits the rest; keep what was settled
                raise PartlyDelivered(self._without_extras(events, outcomes), exc) from exc
        outcomes.update(self._extras(events, outcomes))
        for stored in events:
            if stored.id not in outcomes:
                if interrupted is not None:
                    outcomes[stored.id] = failed(interrupted)
                else:
                    outcomes[stored.id] = Outcome(DEAD, "no_outcome", "delivery gave no outcome")
        return outcomes

    def _without_extras(
        self, events: Sequence[StoredEvent], outcomes: dict[int, Outcome]
    ) -> dict[int, Outcome]:
        """Return the outcomes of events with no audience or campaign work still to do."""
        extra = {
            s.id
            for s in events
            if s.event.source_kind == "server" and self.extras.wants(s.event.payload)
        }
        return {i: o for i, o in outcomes.items() if i not in extra}

    def _link(self, anonymous_id: str | None, user_id: str | None) -> None:
        """An identify or alias named a visitor: release its held events (by either id).

        Held by userId too: a track whose identify in the same batch failed for a moment waits
        held, and the identify's retry releases it.
        """
        if (anonymous_id or user_id) and self.on_link is not None:
            released = self.on_link(anonymous_id, user_id)
            if released:
                logger.info("released %d held events of a visitor just named", released)

    def _alias(self, aliases: Sequence[StoredEvent]) -> dict[int, Outcome]:
        """alias: point previousId at userId's lead (when known) and release held events."""
        outcomes: dict[int, Outcome] = {}
        trusted = [who_for(s) for s in aliases]
        whos = [Who(user_id=w.user_id, email=w.email, trusted=w.trusted) for w in trusted]
        resolved = self.resolver.resolve(whos, create=False)
        for stored, who, result in zip(aliases, whos, resolved, strict=True):
            previous = stored.event.payload.get("previousId")
            # A browser alias reaches here only with an identity token (intake records the rest):
            # it may join its own anonymous visitor to the token's user, never re-point a user
            # id, overwrite a binding, or merge leads (anyone could name any previousId).
            server = stored.event.source_kind == "server"
            merged = self.extras.merge_alias(stored, result.lead_id) if server else None
            if merged is not None and merged.status == RETRY:
                outcomes[stored.id] = merged
                continue
            if previous and result.lead_id is not None:
                previous = str(previous)
                if server:
                    kinds = ("anonymousId", "userId")
                    self.resolver.link([(kind, previous) for kind in kinds], result.lead_id)
                else:
                    self.resolver.remember(Who(anonymous_id=previous), result.lead_id)
            self._link(str(previous) if previous else None, who.user_id)
            outcomes[stored.id] = merged or delivered_to(result.lead_id)
        return outcomes

    def _extras(
        self, events: Sequence[StoredEvent], outcomes: dict[int, Outcome]
    ) -> dict[int, Outcome]:
        """Audience membership and campaign triggers, combined with each event's outcome.

        Only for server-key events: a browser key is public, and a beacon must not send a
        campaign email (with token values it chose) to any address, or edit list membership.
        """
        enabled = [s for s in events if s.event.source_kind == "server"]
        try:
            extra = self.extras.deliver(enabled)
        except (Retryable, TooLarge) as exc:
            extra = {s.id: failed(exc) for s in enabled if self.extras.wants(s.event.payload)}
        return {i: combine(outcomes.get(i), o) for i, o in extra.items()}

    def _track(
        self,
        tracks: Sequence[tuple[StoredEvent, EventMapping, str]],
        naming_failed: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> dict[int, Outcome]:
        """track/page: resolve leads, build activities, send ≤ 300 a call.

        A 1004 on a cached lead id forgets the cache entry and answers `LeadMoved`, which the
        dispatcher resends at once (re-resolving the lead) without charging an attempt; a 1004
        on a lead just looked up or created is final.
        """
        outcomes: dict[int, Outcome] = {}
        whos = [who_for(stored) for stored, _, _ in tracks]
        resolved = self.resolver.resolve(whos)  # a retryable failure retries the whole phase
        items: list[tuple[int, dict[str, Any]]] = []
        cookies: list[tuple[str, int]] = []
        from_cache = {r.lead_id for r in resolved if r.cached}
        for (stored, mapping, name), who, result in zip(tracks, whos, resolved, strict=True):
            if result.lead_id is None:
                if result.error is not None:
                    outcomes[stored.id] = failed(result.error)
                elif {stored.event.user_id, stored.event.anonymous_id} & naming_failed:
                    pending = IdentifyPending("the identify naming this visitor is being retried")
                    outcomes[stored.id] = failed(pending)
                else:  # wait for a binding (identify, alias, form fill); never a dead letter
                    outcomes[stored.id] = Outcome(HELD, result.reason)
                continue
            try:
                items.append(
                    (stored.id, activity(stored.event.payload, mapping, result.lead_id, name))
                )
            except CoercionError as exc:
                outcomes[stored.id] = Outcome(DEAD, exc.reason, str(exc))
                continue
            if who.cookie and who.trusted and result.via != "cookie":
                cookies.append((who.cookie, result.lead_id))
        for event_id, sent in send_activities(self.client, items).items():
            if sent.lead_missing and sent.lead_id in from_cache:
                self.resolver.forget(sent.lead_id)
                moved = LeadMoved(f"lead {sent.lead_id} no longer exists", marketo_code="1004")
                outcomes[event_id] = failed(moved)
            elif sent.error is not None:
                outcomes[event_id] = replace(failed(sent.error), lead_id=sent.lead_id)
            else:
                outcomes[event_id] = delivered_to(sent.lead_id)
        self._associate(cookies)
        return outcomes

    def _associate(self, pairs: Sequence[tuple[str, int]]) -> None:
        """Tie cookies no lead owns yet to leads, after the activities went out.

        A cookie Marketo already ties to another lead is left where it is (an `identity_conflict`
        is counted): only an identify says who a browser belongs to. A failure never fails an
        event.
        """
        if not pairs:
            return
        try:
            self.resolver.associate(pairs, move=False)
        except Exception as exc:  # the activities went out: an association never fails them
            logger.warning("cookie association postponed: %s", exc)
