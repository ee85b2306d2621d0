"""Keep the fake Marketo's data in a JSON file, so a standalone fake survives restarts.

Only data a real instance keeps is saved (fields, leads, activities, types, lists, folders,
campaigns, forms and what was done to them); calls, scripts, tokens and bulk jobs start afresh.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.state import LeadField

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo

logger = logging.getLogger(__name__)

FORMAT = 1
# Tables keyed by integer id (JSON turns the keys into strings) and plain lists.
_BY_ID = ("leads", "activity_types", "lists", "folders", "campaigns", "forms")
_ROWS = (
    "activities",
    "campaign_triggers",
    "merges",
    "associations",
    "form_submissions",
    "web_activity",
)


def snapshot(fake: FakeMarketo) -> dict[str, Any]:
    """Return the fake's data as a JSON-ready document."""
    with fake.lock:
        document: dict[str, Any] = {"format": FORMAT}
        document["fields"] = [dataclasses.asdict(f) for f in fake.fields.values()]
        for name in _BY_ID:
            document[name] = [_plain(row) for row in getattr(fake, name).values()]
        for name in _ROWS:
            document[name] = list(getattr(fake, name))
        document["next_ids"] = {kind: _peek(fake, kind) for kind in fake._ids}
        return json.loads(json.dumps(document))  # a deep copy that is sure to serialise


def restore(fake: FakeMarketo, document: dict[str, Any]) -> None:
    """Replace the fake's data with a snapshot's.

    :raises ValueError: the document is not a snapshot this version wrote.
    """
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a fake Marketo state file (format 1)")
    with fake.lock:
        fake.fields = {f["rest"]: LeadField(**f) for f in document["fields"]}
        for name in _BY_ID:
            setattr(fake, name, {int(row["id"]): row for row in document[name]})
        for row in fake.lists.values():
            row["members"] = set(row.get("members") or [])
        for name in _ROWS:  # a table newer than the file starts empty
            setattr(fake, name, list(document.get(name) or []))
        for kind, value in document["next_ids"].items():
            fake._ids[kind] = itertools.count(int(value))


def save(fake: FakeMarketo, path: Path) -> None:
    """Write a snapshot atomically (a crash leaves the previous file whole)."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(snapshot(fake), indent=1), encoding="utf-8")
    os.replace(partial, path)


def load(fake: FakeMarketo, path: Path) -> bool:
    """Restore from `path` if it exists; return whether it did.

    :raises ValueError: the file is not valid JSON or not a snapshot.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from exc
    restore(fake, document)
    return True


class Saver:
    """Save the fake's data every `interval` seconds while calls arrive, and once at the end."""

    def __init__(self, fake: FakeMarketo, path: Path, interval: float = 1.0) -> None:
        self.fake = fake
        self.path = path
        self.interval = interval
        self._done = threading.Event()
        self._seen = -1
        self._thread = threading.Thread(target=self._run, name="fake-marketo-saver", daemon=True)

    def start(self) -> Saver:
        """Start the background saver."""
        self._seen = self._calls()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the saver and write the final state."""
        self._done.set()
        self._thread.join(timeout=5)
        save(self.fake, self.path)

    def _calls(self) -> int:
        with self.fake._meta:
            return len(self.fake.calls)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            seen = self._calls()
            if seen != self._seen:
                self._seen = seen
                try:
                    save(self.fake, self.path)
                except OSError:
                    logger.exception("cannot save the fake Marketo's state to %s", self.path)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in row.items()}


def _peek(fake: FakeMarketo, kind: str) -> int:
    value = fake.next_id(kind)
    fake._ids[kind] = itertools.count(value)
    return value
