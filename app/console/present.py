"""What the console pages show, computed without Flask: the chart, masked payloads, fix hints."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any

MASK = "••••••"

# Payload keys whose values the console never shows (case-insensitive, anywhere in the name).
SECRET_NAME = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api_?key|cookie|ssn", re.I)

#: Series the chart draws, with their colour (the CSS legend uses the same names).
SERIES = (
    ("received", "#4a6fa5"),
    ("delivered", "#2e8b57"),
    ("dropped", "#c98a00"),
    ("dead", "#c0392b"),
)

#: What to do about each dead-letter reason (README, Troubleshooting).
HINTS = {
    "marketo_1006": "A mapped field or attribute does not exist in Marketo: fix the mapping"
    " (flask config map-event / map-field), then replay.",
    "marketo_1004": "The lead was not found in Marketo (deleted or merged): check the lead,"
    " then replay.",
    "marketo_1003": "Marketo refused the values (bad format or a required field missing):"
    " correct the mapping or the sender, then replay.",
    "marketo_413": "The request was too large for Marketo: trim the event's properties,"
    " then replay.",
    "bad_property_type": "A property did not fit the declared attribute type: fix the type in"
    " the mapping or the sender, then replay.",
    "retries_exhausted": "Delivery failed on every attempt (Marketo errors or timeouts): see the"
    " last error on the overview, fix the cause, then replay.",
}
DEFAULT_HINT = "Read the detail of one event below, fix the cause, then replay the reason."


def hint_for(reason: str | None) -> str:
    """Return the fix hint for a dead-letter reason."""
    if reason in HINTS:
        return HINTS[reason]
    if reason and reason.startswith("marketo_"):
        return f"Marketo answered code {reason[8:]}: look the code up in Marketo's error list."
    return DEFAULT_HINT


def iso(ts: float | None) -> str:
    """Return an epoch time as a short UTC text for tables."""
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def mask_payload(value: Any, secrets: list[str]) -> Any:
    """Return a copy with secret-named keys masked and any known secret value blanked out."""
    if isinstance(value, dict):
        return {
            k: MASK
            if SECRET_NAME.search(str(k)) and v not in (None, "")
            else mask_payload(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_payload(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
    return value


def attempts_view(
    history: Sequence[Mapping[str, Any]], store: Any, secrets: list[str]
) -> list[dict[str, Any]]:
    """Return an event's attempts, newest first, each with the Marketo calls of its batch.

    A call's message is Marketo's (or a transport error's); known secret values are blanked
    out anyway, as on every console page.
    """
    batches = [str(h["batch"]) for h in history if h.get("batch")]
    calls = store.calls(batches) if batches else {}
    shown = []
    for entry in reversed(history):
        made = calls.get(str(entry.get("batch")), []) if entry.get("batch") else []
        shown.append(
            {
                "time": iso(entry.get("at")),
                "outcome": entry.get("outcome", ""),
                "reason": entry.get("reason") or "",
                "lead_id": entry.get("lead_id"),
                "calls": [
                    {
                        "time": iso(c.at),
                        "call": f"{c.method} {c.endpoint}",
                        "status": c.status,
                        "code": c.code or "",
                        "message": blank(c.message or "", secrets),
                        "ms": c.ms,
                        "records": c.records if c.records is not None else "",
                    }
                    for c in made
                ],
            }
        )
    return shown


def blank(text: str, secrets: list[str]) -> str:
    """Return `text` with every known secret value masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def payload_text(payload: dict[str, Any], secrets: list[str]) -> str:
    """Return the masked payload as indented JSON for the event page."""
    return json.dumps(mask_payload(payload, secrets), indent=2, sort_keys=True, default=str)


@dataclass(frozen=True)
class Chart:
    """An inline SVG line chart: one polyline per series over per-minute buckets."""

    width: int
    height: int
    lines: list[dict[str, Any]]
    y_max: int
    x_labels: list[dict[str, Any]]
    totals: dict[str, int]


def chart(series: dict[str, dict[int, int]], now: float, minutes: int = 60) -> Chart:
    """Lay out the last `minutes` minutes of counts as SVG coordinates (oldest on the left)."""
    width, height, pad = 720, 200, 30
    last = int(now // 60)
    buckets = list(range(last - minutes + 1, last + 1))
    y_max = max([1, *(series.get(name, {}).get(m, 0) for name, _ in SERIES for m in buckets)])
    step = (width - 2 * pad) / max(1, minutes - 1)

    def point(i: int, n: int) -> str:
        return f"{pad + i * step:.1f},{height - pad - n * (height - 2 * pad) / y_max:.1f}"

    lines = [
        {
            "name": name,
            "colour": colour,
            "points": " ".join(
                point(i, series.get(name, {}).get(m, 0)) for i, m in enumerate(buckets)
            ),
        }
        for name, colour in SERIES
    ]
    x_labels = [
        {
            "x": round(pad + i * step, 1),
            "text": datetime.fromtimestamp(m * 60, UTC).strftime("%H:%M"),
        }
        for i, m in enumerate(buckets)
        if i % 15 == 0 or i == minutes - 1
    ]
    totals = {name: sum(series.get(name, {}).get(m, 0) for m in buckets) for name, _ in SERIES}
    return Chart(width, height, lines, y_max, x_labels, totals)
