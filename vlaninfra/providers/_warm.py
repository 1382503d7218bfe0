"""Every host of the stack reached at once, the first time a check must reach one.

The engine checks one resource at a time, and a host's first check used to log in, start the
agent and fetch the check snapshot (about 1 s) while the engine waited: one host after another,
10 s of a 10-host preview. The first check that must reach a host (a run that changes nothing
reaches none) now starts that for every host and managed router the stack config names, each
on its own thread, and the checks that follow find their host ready. Best effort: a host that
cannot be reached, or a config the program would refuse, is left for the check that needs it
to report; a start still under way when the provider exits is aborted (`Agent.close`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from pulumi.dynamic.config import Config

from vlaninfra.transport import agent_for

from ._host import CONNECTION, DockerHost, target_of

__all__ = ["settle_warm", "warm_hosts"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_threads: list[threading.Thread] | None = None
"""The warm-up's threads once it started (once per provider process)."""


def warm_hosts(config: Config | None) -> None:
    """Start reaching every host and managed router of the stack (``config``: the stack
    config the provider got) in the background; only the first call in a process does
    anything, and nothing here fails the check that calls it."""
    global _threads
    threads: list[threading.Thread] = []
    with _lock:
        if _threads is not None or config is None:
            return
        _threads = threads
    try:
        # Here, not at import (the program imports the providers), nor in a thread (no import
        # runs beside the check's own).
        from vlaninfra.layout import load_config
        from vlaninfra.program import hosts_of, routers_of
    except Exception as exc:
        log.info("no warm-up of the stack's hosts: %s", exc)
        return
    lookup: Callable[[str], object] = config.get

    def warm_all() -> None:
        try:
            sites = config.get("vlaninfra:sites")
            layout = load_config({"sites": json.loads(sites) if isinstance(sites, str)
                                  else sites})
            found = {**hosts_of(layout), **routers_of(layout)}
        except Exception as exc:  # the program says what is wrong with the config
            log.info("no warm-up of the stack's hosts: %s", exc)
            return
        each = [threading.Thread(target=_warm, args=(h, lookup), name="warm-host", daemon=True)
                for h in found.values()]
        threads.extend(each)
        for t in each:
            t.start()

    lead = threading.Thread(target=warm_all, name="warm-hosts", daemon=True)
    threads.append(lead)
    lead.start()


def _warm(host: DockerHost, lookup: Callable[[str], object]) -> None:
    """Log in to ``host``, start its agent and fetch its check snapshot; a failure is left for
    the check that needs the host to report (the layout as a rollback applies it may even
    name other hosts than the config)."""
    try:
        agent = agent_for(target_of({CONNECTION: host.connection()}, lookup))
        agent.start()
        agent.check_facts()
    except Exception as exc:
        log.info("warm-up of host %s failed: %s", host.name, exc)


def settle_warm(timeout: float = 30.0) -> None:
    """Wait for the warm-up's threads (tests)."""
    done = 0
    while len(_threads or []) > done:  # the lead adds the others before it ends
        waiting = (_threads or [])[done:]
        for t in waiting:
            t.join(timeout)
        done += len(waiting)
