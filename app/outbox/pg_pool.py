"""PostgreSQL plumbing shared by the store and the shared state: URL options and the pool."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import psycopg
from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout

from app.errors import ServiceUnavailable
from app.settings.redact import passwords_in
from app.settings.redact import redact
from app.settings.redact import scrub

logger = logging.getLogger(__name__)

# Connections each gateway process keeps open. Web threads share commits (group commit) and the
# dispatcher uses a few, so a handful serves a busy node; N nodes x pool_max must stay below the
# server's max_connections (100 by default).
DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 8

# How long a caller waits for a free pooled connection before the store raises.
POOL_TIMEOUT_S = 10.0

# Our own options carried in the store URL's query string; psycopg would reject them.
POOL_OPTIONS = ("pool_min", "pool_max")


def split_url(url: str) -> tuple[str, dict[str, int]]:
    """Return the URL psycopg understands and our pool options taken out of its query string.

    :raises ValueError: a pool option is not a positive integer.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, int] = {}
    kept = []
    for key, value in query:
        if key in POOL_OPTIONS:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"store_url option {key} must be a positive integer")
            options[key] = int(value)
        else:
            kept.append((key, value))
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    conninfo = urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return conninfo, options


class Scrub(logging.Filter):
    """Replace known passwords in log records (psycopg's pool logs connection errors whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in sorted(self.secrets, key=len, reverse=True):
                message = message.replace(secret, "***")
            record.msg, record.args = message, ()
        return True


# One filter on psycopg's loggers; each pool adds the password of its URL.
_SCRUB = Scrub()
for _name in ("psycopg", "psycopg.pool"):
    logging.getLogger(_name).addFilter(_SCRUB)


def open_pool(url: str, name: str) -> ConnectionPool:
    """Open a connection pool for a `postgresql://` store URL and wait until it can connect.

    :raises psycopg_pool.PoolTimeout: the server did not accept a connection in time.
    """
    conninfo, options = split_url(url)
    _SCRUB.secrets.update(passwords_in(url))
    min_size = options.get("pool_min", DEFAULT_POOL_MIN)
    max_size = max(min_size, options.get("pool_max", DEFAULT_POOL_MAX))
    pool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=POOL_TIMEOUT_S,
        name=name,
        open=False,
    )
    pool.open(wait=True, timeout=POOL_TIMEOUT_S)
    logger.info("opened %s pool on %s (max %d)", name, redact(url), max_size)
    return pool


@contextmanager
def lend(pool: ConnectionPool, url: str, what: str) -> Iterator[psycopg.Connection]:
    """Lend a pooled connection for one transaction, committed on success.

    :raises ServiceUnavailable: the server cannot be reached; the message names `what` and
        carries the driver's reason with the URL's password scrubbed out.
    """
    try:
        with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise ServiceUnavailable(
            f"{what} is unavailable: {scrub(str(exc), url)}", code="store_unavailable"
        ) from exc
