"""`vlaninfra demo`: the main job on the local lab. Brings the lab up, runs `pulumi up` of the
`lab` stack (the seed's macvlan + host shim recipe) and shows who reaches which container."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from vlaninfra._text import table
from vlaninfra.engine import Engine, project_root
from vlaninfra.lab import Inventory, http_ok, lab_up
from vlaninfra.layout import Plan, plan
from vlaninfra.layout._files import load_stack_file

__all__ = ["add_parser", "reachability", "render_table"]

STACK = "lab"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="lab up, pulumi up of the lab stack, reachability table")
    p.add_argument("--stack", default=STACK, help="the stack to apply (default: lab)")
    p.set_defaults(func=_run)


def reachability(the_plan: Plan, inventory: Inventory) -> list[tuple[str, str, str, bool, bool]]:
    """(host, container, address, reached from the LAN peer, reached from its host via the shim)
    for every container of the plan."""
    rows = []
    for site in the_plan.sites:
        lab_site = next((s for s in inventory.sites if s.name == site.name), inventory.sites[0])
        for host in site.hosts:
            netns = next(h.netns for h in lab_site.hosts if h.name == host.name)
            for c in host.containers:
                address = str(c.ipv4)
                rows.append(
                    (
                        host.name,
                        c.name,
                        address,
                        http_ok(lab_site.peer.netns, address),
                        http_ok(netns, address),
                    )
                )
    return rows


def render_table(rows: list[tuple[str, str, str, bool, bool]]) -> str:
    """The reachability rows as an aligned text table."""
    head = ("host", "container", "address", "LAN peer -> container", "host -> own container")
    shown = [(h, c, a, "ok" if p else "FAIL", "ok" if s else "FAIL") for h, c, a, p, s in rows]
    return "\n".join(table(head, shown))


def _run(args: argparse.Namespace) -> int:
    root = project_root()
    print("vlaninfra: bringing the lab up", flush=True)
    inventory = lab_up(hosts=2)
    engine = Engine(root)
    engine.ensure_stack(args.stack)
    # The lab may have been rebuilt since the last demo (new hosts, new host keys): bring the
    # stack's state in line with what is really there, or start it afresh when the old hosts
    # are gone for good (their pinned keys no longer match).
    if not engine.succeeds(args.stack, "refresh", "--yes", "--skip-preview"):
        print("vlaninfra: the lab was rebuilt; starting the demo stack afresh", flush=True)
        engine.run(args.stack, "stack", "rm", "--yes", "--force", "--preserve-config")
        engine.ensure_stack(args.stack)
    print(f"vlaninfra: pulumi up --stack {args.stack}", flush=True)
    done = subprocess.run(
        ["pulumi", "up", "--yes", "--non-interactive", "--stack", args.stack],
        cwd=root,
        env=engine.env(),
        check=False,
    )
    if done.returncode != 0:
        return done.returncode
    the_plan = plan(load_stack_file(root / "stacks" / f"Pulumi.{args.stack}.yaml"))
    rows = reachability(the_plan, inventory)
    print("\n" + render_table(rows))
    ok = all(p and s for *_, p, s in rows)
    print("\nall reachable" if ok else "\nsome containers are NOT reachable", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="vlaninfra demo")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(_run(parser.parse_args(["demo", *sys.argv[1:]])))
