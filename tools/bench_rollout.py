"""Benchmark of verified apply and rollback on the local lab: the `lab` stack's layout with
N containers per host (default 20, the issue's reference 2 hosts x 20): a verified `up` from
empty, its verification time per container, then a change that fails verification (an address
the LAN peer holds) and the automatic rollback, then `rollback --to 1`.

Run as root after set-up, under the lab lock:
`flock /tmp/vlaninfra-lab.lock .venv/bin/python tools/bench_rollout.py [N]` (brings the
default lab up, uses a scratch project and state backend, destroys what it made). A benchmark,
not a test: it prints.
"""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

from _bench import lab_sites, scratch_stack

from vlaninfra.lab import lab_up
from vlaninfra.rollout import Report, rollback, up

STACK = "bench"


def main(per_host: int = 20) -> None:
    lab_up(hosts=2)
    sites = lab_sites()
    image = sites["a"]["containers"][0]["image"]
    sites["a"]["containers"] = [
        {"name": f"c{h}-{i}", "host": h, "network": "pub_net", "image": image}
        for h in ("h1", "h2") for i in range(per_host)
    ]
    with scratch_stack(sites, STACK) as scratch:
        kw: dict[str, Any] = {"engine": scratch.engine, "cwd": scratch.cwd}

        def timed(label: str, run: Any) -> Report:
            start = time.monotonic()
            report: Report = run()
            took = time.monotonic() - start
            print(f"\n{label}: {took:.1f} s, ok={report.ok}")
            for step in report.steps:
                v = step.verification
                extra = (f"; verification {v.seconds:.1f} s for {len(v.rows)} checks, "
                         f"{v.seconds / (2 * per_host):.3f} s per container; the finalize "
                         f"run {step.finalize_seconds:.1f} s") if v else ""
                print(f"  {step.what}: {step.seconds:.1f} s{extra}")
            return report

        timed(f"verified up from empty (2 hosts x {per_host} containers)",
              lambda: up(STACK, **kw))
        bad = copy.deepcopy(sites)
        # A container that exits at once fails verification (an address another LAN device
        # holds is refused by preview before anything is applied).
        bad["a"]["containers"].append(
            {"name": "dup", "host": "h2", "network": "pub_net", "image": image,
             "command": ["true"], "restart_policy": "no"})
        scratch.write(bad)
        timed("failing verification + automatic rollback", lambda: up(STACK, **kw))
        scratch.write(sites)
        timed("rollback --to 1 (no change on the hosts)", lambda: rollback(STACK, to=1, **kw))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
