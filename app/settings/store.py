"""Read, write and watch the settings file: atomic writes, env overrides, masking, hot reload."""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from app.errors import SettingsInvalid
from app.settings.model import Settings
from app.settings.parse import parse
from app.settings.redact import redact
from app.settings.schema import validate

# Environment variables that win over the file, each naming the setting it fills.
ENV_OVERRIDES = {
    "MARKETO_CLIENT_ID": "client_id",
    "MARKETO_CLIENT_SECRET": "client_secret",
    "MARKETO_PRIVATE_KEY": "api_private_key",
    "GATEWAY_SECRET_KEY": "secret_key",
    "GATEWAY_STORE_URL": "store_url",
    "GATEWAY_METRICS_TOKEN": "metrics_token",
}

SECRET_KEYS = ("client_secret", "api_private_key", "secret_key", "metrics_token")

MASK = "********"

log = logging.getLogger(__name__)


class SettingsFileError(Exception):
    """The settings file cannot be read or parsed; the message says how to fix it."""


def read_raw(path: Path) -> dict[str, Any]:
    """Return the raw document in the file.

    :raises SettingsFileError: the file is missing, unreadable or not JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsFileError(
            f"no settings file at {path}; run `flask config init` first"
        ) from None
    except OSError as exc:
        raise SettingsFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsFileError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(raw, dict):
        raise SettingsFileError(f"{path} must hold a JSON object")
    return raw


def write_raw(path: Path, raw: Mapping[str, Any]) -> None:
    """Replace the file atomically (temp file, fsync, rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_raw(
    path: Path, change: Callable[[dict[str, Any]], None], *, create: bool = False
) -> dict[str, Any]:
    """Apply `change` to the file under an exclusive lock, refusing a result with new problems.

    :raises SettingsFileError: the file cannot be read.
    :raises SettingsInvalid: the change would add validation problems; nothing is written.
    """
    with _locked(path):
        if create and not path.exists():
            before: dict[str, Any] = {}
        else:
            before = read_raw(path)
        after = copy.deepcopy(before)
        change(after)
        old = set(validate(before)) if before else set()
        new = [problem for problem in validate(after) if problem not in old]
        if new:
            raise SettingsInvalid(new)
        write_raw(path, after)
        return after


def apply_env(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of the document with secrets from the environment applied (env wins)."""
    merged = dict(raw)
    for var, key in ENV_OVERRIDES.items():
        if environ.get(var):
            merged[key] = environ[var]
    return merged


def load(path: Path, environ: Mapping[str, str]) -> Settings:
    """Read, merge with the environment, validate and parse the settings.

    :raises SettingsInvalid: with every problem, including an unreadable file.
    """
    try:
        raw = apply_env(read_raw(path), environ)
    except SettingsFileError as exc:
        raise SettingsInvalid([str(exc)]) from exc
    problems = validate(raw)
    if problems:
        raise SettingsInvalid(problems)
    return parse(raw)


def masked(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy safe to print: secrets replaced, client id shortened, key hashes hidden."""
    out = copy.deepcopy(dict(raw))
    for key in SECRET_KEYS:
        if out.get(key):
            out[key] = MASK
    if out.get("client_id"):
        out["client_id"] = str(out["client_id"])[:4] + "…"
    if isinstance(out.get("store_url"), str):  # user:PASSWORD@ or ?password=
        out["store_url"] = redact(out["store_url"], MASK)
    for key in out.get("keys") or []:
        if isinstance(key, dict) and key.get("secret_hash"):
            key["secret_hash"] = MASK
    return out


class SettingsHolder:
    """Hand out the current `Settings`, reloading when the file changes (one stat per call).

    A bad edit while running (truncated, invalid, unreadable) keeps the last good settings in
    force: the problem is logged once per change of the file and shown by `problem()` (for
    `/readyz` and `flask status`) until the file is good again. Only with no good settings yet
    does `get()` raise. What clients read never names the file's directory.
    """

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self._environ = dict(environ)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = False
        self._good: Settings | None = None
        self._failure: SettingsInvalid | None = None
        self._failed_at: float | None = None

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        try:
            value = load(self.path, self._environ)
        except SettingsInvalid as exc:
            if self._failure is None or exc.problems != self._failure.problems:
                kept = "keeping the last good settings" if self._good else "nothing to serve"
                log.error("settings file %s is invalid (%s): %s", self.path, kept, exc.message)
                self._failed_at = time.time()
            self._failure = exc
        else:
            if self._failure is not None:
                log.warning("settings file %s is valid again", self.path)
            self._good, self._failure, self._failed_at = value, None, None
        self._stamp = stamp
        self._loaded = True

    def get(self) -> Settings:
        """Return the settings in force: the file's, or the last good ones while it is bad.

        :raises SettingsInvalid: no good settings since start; the gateway stays up meanwhile.
        """
        stamp = self._current_stamp()
        if stamp != self._stamp or not self._loaded:
            with self._lock:
                if stamp != self._stamp or not self._loaded:
                    self._reload(stamp)
        good = self._good
        if good is not None:
            return good
        failure = self._failure or SettingsInvalid(["the settings have not been read"])
        # A fresh exception each time: re-raising the cached one would grow its traceback
        # (and keep every raising frame alive) for as long as the file stays invalid.
        raise SettingsInvalid(list(failure.problems), self.public(failure.problems))

    def public(self, problems: list[str]) -> list[str]:
        """Return the problems as clients may read them: the file named, its directory not."""
        folder = str(self.path.parent)
        return [p.replace(str(self.path), self.path.name).replace(folder, "…") for p in problems]

    def problem(self, *, public: bool = True) -> str | None:
        """Return what is wrong with the file now (None when it is good); `public` drops paths."""
        try:
            self.get()
        except SettingsInvalid:
            pass
        failure = self._failure
        if failure is None:
            return None
        problems = self.public(failure.problems) if public else list(failure.problems)
        if self._good is None:
            return "settings are invalid: " + "; ".join(problems)
        return "the settings file is invalid, serving the last good settings: " + "; ".join(
            problems
        )

    def status(self, *, public: bool = False) -> dict[str, Any]:
        """Return the settings section of `flask status`: in force, or stale and why."""
        problem = self.problem(public=public)
        if problem is None:
            return {"settings": {"state": "ok"}}
        state = "stale" if self._good is not None else "invalid"
        since = datetime.fromtimestamp(self._failed_at or time.time(), UTC).isoformat()
        return {"settings": {"state": state, "problem": problem, "since": since}}

    def raw(self) -> dict[str, Any]:
        """Return the file's document merged with the environment (for `config show`)."""
        return apply_env(read_raw(self.path), self._environ)
