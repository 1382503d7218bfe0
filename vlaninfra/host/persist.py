"""Persistence across reboot: what vlaninfra made with netlink comes back when the host boots.

Links, addresses and routes live in the kernel only, so a reboot loses them. The agent keeps,
next to every shim, 802.1Q parent and router route it made for a stack, the op that made it,
and a boot hook re-runs those ops before Docker starts (Docker's restart policy then brings the
containers back onto those links). Files, all root-only, under the host's root (``/``; the lab's
namespace hosts, which share one filesystem, each get their own via ``VLANINFRA_HOST_ROOT``):

- ``/etc/vlaninfra/persist/<project>--<stack>/<kind>--<name>.json`` (0600, directories 0700):
  one per object: owner, kind, name, spec hash (the object's mark), the arguments of the
  kind's ensure op;
- ``/usr/local/lib/vlaninfra/agent.pyz``: the agent archive that wrote them (0600);
- ``/usr/local/sbin/vlaninfra-restore``: the boot hook, ``python3 -I agent.pyz restore`` (0700);
- on systemd hosts (``/run/systemd/system`` exists, sd_booted(3)) also
  ``/etc/systemd/system/vlaninfra-restore.service``, enabled for ``multi-user.target``, ordered
  after ``network-online.target`` and before ``docker.service``. Other inits run the hook before
  dockerd themselves (the lab's VM init does).

A file is written, rewritten and removed in the same agent op as its live object (the
``persist_owner`` argument the providers add to ``shim.ensure``, ``vlan.ensure``,
``route.ensure``, their deletes and reads); the hook, unit and archive go when the last file
does. A read reports ``persisted``: ``"ok"`` when the file would re-create exactly the live
object (same marks), else why not, which the providers show as drift.
``restore`` re-runs each stored op (802.1Q parents, then shims, then routes) with the same
owner and spec, so a restored object carries the same marks and the same ownership checks
apply (a link of that name made meanwhile by someone else is left alone and reported).

Example: ``record(Store.from_env(), "shim", {"name": "shim0", ..., "owner": "infra/prod"},
"infra/prod", archive=own_archive())``
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import inspect
import ipaddress
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlaninfra.host import marks, ops
from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError

__all__ = [
    "FORMAT",
    "KINDS",
    "ROOT_ENV",
    "UNIT_NAME",
    "Store",
    "check",
    "deleting",
    "ensuring",
    "files_of",
    "forget",
    "own_archive",
    "put_back",
    "reading",
    "record",
    "restore",
    "restore_main",
]

FORMAT = 1
ROOT_ENV = "VLANINFRA_HOST_ROOT"
"""A prefix for every file this module keeps (default ``/``): the lab's namespace hosts share
one filesystem, so each gets its own."""
UNIT_NAME = "vlaninfra-restore.service"

_ENSURE: dict[str, Callable[..., dict[str, Any]]] = {
    "vlan": ops.vlan_ensure,
    "shim": ops.shim_ensure,
    "route": ops.route_ensure,
}
KINDS = tuple(_ENSURE)
"""Kinds in restore order: a shim may sit on an 802.1Q parent; a route's next hop may be
reached through either."""
_ARGS = {
    "vlan": ("trunk", "vlan_id", "name", "owner", "spec"),
    "shim": ("name", "parent", "kind", "mode", "address", "extra_addresses", "routes", "flag",
             "owner", "spec"),
    "route": ("dst", "via", "dev"),
}
"""The arguments stored per kind: what defines the object (never ``ifindex`` or a recorded
next hop: those describe this boot's objects, not the wanted ones)."""
_KEY = {"vlan": "name", "shim": "name", "route": "dst"}
_RETRY = frozenset({errno.ENODEV, errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH})
"""Restore errors that mean "not yet" at boot (a parent NIC or a next hop still coming up)."""
_lock = threading.Lock()


@dataclass(frozen=True)
class Store:
    """Where the files are: everything under ``root`` (``/`` on a real host).

    Example: ``Store(Path("/")).file("shim", "infra/prod", "shim0")`` →
    ``/etc/vlaninfra/persist/infra--prod/shim--shim0.json``
    """

    root: Path

    @classmethod
    def from_env(cls) -> Store:
        """The store of this host (``$VLANINFRA_HOST_ROOT`` or ``/``)."""
        return cls(Path(os.environ.get(ROOT_ENV) or "/"))

    @property
    def base(self) -> Path:
        """``/etc/vlaninfra``: the lock is taken on this directory."""
        return self.root / "etc/vlaninfra"

    @property
    def persist_dir(self) -> Path:
        return self.base / "persist"

    @property
    def archive(self) -> Path:
        return self.root / "usr/local/lib/vlaninfra/agent.pyz"

    @property
    def hook(self) -> Path:
        return self.root / "usr/local/sbin/vlaninfra-restore"

    @property
    def unit(self) -> Path:
        return self.root / "etc/systemd/system" / UNIT_NAME

    @property
    def unit_link(self) -> Path:
        return self.root / "etc/systemd/system/multi-user.target.wants" / UNIT_NAME

    def systemd(self) -> bool:
        """Whether the host runs systemd (sd_booted(3): ``/run/systemd/system`` exists)."""
        return (self.root / "run/systemd/system").is_dir()

    def owner_dir(self, owner: str) -> Path:
        return self.persist_dir / _safe(owner.replace("/", "--"))

    def file(self, kind: str, owner: str, name: str) -> Path:
        return self.owner_dir(owner) / f"{kind}--{_safe(name.replace('/', '_'))}.json"


def _safe(text: str) -> str:
    """``text`` as one file name: characters other than ``[A-Za-z0-9._-]`` (and a leading
    dot) as ``%XX``."""
    out = re.sub(r"[^A-Za-z0-9._-]", lambda m: "".join(f"%{b:02x}" for b in m[0].encode()),
                 text)
    return "%2e" + out[1:] if out.startswith(".") else out or "%00"


def _name(kind: str, args: Mapping[str, Any]) -> str:
    value = args[_KEY[kind]]
    if kind == "route":
        try:
            return str(ipaddress.ip_network(value))
        except (TypeError, ValueError) as exc:
            raise OpError(errno.EINVAL, f"route {value!r}: {exc}") from None
    return str(ops.check_ifname(value))


def _entry(kind: str, owner: str, args: Mapping[str, Any]) -> dict[str, Any]:
    stored = {k: args.get(k) for k in _ARGS[kind]}
    if kind == "route":
        stored["dst"] = _name(kind, stored)
    if kind == "shim":
        stored["extra_addresses"] = list(stored.get("extra_addresses") or ())
    return {
        "format": FORMAT,
        "owner": owner,
        "kind": kind,
        "name": _name(kind, stored),
        # the object's own mark (its alias) where it has one; routes carry only proto 57
        "spec": stored.get("spec") or marks.spec_hash(stored),
        "args": stored,
    }


# -- files -------------------------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` atomically with ``mode`` (directories made 0700); False if unchanged."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".vlaninfra-", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return True


@contextlib.contextmanager
def _locked(store: Store) -> Iterator[None]:
    """One writer per host at a time (threads of this agent and other stacks' agents): an
    exclusive flock on ``/etc/vlaninfra``, retaken if the directory was replaced meanwhile."""
    with _lock:
        while True:
            store.base.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(store.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(store.base).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield
                    return
            finally:
                os.close(fd)


def _fail(path: Path, exc: OSError) -> OpError:
    return OpError(exc.errno or errno.EIO,
                   f"cannot keep {path} (what brings this object back after a reboot): "
                   f"{exc.strerror or exc}; the live change was made: free the disk or fix the "
                   "directory's permissions, then run `pulumi up` again")


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


def _install_hook(store: Store, archive: bytes) -> None:
    _write(store.archive, archive, 0o600)
    _write(store.hook, _hook_text(store).encode(), 0o700)
    if store.systemd():
        changed = _write(store.unit, _unit_text(store).encode(), 0o644)
        store.unit_link.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not store.unit_link.is_symlink():
            store.unit_link.unlink(missing_ok=True)
            store.unit_link.symlink_to(f"../{UNIT_NAME}")
            changed = True
        if changed:
            _systemctl_reload(store)


def _remove_hook(store: Store) -> None:
    unit = store.unit.exists() or store.unit_link.is_symlink()
    for path in (store.unit_link, store.unit, store.hook, store.archive):
        path.unlink(missing_ok=True)
    for directory in (store.archive.parent, store.persist_dir, store.base):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
    if unit:
        _systemctl_reload(store)


def record(store: Store, kind: str, args: Mapping[str, Any], owner: str,
           archive: bytes | None = None) -> Path:
    """Keep the op that made ``kind`` object ``args`` for ``owner`` and install the boot hook
    (with ``archive``, by default the running agent's own: :func:`own_archive`).

    Example: ``record(store, "route", {"dst": "198.18.1.0/24", "via": "192.0.2.21"},
    "infra/prod")`` → ``…/persist/infra--prod/route--198.18.1.0_24.json``
    """
    entry = _entry(kind, owner, args)
    path = store.file(kind, owner, entry["name"])
    data = (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode()
    try:
        with _locked(store):
            store.persist_dir.mkdir(mode=0o700, exist_ok=True)
            _write(path, data, 0o600)
            _install_hook(store, own_archive() if archive is None else archive)
    except OSError as exc:
        raise _fail(path, exc) from exc
    return path


def forget(store: Store, kind: str, owner: str, name: str) -> bool:
    """Remove ``owner``'s file of ``kind`` object ``name`` (the hook too, with the last file);
    False when there was none."""
    path = store.file(kind, owner, _name(kind, {_KEY[kind]: name}))
    if not path.exists() and not store.base.exists():
        return False  # nothing kept: touch nothing (a host without files gets no directory)
    try:
        with _locked(store):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                removed = False
            with contextlib.suppress(OSError):
                path.parent.rmdir()
            if not any(store.persist_dir.glob("*/*.json")):
                _remove_hook(store)
    except OSError as exc:
        raise _fail(path, exc) from exc
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
        with _locked(store):
            for path in store.owner_dir(owner).glob("*.json"):
                if path.name not in files:
                    path.unlink()
            for name, text in files.items():
                store.persist_dir.mkdir(mode=0o700, exist_ok=True)
                _write(store.owner_dir(owner) / name, text.encode(), 0o600)
            with contextlib.suppress(OSError):
                store.owner_dir(owner).rmdir()  # only when empty
            if not any(store.persist_dir.glob("*/*.json")):
                _remove_hook(store)
            elif not store.hook.exists():
                _install_hook(store, own_archive())
    except OSError as exc:
        raise _fail(store.owner_dir(owner), exc) from exc


def _load(path: Path) -> dict[str, Any]:
    entry = json.loads(path.read_text())
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise ValueError(f"not a vlaninfra persistence file of format {FORMAT}")
    if entry.get("kind") not in _ENSURE or not isinstance(entry.get("args"), dict):
        raise ValueError("unknown kind or no args")
    return entry


def _interfaces(values: Any) -> list[str]:
    return sorted(str(ipaddress.ip_interface(v)) for v in values)


def check(store: Store, kind: str, owner: str, live: Mapping[str, Any] | None) -> str:
    """``"ok"`` when ``owner``'s file would re-create exactly the ``live`` object (as its read
    op reports it, marks included), else what is wrong with the file.

    Example: ``check(store, "shim", "infra/prod", shim_read(ctx, "shim0"))`` → ``"missing"``
    """
    if live is None:
        return "ok"  # no object, nothing to keep: the read reports the object gone
    name = _name(kind, {_KEY[kind]: live.get("dst") if kind == "route" else live.get("name")})
    path = store.file(kind, owner, name)
    try:
        entry = _load(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if entry != _entry(kind, owner, entry["args"]):
        return "altered (its header does not match its args)"
    args = entry["args"]
    if kind == "route":
        want = {"proto": "vlaninfra", "gateway": args["via"]}
        have = {"proto": live.get("proto"), "gateway": live.get("gateway")}
        if args.get("dev"):
            want["dev"], have["dev"] = args["dev"], live.get("dev")
    else:
        want = {"alias": marks.alias(args["owner"], args["spec"]), "owner": owner}
        have = {"alias": live.get("alias"), "owner": args["owner"]}
        if kind == "vlan":
            want.update(kind="vlan", parent=args["trunk"], vlan_id=args["vlan_id"])
            have.update(kind=live.get("kind"), parent=live.get("parent"),
                        vlan_id=live.get("vlan_id"))
        else:
            addresses = [args["address"]] if args.get("address") else []
            want.update(kind=args["kind"], parent=args["parent"], mode=args["mode"],
                        addresses=_interfaces([*addresses, *args["extra_addresses"]]),
                        routes=sorted(str(ipaddress.ip_network(r)) for r in args["routes"]))
            have.update(kind=live.get("kind"), parent=live.get("parent"),
                        mode=live.get("mode"), addresses=_interfaces(live.get("addresses") or []),
                        routes=sorted(live.get("routes") or []))
    differs = sorted(k for k in want if want[k] != have[k])
    if differs:
        return "differs from the live object in " + ", ".join(
            f"{k} ({have[k]} live, {want[k]} kept)" for k in differs)
    return "ok"


# -- the agent's ops ---------------------------------------------------------------------------


def _with_owner_arg(fn: Callable[..., Any], wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """``wrapper`` with ``fn``'s signature plus ``persist_owner`` (the agent checks args
    against it) and ``fn``'s docstring."""
    sig = inspect.signature(fn)
    extra = inspect.Parameter("persist_owner", inspect.Parameter.KEYWORD_ONLY, default=None)
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*sig.parameters.values(), extra])
    wrapper.__doc__ = (fn.__doc__ or "") + (
        "\n\nWith ``persist_owner`` (a stack) also keeps or checks the file that brings the "
        "object back after a reboot (:mod:`vlaninfra.host.persist`).")
    wrapper.__name__ = getattr(fn, "__name__", "op")
    return wrapper


def ensuring(kind: str, fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The ensure op ``fn``, keeping the object's file after the live change when asked. An
    802.1Q parent is kept only when it is the owner's (one found there is not ours to bring
    back)."""
    def op(ctx: Context, *a: Any, persist_owner: str | None = None,
           **kw: Any) -> dict[str, Any]:
        result = fn(ctx, *a, **kw)
        if persist_owner is not None and (kind != "vlan" or result.get("created")):
            bound = inspect.signature(fn).bind(ctx, *a, **kw)
            bound.apply_defaults()
            args = dict(bound.arguments)
            if kind == "shim":  # the defaults the op chose, as the link has them
                args["mode"] = args["mode"] or result.get("mode")
                if args["kind"] == "ipvlan":
                    args["flag"] = args["flag"] or result.get("flag")
            record(Store.from_env(), kind, args, str(persist_owner))
        return result
    return _with_owner_arg(fn, op)


def deleting(kind: str, fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The delete op ``fn``, removing the object's file after the live change when asked."""
    def op(ctx: Context, *a: Any, persist_owner: str | None = None,
           **kw: Any) -> dict[str, Any]:
        result = fn(ctx, *a, **kw)
        if persist_owner is not None:
            args = inspect.signature(fn).bind(ctx, *a, **kw).arguments
            forget(Store.from_env(), kind, str(persist_owner), str(args[_KEY[kind]]))
        return result
    return _with_owner_arg(fn, op)


def reading(kind: str, fn: Callable[..., dict[str, Any] | None],
            ) -> Callable[..., dict[str, Any] | None]:
    """The read op ``fn``; when asked its result also says ``persisted`` (see :func:`check`)."""
    def op(ctx: Context, *a: Any, persist_owner: str | None = None,
           **kw: Any) -> dict[str, Any] | None:
        result = fn(ctx, *a, **kw)
        if persist_owner is not None and result is not None:
            result = {**result, "persisted": check(Store.from_env(), kind, str(persist_owner),
                                                   result)}
        return result
    return _with_owner_arg(fn, op)


# -- at boot -----------------------------------------------------------------------------------


def restore(ctx: Context, store: Store, wait: float = 30.0,
            say: Callable[[str], None] = print) -> int:
    """Re-run every stored op (802.1Q parents, shims, routes); one line per object. Ops that
    fail because a parent or next hop is not there yet are retried for up to ``wait`` seconds.
    Returns how many objects could not be restored.

    Example: ``restore(Context(), Store.from_env())`` → ``0``
    """
    entries: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(store.persist_dir.glob("*/*.json")):
        try:
            entry = _load(path)
        except (OSError, ValueError) as exc:
            say(f"vlaninfra restore: {path}: skipped, unreadable: {exc}")
            continue
        if path != store.file(entry["kind"], entry["owner"], entry["name"]):
            say(f"vlaninfra restore: {path}: skipped, it names another object or owner")
            continue
        entries.append((path, entry))
    entries.sort(key=lambda e: (KINDS.index(e[1]["kind"]), e[0].name))
    deadline = time.monotonic() + wait
    failed = 0
    for _path, entry in entries:
        what = f"{entry['kind']} {entry['name']} (stack {entry['owner']})"
        while True:
            try:
                _ENSURE[entry["kind"]](ctx, **entry["args"])
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
