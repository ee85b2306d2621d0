"""The wheel ships every file the app reads at run time (a non-editable install has no repo).

Building a wheel needs the network (isolated build backend), so this checks the packaging
rules against the paths the code reads; `.ci/package-check` (run by `.ci/run`) builds the wheel,
installs it in a fresh venv and uses it.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from app.browser import loader
from app.devtools.fake_marketo import web

ROOT = Path(__file__).resolve().parents[2]


def setuptools_config() -> dict:
    """Return pyproject's [tool.setuptools] table."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def shipped(relative: Path) -> bool:
    """Tell whether pyproject's package data puts the file at `relative` into the wheel."""
    config = setuptools_config()
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
        *sorted(web.ASSETS.iterdir()),
    ],
    ids=lambda p: p.name,
)
def test_runtime_files_are_in_the_wheel(path: Path) -> None:
    """The browser library, its build, every template and the fake's web assets are package
    data."""
    path = Path(str(path))  # the loader's files are importlib.resources Traversables
    assert path.is_relative_to(ROOT), f"{path} is outside the project"
    assert shipped(path.relative_to(ROOT)), f"{path.relative_to(ROOT)} would not be installed"


def test_the_wheel_installs_only_the_app_package() -> None:
    """setuptools finds `app` and its subpackages, the browser assets among them; no `static`."""
    includes = setuptools_config()["packages"]["find"]["include"]
    packages = set(find_packages(str(ROOT), include=includes))
    assert {p.split(".")[0] for p in packages} == {"app"}
    assert {"app.browser.assets", "app.devtools", "app.devtools.fake_marketo"} <= packages


def test_the_browser_assets_package_is_the_repo_static_folder() -> None:
    """app/browser/assets is a link to static/, where .ci/build-js writes the builds."""
    link = ROOT / "app" / "browser" / "assets"
    assert link.is_symlink() and os.readlink(link) == "../../static"
    assert link.resolve() == (ROOT / "static").resolve()
    assert Path(str(loader.LIBRARY_PATH)).resolve() == (ROOT / "static" / "gateway.js").resolve()


def test_the_loader_reads_its_files_as_package_resources() -> None:
    """No path arithmetic from the module's own file: the files come from importlib.resources."""
    source = (ROOT / "app" / "browser" / "loader.py").read_text()
    assert "parents[" not in source and "__file__" not in source
    assert 'importlib.resources.files("app.browser.assets")' in source


def test_postgresql_driver_is_an_extra_the_test_extra_pulls_in() -> None:
    """psycopg is not a core dependency; `[postgres]` installs it and `[test]` includes that."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("psycopg")]
    extras = project["optional-dependencies"]
    assert {d.split(">")[0] for d in extras["postgres"]} == {"psycopg[binary]", "psycopg-pool"}
    assert "marketo-gateway[postgres]" in extras["test"]


def test_the_serving_path_never_loads_the_development_tools(tmp_path: Path) -> None:
    """Creating the app and answering requests imports nothing from app.devtools."""
    code = (
        "import sys\n"
        "from app import create_app\n"
        f"app = create_app({{'SETTINGS_PATH': {str(tmp_path / 'none.json')!r},"
        " 'GATEWAY_EMBEDDED_WORKER': False})\n"
        "client = app.test_client()\n"
        "assert client.get('/healthz').status_code == 200\n"
        "client.get('/v1/loader.js?k=bk_x')\n"
        "client.get('/v1/identify.js')\n"
        "app.test_cli_runner().invoke(args=['demo', '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('app.devtools')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
