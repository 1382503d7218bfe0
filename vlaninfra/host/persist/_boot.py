"""At boot: re-make every kept object (``python3 -I agent.pyz restore``, run by the hook)."""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError

from ._files import load
from ._kept import KINDS, Kept
from ._store import Store

__all__ = ["restore", "restore_main"]

_RETRY = frozenset({errno.ENODEV, errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH})
"""Restore errors that mean "not yet" at boot (a parent NIC or a next hop still coming up)."""


def _entries(store: Store, say: Callable[[str], None]) -> list[tuple[Path, str, Kept]]:
    """The readable files that name their own path, in restore order."""
    entries: list[tuple[Path, str, Kept]] = []
    for path in sorted(store.persist_dir.glob("*/*.json")):
        try:
            _, owner, kept = load(path)
            own = store.file(kept.kind, owner, kept.name)
        except (OSError, ValueError, OpError) as exc:  # OpError: a name that is not one
            say(f"vlaninfra restore: {path}: skipped, unreadable: {exc}")
            continue
        if path != own:
            say(f"vlaninfra restore: {path}: skipped, it names another object or owner")
            continue
        entries.append((path, owner, kept))
    entries.sort(key=lambda e: (KINDS.index(e[2].kind), e[0].name))
    return entries


def restore(ctx: Context, store: Store, wait: float = 30.0,
            say: Callable[[str], None] = print) -> int:
    """Re-make every kept object (802.1Q parents, shims, routes) with its owner's marks; one
    line per object. Ops that fail because a parent or next hop is not there yet are retried
    for up to ``wait`` seconds. Returns how many objects could not be restored.

    Example: ``restore(Context(), Store.from_env())`` → ``0``
    """
    deadline = time.monotonic() + wait
    failed = 0
    for _path, owner, kept in _entries(store, say):
        what = f"{kept.kind} {kept.name} (stack {owner})"
        while True:
            try:
                kept.ensure(ctx)
                say(f"vlaninfra restore: {what}: ok")
                break
            except Exception as exc:
                code = getattr(exc, "code", None)
                if code in _RETRY and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                failed += 1
                say(f"vlaninfra restore: {what}: FAILED: {getattr(exc, 'message', exc)}")
                break
    return failed


def restore_main() -> int:
    """``python3 -I agent.pyz restore``: the boot hook's entry point (exit 1 if any failed)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    store = Store.from_env()
    try:
        failed = restore(Context(), store,
                         float(os.environ.get("VLANINFRA_RESTORE_WAIT") or 30))
    except OSError as exc:
        print(f"vlaninfra restore: cannot read {store.persist_dir}: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0
