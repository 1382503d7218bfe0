"""``python -m vlaninfra.engine exec [PULUMI ARGS...]``: what ``tools/pulumi ARGS`` runs."""

import sys

from ._launcher import main

sys.exit(main(sys.argv[1:]))
