"""The one validation and normalisation path every intake route uses: Segment message → Event."""

from __future__ import annotations

import json
import math
import random
import re
import time
from datetime import UTC
from datetime import datetime
from typing import Any

from app.errors import InvalidEvent
from app.outbox.store import Event

KNOWN_TYPES = frozenset({"track", "page", "identify", "alias", "group", "screen"})

# Browser beacon paths use Segment's one-letter names (analytics.js: the type's first letter).
SHORT_TYPES = {
    "p": "page",
    "t": "track",
    "i": "identify",
    "a": "alias",
    "g": "group",
    "s": "screen",
}

# SPEC §5.2: string ids (userId, anonymousId, messageId, previousId, groupId) up to 255 chars.
MAX_ID_CHARS = 255

# Munchkin cookie values are short (`id:…&token:_mch-…`); the bound keeps them sane. Event names,
# like Segment's, are bounded only by the event size: anything too long for Marketo is cut or
# dead-lettered at delivery, never refused inside a 200.
MAX_COOKIE_CHARS = 255

ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId")

# Ids, event names, cookies and keys: no control character at all (C0, DEL, C1), no NUL, no
# lone UTF-16 surrogate (valid JSON, but no UTF-8 text column, nor Marketo's API, takes one).
_BAD_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# Free text values: tab and line breaks are text; other C0 and C1 controls, NUL and lone
# surrogates are not (Marketo refuses them, and they forge log lines).
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x80-\x9f\ud800-\udfff]")

OBJECT_FIELDS = ("context", "properties", "traits", "integrations")

# One encoder for every event: json.dumps with options builds a new one per call. A message
# parsed from JSON cannot refer to itself, so the circular-reference bookkeeping is skipped
# (nesting too deep still raises RecursionError).
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode


def new_message_id() -> str:
    """Return a fresh messageId in UUIDv7 layout (RFC 9562): millisecond time first, then random.

    Time-ordered ids land at the right edge of the dedupe key's B-tree, so a commit dirties a
    handful of pages instead of one random page per event (a random uuid4 costs about 4 KiB of
    WAL per event). 74 random bits per millisecond keep ids unique across processes;
    `random` reseeds itself in every forked worker.
    """
    ms = time.time_ns() // 1_000_000
    bits = random.getrandbits(74)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0b10 << 62
    text = f"{value | (bits & 0x3FFF_FFFF_FFFF_FFFF):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _fail(code: str, message: str) -> InvalidEvent:
    return InvalidEvent(message, code=code)


def _id(item: dict[str, Any], name: str) -> str | None:
    """Normalise an id field in place: numbers become strings, empty means absent."""
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail("bad_id", f"{name} must be a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("bad_id", f"{name} must be a string")
    if not isinstance(value, str):
        value = str(value)
        item[name] = value
    if not value:
        del item[name]
        return None
    return _checked_id(name, value)


def _checked_id(name: str, value: str) -> str:
    """Return an id string within the length limit that a database column can hold.

    JSON can spell a lone UTF-16 surrogate (`"\\ud800"`) or NUL, which no UTF-8 text column
    (SQLite, PostgreSQL) stores: refused here, so the event is a 4xx and not a 500.
    """
    if len(value) > MAX_ID_CHARS:
        raise _fail("id_too_long", f"{name} is longer than {MAX_ID_CHARS} characters")
    if _BAD_NAME.search(value):
        raise _fail("bad_id", f"{name} holds a control character, NUL or a lone surrogate")
    return value


def storable_text(text: str) -> bool:
    """Tell whether a text column can hold `text`: it encodes as UTF-8 and has no NUL.

    JSON can spell lone UTF-16 surrogates (`"\\ud800"`) and NUL, which neither SQLite's nor
    PostgreSQL's text (nor itsdangerous' signing) accepts.
    """
    if text.isascii():
        return "\x00" not in text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_texts(item: dict[str, Any]) -> None:
    """Refuse an event holding text no store or Marketo takes, naming where (never the value).

    Keys and string values at any depth follow the text rule. Called only when the encoded
    event holds a `\\u`, `\\b` or `\\f` escape, which every such character is encoded as.

    :raises InvalidEvent: `bad_text`, with the dotted path of the first offending field.
    """
    try:
        where = _first_bad(item, "")
    except RecursionError as exc:
        raise _fail("bad_field", "the event is nested too deeply") from exc
    if where is not None:
        raise _fail(
            "bad_text", f"{where} holds a control character, NUL or a lone UTF-16 surrogate"
        )


def _first_bad(value: Any, path: str) -> str | None:
    """Return the path of the first bad key or string value under `value`, else None."""
    if isinstance(value, str):
        return (path or "the event") if _BAD_TEXT.search(value) else None
    if isinstance(value, dict):
        for key, child in value.items():
            if _BAD_TEXT.search(key):
                return f"a key in {path or 'the event'}"
            found = _first_bad(child, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found = _first_bad(child, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def iso_utc(moment: datetime) -> str:
    """Format a moment as ISO-8601 UTC with milliseconds, the form every stored event carries."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _is_canonical(value: str) -> bool:
    """Tell whether a string that parsed as ISO-8601 is already `YYYY-MM-DDTHH:MM:SS.mmmZ`.

    Browsers send `Date.toISOString()`, exactly this form: it is kept as it is, without
    formatting it again.
    """
    return (
        len(value) == 24
        and value[23] == "Z"
        and value[19] == "."
        and value[10] == "T"
        and value[4] == value[7] == "-"
        and value[13] == value[16] == ":"
    )


def parse_timestamp(value: Any) -> str:
    """Return an ISO-8601 timestamp normalised to UTC; a naive one is taken as UTC.

    :raises InvalidEvent: the value is not an ISO-8601 date-time string.
    """
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise _fail("bad_timestamp", "timestamp must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail("bad_timestamp", f"timestamp {value[:40]!r} is not ISO-8601") from exc
    if _is_canonical(value):
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return iso_utc(moment)
    except (OverflowError, ValueError) as exc:
        raise _fail("bad_timestamp", "timestamp is out of range") from exc


def event_time(
    item: dict[str, Any], key_kind: str, received_at: float, received_iso: str, sent_at: Any
) -> str:
    """Return when the event happened, as Segment defines it.

    The client's time is `timestamp`, else `originalTimestamp` (rudder-sdk-node sends only that),
    else the receive time. A device clock is corrected by the client's `sentAt`: time =
    receivedAt − (sentAt − client time), never later than receivedAt. A `timestamp` a server key
    sent is taken as it is (Segment does the same: back-end clocks are right, and SDKs resend a
    stale sentAt on retry); a browser's, or an `originalTimestamp`, is corrected. The client's
    own reading is kept in `originalTimestamp`.

    :raises InvalidEvent: a time given is not ISO-8601.
    """
    given = item.get("timestamp")
    original = given if given is not None else item.get("originalTimestamp")
    if original is None:
        return received_iso
    client = parse_timestamp(original)
    if sent_at is None or (given is not None and key_kind != "browser"):
        return client
    skew = _moment(parse_timestamp(sent_at)) - _moment(client)
    item.setdefault("originalTimestamp", client)
    corrected = min(received_at - skew.total_seconds(), received_at)
    try:
        return iso_utc(datetime.fromtimestamp(corrected, UTC))
    except (OverflowError, OSError, ValueError) as exc:
        raise _fail("bad_timestamp", "timestamp is out of range") from exc


def _moment(iso: str) -> datetime:
    """Parse a timestamp `parse_timestamp` returned (always UTC)."""
    moment = datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _marketo_cookie(context: dict[str, Any]) -> None:
    """Put the `_mkto_trk` value at context.Marketo.marketoCookie wherever the client sent it."""
    marketo = context.get("Marketo")
    if marketo is not None and not isinstance(marketo, dict):
        raise _fail("bad_field", "context.Marketo must be an object")
    cookie = (marketo or {}).get("marketoCookie")
    if cookie is None:
        cookie = context.pop("marketoCookie", None)
        if cookie is None:
            return
    if not isinstance(cookie, str) or len(cookie) > MAX_COOKIE_CHARS:
        raise _fail("bad_field", "the Marketo cookie must be a string of at most 255 characters")
    if _BAD_NAME.search(cookie):
        raise _fail("bad_field", "the Marketo cookie holds a control character or bad Unicode")
    if marketo is None:
        marketo = context["Marketo"] = {}
    marketo["marketoCookie"] = cookie


def normalise(
    item: Any,
    *,
    route_type: str | None,
    key_id: str,
    key_kind: str,
    received_at: float,
    received_iso: str,
    max_event_bytes: int,
    sent_at: Any = None,
) -> Event:
    """Check one message against SPEC §5.2 and return it as an Event (payload serialised once).

    `route_type` is the type the route implies (None for batch items, which carry their own);
    `sent_at` is the batch's `sentAt`, used when the item has none.

    :raises InvalidEvent: the message breaks a rule; `code` names which.
    """
    if not isinstance(item, dict):
        raise _fail("not_an_object", "each event must be a JSON object")
    item.pop("writeKey", None)
    kind = route_type or item.get("type")
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        raise _fail("unknown_type", f"type must be one of {', '.join(sorted(KNOWN_TYPES))}")
    item["type"] = kind
    for name in OBJECT_FIELDS:
        value = item.get(name)
        if value is None:
            item.pop(name, None)
        elif not isinstance(value, dict):
            raise _fail("bad_field", f"{name} must be an object")
    user_id = _id(item, "userId")
    anonymous_id = _id(item, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise _fail("missing_id", "userId or anonymousId is required")
    previous_id = _id(item, "previousId")
    group_id = _id(item, "groupId")
    if kind == "track":
        name = item.get("event")
        if not isinstance(name, str) or not name:
            raise _fail("missing_event", "track needs an event name")
        if _BAD_NAME.search(name):
            raise _fail("bad_event", "event name holds a control character or bad Unicode")
    elif kind == "alias" and previous_id is None:
        raise _fail("missing_previous_id", "alias needs a previousId")
    elif kind == "group" and group_id is None:
        raise _fail("missing_group_id", "group needs a groupId")
    message_id = item.get("messageId")
    if message_id is None or message_id == "":
        message_id = item["messageId"] = new_message_id()
    elif not isinstance(message_id, str):
        raise _fail("bad_id", "messageId must be a string")
    else:
        _checked_id("messageId", message_id)
    timestamp = item["timestamp"] = event_time(
        item, key_kind, received_at, received_iso, sent_at=item.get("sentAt", sent_at)
    )
    item["receivedAt"] = received_iso
    context = item.get("context")
    if context is not None:
        _marketo_cookie(context)
    try:
        text = _encode(item)
    except (ValueError, RecursionError) as exc:  # NaN, Infinity, or nesting too deep
        raise _fail("bad_field", "the event cannot be stored as JSON") from exc
    if len(text) > max_event_bytes:  # ASCII-only output: characters are bytes
        raise _fail("event_too_large", f"the event is over {max_event_bytes} bytes")
    if "\\u" in text or "\\b" in text or "\\f" in text:  # else no control, NUL, surrogate
        _check_texts(item)
    return Event(
        message_id, kind, key_id, key_kind, received_at, timestamp, user_id, anonymous_id, item,
        text,
    )  # fmt: skip
