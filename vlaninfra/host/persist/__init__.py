"""Persistence across reboot: what vlaninfra made with netlink comes back when the host boots.

Links, addresses and routes live in the kernel only, so a reboot loses them. The agent keeps,
next to every shim, 802.1Q parent and router route it made for a stack, the op that made it,
and a boot hook re-runs those ops before Docker starts (Docker's restart policy then brings the
containers back onto those links). Files, all root-only, under the host's root (``/``; the lab's
namespace hosts, which share one filesystem, each get their own via ``VLANINFRA_HOST_ROOT``):

- ``/etc/vlaninfra/persist/<project>--<stack>/<kind>--<name>.json`` (0600, directories 0700):
  one per object: owner, kind, name, spec hash (the object's mark), and the object's spec and
  mark in the stored form of format 1 (:mod:`._kept`: the flat arguments the ensure ops took
  before they took specs; files already on hosts are in that form);
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
``restore`` decodes each file into its spec and re-runs the kind's netlink op (802.1Q parents,
then shims, then routes) with the same owner and spec, so a restored object carries the same
marks and the same ownership checks apply (a link of that name made meanwhile by someone else
is left alone and reported).

Split by job: :mod:`._store` (where the files are, written atomically under one lock),
:mod:`._kept` (what a file holds, typed), :mod:`._files` (keeping, dropping and checking them),
:mod:`._hook` (the boot hook and unit), :mod:`._boot` (the restore that runs at boot).

Example: ``record(Store.from_env(), "infra/prod", Kept(VlanSpec("eth0", 50, "eth0.50"),
Mark("infra/prod")))``
"""

from ._boot import restore, restore_main
from ._files import check, files_of, forget, put_back, record
from ._hook import own_archive
from ._kept import FORMAT, KINDS, Kept, Kind, entry_of, load_entry
from ._store import ROOT_ENV, UNIT_NAME, Store

__all__ = [
    "FORMAT",
    "KINDS",
    "ROOT_ENV",
    "UNIT_NAME",
    "Kept",
    "Kind",
    "Store",
    "check",
    "entry_of",
    "files_of",
    "forget",
    "load_entry",
    "own_archive",
    "put_back",
    "record",
    "restore",
    "restore_main",
]
