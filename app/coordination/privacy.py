"""Forgetting a person and the suppression list, in SQL both backends accept.

A mixin of `SqlSharedState`: the shared state lives in the outbox's database, so one object
reaches the events, the identity → lead cache and the suppression list. A backend names how
text is searched for a substring (`_CONTAINS`) and may scrub freed pages (`_after_forget`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from typing import ClassVar

# Hashes per IN list: under SQLite's cap on bound parameters.
CHUNK = 400

# The mkto_meta row counting changes to the suppression list: every suppress or unsuppress
# that changes a row bumps it in the same transaction, so a node's in-process copy of the list
# (app/privacy/suppression.py) knows when to reload.
VERSION_KEY = "suppression_version"
_BUMP = (
    "INSERT INTO mkto_meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE SET"
    " value = CAST(CAST(mkto_meta.value AS BIGINT) + 1 AS TEXT)"
)

# What a forgotten event row becomes when it is the newest row (SQLite hands the largest id out
# again once its row is deleted): the same placeholder compaction leaves.
_BLANK = (
    "UPDATE events SET message_id = '', type = 'placeholder', source_key_id = '',"
    " user_id = NULL, anonymous_id = NULL, payload = '{}', state = 'delivered', reason = NULL,"
    " detail = NULL, email = NULL, lead_id = NULL, history = NULL WHERE id = ?"
)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def json_needle(value: str) -> str:
    """Return how a string value appears inside a stored JSON payload: quoted and escaped."""
    return json.dumps(value)


class PrivacySql:
    """Suppression list and forgetting; the host class supplies `_tx` and `_read`."""

    #: SQL testing whether column `{col}` holds the text bound to `?`.
    _CONTAINS: ClassVar[str] = "instr({col}, ?) > 0"

    def _tx(self) -> AbstractContextManager[Any]:  # pragma: no cover - supplied by the host
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:  # pragma: no cover - supplied by the host
        raise NotImplementedError

    def _before_forget(self) -> None:
        """Hook: have the next deletes overwrite freed space (SQLite)."""

    def _after_forget(self) -> None:
        """Hook: make deleted rows unrecoverable from the database files (SQLite)."""

    def _after_scrub(self) -> None:
        """Hook: end what `_before_forget` began, without the full pass (SQLite)."""

    # Suppression list ----------------------------------------------------------------------
    def suppress(self, hashes: Iterable[str], now: float) -> int:
        """Add hashed identifiers to the suppression list; return how many were new."""
        rows = sorted(set(hashes))
        added = 0
        with self._tx() as conn:
            for digest in rows:
                added += conn.execute(
                    "INSERT INTO suppressions (hash, created_at) VALUES (?, ?)"
                    " ON CONFLICT (hash) DO NOTHING",
                    (digest, now),
                ).rowcount
            if added:
                conn.execute(_BUMP, (VERSION_KEY,))
        return added

    def unsuppress(self, hashes: Iterable[str]) -> int:
        """Lift suppression of hashed identifiers; return how many were listed."""
        removed = 0
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(hashes))):
                marks = ",".join("?" * len(chunk))
                removed += conn.execute(
                    f"DELETE FROM suppressions WHERE hash IN ({marks})", tuple(chunk)
                ).rowcount
            if removed:
                conn.execute(_BUMP, (VERSION_KEY,))
        return removed

    def suppression_version(self) -> int:
        """Return the suppression list's change counter (0 before its first change)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT value FROM mkto_meta WHERE key = ?", (VERSION_KEY,)
            ).fetchone()
        return int(row[0]) if row else 0

    def suppression_list(self, limit: int) -> set[str] | None:
        """Return every hash on the suppression list, or None when there are more than `limit`."""
        with self._read() as conn:
            rows = conn.execute("SELECT hash FROM suppressions LIMIT ?", (limit + 1,)).fetchall()
        return None if len(rows) > limit else {str(r[0]) for r in rows}

    def suppressed(self, hashes: Iterable[str]) -> set[str]:
        """Return which of these hashed identifiers are on the suppression list."""
        wanted = sorted(set(hashes))
        found: set[str] = set()
        with self._read() as conn:
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT hash FROM suppressions WHERE hash IN ({marks})", tuple(chunk)
                ).fetchall()
                found.update(str(r[0]) for r in rows)
        return found

    def scrub_events(self, ids: Sequence[int]) -> int:
        """Cut open events down to what a suppressed event keeps: type, messageId and time.

        For events about a forgotten person that delivery found (accepted on a node whose copy
        of the list was not yet fresh); the dispatcher then drops them as `suppressed`.
        Returns how many rows were rewritten.
        """
        done = 0
        self._before_forget()
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(ids))):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT id, type, message_id, timestamp FROM events WHERE id IN ({marks})"
                    " AND state IN ('pending', 'held', 'in_flight')",
                    tuple(chunk),
                ).fetchall()
                for event_id, kind, message_id, timestamp in rows:
                    kept = {"type": kind, "messageId": message_id, "timestamp": timestamp}
                    conn.execute(
                        "UPDATE events SET user_id = NULL, anonymous_id = NULL, payload = ?,"
                        " detail = NULL, email = NULL, lead_id = NULL, history = NULL"
                        " WHERE id = ?",
                        (json.dumps(kept), event_id),
                    )
                    done += 1
        self._after_scrub()
        return done

    # Forgetting ----------------------------------------------------------------------------
    def forget_events(self, identifiers: Iterable[tuple[str, str]]) -> int:
        """Delete every outbox event that names one of these (kind, value) pairs, in any state.

        Matches the userId and anonymousId columns and the value as a JSON string anywhere in
        the payload or the error detail (emails in any letter case); returns rows removed.
        """
        payload = self._CONTAINS.format(col="payload")
        lowered = self._CONTAINS.format(col="lower(payload)")
        detail = self._CONTAINS.format(col="coalesce(detail, '')")
        ids: set[int] = set()
        self._before_forget()
        with self._tx() as conn:
            for kind, value in sorted(set(identifiers)):
                needle = json_needle(value.lower() if kind == "email" else value)
                body = lowered if kind == "email" else payload
                rows = conn.execute(
                    f"SELECT id FROM events WHERE user_id = ? OR anonymous_id = ? OR {body}"
                    f" OR {detail}",
                    (value, value, needle, value),
                ).fetchall()
                ids.update(int(r[0]) for r in rows)
            newest = conn.execute("SELECT max(id) FROM events").fetchone()[0]
            for chunk in _chunks(sorted(ids - {newest})):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM events WHERE id IN ({marks})", tuple(chunk))
            if newest in ids:
                conn.execute(_BLANK, (newest,))
            # A Marketo error message kept for the console may quote a value it refused.
            quoted = self._CONTAINS.format(col="lower(coalesce(message, ''))")
            for _, value in sorted(set(identifiers)):
                conn.execute(
                    f"UPDATE delivery_calls SET message = '(removed: named a forgotten person)'"
                    f" WHERE {quoted}",
                    (value.lower(),),
                )
        return len(ids)

    def forget_identities(
        self, identifiers: Iterable[tuple[str, str]]
    ) -> tuple[list[int], set[tuple[str, str]]]:
        """Drop every cache entry of the leads these (kind, value) pairs map to, in every scope.

        The identity → lead rows (cookies included), the traits hashes and the associated
        cookies of those leads go; the last Marketo error goes too when it quotes a value.
        Returns the lead ids found (to delete in Marketo) and every other identity those leads
        were cached under (the same person: their events go too).
        """
        leads: set[int] = set()
        related: set[tuple[str, str]] = set()
        # Any letter case: Marketo may quote an email as it was sent, not as we match it.
        error = self._CONTAINS.format(col="lower(value)")
        pairs = sorted(set(identifiers))
        self._before_forget()
        with self._tx() as conn:
            for kind, value in pairs:
                column = "lower(value)" if kind == "email" else "value"
                wanted = value.lower() if kind == "email" else value
                where = f"kind = ? AND {column} = ?"
                rows = conn.execute(
                    f"SELECT lead_id FROM mkto_leads WHERE {where}", (kind, wanted)
                ).fetchall()
                leads.update(int(r[0]) for r in rows)
                conn.execute(f"DELETE FROM mkto_leads WHERE {where}", (kind, wanted))
                conn.execute(
                    f"DELETE FROM mkto_meta WHERE key = 'last_error' AND {error}", (value.lower(),)
                )
            for lead in sorted(leads):
                rows = conn.execute(
                    "SELECT kind, value FROM mkto_leads WHERE lead_id = ?", (lead,)
                ).fetchall()
                related.update((str(k), str(v)) for k, v in rows)
                rows = conn.execute(
                    "SELECT cookie FROM mkto_cookies WHERE lead_id = ?", (lead,)
                ).fetchall()
                related.update(("cookie", str(r[0])) for r in rows)
                for table in ("mkto_leads", "mkto_trait_hashes", "mkto_cookies"):
                    conn.execute(f"DELETE FROM {table} WHERE lead_id = ?", (lead,))
        return sorted(leads), related

    def scrub(self) -> None:
        """Make what the forget calls above deleted unrecoverable from the database files."""
        self._after_forget()
