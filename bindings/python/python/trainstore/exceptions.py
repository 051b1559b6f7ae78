"""The exceptions trainstore raises.

Every error from the Rust core arrives as a subclass of :class:`TrainstoreError`, which also
derives from the matching built-in where there is one, so ``except ValueError`` keeps working.
Each instance carries ``retryable``: whether repeating the same call may succeed.
"""

from __future__ import annotations

import builtins


class TrainstoreError(Exception):
    """Base class of every trainstore error."""

    retryable: bool = False


class InvalidInputError(TrainstoreError, ValueError):
    """A value passed in is malformed; the message names the parameter and the value."""


class NotFoundError(TrainstoreError, LookupError):
    """A named thing (workspace, mount, version, ...) does not exist."""


class AlreadyExistsError(TrainstoreError):
    """A named thing exists already and may not be replaced (e.g. a tag)."""


class VersionConflictError(TrainstoreError):
    """Another writer committed first and retrying did not get through."""


class UnsupportedStoreError(TrainstoreError):
    """The store lacks a guarantee trainstore needs, such as atomic create-if-absent."""


class UnsupportedLayoutError(TrainstoreError):
    """The workspace was written by a newer trainstore."""


class NotSupportedError(TrainstoreError):
    """An optional capability this source or store does not offer."""


class ConfigError(TrainstoreError, ValueError):
    """Configuration is missing or malformed (settings file, option, secret reference)."""


class CorruptDataError(TrainstoreError):
    """Stored data does not match what its manifest promised."""


class MalformedDataError(TrainstoreError, ValueError):
    """A record's value could not be read as its declared type (strict parsing); the message
    names the row (uuid, nodeId, time) and the field."""


class StorageError(TrainstoreError, OSError):
    """An object store operation failed."""


class RemoteError(TrainstoreError, ConnectionError):
    """A remote service (database, Flight server) failed; see ``retryable``."""


class TimeoutError(TrainstoreError, builtins.TimeoutError):
    """An operation did not finish in time."""


class CancelledError(TrainstoreError):
    """The operation was cancelled."""


class PermissionDeniedError(TrainstoreError, PermissionError):
    """The acting user lacks the permission an operation needs (recorded in the audit log)."""


class LeasedError(TrainstoreError):
    """Another user holds the lease of what was to be changed."""


__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "ConfigError",
    "CorruptDataError",
    "InvalidInputError",
    "LeasedError",
    "MalformedDataError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "RemoteError",
    "StorageError",
    "TimeoutError",
    "TrainstoreError",
    "UnsupportedLayoutError",
    "UnsupportedStoreError",
    "VersionConflictError",
]
