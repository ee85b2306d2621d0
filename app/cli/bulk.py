"""`flask bulk import FILE.csv`: import leads through Marketo's bulk API with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from app import backoffice
from app.cli.common import echo_json
from app.cli.lists import marketo_call
from app.marketo.bulk import MAX_FILE_BYTES
from app.marketo.bulk import POLL_S
from app.marketo.bulk import import_csv

bulk_cli = AppGroup("bulk", help="Bulk lead imports through Marketo's bulk API.")


@bulk_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", default=None, help="Also add every row to this static list.")
@click.option("--lookup-field", default="email", show_default=True, help="Dedupe field.")
@click.option("--partition", default=None, help="Lead partition (default: lead_partition).")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where failures and warnings go (default: FILE.report.csv).",
)
@click.option(
    "--max-file-bytes",
    type=click.IntRange(min=1024),
    default=MAX_FILE_BYTES,
    show_default=True,
    help="Split the file into parts of at most this size.",
)
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(min=0.0),
    default=POLL_S,
    show_default=True,
    help="Seconds between status checks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def import_command(
    file: Path,
    list_name: str | None,
    lookup_field: str,
    partition: str | None,
    report: Path | None,
    max_file_bytes: int,
    poll_s: float,
    as_json: bool,
) -> None:
    """Import FILE.csv (UTF-8, header of lead field REST names), one job per part."""
    settings = backoffice.settings()
    client = backoffice.marketo_client()
    clock = current_app.config.get("BULK_CLOCK")
    sleep = current_app.config.get("BULK_SLEEP")
    list_id = None
    if list_name:
        list_id = marketo_call(lambda: backoffice.list_directory().list_id(list_name))
    bar: Any = None

    def on_parts(parts: int, rows: int) -> None:
        nonlocal bar
        if not as_json:
            click.echo(f"{file.name}: {rows} rows in {parts} part(s)")
        bar = click.progressbar(
            length=rows,
            label="importing",
            file=sys.stderr if as_json else None,
        )
        bar.__enter__()

    def progress(rows: int) -> None:
        if bar is not None:
            bar.update(rows)

    options: dict[str, Any] = {}
    if clock is not None:
        options["clock"] = clock
    if sleep is not None:
        options["sleep"] = sleep
    try:
        outcome = marketo_call(
            lambda: import_csv(
                client,
                file,
                lookup_field=lookup_field,
                list_id=list_id,
                partition=partition or settings.lead_partition,
                max_file_bytes=max_file_bytes,
                report_path=report,
                poll_s=poll_s,
                progress=progress,
                on_parts=on_parts,
                **options,
            )
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        echo_json(outcome.as_dict())
    else:
        click.echo(
            f"{outcome.imported} imported, {outcome.failed} failed, {outcome.warnings} with"
            f" warnings in {len(outcome.jobs)} job(s); report: {outcome.report_path}"
        )
        for job in outcome.jobs:
            if job.status != "Complete":
                click.echo(f"  job {job.batch_id} (part {job.part}): {job.status} {job.message}")
    if not outcome.ok:
        raise SystemExit(1)
