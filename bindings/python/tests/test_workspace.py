"""Workspaces from Python: open and reopen on memory, local disk and S3; errors as exceptions."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import trainstore as ts


def test_import_exposes_version_and_opens_a_memory_workspace() -> None:
    assert ts.__version__.count(".") == 2
    ws = ts.Workspace.open("memory://x")
    assert ws.url == "memory://x"
    assert ws.layout_version == ts.LAYOUT_VERSION
    assert ws.items() == {}


def test_local_workspace_is_created_once_and_reopened(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    config = json.loads((tmp_path / "ws" / "trainstore.json").read_text())
    assert config["layout_version"] == ts.LAYOUT_VERSION
    again = ts.Workspace.open(str(tmp_path / "ws"), create=False)
    assert again.created_at == ws.created_at
    assert again.created_at.tzinfo == timezone.utc
    assert abs((datetime.now(timezone.utc) - ws.created_at).total_seconds()) < 600
    assert "trainstore workspace" in ws._repr_html_()


def test_missing_workspace_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(ts.NotFoundError) as info:
        ts.Workspace.open(tmp_path / "absent", create=False)
    assert isinstance(info.value, LookupError)
    assert info.value.retryable is False
    assert "workspace not found" in str(info.value)


def test_bad_locations_raise_typed_errors() -> None:
    with pytest.raises(ts.InvalidInputError) as info:
        ts.Workspace.open("gopher://nowhere/x")
    assert isinstance(info.value, ValueError)
    assert "unknown scheme" in str(info.value)
    with pytest.raises(ts.ConfigError):
        ts.Workspace.open("memory://y", storage_options={"no_such_option": "1"})
    # object_store takes any endpoint text and panicked on the first request.
    with pytest.raises(ts.ConfigError, match="http:// or https:// URL"):
        ts.Workspace.open("s3://b/ws", storage_options={"aws_endpoint": "127.0.0.1:5005"})


def test_a_newer_layout_is_refused(tmp_path: Path) -> None:
    ts.Workspace.open(tmp_path)
    config = json.loads((tmp_path / "trainstore.json").read_text())
    config["layout_version"] = ts.LAYOUT_VERSION + 1
    (tmp_path / "trainstore.json").write_text(json.dumps(config))
    with pytest.raises(ts.UnsupportedLayoutError, match="upgrade trainstore"):
        ts.Workspace.open(tmp_path)


def test_s3_workspace(s3_bucket: tuple[str, dict[str, str]]) -> None:
    url, options = s3_bucket
    ws = ts.Workspace.open(url, storage_options=options)
    assert ws.url == url
    again = ts.Workspace.open(url, storage_options=options, create=False)
    assert again.created_at == ws.created_at


def test_s3_without_conditional_put_is_refused(s3_bucket: tuple[str, dict[str, str]]) -> None:
    url, options = s3_bucket
    options = {**options, "aws_conditional_put": "disabled"}
    with pytest.raises(ts.UnsupportedStoreError, match="create-if-absent"):
        ts.Workspace.open(url, storage_options=options)


def test_secrets_stay_out_of_errors(s3_bucket: tuple[str, dict[str, str]]) -> None:
    url, options = s3_bucket
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYPYTHONKEY"
    options = {**options, "aws_secret_access_key": secret, "aws_endpoint": "http://127.0.0.1:9"}
    with pytest.raises(ts.TrainstoreError) as info:
        ts.Workspace.open(url, storage_options=options)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def test_rust_logs_reach_python_logging(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trainstore"):
        ts.Workspace.open("memory://logged")
    messages = [r.getMessage() for r in caplog.records if r.name == "trainstore"]
    assert any("workspace" in m and "memory://logged" in m for m in messages), messages


def test_gc_removes_only_files_no_version_lists(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    # What a writer killed between writing a data file and committing it leaves.
    data = tmp_path / "ws" / "catalog" / "items" / "killed" / "data"
    data.mkdir(parents=True)
    (data / "0001-part.parquet").write_bytes(b"x" * 10)
    assert ws.gc(dry_run=True).files == [], "younger than the grace period"
    dry = ws.gc(older_than=timedelta(0), dry_run=True)
    assert dry.files == ["catalog/items/killed/data/0001-part.parquet"]
    assert (dry.bytes, dry.removed) == (10, False)
    assert (data / "0001-part.parquet").exists()
    done = ws.gc(older_than=timedelta(0))
    assert done.removed and not (data / "0001-part.parquet").exists()
    with pytest.raises(ts.InvalidInputError):
        ws.gc(older_than=timedelta(seconds=-1))


def test_arguments_of_the_wrong_type_raise_type_error(tmp_path: Path) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    for wrong in (None, 3600, "6h"):
        with pytest.raises(TypeError, match="older_than must be a timedelta"):
            ws.gc(older_than=wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ws.gc(dry_run="yes")  # type: ignore[arg-type]
    for progress in (None, "no", 0):
        with pytest.raises(TypeError, match="progress must be True or False"):
            ws.verify(progress=progress)  # type: ignore[arg-type]


def test_a_workspace_is_deleted_whole_and_only_a_workspace(
    tmp_path: Path, s3_bucket: tuple[str, dict[str, str]]
) -> None:
    ws = ts.Workspace.open(tmp_path / "ws")
    ws.training_sets.create("set", {"x": [1, 2]})
    assert ts.delete_workspace(tmp_path / "ws") >= 3
    assert not (tmp_path / "ws").exists()
    with pytest.raises(ts.NotFoundError):
        ts.delete_workspace(tmp_path / "ws")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    with pytest.raises(ts.NotFoundError):
        ts.delete_workspace(tmp_path / "mine")
    assert (tmp_path / "mine" / "keep.txt").exists()
    url, options = s3_bucket
    ts.Workspace.open(url, storage_options=options).training_sets.create("set", {"x": [1]})
    assert ts.delete_workspace(url, storage_options=options) >= 3
    with pytest.raises(ts.NotFoundError):
        ts.Workspace.open(url, storage_options=options, create=False)
