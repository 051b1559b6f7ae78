"""Named mounts from Python: the same settings file as the CLI, secrets redacted, checks."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainstore as ts


@pytest.fixture
def mounts(tmp_path: Path) -> ts.MountTable:
    return ts.MountTable(tmp_path / "config.yaml")


def test_add_list_remove_persists(mounts: ts.MountTable, tmp_path: Path) -> None:
    mounts.add("data", str(tmp_path / "data"))
    with pytest.raises(ts.ConfigError, match="plain text") as info:
        mounts.add("lake", "s3://bucket/prefix", {"aws_secret_access_key": "hunter2hunter2"})
    assert "hunter2" not in str(info.value)
    mounts.add(
        "lake",
        "s3://bucket/prefix",
        {"aws_secret_access_key": "hunter2hunter2"},
        allow_literal_secrets=True,
    )
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o600
    listed = mounts.list()
    assert set(listed) == {"data", "lake"}
    assert "hunter2" not in repr(listed)
    assert "hunter2" in (tmp_path / "config.yaml").read_text()  # stored, as the user asked
    reloaded = ts.MountTable(mounts.path)
    assert set(reloaded.list()) == {"data", "lake"}
    assert reloaded.remove("lake") is True
    assert reloaded.remove("lake") is False
    assert set(ts.MountTable(mounts.path).list()) == {"data"}


def test_workspace_on_a_named_mount(mounts: ts.MountTable, tmp_path: Path) -> None:
    mounts.add("pvc", str(tmp_path / "pvc"))
    ws = ts.Workspace.open("mount://pvc/team/ws", mounts=mounts)
    assert (tmp_path / "pvc" / "team" / "ws" / "trainstore.json").exists()
    assert ws.url.endswith("/pvc/team/ws")
    with pytest.raises(ts.NotFoundError, match="mount not found: nope"):
        ts.Workspace.open("mount://nope/ws", mounts=mounts)


def test_invalid_mounts_are_rejected(mounts: ts.MountTable) -> None:
    with pytest.raises(ts.InvalidInputError, match="mount name"):
        mounts.add("bad name", "memory://x")
    with pytest.raises(ts.InvalidInputError, match="credentials do not belong in the URL"):
        mounts.add("leaky", "s3://AKIA:topsecretvalue@bucket/x")
    assert mounts.list() == {}


def test_arguments_of_the_wrong_type_raise_type_error(mounts: ts.MountTable) -> None:
    for allow in (None, "yes"):
        with pytest.raises(TypeError, match="allow_literal_secrets"):
            mounts.add("scratch", "memory://x", None, allow)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress must be True or False"):
        mounts.check("memory://x", progress="no")  # type: ignore[arg-type]
    assert mounts.list() == {}


def test_check_reports_progress_and_refuses_broken_stores(
    mounts: ts.MountTable,
    s3_bucket: tuple[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, options = s3_bucket
    assert mounts.check(url, options) == url
    assert "100%" in capsys.readouterr().err
    with pytest.raises(ts.UnsupportedStoreError):
        mounts.check(url, {**options, "aws_conditional_put": "disabled"}, progress=False)


def test_secret_references_resolve_from_the_environment(
    mounts: ts.MountTable,
    s3_bucket: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, options = s3_bucket
    monkeypatch.setenv("TS_TEST_S3_SECRET", options.pop("aws_secret_access_key"))
    mounts.add("lake", url, {**options, "aws_secret_access_key": "${TS_TEST_S3_SECRET}"})
    assert "${TS_TEST_S3_SECRET}" in repr(mounts.list())
    reloaded = ts.MountTable(mounts.path)
    ws = ts.Workspace.open("mount://lake", mounts=reloaded)
    assert ws.url == url
    monkeypatch.delenv("TS_TEST_S3_SECRET")
    with pytest.raises(ts.ConfigError, match="TS_TEST_S3_SECRET"):
        ts.Workspace.open("mount://lake", mounts=ts.MountTable(mounts.path))
