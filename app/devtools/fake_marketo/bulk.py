"""Bulk lead import (clock-driven job states) and usage statistics of the fake Marketo."""

from __future__ import annotations

import csv
import io
from datetime import date
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any

from werkzeug.wrappers import Response

from app.devtools.fake_marketo.leads import check_lookup
from app.devtools.fake_marketo.lists import static_list
from app.devtools.fake_marketo.lookup_index import LookupIndex
from app.devtools.fake_marketo.state import ApiError
from app.devtools.fake_marketo.state import envelope

if TYPE_CHECKING:
    from app.devtools.fake_marketo.core import FakeMarketo
    from app.devtools.fake_marketo.server import Req

# Marketo runs at most 2 imports at once and queues at most 10 more (1016 beyond).
MAX_IMPORTING = 2
MAX_QUEUED = 10
DELIMITERS = {"csv": ",", "tsv": "\t", "ssv": ";"}
API_USER = "api-gateway@example.com"
STATUS_KEYS = (
    "batchId",
    "importId",
    "status",
    "numOfLeadsProcessed",
    "numOfRowsFailed",
    "numOfRowsWithWarning",
    "message",
)


def tick(fake: FakeMarketo) -> None:
    """Advance every job to where the clock says it is (Queued → Importing → Complete)."""
    now, stage = fake.clock.now(), fake.bulk_stage_seconds
    changed = True
    while changed:
        changed = False
        for job in fake.bulk_jobs.values():
            if job["status"] == "Importing" and job["ends_at"] <= now:
                run_import(fake, job)
                changed = True
        queued = [j for j in fake.bulk_jobs.values() if j["status"] == "Queued"]
        if queued:
            job = min(queued, key=lambda j: j["batchId"])
            slot = min(range(MAX_IMPORTING), key=lambda i: fake.bulk_slots[i])
            start = max(job["queued_at"] + stage, fake.bulk_slots[slot])
            if start <= now:
                job.update(status="Importing", ends_at=start + stage, message="Import in progress")
                fake.bulk_slots[slot] = start + stage
                changed = True


def run_import(fake: FakeMarketo, job: dict[str, Any]) -> None:
    """Apply the job's rows as upserts and fill its counts, failures and warnings."""
    reader = csv.DictReader(io.StringIO(job.pop("text")), delimiter=DELIMITERS[job["format"]])
    header = list(reader.fieldnames or [])
    unknown = [name for name in header if name not in fake.fields]
    if unknown or job["lookupField"] not in header:
        job.update(status="Failed", message=f"Invalid column header: {unknown or 'no lookup'}")
        return
    failures = csv.writer(out_failures := io.StringIO())
    warnings = csv.writer(out_warnings := io.StringIO())
    failures.writerow([*header, "Import Failure Reason"])
    warnings.writerow([*header, "Import Warning Reason"])
    action = "updateOnly" if job["lookupField"] == "id" else "createOrUpdate"
    processed = failed = warned = 0
    index = LookupIndex(fake, job["lookupField"])
    for row in reader:
        record = {k: v for k, v in row.items() if k in fake.fields and v not in ("", None)}
        long = [k for k, v in record.items() if len(v) > (fake.fields[k].length or 1 << 30)]
        for name in long:
            record[name] = record[name][: fake.fields[name].length]
        outcome = index.upsert(record, action)
        values = [row.get(name) or "" for name in header]
        if outcome["status"] == "skipped":
            failed += 1
            failures.writerow([*values, outcome["reasons"][0]["message"]])
            continue
        processed += 1
        if long:
            warned += 1
            warnings.writerow([*values, f"Value truncated for {', '.join(long)}"])
        if job["listId"]:
            fake.lists[job["listId"]]["members"].add(outcome["id"])
    job.update(
        status="Complete",
        numOfLeadsProcessed=processed,
        numOfRowsFailed=failed,
        numOfRowsWithWarning=warned,
        message="Import completed" + (" with errors" if failed else ""),
        failures=out_failures.getvalue() if failed else "",
        warnings=out_warnings.getvalue() if warned else "",
    )


def submit(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """POST /bulk/v1/leads.json: queue a multipart CSV/TSV/SSV import."""
    fmt = req.args.get("format") or "csv"
    if fmt not in DELIMITERS:
        raise ApiError("1003", f"Invalid format '{fmt}'")
    lookup = req.args.get("lookupField") or "email"
    check_lookup(fake, lookup, "updateOnly" if lookup == "id" else "createOrUpdate")
    list_id = int(static_list(fake, req.args["listId"])["id"]) if req.args.get("listId") else None
    upload = (
        req.request.files.get("file") if req.request.mimetype.startswith("multipart/") else None
    )
    if upload is None:
        raise ApiError("613", "Multipart part 'file' is required")
    try:
        text = upload.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("1003", "File must be UTF-8") from exc
    tick(fake)
    if sum(j["status"] == "Queued" for j in fake.bulk_jobs.values()) >= MAX_QUEUED:
        raise ApiError("1016")
    batch_id = fake.next_id("bulk")
    fake.bulk_jobs[batch_id] = {
        "batchId": batch_id,
        "importId": str(batch_id),
        "status": "Queued",
        "format": fmt,
        "lookupField": lookup,
        "listId": list_id,
        "queued_at": fake.clock.now(),
        "text": text,
        "numOfLeadsProcessed": 0,
        "numOfRowsFailed": 0,
        "numOfRowsWithWarning": 0,
        "message": "Queued for processing",
        "failures": "",
        "warnings": "",
    }
    return envelope([{"batchId": batch_id, "importId": str(batch_id), "status": "Queued"}])


def job_of(fake: FakeMarketo, batch_id: str) -> dict[str, Any]:
    """Return the job after advancing the clock-driven states, or raise 1013."""
    tick(fake)
    job = fake.bulk_jobs.get(int(batch_id))
    if job is None:
        raise ApiError("1013", f"Import '{batch_id}' not found")
    return job


def status(fake: FakeMarketo, req: Req, batch_id: str) -> dict[str, Any]:
    """GET /bulk/v1/leads/batch/{id}.json: state, counts and message."""
    job = job_of(fake, batch_id)
    return envelope([{key: job[key] for key in STATUS_KEYS}])


def failures(fake: FakeMarketo, req: Req, batch_id: str) -> Response:
    """GET .../failures.json: failed input rows with a reason column (CSV text)."""
    return Response(job_of(fake, batch_id)["failures"], mimetype="text/csv")


def warnings(fake: FakeMarketo, req: Req, batch_id: str) -> Response:
    """GET .../warnings.json: rows imported with a warning (CSV text)."""
    return Response(job_of(fake, batch_id)["warnings"], mimetype="text/csv")


def usage_rows(fake: FakeMarketo, days: int) -> list[dict[str, Any]]:
    """Return ``days`` usage rows ending today, from the daily counters."""
    counts = fake._usage_counts()
    today = fake._day(fake.clock.now())
    rows = []
    for back in range(days):
        day = (date.fromisoformat(today) - timedelta(days=back)).isoformat()
        total = counts.get(day, 0)
        rows.append({"date": day, "total": total, "users": [{"userId": API_USER, "count": total}]})
    return rows


def usage(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/stats/usage.json: today's counted calls."""
    return envelope(usage_rows(fake, 1))


def usage_week(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/stats/usage/last7days.json."""
    return envelope(usage_rows(fake, 7))


def errors(fake: FakeMarketo, req: Req) -> dict[str, Any]:
    """GET /rest/v1/stats/errors.json: error codes returned so far, as today's row."""
    counts = dict(fake.errors_returned)
    rows = [{"errorCode": code, "count": count} for code, count in sorted(counts.items())]
    today = fake._day(fake.clock.now())
    return envelope([{"date": today, "total": sum(counts.values()), "errors": rows}])


ROUTES = [
    (r"/bulk/v1/leads\.json", {"POST": submit}),
    (r"/bulk/v1/leads/batch/(?P<batch_id>\d+)\.json", {"GET": status}),
    (r"/bulk/v1/leads/batch/(?P<batch_id>\d+)/failures\.json", {"GET": failures}),
    (r"/bulk/v1/leads/batch/(?P<batch_id>\d+)/warnings\.json", {"GET": warnings}),
    (r"/rest/v1/stats/usage\.json", {"GET": usage}),
    (r"/rest/v1/stats/usage/last7days\.json", {"GET": usage_week}),
    (r"/rest/v1/stats/errors\.json", {"GET": errors}),
]
