"""identify → createOrUpdate: merge a batch per lead, skip unchanged traits, ≤ 300 and < 1 MB a
call."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from app.coordination.state import SharedState
from app.delivery.leads import LeadResolver
from app.delivery.leads import Who
from app.delivery.leads import who_for
from app.delivery.mapping import CoercionError
from app.delivery.mapping import fields_hash
from app.delivery.mapping import lead_fields
from app.delivery.outcomes import DEAD
from app.delivery.outcomes import DROPPED
from app.delivery.outcomes import Outcome
from app.delivery.outcomes import delivered_to
from app.delivery.outcomes import failed
from app.marketo.client import MarketoClient
from app.marketo.errors import RECORD_OK
from app.marketo.errors import RECORD_RETRY
from app.marketo.errors import MarketoError
from app.marketo.errors import Permanent
from app.marketo.errors import Retryable
from app.marketo.errors import Transient
from app.marketo.errors import record_class
from app.marketo.errors import record_error
from app.marketo.errors import record_reasons
from app.marketo.sizing import MAX_RECORDS_PER_CALL
from app.marketo.sizing import encoded_size
from app.marketo.sizing import sized_chunks
from app.outbox.store import StoredEvent
from app.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Upsert:
    """One lead write: the merged fields of every identify in the batch for the same key."""

    action: str
    lookup_field: str
    fields: dict[str, Any]
    event_ids: list[int] = field(default_factory=list)
    whos: list[Who] = field(default_factory=list)
    lead_id: int | None = None

    def body_bytes(self) -> int:
        """Return the bytes this write adds to a sync call's body."""
        return encoded_size(self.fields)


class Identifier:
    """Writes identify traits to leads, at most once per unchanged trait set."""

    def __init__(
        self,
        client: MarketoClient,
        shared: SharedState,
        settings: Settings,
        resolver: LeadResolver,
    ) -> None:
        self.client = client
        self.shared = shared
        self.settings = settings
        self.resolver = resolver
        self.scope = settings.munchkin_id

    def _key(self, fields: dict[str, Any], who: Who) -> tuple[str, str, Any] | None:
        """Return (action, lookup field, value) for a lead write, or None without any key."""
        ids = self.settings.lead_fields
        action = self.settings.lead_action
        for name in (self.settings.lead_lookup_field, "email", ids.user_id, ids.anonymous_id):
            if name and fields.get(name):
                return action, name, fields[name]
        cached = self.resolver.cached([who])[0]
        if cached is not None:
            return "updateOnly", "id", cached
        return None

    def _token_fields(self, fields: dict[str, Any], who: Who) -> dict[str, Any]:
        """Limit a browser identify's write to what its token names (SPEC §5.4).

        The email is the token's; the userId field is written only when the token named that
        userId; the anonymousId field is never written from a page (anyone can send any id).
        """
        ids = self.settings.lead_fields
        kept = {k: v for k, v in fields.items() if k not in (ids.user_id, ids.anonymous_id)}
        kept["email"] = who.email
        if ids.user_id and who.user_id:
            kept[ids.user_id] = who.user_id
        return kept

    def identify(
        self, events: Sequence[StoredEvent], link: Callable[[str | None, str | None], None]
    ) -> dict[int, Outcome]:
        """Return an outcome per identify event; a failing chunk never undoes earlier ones."""
        outcomes: dict[int, Outcome] = {}
        upserts: dict[tuple[str, str, Any], Upsert] = {}
        for stored in events:
            message = stored.event.payload
            who = who_for(stored)
            if not who.trusted:  # intake records these; a stored one from before stays a record
                outcomes[stored.id] = Outcome(DROPPED, "recorded_only")
                continue
            try:
                fields = lead_fields(message, self.settings)
            except CoercionError as exc:
                outcomes[stored.id] = Outcome(DEAD, exc.reason, str(exc))
                continue
            if stored.event.source_kind == "browser":
                fields = self._token_fields(fields, who)
            key = self._key(fields, who)
            if key is None:
                outcomes[stored.id] = Outcome(DROPPED, "no_lead_identity")
                continue
            if key[1] == "id":
                fields = {**fields, "id": key[2]}
            upsert = upserts.setdefault(key, Upsert(key[0], key[1], {}))
            upsert.fields.update(fields)
            upsert.event_ids.append(stored.id)
            upsert.whos.append(who)
        todo = self._changed(list(upserts.values()), outcomes, link)
        groups: dict[tuple[str, str], list[Upsert]] = {}
        for upsert in todo:
            groups.setdefault((upsert.action, upsert.lookup_field), []).append(upsert)
        stopped: Retryable | None = None
        for (action, lookup), members in groups.items():
            for chunk in sized_chunks(members, Upsert.body_bytes, max_items=MAX_RECORDS_PER_CALL):
                if stopped is None:
                    try:
                        rows = self.client.sync_leads(
                            [u.fields for u in chunk],
                            action=action,
                            lookup_field=lookup,
                            partition=self.settings.lead_partition,
                        )
                    except Retryable as exc:
                        stopped = exc
                    except Permanent as exc:
                        self._settle(chunk, outcomes, failed(exc))
                        continue
                if stopped is not None:
                    self._settle(chunk, outcomes, failed(stopped))
                    continue
                for index, upsert in enumerate(chunk):
                    row = rows[index] if index < len(rows) else {"status": "skipped"}
                    error = self._written(upsert, row, link)
                    lead = int(row["id"]) if row.get("id") is not None else upsert.lead_id
                    self._settle(
                        [upsert], outcomes, delivered_to(lead) if error is None else failed(error)
                    )
        return outcomes

    def _changed(
        self,
        upserts: list[Upsert],
        outcomes: dict[int, Outcome],
        link: Callable[[str | None, str | None], None],
    ) -> list[Upsert]:
        """Drop writes whose fields equal the last ones sent for that lead (no call needed).

        Their identities, cookies and held events are still recorded: the same traits can come
        from a new browser or a new anonymousId.
        """
        for upsert in upserts:
            if upsert.lookup_field == "id":
                upsert.lead_id = int(upsert.fields["id"])
            else:
                upsert.lead_id = self.resolver.cached([upsert.whos[-1]])[0]
        known = [u.lead_id for u in upserts if u.lead_id is not None]
        hashes = self.shared.get_trait_hashes(self.scope, known)
        todo = []
        for upsert in upserts:
            if upsert.lead_id is not None and hashes.get(upsert.lead_id) == self._hash(upsert):
                self._record(upsert, upsert.lead_id, link)
                self._settle([upsert], outcomes, delivered_to(upsert.lead_id))
            else:
                todo.append(upsert)
        return todo

    @staticmethod
    def _hash(upsert: Upsert) -> str:
        return fields_hash({k: v for k, v in upsert.fields.items() if k != "id"})

    @staticmethod
    def _settle(upserts: Sequence[Upsert], outcomes: dict[int, Outcome], outcome: Outcome) -> None:
        for upsert in upserts:
            for event_id in upsert.event_ids:
                outcomes[event_id] = outcome

    def _written(
        self,
        upsert: Upsert,
        row: dict[str, Any],
        link: Callable[[str | None, str | None], None],
    ) -> MarketoError | None:
        """Record a written lead (cache, hash, cookie, held events); return its error if any."""
        if row.get("status") == "skipped" or row.get("id") is None:
            reasons = record_reasons(row)
            kind = record_class(reasons)
            error = record_error(reasons)
            if kind == RECORD_OK:
                return None
            if kind == RECORD_RETRY:
                return Transient(str(error), marketo_code=error.marketo_code)
            return error
        lead_id = int(row["id"])
        self.shared.put_trait_hashes(self.scope, {lead_id: self._hash(upsert)})
        self._record(upsert, lead_id, link)
        return None

    def _record(
        self, upsert: Upsert, lead_id: int, link: Callable[[str | None, str | None], None]
    ) -> None:
        """Cache the identities of a written lead, tie its cookies, release its held events."""
        for who in upsert.whos:
            identities = [i for i in who.all() if i[0] != "cookie"]
            if who.overwrite:  # a server key says so: its binding replaces any other
                self.resolver.link(identities, lead_id)
            else:  # a token's: fills what nobody bound yet, never moves a binding
                self.resolver.remember(replace(who, cookie=None), lead_id)
        cookies = [(who.cookie, lead_id) for who in upsert.whos if who.cookie]
        if cookies:
            try:
                self.resolver.associate(cookies)
            except MarketoError as exc:
                logger.warning("cookie association postponed: %s", exc)
            else:  # the identify said whose browser this is: tracks find the lead by cookie
                self.resolver.link([("cookie", cookie) for cookie, _ in cookies], lead_id)
        for who in upsert.whos:
            link(who.anonymous_id, who.user_id)
