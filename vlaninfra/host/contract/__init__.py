"""The one typed contract between the layout, the providers and the host agent: the enums of
every object's vocabulary, frozen specs (each holding its defaults and checks once), typed
states, and the op table (``NETWORK_CREATE: Op[NetworkCreate, NetworkState]``) that providers
``run`` and the agent serves. Stdlib only: it ships inside the agent's zipapp.

Example: ``run(agent, NETWORK_REMOVE, NetworkRemove("lan", owner="infra/prod")).removed``
"""

from ._codec import Caller, ContractError, Handler, Op, as_, decode, encode, handler, maybe, run
from ._common import Mark, Named, Removed
from ._enums import (
    DEFAULT_MODE,
    ROUTED,
    Choice,
    Driver,
    IpvlanFlag,
    IpvlanMode,
    LinkMode,
    MacvlanMode,
    RestartPolicy,
    driver_of,
    flag_of,
    mode_of,
)
from ._network import (
    NETWORK_CREATE,
    NETWORK_INSPECT,
    NETWORK_REMOVE,
    IpamPool,
    NetworkCreate,
    NetworkRemove,
    NetworkSpec,
    NetworkState,
)

__all__ = [
    "DEFAULT_MODE",
    "NETWORK_CREATE",
    "NETWORK_INSPECT",
    "NETWORK_REMOVE",
    "ROUTED",
    "Caller",
    "Choice",
    "ContractError",
    "Driver",
    "Handler",
    "IpamPool",
    "IpvlanFlag",
    "IpvlanMode",
    "LinkMode",
    "MacvlanMode",
    "Mark",
    "Named",
    "NetworkCreate",
    "NetworkRemove",
    "NetworkSpec",
    "NetworkState",
    "Op",
    "Removed",
    "RestartPolicy",
    "as_",
    "decode",
    "driver_of",
    "encode",
    "flag_of",
    "handler",
    "maybe",
    "mode_of",
    "run",
]
