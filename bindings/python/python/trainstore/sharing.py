"""Sharing training sets among users: permissions, the audit log, leases and drafts
(``ws.training_sets.grant``, ``.audit_log``, ``.acquire_lease``, ``.draft``).

>>> import pyarrow as pa, trainstore as ts
>>> ws = ts.Workspace.open("memory://sharing-doc", user="alice")
>>> _ = ws.training_sets.create("vibration", pa.table({"x": [1.0, 2.0]}))
>>> ws.training_sets.grant("vibration", "*", "read").everyone
'read'
>>> [e.action for e in ws.training_sets.audit_log("vibration")]
['create', 'set permissions']

Every operation checks the acting user's permission (``read`` < ``write`` < ``admin``).
Until an admin sets permissions, the author of a set's first version is its admin and
everyone else may write. trainstore runs with your storage credentials, so these rules
keep cooperating users and scripts in line; they cannot stop someone who writes to the
store with other tools. A deployment that must enforce them gives each user their own
credentials and lets the store enforce access (``docs/training-sets.md``, "Permissions and
the audit log").
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from . import _html
from .sources import _utc

if TYPE_CHECKING:
    from .training_sets import TrainingSets, TrainingSetVersion

Permission = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class Access:
    """Who may do what with a set."""

    everyone: Permission | None
    """What users not named in ``users`` may do (``None``: nothing, not even read)."""
    users: dict[str, Permission]
    set_by: str | None
    """Who last set the permissions; ``None`` while they are the implicit ones."""
    set_at: datetime | None

    def _repr_html_(self) -> str:
        set_by = "implicit" if self.set_by is None else f"set by {self.set_by}"
        return _html.title(
            "access", f"everyone {self.everyone or 'nothing'}", set_by, self.set_at
        ) + _html.table(["user", "permission"], sorted(self.users.items()))

    @classmethod
    def _from(cls, raw: dict[str, Any]) -> Access:
        at = raw.get("set_at")
        return cls(
            raw["everyone"], dict(raw["users"]), raw.get("set_by"), None if at is None else _utc(at)
        )


@dataclass(frozen=True)
class AuditEvent:
    """One entry of a set's audit log."""

    at: datetime
    user: str
    action: str
    """``create``, ``tag``, ``alias``, ``delete``, ``set permissions``, ``lease``, … or, for a
    refused attempt, what was attempted."""
    version: int | None
    allowed: bool
    """``False`` for an attempt refused for want of permission."""
    detail: str

    def _repr_html_(self) -> str:
        return _html.title(
            f"audit event {self.action}", None if self.allowed else "refused"
        ) + _html.fields(
            [
                ("at", self.at),
                ("user", self.user),
                ("version", None if self.version is None else f"v{self.version}"),
                ("detail", self.detail),
            ]
        )


@dataclass(frozen=True)
class Lease:
    """A set's lease: while held, only its owner may change the set."""

    owner: str
    since: datetime
    expires_at: datetime
    state: Literal["held", "released", "broken"]
    broken_by: str | None

    @property
    def held(self) -> bool:
        """Whether it still excludes others now."""
        return self.state == "held" and self.expires_at > datetime.now(timezone.utc)

    def _repr_html_(self) -> str:
        return _html.title(f"lease of {self.owner}", self.state) + _html.fields(
            [("since", self.since), ("expires", self.expires_at), ("broken by", self.broken_by)]
        )

    @classmethod
    def _from(cls, raw: dict[str, Any]) -> Lease:
        return cls(
            raw["owner"],
            _utc(raw["since"]),
            _utc(raw["expires_at"]),
            raw["state"],
            raw.get("by"),
        )


class Draft:
    """A version of a set in the making, seen only by its owner until committed.

    It starts empty or from a version whose files it lists without copying (copy-on-write);
    :meth:`append` adds rows as new files, :meth:`commit` makes it a version (its quality
    measured over all its rows), :meth:`discard` gives it up.
    """

    def __init__(self, sets: TrainingSets, raw: dict[str, Any]) -> None:
        self._sets = sets
        self.name: str = raw["name"]
        self.id: str = raw["id"]
        self.parent: int | None = raw["parent"]
        self.rows: int = raw["rows"]
        self.created_at = _utc(raw["created_at"])

    def append(self, data: Any) -> Draft:
        """Adds rows (anything :meth:`TrainingSets.create` takes) as new files; saved at once."""
        from .training_sets import _reader

        raw = json.loads(self._sets._governance.append_to_draft(self.name, self.id, _reader(data)))
        self.rows = raw["rows"]
        return self

    def commit(
        self, metadata: Mapping[str, Any] | None = None, label: str | None = None
    ) -> TrainingSetVersion:
        """Commits the draft as a new version (``label`` defaults to the parent's) and
        removes the draft."""
        meta = None if metadata is None else json.dumps(dict(metadata))
        return self._sets._version(
            self._sets._governance.commit_draft(self.name, self.id, meta, label)
        )

    def discard(self) -> None:
        """Gives the draft up; files only it listed are collected by ``gc``."""
        self._sets._governance.discard_draft(self.name, self.id)

    def _origin(self) -> str:
        """What the draft started from, in words."""
        return "from nothing" if self.parent is None else f"from v{self.parent}"

    def __repr__(self) -> str:
        return f"Draft({self.name!r}, id={self.id!r}, rows={self.rows}, {self._origin()})"

    def _repr_html_(self) -> str:
        return _html.title(
            f"draft of {self.name}", _html.count(self.rows, "row"), self._origin()
        ) + _html.fields([("id", self.id), ("created", self.created_at)])


def _events(raw: str) -> builtins.list[AuditEvent]:
    return [
        AuditEvent(
            _utc(e["at"]), e["user"], e["action"], e["version"], e["allowed"], e.get("detail", "")
        )
        for e in json.loads(raw)
    ]


def _lease(raw: str) -> Lease | None:
    value = json.loads(raw)
    return None if value is None else Lease._from(value)


__all__ = ["Access", "AuditEvent", "Draft", "Lease", "Permission"]
