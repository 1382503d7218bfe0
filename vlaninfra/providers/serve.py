"""The dynamic-provider server with a wider request pool: ``python -m vlaninfra.providers.serve``.

Pulumi's server (``python -m pulumi.dynamic``) answers the engine's requests on 4 threads, so
at most 4 creates, updates or reads run at once whatever the engine's ``--parallel``; each
waits on a host most of the time. This runs the same server with ``VLANINFRA_PROVIDER_WORKERS``
threads (default 16; the engine's ``--parallel``, 4 per CPU by default, still bounds it).
``tools/build-engine.sh`` makes the engine's ``pulumi-resource-pulumi-python`` start it.
"""

from __future__ import annotations

import concurrent.futures
import os
import runpy
import signal
import threading
import time
from typing import Any

__all__ = ["WORKERS", "main"]

WORKERS = max(1, int(os.environ.get("VLANINFRA_PROVIDER_WORKERS", "16") or 16))
"""Threads the server answers requests on."""
PARENT_POLL = 1.0
"""Seconds between looks at whether the engine that started this process is still there."""


def _end_with(parent: int) -> None:
    """End this process, as the engine ends it (SIGINT: requests under way finish first), once
    ``parent`` is gone: a ``pulumi`` killed with SIGKILL cannot stop its plugins, and the
    provider would otherwise idle forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os.kill(os.getpid(), signal.SIGINT)


def main(watch_parent: bool = True) -> None:
    """Run ``pulumi.dynamic``'s server; the first thread pool it makes (the gRPC server's)
    gets `WORKERS` threads, every later one is left as it is asked for. SSH hosts are reached
    through connection brokers: the engine's phases and runs share one login and agent.

    When that pool is made, the server's module is defined and serves nothing yet: that is
    when its ``traceback`` is pointed at `_quiet.format_exc` (vlaninfra's errors reach the
    user as their message). The import of `vlaninfra.providers`, which does that for a server
    started as ``python -m pulumi.dynamic``, happened here before the server existed.

    SIGINT is taken even when the engine was started with it ignored (a script's background
    job): the engine stops its plugins with SIGINT and kills them only 5 s later. The process
    ends when its engine is gone (`_end_with`; ``watch_parent`` False: not, for tests that
    run this inside their own process)."""
    from vlaninfra.providers import _quiet
    from vlaninfra.transport import use_broker

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if watch_parent:
        threading.Thread(target=_end_with, args=(os.getppid(),), name="end-with-engine",
                         daemon=True).start()

    base = concurrent.futures.ThreadPoolExecutor

    class _Wider(base):  # type: ignore[valid-type,misc]
        def __init__(self, max_workers: int | None = None, *args: Any, **kw: Any) -> None:
            concurrent.futures.ThreadPoolExecutor = base  # type: ignore[misc]
            _quiet.install()
            super().__init__(max(max_workers or 0, WORKERS), *args, **kw)

    concurrent.futures.ThreadPoolExecutor = _Wider  # type: ignore[misc]
    use_broker()
    try:
        runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
    finally:
        concurrent.futures.ThreadPoolExecutor = base  # type: ignore[misc]
        use_broker(False)


if __name__ == "__main__":
    main()
