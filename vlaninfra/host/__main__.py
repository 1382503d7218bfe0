"""``python -m vlaninfra.host``: run the agent on this host (see ``vlaninfra.host.agent``)."""

from __future__ import annotations

import sys

from vlaninfra.host.agent import main

if __name__ == "__main__":
    sys.exit(main())
