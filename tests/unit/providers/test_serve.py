"""The dynamic-provider launcher: Pulumi's server, with a wider request pool."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from typing import Any

import pytest

from vlaninfra.providers import serve


def test_the_server_pool_gets_the_workers_and_later_pools_are_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    def fake_run(name: str, **kw: Any) -> None:  # what pulumi.dynamic's main() does first
        assert name == "pulumi.dynamic" and kw["run_name"] == "__main__"
        made.append(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        made.append(concurrent.futures.ThreadPoolExecutor(max_workers=2))

    monkeypatch.setattr("runpy.run_module", fake_run)
    serve.main(watch_parent=False)  # not pytest's parent
    assert [p._max_workers for p in made] == [serve.WORKERS, 2]
    assert concurrent.futures.ThreadPoolExecutor is type(made[1])
    for p in made:
        p.shutdown()


def test_the_server_starts_and_says_its_port() -> None:
    proc = subprocess.Popen([sys.executable, "-u", "-m", "vlaninfra.providers.serve"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) > 0
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
