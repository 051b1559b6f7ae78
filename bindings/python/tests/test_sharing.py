"""Training sets shared by several users of one workspace: who acts, permissions enforced and
audited, leases, drafts seen only by their owner, deletion and retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import trainstore as ts


def rows(n: int, start: float = 0.0) -> pa.Table:
    return pa.table({"x": [start + i for i in range(n)]})


def open_as(path: Path, user: str) -> ts.Workspace:
    return ts.Workspace.open(path, user=user)


def test_who_acts_explicit_then_environment_then_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "config.yaml"
    settings.write_text("user: carol\n")
    monkeypatch.delenv("TRAINSTORE_USER", raising=False)
    mounts = ts.MountTable(settings)
    ws = ts.Workspace.open(tmp_path / "ws", mounts=mounts)
    assert ws.user == "carol"
    assert ws.training_sets.user == "carol"
    monkeypatch.setenv("TRAINSTORE_USER", "dave")
    assert ts.Workspace.open(tmp_path / "ws", mounts=mounts).user == "dave"
    assert ts.Workspace.open(tmp_path / "ws", mounts=mounts, user="erin").user == "erin"
    v = ts.Workspace.open(tmp_path / "ws", user="erin").training_sets.create("s", rows(3))
    assert v.author == "erin"
    with pytest.raises(ts.InvalidInputError, match="user name"):
        ts.Workspace.open(tmp_path / "ws", user="no such/user")


def test_a_reader_cannot_change_a_set_and_each_refusal_is_audited(tmp_path: Path) -> None:
    alice = open_as(tmp_path, "alice").training_sets
    bob = open_as(tmp_path, "bob").training_sets
    alice.create("vibration", rows(10))
    access = alice.grant("vibration", "*", "read")
    assert (access.everyone, access.users, access.set_by) == ("read", {"alice": "admin"}, "alice")

    with pytest.raises(ts.PermissionDeniedError, match="bob may not create vibration"):
        bob.create("vibration", rows(5))
    with pytest.raises(PermissionError):  # the built-in class catches it too
        bob.tag("vibration@v1", "paper")
    with pytest.raises(ts.PermissionDeniedError):
        bob.alias("vibration@v1", "golden")
    with pytest.raises(ts.PermissionDeniedError):
        bob.delete("vibration@v1")
    with pytest.raises(ts.PermissionDeniedError, match="admin"):
        bob.grant("vibration", "bob", "admin")
    assert [v.version for v in bob.list("vibration")] == [1]

    log = bob.audit_log("vibration")
    refused = [(e.user, e.action) for e in log if not e.allowed]
    assert refused == [
        ("bob", "create"),
        ("bob", "tag"),
        ("bob", "alias"),
        ("bob", "delete"),
        ("bob", "set permissions"),
    ]
    assert all("needs" in e.detail for e in log if not e.allowed)
    assert [(e.user, e.action, e.version) for e in log if e.allowed] == [
        ("alice", "create", 1),
        ("alice", "set permissions", None),
    ]

    alice.grant("vibration", "bob", "write")
    alice.grant("vibration", "*", None)
    assert bob.create("vibration", rows(5)).version == 2
    with pytest.raises(ts.PermissionDeniedError, match="read"):
        open_as(tmp_path, "carol").training_sets.list("vibration")


def test_a_lease_excludes_other_writers_until_broken(tmp_path: Path) -> None:
    alice = open_as(tmp_path, "alice").training_sets
    bob = open_as(tmp_path, "bob").training_sets
    alice.create("vibration", rows(10))
    assert alice.lease("vibration") is None
    lease = bob.acquire_lease("vibration", timedelta(minutes=10))
    assert (lease.owner, lease.held) == ("bob", True)
    with pytest.raises(ts.LeasedError, match="leased by bob"):
        alice.create("vibration", rows(3))
    assert bob.create("vibration", rows(3)).version == 2
    broken = alice.break_lease("vibration")
    assert (broken.state, broken.broken_by, broken.held) == ("broken", "alice", False)
    assert alice.create("vibration", rows(3)).version == 3
    with pytest.raises(ts.NotFoundError):
        bob.release_lease("vibration")
    with pytest.raises(TypeError):
        bob.acquire_lease("vibration", 60)  # type: ignore[arg-type]


def test_a_draft_is_seen_only_by_its_owner_until_committed(tmp_path: Path) -> None:
    alice = open_as(tmp_path, "alice").training_sets
    bob = open_as(tmp_path, "bob").training_sets
    v1 = alice.create("vibration", rows(100))
    draft = alice.draft("vibration", base="v1")
    assert (draft.rows, draft.parent) == (100, 1)
    draft.append(pd.DataFrame({"x": [100.0 + i for i in range(50)]}))
    assert draft.rows == 150
    assert bob.drafts("vibration") == []
    assert [v.version for v in bob.list("vibration")] == [1]
    assert [d.id for d in alice.drafts("vibration")] == [draft.id]
    with pytest.raises(ts.InvalidInputError, match="the draft's set has x: Float64 in that place"):
        draft.append(pa.table({"y": [1]}))

    v2 = draft.commit(metadata={"why": "more rows"})
    assert (v2.version, v2.rows, v2.metadata) == (2, 150, {"why": "more rows"})
    assert v2.lineage["parent"] == 1
    assert bob.get("vibration", 2).to_arrow().column("x").to_pylist() == [
        float(i) for i in range(150)
    ]
    assert v2.to_arrow().slice(0, 100).equals(v1.to_arrow())
    assert alice.drafts("vibration") == []

    empty = alice.draft("vibration")
    with pytest.raises(ts.InvalidInputError, match="no rows"):
        empty.commit()
    empty.discard()
    assert alice.drafts("vibration") == []
    assert alice.fsck(older_than=timedelta(0), progress=False).ok


def test_delete_and_retain_keep_named_versions(tmp_path: Path) -> None:
    sets = open_as(tmp_path, "alice").training_sets
    for i in range(5):
        sets.create("vibration", rows(10 + i))
    sets.tag("vibration@v1", "paper")
    with pytest.raises(ts.InvalidInputError, match="tag paper"):
        sets.delete("vibration@v1")
    assert sets.delete("vibration@v5") == 5
    assert sets.get("vibration").version == 4
    assert sets.retain("vibration", keep_last=2, dry_run=True) == [2]
    assert len(sets.list("vibration")) == 4
    assert sets.retain("vibration", keep_last=2) == [2]
    assert sorted(v.version for v in sets.list("vibration")) == [1, 3, 4]
    assert sets.retain("vibration", keep_within=timedelta(days=1)) == []
    with pytest.raises(ts.InvalidInputError, match="keeps nothing"):
        sets.retain("vibration")
    collected = sets.gc(older_than=timedelta(0))
    assert len(collected) == 2
    assert [e.action for e in sets.audit_log("vibration")].count("delete") == 2


def test_namespaces_keep_sets_apart(tmp_path: Path) -> None:
    ws = open_as(tmp_path, "alice")
    ws.training_sets.create("vibration", rows(3))
    team = ws.training_sets_in("team-b")
    assert team.create("vibration", rows(5)).version == 1
    team.create("vibration", rows(6))
    assert [v.version for v in ws.training_sets.list("vibration")] == [1]
    assert sorted(v.version for v in team.list("vibration")) == [1, 2]
    assert ws.namespaces() == ["team-b"]
    assert ws.verify(progress=False).versions == 3
    with pytest.raises(ts.InvalidInputError, match="namespace"):
        ws.training_sets_in("../x")
