"""The status document `flask status --json` prints and `GET /v1/status` serves (SPEC §4)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from app.errors import GatewayError
from app.outbox import get_store

log = logging.getLogger(__name__)

StatusProvider = Callable[[], dict[str, Any]]


def add_status_provider(app: Flask, name: str, provider: StatusProvider) -> None:
    """Register a callable whose dict is merged into the status document's top level."""
    app.extensions.setdefault("status_providers", {})[name] = provider


def build_status(app: Flask, now: float | None = None) -> dict[str, Any]:
    """Return outbox counts plus every registered provider's figures (e.g. `marketo`).

    A provider that fails is reported under its name as `{"error": ...}` rather than hiding the
    rest of the status.
    """
    now = time.time() if now is None else now
    status: dict[str, Any] = {"outbox": get_store(app).counts(now)}
    for name, provider in app.extensions.get("status_providers", {}).items():
        try:
            status.update(provider())
        except GatewayError as exc:
            status[name] = {"error": exc.message}
        except Exception as exc:  # one broken provider must not hide the others
            log.exception("status provider %s failed", name)
            status[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return status


def format_status(status: dict[str, Any]) -> list[str]:
    """Render the status document as lines for a terminal."""
    outbox = status.get("outbox", {})
    lines = [
        "outbox",
        f"  pending     {outbox.get('pending', 0)}"
        f" (oldest {outbox.get('oldest_pending_s', 0.0):.0f}s)",
        f"  held        {outbox.get('held', 0)}",
        f"  in_flight   {outbox.get('in_flight', 0)}",
        f"  delivered   {outbox.get('delivered', 0)}",
    ]
    for state in ("dropped", "dead"):
        reasons = outbox.get(state) or {}
        lines.append(f"  {state:<11} {sum(reasons.values())}")
        lines.extend(f"    {reason:<30} {n}" for reason, n in sorted(reasons.items()))
    for section, values in status.items():
        if section == "outbox":
            continue
        lines.append(section)
        if isinstance(values, dict):
            lines.extend(f"  {name:<18} {_shown(value)}" for name, value in values.items())
        else:
            lines.append(f"  {values}")
    return lines


def _shown(value: Any) -> str:
    """Render one status value for a terminal: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)
