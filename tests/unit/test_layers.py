"""The house's import directions: each room knows only the rooms below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

# room -> packages it must never import (directly, anywhere in its modules).
FORBIDDEN = {
    "marketo": ("app.outbox", "app.delivery", "app.coordination", "app.ingest", "flask"),
    "outbox": ("app.marketo", "app.delivery", "app.coordination", "app.ingest"),
    "coordination": ("app.delivery", "app.ingest", "flask"),
    "ingest": ("app.marketo", "app.delivery", "app.coordination"),
    "browser": ("app.marketo", "app.delivery", "app.coordination"),
    "retry.py": ("app", "flask"),
    "ratelimit.py": ("app", "flask"),
    "heartbeat.py": ("app", "flask"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(room: str) -> list[Path]:
    target = APP / room
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_never_imports_the_rooms_above_it(room: str) -> None:
    """No module of a room imports a package its place in the data path forbids."""
    found = []
    for module in _modules(room):
        for name in _imports(module):
            for banned in FORBIDDEN[room]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{module.relative_to(APP)} imports {name}")
    assert not found, "\n".join(found)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The import scan itself finds `from x import y` and `import x.y` forms."""
    module = tmp_path / "m.py"
    module.write_text("import app.delivery.batch\nfrom app.outbox import store\n")
    assert {"app.delivery.batch", "app.outbox", "app.outbox.store"} <= _imports(module)


def test_policy_modules_and_the_client_import_without_flask() -> None:
    """retry, ratelimit and the Marketo client load in a script without Flask or the app."""
    code = (
        "import sys, app.retry, app.ratelimit, app.marketo.client\n"
        "bad = [m for m in sys.modules if m == 'flask' or m.startswith(('app.delivery', "
        "'app.outbox', 'app.ingest'))]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=APP.parent,
    )
    assert out.stdout.strip() == ""
