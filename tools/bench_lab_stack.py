"""Benchmark of the `lab` stack on the local lab: wall time and SSH connections per host for
`up` from empty, a no-change `up`, `refresh` and `destroy`.

Run as root after set-up: `.venv/bin/python tools/bench_lab_stack.py` (brings the default lab
up, uses a scratch state backend, destroys what it made). A benchmark, not a test: it prints.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import lab_up


def main() -> None:
    inventory = lab_up(hosts=2)
    hosts = [h for s in inventory.sites for h in s.hosts]

    def logins() -> list[int]:
        return [Path(h.sshd_log).read_text().count("Accepted publickey") for h in hosts]

    work = Path(tempfile.mkdtemp(prefix="vlaninfra-bench-"))
    engine = Engine(project_root(), backend=work / "backend", passphrase=LAB_PASSPHRASE)
    engine.ensure_stack("lab")
    runs = [
        ("up from empty", ("up", "--yes")),
        ("no-change up", ("up", "--yes")),
        ("refresh", ("refresh", "--yes", "--skip-preview")),
        ("destroy", ("destroy", "--yes")),
    ]
    try:
        print(f"{'run':<16}{'seconds':>9}  {'changes':<28}ssh connections per host")
        for label, args in runs:
            before, start = logins(), time.monotonic()
            changes = engine.changes("lab", *args)
            took = time.monotonic() - start
            per_host = [a - b for a, b in zip(logins(), before, strict=True)]
            print(f"{label:<16}{took:>9.1f}  {changes!s:<28}{per_host}")
    finally:
        engine.run("lab", "destroy", "--yes", "--skip-preview", check=False)
        engine.run("lab", "stack", "rm", "--yes", "--force", "--preserve-config", check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
