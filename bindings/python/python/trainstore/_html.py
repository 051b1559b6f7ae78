"""The pieces every ``_repr_html_`` is built from, so that notebooks show each object alike: a
bold title line, then small tables; every value escaped, times as ISO-8601 UTC, long tables
cut to a few rows and a line saying how many more there are."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

ROW_LIMIT = 20
"""Rows a table shows before its ``… N more rows`` line."""


class Html(str):
    """Markup shown as it is, never escaped again: what these helpers and the objects'
    ``_repr_html_`` return."""


def iso(when: datetime) -> str:
    """``when`` as ISO-8601 UTC (``2026-11-01T08:00:00Z``; milliseconds when it has some;
    naive means UTC)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    utc = aware.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds") + "Z"


def size(n: int) -> str:
    """A byte count for people: ``512 bytes``, ``1.4 KiB``, ``70.0 MiB``."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    value, unit = float(n), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return count(n, "byte") if unit == 0 else f"{value:.1f} {units[unit]}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural unless one: ``1 row``, ``3 rows``, ``2 entities``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def text(value: Any) -> Html:
    """``value`` escaped for HTML: :class:`Html` as it is, ``None`` as nothing, floats to four
    significant digits, times as ISO-8601 UTC, lists and tuples comma-separated, mappings as
    JSON."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    if isinstance(value, float):
        return Html(f"{value:.4g}")
    if isinstance(value, datetime):
        return Html(iso(value))
    if isinstance(value, (list, tuple)):
        return Html(", ".join(text(v) for v in value))
    if isinstance(value, Mapping):
        return Html(html.escape(json.dumps(value, default=str)))
    return Html(html.escape(str(value)))


def code(value: Any) -> Html:
    """``value`` escaped, in a code font (locations, hashes)."""
    return Html(f"<code>{text(value)}</code>")


def title(heading: Any, *facts: Any) -> Html:
    """The title line: ``heading`` (the object's kind and name) in bold, then the ``facts``
    given (``None`` and empty ones left out), comma-separated; a line of its own."""
    shown = ", ".join(text(f) for f in facts if f is not None and f != "")
    return Html(f"<div><b>{text(heading)}</b>" + (f": {shown}" if shown else "") + "</div>")


def fields(pairs: Sequence[tuple[str, Any]]) -> Html:
    """A two-column table, one row per ``(name, value)``; empty values (``None``, ``""``,
    empty collections) are left out, and with them all, the table."""
    rows = "".join(
        f"<tr><th>{text(name)}</th><td>{text(value)}</td></tr>"
        for name, value in pairs
        if value is not None and not (isinstance(value, (str, Sequence, Mapping)) and not value)
    )
    return Html(f"<table>{rows}</table>" if rows else "")


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    total: int | None = None,
    limit: int | None = ROW_LIMIT,
) -> Html:
    """A table with a header row and at most ``limit`` (``None``: all) of ``rows``; when
    there are more (``total``, by default ``len(rows)``), a ``… N more rows`` line after it.
    No rows, no table: nothing."""
    if not rows:
        return Html("")
    shown = rows if limit is None else rows[:limit]
    header = "".join(f"<th>{text(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{text(v)}</td>" for v in row) + "</tr>" for row in shown)
    more = (len(rows) if total is None else total) - len(shown)
    tail = f"<div>… {more} more rows</div>" if more > 0 else ""
    return Html(f"<table><tr>{header}</tr>{body}</table>{tail}")


def arrow(data: Any, limit: int | None = ROW_LIMIT) -> Html:
    """The first ``limit`` rows of a pyarrow Table as a :func:`table`."""
    shown = data if limit is None else data.slice(0, limit)
    rows = [list(r.values()) for r in shown.to_pylist()]
    return table(data.column_names, rows, total=data.num_rows, limit=limit)
