"""``vlaninfra doctor``: checks every host of a layout before a change, changing nothing.

One agent session per host (all hosts in parallel) reads the host's facts (``doctor.facts``:
kernel link kinds, DMI vendor/product, ``ip_forward``, links, Docker version and networks),
asks the providers' own preview clash checks about every planned object, and sends an ARP
probe for every planned container address on the LAN. ``diagnose`` (pure) turns layout and
facts into findings, one line each, with a severity and the config key or host fact.

Example::

    report = doctor(layout, hosts_of(layout), owner="vlaninfra/prod")
    print(report.text()); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

from . import _diagnose, _gather
from ._diagnose import *  # noqa: F403
from ._gather import *  # noqa: F403

__all__ = []
__all__ += _diagnose.__all__  # pure: layout + facts -> findings
__all__ += _gather.__all__  # I/O: one agent session per host
