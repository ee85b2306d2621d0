"""The names Marketo knows (lead fields, activity types, attributes), read from its describe calls.

`config map-event`, `map-field` and `config set` check a mapping against these names before they
write it, so a typo is refused with the names that exist instead of dead-lettering events later
(`marketo_1006`). The answers are cached in the shared state for a few minutes, and a name not
found in a cached answer is looked up once more in a fresh one (it may have just been created).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from typing import Any
from typing import Protocol

from app.marketo.client import MarketoClient

# Describe answers change when someone edits the Marketo schema: rarely, and then a miss refetches.
DESCRIBE_TTL_S = 600.0

# Close matches named first in a refusal ("did you mean").
CLOSE_MATCHES = 3


class DescribeCache(Protocol):
    """Where describe answers are kept between commands (the shared state)."""

    def put_cached(self, name: str, value: Any, now: float) -> None:
        """Keep a JSON value under `name`."""

    def get_cached(self, name: str, max_age: float, now: float) -> Any | None:
        """Return the value under `name` if younger than `max_age`."""


class MarketoNames:
    """Lead fields and activity types of one instance, cached, refetched once on a miss."""

    def __init__(
        self,
        client: MarketoClient,
        cache: DescribeCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.cache = cache
        self.clock = clock
        self._prefix = f"{client.settings.rest_base_url}|"

    def _get(self, name: str, fetch: Callable[[], Any], fresh: bool) -> Any:
        key = self._prefix + name
        if self.cache is not None and not fresh:
            kept = self.cache.get_cached(key, DESCRIBE_TTL_S, self.clock())
            if kept is not None:
                return kept
        value = fetch()
        if self.cache is not None:
            self.cache.put_cached(key, value, self.clock())
        return value

    def lead_fields(self, fresh: bool = False) -> dict[str, Any]:
        """Return describe2's answer: `fields` and `searchableFields`."""
        return self._get("describe2", self.client.describe2, fresh)

    def activity_types(self, fresh: bool = False) -> list[dict[str, Any]]:
        """Return the custom activity types."""
        return self._get("activity_types", self.client.activity_types, fresh)

    def activity_type(self, api_name: str, fresh: bool = False) -> dict[str, Any]:
        """Return one activity type's describe answer (its attributes)."""
        return self._get(
            f"type:{api_name}", lambda: self.client.describe_activity_type(api_name), fresh
        )


def listed(wanted: str, names: list[str], what: str) -> str:
    """Return ` (did you mean: x; <what>: a, b, c)`, naming close matches first."""
    names = sorted(set(names), key=str.lower)
    close = difflib.get_close_matches(wanted, names, n=CLOSE_MATCHES, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return f" ({hint}{what}: {', '.join(names) if names else 'none'})"
