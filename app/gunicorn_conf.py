"""The gunicorn settings the gateway ships: `gunicorn -c python:app.gunicorn_conf wsgi:app`.

The repository's top-level gunicorn.conf.py imports this, so `gunicorn wsgi:app` run from the
repository root uses it too. Every value can be overridden on the command line or through
GUNICORN_CMD_ARGS. It binds to loopback: the documented setup puts nginx in front
(deploy/nginx/gateway.conf), which absorbs slow clients that gthread workers cannot.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from gunicorn.glogging import Logger

from app.logsafe import install

bind = [os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_THREADS", "16"))
graceful_timeout = 10
keepalive = 5

accesslog = "-"
errorlog = "-"
# No %(u)s (the server key is the Basic user name), no query string (the loader's `k=`), no
# referer (a page URL can carry anything): method, path, protocol, status, size, time, agent.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'

# Query parameters whose value is a key or credential, masked wherever a query is logged.
_SECRET_PARAMS = re.compile(
    r"((?:^|[?&])(?:k|writekey|key|token|access_token|password)=)[^&]*", re.IGNORECASE
)


def mask_query(text: str) -> str:
    """Return a URL or query string with key and credential values masked."""
    return _SECRET_PARAMS.sub(r"\1***", text)


class GatewayLogger(Logger):
    """Gunicorn's logger with escaped lines and no credential in any access-log atom."""

    def setup(self, cfg: Any) -> None:
        """Set gunicorn's handlers up, escape what they write, and route the app's logs there."""
        super().setup(cfg)
        install(self.error_log.handlers + self.access_log.handlers)
        root = logging.getLogger()
        for handler in self.error_log.handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(logging.INFO)

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        """Return gunicorn's atoms with the user name dropped and keys in URLs masked."""
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["u"] = "-"
        atoms["r"] = mask_query(str(atoms.get("r", "")))
        atoms["q"] = mask_query(str(atoms.get("q") or ""))
        atoms["f"] = mask_query(str(atoms.get("f", "-")))
        for name in ("{authorization}i", "{cookie}i", "{http_authorization}e"):
            if name in atoms:
                atoms[name] = "***"
        return atoms


logger_class = GatewayLogger
