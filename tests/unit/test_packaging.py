"""The wheel ships every file the app reads at run time (a non-editable install has no repo).

Building a wheel needs the network (isolated build backend), so this checks the packaging
rules against the paths the code reads; the wheel itself was checked by hand (see pyproject).
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from app.browser import loader

ROOT = Path(__file__).resolve().parents[2]


def shipped(relative: Path) -> bool:
    """Tell whether pyproject's package data puts the file at `relative` into the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    includes = config["packages"]["find"]["include"]
    data = config.get("package-data", {})
    for depth in range(len(relative.parts) - 1, 0, -1):
        package = ".".join(relative.parts[:depth])
        if any(fnmatch.fnmatch(package, pattern) for pattern in includes):
            rest = "/".join(relative.parts[depth:])
            if any(fnmatch.fnmatch(rest, glob) for glob in data.get(package, [])):
                return True
    return False


@pytest.mark.parametrize(
    "path",
    [
        loader.LIBRARY_PATH,
        loader.BUILD_PATH,
        loader.IDENTIFY_PATH,
        loader.IDENTIFY_BUILD_PATH,
        *sorted((ROOT / "app" / "templates").iterdir()),
    ],
    ids=lambda p: p.name,
)
def test_runtime_files_are_in_the_wheel(path: Path) -> None:
    """The browser library, its build and every template are package data."""
    assert path.is_relative_to(ROOT), f"{path} is outside the project"
    assert shipped(path.relative_to(ROOT)), f"{path.relative_to(ROOT)} would not be installed"
