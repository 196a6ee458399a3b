"""Progress bars that suit where they are shown: every facegen progress bar comes from here.

On a terminal (or in a Jupyter output area) it is tqdm's live bar, redrawn in place. Written
to a log file, a pipe or a CI log, a redrawn bar is hundreds of carriage-return updates on
one endless line; there it is a plain line instead, the same meter tqdm would draw, each time
another twentieth of the total is done (every minute when the total is unknown) and once
more when it closes: about 20 lines a bar, never a carriage return.

Why a subclass rather than tqdm's own throttles: ``mininterval`` / ``miniters`` only make
the redraws rarer (each still starts with a carriage return and none ends the line), and a
time-based interval gives a line count that depends on the machine's speed. Overriding
``display`` is the way tqdm documents for showing its progress elsewhere, and the result is
still a tqdm: iterate it, ``update`` it, ``set_postfix`` it, use it as a context manager.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, **options: Any) -> tqdm:
    """A tqdm bar taking tqdm's arguments: live on a terminal, plain lines elsewhere.

    >>> for chunk in progress_bar(chunks, desc="encoding", unit="batch"): ...
    """
    stream = options.get("file") or sys.stderr
    kind = tqdm if redraws_in_place(stream) else _LogLines
    return kind(iterable, **options)


def redraws_in_place(stream: IO[str]) -> bool:
    """Whether ``stream`` shows a line redrawn after a carriage return as one line: a
    terminal, or a Jupyter output area (whose stream is no TTY but honours the ``\\r``)."""
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty (a plain writer), or a closed file
        return False


class _LogLines(tqdm):
    """tqdm writing its meter as a line of its own when one is due, never redrawing it."""

    LINES = 20  # a line each time another 1/LINES of the total is done
    SECONDS_BETWEEN_LINES = 60.0  # without a total

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._shown: tuple[float, float] | None = None  # (n, monotonic time) of the last line
        super().__init__(*args, **kwargs)

    # tqdm's own display returns whether it drew (close() reads it); types-tqdm says None.
    def display(self, msg: str | None = None, pos: int | None = None) -> bool:  # type: ignore[override]
        """tqdm calls this on each refresh (at most every ``mininterval``); a line is printed
        only when one is due. ``msg`` is tqdm clearing a bar: a printed line stays."""
        if msg is not None or not self._due():
            return False
        self._print_line()
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear before ``tqdm.write``: no line is ever left unfinished."""

    def close(self) -> None:
        """The last state, unless the last line showed it; then tqdm's own clean-up, told
        there is no bar to end or clear."""
        if not getattr(self, "disable", True) and (self._shown is None or self._shown[0] != self.n):
            self._print_line()
        self.leave = False
        super().close()

    def _due(self) -> bool:
        if self._shown is None:
            return True
        shown_n, shown_at = self._shown
        if self.total:
            return int(self.n * self.LINES / self.total) > int(shown_n * self.LINES / self.total)
        return time.monotonic() - shown_at >= self.SECONDS_BETWEEN_LINES

    def _print_line(self) -> None:
        self.fp.write(f"{self}\n")
        self.fp.flush()
        self._shown = (self.n, time.monotonic())
