"""Keeping, dropping and checking a stack's boot files: one per object, written and removed
in the same agent op as the live object; the hook goes with the last file."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from vlaninfra.host import marks
from vlaninfra.host.contract import LinkState, RouteSpec, RouteState, ShimSpec, VlanSpec

from . import _hook
from ._kept import Kept, Kind, entry_of, key_of, load_entry
from ._store import Store, failed, locked, write

__all__ = ["check", "files_of", "forget", "load", "put_back", "record"]


def record(store: Store, owner: str, kept: Kept, archive: bytes | None = None) -> Path:
    """Keep ``kept`` (the object just made) for ``owner`` and install the boot hook (with
    ``archive``, by default the running agent's own: :func:`_hook.own_archive`).

    Example: ``record(store, "infra/prod", Kept(RouteSpec("198.18.1.0/24", "192.0.2.21")))``
    → ``…/persist/infra--prod/route--198.18.1.0_24.json``
    """
    path = store.file(kept.kind, owner, kept.name)
    data = (json.dumps(entry_of(owner, kept), indent=2, sort_keys=True) + "\n").encode()
    try:
        with locked(store):
            store.persist_dir.mkdir(mode=0o700, exist_ok=True)
            write(path, data, 0o600)
            _hook.install(store, _hook.own_archive() if archive is None else archive)
    except OSError as exc:
        raise failed(path, exc) from exc
    return path


def _drop_hook_if_last(store: Store) -> None:
    if not any(store.persist_dir.glob("*/*.json")):
        _hook.remove(store)


def forget(store: Store, kind: Kind, owner: str, name: str) -> bool:
    """Remove ``owner``'s file of ``kind`` object ``name`` (the hook too, with the last file);
    False when there was none."""
    path = store.file(kind, owner, key_of(kind, name))
    if not path.exists() and not store.base.exists():
        return False  # nothing kept: touch nothing (a host without files gets no directory)
    try:
        with locked(store):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                removed = False
            with contextlib.suppress(OSError):
                path.parent.rmdir()
            _drop_hook_if_last(store)
    except OSError as exc:
        raise failed(path, exc) from exc
    return removed


def files_of(store: Store, owner: str) -> dict[str, str]:
    """``owner``'s boot files as they are now (name → text): what a commit-confirmed guard
    keeps with the links and routes, so that its restore also puts back what the host would
    re-create at boot."""
    return {p.name: p.read_text() for p in sorted(store.owner_dir(owner).glob("*.json"))}


def put_back(store: Store, owner: str, files: Mapping[str, str]) -> None:
    """Make ``owner``'s boot files exactly ``files`` (from :func:`files_of`): the others of
    ``owner`` go, the hook stays while any stack keeps a file. Other stacks' files are never
    touched."""
    if not files and not store.owner_dir(owner).exists():
        return
    try:
        with locked(store):
            for path in store.owner_dir(owner).glob("*.json"):
                if path.name not in files:
                    path.unlink()
            for name, text in files.items():
                store.persist_dir.mkdir(mode=0o700, exist_ok=True)
                write(store.owner_dir(owner) / name, text.encode(), 0o600)
            with contextlib.suppress(OSError):
                store.owner_dir(owner).rmdir()  # only when empty
            if not any(store.persist_dir.glob("*/*.json")):
                _hook.remove(store)
            elif not store.hook.exists():
                _hook.install(store, _hook.own_archive())
    except OSError as exc:
        raise failed(store.owner_dir(owner), exc) from exc


def load(path: Path) -> tuple[object, str, Kept]:
    """``(raw JSON, owner, object)`` of the file at ``path``; ``ValueError`` when it is not
    one of ours, ``OSError`` when it cannot be read."""
    raw: object = json.loads(path.read_text())
    owner, kept = load_entry(raw)
    return raw, owner, kept


def _interfaces(values: Iterable[str]) -> list[str]:
    return sorted(str(ipaddress.ip_interface(v)) for v in values)


def _wanted(kept: Kept, owner: str, live: LinkState | RouteState,
            ) -> tuple[dict[str, object], dict[str, object]]:
    """What the file would make, and what is live, compared key by key."""
    s = kept.spec
    if isinstance(s, RouteSpec) or isinstance(live, RouteState):
        assert isinstance(s, RouteSpec) and isinstance(live, RouteState)
        want: dict[str, object] = {"proto": "vlaninfra", "gateway": s.via}
        have: dict[str, object] = {"proto": live.proto, "gateway": live.gateway}
        if s.dev:
            want["dev"], have["dev"] = s.dev, live.dev
        return want, have
    want = {"alias": marks.alias(kept.mark.owner, kept.mark.spec), "owner": owner}
    have = {"alias": live.alias, "owner": kept.mark.owner}
    if isinstance(s, VlanSpec):
        want.update(kind="vlan", parent=s.trunk, vlan_id=s.vlan_id)
        have.update(kind=live.kind, parent=live.parent, vlan_id=live.vlan_id)
    elif isinstance(s, ShimSpec):
        addresses = [s.address] if s.address else []
        want.update(kind=s.kind.value, parent=s.parent, mode=s.mode.value,
                    addresses=_interfaces([*addresses, *s.extra_addresses]),
                    routes=sorted(str(ipaddress.ip_network(r)) for r in s.routes))
        have.update(kind=live.kind, parent=live.parent, mode=live.mode,
                    addresses=_interfaces(live.addresses), routes=sorted(live.routes))
    return want, have


def check(store: Store, kind: Kind, owner: str, live: LinkState | RouteState | None) -> str:
    """``"ok"`` when ``owner``'s file would re-create exactly the ``live`` object (as its read
    op reports it, marks included), else what is wrong with the file.

    Example: ``check(store, "shim", "infra/prod", shim_read(ctx, "shim0"))`` → ``"missing"``
    """
    if live is None:
        return "ok"  # no object, nothing to keep: the read reports the object gone
    name = key_of(kind, live.dst if isinstance(live, RouteState) else live.name)
    try:
        raw, _, kept = load(store.file(kind, owner, name))
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if kept.kind != kind or raw != entry_of(owner, kept):
        return "altered (its header does not match its args)"
    want, have = _wanted(kept, owner, live)
    differs = sorted(k for k in want if want[k] != have[k])
    if differs:
        return "differs from the live object in " + ", ".join(
            f"{k} ({have[k]} live, {want[k]} kept)" for k in differs)
    return "ok"
