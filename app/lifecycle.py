"""Closing an app's resources in order: the worker thread first, then the stores it uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EXTENSION = "closers"


def on_close(app: Any, closer: Callable[[], None], *, first: bool = False) -> None:
    """Register `closer` to run when the app is closed (`first` puts it ahead of the others)."""
    closers = app.extensions.setdefault(EXTENSION, [])
    if first:
        closers.insert(0, closer)
    else:
        closers.append(closer)


def close(app: Any) -> None:
    """Run every registered closer once, in order (tests and graceful shutdown)."""
    closers = app.extensions.get(EXTENSION, [])
    while closers:
        closers.pop(0)()
