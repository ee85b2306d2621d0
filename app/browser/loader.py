"""Render the per-key loader (library + public config) and the snippet sites paste."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import logging
import re
from importlib.resources.abc import Traversable
from typing import Any
from typing import NamedTuple

from flask import render_template
from jinja2.utils import htmlsafe_json_dumps

from app.browser.fields import custom_field_map
from app.browser.fields import field_map
from app.browser.fields import standard_field_map
from app.settings import Settings
from app.settings import SourceKey

logger = logging.getLogger(__name__)

# The browser library's files are package data of app.browser.assets (the repo's top-level
# static/ folder, linked into the package; see static/__init__.py), read with importlib.resources
# so a checkout, an editable install and a wheel find them the same way.
ASSETS: Traversable = importlib.resources.files("app.browser.assets")
# The readable browser library, and its minified build (.ci/build-js), which is what browsers
# get while it was built from the library as it stands; the loader template wraps it with one
# key's config.
LIBRARY_PATH = ASSETS / "gateway.js"
BUILD_PATH = ASSETS / "gateway.min.js"
# The identify module (hidden form submission, associateLead), which the library loads from
# /v1/identify.js on the first identify that needs it; built the same way.
IDENTIFY_PATH = ASSETS / "gateway-identify.js"
IDENTIFY_BUILD_PATH = ASSETS / "gateway-identify.min.js"
# The TCF module (reads an IAB TCF v2 consent manager's __tcfapi), which the library loads from
# /v1/tcf.js only on pages that have one, when the site asks for consent; built the same way.
TCF_PATH = ASSETS / "gateway-tcf.js"
TCF_BUILD_PATH = ASSETS / "gateway-tcf.min.js"
# A build's first line names the SHA-256 of the source it was made from.
_BUILD_HEADER = re.compile(
    r"^// [\w-]+\.min\.js: built by \.ci/build-js from [\w-]+\.js sha256=([0-9a-f]{64})"
)

# Full-line comments and indentation: dropped when serving, kept in the readable source.
_COMMENT_LINE = re.compile(r"^\s*(//.*|/\*.*\*/)?\s*$")


def library_source(path: Traversable = LIBRARY_PATH) -> str:
    """Return the readable library as written in static/."""
    return path.read_text(encoding="utf-8")


def compact(source: str) -> str:
    """Drop full-line comments, blank lines and indentation; keep line breaks (ASI stays safe).

    This is the whole "build": no identifier renaming, so what runs in browsers is still the
    source a reviewer reads, minus whitespace.
    """
    return "\n".join(line.strip() for line in source.splitlines() if not _COMMENT_LINE.match(line))


def build_source_sha(build: str) -> str | None:
    """Return the source SHA-256 a build's header names, or None for no valid header."""
    found = _BUILD_HEADER.match(build)
    return found.group(1) if found else None


def served_library(
    source_path: Traversable = LIBRARY_PATH, build_path: Traversable = BUILD_PATH
) -> str:
    """Return the library as browsers get it: the minified build, or the compacted source.

    The build is used only while its header matches the source; a stale or missing build
    (someone edited gateway.js and has not run .ci/build-js) falls back to the compacted
    source, which behaves the same, only larger.
    """
    return _served(source_path, build_path, _mtime(source_path), _mtime(build_path))


def _mtime(path: Traversable) -> int:
    """Return the file's mtime, so an edited source is re-read; -1 when missing or in a zip."""
    try:
        return path.stat().st_mtime_ns  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return -1


@functools.lru_cache(maxsize=4)
def _served(
    source_path: Traversable, build_path: Traversable, _source_mtime: int, _build_mtime: int
) -> str:
    source = library_source(source_path)
    try:
        build = build_path.read_text(encoding="utf-8")
    except OSError:
        build = ""
    if build_source_sha(build) == hashlib.sha256(source.encode("utf-8")).hexdigest():
        return build.split("\n", 1)[1].strip()
    logger.warning("%s is missing or stale; serving the compacted source", build_path.name)
    return compact(source)


def public_config(settings: Settings, key: SourceKey, gateway_url: str) -> dict[str, Any]:
    """Return what the browser may know for this key: ids, URLs, modes, the field map; no secret.

    Munchkin options and server-side track are left out at the values the library assumes when
    they are absent: bytes every page view saves.
    """
    config: dict[str, Any] = {
        "writeKey": key.key,
        "url": gateway_url.rstrip("/"),
        "munchkinId": settings.munchkin_id,
        "munchkinScriptUrl": settings.munchkin_script_url,
        "identifyMode": settings.identify_mode,
        "formId": settings.form_id,
        "formBaseUrl": settings.form_base_url,
        # Only the site's custom traits: the standard table is the same for every site and
        # comes with the identify module, which merges the two in field_map()'s order.
        "fieldMap": custom_field_map(settings),
        "identifyVersion": identify_module().version,
    }
    if settings.munchkin_options:
        config["munchkinOptions"] = dict(settings.munchkin_options)
    if not settings.send_track_server_side:
        config["trackServerSide"] = False
    return config | consent_config(settings)


def consent_config(settings: Settings) -> dict[str, Any]:
    """Return the consent part of the public config; none for the defaults the library assumes.

    Defaults: mode `none`, `marketing` required, Global Privacy Control honoured. `tcf` names
    the TCF module's version when the site asks for consent and maps TCF purposes: the library
    then loads that module on pages with a TCF consent manager. In mode `none` the gateway
    leaves consent to the site, so a consent manager on the page is not read.
    """
    consent = settings.consent
    if (consent.mode, consent.required, consent.honor_gpc) == ("none", ("marketing",), True):
        return {}
    shown: dict[str, Any] = {
        "mode": consent.mode,
        "required": list(consent.required),
        "gpc": consent.honor_gpc,
    }
    if consent.mode != "none" and consent.tcf_purposes:
        shown["tcf"] = tcf_module(settings).version
    return {"consent": shown}


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
    # Compact JSON in the order built, since the field map's order is its precedence (the
    # library takes the first non-empty trait per field: standard names, then Segment's
    # aliases, then custom traits); HTML-safe like |tojson, so a pasted inline copy cannot
    # close a <script> element.
    config = htmlsafe_json_dumps(
        public_config(settings, key, gateway_url), sort_keys=False, separators=(",", ":")
    )
    return render_template("loader.js.j2", config=config, library=served_library())


class Module(NamedTuple):
    """An on-demand module as served (`/v1/identify.js`, `/v1/tcf.js`), with its ETag and the
    version the loader links to."""

    body: str
    etag: str

    @property
    def version(self) -> str:
        """Return the short hash the loader puts in the module's URL (`?v=`)."""
        return self.etag[:12]


def identify_module() -> Module:
    """Return the identify module wrapped with the standard field table, and its ETag.

    The same for every key and site (no config, no secret), so browsers may keep it as long as
    its version, which the loader names in the URL, stays the same. Built and hashed once per
    library build, not per loader request.
    """
    return _identify_module(served_library(IDENTIFY_PATH, IDENTIFY_BUILD_PATH))


@functools.lru_cache(maxsize=2)
def _identify_module(module: str) -> Module:
    return _wrapped("identify", "STANDARD_FIELDS", standard_field_map(), module)


def tcf_module(settings: Settings) -> Module:
    """Return the TCF module wrapped with the site's category -> TCF purposes map, and its ETag.

    The map is the same for every key of a gateway, so is the module; its version changes with
    the map, and the loader (cached for minutes, not a year) names the new one.
    """
    purposes = {name: list(ids) for name, ids in settings.consent.tcf_purposes.items()}
    built = served_library(TCF_PATH, TCF_BUILD_PATH)
    return _tcf_module(built, json.dumps(purposes, separators=(",", ":")))


@functools.lru_cache(maxsize=4)
def _tcf_module(module: str, purposes: str) -> Module:
    return _wrapped("TCF", "TCF_PURPOSES", json.loads(purposes), module)


def _wrapped(label: str, name: str, value: Any, module: str) -> Module:
    """Wrap a module's code in a function whose parameter `name` holds `value`, as JSON."""
    data = htmlsafe_json_dumps(value, sort_keys=False, separators=(",", ":"))
    body = (
        f"/* marketo-gateway {label} module; public: never a secret */\n"
        f"(function ({name}) {{\n{module}\n}})({data});\n"
    )
    return Module(body, etag_for(body))


def etag_for(body: str) -> str:
    """Return a strong ETag for a rendered loader."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def loader_url(gateway_url: str, key: SourceKey) -> str:
    """Return the loader's URL for a key."""
    return f"{gateway_url.rstrip('/')}/v1/loader.js?k={key.key}"


def render_snippet(gateway_url: str, key: SourceKey) -> str:
    """Render the async `<script>` snippet for a page's `<head>` (needs an app context)."""
    return render_template("snippet.html.j2", loader_url=loader_url(gateway_url, key))
