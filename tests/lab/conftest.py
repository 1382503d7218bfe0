"""Fixtures of the lab tests: real namespaces, dockerd and sshd (needs root; every test here is
marked `lab`, which tests/conftest.py skips without root).

The namespace-lab tests use their own lab instances (``t1`` …), never ``default``, which other
test suites use; every instance is removed at the end, even when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlaninfra.lab import Inventory, lab_down, lab_up

# The instance most namespace-lab tests share: two sites of two hosts each.
SHARED = "t1"


@pytest.fixture(scope="session")
def lab() -> Iterator[Inventory]:
    """Lab instance ``t1``: sites a and b, two Docker hosts each; removed afterwards."""
    lab_down(SHARED)  # leftovers of an interrupted run
    try:
        yield lab_up(hosts=2, sites=2, instance=SHARED)
    finally:
        lab_down(SHARED)
