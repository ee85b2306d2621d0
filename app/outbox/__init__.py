"""Placeholder for the outbox subsystem; its owner replaces this module."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register nothing yet."""
