"""Errors caused by user input (sheets, configuration) and how workflow steps report them.

User-data errors carry a one-line message that names what is wrong and where, so a researcher can
fix the sheet or the config without reading a traceback. Workflow scripts wrap their body in
`exit_on_error`, which writes that line to the step's log and to stderr and exits non-zero.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ConfigError", "SheetError", "TimecourseMetaError", "excerpt", "exit_on_error"]

# Longest cell text quoted in a message: a binary or foreign file must not flood a CI log.
EXCERPT_CHARS = 60


def _one_line(text: str) -> str:
    """Collapse whitespace (including newlines) so a message stays on one line."""
    return " ".join(str(text).split())


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped quotation of a cell for an error line: Python `repr` of at most `limit`
    characters (control characters, NUL bytes and line breaks are shown escaped), with the
    full length appended when the text was cut."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class TimecourseMetaError(Exception):
    """Base class of errors caused by user input; `str(err)` is a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class SheetError(TimecourseMetaError):
    """A problem in an input sheet, located by file, CSV line number and column.

    `line` is the 1-based line number in the file where the offending record starts (the header
    is line 1), i.e. what a text editor or spreadsheet shows, not a 0-based data-frame index.
    """

    def __init__(
        self,
        file: str | Path,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        found: object | None = None,
    ) -> None:
        self.file = str(file)
        self.line = line
        self.column = column
        self.found = found
        where = [self.file]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        text = f"{', '.join(where)}: {message}"
        if found is not None:
            text += f" (found {excerpt(found)})"
        super().__init__(text)


class ConfigError(TimecourseMetaError):
    """A problem in the workflow configuration (config.yaml or --config overrides)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"config '{key}': {message}" if key else f"config: {message}")


@contextmanager
def exit_on_error(log_path: str | Path | None, step: str) -> Iterator[Callable[[str], None]]:
    """Run a workflow step; turn errors into a one-line message, a log entry and exit code 1.

    Yields a `log(message)` function that appends a line to the step's log. User-data errors
    (`TimecourseMetaError`) are reported as their one-line message only; any other exception is
    a bug: its traceback goes to the log and a one-line pointer to the log goes to stderr.
    """
    handle = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115

    def log(message: str) -> None:
        if handle is not None:
            handle.write(f"{message}\n")
            handle.flush()

    try:
        yield log
    except TimecourseMetaError as err:
        log(f"ERROR: {err}")
        print(f"{step}: ERROR: {err}", file=sys.stderr)
        if handle is not None:
            handle.close()
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - report unexpected failures without a bare traceback
        log(traceback.format_exc())
        where = f" (traceback in {log_path})" if log_path else ""
        print(f"{step}: unexpected error: {_one_line(repr(err))}{where}", file=sys.stderr)
        if handle is not None:
            handle.close()
        sys.exit(1)
    if handle is not None:
        handle.close()
