"""Bulk lead import: check a CSV, cut it under Marketo's file limit, run one job per part, report.

`import_csv` is the library entry point (`flask bulk import` is a thin shell around it). Jobs run
one at a time, which keeps this gateway well inside Marketo's 2 running / 10 queued imports even
when other integrations import too; a 1016/1029 "too many jobs" answer waits for a free slot.
Every call goes through the client, so the shared rate limiter and daily quota apply. Time is
read and spent through injected `clock`/`sleep`, so tests drive the fake's job clock instead.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from app.errors import GatewayError
from app.marketo.bulk_csv import MAX_FILE_BYTES
from app.marketo.bulk_csv import BulkFileError
from app.marketo.bulk_csv import Part
from app.marketo.bulk_csv import check_columns
from app.marketo.bulk_csv import read_csv
from app.marketo.bulk_csv import split
from app.marketo.errors import MarketoError
from app.marketo.errors import QueueFull
from app.marketo.lists import Requester
from app.retry import Action
from app.retry import RetryPolicy

log = logging.getLogger(__name__)

# Marketo asks bulk clients to poll a job's status every 5 to 30 seconds.
POLL_S = 5.0
# A refusal for too many queued jobs (1016, 1029) is waited out this long before giving up.
QUEUE_WAIT_S = 3600.0
# Transient failures (5xx, timeouts, 604, 611) of one call retried before the import stops.
TRANSIENT_TRIES = 4
# A Retry-After-style pause from the limiter is obeyed up to this long per wait.
MAX_PAUSE_S = 60.0

DONE = ("Complete", "Failed")

IMPORT_PATH = "/bulk/v1/leads.json"
DESCRIBE_PATH = "/rest/v1/leads/describe2.json"

__all__ = ["MAX_FILE_BYTES", "BulkFileError", "BulkImportError", "ImportReport", "import_csv"]


class BulkImportError(GatewayError):
    """The import could not go on (quota gone, queue never freed, Marketo refused the file)."""

    status = 502
    code = "bulk_import_failed"


@dataclass
class JobResult:
    """One part's import job as Marketo last described it."""

    part: int
    rows: int
    batch_id: int | None = None
    status: str = "Pending"
    imported: int = 0
    failed: int = 0
    warnings: int = 0
    message: str = ""


@dataclass
class ImportReport:
    """The outcome of a whole file: one job per part, and where the problem rows were written."""

    file: str
    rows: int
    jobs: list[JobResult] = field(default_factory=list)
    report_path: str | None = None

    @property
    def failed(self) -> int:
        """Return the rows Marketo rejected, over all jobs."""
        return sum(j.failed for j in self.jobs)

    @property
    def warnings(self) -> int:
        """Return the rows imported with a warning, over all jobs."""
        return sum(j.warnings for j in self.jobs)

    @property
    def imported(self) -> int:
        """Return the rows imported, over all jobs."""
        return sum(j.imported for j in self.jobs)

    @property
    def ok(self) -> bool:
        """Tell whether every job completed and no row failed."""
        return all(j.status == "Complete" for j in self.jobs) and self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "file": self.file,
            "rows": self.rows,
            "imported": self.imported,
            "failed": self.failed,
            "warnings": self.warnings,
            "report": self.report_path,
            "jobs": [vars(j) for j in self.jobs],
        }


class _Runner:
    """Makes the import's calls, waiting out rate-limit pauses and full queues."""

    def __init__(self, client: Requester, sleep: Callable[[float], None], clock, poll_s: float):
        self.client = client
        self.sleep = sleep
        self.clock = clock
        self.poll_s = poll_s
        self.policy = RetryPolicy()

    def call(self, make: Callable[[], Any]) -> Any:
        """Make one call, doing what a failure's class asks (`app.retry.Action`).

        A foreground job has no outbox to come back to, so it waits here: a resend after a token
        refresh happens once; limiter and queue waits are slept out until `QUEUE_WAIT_S` has
        passed; a transient failure (5xx, timeout, 604, 611) is retried with the policy's
        backoff up to `TRANSIENT_TRIES` times, except a request that may have been applied
        (an upload whose answer was lost: sending it again could import the file twice).
        Anything else ends the import with Marketo's reason.
        """
        deadline = self.clock() + QUEUE_WAIT_S
        resent = False
        failures = 0
        while True:
            try:
                return make()
            except MarketoError as exc:
                failures += exc.action is Action.BACK_OFF
                retry_after = getattr(exc, "retry_after", None)
                step = self.policy.step(exc.action, max(failures, 1), retry_after, 1.0)
                if step.action is Action.RESEND_NOW and not resent:
                    resent = True
                    continue
                if step.action is Action.BACK_OFF:
                    if failures > TRANSIENT_TRIES or getattr(exc, "maybe_applied", False):
                        raise
                elif step.action not in (Action.WAIT, Action.PAUSE_ALL):
                    raise
                wait = self.poll_s if isinstance(exc, QueueFull) else step.delay
                if self.clock() + wait > deadline:
                    raise BulkImportError(
                        f"Marketo stayed busy for {QUEUE_WAIT_S:.0f} s: {exc}"
                    ) from exc
                log.info("Marketo busy (%s), waiting %.0f s", exc.marketo_code or exc, wait)
                self.sleep(min(MAX_PAUSE_S, max(wait, 0.1)))


def lead_field_names(client: Requester) -> set[str]:
    """Return the REST names of the instance's lead fields (describe2)."""
    result = client.request("GET", DESCRIBE_PATH).get("result") or [{}]
    return {str(f["name"]) for f in result[0].get("fields", []) if f.get("name")}


def _submit(run: _Runner, part: Part, name: str, params: dict[str, Any]) -> int:
    files = {"file": (f"{name}-part{part.index + 1}.csv", part.data, "text/csv")}
    body = run.call(lambda: run.client.request("POST", IMPORT_PATH, params=params, files=files))
    return int((body.get("result") or [{}])[0]["batchId"])


def _status(run: _Runner, job: JobResult) -> None:
    path = f"/bulk/v1/leads/batch/{job.batch_id}.json"
    row = (run.call(lambda: run.client.request("GET", path)).get("result") or [{}])[0]
    job.status = str(row.get("status", job.status))
    job.imported = int(row.get("numOfLeadsProcessed") or 0)
    job.failed = int(row.get("numOfRowsFailed") or 0)
    job.warnings = int(row.get("numOfRowsWithWarning") or 0)
    job.message = str(row.get("message") or "")


def _problem_rows(run: _Runner, job: JobResult, kind: str) -> list[list[str]]:
    path = f"/bulk/v1/leads/batch/{job.batch_id}/{kind}.json"
    body = run.call(lambda: run.client.request("GET", path, raw=True))
    text = str(body.get("text") or "")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    return [r for r in rows[1:] if r]


def _write_report(path: Path, header: list[str], lines: Iterable[list[Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["part", "batchId", "kind", *header, "reason"])
        writer.writerows(lines)
    tmp.replace(path)


def import_csv(
    client: Requester,
    path: str | Path,
    *,
    lookup_field: str = "email",
    list_id: int | None = None,
    partition: str | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    report_path: str | Path | None = None,
    known_fields: Iterable[str] | None = None,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[int], None] | None = None,
    on_parts: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import a lead CSV through Marketo's bulk API and write failures and warnings to a report.

    `progress(n)` is told each time n more rows are done; `on_parts(parts, rows)` once the file
    is split. The report (default `FILE.report.csv`) holds every failed or warned row with its
    part, job and Marketo's reason.

    :raises BulkFileError: the file's encoding, shape or columns are wrong (nothing was sent).
    :raises BulkImportError: Marketo's queue never freed up.
    :raises MarketoError: a call failed for good (quota exhausted, file refused).
    """
    source = Path(path)
    parsed = read_csv(source)
    run = _Runner(client, sleep, clock, poll_s)
    if known_fields is None:
        known_fields = run.call(lambda: lead_field_names(client))
    check_columns(parsed.header, known_fields, lookup_field)
    parts = list(split(parsed, max_file_bytes))
    report = ImportReport(str(source), len(parsed.rows))
    report.report_path = str(report_path or source.with_suffix(".report.csv"))
    if on_parts is not None:
        on_parts(len(parts), len(parsed.rows))
    params: dict[str, Any] = {"format": "csv", "lookupField": lookup_field}
    if list_id is not None:
        params["listId"] = int(list_id)
    if partition:
        params["partitionName"] = partition
    problems: list[list[Any]] = []
    for part in parts:
        job = JobResult(part.index + 1, part.rows)
        report.jobs.append(job)
        job.batch_id = _submit(run, part, source.stem, params)
        log.info("part %d/%d: job %s, %d rows", job.part, len(parts), job.batch_id, part.rows)
        done = 0
        while True:
            _status(run, job)
            seen = part.rows if job.status in DONE else min(part.rows, job.imported + job.failed)
            if progress is not None and seen > done:
                progress(seen - done)
            done = max(done, seen)
            if job.status in DONE:
                break
            sleep(poll_s)
        for kind, count in (("failures", job.failed), ("warnings", job.warnings)):
            if count:
                for row in _problem_rows(run, job, kind):
                    problems.append([job.part, job.batch_id, kind[:-1], *row])
    _write_report(Path(report.report_path), parsed.header, problems)
    log.info("imported %s: %d rows, %d failed", source.name, report.rows, report.failed)
    return report
