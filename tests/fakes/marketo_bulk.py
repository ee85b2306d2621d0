"""Bulk lead import and usage statistics of the fake Marketo."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
