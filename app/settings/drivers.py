"""Optional database drivers: tell whether the one a store URL needs is installed."""

from __future__ import annotations

import importlib.util

# The PostgreSQL store's driver is an optional extra, so SQLite deployments never install it.
POSTGRES_MODULES = ("psycopg", "psycopg_pool")
POSTGRES_EXTRA_MISSING = (
    "names PostgreSQL but its driver (psycopg, psycopg-pool) is not installed: "
    "pip install 'marketo-gateway[postgres]'"
)


def postgres_installed() -> bool:
    """Tell whether the PostgreSQL driver can be imported, without importing it."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in POSTGRES_MODULES)
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return False
