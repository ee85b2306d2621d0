"""Helpers shared by the CLI groups: the settings path, JSON output, one-line failures."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import current_app

from app.errors import GatewayError
from app.errors import SettingsInvalid
from app.settings import SettingsFileError
from app.settings import SettingsHolder
from app.settings import settings_holder as holder_of
from app.settings import update_raw


def settings_holder() -> SettingsHolder:
    """Return the app's settings holder."""
    return holder_of(current_app)


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


def guard_commands(group: click.Group) -> None:
    """Make every command under `group` end in one line and exit 1 on a gateway error.

    Commands that need settings, the store or Marketo raise `GatewayError`s (settings invalid,
    store unreachable, Marketo refused); without this a user would get a traceback.
    """
    for command in group.commands.values():
        if isinstance(command, click.Group):
            guard_commands(command)
        elif command.callback is not None and not getattr(command.callback, "guarded", False):
            command.callback = _guarded(command.callback)


def _guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except SettingsInvalid as exc:
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            fail("settings are invalid; fix them with `flask config` (see the problems above)")
        except GatewayError as exc:
            fail(exc.message)

    run.guarded = True  # type: ignore[attr-defined]
    return run
