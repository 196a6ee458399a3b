"""Errors a user can act on.

Anything raised as a :class:`FacegenError` reaches the user as one line on stderr and a
non-zero exit code, never as a traceback: the CLI catches it in one place.
"""

from __future__ import annotations


class FacegenError(Exception):
    """A problem with the user's input or environment, reported as one clear line.

    ``exit_code`` is 2 for usage and input mistakes (the argparse convention) and 1 for
    failures while doing the work.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class DataError(FacegenError):
    """A data source or packed data set that cannot be used as asked."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception's message as one short line for a user: its first non-blank line
    (torch's, onnxruntime's and the Hub's run long), cut at ``limit`` characters, or the
    exception's type where it says nothing."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] if len(lines[0]) <= limit else lines[0][:limit] + "..."
