"""Which unexpected exceptions belong to one event, and what an isolated event's dead letter says.

The dispatcher bisects a batch whose delivery raised something that is not a Marketo error
(`Dispatcher._isolate`); these helpers keep that decision and its wording in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.delivery.outcomes import Outcome

#: An isolated event's dead-letter detail keeps at most this much of the exception's message.
MAX_DETAIL = 500


class PartlyDelivered(Exception):
    """A delivery phase raised after earlier phases had settled some events of the batch.

    Carries those outcomes, so the split that follows resends only the events still open and
    an identify already sent is not sent again because a later track raised.
    """

    def __init__(self, settled: Mapping[int, Outcome], cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.settled = dict(settled)
        self.cause = cause


def cause_of(exc: BaseException) -> BaseException:
    """Return the exception a `PartlyDelivered` wraps, or `exc` itself."""
    return exc.cause if isinstance(exc, PartlyDelivered) else exc


def settled_before(exc: BaseException) -> dict[int, Outcome]:
    """Return the outcomes settled before `exc` was raised (none unless it says so)."""
    return exc.settled if isinstance(exc, PartlyDelivered) else {}


def systemic(exc: BaseException) -> bool:
    """Tell whether `exc` is the gateway's own trouble (database unreachable or locked, disk,
    memory), which splitting the batch cannot pin on one event."""
    cause = cause_of(exc)
    if isinstance(cause, OSError | MemoryError):
        return True
    # sqlite3.OperationalError, psycopg.OperationalError: matched by name so psycopg stays optional
    return any(cls.__name__ == "OperationalError" for cls in type(cause).__mro__)


def describe(exc: BaseException) -> str:
    """Return the dead-letter detail for an event that raised alone: class and message."""
    cause = cause_of(exc)
    text = f"{type(cause).__name__}: {cause}"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
