"""The bars (the project's performance targets, listed in BENCHMARKS.md) as records, and the
value checks every peer script runs on its sides' answers.

A peer script measures, then calls :func:`faster`, :func:`at_most`, :func:`below`,
:func:`flat` or :func:`matches` once per bar it measured. Each call makes a :class:`Bar`
record (the comparison, the bar as text, trainstore's figure, the peer's, the ratio, the
threshold, whether it held, the command line, the date, the commit and the machine). When the
environment variable ``TRAINSTORE_BARS_FILE`` names a file, each record is appended to it as
one JSON line; ``run_all.py`` sets it and reads the records back into one summary table.

Value checks: :func:`agree` compares one side's figures (sums, counts, lengths) with a
reference side's or an oracle's and returns the disagreements as text. A script gathers them
and ends with :func:`finish`, which prints the bars it measured, prints every disagreement
naming the side and the figure, records the checks, and exits 1 when any check failed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ENV = "TRAINSTORE_BARS_FILE"
REPO = Path(__file__).resolve().parents[2]
TIMES = "\u00d7"  # the multiplication sign, as BENCHMARKS.md writes ratios

_reported: list[Bar] = []
_checked = 0


@dataclass
class Figure:
    """A second reading of a bar's comparison, reported beside the one the bar is judged on:
    a process's first call where the bar takes the best of several, or the warm figure where
    the bar is judged cold."""

    label: str
    ours: float | None
    theirs: float | None
    ratio: float | None
    held: bool | None


@dataclass
class Bar:
    comparison: str
    bar: str
    # "faster": ratio = theirs / ours >= threshold; "at_most": ratio = ours / theirs <=
    # threshold; "below": ours < threshold (no ratio); "flat": ratio = ours (the final peak) /
    # theirs (the early peak) <= threshold; "match": held when the answers are the same.
    kind: str
    unit: str
    ours: float | None
    theirs: float | None
    peer: str
    ratio: float | None
    threshold: float | None
    held: bool
    note: str = ""
    beside: Figure | None = None
    script: str = ""
    command: str = ""
    date: str = ""
    commit: str = ""
    machine: str = ""
    record: str = "bar"

    def row(self) -> list[str]:
        """The summary table's cells: comparison, bar, trainstore, peer, ratio, held, beside."""
        ours = show(self.ours, self.unit)
        theirs = show(self.theirs, self.unit)
        if self.peer and not self.bar.endswith(self.peer):
            theirs = f"{theirs} ({self.peer})"
        if self.theirs is None and self.peer:
            theirs = self.peer
        if self.kind == "match":
            ours = "identical" if self.held else "differs"
        return [
            self.comparison,
            self.bar,
            ours,
            theirs,
            ratio_text(self.ratio),
            "met" if self.held else "NOT MET",
            beside_text(self.beside, self.unit),
        ]


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit in ("µs", "us"):
        return f"{value:.1f} µs"
    if unit in ("MB", "MiB"):
        return f"{value:,.0f} {unit}"
    return f"{value:g} {unit}".strip()


def ratio_text(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "—"
    return f"{ratio:.1f}{TIMES}" if ratio >= 10 else f"{ratio:.2f}{TIMES}"


def beside_text(figure: Figure | None, unit: str) -> str:
    if figure is None:
        return ""
    held = "" if figure.held is None else (", met" if figure.held else ", not met")
    if figure.ratio is not None:
        return f"{figure.label}: {ratio_text(figure.ratio)}{held}"
    return f"{figure.label}: {show(figure.ours, unit)}{held}"


# ---------------------------------------------------------------------------------------------
# Context of a run


def command_line() -> str:
    """How this script was started, with its path relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    return " ".join(["python", shown, *sys.argv[1:]])


def commit() -> str:
    try:
        run = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return run.stdout.strip() if run.returncode == 0 else ""


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    cores = os.cpu_count() or 1
    return f"{cores} cores, {memory:.0f} GiB" + (f", {model}" if model else "")


_context: dict[str, str] = {}


def context() -> dict[str, str]:
    if not _context:
        _context.update(
            script=Path(sys.argv[0]).name,
            command=command_line(),
            date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            commit=commit(),
            machine=machine(),
        )
    return _context


def write(record: dict[str, Any]) -> None:
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(record) + "\n")


def report(bar: Bar) -> Bar:
    for key, value in context().items():
        setattr(bar, key, value)
    _reported.append(bar)
    write(asdict(bar))
    return bar


# ---------------------------------------------------------------------------------------------
# The kinds of bar


def faster(
    comparison: str,
    peer: str,
    ours: float,
    theirs: float,
    threshold: float,
    unit: str = "s",
    note: str = "",
    beside: tuple[str, float, float] | None = None,
    named: str = "",
) -> Bar:
    """trainstore takes `ours`, the peer `theirs` (times, lower is better): held when
    theirs / ours >= threshold. `beside` is (label, ours, theirs) of a second reading; `named`
    is the peer as the bar names it, when `peer` is one variant of it (its best)."""
    return _ratio_bar(
        comparison,
        f"≥ {threshold:g}{TIMES} {named or peer}",
        "faster",
        peer,
        (ours, theirs, threshold),
        unit,
        note,
        beside,
        ratio_of=lambda o, t: t / o if o > 0 else math.inf,
        holds=lambda r: r >= threshold,
    )


def at_most(
    comparison: str,
    what: str,
    ours: float,
    theirs: float,
    threshold: float,
    unit: str = "ms",
    note: str = "",
    beside: tuple[str, float, float] | None = None,
) -> Bar:
    """`ours` may be at most `threshold` times `theirs` (e.g. 10,000 versions against 100)."""
    return _ratio_bar(
        comparison,
        f"≤ {threshold:g}{TIMES} {what}",
        "at_most",
        what,
        (ours, theirs, threshold),
        unit,
        note,
        beside,
        ratio_of=lambda o, t: o / t if t > 0 else math.inf,
        holds=lambda r: r <= threshold,
    )


def _ratio_bar(
    comparison: str,
    bar: str,
    kind: str,
    peer: str,
    figures: tuple[float, float, float],
    unit: str,
    note: str,
    beside: tuple[str, float, float] | None,
    ratio_of: Callable[[float, float], float],
    holds: Callable[[float], bool],
) -> Bar:
    """A bar judged on a ratio of `figures` (ours, theirs, threshold), with the same ratio
    of the second reading `beside`."""
    ours, theirs, threshold = figures
    ratio = ratio_of(ours, theirs)
    second = None
    if beside is not None:
        label, b_ours, b_theirs = beside
        b_ratio = ratio_of(b_ours, b_theirs)
        second = Figure(label, b_ours, b_theirs, b_ratio, holds(b_ratio))
    return report(
        Bar(
            comparison=comparison,
            bar=bar,
            kind=kind,
            unit=unit,
            ours=ours,
            theirs=theirs,
            peer=peer,
            ratio=ratio,
            threshold=threshold,
            held=holds(ratio),
            note=note,
            beside=second,
        )
    )


def below(
    comparison: str,
    ours: float,
    threshold: float,
    unit: str,
    peer: str = "",
    theirs: float | None = None,
    note: str = "",
) -> Bar:
    """`ours` (a peak, say) must stay under `threshold`; `theirs` is shown beside, if any."""
    return report(
        Bar(
            comparison=comparison,
            bar=f"< {show(threshold, unit)}",
            kind="below",
            unit=unit,
            ours=ours,
            theirs=theirs,
            peer=peer,
            ratio=None,
            threshold=threshold,
            held=ours < threshold,
            note=note,
        )
    )


def flat(
    comparison: str, final: float, early: float, threshold: float, unit: str, note: str = ""
) -> Bar:
    """Resident memory stays flat: the final peak at most `threshold` times the early one."""
    ratio = final / early if early > 0 else math.inf
    return report(
        Bar(
            comparison=comparison,
            bar=f"flat: final peak ≤ {threshold:g}{TIMES} the early peak",
            kind="flat",
            unit=unit,
            ours=final,
            theirs=early,
            peer="early peak",
            ratio=ratio,
            threshold=threshold,
            held=ratio <= threshold,
            note=note,
        )
    )


def matches(comparison: str, peer: str, held: bool, note: str = "") -> Bar:
    """trainstore's answer is the peer's (the figures compared are in `note`)."""
    return report(
        Bar(
            comparison=comparison,
            bar=f"identical rows to {peer}",
            kind="match",
            unit="",
            ours=None,
            theirs=None,
            peer=peer,
            ratio=None,
            threshold=None,
            held=held,
            note=note,
        )
    )


# ---------------------------------------------------------------------------------------------
# Value checks


@dataclass
class Tolerance:
    """How far a float figure may move between sides: `absolute` or `relative` to the
    reference, whichever is larger. Integers and strings must be equal."""

    relative: float = 1e-9
    absolute: float = 0.0
    per_key: dict[str, float] = field(default_factory=dict)

    def allows(self, key: str, got: float, want: float) -> bool:
        absolute = max(self.absolute, self.per_key.get(key, 0.0))
        return math.isclose(got, want, rel_tol=self.relative, abs_tol=absolute)


def agree(
    what: str,
    side: str,
    got: Mapping[str, Any],
    reference: str,
    want: Mapping[str, Any],
    tolerance: Tolerance | None = None,
) -> list[str]:
    """Every figure of `want` (the reference side's, or an oracle's) against `side`'s `got`:
    the disagreements as text naming the side, the figure and both values."""
    global _checked
    tolerance = tolerance or Tolerance()
    problems = []
    for key, expected in want.items():
        _checked += 1
        if key not in got:
            problems.append(f"{what}: {side} has no {key} ({reference}: {expected!r})")
            continue
        value = got[key]
        if isinstance(expected, float) or isinstance(value, float):
            same = (
                value is not None
                and expected is not None
                and tolerance.allows(key, float(value), float(expected))
            )
        else:
            same = value == expected
        if not same:
            problems.append(f"{what}: {side} {key} = {value!r}, {reference} {expected!r}")
    return problems


def finish(problems: list[str]) -> None:
    """Prints the bars this run measured and the value checks; exits 1 if any check failed."""
    if _reported:
        print("\nbars measured in this run:")
        for bar in _reported:
            cells = bar.row()
            beside = f"; {cells[6]}" if cells[6] else ""
            print(
                f"  {cells[0]}: {cells[1]}: trainstore {cells[2]}, {cells[3]}, "
                f"{cells[4]}: {cells[5]}{beside}"
            )
    write(
        {
            "record": "checks",
            **context(),
            "checked": _checked,
            "problems": problems,
        }
    )
    print()
    if problems:
        for problem in problems:
            print(f"CHECK FAILED: {problem}")
        print(
            f"{len(problems)} problem(s): a side failed or disagreed ({_checked} figures compared)"
        )
        sys.exit(1)
    print(f"value checks: all {_checked} agree")
