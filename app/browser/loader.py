"""Render the per-key loader (library + public config) and the snippet sites paste."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from flask import render_template
from jinja2.utils import htmlsafe_json_dumps

from app.browser.fields import field_map
from app.settings import Settings
from app.settings import SourceKey

# The readable browser library; the loader template wraps it with one key's config.
LIBRARY_PATH = Path(__file__).resolve().parents[2] / "static" / "gateway.js"

# Full-line comments and indentation: dropped when serving, kept in the readable source.
_COMMENT_LINE = re.compile(r"^\s*(//.*|/\*.*\*/)?\s*$")


def library_source(path: Path = LIBRARY_PATH) -> str:
    """Return the readable library as written in static/."""
    return path.read_text(encoding="utf-8")


def compact(source: str) -> str:
    """Drop full-line comments, blank lines and indentation; keep line breaks (ASI stays safe).

    This is the whole "build": no identifier renaming, so what runs in browsers is still the
    source a reviewer reads, minus whitespace.
    """
    return "\n".join(line.strip() for line in source.splitlines() if not _COMMENT_LINE.match(line))


def public_config(settings: Settings, key: SourceKey, gateway_url: str) -> dict[str, Any]:
    """Return what the browser may know for this key: ids, URLs, modes, the field map; no secret."""
    return {
        "writeKey": key.key,
        "url": gateway_url.rstrip("/"),
        "munchkinId": settings.munchkin_id,
        "munchkinScriptUrl": settings.munchkin_script_url,
        "munchkinOptions": dict(settings.munchkin_options),
        "identifyMode": settings.identify_mode,
        "formId": settings.form_id,
        "formBaseUrl": settings.form_base_url,
        "fieldMap": field_map(settings),
        "trackServerSide": settings.send_track_server_side,
    }


def form_config(settings: Settings) -> dict[str, Any]:
    """Return the background-submission config for sites that submit Forms 2.0 themselves."""
    return {
        "munchkinId": settings.munchkin_id,
        "formBaseUrl": settings.form_base_url,
        "formId": settings.form_id,
        "identifyMode": settings.identify_mode,
        "fieldMap": field_map(settings),
    }


def render_loader(settings: Settings, key: SourceKey, gateway_url: str) -> str:
    """Render `GET /v1/loader.js` for one browser key (needs an app context)."""
    # Compact JSON, keys sorted as |tojson would (the field map's order is its precedence), and
    # HTML-safe like |tojson, so a pasted inline copy cannot close a <script> element.
    config = htmlsafe_json_dumps(
        public_config(settings, key, gateway_url), sort_keys=True, separators=(",", ":")
    )
    return render_template("loader.js.j2", config=config, library=compact(library_source()))


def etag_for(body: str) -> str:
    """Return a strong ETag for a rendered loader."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def loader_url(gateway_url: str, key: SourceKey) -> str:
    """Return the loader's URL for a key."""
    return f"{gateway_url.rstrip('/')}/v1/loader.js?k={key.key}"


def render_snippet(gateway_url: str, key: SourceKey) -> str:
    """Render the async `<script>` snippet for a page's `<head>` (needs an app context)."""
    return render_template("snippet.html.j2", loader_url=loader_url(gateway_url, key))
