"""Log lines that a client cannot forge: control characters in any logged value are escaped.

Values from requests (paths, headers, cookies, event names) and from Marketo's answers (error
messages echo what was sent) end up in log messages; a newline in one would start a fake line,
an ANSI escape would repaint a terminal. `EscapeFilter` rewrites every record it passes so its
message is one line of printable text; the app installs it on its handlers, the shipped
gunicorn config (app/gunicorn_conf.py) on the error and access logs.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

# C0 controls, DEL, C1 controls, lone surrogates and the Unicode line/paragraph separators.
_UNSAFE = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\u2028\\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str) -> str:
    """Return `text` with every control character written as a visible escape (`\\n`, `\\x1b`)."""
    return _UNSAFE.sub(_escaped, text)


class EscapeFilter(logging.Filter):
    """Make a record's message (arguments included) and traceback safe to write as log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Escape the formatted message in place; tracebacks keep their lines, indented."""
        message = record.getMessage()
        safe = escape(message)
        if safe != message or record.args:
            record.msg, record.args = safe, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and not getattr(record, "exc_escaped", False):
            # Lines of a traceback are its own; an exception message spread over several
            # lines shows indented, so none of it can pass for a line of the log.
            lines = record.exc_text.split("\n")
            record.exc_text = "\n".join(["  " + escape(line) for line in lines])
            record.exc_escaped = True
        if record.stack_info:
            record.stack_info = "\n".join("  " + escape(x) for x in record.stack_info.split("\n"))
        return True


def install(handlers: list[logging.Handler]) -> None:
    """Add the escape filter to each handler once."""
    for handler in handlers:
        if not any(isinstance(f, EscapeFilter) for f in handler.filters):
            handler.addFilter(EscapeFilter())


def init_app(app: Flask) -> None:
    """Escape what the app's loggers write (Flask's default handler, or the root's handlers)."""
    install(list(app.logger.handlers) + list(logging.getLogger().handlers))
