"""Helpers shared by the CLI groups: the settings path, JSON output, one-line failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import current_app

from app.errors import SettingsInvalid
from app.settings import SettingsFileError
from app.settings import SettingsHolder
from app.settings import update_raw


def settings_holder() -> SettingsHolder:
    """Return the app's settings holder."""
    return current_app.extensions["settings"]


def settings_path() -> Path:
    """Return the path of the settings file the app uses."""
    return settings_holder().path


def echo_json(value: Any) -> None:
    """Print a value as indented JSON."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def fail(message: str) -> None:
    """Stop the command with exit code 1 and one line on stderr."""
    raise click.ClickException(message)


def fail_invalid(exc: SettingsInvalid) -> None:
    """Print every validation problem, then stop with exit code 1."""
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)
    fail(f"settings not changed: {len(exc.problems)} problem(s)")


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply a change to the settings file with validation, turning failures into exit 1."""
    try:
        return update_raw(settings_path(), change)
    except SettingsFileError as exc:
        fail(str(exc))
    except SettingsInvalid as exc:
        fail_invalid(exc)
    except (KeyError, ValueError) as exc:
        fail(exc.args[0] if exc.args else str(exc))
    raise AssertionError("unreachable")
