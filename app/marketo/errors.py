"""Marketo failures as one exception tree whose classes are the gateway's retry classes.

This module alone maps Marketo codes to classes (marketo-reference §3); everything else branches
on the class, never on the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from app.errors import GatewayError
from app.retry import Action


class MarketoError(GatewayError):
    """A Marketo call failed; `marketo_code` is Marketo's code (or the HTTP status) as a string.

    `records` is how many records the failed call carried (its `input` or filter values), when
    the client could tell; the dispatcher sizes smaller calls from it after a 413 or 604.
    """

    action = Action.DEAD

    status = 502
    code = "marketo_error"

    def __init__(
        self,
        message: str,
        *,
        marketo_code: str = "",
        request_id: str | None = None,
        records: int | None = None,
    ) -> None:
        super().__init__(message)
        self.marketo_code = marketo_code
        self.request_id = request_id
        self.records = records

    @property
    def reason(self) -> str:
        """Return the short dead-letter reason for this failure (`marketo_1006`)."""
        return f"marketo_{self.marketo_code}" if self.marketo_code else "marketo_error"


class Retryable(MarketoError):
    """The same request may succeed later."""

    action = Action.BACK_OFF


class TokenInvalid(Retryable):
    """601/602: the access token is invalid or expired; refresh it and retry at once."""

    action = Action.RESEND_NOW


class RateLimited(Retryable):
    """606/615 (or HTTP 429): the instance's rate or concurrency limit was hit."""

    action = Action.PAUSE_ALL

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class LimiterBusy(RateLimited):
    """The gateway's own shared budget has no call to spare soon; Marketo was not asked."""

    action = Action.WAIT


class QuotaExhausted(Retryable):
    """607: the daily quota is spent; nothing can be sent before `resets_at` (epoch seconds)."""

    action = Action.PARK

    def __init__(self, message: str, *, resets_at: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.resets_at = resets_at


class Transient(Retryable):
    """5xx, timeouts, connection errors, 604/608/611...: back off and retry.

    `maybe_applied` is true when the request left and the answer was lost (read timeout), so a
    replay relies on upsert semantics; `retry_after` is a server-given floor, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_applied: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied


class TimedOut(Transient):
    """604: Marketo gave up on the call; back off (charged) and send fewer records per call."""


class Busy(Retryable):
    """Another worker is resolving leads right now; try again shortly, without charge."""

    action = Action.WAIT

    def __init__(self, message: str, *, retry_after: float = 1.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class LeadMoved(Retryable):
    """1004 on a cached lead id: the lead was merged or deleted; re-resolve and resend at once."""

    action = Action.RESEND_NOW


class QueueFull(Retryable):
    """1016/1029 from the bulk import endpoint: the import queue is full; wait, resubmit."""

    action = Action.WAIT

    def __init__(self, message: str, *, retry_after: float = 60.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Permanent(MarketoError):
    """Sending the same request again cannot succeed."""


class RequestRejected(Permanent):
    """The whole request was refused (bad field, access denied, malformed, too large)."""


class TooLarge(RequestRejected):
    """HTTP 413: the body passed Marketo's limit (class F, reshape).

    Sent as is it can never succeed, but the same records can in smaller calls: the dispatcher
    halves the call, uncharged, down to a lone record, which is dead-lettered (`marketo_413`).
    """

    action = Action.SPLIT


class CredentialsRejected(MarketoError):
    """The identity endpoint refused the client id/secret: pause dispatch and alert, never loop.

    Neither retryable nor permanent for the events: they wait, uncharged, for an operator.
    """

    action = Action.HOLD


class RecordRejected(Permanent):
    """One record was skipped; `reasons` are Marketo's `[{code, message}]` for it."""

    def __init__(self, message: str, *, reasons: Sequence[Mapping[str, Any]], **kwargs: Any):
        super().__init__(message, **kwargs)
        self.reasons = list(reasons)


# Response-level codes (errors[] with success:false) → class. Unknown codes are permanent.
CODE_CLASSES: dict[str, type[MarketoError]] = {
    "500": Transient,  # internal error
    "502": Transient,  # bad gateway, usually a timeout upstream
    "601": TokenInvalid,
    "602": TokenInvalid,
    "604": TimedOut,  # request timed out: retry with half the batch
    "606": RateLimited,  # more than 100 calls in 20 s
    "607": QuotaExhausted,  # daily quota reached
    "608": Transient,  # API temporarily unavailable
    "611": Transient,  # system error
    "614": Transient,  # invalid subscription, typically a temporary outage
    "615": RateLimited,  # more than 10 concurrent calls
    "713": Transient,  # transient error
    "719": Transient,  # lock wait timeout
    "1016": QueueFull,  # too many imports queued (bulk import)
    "1029": QueueFull,  # too many jobs in the queue (bulk import)
}

# HTTP statuses (below 500, other than 401 and 429) with a class of their own; other 4xx are
# RequestRejected.
HTTP_CLASSES: dict[int, type[MarketoError]] = {
    413: TooLarge,  # body over 1 MB: split the batch
}

# How long a 606 pauses the limiter when Marketo gives no hint: the window is 20 s.
WINDOW_PAUSE_S = 20.0
# How long a 615 pauses the limiter: long enough for in-flight calls to drain.
CONCURRENCY_PAUSE_S = 2.0


def classify(
    code: str, message: str, *, request_id: str | None = None, resets_at: float | None = None
) -> MarketoError:
    """Return the exception for a response-level Marketo error code."""
    cls = CODE_CLASSES.get(str(code), RequestRejected)
    text = f"Marketo {code}: {message}"
    common: dict[str, Any] = {"marketo_code": str(code), "request_id": request_id}
    if cls is RateLimited:
        pause = WINDOW_PAUSE_S if str(code) == "606" else CONCURRENCY_PAUSE_S
        return RateLimited(text, retry_after=pause, **common)
    if cls is QuotaExhausted:
        return QuotaExhausted(text, resets_at=resets_at, **common)
    return cls(text, **common)


# Record-level outcomes (result[i].reasons / errors, marketo-reference §3.3).
RECORD_OK = "ok"  # the desired end state
RECORD_RETRY = "retry"  # transient; send again later
RECORD_LEAD_MISSING = "lead_missing"  # 1004: evict the cached lead id and re-resolve once
RECORD_DEAD = "dead"  # no retry; dead-letter with the code

RECORD_CLASSES: dict[str, str] = {
    "1004": RECORD_LEAD_MISSING,
    "1005": RECORD_OK,  # lead already exists: fine when the intent is "ensure it exists"
    "1015": RECORD_OK,  # lead not in list, on remove
    "1017": RECORD_OK,  # object already exists
    "1014": RECORD_RETRY,  # create failed
    "1016": RECORD_RETRY,  # too many imports queued
    "1019": RECORD_RETRY,  # import in progress
    "1022": RECORD_RETRY,  # object in use
    "1029": RECORD_RETRY,  # too many jobs queued (export quota text is handled below)
}


def record_reasons(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return a skipped row's reasons, read from `reasons`, else `errors`, else `reason`."""
    found = row.get("reasons") or row.get("errors") or row.get("reason") or []
    if isinstance(found, Mapping):
        found = [found]
    out = []
    for item in found:
        if isinstance(item, Mapping):
            out.append({"code": str(item.get("code", "")), "message": str(item.get("message", ""))})
        else:
            out.append({"code": "", "message": str(item)})
    return out or [{"code": "", "message": "skipped without a reason"}]


def record_class(reasons: Sequence[Mapping[str, str]]) -> str:
    """Return what to do with a skipped record, judged by its first reason."""
    first = reasons[0] if reasons else {"code": "", "message": ""}
    code = str(first.get("code", ""))
    if code == "1029" and "export daily quota" in str(first.get("message", "")).lower():
        return RECORD_DEAD
    return RECORD_CLASSES.get(code, RECORD_DEAD)


def record_error(reasons: Sequence[Mapping[str, str]]) -> RecordRejected:
    """Return the exception describing a skipped record (reason `marketo_<code>`)."""
    first = reasons[0] if reasons else {"code": "", "message": ""}
    code = str(first.get("code", ""))
    return RecordRejected(
        f"Marketo {code}: {first.get('message', '')}", reasons=reasons, marketo_code=code
    )
