"""The boot hook: the agent archive, the script that runs its ``restore``, and on systemd
hosts the unit that runs it before Docker; installed with the first boot file, removed with
the last."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import sys
from pathlib import Path

from vlaninfra.host.errors import OpError

from ._store import ROOT_ENV, UNIT_NAME, Store, write

__all__ = ["install", "own_archive", "remove"]


def own_archive() -> bytes:
    """The bytes of the agent archive this process runs from (the boot hook runs a copy)."""
    archive = getattr(getattr(sys.modules[__name__], "__loader__", None), "archive", None)
    if not archive:
        raise OpError(errno.ENOTSUP, "the agent does not run from its archive (zipapp), so it "
                                     "cannot install the boot hook that restores objects")
    with open(archive, "rb") as f:
        return f.read()


def _hook_text(store: Store) -> str:
    prefix = "" if store.root == Path("/") else f"export {ROOT_ENV}='{store.root}'\n"
    return (
        "#!/bin/sh\n"
        "# vlaninfra boot hook: re-creates the links, addresses and routes vlaninfra made\n"
        f"# (kept in {store.persist_dir}), before Docker starts. Written, and removed with the\n"
        "# last of those files, by vlaninfra's host agent: do not edit.\n"
        f"{prefix}exec {sys.executable or '/usr/bin/python3'} -I {store.archive} restore\n"
    )


def _unit_text(store: Store) -> str:
    return (
        "# Written, and removed with the last object it restores, by vlaninfra: do not edit.\n"
        "[Unit]\n"
        "Description=vlaninfra: re-create the links, addresses and routes it made\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "Before=docker.service\n"
        f"ConditionDirectoryNotEmpty={store.persist_dir}\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart={store.hook}\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def _systemctl_reload(store: Store) -> None:
    if store.root != Path("/"):
        return  # a lab host's private root: the machine's systemd is not its init
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["systemctl", "daemon-reload"], capture_output=True, timeout=30,
                       check=False)


def install(store: Store, archive: bytes) -> None:
    write(store.archive, archive, 0o600)
    write(store.hook, _hook_text(store).encode(), 0o700)
    if store.systemd():
        changed = write(store.unit, _unit_text(store).encode(), 0o644)
        store.unit_link.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not store.unit_link.is_symlink():
            store.unit_link.unlink(missing_ok=True)
            store.unit_link.symlink_to(f"../{UNIT_NAME}")
            changed = True
        if changed:
            _systemctl_reload(store)


def remove(store: Store) -> None:
    unit = store.unit.exists() or store.unit_link.is_symlink()
    for path in (store.unit_link, store.unit, store.hook, store.archive):
        path.unlink(missing_ok=True)
    for directory in (store.archive.parent, store.persist_dir, store.base):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
    if unit:
        _systemctl_reload(store)


