"""The console's pages and actions: sign-in, overview, live events, dead letters, install."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import abort
from flask import current_app
from flask import redirect
from flask import render_template
from flask import request
from flask import send_from_directory
from flask import session
from flask import url_for
from werkzeug.wrappers import Response

from app.browser.loader import render_snippet
from app.console import console
from app.console.auth import safe_next
from app.console.auth import sign_in_allowed
from app.console.auth import start_session
from app.console.present import attempts_view
from app.console.present import blank
from app.console.present import chart
from app.console.present import hint_for
from app.console.present import iso
from app.console.present import payload_text
from app.http import current_settings
from app.ops.status import build_status
from app.outbox import get_store
from app.outbox.recent import ALL_STATES
from app.settings import Settings
from app.settings import SettingsFileError
from app.settings import masked
from app.settings import settings_holder
from app.settings import validate

log = logging.getLogger(__name__)

#: Query-string names of the live-event filters and the store filter each maps to.
EVENT_FILTERS = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "email": "email",
    "messageId": "message_id",
    "state": "state",
}
#: Rows the live events and dead-letter lists show.
PAGE_ROWS = 50


def _secrets(settings: Settings) -> list[str]:
    """Return the settings' secret values, longest first, so pages can blank them out."""
    values = [settings.client_secret, settings.secret_key, settings.api_private_key]
    return sorted({v for v in values if v and len(v) >= 6}, key=len, reverse=True)


def _source(settings: Settings, key_id: str) -> str:
    key = settings.key_by_id(key_id)
    return (key.label or key.id) if key is not None else key_id or "—"


def _row(stored: Any, settings: Settings) -> dict[str, Any]:
    """Return what a table row shows of one stored event."""
    payload = stored.event.payload
    name = payload.get("event") or payload.get("name") or ""
    return {
        "id": stored.id,
        "time": iso(stored.event.received_at),
        "kind": stored.event.source_kind,
        "source": _source(settings, stored.event.source_key_id),
        "type": stored.event.type,
        "name": name if isinstance(name, str) else str(name),
        "state": stored.state.value,
        "reason": stored.reason or "",
        "user_id": stored.event.user_id or "",
        "anonymous_id": stored.event.anonymous_id or "",
        "lead_id": stored.lead_id,
    }


@console.get("/assets/<name>")
def asset(name: str) -> Response:
    """Serve the console's stylesheet and script (no inline code: the CSP forbids it)."""
    if name not in ("console.css", "console.js"):
        abort(404)
    return send_from_directory(console.root_path + "/static", name, max_age=300)


@console.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | str:
    """Ask for an admin key; only `flask keys create --kind admin` secrets open a session."""
    error = None
    status = 200
    if request.method == "POST":
        wait = sign_in_allowed()
        if wait > 0:
            error, status = f"Too many attempts; try again in {int(wait) + 1} s.", 429
        else:
            key = current_settings().admin_key(request.form.get("key", "").strip())
            if key is not None:
                start_session(key.id)
                return redirect(safe_next(request.form.get("next")))
            error, status = "That is not an admin key.", 403
    return render_template(
        "console/sign_in.html", error=error, next=request.values.get("next", "")
    ), status


@console.post("/sign-out")
def sign_out() -> Response:
    """End the session."""
    session.clear()
    return redirect(url_for("console.sign_in"))


@console.get("/")
def overview() -> str:
    """Outbox counts, Marketo budget and pause state, and the last hour per minute."""
    now = time.time()
    status = build_status(current_app, now)
    activity = get_store(current_app).activity(now - 3600)
    template = "console/overview_body.html" if request.args.get("part") else "console/overview.html"
    return render_template(
        template,
        outbox=status.get("outbox", {}),
        marketo=status.get("marketo") or {},
        chart=chart(activity, now),
    )


@console.get("/events")
def events() -> str:
    """The latest events, newest first, filtered by visitor, messageId or state."""
    filters = {
        store_name: request.args.get(arg, "").strip()[:200]
        for arg, store_name in EVENT_FILTERS.items()
    }
    if filters["state"] and filters["state"] not in ALL_STATES:
        abort(400, description=f"state must be one of {', '.join(ALL_STATES)}")
    settings = current_settings()
    # A messageId is unique per source key: look it up under every key, revoked ones aside.
    keys = [k.id for k in settings.keys]
    rows = [_row(s, settings) for s in get_store(current_app).recent(filters, PAGE_ROWS, keys)]
    template = "console/event_rows.html" if request.args.get("rows") else "console/events.html"
    return render_template(
        template,
        rows=rows,
        args={arg: filters[name] for arg, name in EVENT_FILTERS.items()},
        states=ALL_STATES,
    )


@console.get("/events/<int:event_id>")
def event(event_id: int) -> str:
    """One event: its masked payload, state, reason, detail and attempts."""
    stored = get_store(current_app).get(event_id)
    if stored is None or stored.event.type == "placeholder":
        abort(404, description="no such event (it may have been compacted)")
    settings = current_settings()
    secrets = _secrets(settings)
    return render_template(
        "console/event.html",
        row=_row(stored, settings),
        stored=stored,
        attempts=attempts_view(stored.history, get_store(current_app), secrets),
        payload=payload_text(stored.event.payload, secrets),
        detail=blank(stored.detail or "", secrets),
        updated=iso(stored.updated_at),
        next_attempt=iso(stored.next_attempt_at),
        hint=hint_for(stored.reason) if stored.state.value == "dead" else None,
    )


@console.get("/dead-letters")
def dead_letters() -> str:
    """Dead letters grouped by reason with a fix hint, and the newest of them."""
    store = get_store(current_app)
    reason = request.args.get("reason") or None
    groups = [
        {"reason": r, "count": n, "hint": hint_for(r)}
        for r, n in sorted(store.counts(time.time())["dead"].items(), key=lambda item: -item[1])
    ]
    settings = current_settings()
    rows = [_row(s, settings) for s in store.dead_letters(reason, limit=PAGE_ROWS)]
    return render_template("console/dead_letters.html", groups=groups, rows=rows, reason=reason)


@console.post("/dead-letters/<action>")
def dead_letter_action(action: str) -> Response | str:
    """Replay or purge one dead letter or a reason's; the first POST asks to confirm."""
    if action not in ("replay", "purge"):
        abort(404)
    raw_id = request.form.get("id", "").strip()
    reason = request.form.get("reason", "").strip() or None
    if raw_id and not raw_id.isdigit():
        abort(400, description="id must be an event id")
    ids = [int(raw_id)] if raw_id else None
    every = request.form.get("all") == "yes" and ids is None and reason is None
    if ids is None and reason is None and not every:
        abort(400, description="name one dead letter (id), a reason, or all")
    if request.form.get("confirm") != "yes":
        return render_template(
            "console/confirm.html", action=action, id=raw_id, reason=reason, every=every
        )
    store = get_store(current_app)
    if action == "replay":
        n = store.replay(ids, None if ids else reason, time.time())
    else:
        n = store.purge(ids, None if ids else reason)
    log.info("console %s: %d dead letter(s) (id=%s reason=%s)", action, n, raw_id, reason)
    session["flash"] = f"{'Replayed' if action == 'replay' else 'Purged'} {n} dead letter(s)."
    return redirect(url_for("console.dead_letters"))


@console.get("/install")
def install() -> str:
    """Per browser key, the `<script>` snippet to paste into a site's <head>."""
    settings = current_settings()
    gateway_url = settings.public_url or request.host_url.rstrip("/")
    keys = [
        {
            "id": k.id,
            "label": k.label,
            "origins": ", ".join(k.allowed_origins),
            "snippet": render_snippet(gateway_url, k),
        }
        for k in settings.keys
        if k.kind == "browser"
    ]
    holder = settings_holder(current_app)
    try:
        raw = holder.raw()
        problems = holder.public(validate(raw))
        shown = json.dumps(masked(raw), indent=2, sort_keys=True, default=str)
    except SettingsFileError as exc:
        problems, shown = holder.public([str(exc)]), ""
    return render_template(
        "console/install.html",
        keys=keys,
        gateway_url=gateway_url,
        problems=problems,
        settings_text=blank(shown, _secrets(settings)),
        credentials=settings.has_credentials,
    )
