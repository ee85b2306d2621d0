"""The gateway's one version: the package (pyproject reads it), `/healthz` and `flask gateway
version` use it, and the browser library's VERSION in static/gateway.js must equal it (a test
checks), so an operator can tell which release a site, a node or a wheel runs."""

from __future__ import annotations

__version__ = "0.2.0"
