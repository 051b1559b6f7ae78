"""Progress bars for long operations.

Rust reports progress through ``begin(label, total)``, ``advance(n)`` and ``finish()``.
:class:`ProgressBar` draws it with ``tqdm.auto`` when tqdm is installed and the output is a
notebook or a terminal, and as a few plain lines otherwise (logs and CI stay readable).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _interactive() -> bool:
    try:
        from IPython import get_ipython  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return sys.stderr.isatty()
    return get_ipython() is not None or sys.stderr.isatty()


class ProgressBar:
    """Draws one operation's progress at a time.

    With ``delay`` (seconds), an operation is shown only once it has run that long: calls that
    are usually quick (a query, a join) stay silent unless they take a while.
    """

    def __init__(self, stream: TextIO | None = None, delay: float = 0.0) -> None:
        self._stream = stream
        self._delay = delay
        self._bar: Any = None
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._quarter = 0
        self._started = 0.0
        self._shown = False

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def begin(self, label: str, total: int | None) -> None:
        self._label, self._total, self._done, self._quarter = label, total, 0, 0
        self._started, self._shown = time.monotonic(), False
        if self._stream is None and _interactive():
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=label, delay=self._delay)
                return
        if self._due():
            self._line()

    def advance(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if not self._shown:
            if self._due():
                self._line()
            return
        if self._total:
            quarter = self._done * 4 // self._total
            if self._quarter < quarter < 4:
                self._quarter = quarter
                self._line()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        if self._shown or self._due():
            self._line()

    def _due(self) -> bool:
        """Whether the operation has run long enough to be shown."""
        return time.monotonic() - self._started >= self._delay

    def _line(self) -> None:
        if self._total:
            percent = min(100, self._done * 100 // self._total)
            text = f"{self._label}: {percent}% ({self._done}/{self._total})"
        else:
            text = f"{self._label}: {self._done} done"
        self._shown = True
        print(text, file=self._out(), flush=True)


QUICK_CALL_DELAY = 1.0
"""Seconds before calls that are usually quick (queries, joins, materialization) show
progress."""


def _bar_if(progress: bool, delay: float = 0.0) -> ProgressBar | None:
    """A bar when ``progress`` is ``True``; anything but a bool is a mistake, not a choice."""
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    return ProgressBar(delay=delay) if progress else None


def _quick_bar(progress: bool) -> ProgressBar | None:
    """A bar for a call that is usually quick: shown after :data:`QUICK_CALL_DELAY` seconds."""
    return _bar_if(progress, QUICK_CALL_DELAY)
