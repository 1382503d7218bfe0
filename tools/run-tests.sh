#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it: lint, types, then every pytest marker (unit, lab,
# engine, vm). Lab leftovers of this run are removed at the end, also when a test failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.engine/bin:$root/.venv/bin:$PATH"
trap '.venv/bin/vlaninfra lab down --all >/dev/null 2>&1 || true' EXIT
status=0
.venv/bin/ruff check . || status=1
.venv/bin/mypy || status=1
.venv/bin/python -m pytest "$@" || status=1
exit $status
