"""The layout model: sites, hosts, LANs, networks, tenants and containers as typed,
validated data, the address ledger and the derived plan. Pure Python, no I/O.

Example::

    layout = load_config({"sites": {...}})
    for site in plan(layout).sites: ...
"""

from __future__ import annotations

from . import _load, _model, _plan
from ._ledger import derive_mac
from ._load import *  # noqa: F403
from ._model import *  # noqa: F403
from ._plan import *  # noqa: F403
from ._probes import ProbePlan
from ._render import render_plan

__all__ = ["ProbePlan", "derive_mac", "render_plan"]
__all__ += _model.__all__  # the declared layout
__all__ += _plan.__all__  # the derived plan
__all__ += _load.__all__  # reading a config
