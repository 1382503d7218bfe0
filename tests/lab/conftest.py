"""Fixtures of the lab tests: real namespaces, dockerd and sshd (needs root).

The namespace-lab tests use their own lab instances (``t1`` …), never ``default``, which other
test suites use; every instance is removed at the end, even when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlaninfra.lab import Inventory, lab_down, lab_up

# The instance most namespace-lab tests share: two sites of two hosts each.
SHARED = "t1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip `lab`-marked tests in this directory, with the reason, when not root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="lab tests need root (network namespaces, dockerd, sshd)")
    here = Path(__file__).parent
    for item in items:
        if item.get_closest_marker("lab") and here in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lab() -> Iterator[Inventory]:
    """Lab instance ``t1``: sites a and b, two Docker hosts each; removed afterwards."""
    lab_down(SHARED)  # leftovers of an interrupted run
    try:
        yield lab_up(hosts=2, sites=2, instance=SHARED)
    finally:
        lab_down(SHARED)
