"""The fake Marketo's web side: stand-in Munchkin and Forms 2.0 scripts, their posts, a demo page.

Marketo serves websites munchkin.js and forms2.min.js, takes Forms 2.0 posts at
/index.php/leadCapture/save2 and receives Munchkin's visits. The fake does the same on its own
port with scripts of our own (assets/), so a page works with no internet: a form post is a form
fill (upsert by email, the `_mkto_trk` cookie tied to the lead), a Munchkin visit is logged and
shown under the lead its cookie belongs to, and `associateLead` with a valid hash ties the cookie
as a fill does. `flask demo` also hands the fake a `DemoPage` to serve at /demo/. None of these
requests is a REST call: they are not in `calls` and count against no limit.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from app.devtools.fake_marketo import leads
from app.devtools.fake_marketo.state import iso

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo

ASSETS = Path(__file__).with_name("assets")
#: Where the scripts are served; settings point `munchkin_script_url` at the first and
#: `form_base_url` at the fake, under which Forms 2.0 always loads from the second.
MUNCHKIN_PATH = "/munchkin.js"
FORMS2_PATH = "/js/forms2/js/forms2.min.js"
SCRIPTS = {MUNCHKIN_PATH: "munchkin.js", FORMS2_PATH: "forms2.js"}
#: Where the stand-in scripts post a form fill and a Munchkin call.
FORM_POST_PATH = "/index.php/leadCapture/save2"
MUNCHKIN_POST_PATH = "/record/munchkin"
DEMO_PATH = "/demo/"
DEMO_FILES = {
    "/demo/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/demo/demo.css": ("demo.css", "text/css; charset=utf-8"),
}
DEMO_FEED_PATH = "/demo/feed.json"
# A Munchkin call is a few hundred bytes; anything far larger is not one.
MAX_MUNCHKIN_BYTES = 16 * 1024
# The demo panel shows the newest rows only, so it stays readable.
FEED_ROWS = 20
# Longest URL or field value the web log keeps.
MAX_TEXT = 300
SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.S)


@dataclass(frozen=True)
class DemoPage:
    """What the demo page needs from the gateway: its snippet, its URL and the console's."""

    snippet: str
    gateway_url: str
    console_url: str


def respond(fake: FakeMarketo, request: Request) -> Response | None:
    """Answer a web request (scripts, posts, demo page); None leaves it to the REST API."""
    path, method = request.path, request.method
    if method in ("GET", "HEAD"):
        if path in SCRIPTS:
            return _file(SCRIPTS[path], "text/javascript; charset=utf-8")
        if fake.demo_page is not None and path.startswith(DEMO_PATH):
            return _demo(fake, fake.demo_page, path)
        return None
    if method == "POST" and path == FORM_POST_PATH:
        return _form_post(fake, request)
    if method == "POST" and path == MUNCHKIN_POST_PATH:
        return _munchkin_post(fake, request)
    return None


def fill_form(fake: FakeMarketo, form_fields: dict[str, str]) -> int | None:
    """Apply a public Forms 2.0 post as Marketo does: upsert by Email, tie `_mkt_trk` to it.

    `form_fields` carry SOAP names (`Email`, `FirstName`, `_mkt_trk`), as Forms 2.0 posts them;
    the fill is recorded in `form_submissions`. Returns the lead id, or None without email.
    """
    with fake.lock:
        lead_id = _apply(fake, form_fields, form_fields.get("_mkt_trk"))
        if lead_id is not None:
            fake.form_submissions.append({"fields": dict(form_fields), "leadId": lead_id})
            _log(fake, "Fill Out Form", f"form {form_fields.get('formid') or '?'}", lead_id)
        return lead_id


def record_munchkin(fake: FakeMarketo, call: dict[str, Any]) -> None:
    """Log a Munchkin visit; apply `associateLead` when its hash is SHA-1(private key + email)."""
    cookie = call.get("cookie") if isinstance(call.get("cookie"), str) else None
    cookie = cookie if cookie and leads.COOKIE_RE.match(cookie) else None
    data = call.get("data") if isinstance(call.get("data"), dict) else {}
    with fake.lock:
        if call.get("fn") == "visitWebPage":
            params = f"?{data['params']}" if data.get("params") else ""
            _log(fake, "Visit Web Page", f"{data.get('url') or ''}{params}", None, cookie)
        elif call.get("fn") == "associateLead":
            email = str(data.get("Email") or "")
            expected = hashlib.sha1((fake.private_key + email).encode()).hexdigest()
            if email and call.get("hash") == expected:
                fields = {k: str(v) for k, v in data.items() if isinstance(v, str | int | float)}
                lead_id = _apply(fake, fields, cookie)
                _log(fake, "Munchkin associateLead", email, lead_id)


def feed(fake: FakeMarketo) -> dict[str, Any]:
    """Return what the demo panel shows: the newest leads and one activity log, newest first.

    The log merges the REST activities the gateway wrote with the web log (visits, form fills);
    a visit shows the lead its cookie belongs to now, as Marketo merges anonymous history.
    """
    with fake.lock:
        types = {t["id"]: t for t in fake.activity_types.values()}
        rows = [_rest_activity(a, types) for a in fake.activities[-FEED_ROWS:]]
        for entry in fake.web_activity[-FEED_ROWS:]:
            lead_id = entry.get("leadId")
            if lead_id is None and entry.get("cookie"):
                found = leads.matches(fake, "cookies", entry["cookie"])
                lead_id = found[0] if found else None
            rows.append({**_shown(entry), "leadId": lead_id})
        rows.sort(key=lambda row: row["at"], reverse=True)
        newest = sorted(fake.leads.values(), key=lambda lead: lead["id"])[-FEED_ROWS:]
        return {
            "leads": [
                {
                    "id": lead["id"],
                    "email": lead.get("email"),
                    "firstName": lead.get("firstName"),
                    "lastName": lead.get("lastName"),
                    "cookies": len(lead.get("cookies") or []),
                    "updatedAt": lead.get("updatedAt"),
                }
                for lead in reversed(newest)
            ],
            "activities": [{k: v for k, v in row.items() if k != "at"} for row in rows[:FEED_ROWS]],
            "totals": {"leads": len(fake.leads), "activities": len(fake.activities)},
        }


def _apply(fake: FakeMarketo, form_fields: dict[str, str], cookie: str | None) -> int | None:
    by_soap = {f.soap: f.rest for f in fake.fields.values()}
    rest = {by_soap[k]: v for k, v in form_fields.items() if k in by_soap and v != ""}
    if not rest.get("email"):
        return None
    found = leads.matches(fake, "email", rest["email"])
    if found:
        lead_id = max(found, key=lambda i: (fake.leads[i]["updatedAt"], i))
        leads.update_lead(fake, lead_id, rest)
    else:
        lead_id = leads.create_lead(fake, rest)
    if cookie and cookie not in fake.leads[lead_id]["cookies"]:
        for other in fake.leads.values():
            if cookie in other["cookies"]:
                other["cookies"].remove(cookie)
        fake.leads[lead_id]["cookies"].append(cookie)
    return lead_id


def _log(
    fake: FakeMarketo, kind: str, detail: str, lead_id: int | None, cookie: str | None = None
) -> None:
    entry = {"time": fake.clock.now(), "type": kind, "detail": detail[:MAX_TEXT]}
    fake.web_activity.append({**entry, "leadId": lead_id, "cookie": cookie})


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": entry["time"],
        "time": iso(entry["time"]),
        "type": entry["type"],
        "detail": entry["detail"],
    }


def _rest_activity(activity: dict[str, Any], types: dict[int, dict[str, Any]]) -> dict[str, Any]:
    kind = types.get(activity.get("activityTypeId"), {})
    primary = (kind.get("primaryAttribute") or {}).get("apiName") or "value"
    detail = [f"{primary}: {activity.get('primaryAttributeValue')}"]
    for attribute in activity.get("attributes") or []:
        name = attribute.get("apiName") or attribute.get("name")
        detail.append(f"{name}: {attribute.get('value')}")
    when = leads.parse_datetime(activity.get("activityDate"))
    at = when.timestamp() if when is not None else 0.0
    return {
        "at": at,
        "time": iso(at),
        "type": kind.get("name") or str(activity.get("activityTypeId")),
        "detail": ", ".join(detail)[:MAX_TEXT],
        "leadId": activity.get("leadId"),
    }


def _file(name: str, content_type: str) -> Response:
    response = Response((ASSETS / name).read_bytes(), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def _form_post(fake: FakeMarketo, request: Request) -> Response:
    fields = {k: v[:MAX_TEXT] for k, v in request.form.items()}
    fill_form(fake, fields)
    answer = {"formId": fields.get("formid"), "followUpUrl": request.referrer or request.host_url}
    response = Response(json.dumps(answer), content_type="application/json")
    # Sites on other origins post here too (the page's fetch reads the answer).
    response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
    return response


def _munchkin_post(fake: FakeMarketo, request: Request) -> Response:
    if (request.content_length or 0) <= MAX_MUNCHKIN_BYTES:
        try:
            call = json.loads(request.get_data(cache=False) or b"null")
        except ValueError:
            call = None
        if isinstance(call, dict):
            record_munchkin(fake, call)
    return Response(status=204)


def _demo(fake: FakeMarketo, page: DemoPage, path: str) -> Response:
    if path in DEMO_FILES:
        return _file(*DEMO_FILES[path])
    if path == DEMO_FEED_PATH:
        response = Response(json.dumps(feed(fake)), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response
    if path != DEMO_PATH:
        return Response("not found", status=404, content_type="text/plain")
    text = (ASSETS / "demo.html").read_text(encoding="utf-8")
    for name, value in (("GATEWAY_URL", page.gateway_url), ("CONSOLE_URL", page.console_url)):
        text = text.replace(f"{{{{ {name} }}}}", html.escape(value))
    text = text.replace("{{ SNIPPET }}", page.snippet)
    response = Response(text, content_type="text/html; charset=utf-8")
    response.headers.update(_page_headers(fake, page))
    return response


def _page_headers(fake: FakeMarketo, page: DemoPage) -> dict[str, str]:
    """A strict CSP a real site could use: the snippet by hash, the gateway and the fake."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in SCRIPT_RE.findall(page.snippet)
    )
    gateway, own = _origin(page.gateway_url), _origin(fake.url)
    policy = (
        f"default-src 'none'; script-src 'self' {own} {gateway} {hashes};"
        f" connect-src 'self' {own} {gateway}; style-src 'self'; img-src 'self' data:;"
        " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return {"Content-Security-Policy": policy, "Cache-Control": "no-store"}


def _origin(url: str) -> str:
    found = re.match(r"^https?://[^/]+", url)
    return found.group(0) if found else "'none'"
