"""Shared pieces of the fake Marketo: clock, call record, errors, envelope and fixture tables."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any

# Messages for response-level codes the fake can answer with (marketo-reference §3.2).
MESSAGES: dict[str, str] = {
    "500": "Internal server error",
    "502": "Bad Gateway",
    "600": "Access token not specified",
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request timed out",
    "605": "HTTP Method not supported",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "614": "Invalid Subscription",
    "615": "Concurrent access limit reached",
    "616": "Invalid subscription type",
    "701": "Cannot be blank",
    "702": "No data found for given search scope",
    "709": "Business rule violation",
    "710": "Parent folder not found",
    "1001": "Invalid value",
    "1002": "Missing value for required parameter",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1006": "Field not found",
    "1007": "Multiple leads match the lookup criteria",
    "1011": "Field not supported",
    "1012": "Invalid cookie value",
    "1013": "Object not found",
    "1015": "Lead not in list",
    "1016": "Too many imports",
    "1049": "Attribute exceeds 65536 bytes",
    "1080": "Too many leads to merge",
}


class FakeClock:
    """Injectable wall clock: real time by default, frozen at ``start`` when given."""

    def __init__(self, start: float | None = None) -> None:
        self._start = start
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the current epoch seconds (real time plus any advance, or the frozen value)."""
        with self._lock:
            base = time.time() if self._start is None else self._start
            return base + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (works for both real and frozen clocks)."""
        with self._lock:
            self._offset += seconds


@dataclass
class Call:
    """One HTTP request the fake received and how it answered."""

    method: str
    path: str
    query: dict[str, str]
    query_lists: dict[str, list[str]]
    headers: dict[str, str]
    json: Any
    form: dict[str, str]
    body: bytes
    time: float
    effective_method: str = ""
    status: int | None = None
    code: str | None = None
    response: Any = None
    record_codes: list[str] = field(default_factory=list)
    #: When the answer was ready (after any latency): with `time`, the span the call was open.
    ended: float | None = None


class ApiError(Exception):
    """A response-level Marketo error (HTTP 200, ``success: false``)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = str(code)
        self.message = message or MESSAGES.get(self.code, "Error")


def request_id() -> str:
    """Return a Marketo-style ``hex#hex`` request id."""
    return f"{secrets.token_hex(2)}#{int(time.time() * 1000):x}"


def envelope(result: Any = None, **extra: Any) -> dict[str, Any]:
    """Build a success envelope; ``result`` is left out when None."""
    body: dict[str, Any] = {"requestId": request_id(), "success": True}
    if result is not None:
        body["result"] = result
    body.update(extra)
    return body


def error_envelope(code: str, message: str) -> dict[str, Any]:
    """Build a failure envelope with one response-level error."""
    return {
        "requestId": request_id(),
        "success": False,
        "errors": [{"code": code, "message": message}],
    }


def skip(code: str, message: str | None = None, key: str = "reasons") -> dict[str, Any]:
    """Build a skipped record row with one reason under ``key``."""
    return {"status": "skipped", key: [{"code": code, "message": message or MESSAGES[code]}]}


def iso(ts: float) -> str:
    """Format epoch seconds as Lead DB ``2024-03-02T10:15:00Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def asset_time(ts: float) -> str:
    """Format epoch seconds as the Asset API's ``2024-03-02T10:15:00Z+0000``."""
    return iso(ts) + "+0000"


@dataclass(frozen=True)
class LeadField:
    """One row of the lead field table that describe, describe2 and validation share."""

    id: int
    rest: str
    soap: str
    display: str
    data_type: str = "string"
    length: int | None = 255
    searchable: bool = False
    read_only: bool = False


_STANDARD = [
    ("email", "Email", "Email Address", "email", True),
    ("firstName", "FirstName", "First Name", "string", False),
    ("lastName", "LastName", "Last Name", "string", False),
    ("middleName", "MiddleName", "Middle Name", "string", False),
    ("salutation", "Salutation", "Salutation", "string", False),
    ("title", "Title", "Job Title", "string", False),
    ("company", "Company", "Company Name", "string", False),
    ("website", "Website", "Website", "url", False),
    ("phone", "Phone", "Phone Number", "phone", False),
    ("mobilePhone", "MobilePhone", "Mobile Phone Number", "phone", False),
    ("address", "Address", "Address", "text", False),
    ("city", "City", "City", "string", False),
    ("state", "State", "State", "string", False),
    ("country", "Country", "Country", "string", False),
    ("postalCode", "PostalCode", "Postal Code", "string", False),
    ("billingStreet", "BillingStreet", "Billing Address", "text", False),
    ("billingCity", "BillingCity", "Billing City", "string", False),
    ("billingState", "BillingState", "Billing State", "string", False),
    ("billingCountry", "BillingCountry", "Billing Country", "string", False),
    ("billingPostalCode", "BillingPostalCode", "Billing Postal Code", "string", False),
    ("dateOfBirth", "DateofBirth", "Date of Birth", "date", False),
    ("gender", "MarketoSocialGender", "Gender", "string", False),
    ("industry", "Industry", "Industry", "string", False),
    ("numberOfEmployees", "NumberOfEmployees", "Num Employees", "integer", False),
    ("annualRevenue", "AnnualRevenue", "Annual Revenue", "currency", False),
    ("leadSource", "LeadSource", "Lead Source", "string", False),
    ("sicCode", "SICCode", "SIC Code", "string", False),
    ("linkedInId", "MarketoSocialLinkedInId", "LinkedIn Id", "string", False),
    ("twitterId", "MarketoSocialTwitterId", "Twitter Id", "string", False),
    ("facebookId", "MarketoSocialFacebookId", "Facebook Id", "string", False),
    ("unsubscribed", "Unsubscribed", "Unsubscribed", "boolean", False),
    ("leadScore", "LeadScore", "Lead Score", "integer", False),
    # Custom string fields the gateway resolves identities by.
    ("userId", "userId", "User Id", "string", True),
    ("anonymousId", "anonymousId", "Anonymous Id", "string", True),
]


def default_fields() -> dict[str, LeadField]:
    """Return the default lead field table keyed by REST name."""
    table = {
        "id": LeadField(1, "id", "Id", "Id", "integer", None, True, True),
        "createdAt": LeadField(
            2, "createdAt", "CreatedAt", "Created At", "datetime", None, False, True
        ),
        "updatedAt": LeadField(
            3, "updatedAt", "UpdatedAt", "Updated At", "datetime", None, False, True
        ),
        "cookies": LeadField(4, "cookies", "Cookies", "Cookies", "string", 255, True, True),
    }
    for number, (rest, soap, display, data_type, searchable) in enumerate(_STANDARD, start=10):
        length = 255 if data_type in ("string", "email", "url", "phone") else None
        table[rest] = LeadField(number, rest, soap, display, data_type, length, searchable)
    return table


# Standard activity types listed by activities/types.json next to the custom ones.
STANDARD_ACTIVITY_TYPES = [
    {
        "id": 1,
        "name": "Visit Webpage",
        "primaryAttribute": {"name": "Webpage ID", "dataType": "integer"},
    },
    {
        "id": 2,
        "name": "Fill Out Form",
        "primaryAttribute": {"name": "Webform ID", "dataType": "integer"},
    },
    {"id": 12, "name": "New Lead", "primaryAttribute": {"name": "Lead ID", "dataType": "integer"}},
    {
        "id": 13,
        "name": "Change Data Value",
        "primaryAttribute": {"name": "Attribute Name", "dataType": "integer"},
    },
    {
        "id": 24,
        "name": "Add to List",
        "primaryAttribute": {"name": "List ID", "dataType": "integer"},
    },
    {
        "id": 32,
        "name": "Merge Leads",
        "primaryAttribute": {"name": "Lead ID", "dataType": "integer"},
    },
]
