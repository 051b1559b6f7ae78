"""The native layer carries no defaults: the public wrappers are the one place that defines
them (and documents them), so a default can never differ between the two layers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from trainstore import _native

# Native parameters that deliberately keep a default, as "callable.parameter": reason. Only a
# native callable that is public API itself (exported by ``trainstore`` without a wrapper)
# should need one; there is none today.
ALLOWED_DEFAULTS: dict[str, str] = {}


def _native_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every function of ``_native`` and every method (static ones included) of its classes."""
    for name, value in sorted(vars(_native).items()):
        if inspect.isclass(value) and value.__module__ == _native.__name__:
            for attr in sorted(vars(value)):
                method = getattr(value, attr)
                if callable(method) and not inspect.isclass(method):
                    yield f"{name}.{attr}", method
        elif callable(value) and not inspect.isclass(value):
            yield name, value


def _signatures() -> dict[str, inspect.Signature]:
    found = {}
    for name, function in _native_callables():
        try:
            found[name] = inspect.signature(function)
        except (TypeError, ValueError):
            continue  # no text signature (some slot wrappers): nothing to check
    return found


def test_native_callables_have_no_defaults_besides_the_allowed_ones() -> None:
    signatures = _signatures()
    # The walk really reaches functions, methods and static methods.
    for name in [
        "synthetic_snapshots",
        "write_back",
        "Workspace.open",
        "SnapshotSource.open_doris",
        "SnapshotSource.query",
        "FeatureStore.get_historical_features",
        "TrainingSets.create_from_features",
        "SetGovernance.lease",
    ]:
        assert name in signatures, f"{name} was not inspected"
    defaults = {
        f"{name}.{p.name}"
        for name, signature in signatures.items()
        for p in signature.parameters.values()
        if p.default is not inspect.Parameter.empty
    }
    unexpected = sorted(defaults - ALLOWED_DEFAULTS.keys())
    assert not unexpected, (
        f"native parameters with defaults: {unexpected}; give the default in the public "
        "wrapper and have it pass the argument (or allow-list it with a reason)"
    )
    stale = sorted(ALLOWED_DEFAULTS.keys() - defaults)
    assert not stale, f"allow-listed defaults that no longer exist: {stale}"
