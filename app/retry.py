"""Backoff policy and Retry-After parsing: pure, with no clock or randomness of their own."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

#: The longest a server-given Retry-After may park a caller (SPEC §6.7 caps backoff at 10 min).
MAX_RETRY_AFTER_S = 600.0


class Action(StrEnum):
    """What a failure asks of whoever made the call; every error class names one."""

    #: Send again at once, once, uncharged (601/602 after dropping the token; a moved lead).
    RESEND_NOW = "resend_now"
    #: Wait a short, known time without charge (our own budget or a lock is busy).
    WAIT = "wait"
    #: Marketo's rate or concurrency limit (606/615): hold every call, uncharged.
    PAUSE_ALL = "pause_all"
    #: The daily quota is spent (607): nothing before it resets, uncharged.
    PARK = "park"
    #: Something failed that may work later (5xx, timeouts, 604, 611): back off, charged.
    BACK_OFF = "back_off"
    #: The call was too large (413): resend its records in halves at once, uncharged.
    SPLIT = "split"
    #: Credentials refused: hold everything until an operator acts, uncharged.
    HOLD = "hold"
    #: Sending it again cannot succeed: dead-letter it with its reason.
    DEAD = "dead"


@dataclass(frozen=True)
class Step:
    """The decision for one failure: what to do, after how long, and whether it costs an attempt."""

    action: Action
    delay: float
    charge: bool


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap; the caller supplies the attempt and randomness."""

    #: Failures after which an event is dead-lettered `retries_exhausted`.
    max_attempts: int = 12
    #: Delay before the first retry, doubled for every further attempt.
    base_s: float = 2.0
    #: No delay, computed or server-given, exceeds this.
    cap_s: float = 600.0

    def backoff(self, attempt: int) -> float:
        """Return the un-jittered delay after failure number `attempt` (1-based), capped."""
        exponent = max(0, attempt - 1)
        if exponent > 60:  # 2**60 seconds is past any cap; avoid float overflow
            return self.cap_s
        return min(self.cap_s, self.base_s * (2.0**exponent))

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Return seconds to wait after failure number `attempt`.

        Jitter spreads the delay over [half, full] of the backoff so that many events failing
        together do not return together; a Retry-After is a floor under it; the cap bounds both.
        """
        base = self.backoff(attempt)
        jittered = base * (0.5 + 0.5 * min(max(rand, 0.0), 1.0))
        if retry_after is not None:
            jittered = max(jittered, min(max(retry_after, 0.0), self.cap_s))
        return min(jittered, self.cap_s)

    def step(self, action: Action, attempt: int, retry_after: float | None, rand: float) -> Step:
        """Decide what failure number `attempt` (1-based) of the given kind leads to.

        Only BACK_OFF is charged: waits the gateway or Marketo's limits impose, resends after a
        token refresh or split, and operator holds never bring an event closer to dead letters.
        """
        if action is Action.BACK_OFF:
            return Step(action, self.delay(attempt, retry_after, rand), True)
        if action in (Action.RESEND_NOW, Action.SPLIT, Action.DEAD):
            return Step(action, 0.0, False)
        wait = max(retry_after or 0.0, 0.0)
        if action is not Action.PARK:  # a quota reset may be most of a day away
            wait = min(wait, self.cap_s)
        return Step(action, wait, False)

    def exhausted(self, attempts: int) -> bool:
        """Tell whether `attempts` failures use up the budget."""
        return attempts >= self.max_attempts


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds a Retry-After header asks for (delta or HTTP date), capped; None if absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
