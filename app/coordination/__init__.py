"""State that every thread and process of a gateway shares about Marketo, in the outbox database.

The call budget (sliding window, calls in flight, pause, daily count), the access token, the
identity → lead cache, the last traits sent per lead and the cookies already associated.
`state.py` is the protocol; `sqlite.py` and `postgres.py` implement it side by side with the SQL
they share in `sql.py`; `gate.py` hands out call slots from it.
"""

from __future__ import annotations

from pathlib import Path

from app.coordination.state import SharedState


def open_shared(store_url: str, base_dir: Path) -> SharedState:
    """Open the shared state in the same database as the outbox the URL names."""
    if store_url.startswith(("postgresql://", "postgres://")):
        from app.coordination.postgres import PostgresSharedState

        return PostgresSharedState(store_url)
    from app.coordination.sqlite import SqliteSharedState
    from app.outbox.sqlite_sql import path_from_url

    return SqliteSharedState(str(path_from_url(store_url, base_dir)))
