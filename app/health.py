"""Liveness and readiness probes; subsystems add readiness checks through `add_readiness_check`."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import has_request_context
from flask import jsonify

from app.settings import settings_holder
from app.version import __version__

bp = Blueprint("health", __name__)

# A readiness check returns None when healthy, or a sentence saying what is wrong.
ReadinessCheck = Callable[[], "str | None"]


def add_readiness_check(app: Flask, name: str, check: ReadinessCheck) -> None:
    """Register a named check that /readyz runs on every call."""
    app.extensions.setdefault("readiness_checks", {})[name] = check


def _settings_check() -> str | None:
    """Name what is wrong with the settings file, without its path (/readyz is reachable by
    anyone who can reach the gateway; `flask status` and the log name the file)."""
    return settings_holder(current_app).problem(public=True)


def _settings_status(app: Flask) -> dict:
    """The settings section of the status document; the file's path only outside a request."""
    return settings_holder(app).status(public=has_request_context())


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process is up, naming the version it runs."""
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/readyz")
def readyz():
    """Answer 200 when every readiness check passes, else 503 naming the failures."""
    failures = {}
    for name, check in current_app.extensions.get("readiness_checks", {}).items():
        try:
            problem = check()
        except Exception as exc:  # a probe must answer, whatever the check raised
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            failures[name] = problem
    body = {"status": "ready" if not failures else "not_ready", "failures": failures}
    return jsonify(body), (200 if not failures else 503)


def init_app(app: Flask) -> None:
    """Register the probes and the settings readiness check."""
    app.register_blueprint(bp)
    add_readiness_check(app, "settings", _settings_check)
    app.extensions.setdefault("status_providers", {})["settings"] = lambda: _settings_status(app)
