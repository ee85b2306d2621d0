"""Gunicorn picks this file up when run from the repository root; the settings live in app/."""

from app.gunicorn_conf import *  # noqa: F403
