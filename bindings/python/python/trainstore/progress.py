"""Progress bars for long operations.

Rust reports progress through ``begin(label, total)``, ``advance(n)`` and ``finish()``.
:class:`ProgressBar` draws it with ``tqdm.auto`` when tqdm is installed and the output is a
notebook or a terminal, and as a few plain lines otherwise (logs and CI stay readable).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def _interactive() -> bool:
    try:
        from IPython import get_ipython  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return sys.stderr.isatty()
    return get_ipython() is not None or sys.stderr.isatty()


class ProgressBar:
    """Draws one operation's progress at a time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._bar: Any = None
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._quarter = 0

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def begin(self, label: str, total: int | None) -> None:
        self._label, self._total, self._done, self._quarter = label, total, 0, 0
        if self._stream is None and _interactive():
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=label)
                return
        self._line()

    def advance(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
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
        self._line()

    def _line(self) -> None:
        if self._total:
            percent = min(100, self._done * 100 // self._total)
            text = f"{self._label}: {percent}% ({self._done}/{self._total})"
        else:
            text = f"{self._label}: {self._done} done"
        print(text, file=self._out(), flush=True)


def _bar_if(progress: bool) -> ProgressBar | None:
    """A bar when ``progress`` is ``True``; anything but a bool is a mistake, not a choice."""
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    return ProgressBar() if progress else None
