"""What the command-line programs share: their one-line error report. Local."""

from __future__ import annotations

import sys
import traceback


def report_error(prog: str, exc: BaseException, debug: bool = False) -> int:
    """Write ``exc`` to stderr as one line ``prog: error: ...`` and return the exit status 1.

    ``ValueError`` (``DataError``, ``PlotError``) and ``OSError`` messages are
    shown as they are, an ``OSError`` with a file as ``file: reason``, any
    other exception with its type; ``debug`` prints the traceback first.
    """
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, ValueError | OSError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    sys.stderr.write(f"{prog}: error: {' '.join(text.split())}\n")
    return 1
