"""`vlaninfra demo`: the main job on the local lab. Brings the lab up, runs `pulumi up` of the
`lab` stack (the seed's macvlan + host shim recipe) and shows who reaches which container."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vlaninfra._text import table
from vlaninfra.engine import (
    Engine,
    EngineError,
    is_lab_stack,
    project_root,
    run_attached,
    stack_file,
)
from vlaninfra.lab import Inventory, http_ok, lab_up
from vlaninfra.layout import Plan, plan
from vlaninfra.loader import load_stack_file

__all__ = ["add_parser", "lab_rebuilt", "reachability", "render_table"]

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


def lab_rebuilt(export: str, inventory: Inventory) -> bool:
    """Whether the lab was rebuilt under the stack whose `pulumi stack export` is `export`: it
    records SSH hosts, every one at a management address and port of this lab, and none with the
    host key the lab has there now (a new lab: the old hosts, and all on them, are gone).

    Example: ``lab_rebuilt(engine.run("lab", "stack", "export"), inventory)``
    """
    members: list[Any] = [m for site in inventory.sites for m in (*site.hosts, site.router)]
    now = {(m.mgmt_address, int(m.ssh_port)): m.host_key for m in members}
    recorded = {
        (c["address"], int(c["port"]), c["host_key"])
        for r in json.loads(export).get("deployment", {}).get("resources") or []
        for c in [(r.get("outputs") or {}).get("connection") or (r.get("inputs") or {}).get(
            "connection")]
        if isinstance(c, dict) and c.get("kind") == "ssh"
    }
    return bool(recorded) and all(
        (a, p) in now and now[(a, p)] != key for a, p, key in recorded
    )


def _run(args: argparse.Namespace) -> int:
    root = project_root()
    path = stack_file(root, args.stack)
    if not is_lab_stack(path):
        print(
            f"vlaninfra demo: {path} is not a lab stack (every site says `inventory: lab`, no "
            f"`ssh:` of its own): the demo applies lab stacks only; apply it with "
            f"`tools/pulumi up --stack {args.stack}`",
            file=sys.stderr,
        )
        return 2
    print("vlaninfra: bringing the lab up", flush=True)
    inventory = lab_up(hosts=2)
    engine = Engine(root)
    engine.ensure_stack(args.stack)
    # The lab may have been rebuilt since the last demo: then every host the stack recorded has
    # a new host key and nothing it created exists any more, so its state is dropped. Any other
    # mismatch (a changed key on a surviving host, a refresh error) stops the demo, state kept.
    if lab_rebuilt(engine.run(args.stack, "stack", "export"), inventory):
        print("vlaninfra: the lab was rebuilt since this stack was applied (every recorded host "
              "has a new host key); starting the stack afresh", flush=True)
        engine.run(args.stack, "stack", "rm", "--yes", "--force", "--preserve-config")
        engine.ensure_stack(args.stack)
    try:
        engine.run(args.stack, "refresh", "--yes", "--skip-preview")
    except EngineError as err:
        print(
            f"vlaninfra demo: {err}\nThe stack {args.stack} and its state are left as they are: "
            "fix what the error names (a changed host key: `vlaninfra lab down` then "
            "`vlaninfra demo` rebuilds the lab and the stack) and run the demo again",
            file=sys.stderr,
        )
        return 1
    print(f"vlaninfra: pulumi up --stack {args.stack}", flush=True)
    code = run_attached(["pulumi", "up", "--yes", "--non-interactive", "--stack", args.stack],
                        cwd=root, env=engine.env(args.stack))
    if code != 0:
        return code
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
