"""The fake Marketo instance: its data, limits, test controls and the server thread."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from app.devtools.fake_marketo import activities
from app.devtools.fake_marketo import bulk
from app.devtools.fake_marketo import lead_ops
from app.devtools.fake_marketo import leads
from app.devtools.fake_marketo import lists
from app.devtools.fake_marketo import web
from app.devtools.fake_marketo.fixtures import load_fixtures
from app.devtools.fake_marketo.server import MAX_BODY_BYTES
from app.devtools.fake_marketo.server import FakeApp
from app.devtools.fake_marketo.server import new_token
from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import Call
from app.devtools.fake_marketo.state import FakeClock
from app.devtools.fake_marketo.state import LeadField
from app.devtools.fake_marketo.state import default_fields
from app.devtools.fake_marketo.state import iso

__all__ = ["Call", "FakeClock", "FakeMarketo"]

logger = logging.getLogger(__name__)

# Marketo's rate limit counts calls over a rolling 20-second window.
WINDOW_SECONDS = 20.0

ROUTES = leads.ROUTES + lead_ops.ROUTES + activities.ROUTES + lists.ROUTES + bulk.ROUTES


class _QuietHandler(WSGIRequestHandler):
    """Request handler that keeps werkzeug's per-request log lines out of test output."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class FakeMarketo:
    """An in-memory Marketo instance served over real HTTP on 127.0.0.1."""

    def __init__(
        self,
        *,
        munchkin_id: str = "123-ABC-456",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        clock: FakeClock | None = None,
        calls_per_20s: int = 100,
        concurrency: int = 10,
        daily_quota: int = 50000,
        token_ttl: int = 3600,
        quota_tz: str = "America/Chicago",
        private_key: str = "munchkin-private-key",
        port: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        self.munchkin_id = munchkin_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock or FakeClock()
        self.calls_per_20s = calls_per_20s
        self.concurrency = concurrency
        self.daily_quota = daily_quota
        self.token_ttl = token_ttl
        self.quota_tz = ZoneInfo(quota_tz)
        self.private_key = private_key
        self.port = port
        # Seconds every REST call (token included) waits before it is handled, like a real
        # instance's round trip; calls overlap, so in-flight counts show the caller's concurrency.
        self.latency_s = latency_s
        # Switches for behaviour the reference marks as unconfirmed.
        self.allow_query_token = False
        self.unknown_field_code = "1006"
        self.activity_skip_key = "errors"
        self.bulk_stage_seconds = 5.0
        # Fault switches: answer HTTP 413 to REST bodies over this many bytes (Marketo: 1 MB),
        # and 604 "Request timed out" to calls whose JSON `input` holds more records than this.
        self.max_body_bytes = MAX_BODY_BYTES
        self.timeout_above_records: int | None = None
        # Benchmarks sending many large calls can turn off keeping raw bodies in ``calls``.
        self.keep_bodies = True
        self.url = ""
        # The demo page served at /demo/ (`web.DemoPage`), when `flask demo` gives it one.
        self.demo_page: web.DemoPage | None = None
        self.lock = threading.RLock()
        self._meta = threading.Lock()
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._tokens: dict[str, dict[str, Any]] = {}
        self._current_token: str | None = None
        self._reset_counters()
        self._load_fixtures()

    # ----------------------------------------------------------------- lifecycle
    def start(self, port: int | None = None) -> FakeMarketo:
        """Start serving on 127.0.0.1 (ephemeral port unless given) in a daemon thread."""
        self._stopping.clear()
        app = FakeApp(self, ROUTES)
        self._server = make_server(
            "127.0.0.1",
            self.port if port is None else port,
            app,
            threaded=True,
            request_handler=_QuietHandler,
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-marketo",
            daemon=True,
        )
        self._thread.start()
        logger.info("fake Marketo listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests are released and their connections dropped."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeMarketo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- test controls
    def calls_to(self, path_suffix: str) -> list[Call]:
        """Return recorded calls whose path ends with ``path_suffix``."""
        with self._meta:
            return [call for call in self.calls if call.path.endswith(path_suffix)]

    def script(self, path_suffix: str, *outcomes: dict[str, Any]) -> None:
        """Queue outcomes for the next requests whose path ends with ``path_suffix``.

        Outcomes, consumed one per request in order (longest matching suffix first):
        ``{"code": "606"}`` (``"message"`` optional), ``{"http_status": 503}`` (``"body"``,
        ``"headers"`` optional), ``{"delay": 0.5}`` then normal handling, ``{"wait_for": event}``
        (a ``threading.Event``; blocks in flight until set), ``{"hang": True}``, ``{"drop": True}``,
        ``{"cut": True}`` (a 200 whose body stops halfway, then the connection drops); ``"method"``
        (e.g. ``"POST"``) keeps an outcome for requests of that method,
        ``{"record_errors": {0: "1004"}}``. Delay and wait combine with the others.
        """
        with self._meta:
            self._scripts.setdefault(path_suffix, collections.deque()).extend(outcomes)

    def expire_token(self) -> None:
        """Expire the current token now: its next use answers 602, later uses 601."""
        with self._meta:
            if self._current_token:
                self._tokens[self._current_token]["expires_at"] = self.clock.now()

    def reset(self, reset_data: bool = False) -> None:
        """Clear calls, scripts and counters; also restore the fixture data if asked."""
        self._reset_counters()
        if reset_data:
            with self.lock:
                self._load_fixtures()

    def counted_calls_today(self) -> int:
        """Return calls counted against today's quota (day in ``quota_tz``)."""
        with self._meta:
            return self._daily[self._day(self.clock.now())]

    def summary(self) -> dict[str, Any]:
        """Return the JSON summary served at ``GET /_fake/calls``."""
        with self._meta:
            calls = list(self.calls)
            summary = {
                "total": len(calls),
                "by_path": dict(collections.Counter(c.path for c in calls)),
                "by_code": dict(collections.Counter(c.code or "ok" for c in calls)),
                "by_status": dict(collections.Counter(str(c.status) for c in calls)),
                "errors_returned": dict(self.errors_returned),
                "max_concurrency_seen": self.max_concurrency_seen,
                "counted_today": self._daily[self._day(self.clock.now())],
            }
        with self.lock:
            summary["activities"] = len(self.activities)
            summary["leads"] = len(self.leads)
        return summary

    # ----------------------------------------------------------------- data helpers
    def add_field(
        self,
        rest: str,
        data_type: str = "string",
        *,
        soap: str | None = None,
        display: str | None = None,
        searchable: bool = False,
    ) -> None:
        """Add a custom lead field to the table behind describe, validation and filters."""
        with self.lock:
            number = max(f.id for f in self.fields.values()) + 1
            length = 255 if data_type in ("string", "email", "url", "phone") else None
            self.fields[rest] = LeadField(
                number, rest, soap or rest, display or rest, data_type, length, searchable
            )

    def add_lead(self, **fields: Any) -> int:
        """Create a lead directly (no call recorded) and return its id."""
        with self.lock:
            return leads.create_lead(self, fields)

    def fill_form(self, form_fields: dict[str, str]) -> int | None:
        """Apply a public Forms 2.0 post as Marketo does (see `web.fill_form`); the lead id."""
        return web.fill_form(self, form_fields)

    def add_activity_type(
        self,
        id: int,
        api_name: str,
        *,
        name: str | None = None,
        primary: tuple[str, str] = ("pname", "string"),
        attributes: tuple[tuple[str, ...], ...] = (("attr", "string"),),
        status: str = "approved",
    ) -> None:
        """Define a custom activity type; attributes are (apiName, dataType[, name]) tuples."""
        with self.lock:
            activities.define_type(self, id, api_name, name, primary, attributes, status)

    def add_list(self, name: str, folder_id: int = 31) -> int:
        """Create a static list in a folder and return its id."""
        with self.lock:
            return lists.create_list(self, name, folder_id)

    def add_form(self, id: int, name: str, *, status: str = "approved") -> None:
        """Define a Forms 2.0 form asset (the one background identify submits)."""
        with self.lock:
            self.forms[id] = {"id": id, "name": name, "status": status, "folder": {"id": 31}}

    def add_campaign(
        self, id: int, name: str, *, kind: str = "trigger", requestable: bool = True
    ) -> None:
        """Define a smart campaign; only requestable trigger campaigns accept trigger.json."""
        with self.lock:
            self.campaigns[id] = {
                "id": id,
                "name": name,
                "type": kind,
                "isRequestable": requestable,
                "isActive": True,
                "programId": 1001,
                "createdAt": iso(self.clock.now()),
            }

    def _load_fixtures(self) -> None:
        self.fields: dict[str, LeadField] = default_fields()
        self.leads: dict[int, dict[str, Any]] = {}
        self.activities: list[dict[str, Any]] = []
        self.activity_types: dict[int, dict[str, Any]] = {}
        self.lists: dict[int, dict[str, Any]] = {}
        self.folders: dict[int, dict[str, Any]] = {}
        self.campaigns: dict[int, dict[str, Any]] = {}
        self.forms: dict[int, dict[str, Any]] = {}
        self.campaign_triggers: list[dict[str, Any]] = []
        self.bulk_jobs: dict[int, dict[str, Any]] = {}
        self.merges: list[dict[str, Any]] = []
        self.deletions: list[int] = []
        self.associations: list[dict[str, Any]] = []
        self.form_submissions: list[dict[str, Any]] = []
        # Munchkin visits, form fills and associateLead calls the web side received.
        self.web_activity: list[dict[str, Any]] = []
        self._ids = {
            "lead": itertools.count(1),
            "activity": itertools.count(1),
            "list": itertools.count(1001),
            "folder": itertools.count(100),
            "bulk": itertools.count(3501),
        }
        self.bulk_slots = [0.0, 0.0]
        load_fixtures(self)

    def next_id(self, kind: str) -> int:
        """Return the next id for ``kind`` (lead, activity, list, folder, bulk)."""
        return next(self._ids[kind])

    # ----------------------------------------------------------------- internals used by the app
    def _reset_counters(self) -> None:
        with self._meta:
            self.calls: list[Call] = []
            self._scripts: dict[str, collections.deque[dict[str, Any]]] = {}
            self.errors_returned: collections.Counter[str] = collections.Counter()
            self.record_errors_returned: collections.Counter[str] = collections.Counter()
            self.http_errors: collections.Counter[int] = collections.Counter()
            self.max_concurrency_seen = 0
            self.in_flight = getattr(self, "in_flight", 0)
            self._window: collections.deque[float] = collections.deque()
            self._daily: collections.Counter[str] = collections.Counter()

    def _day(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.quota_tz).date().isoformat()

    def _append_call(self, call: Call) -> None:
        with self._meta:
            self.calls.append(call)

    def _count_outcome(self, call: Call) -> None:
        with self._meta:
            if call.code:
                self.errors_returned[call.code] += 1
            if call.status and call.status >= 400:
                self.http_errors[call.status] += 1
            self.record_errors_returned.update(call.record_codes)

    def _pop_script(self, path: str, method: str | None = None) -> dict[str, Any] | None:
        with self._meta:
            keys = [k for k, queue in self._scripts.items() if queue and path.endswith(k)]
            if not keys:
                return None
            queue = self._scripts[max(keys, key=len)]
            wanted = queue[0].get("method")
            if wanted and method and str(wanted).upper() != method.upper():
                return None  # meant for another method on this path (GET vs POST /leads.json)
            return queue.popleft()

    def _enter(self) -> int:
        with self._meta:
            self.in_flight += 1
            self.max_concurrency_seen = max(self.max_concurrency_seen, self.in_flight)
            return self.in_flight

    def _leave(self) -> None:
        with self._meta:
            self.in_flight -= 1

    def _check_concurrency(self, level: int) -> None:
        if level > self.concurrency:
            raise ApiError("615")

    def _issue_token(self) -> tuple[str, int]:
        with self._meta:
            now = self.clock.now()
            current = self._tokens.get(self._current_token or "")
            if current is None or current["expires_at"] <= now:
                self._current_token = new_token()
                current = {"expires_at": now + self.token_ttl, "reported": False}
                self._tokens[self._current_token] = current
            return self._current_token, max(0, int(current["expires_at"] - now))

    def _check_token(self, token: str) -> None:
        with self._meta:
            entry = self._tokens.get(token)
            if entry is None:
                raise ApiError("601")
            if self.clock.now() >= entry["expires_at"]:
                if not entry["reported"]:
                    entry["reported"] = True
                    raise ApiError("602")
                raise ApiError("601")

    def _reserve(self) -> tuple[float, str]:
        with self._meta:
            now = self.clock.now()
            while self._window and self._window[0] <= now - WINDOW_SECONDS:
                self._window.popleft()
            if len(self._window) >= self.calls_per_20s:
                raise ApiError(
                    "606", f"Max rate limit '{self.calls_per_20s}' exceeded with in '20' secs"
                )
            day = self._day(now)
            if self._daily[day] >= self.daily_quota:
                raise ApiError("607")
            self._window.append(now)
            self._daily[day] += 1
            return now, day

    def _release(self, reservation: tuple[float, str]) -> None:
        now, day = reservation
        with self._meta:
            try:
                self._window.remove(now)
            except ValueError:
                pass
            self._daily[day] -= 1

    def _usage_counts(self) -> dict[str, int]:
        with self._meta:
            return dict(self._daily)
