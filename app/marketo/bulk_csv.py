"""Reading, checking and splitting a lead CSV for Marketo's bulk import (pure, no I/O but files).

Marketo takes one CSV per import job, under 10 MB, with a header of REST field names. A larger
file is cut into parts that each repeat the header and stay under `max_bytes`; rows are parsed and
written back with real CSV quoting, so a quoted newline never splits a record.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import GatewayError

# Marketo refuses bulk import files of 10 MB or more (marketo-reference §4, HTTP 413).
MARKETO_FILE_LIMIT = 10 * 1024 * 1024
# Our parts stay well below it: the multipart envelope adds bytes, and "10 MB" is not documented
# as MiB or MB, so we keep under the smaller reading with room to spare.
MAX_FILE_BYTES = 9_000_000


class BulkFileError(GatewayError):
    """The CSV cannot be imported as it is (encoding, header, unknown columns, oversized row)."""

    status = 400
    code = "bad_bulk_file"


@dataclass(frozen=True)
class CsvFile:
    """A parsed lead CSV: its header and data rows (every row as long as the header)."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Part:
    """One slice of the file, encoded and ready to upload as one import job."""

    index: int
    first_row: int
    rows: int
    data: bytes


def read_csv(path: str | Path) -> CsvFile:
    """Read a UTF-8 (optionally BOM-prefixed) CSV and check its shape.

    :raises BulkFileError: the file is not UTF-8, has no header, a blank or repeated column, or
        a row whose number of cells differs from the header.
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BulkFileError(
            f"{Path(path).name} is not UTF-8: byte 0x{raw[exc.start]:02x} on line {line};"
            " save it as UTF-8 and try again",
            code="bad_encoding",
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise BulkFileError(f"{Path(path).name} is empty", code="empty_file") from None
    problems = [f"column {i + 1} has no name" for i, h in enumerate(header) if not h]
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    problems += [f"column {h} appears more than once" for h in repeated]
    if problems:
        raise BulkFileError("bad header: " + "; ".join(problems), code="bad_header")
    rows: list[list[str]] = []
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise BulkFileError(
                f"line {reader.line_num} has {len(row)} cells, the header has {len(header)}",
                code="bad_row",
            )
        rows.append(row)
    return CsvFile(header, rows)


def check_columns(header: Iterable[str], known: Iterable[str], lookup_field: str) -> None:
    """Check every column against the instance's lead fields (from describe) and the lookup field.

    :raises BulkFileError: some columns are not lead fields, or the lookup field is missing.
    """
    columns = list(header)
    known_lower = {k.lower(): k for k in known}
    unknown = [c for c in columns if c.lower() not in known_lower]
    if unknown:
        raise BulkFileError(
            "unknown column(s) "
            + ", ".join(unknown)
            + ": the header must use lead field REST API names (see leads/describe)",
            code="unknown_columns",
        )
    if lookup_field not in columns:
        raise BulkFileError(
            f"the lookup field {lookup_field} is not a column of the file", code="no_lookup_column"
        )


def _encode(header: list[str], rows: Iterable[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def split(csv_file: CsvFile, max_bytes: int = MAX_FILE_BYTES) -> Iterator[Part]:
    """Yield parts that each hold the header and as many whole rows as fit under `max_bytes`.

    :raises BulkFileError: one row alone (with the header) is over `max_bytes`.
    """
    head = _encode(csv_file.header, [])
    budget = max_bytes - len(head)
    index = 0
    start = 0
    size = 0
    for i, row in enumerate(csv_file.rows):
        row_bytes = len(_encode(row, []))
        if row_bytes > budget:
            raise BulkFileError(
                f"row {i + 1} alone is {row_bytes} bytes, over the {max_bytes}-byte file limit",
                code="row_too_large",
            )
        if size + row_bytes > budget:
            yield Part(index, start, i - start, _encode(csv_file.header, csv_file.rows[start:i]))
            index += 1
            start, size = i, 0
        size += row_bytes
    if start < len(csv_file.rows):
        rows = csv_file.rows[start:]
        yield Part(index, start, len(rows), _encode(csv_file.header, rows))
