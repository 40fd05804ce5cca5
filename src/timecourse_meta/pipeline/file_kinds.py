"""What a path is before anything opens it: a regular file, missing, or something else.

Its own module (standard library only): the config check at Snakemake's parse and the CSV
reader both ask, and the parse should not load pandas for it.
"""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = ["special_file_kind"]


def special_file_kind(path: str | Path) -> str:
    """Empty text for a regular file (after symbolic links), "missing", or what else it is ("a
    directory", "a named pipe (FIFO)", "a device", "a socket"): reading a FIFO or a device would
    block or never end, so such paths are refused before anything opens them."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
