"""Bulk CSV checks and splitting: encoding, header, unknown columns, parts under the size limit."""

from __future__ import annotations

import csv
import io

import pytest

from app.marketo.bulk_csv import BulkFileError
from app.marketo.bulk_csv import check_columns
from app.marketo.bulk_csv import read_csv
from app.marketo.bulk_csv import split


def write(tmp_path, text: str | bytes):
    """Write a CSV file and return its path."""
    path = tmp_path / "leads.csv"
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def test_read_csv_accepts_bom_and_quoted_newlines(tmp_path):
    """A BOM is not part of the first column; a quoted newline stays inside its cell."""
    path = write(tmp_path, '\ufeffemail,company\na@x.io,"Acme\nInc"\n\nb@x.io,Beta\n')
    parsed = read_csv(path)
    assert parsed.header == ["email", "company"]
    assert parsed.rows == [["a@x.io", "Acme\nInc"], ["b@x.io", "Beta"]]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"email,company\na@x.io,Caf\xe9\n", "bad_encoding"),
        (b"", "empty_file"),
        (b"email,,company\n", "bad_header"),
        (b"email,email\n", "bad_header"),
        (b"email,company\na@x.io\n", "bad_row"),
    ],
)
def test_read_csv_refuses_bad_files_with_a_clear_code(tmp_path, content, code):
    """Latin-1 bytes, empty files, bad headers and ragged rows are refused before any call."""
    with pytest.raises(BulkFileError) as info:
        read_csv(write(tmp_path, content))
    assert info.value.code == code


def test_bad_encoding_names_the_line(tmp_path):
    """The message says where the offending byte is."""
    with pytest.raises(BulkFileError, match="line 3"):
        read_csv(write(tmp_path, b"email\na@x.io\n\xff@x.io\n"))


def test_check_columns_lists_every_unknown_column():
    """Columns are checked against describe, case-insensitively, and all unknown ones named."""
    check_columns(["Email", "firstName"], ["email", "firstName"], "Email")
    with pytest.raises(BulkFileError, match="fav_color, shoe") as info:
        check_columns(["email", "fav_color", "shoe"], ["email"], "email")
    assert info.value.code == "unknown_columns"
    with pytest.raises(BulkFileError) as info:
        check_columns(["firstName"], ["email", "firstName"], "email")
    assert info.value.code == "no_lookup_column"


def parse(data: bytes) -> list[list[str]]:
    """Read a part back."""
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("max_bytes", [60, 100, 1000, 10_000])
def test_split_parts_stay_under_the_limit_and_keep_every_row(tmp_path, max_bytes):
    """Each part repeats the header, stays within max_bytes, and together they hold every row."""
    lines = ["email,firstName"] + [f'u{i}@example.com,"N, {i}"' for i in range(200)]
    parsed = read_csv(write(tmp_path, "\n".join(lines) + "\n"))
    parts = list(split(parsed, max_bytes))
    rows = []
    for index, part in enumerate(parts):
        assert part.index == index
        assert len(part.data) <= max_bytes
        got = parse(part.data)
        assert got[0] == ["email", "firstName"]
        assert len(got) - 1 == part.rows
        assert part.first_row == len(rows)
        rows.extend(got[1:])
    assert rows == parsed.rows
    if max_bytes < 10_000:
        assert len(parts) > 1
    else:
        assert len(parts) == 1


def test_split_refuses_a_row_larger_than_the_limit(tmp_path):
    """A single row that cannot fit in any part is an error, not an endless loop."""
    parsed = read_csv(write(tmp_path, "email,notes\na@x.io," + "x" * 500 + "\n"))
    with pytest.raises(BulkFileError) as info:
        list(split(parsed, 200))
    assert info.value.code == "row_too_large"
