"""`vlaninfra lab up | down | status`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["add_parser", "main"]


def _up(args: argparse.Namespace) -> int:
    from vlaninfra.lab import LabError, inventory_path, lab_up

    start = time.monotonic()
    try:
        inv = lab_up(
            hosts=args.hosts,
            sites=args.sites,
            instance=args.instance,
            vm_hosts=args.vm_hosts,
            vlan_peers=args.vlan_peer,
        )
    except LabError as e:
        if not inventory_path(args.instance).parent.exists():
            raise
        down = f"vlaninfra lab down --instance {args.instance}"
        raise LabError(f"{e}\n(what was built stays for inspection; `{down}` removes it)") from e
    vms = sum(h.kind == "vm" for h in inv.hosts)
    peers = sum(len(s.vlan_peers) for s in inv.sites)
    print(
        f"lab {inv.instance} up in {time.monotonic() - start:.1f} s: "
        f"{len(inv.hosts)} host(s) ({vms} VM) and {peers} VLAN peer(s) in {len(inv.sites)} site(s)"
    )
    for site in inv.sites:
        print(
            f"  site {site.name} {site.lan}: router {site.router.netns} "
            f"ssh root@{site.router.mgmt_address}"
        )
        for h in site.hosts:
            where = f"vm {h.vm_name}" if h.kind == "vm" else h.netns
            print(f"    {h.name} {where} {h.lan_address} ssh root@{h.mgmt_address}")
        for vp in site.vlan_peers:
            print(
                f"    {vp.name} vm {vp.vm_name} vlan {vp.vlan} eth0.{vp.vlan} {vp.address} "
                f"ssh root@{vp.mgmt_address}"
            )
    print(f"inventory: {inventory_path(inv.instance)}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from vlaninfra.lab import lab_down, lab_instances

    start = time.monotonic()
    instances = lab_instances() if args.all else [args.instance]
    for instance in instances:
        for line in lab_down(instance):
            print(f"lab down ({instance}): {line}", file=sys.stderr)
    done = ", ".join(instances) or "nothing to remove"
    print(f"lab down ({done}) in {time.monotonic() - start:.1f} s")
    return 0


def _status(args: argparse.Namespace) -> int:
    from vlaninfra.lab import lab_status

    print(lab_status(args.instance))
    return 0


def _vlan_peer(text: str) -> tuple[int, str]:
    """``50=198.18.50.2/24`` → ``(50, "198.18.50.2/24")``."""
    vid, sep, address = text.partition("=")
    if not sep or not vid.strip().isdigit() or "/" not in address:
        raise argparse.ArgumentTypeError(f"{text!r} is not VID=ADDR/PREFIX, e.g. 50=198.18.50.2/24")
    return int(vid), address.strip()


def _run(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        from vlaninfra.lab import LabError

        try:
            return int(func(args))
        except LabError as e:
            print(f"vlaninfra lab: error: {e}", file=sys.stderr)
            return 1

    return wrapped


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``lab`` with ``up``, ``down`` and ``status`` on an argparse subparsers object.

    Example: ``add_parser(parser.add_subparsers(dest="command"))``
    """
    lab = subparsers.add_parser(
        "lab", help="the local multi-host lab (network namespaces, QEMU VM hosts)"
    )
    sub = lab.add_subparsers(dest="lab_command", required=True)
    inst = argparse.ArgumentParser(add_help=False)
    inst.add_argument(
        "--instance",
        default="default",
        help="lab instance: 'default' or 1-3 chars a-z0-9 (default: %(default)s)",
    )

    up = sub.add_parser("up", parents=[inst], help="build or repair the lab (idempotent)")
    up.add_argument(
        "--hosts",
        type=int,
        default=2,
        help="Docker hosts per site: 1-15, 1-7 with 2 sites (default: 2)",
    )
    up.add_argument(
        "--sites",
        type=int,
        default=1,
        choices=(1, 2),
        help="1: site a; 2: sites a and b, routed to each other (default: 1)",
    )
    up.add_argument(
        "--vm-hosts",
        type=int,
        default=0,
        metavar="N",
        help="QEMU Docker hosts v1..vN on site a (full Debian kernel: ipvlan, 802.1Q); "
        "VM hosts and VLAN peers 0-8 in all (default: 0)",
    )
    up.add_argument(
        "--vlan-peer",
        type=_vlan_peer,
        action="append",
        default=[],
        metavar="VID=ADDR/PREFIX",
        help="a QEMU guest on site a terminating VLAN VID on eth0.VID with ADDR/PREFIX, "
        "e.g. 50=198.18.50.2/24 (repeatable)",
    )
    up.set_defaults(func=_run(_up))

    down = sub.add_parser("down", parents=[inst], help="remove everything the lab made")
    down.add_argument("--all", action="store_true", help="every lab instance on this machine")
    down.set_defaults(func=_run(_down))

    status = sub.add_parser("status", parents=[inst], help="hosts, daemons, containers")
    status.set_defaults(func=_run(_status))
    return lab  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lab`` alone: ``python -m vlaninfra.lab.cli up --hosts 2``."""
    parser = argparse.ArgumentParser(prog="vlaninfra")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
