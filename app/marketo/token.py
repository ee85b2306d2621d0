"""The access token as a value, so token stores (the shared state) need not import the client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """A cached access token."""

    value: str
    expires_at: float
    fetched_at: float
