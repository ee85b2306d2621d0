"""Lead operations beyond sync of the fake Marketo: associate, merge, push, submitForm, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from app.devtools.fake_marketo.leads import COOKIE_RE
from app.devtools.fake_marketo.leads import MAX_RECORDS
from app.devtools.fake_marketo.leads import check_lookup
from app.devtools.fake_marketo.leads import check_record
from app.devtools.fake_marketo.leads import cookie_token
from app.devtools.fake_marketo.leads import matches
from app.devtools.fake_marketo.leads import records_of
from app.devtools.fake_marketo.leads import update_lead
from app.devtools.fake_marketo.leads import upsert
from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import envelope
from app.devtools.fake_marketo.state import iso
from app.devtools.fake_marketo.state import skip

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo
    from app.devtools.fake_marketo.server import Req

# Merge takes at most 25 losing lead ids (1080 beyond).
MAX_MERGE_LOSERS = 25


def associate(fake: FakeMarketo, req: Req, lead_id: str) -> dict[str, Any]:
    """POST /rest/v1/leads/{id}/associate.json?cookie=: link a Munchkin cookie to a lead."""
    lead = fake.leads.get(int(lead_id))
    if lead is None:
        raise ApiError("1004", f"Lead '{lead_id}' not found")
    cookie = req.args.get("cookie") or ""
    if not COOKIE_RE.match(cookie):
        raise ApiError("1012", f"Invalid cookie value '{cookie}'")
    token = cookie_token(cookie)
    for other in fake.leads.values():
        other["cookies"] = [c for c in other["cookies"] if cookie_token(c) != token]
    lead["cookies"].append(cookie)
    fake.associations.append({"leadId": lead["id"], "cookie": cookie, "time": fake.clock.now()})
    return envelope()


def merge(fake: FakeMarketo, req: Req, lead_id: str) -> dict[str, Any]:
    """POST /rest/v1/leads/{winner}/merge.json: fold losers into the winner and delete them."""
    raw = req.args.get("leadIds") or req.args.get("leadId") or ""
    try:
        losers = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError as exc:
        raise ApiError("1003", "leadIds must be integers") from exc
    if not losers:
        raise ApiError("1003", "leadId or leadIds required")
    if len(losers) > MAX_MERGE_LOSERS:
        raise ApiError("1080", f"More than {MAX_MERGE_LOSERS} leads to merge")
    winner_id = int(lead_id)
    for candidate in [winner_id, *losers]:
        if candidate not in fake.leads:
            raise ApiError("1004", f"Lead '{candidate}' not found")
    if winner_id in losers:
        raise ApiError("1003", "Winner listed as loser")
    winner = fake.leads[winner_id]
    for loser_id in losers:
        loser = fake.leads.pop(loser_id)
        for name, value in loser.items():
            if name not in ("id", "cookies", "createdAt") and winner.get(name) in (None, ""):
                winner[name] = value
        winner["cookies"].extend(loser["cookies"])
        for static in fake.lists.values():
            if loser_id in static["members"]:
                static["members"].discard(loser_id)
                static["members"].add(winner_id)
        for activity in fake.activities:
            if activity.get("leadId") == loser_id:
                activity["leadId"] = winner_id
    winner["updatedAt"] = iso(fake.clock.now())
    fake.merges.append(
        {"winner": winner_id, "losers": losers, "mergeInCRM": req.args.get("mergeInCRM")}
    )
    return envelope()


def push(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST /rest/v1/leads/push.json: createOrUpdate by ``lookupField`` ("Push Lead")."""
    body = req.json_object()
    lookup = body.get("lookupField") or "email"
    check_lookup(fake, lookup, "createOrUpdate")
    results = []
    for index, record in enumerate(records_of(body)):
        if index in req.forced:
            results.append(skip(req.forced[index]))
        else:
            results.append(upsert(fake, record, "createOrUpdate", lookup))
    return envelope(results)


def submit_form(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST /rest/v1/leads/submitForm.json: one form fill, upsert by email, optional cookie."""
    body = req.json_object()
    records = records_of(body)
    if len(records) != 1 or not isinstance(records[0], dict):
        raise ApiError("1003", "submitForm takes exactly one input")
    if 0 in req.forced:
        return envelope([skip(req.forced[0])])
    entry = records[0]
    fields = entry.get("leadFormFields") or {}
    if not fields.get("email"):
        return envelope([skip("1003", "Value for required field 'email' not specified")])
    found = matches(fake, "email", fields["email"])
    if found:
        newest = max(found, key=lambda i: (fake.leads[i]["updatedAt"], i))
        bad = check_record(fake, fields, "updateOnly")
        if bad:
            return envelope([bad])
        update_lead(fake, newest, fields)
        row = {"id": newest, "status": "updated"}
    else:
        row = upsert(fake, fields, "createOnly", "email")
    cookie = entry.get("cookie")
    if "id" in row and cookie and COOKIE_RE.match(cookie):
        fake.leads[row["id"]]["cookies"].append(cookie)
    fake.form_submissions.append({**body, "leadId": row.get("id")})
    return envelope([row])


def delete_leads(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST /rest/v1/leads/delete.json: delete up to 300 leads by id (`{"input": [{"id"}]}`).

    Like Marketo, a JSON body or an `id` parameter (comma-separated) names them; an unknown id
    is a skipped row with 1004, not an error of the call.
    """
    if req.args.get("id"):
        try:
            ids = [int(v) for v in req.args["id"].split(",") if v.strip()]
        except ValueError as exc:
            raise ApiError("1003", "id must be integers") from exc
    else:
        records = records_of(req.json_object())
        if not all(isinstance(r, dict) and isinstance(r.get("id"), int) for r in records):
            raise ApiError("1003", "each input needs an integer id")
        ids = [r["id"] for r in records]
    if not ids:
        raise ApiError("1003", "no lead id given")
    if len(ids) > MAX_RECORDS:
        raise ApiError("1003", f"at most {MAX_RECORDS} leads per call")
    results = []
    for index, lead_id in enumerate(ids):
        if index in req.forced:
            results.append({"id": lead_id, **skip(req.forced[index])})
        elif fake.leads.pop(lead_id, None) is None:
            results.append({"id": lead_id, **skip("1004", f"Lead '{lead_id}' not found")})
        else:
            for static in fake.lists.values():
                static["members"].discard(lead_id)
            fake.deletions.append(lead_id)
            results.append({"id": lead_id, "status": "deleted"})
    return envelope(results)


ROUTES = [
    (r"/rest/v1/leads/delete\.json", {"POST": delete_leads}),
    (r"/rest/v1/leads/(?P<lead_id>\d+)/associate\.json", {"POST": associate}),
    (r"/rest/v1/leads/(?P<lead_id>\d+)/merge\.json", {"POST": merge}),
    (r"/rest/v1/leads/push\.json", {"POST": push}),
    (r"/rest/v1/leads/submitForm\.json", {"POST": submit_form}),
]
