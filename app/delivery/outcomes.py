"""What delivery reports per event: delivered, dropped or dead with a reason, or retry later."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

from app.marketo.errors import MarketoError
from app.marketo.errors import Retryable
from app.marketo.errors import TooLarge
from app.outbox.store import Attempt
from app.outbox.store import StoredEvent
from app.retry import Action

DELIVERED = "delivered"
DROPPED = "dropped"
DEAD = "dead"
RETRY = "retry"
# Not resolvable yet: parked until a binding names the visitor (or its hold expires).
HELD = "held"


@dataclass(frozen=True)
class Outcome:
    """How one event ended this time; `error` is set for retry and says which policy applies.

    `code` is Marketo's own error code when Marketo refused the event (`flask status` shows it).
    `lead_id` is the lead it landed on (or was meant for); `batch` names the calls made for it
    (`Store.calls`), set by the engine around each delivery.
    """

    status: str
    reason: str | None = None
    detail: str | None = None
    error: Retryable | TooLarge | None = None
    code: str | None = None
    lead_id: int | None = None
    batch: str | None = None


OK = Outcome(DELIVERED)


def delivered_to(lead_id: int | None) -> Outcome:
    """Return a delivered outcome naming the lead the event landed on."""
    return Outcome(DELIVERED, lead_id=lead_id) if lead_id is not None else OK


class IdentifyPending(Retryable):
    """The identify or alias that names this event's visitor is in the same batch and failed for
    now: resend with it at once; if that fails too, wait (uncharged) rather than hold."""

    action = Action.RESEND_NOW
    after_resend = Action.WAIT

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def failed(error: MarketoError) -> Outcome:
    """Return the outcome for a failure: retry for retryable ones, else dead with its code.

    A 413 (`TooLarge`) is a retry too: the dispatcher resends its events in smaller calls.
    """
    if isinstance(error, Retryable | TooLarge):
        return Outcome(RETRY, error.reason, str(error), error)
    return Outcome(DEAD, error.reason, str(error), code=error.marketo_code or None)


def retry_with(outcome: Outcome | None, cls: type) -> bool:
    """Tell whether `outcome` is a retry caused by an error of class `cls`."""
    return outcome is not None and outcome.status == RETRY and isinstance(outcome.error, cls)


def wants_action(outcome: Outcome | None, action: Action) -> bool:
    """Tell whether `outcome` is a retry whose error asks for `action`."""
    return (
        outcome is not None
        and outcome.status == RETRY
        and getattr(outcome.error, "action", None) is action
    )


def attempts_of(
    batch: Sequence[StoredEvent], outcomes: Mapping[int, Outcome], now: float
) -> dict[int, Attempt]:
    """Return the history line of each event of `batch` that has an outcome."""
    return {
        stored.id: Attempt(now, o.status, o.reason, o.batch, o.lead_id)
        for stored in batch
        if (o := outcomes.get(stored.id)) is not None
    }
