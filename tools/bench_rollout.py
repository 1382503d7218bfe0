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
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vlaninfra.engine import Engine, project_root
from vlaninfra.lab import lab_up
from vlaninfra.rollout import Report, rollback, up

STACK = "bench"


def main(per_host: int = 20) -> None:
    lab_up(hosts=2)
    work = Path(tempfile.mkdtemp(prefix="vlaninfra-bench-rollout-"))
    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    config = yaml.safe_load((project_root() / "stacks" / "Pulumi.lab.yaml").read_text())
    sites: dict[str, Any] = config["config"]["vlaninfra:sites"]
    image = sites["a"]["containers"][0]["image"]
    sites["a"]["containers"] = [
        {"name": f"c{h}-{i}", "host": h, "network": "pub_net", "image": image}
        for h in ("h1", "h2") for i in range(per_host)
    ]

    def write(s: dict[str, Any]) -> None:
        doc = {"config": {"vlaninfra:sites": s}}
        (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(doc))

    engine = Engine(project_root(), backend=work / "backend")
    kw: dict[str, Any] = {"engine": engine, "cwd": project}
    write(sites)
    engine.ensure_stack(STACK, cwd=project)

    def timed(label: str, run: Any) -> Report:
        start = time.monotonic()
        report: Report = run()
        took = time.monotonic() - start
        print(f"\n{label}: {took:.1f} s, ok={report.ok}")
        for step in report.steps:
            v = step.verification
            extra = (f"; verification {v.seconds:.1f} s for {len(v.rows)} checks, "
                     f"{v.seconds / (2 * per_host):.3f} s per container; the finalize run "
                     f"{step.finalize_seconds:.1f} s") if v else ""
            print(f"  {step.what}: {step.seconds:.1f} s{extra}")
        return report

    try:
        timed(f"verified up from empty (2 hosts x {per_host} containers)", lambda: up(STACK, **kw))
        bad = copy.deepcopy(sites)
        # A container that exits at once fails verification (an address another LAN device
        # holds is refused by preview before anything is applied).
        bad["a"]["containers"].append(
            {"name": "dup", "host": "h2", "network": "pub_net", "image": image,
             "command": ["true"], "restart_policy": "no"})
        write(bad)
        timed("failing verification + automatic rollback", lambda: up(STACK, **kw))
        write(sites)
        timed("rollback --to 1 (no change on the hosts)", lambda: rollback(STACK, to=1, **kw))
    finally:
        engine.run(STACK, "destroy", "--yes", "--skip-preview", check=False, cwd=project)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
