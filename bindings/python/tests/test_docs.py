"""The examples in the package's docstrings run as written (they are what `help()` shows)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "trainstore",
    "trainstore.features",
    "trainstore.pipelines",
    "trainstore.sharing",
    "trainstore.sources",
    "trainstore.training_sets",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
