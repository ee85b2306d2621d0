"""Bulk import of a large CSV against the fake Marketo: parts, jobs, progress and the report."""

from __future__ import annotations

import csv
import json

import pytest

from app.marketo.bulk import import_csv
from app.marketo.bulk_csv import BulkFileError
from app.marketo.client import MarketoClient
from app.settings import parse
from tests.integration.test_fault_matrix import FAULTS

ROWS = 50_000
# Small parts so the 50,000 rows need several jobs while the test stays fast.
PART_BYTES = 400_000


def write_csv(path, rows: int, *, bad_every: int = 0, long_every: int = 0) -> None:
    """Write a lead CSV; every `bad_every`th row has no email, every `long_every`th a long name."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "firstName", "company"])
        for i in range(rows):
            email = "" if bad_every and i % bad_every == 0 else f"user{i}@example.com"
            name = "x" * 300 if long_every and i % long_every == 1 else f"User, {i}"
            writer.writerow([email, name, f"Company {i % 97}"])


@pytest.fixture
def marketo_client(bo_app):
    """The app's Marketo client, as the CLI uses it."""
    from app import backoffice

    with bo_app.app_context():
        yield backoffice.marketo_client()


def test_50000_rows_import_in_several_jobs_with_a_report(tmp_path, fake_marketo, marketo_client):
    """The file is split under the limit, jobs run one at a time, problems land in the report."""
    source = tmp_path / "leads.csv"
    write_csv(source, ROWS, bad_every=10_000, long_every=12_500)
    size = source.stat().st_size
    expected_jobs = -(-size // PART_BYTES)  # at least this many parts
    progress: list[int] = []
    report = import_csv(
        marketo_client,
        source,
        max_file_bytes=PART_BYTES,
        sleep=fake_marketo.clock.advance,
        clock=fake_marketo.clock.now,
        progress=progress.append,
    )
    jobs = fake_marketo.bulk_jobs
    assert len(jobs) == len(report.jobs) >= expected_jobs > 1
    assert len(fake_marketo.calls_to("/bulk/v1/leads.json")) == len(jobs)
    assert all(j.status == "Complete" for j in report.jobs)
    assert sum(progress) == ROWS
    assert sum(j.rows for j in report.jobs) == ROWS
    assert report.failed == ROWS // 10_000
    assert report.warnings == ROWS // 12_500
    assert report.imported == ROWS - report.failed
    assert len(fake_marketo.leads) == ROWS - report.failed
    with open(report.report_path, encoding="utf-8", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["part", "batchId", "kind", "email", "firstName", "company", "reason"]
    kinds = [line[2] for line in lines[1:]]
    assert kinds.count("failure") == report.failed
    assert kinds.count("warning") == report.warnings
    # Never more than one of our jobs queued or running at a time: each was complete before
    # the next was submitted, so Marketo's 2 running / 10 queued limit is never approached.
    submits = [c.time for c in fake_marketo.calls_to("/bulk/v1/leads.json")]
    assert submits == sorted(submits)
    assert fake_marketo.errors_returned.get("1016", 0) == 0


def test_queue_full_is_waited_out(tmp_path, fake_marketo, marketo_client):
    """A 1016 (too many imports) makes the import wait and submit again, not fail."""
    source = tmp_path / "few.csv"
    write_csv(source, 10)
    fake_marketo.script("/bulk/v1/leads.json", {"code": "1016"}, {"code": "1016"})
    before = fake_marketo.clock.now()
    report = import_csv(
        marketo_client,
        source,
        sleep=fake_marketo.clock.advance,
        clock=fake_marketo.clock.now,
        poll_s=5,
    )
    assert report.ok and report.imported == 10
    assert len(fake_marketo.calls_to("/bulk/v1/leads.json")) == 3
    assert fake_marketo.clock.now() - before >= 10


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"email,favouriteColour\na@x.io,blue\n", "unknown_columns"),
        (b"email,firstName\na@x.io,Jos\xe9\n", "bad_encoding"),
        (b"firstName\nAnn\n", "no_lookup_column"),
    ],
)
def test_bad_files_are_refused_before_any_upload(
    tmp_path, fake_marketo, marketo_client, content, code
):
    """Unknown columns (checked against describe), bad encoding and no lookup column: no job."""
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    with pytest.raises(BulkFileError) as info:
        import_csv(
            marketo_client, source, sleep=fake_marketo.clock.advance, clock=fake_marketo.clock.now
        )
    assert info.value.code == code
    assert fake_marketo.bulk_jobs == {}


def test_cli_imports_into_a_list_with_a_progress_bar(tmp_path, fake_marketo, bo_app):
    """`flask bulk import` shows progress, adds rows to --list and prints where the report is."""
    source = tmp_path / "people.csv"
    write_csv(source, 3000)
    report = tmp_path / "out.csv"
    runner = bo_app.test_cli_runner()
    result = runner.invoke(
        args=[
            "bulk",
            "import",
            str(source),
            "--list",
            "Imported",
            "--max-file-bytes",
            "50000",
            "--report",
            str(report),
        ]
    )
    assert result.exit_code == 0, result.output
    assert "3000 rows in" in result.output
    assert "importing" in result.output
    assert "3000 imported, 0 failed" in result.output
    static = next(s for s in fake_marketo.lists.values() if s["name"] == "Imported")
    assert len(static["members"]) == 3000
    assert report.exists()
    jobs = fake_marketo.bulk_jobs.values()
    assert len(jobs) > 1 and all(j["listId"] == static["id"] for j in jobs)
    as_json = runner.invoke(args=["bulk", "import", str(source), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output[as_json.output.index("{") :])["imported"] == 3000


def test_cli_reports_bad_columns_in_one_line(tmp_path, bo_app):
    """A bad file ends with exit 1 and a reason naming the column."""
    source = tmp_path / "bad.csv"
    source.write_text("email,shoeSize\na@x.io,9\n", encoding="utf-8")
    result = bo_app.test_cli_runner().invoke(args=["bulk", "import", str(source)])
    assert result.exit_code == 1
    assert "shoeSize" in result.output


def test_quota_exhaustion_stops_the_import_with_a_clear_error(tmp_path, fake_marketo, bo_app):
    """A 607 is not waited out by the command: it stops and says the quota is spent."""
    source = tmp_path / "q.csv"
    write_csv(source, 5)
    fake_marketo.script("/bulk/v1/leads.json", {"code": "607"})
    result = bo_app.test_cli_runner().invoke(args=["bulk", "import", str(source)])
    assert result.exit_code == 1
    assert "607" in result.output
    assert fake_marketo.bulk_jobs == {}


def test_client_settings_parse_for_python_use(fake_marketo, tmp_path):
    """import_csv works from Python with a client built from settings, without an app."""
    settings = parse(
        {
            "munchkin_id": "123-ABC-456",
            "client_id": fake_marketo.client_id,
            "client_secret": fake_marketo.client_secret,
            "rest_base_url": fake_marketo.url,
            "identity_url": fake_marketo.url + "/identity",
        }
    )
    source = tmp_path / "py.csv"
    write_csv(source, 20)
    client = MarketoClient(settings, clock=fake_marketo.clock.now)
    report = import_csv(
        client, source, sleep=fake_marketo.clock.advance, clock=fake_marketo.clock.now
    )
    assert report.imported == 20 and len(report.jobs) == 1


def test_the_gateway_quota_covers_bulk_calls(tmp_path, fake_marketo, bo_app_factory):
    """Bulk calls draw on the shared daily quota: past it the import stops before calling."""
    app = bo_app_factory(limits={"daily_quota": 3})
    source = tmp_path / "quota.csv"
    write_csv(source, 10)
    result = app.test_cli_runner().invoke(args=["bulk", "import", str(source)])
    assert result.exit_code == 1
    assert "quota" in result.output
    assert fake_marketo.counted_calls_today() <= 3
    assert fake_marketo.errors_returned.get("607", 0) == 0


# The fault matrix's faults (a hang would wait out the client's read timeout; a record-level
# code has no records to land on here), plus a connection dropped before any answer.
BULK_STATUS_FAULTS = {
    **{k: v for k, v in FAULTS.items() if k not in ("timeout", "record1xxx")},
    "dropped": {"drop": True},
}


@pytest.mark.parametrize("fault", BULK_STATUS_FAULTS.values(), ids=BULK_STATUS_FAULTS.keys())
def test_a_fault_on_the_job_status_poll_is_waited_out(
    tmp_path, fake_marketo, marketo_client, fault
):
    """The bulk status endpoint fails once in any way Marketo can: the import still completes."""
    source = tmp_path / "leads.csv"
    write_csv(source, 200)
    # The fake numbers import jobs from 3501: the first job's status is the one faulted.
    fake_marketo.script("/bulk/v1/leads/batch/3501.json", fault)
    report = import_csv(
        marketo_client, source, sleep=fake_marketo.clock.advance, clock=fake_marketo.clock.now
    )
    assert [j.status for j in report.jobs] == ["Complete"]
    assert sum(j.rows for j in report.jobs) == 200
    assert len(fake_marketo.calls_to("/bulk/v1/leads.json")) == 1  # uploaded once
    polls = fake_marketo.calls_to("/bulk/v1/leads/batch/3501.json")
    first = polls[0]
    assert first.status != 200 or first.code is not None or "drop" in fault or "cut" in fault
    assert len(polls) >= 2  # the faulted poll, then the ones that found the job
