"""The one typed contract between the layout, the providers and the host agent: the enums of
every object's vocabulary, frozen specs (each holding its defaults and checks once), typed
states, and the op table (``NETWORK_CREATE: Op[NetworkCreate, NetworkState]``) that providers
``run`` and the agent serves. Stdlib only: it ships inside the agent's zipapp.

Example: ``run(agent, NETWORK_REMOVE, NetworkRemove("lan", owner="infra/prod")).removed``
"""

# Each part lists its public names once, in its own __all__; this package is their union.
from . import _codec, _common, _container, _enums, _links, _network, _route
from ._codec import *  # noqa: F403
from ._common import *  # noqa: F403
from ._container import *  # noqa: F403
from ._enums import *  # noqa: F403
from ._links import *  # noqa: F403
from ._network import *  # noqa: F403
from ._route import *  # noqa: F403

__all__ = [*_codec.__all__, *_common.__all__, *_container.__all__, *_enums.__all__,
           *_links.__all__, *_network.__all__, *_route.__all__]
