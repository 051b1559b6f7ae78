"""The workspace's catalog (``ws.catalog``): the versioned items it keeps beside training
sets and models, such as snapshots committed by the demo or a pipeline, the feature
registry's versions and the offline store's segments. Read them back, list them, delete
versions."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from . import _html, _native
from .sources import _utc


@dataclass(frozen=True)
class CatalogVersion:
    """One version of a catalog item: who committed it and when, its data files and what it
    records."""

    item: str
    version: int
    author: str
    created_at: datetime
    files: int
    bytes: int
    metadata: Any

    @property
    def id(self) -> str:
        """``item@vN``."""
        return f"{self.item}@v{self.version}"

    @classmethod
    def _from_manifest(cls, m: dict[str, Any]) -> CatalogVersion:
        return cls(
            item=m["item"],
            version=m["version"],
            author=m["author"],
            created_at=_utc(m["created_at"]),
            files=len(m["files"]),
            bytes=sum(f["size"] for f in m["files"]),
            metadata=m.get("metadata"),
        )

    def _repr_html_(self) -> str:
        return _html.title(
            "catalog version",
            self.id,
            f"by {self.author}",
            _html.iso(self.created_at),
            _html.count(self.files, "file"),
            _html.size(self.bytes),
        ) + _html.fields([("metadata", self.metadata)])


class Catalog:
    """A workspace's catalog (``ws.catalog``). References are ``NAME`` (the latest version),
    ``NAME@v3``, ``NAME@3``, or a tag or alias, ``NAME@golden``."""

    def __init__(self, native: _native.Workspace) -> None:
        self._native = native

    def items(self) -> dict[str, int]:
        """Every item with its newest version number."""
        return self._native.items()

    def versions(self, item: str) -> builtins.list[CatalogVersion]:
        """The versions of ``item``, oldest first (deleted ones left out)."""
        manifests = json.loads(self._native.catalog_versions(item))
        return [CatalogVersion._from_manifest(m) for m in manifests]

    def get(self, reference: str) -> CatalogVersion:
        """The version ``reference`` names."""
        return CatalogVersion._from_manifest(json.loads(self._native.catalog_version(reference)))

    def read(self, reference: str) -> pa.Table:
        """The rows of the version ``reference`` names: its data files (Parquet or Arrow
        IPC), each checked against its hash. A version of other files raises
        ``CorruptDataError`` naming the file."""
        return self._native.catalog_read(reference)

    def delete(self, reference: str) -> int:
        """Deletes the version ``reference`` names (recorded, with who did it; its files go
        at the next ``gc``); returns its number. A version that a tag or an alias names is
        refused, as are the feature store's own items (roll the registry back instead)."""
        return self._native.catalog_delete(reference)

    def __repr__(self) -> str:
        return f"Catalog(items={sorted(self.items())})"

    def _repr_html_(self) -> str:
        items = sorted(self.items().items())
        return _html.title("catalog", _html.count(len(items), "item")) + _html.table(
            ["item", "latest"], [[name, f"v{version}"] for name, version in items]
        )
