"""Suite-wide: tests marked `lab` need root (namespaces, dockerd, sshd, QEMU); without it they
are skipped, with the reason, never silently."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: real network namespaces, dockerd, sshd, QEMU")
    for item in items:
        if item.get_closest_marker("lab"):
            item.add_marker(skip)
