"""Backoff policy and Retry-After parsing: pure, with no clock or randomness of their own."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

#: The longest a server-given Retry-After may park a caller (SPEC §6.7 caps backoff at 10 min).
MAX_RETRY_AFTER_S = 600.0


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
