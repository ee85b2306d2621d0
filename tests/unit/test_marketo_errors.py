"""The code → class table and record-level reasons."""

from __future__ import annotations

import pytest

from app.delivery.outcomes import failed
from app.errors import GatewayError
from app.marketo.errors import HTTP_CLASSES
from app.marketo.errors import RECORD_DEAD
from app.marketo.errors import RECORD_LEAD_MISSING
from app.marketo.errors import RECORD_OK
from app.marketo.errors import RECORD_RETRY
from app.marketo.errors import QuotaExhausted
from app.marketo.errors import RateLimited
from app.marketo.errors import RequestRejected
from app.marketo.errors import Retryable
from app.marketo.errors import TimedOut
from app.marketo.errors import TokenInvalid
from app.marketo.errors import TooLarge
from app.marketo.errors import Transient
from app.marketo.errors import classify
from app.marketo.errors import record_class
from app.marketo.errors import record_error
from app.marketo.errors import record_reasons


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("601", TokenInvalid),
        ("602", TokenInvalid),
        ("606", RateLimited),
        ("615", RateLimited),
        ("607", QuotaExhausted),
        ("500", Transient),
        ("604", TimedOut),
        ("608", Transient),
        ("611", Transient),
        ("614", Transient),
        ("713", Transient),
        ("603", RequestRejected),
        ("609", RequestRejected),
        ("1003", RequestRejected),
        ("999", RequestRejected),
    ],
)
def test_codes_map_to_policy_classes(code: str, cls: type) -> None:
    """Each response-level code lands in its policy class; unknown codes are permanent."""
    error = classify(code, "message", request_id="r1")
    assert type(error) is cls
    assert isinstance(error, GatewayError)
    assert error.reason == f"marketo_{code}"
    assert error.request_id == "r1"


def test_rate_limits_carry_a_pause() -> None:
    """606 pauses for the window, 615 only until calls drain."""
    assert classify("606", "x").retry_after == 20.0
    assert classify("615", "x").retry_after < 20.0
    assert isinstance(classify("615", "x"), Retryable)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"status": "skipped", "reasons": [{"code": "1006", "message": "Field"}]}, "1006"),
        ({"status": "skipped", "errors": [{"code": "1004", "message": "Lead"}]}, "1004"),
        ({"status": "skipped", "reason": {"code": "1007", "message": "Many"}}, "1007"),
        ({"status": "skipped"}, ""),
    ],
)
def test_skip_reasons_are_read_from_every_place_marketo_puts_them(row, expected) -> None:
    """reasons, then errors (activities), then the singular reason."""
    assert record_reasons(row)[0]["code"] == expected


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("1004", "Lead not found", RECORD_LEAD_MISSING),
        ("1005", "Lead already exists", RECORD_OK),
        ("1015", "Lead not in list", RECORD_OK),
        ("1014", "Failed to create", RECORD_RETRY),
        ("1029", "Too many jobs in queue", RECORD_RETRY),
        ("1029", "Export daily quota exceeded", RECORD_DEAD),
        ("1006", "Field not found", RECORD_DEAD),
        ("1001", "Invalid value", RECORD_DEAD),
    ],
)
def test_record_classes(code: str, message: str, expected: str) -> None:
    """Record-level codes decide success, retry, re-resolution or dead letter."""
    assert record_class([{"code": code, "message": message}]) == expected


def test_record_error_keeps_all_reasons() -> None:
    """A rejected record keeps Marketo's reasons for the operator."""
    reasons = [{"code": "1006", "message": "Field 'x' not found"}]
    error = record_error(reasons)
    assert error.reasons == reasons and error.reason == "marketo_1006"


def test_413_and_604_sit_in_their_policy_branches() -> None:
    """413 is a rejected request (reshape, then E); 604 is transient (B) with its own class."""
    assert issubclass(TooLarge, RequestRejected) and not issubclass(TooLarge, Retryable)
    assert issubclass(TimedOut, Transient)
    assert HTTP_CLASSES[413] is TooLarge
    error = classify("604", "Request timed out")
    assert isinstance(error, TimedOut) and error.reason == "marketo_604" and error.records is None


def test_failed_413_is_a_retry_the_dispatcher_can_split() -> None:
    """A 413's outcome keeps its error, so the dispatcher can resend in halves."""
    outcome = failed(TooLarge("HTTP 413", marketo_code="413", records=40))
    assert outcome.status == "retry" and outcome.reason == "marketo_413"
    assert isinstance(outcome.error, TooLarge) and outcome.error.records == 40
    assert failed(RequestRejected("HTTP 400", marketo_code="400")).status == "dead"
